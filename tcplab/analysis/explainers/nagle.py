"""The 40 ms stall: Nagle's algorithm on one side waiting for the other side's delayed ACK.

Speaks for every socket whose small segment left only after a late bare ACK from the peer: the sender
wrote a small segment while an earlier small one was unacknowledged, so Nagle's algorithm held it; the
peer had nothing to send (its program waits for the whole request) and acknowledged the first segment
only when its delayed-ACK timer fired. Everything is read off the wire: the first segment, the peer's
bare ACK of it after the timer, the held segment leaving right after that ACK. A connection of the same
run whose small segments left back to back (Nagle off: TCP_NODELAY) is named as the comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from ...wire import ACK, FIN, RST, SYN
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import (Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, kernel_hz, register,
                   where)

DELACK_MIN = 0.040  # TCP_DELACK_MIN (HZ/25): the shortest delayed-ACK timer Linux sets
STALL_MIN = 0.010  # a bare ACK this late is a timer's, not the wire's (a bridge's round trip is ~0.1 ms)
PROMPT = 0.002  # "at once": a segment released by an ACK leaves within this long of it
DEFAULT_MSS = 536  # RFC 1122's default, when the handshake is not in the captures


@dataclass
class Stall:
    """A small segment (``first``), the peer's late bare ACK of it (``ack``), the next small segment
    (``held``) leaving right after that ACK."""
    first: Packet
    ack: Packet
    held: Packet

    @property
    def ack_delay(self) -> float:
        return self.ack.ts - self.first.ts

    @property
    def hold(self) -> float:
        return self.held.ts - self.first.ts


@dataclass
class Pairs:
    """What one sender did with pairs of small segments on one connection."""
    conn: Connection
    sender: str  # its address
    stalls: list[Stall]
    quick: list[tuple[Packet, Packet, Packet]]  # (first, the peer's prompt ACK, next): acked at once
    unheld: list[tuple[Packet, Packet]]  # (first, next): the second left before any ACK (Nagle off)
    replies: list[float]  # from a pair's first segment to the peer's next data

    @property
    def pairs(self) -> int:
        return len(self.stalls) + len(self.quick) + len(self.unheld)


def _mss(conn: Connection, sender: str) -> int:
    """The largest segment ``sender`` may send: the MSS its peer announced in the handshake."""
    for p in conn.packets:
        if p.tcp.flags & SYN and p.tcp.src != sender:
            for name, val in p.tcp.options:
                if name == "mss" and isinstance(val, int):
                    return val
    return DEFAULT_MSS


def small_pairs(conn: Connection, sender: str) -> Pairs:
    """Walk the connection: each small data segment of ``sender`` followed by its next small one, and what
    the peer did in between (a late bare ACK: a stall; a prompt one: quick-ACK; none: Nagle was off)."""
    mss = _mss(conn, sender)
    out = Pairs(conn, sender, [], [], [], [])
    first: Packet | None = None  # the sender's last small data segment, while the peer has sent no data
    ack: Packet | None = None  # the peer's first bare ACK that covers it
    first_end = 0  # first's rel_seq + its length
    for p in conn.packets:  # once per packet and sender: names bound locally
        t = p.tcp
        flags = t.flags
        if flags & (SYN | FIN | RST):
            first = ack = None
            continue
        size = len(t.payload)
        if t.src == sender:
            if not size:
                continue
            if first is not None and size < mss and p.rel_seq == first_end:
                if ack is None:
                    if p.ts - first.ts < PROMPT:
                        out.unheld.append((first, p))
                elif p.ts - ack.ts < PROMPT:
                    if ack.ts - first.ts >= STALL_MIN:
                        out.stalls.append(Stall(first, ack, p))
                    elif ack.ts - first.ts < PROMPT:
                        out.quick.append((first, ack, p))
            if size < mss:
                first, ack, first_end = p, None, p.rel_seq + size
            else:
                first = ack = None
        elif size:
            if first is not None:
                out.replies.append(p.ts - first.ts)
            first = ack = None  # the peer's data: a reply, which carries any ACK it owes
        elif first is not None and ack is None and flags & ACK and p.rel_ack >= first_end:
            ack = p
    return out


@register
class NagleStall(Explainer):
    kind = "nagle"
    what = "sockets whose small writes waited for a delayed ACK"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        every: list[Pairs] = []
        for conn in run.traffic.connections:
            for sender in (conn.key[0], conn.key[2]):
                pairs = small_pairs(conn, sender)
                if pairs.pairs:
                    every.append(pairs)
        stalled = [x for x in every if x.stalls]
        unheld = [x for x in every if x.unheld and not x.stalls]
        for x in stalled:
            if out.full():
                continue
            peers = {x.conn.key[0], x.conn.key[2]} - {x.sender}
            out.findings.append(nagle_finding(run, x, [c for c in unheld if peers & {c.conn.key[0], c.conn.key[2]}]))
        return out


def _sock(run: RunEvidence, conn: Connection, sender: str) -> SocketId:
    k = conn.key
    local, peer = ((k[0], k[1]), (k[2], k[3])) if k[0] == sender else ((k[2], k[3]), (k[0], k[1]))
    return SocketId(run.name(local[0]), local[0], local[1], peer[0], peer[1])


def _span_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return fmt_span(lo) if hi - lo < 5e-4 else f"{fmt_span(lo)} to {fmt_span(hi)}"


def _unheld_words(run: RunEvidence, x: Pairs) -> str:
    s = _sock(run, x.conn, x.sender)
    gaps = [b.ts - a.ts for a, b in x.unheld]
    text = (f"{s.host}:{s.local_port} → {run.name(s.peer_ip)}:{s.peer_port} sent {len(x.unheld)} small segment"
            f"{'s' if len(x.unheld) != 1 else ''} right behind an unacknowledged small one (median gap "
            f"{fmt_span(median(gaps))}): Nagle's algorithm was off on that socket (TCP_NODELAY), nothing waited")
    if x.replies:
        text += f"; {run.name(s.peer_ip)} answered each request in {fmt_span(median(x.replies))} (median)"
    return text


def nagle_finding(run: RunEvidence, x: Pairs, controls: list[Pairs]) -> Finding:
    s = _sock(run, x.conn, x.sender)
    t0, host, peer = run.t0, s.host, run.name(s.peer_ip)
    first = x.stalls[0]
    delays = [st.ack_delay for st in x.stalls]
    holds = [st.hold for st in x.stalls]
    facts = [
        Fact(f"{host} sent {len(first.first.tcp.payload)} bytes at {fmt_t(first.first.ts, t0)} ({first.first.label()}, "
             f"packet #{first.first.n}); its next {len(first.held.tcp.payload)} bytes left only at "
             f"{fmt_t(first.held.ts, t0)} (packet #{first.held.n}), {fmt_span(first.hold)} later.",
             first.first.ts, f"pkt-{first.first.n}"),
        Fact(f"{peer}'s kernel acknowledged the first segment at {fmt_t(first.ack.ts, t0)} with a bare ACK "
             f"({first.ack.label()}, packet #{first.ack.n}), {fmt_span(first.ack_delay)} after it arrived and "
             f"carrying no data: its delayed-ACK timer fired. {peer} had nothing to send until the rest came "
             "(its program answers whole requests only).", first.ack.ts, f"pkt-{first.ack.n}"),
        Fact(f"The held segment left {fmt_span(first.held.ts - first.ack.ts)} after that ACK (packet "
             f"#{first.held.n}): Nagle's algorithm releases a small segment once no earlier small one is "
             "unacknowledged.", first.held.ts, f"pkt-{first.held.n}"),
        Fact(f"{len(x.stalls)} of {x.pairs} pairs of small segments {host} sent on this connection waited like this: "
             f"the ACK came {_span_range(delays)} after the first segment (median {fmt_span(median(delays))}), "
             f"{fmt_span(sum(holds))} of waiting in all.", None),
    ]
    if x.quick:
        q = x.quick[0]
        text = (f"{len(x.quick)} pair{'s' if len(x.quick) != 1 else ''} did not wait (the first at "
                f"{fmt_t(q[0].ts, t0)}, packet #{q[0].n}): {peer} acknowledged at once, within "
                f"{fmt_span(max(a.ts - f.ts for f, a, _ in x.quick))}. Linux starts a connection in quick-ACK "
                "mode and delays ACKs once the connection turns interactive (its side answers soon after "
                "receiving")
        thresh = run.sysctl(peer, "net.ipv4.tcp_pingpong_thresh")
        if thresh is not None:
            text += (f"; net.ipv4.tcp_pingpong_thresh on {peer} is {thresh} "
                     f"({run.sysctl_source(peer, 'net.ipv4.tcp_pingpong_thresh')}): that many answers")
        facts.append(Fact(text + ").", q[0].ts, f"pkt-{q[0].n}"))
    hz = kernel_hz(run.info)
    timer = (f"Linux's shortest delayed-ACK timer is {DELACK_MIN * 1e3:.0f} ms (TCP_DELACK_MIN, HZ/25), the one it "
             "sets on an interactive connection like this one")
    if hz is not None:
        timer += (f". This kernel runs at HZ={hz[0]} ({hz[1]}): the timer fires on a {1e3 / hz[0]:g} ms tick, a tick "
                  "or two after the 40 ms")
    facts.append(Fact(timer + f"; here the ACKs came {_span_range(delays)} after the segments they acknowledged.",
                      None))
    for c in controls[:2]:
        facts.append(Fact("Compare: " + _unheld_words(run, c) + ".", c.unheld[0][0].ts, f"pkt-{c.unheld[0][0].n}"))
    counted = run.counter_change(peer, "TcpExtDelayedACKs")
    if counted is not None:
        n, first_snap, last_snap = counted
        facts.append(Fact(f"{peer}'s kernel counted {n} ACK{'s' if n != 1 else ''} sent by its delayed-ACK timer "
                          f"(TcpExtDelayedACKs, snapshot {first_snap} to {last_snap}), against {len(x.stalls)} held "
                          f"segment{'s' if len(x.stalls) != 1 else ''} on this connection.", None, f"snap-{last_snap}"))
    if x.replies:
        facts.append(Fact(f"Once the last piece of a request was in, {peer} answered in {fmt_span(median(x.replies))} "
                          "(median): the waiting was all in the held segment.", None))
    title = (f"{where(run, s)}: {len(x.stalls)} small write{'s' if len(x.stalls) != 1 else ''} held "
             f"{fmt_span(median(holds))} each by Nagle's algorithm, waiting for {peer}'s delayed ACK")
    why = (f"Two rules, each sensible alone, wait for each other. Nagle's algorithm (RFC 896) on {host}'s socket "
           "holds a small segment while an earlier small one is unacknowledged, to save packets (Linux applies "
           "Minshall's variant: only an unacknowledged small segment holds the next one). Delayed ACK (RFC 1122 "
           f"4.2.3.2) on {peer} holds the ACK of a segment, hoping to send it with data, for at least "
           f"{DELACK_MIN * 1e3:.0f} ms on Linux. {host} wrote a request in two small pieces; {peer}'s program "
           "answers only once it has the whole request, so it has no data to carry the ACK until the second piece "
           "comes, and the second piece waits for that ACK. Each request costs the timer, tens of milliseconds, "
           "where the network needs a fraction of one.")
    fix = (f"Write each request in one call (build it in a buffer, or writev()): one segment, nothing to hold, and "
           f"half the packets. Or set TCP_NODELAY on {host}'s socket (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, "
           "&one, sizeof one)), as most RPC and HTTP clients do; TCP_CORK or MSG_MORE to batch writes and flush "
           f"once. TCP_QUICKACK on {peer} only lasts until its next read and does not fix the pattern.")
    return Finding("nagle", title, s, run.side(s), first.first.ts, x.stalls[-1].held.ts, "", facts, why, fix)
