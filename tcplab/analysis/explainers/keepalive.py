"""Keepalive: a host probes an idle connection, and the peer answers or not.

Speaks for every connection on which a host sent zero-length probes (an ACK with seq = snd_una - 1) while
it had nothing else to send: how long the connection had been idle (``tcp_keepalive_time``), the probes'
spacing (``tcp_keepalive_intvl``) and number (``tcp_keepalive_probes``) against the values the run read on
that host, whether the peer answered, and, when it never did, how the socket ended (the kernel's RST,
the state change, the program's ETIMEDOUT). Idle connections of the same host to the same peer that
sent no probe and were still ESTABLISHED at the end are named: without keepalive nothing notices.
A probe into a zero window (the peer advertised win 0) is a window probe, not keepalive: left out here.
"""
from __future__ import annotations

from ...wire import RST
from ..kernel_timers import recorded
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, programs_said, \
    register, where


@register
class Keepalive(Explainer):
    kind = "keepalive"
    what = "connections probed by keepalive"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for conn in run.traffic.connections:
            for ip in {p.tcp.src for p in conn.packets if p.probe}:
                if not run.forwards(run.name(ip)):  # a NAT box's copy of another host's probes: that host's
                    out.add(keepalive_finding(run, conn, ip))
        return out


def _zero_window(conn: Connection, ip: str, probe: Packet) -> bool:
    """The peer's last word before ``probe`` advertised a zero window: a window probe."""
    before = [p for p in conn.packets if p.tcp.src != ip and p.n < probe.n]
    return bool(before) and before[-1].tcp.win == 0 and not before[-1].tcp.flags & RST


