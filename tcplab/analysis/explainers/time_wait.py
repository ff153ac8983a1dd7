"""TIME_WAIT: the side that closed first keeps the connection's four-tuple for 60 s.

Speaks for every socket the run shows in TIME_WAIT (from the tracer's
transitions or the snapshots' timewait sockets): which side closed first
(whose FIN came first on the wire), since when, how long the kernel's own
timer said was left, and, when many pile up, what that costs in local ports.
"""
from __future__ import annotations

from collections import Counter

from ..timeline import Interval, SocketTimeline, timer_left
from .base import (Explainer, Fact, Finding, Result, RunEvidence, ack_of, fmt_span, fmt_t, is_fin, last_timer,
                   packets_from, register, where)

TIMEWAIT_LEN = 60.0  # TCP_TIMEWAIT_LEN: compiled into Linux, not a sysctl
MAX_TIME_WAIT = 5  # TIME_WAIT comes in crowds: explain a few, count the rest


@register
class TimeWait(Explainer):
    kind = "time_wait"
    what = "sockets in TIME_WAIT"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        found = [(tl, iv) for tl in run.timelines.sockets for iv in tl.intervals if iv.state == "TIME_WAIT"]
        crowd = Counter((tl.sock.host, tl.sock.peer_ip, tl.sock.peer_port) for tl, _ in found)
        for tl, iv in found:
            if out.full(MAX_TIME_WAIT):
                continue
            n = crowd[(tl.sock.host, tl.sock.peer_ip, tl.sock.peer_port)]
            out.findings.append(time_wait_finding(run, tl, iv, n))
        return out


