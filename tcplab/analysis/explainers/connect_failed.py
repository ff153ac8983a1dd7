"""A connect() that failed: refused at once by an RST, or timed out after the SYN was retransmitted unanswered.

Speaks for every connection whose first packet is a SYN that was never answered with a SYN-ACK:
- the peer's kernel answered with an RST: no socket listened on that port (or a firewall rejected with a
  reset) - connect() fails at once with ECONNREFUSED;
- nothing came back: the client's kernel retransmitted its SYN on its own timer (the pattern of
  ``tcp_syn_retries`` and ``tcp_syn_linear_timeouts``, compared with the values the run read) until it gave
  up - connect() fails with ETIMEDOUT. A lab's firewall step that drops the client's packets is named.
A SYN flood's single SYNs (no socket sent them) are the syn_flood explainer's.
"""
from __future__ import annotations

from ...wire import ACK, RST, SYN
from ..kernel_timers import recorded_pattern
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import (Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, programs_said,
                   register, where)

SYN_SYSCTLS = ("net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syn_linear_timeouts")


@register
class ConnectFailed(Explainer):
    kind = "connect_failed"
    what = "connections that were never established"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for conn in run.traffic.connections:
            out.add(connect_finding(run, conn))
        return out


def _is_syn(p: Packet) -> bool:
    return bool(p.tcp.flags & SYN) and not p.tcp.flags & ACK


def connect_finding(run: RunEvidence, conn: Connection) -> Finding | None:
    if not conn.packets or not _is_syn(conn.packets[0]) or run.flooding(conn):
        return None  # a flood's SYNs meant no connection: the syn_flood explainer speaks of them
    first = conn.packets[0]
    client_ip, server_ip = first.tcp.src, first.tcp.dst
    if any(p.tcp.src == server_ip and p.tcp.flags & SYN for p in conn.packets):
        return None  # answered with a SYN-ACK: established (or at least accepted)
    syns = [p for p in conn.packets if p.tcp.src == client_ip and _is_syn(p)]
    rst = next((p for p in conn.packets if p.tcp.src == server_ip and p.tcp.flags & RST), None)
    host, peer, port = run.name(client_ip), run.name(server_ip), first.tcp.dport
    sock = SocketId(host, client_ip, first.tcp.sport, server_ip, port)
    t0 = run.t0
    facts = [Fact(f"{host} sent its SYN to {peer}:{port} at {fmt_t(first.ts, t0)} (packet #{first.n}).",
                  first.ts, f"pkt-{first.n}")]
    tl = run.timeline_of(sock)
    said = _program_says(run, host)
    if rst is not None:
        facts.append(Fact(f"{peer}'s kernel answered {fmt_span(rst.ts - first.ts)} later with {rst.label()} "
                          f"(packet #{rst.n}): no socket of {peer} accepts connections on port {port}.",
                          rst.ts, f"pkt-{rst.n}"))
        listening = _listeners(run, peer)
        if listening is not None:
            facts.append(Fact(f"{peer} listened on {', '.join(map(str, listening)) or 'no port'} (snapshots)"
                              + ("" if port in listening else f", not on {port}") + ".", None))
        if len(syns) == 1:
            facts.append(Fact(f"{host} did not retry: an RST ends the attempt at once.", None))
        if said.get("ECONNREFUSED"):
            facts.append(Fact(f"{said['ECONNREFUSED']}", None))
        title = f"{where(run, sock)}: connection refused in {fmt_span(rst.ts - first.ts)}"
        why = (f"Nothing listened on {peer}:{port}, so {peer}'s kernel answered the SYN with an RST ([R.]) and "
               f"{host}'s connect() failed at once with ECONNREFUSED (\"Connection refused\"). A firewall that "
               "REJECTs with tcp-reset looks the same on the wire.")
        fix = (f"Start the service on {peer}:{port}, or connect to the port it listens on. A refusal is fast and "
               "certain: clients can fail over at once.")
        return Finding("connect_failed", title, sock, "client", first.ts, rst.ts, f"RST from {peer}", facts, why, fix)
    gaps = [b.ts - a.ts for a, b in zip(syns, syns[1:])]
    facts.append(Fact(f"Nothing came back from {peer}. {host}'s kernel retransmitted the SYN {len(syns) - 1} "
                      f"time{'s' if len(syns) != 2 else ''}" + (f", {', '.join(fmt_span(g) for g in gaps)} apart"
                                                                if gaps else "") + ".",
                      syns[-1].ts, f"pkt-{syns[-1].n}"))
    pattern, unread = recorded_pattern("syn-backoff", SYN_SYSCTLS, run.info.get("sysctls"), host)
    if pattern is not None:
        agrees = len(pattern.gaps) == len(gaps) and all(abs(g - e) <= 0.1 + e / 8 for g, e in zip(gaps, pattern.gaps))
        facts.append(Fact(f"For {pattern.why} (read on {host}, run.json) Linux retransmits "
                          f"{len(pattern.gaps)} times, {', '.join(f'{g:g} s' for g in pattern.gaps)} apart, and "
                          f"gives up {pattern.gives_up:g} s after the first SYN: "
                          + ("this run agrees." if agrees else "this run differs."), None))
    else:
        facts.append(Fact(f"The run does not say which retry pattern to expect: {unread}.", None))
    gave_up = None
    if tl is not None:
        iv = next((i for i in tl.intervals if i.state == "SYN_SENT"), None)
        if iv is not None and iv.end is not None:
            gave_up = iv.end
            facts.append(Fact(f"{host}'s socket left SYN_SENT at {fmt_t(iv.end, t0)}, "
                              f"{fmt_span(iv.end - first.ts)} after the first SYN: the kernel gave up.", iv.end))
    wall = _firewall(run, peer, host, port)
    if wall:
        facts.append(Fact(wall, None))
    if said.get("ETIMEDOUT"):
        facts.append(Fact(said["ETIMEDOUT"], None))
    waited = fmt_span((gave_up or syns[-1].ts) - first.ts)
    title = f"{where(run, sock)}: SYN unanswered, connect() timed out after {waited}"
    flooders = sorted({run.name(src) for src, dst, p in run.floods if (dst, p) == (server_ip, port)})
    if flooders:
        facts.append(Fact(f"{peer}:{port} was under a SYN flood from {', '.join(flooders)} meanwhile: with its SYN "
                          "queue full and no SYN cookies its kernel drops every new SYN (see the SYN flood).", None))
    dropped = (f"{peer}'s kernel dropped them: its listener's SYN queue was full (a SYN flood) and it sends no SYN "
               "cookies" if flooders else "its packets were dropped on the way (a firewall that DROPs, or a host "
               "that is down or unreachable)")
    why = (f"{peer} never answered: {dropped}. {host}'s kernel cannot tell silence from loss, so it retransmits "
           "the SYN on its timer - 1 s apart for the first tcp_syn_linear_timeouts retries (kernels >= 6.5), then "
           "doubling - and after tcp_syn_retries gives up: connect() fails with ETIMEDOUT (\"Connection timed "
           "out\"). With the default of 6 retries that is 127-131 s.")
    fix = ("Open the path (the firewall rule, the route), or make the firewall REJECT so clients fail at once. "
           "Clients should not wait minutes: a connect timeout in the application (a non-blocking connect with a "
           "deadline), TCP_SYNCNT on the socket, or a smaller net.ipv4.tcp_syn_retries.")
    return Finding("connect_failed", title, sock, "client", first.ts, gave_up, "connect() timed out" if gave_up
                   else "", facts, why, fix)


