"""A SYN flood: a listener's SYN queue filled by handshakes that are never completed.

Speaks for each listener that received a flood (:attr:`RunEvidence.floods`: at least ``FLOOD_SYNS`` single SYNs
from one source, none retransmitted, none completed). It says how many SYNs came from whom and how fast; how
the listener met them, as the capture shows and its counters say: answered in full while its SYN queue had
room (those half-open entries wait for their SYN-ACK retries to run out: the snapshots' SYN_RECV sockets),
then with SYN cookies (TcpExtSyncookiesSent; to a SYN without timestamps the cookie SYN-ACK carries the MSS
alone) or by dropping them (TcpExtTCPReqQFullDrop, TcpExtListenDrops); the tcp_syncookies and somaxconn the
run read; and what became of the other clients of that listener meanwhile: completed through a cookie
(TcpExtSyncookiesRecv) or left unanswered.
"""
from __future__ import annotations

from ...wire import ACK, SYN
from ..packets import Connection, Packet
from ..timeline import SocketId, snapshot_order
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, register

COOKIE_LOST = ("wscale", "sackOK")  # what a SYN cookie cannot keep unless a timestamp carries it


@register
class SynFlood(Explainer):
    kind = "syn_flood"
    what = "listeners flooded with SYNs"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for (src, dst, port), conns in sorted(run.floods.items()):
            out.add(flood_finding(run, src, dst, port, conns))
        return out


def _names(p: Packet) -> list[str]:
    return [name for name, _ in p.tcp.options]


def _synacks(conns: list[Connection], listener: str) -> list[Packet]:
    return [p for c in conns for p in c.packets if p.tcp.src == listener and p.tcp.flags & (SYN | ACK) == SYN | ACK]


def _syn_recv(run: RunEvidence, host: str, ip: str, port: int, src: str) -> tuple[str, int] | None:
    """The snapshot with the most SYN_RECV sockets of ``host``:``port`` from ``src``, and how many."""
    best: tuple[str, int] | None = None
    for name, _ in snapshot_order(run.snapshots):
        n = sum(1 for x in run.rows if x.snapshot == name and x.host == host and x.state == "SYN_RECV"
                and (x.local_ip, x.local_port, x.peer_ip) == (ip, port, src))
        if n and (best is None or n > best[1]):
            best = (name, n)
    return best