def keepalive_finding(run: RunEvidence, conn: Connection, ip: str) -> Finding | None:
    probes = [p for p in conn.packets if p.tcp.src == ip and p.probe]
    if not probes or _zero_window(conn, ip, probes[0]):
        return None
    first = probes[0]
    peer_ip = first.tcp.dst
    host, peer = run.name(ip), run.name(peer_ip)
    sock = SocketId(host, ip, first.tcp.sport, peer_ip, first.tcp.dport)
    t0 = run.t0
    facts: list[Fact] = []
    heard = [p for p in conn.packets if p.tcp.src == peer_ip and p.n < first.n]
    idle_from = heard[-1] if heard else None
    ka_time, _ = recorded(run.info.get("sysctls"), host, "net.ipv4.tcp_keepalive_time")
    intvl, _ = recorded(run.info.get("sysctls"), host, "net.ipv4.tcp_keepalive_intvl")
    count, _ = recorded(run.info.get("sysctls"), host, "net.ipv4.tcp_keepalive_probes")
    if idle_from is not None:
        text = (f"The last packet {host} received from {peer} was at {fmt_t(idle_from.ts, t0)} (packet "
                f"#{idle_from.n}); {fmt_span(first.ts - idle_from.ts)} of silence later {host} sent its first "
                f"keepalive probe, {first.label()} (packet #{first.n}): zero length, one below what {peer} had acked")
        if ka_time is not None:
            text += f" (net.ipv4.tcp_keepalive_time on {host}: {ka_time} s, read by the run)"
        facts.append(Fact(text + ".", first.ts, f"pkt-{first.n}"))
    answered = [p for p in conn.packets if p.tcp.src == peer_ip and p.n > first.n]
    gaps = [b.ts - a.ts for a, b in zip(probes, probes[1:])]
    text = f"{host} sent {len(probes)} probe{'s' if len(probes) != 1 else ''}"
    if gaps:
        text += f", {', '.join(fmt_span(g) for g in gaps)} apart"
    if intvl is not None and count is not None:
        text += f" (tcp_keepalive_intvl {intvl} s, tcp_keepalive_probes {count} on {host})"
    facts.append(Fact(text + ".", probes[-1].ts, f"pkt-{probes[-1].n}"))
    rst = next((p for p in conn.packets if p.tcp.src == ip and p.tcp.flags & RST and p.n > first.n), None)
    tl = run.timeline_of(sock)
    end = None
    if tl is not None:
        closed = next((iv for iv in tl.intervals if iv.state == "CLOSE" and iv.start > first.ts), None)
        if closed is not None:
            end = closed.start
    if not answered:
        facts.append(Fact(f"{peer} answered none of them: nothing from {peer} reached {host} after "
                          f"{fmt_t(first.ts, t0)}.", None))
        if rst is not None:
            facts.append(Fact(f"{fmt_span(rst.ts - probes[-1].ts)} after the last probe {host}'s kernel gave up: it "
                              f"sent {rst.label()} (packet #{rst.n}) and dropped the connection.", rst.ts,
                              f"pkt-{rst.n}"))
            end = end or rst.ts
        if end is not None:
            facts.append(Fact(f"{host}'s socket went to CLOSE at {fmt_t(end, t0)}.", end))
        said = programs_said(run, host, ("ETIMEDOUT",))
        if said:
            facts.append(Fact(f"{said['ETIMEDOUT']} The error is the kernel's verdict on the connection, reported to "
                              "the program at its next call (or at once, if it was blocked in one).", None))
        control = _unprobed(run, host, peer_ip, sock)
        if control:
            facts.append(Fact(f"{host}'s other connection{'s' if len(control) > 1 else ''} to {peer} without keepalive "
                              f"({', '.join(control)}) sent no probe and {'were' if len(control) > 1 else 'was'} still "
                              "ESTABLISHED at the end of the run: nothing will ever tell it that the peer is gone.",
                              None))
        title = f"{where(run, sock)}: keepalive found the peer gone, {len(probes)} probes unanswered"
        why = (f"The connection was idle and {peer} had vanished without a FIN or an RST (here: its packets dropped). "
               f"TCP sends nothing on an idle connection, so only keepalive can notice: {host}'s socket has "
               "SO_KEEPALIVE; after tcp_keepalive_time of silence its kernel sends a probe (a zero-length ACK with "
               "seq = snd_una - 1, which a live peer must answer with an ACK), then one every tcp_keepalive_intvl; "
               "after tcp_keepalive_probes unanswered ones it drops the connection (with an RST, in case the peer "
               "hears it) and the program's next or pending call fails with ETIMEDOUT (\"Connection timed out\"). "
               "TcpExtTCPKeepAlive counts the probes.")
        fix = ("This is keepalive doing its job. Without it, such a connection stays ESTABLISHED forever. Turn it on "
               "for long-lived idle connections (SO_KEEPALIVE, with TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT per socket "
               "or the net.ipv4.tcp_keepalive_* sysctls: the defaults, 7200 s / 75 s / 9, take over two hours), keep "
               "the idle time shorter than any NAT or load balancer timeout on the path, or use an application "
               "heartbeat; reconnect on ETIMEDOUT.")
        return Finding("keepalive", title, sock, run.side(sock), first.ts, end, "keepalive gave up" if end else "",
                       facts, why, fix)
    facts.append(Fact(f"{peer} answered (packet #{answered[0].n} at {fmt_t(answered[0].ts, t0)}): the connection is "
                      "alive, and the probe reset the idle timer.", answered[0].ts, f"pkt-{answered[0].n}"))
    title = f"{where(run, sock)}: keepalive probes, answered"
    why = (f"{host}'s socket has SO_KEEPALIVE: after tcp_keepalive_time of silence its kernel probes the peer with a "
           "zero-length ACK (seq = snd_una - 1); a live peer answers with an ACK and the connection goes on.")
    fix = "Nothing is broken: keepalive confirmed the peer is there (and kept any NAT or firewall state on the path)."
    return Finding("keepalive", title, sock, run.side(sock), first.ts, None, "", facts, why, fix)


def _unprobed(run: RunEvidence, host: str, peer_ip: str, probed: SocketId) -> list[str]:
    """``host``'s connections to ``peer_ip`` that sent no probe and were ESTABLISHED at the end of the run."""
    out = []
    for tl in run.timelines.sockets:
        s = tl.sock
        if s.host != host or s.peer_ip != peer_ip or s == probed or not tl.intervals:
            continue
        last = tl.intervals[-1]
        conn = run.connection(s)
        if last.state == "ESTABLISHED" and last.end is None and not any(
                p.probe for p in (conn.packets if conn else []) if p.tcp.src == s.local_ip):
            out.append(f"port {s.local_port}")
    return out