def _listeners(run: RunEvidence, host: str) -> list[int] | None:
    """The ports ``host`` listened on for the lab's network in its last snapshot table (not loopback's: Docker's
    own DNS listens on 127.0.0.11); None when no snapshot has one."""
    found = None
    for snap in run.snapshots.values():
        tables = (snap.get("hosts") or {}).get(host) or {}
        for tool in ("netstat", "ss"):
            table = tables.get(tool)
            recs = table.get("records") if isinstance(table, dict) else None
            if recs:
                found = sorted({int(r["local_port"]) for r in recs if r.get("state") == "LISTEN"
                                and r.get("local_port") and not str(r.get("local_addr")).startswith("127.")})
                break
    return found


def _firewall(run: RunEvidence, peer: str, host: str, port: int) -> str | None:
    """The lab's firewall step that drops what ``host`` sends to ``peer``, in words."""
    if run.lab is None:
        return None
    for i, step in enumerate(run.lab.steps):
        action = getattr(step, "firewall", None)
        if action != "drop":
            continue
        on, frm, to, p = (getattr(step, "host", None), getattr(step, "from_", None), getattr(step, "to", None),
                          getattr(step, "port", None))
        if p not in (None, port):
            continue
        if (on == peer and frm in (None, host) and to is None) or (on == host and to in (None, peer) and frm is None):
            return (f"The lab's step {i} made {on}'s firewall drop "
                    + (f"the packets from {frm}" if frm else f"the packets to {to}" if to else "every packet")
                    + (f" on port {p}" if p else "") + ": the SYNs were dropped, silently.")
    return None


def _program_says(run: RunEvidence, host: str) -> dict[str, str]:
    """What a program of ``host`` printed about the failure, by errno name: ``telnet printed '...'`` (the
    programs' own logs, ``programs/<host>.<name>``)."""
    return programs_said(run, host, ("ECONNREFUSED", "ETIMEDOUT"))