def flood_finding(run: RunEvidence, src: str, dst: str, port: int, conns: list[Connection]) -> Finding:
    t0 = run.t0
    host, attacker = run.name(dst), run.name(src)
    syns = sorted((c.packets[0] for c in conns), key=lambda p: p.ts)
    start, end = syns[0].ts, syns[-1].ts
    facts = [Fact(f"{attacker} sent {len(syns)} SYNs to {host}:{port} in {fmt_span(end - start)} from "
                  f"{fmt_t(start, t0)}, each from a source port of its own, and completed none: no ACK of a "
                  "SYN-ACK, no retransmission (no socket of its kernel sent them).", start, f"pkt-{syns[0].n}")]
    answers = _synacks(conns, dst)
    answered = {id(p.conn) for p in answers}
    offered = [p for p in syns if set(COOKIE_LOST) <= set(_names(p)) and "TS" not in _names(p)]
    bare = [p for p in answers if not set(COOKIE_LOST) & set(_names(p))]
    full = {id(p.conn) for p in answers if set(COOKIE_LOST) <= set(_names(p))}
    if full:
        facts.append(Fact(f"{host} answered {len(full)} of them in full while its SYN queue had room: those "
                          "handshakes wait half-open in the queue until their SYN-ACK retries run out "
                          f"(tcp_synack_retries {run.sysctl(host, 'net.ipv4.tcp_synack_retries') or '?'})."))
    if offered and bare:
        first = min(bare, key=lambda p: p.ts)
        facts.append(Fact(f"{len(bare)} SYN-ACKs carried {', '.join(sorted(set(_names(first))))} alone "
                          f"(first: {first.label()}, packet #{first.n}), though each SYN offered window scaling and "
                          "SACK without timestamps: SYN cookies, which keep the MSS only.", first.ts,
                          f"pkt-{first.n}"))
    unanswered = len(syns) - len(answered)
    if unanswered:
        facts.append(Fact(f"{unanswered} SYNs were never answered: {host} dropped them."))
    queued = _syn_recv(run, host, dst, port, src)
    if queued is not None:
        facts.append(Fact(f"Snapshot {queued[0]} shows {queued[1]} SYN_RECV sockets of {host}:{port} from {attacker}: "
                          "the queue's half-open entries.", None, f"snap-{queued[0]}"))
    rose = {}
    for counter in ("TcpExtSyncookiesSent", "TcpExtTCPReqQFullDoCookies", "TcpExtTCPReqQFullDrop",
                    "TcpExtListenDrops", "TcpExtSyncookiesRecv"):
        change = run.counter_change(host, counter)
        if change is not None and change[0] > 0:
            rose[counter] = change[0]
            facts.append(Fact(f"{host}'s {counter} rose by {change[0]} from snapshot {change[1]} to {change[2]}."))
    cookies = run.sysctl(host, "net.ipv4.tcp_syncookies")
    backlog = run.sysctl(host, "net.core.somaxconn")
    facts.append(Fact(f"{host}'s tcp_syncookies is {cookies or 'unknown'}, net.core.somaxconn {backlog or 'unknown'} "
                      f"({run.sysctl_source(host, 'net.ipv4.tcp_syncookies')}): the SYN queue holds about the "
                      "listen() backlog, capped by somaxconn."))
    others = [c for c in run.traffic.connections if (c.key[2], c.key[3]) == (dst, port) and c.key[0] != src
              and c.packets and start <= c.packets[0].ts and not run.flooding(c)]
    for c in others[:3]:
        who = c.client or c.key[0]
        completed = any(p.tcp.src == c.key[0] and p.tcp.flags & ACK for p in c.packets) and any(
            p.tcp.src == dst and p.tcp.flags & SYN for p in c.packets)
        if completed:
            synack = next(p for p in c.packets if p.tcp.src == dst and p.tcp.flags & SYN)
            facts.append(Fact(f"{who} connected from port {c.key[1]} meanwhile and its handshake completed "
                              f"({synack.label()}, options {', '.join(_names(synack))}, packet #{synack.n})"
                              + (": through a cookie (TcpExtSyncookiesRecv)." if rose.get("TcpExtSyncookiesRecv")
                                 else "."), synack.ts, f"pkt-{synack.n}"))
        else:
            tries = [p for p in c.packets if p.tcp.src == c.key[0] and p.tcp.flags & SYN]
            facts.append(Fact(f"{who} connected from port {c.key[1]} meanwhile: {len(tries)} SYNs, none answered.",
                              tries[-1].ts if tries else None))
    if cookies == "0" or (rose.get("TcpExtTCPReqQFullDrop") and not rose.get("TcpExtSyncookiesSent")):
        why = (f"{host}'s SYN queue for port {port} was full of {attacker}'s half-open handshakes, and without SYN "
               "cookies (tcp_syncookies=0) the kernel drops every further SYN while it is full: a legitimate "
               "client's SYN as well as the flood's. The client retransmits on its SYN backoff and gives up with "
               "ETIMEDOUT; the entries leave the queue only when their SYN-ACK retries run out (about a minute).")
    else:
        why = (f"{host}'s SYN queue for port {port} was full of {attacker}'s half-open handshakes. With "
               "tcp_syncookies on the kernel answers every further SYN anyway: the SYN-ACK's sequence number is a "
               "cookie (a hash of the connection, a coarse time and the MSS) and nothing is stored; an ACK that "
               "brings the cookie back becomes a connection. The flood costs the listener no memory and a "
               "legitimate client still gets in; what the cookie cannot keep is window scaling and SACK, unless "
               "the SYN had timestamps, whose low bits carry them.")
    fix = ("Keep net.ipv4.tcp_syncookies=1 (the kernel's default: cookies only when the queue is full); give the "
           "listener a backlog that fits its bursts (listen()'s backlog and net.core.somaxconn, "
           "net.ipv4.tcp_max_syn_backlog); stop the flood before the host (rate limits, SYNPROXY, a scrubbing "
           "service). Clients that send timestamps (Linux's default) keep window scaling and SACK through a cookie.")
    sock = SocketId(host, dst, port, src, 0)
    title = (f"{host} {dst}:{port} ← {attacker} {src}: SYN flood, {len(syns)} SYNs"
             + (f", {rose['TcpExtSyncookiesSent']} answered with SYN cookies" if rose.get("TcpExtSyncookiesSent")
                else f", {unanswered} dropped" if unanswered else ""))
    return Finding("syn_flood", title, sock, "server", start, end, "", facts, why, fix)