def time_wait_finding(run: RunEvidence, tl: SocketTimeline, iv: Interval, crowd: int) -> Finding:
    s = tl.sock
    t0, host, peer = run.t0, s.host, run.name(s.peer_ip)
    conn = run.connection(s)
    side = run.side(s)
    facts: list[Fact] = []
    own_fin = next((p for p in packets_from(conn, s.local_ip) if is_fin(p)), None)
    peer_fin = next((p for p in packets_from(conn, s.peer_ip) if is_fin(p)), None)
    if own_fin is not None and peer_fin is not None:
        first, second = (own_fin, peer_fin) if own_fin.n < peer_fin.n else (peer_fin, own_fin)
        if first is own_fin:
            facts.append(Fact(f"{host} closed first: its FIN at {fmt_t(own_fin.ts, t0)} (packet #{own_fin.n}) came "
                              f"{fmt_span(peer_fin.ts - own_fin.ts)} before {peer}'s FIN (packet #{peer_fin.n}).",
                              own_fin.ts, f"pkt-{own_fin.n}"))
        else:
            facts.append(Fact(f"Both ends sent their FIN at nearly the same time ({peer}'s first, packet #{first.n}; "
                              f"{host}'s packet #{second.n}): a simultaneous close puts both in TIME_WAIT.",
                              first.ts, f"pkt-{first.n}"))
        ack = ack_of(conn, peer_fin)
        if ack is not None and ack.tcp.src == s.local_ip:
            facts.append(Fact(f"{host} acknowledged {peer}'s FIN at {fmt_t(ack.ts, t0)} ({ack.label()}, packet "
                              f"#{ack.n}): the last packet of the connection; from here {host} waits.",
                              ack.ts, f"pkt-{ack.n}"))
    elif own_fin is not None:
        facts.append(Fact(f"{host} sent its FIN at {fmt_t(own_fin.ts, t0)} (packet #{own_fin.n}); {peer}'s FIN is not "
                          "in the captures.", own_fin.ts, f"pkt-{own_fin.n}"))
    how = {"tracepoint": "the kernel tracepoint", "timewait": "the snapshots (a timewait socket)"}.get(iv.source,
                                                                                                      "the snapshots")
    if iv.source == "timewait" and iv.note:  # derived: the note says from what (tcplab/observe/timewait.py)
        facts.append(Fact(f"{host}'s socket entered TIME_WAIT at {fmt_t(iv.start, t0)}, {iv.note}.", iv.start))
    else:
        facts.append(Fact(f"{host}'s socket entered TIME_WAIT at {fmt_t(iv.start, t0)} (seen by {how}).", iv.start))
    timer = last_timer(run.rows, s)
    if timer:
        left = timer_left(timer[1])
        text = f"ss showed timer:({timer[1]}) at snapshot {timer[0]}"
        if left:
            text += f": {fmt_span(left[1])} left of the kernel's 60 s"
        facts.append(Fact(text + ".", None, f"snap-{timer[0]}"))
    if iv.end is None:
        facts.append(Fact(f"It is still in TIME_WAIT at the end of the run, {fmt_span(run.timelines.end - iv.start)} "
                          "after it began.", run.timelines.end))
    else:
        inexact = (" (by its timer; derived, not traced)" if iv.ended_by == "timewait timer expired" else
                   " (or earlier: the next snapshot no longer lists it)")
        facts.append(Fact(f"It was gone at {fmt_t(iv.end, t0)}, {fmt_span(iv.end - iv.start)} after it began"
                          f"{'' if iv.end_exact else inexact}.", iv.end))
    rng = run.sysctl(host, "net.ipv4.ip_local_port_range")
    if crowd > 1 or rng:
        text = (f"{crowd} socket{'s' if crowd != 1 else ''} of {host} to {peer}:{s.peer_port} went through TIME_WAIT "
                "in this run")
        ports = _port_count(rng)
        if ports is not None:
            src = run.sysctl_source(host, "net.ipv4.ip_local_port_range")
            text += (f"; net.ipv4.ip_local_port_range on {host} is {rng} ({src}): "
                     f"{ports} local ports, so at most {ports} connections to one destination can be in TIME_WAIT at "
                     "once before connect() fails with EADDRNOTAVAIL")
        facts.append(Fact(text + ".", None))

    dur = (iv.end if iv.end is not None else run.timelines.end) - iv.start
    title = f"{where(run, s)}: TIME_WAIT for {fmt_span(dur)}" + (
        ", still at the end of the run" if iv.end is None else "")
    why = (f"Only the side that sends the first FIN enters TIME_WAIT, and Linux keeps it for {TIMEWAIT_LEN:.0f} s "
           "(TCP_TIMEWAIT_LEN, "
           "compiled in; net.ipv4.tcp_fin_timeout does not change it), so that late segments of this connection die "
           "out before the same four-tuple can carry a new one. It is normal: the socket holds no application "
           f"resources, but it holds {host}'s local port {s.local_port} toward {peer}:{s.peer_port}.")
    if side == "client":
        fix = ("Nothing is broken. If TIME_WAIT sockets pile up on a client: reuse connections (keep-alive, a "
               "connection pool) instead of opening one per request; net.ipv4.tcp_tw_reuse = 1 lets connect() reuse a "
               "TIME_WAIT port for a new outgoing connection (timestamps on); widen net.ipv4.ip_local_port_range. Do "
               "not cut it short with SO_LINGER {on, 0}: close() then sends an RST instead of a FIN.")
    else:
        fix = ("Nothing is broken. A server that closes first keeps one TIME_WAIT per client connection; to avoid "
               "that, let the client close first (the server then passes through CLOSE_WAIT and LAST_ACK and keeps "
               "nothing), or keep connections alive. Do not cut it short with SO_LINGER {on, 0}: close() then sends "
               "an RST instead of a FIN.")
    return Finding("time_wait", title, s, side, iv.start, iv.end, iv.ended_by, facts, why, fix)


def _port_count(rng: str | None) -> int | None:
    try:
        lo, hi = (int(x) for x in (rng or "").split())
    except ValueError:
        return None
    return hi - lo + 1 if hi >= lo else None
