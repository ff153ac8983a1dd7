"""A zero window: a receiver whose buffer is full tells the sender to stop, and the sender probes until it opens.

Speaks for every connection on which a host advertised a window of 0 (an ACK, not a SYN or an RST): when it
closed, the Recv-Q the snapshots show on that host's socket (what its program had not read), the other
side's window probes (zero-length segments with seq = snd_una - 1) and their gaps (the persist timer: one RTO,
then doubling), the TcpExtTCPWinProbe count, and whether the window opened again (the first ACK with a window)
and the data flowed, or was still shut at the end of the run.
"""
from __future__ import annotations

from ...wire import RST, SYN
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, register, where


@register
class ZeroWindow(Explainer):
    kind = "zero_window"
    what = "connections whose receive window closed"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for conn in run.traffic.connections:
            for ip in sorted({p.tcp.src for p in conn.packets if p.tcp.win == 0 and _zero(p)}):  # win first: cheap
                out.add(zero_window_finding(run, conn, ip))
        return out


def _zero(p: Packet) -> bool:
    return p.tcp.win == 0 and not p.tcp.flags & (SYN | RST)


def zero_window_finding(run: RunEvidence, conn: Connection, ip: str) -> Finding | None:
    """``ip`` (the receiver) advertised a zero window on ``conn``."""
    closed = next((p for p in conn.packets if p.tcp.src == ip and _zero(p)), None)
    if closed is None:
        return None
    sender_ip = closed.tcp.dst
    receiver, sender = run.name(ip), run.name(sender_ip)
    sock = SocketId(sender, sender_ip, closed.tcp.dport, ip, closed.tcp.sport)  # the side that must wait
    t0 = run.t0
    opened = next((p for p in conn.packets if p.tcp.src == ip and p.n > closed.n and p.tcp.win > 0
                   and not p.tcp.flags & RST), None)
    until = opened.ts if opened is not None else None
    probes = [p for p in conn.packets if p.tcp.src == sender_ip and p.probe and p.n > closed.n
              and (opened is None or p.n < opened.n)]
    facts = [Fact(f"{receiver} advertised a zero window at {fmt_t(closed.ts, t0)} ({closed.label()}, packet "
                  f"#{closed.n}): its receive buffer was full of data its program had not read, so {sender} may send "
                  "nothing more.", closed.ts, f"pkt-{closed.n}")]
    held = [row for row in run.rows_of(SocketId(receiver, ip, closed.tcp.sport, sender_ip, closed.tcp.dport))
            if row.recv_q and row.time > closed.ts and (until is None or row.time < until)]
    if held:
        row = held[0]
        facts.append(Fact(f"The snapshot {row.snapshot} shows {row.recv_q} bytes unread in the Recv-Q of {receiver}'s "
                          "socket.", row.time, f"snap-{row.snapshot}"))
    if probes:
        gaps = [b.ts - a.ts for a, b in zip(probes, probes[1:])]
        text = (f"{sender} sent {len(probes)} window probe{'s' if len(probes) != 1 else ''} (zero-length, seq = "
                f"snd_una - 1, which {receiver} must answer with its window): the first "
                f"{fmt_span(probes[0].ts - closed.ts)} after the zero window (one RTO, at least 200 ms)")
        if gaps:
            text += f", then {', '.join(fmt_span(g) for g in gaps)} apart: the persist timer doubles each time"
        change = run.counter_change(sender, "TcpExtTCPWinProbe", until=until)
        if change is not None:
            text += f"; TcpExtTCPWinProbe on {sender} rose by {change[0]} from {change[1]} to {change[2]}"
        facts.append(Fact(text + ".", probes[-1].ts, f"pkt-{probes[-1].n}"))
    if opened is not None:
        resumed = next((p for p in conn.packets if p.tcp.src == sender_ip and p.n > opened.n and p.tcp.payload), None)
        text = (f"The window opened at {fmt_t(opened.ts, t0)} ({opened.label()}, packet #{opened.n}), "
                f"{fmt_span(opened.ts - closed.ts)} after it closed: {receiver}'s program read")
        if resumed is not None:
            text += f", and {sender}'s data flowed again {fmt_span(resumed.ts - opened.ts)} later (packet #{resumed.n})"
        facts.append(Fact(text + ". Nothing was lost and nothing timed out.", opened.ts, f"pkt-{opened.n}"))
        state = f"open again after {fmt_span(opened.ts - closed.ts)}"
    else:
        facts.append(Fact("The window was still shut at the end of the run; the connection stays alive as long as the "
                          "probes are answered.", None))
        state = "still shut at the end"
    title = f"{where(run, sock)}: {receiver}'s zero window, {len(probes)} window probes, {state}"
    why = (f"{receiver}'s program did not read as fast as {sender} wrote: the kernel buffered what arrived until its "
           "receive buffer (SO_RCVBUF) was full, then advertised a window of 0. TCP's flow control: the sender must "
           "wait, and since the window update that ends the wait could be lost, it probes, first after one RTO, then "
           "ever more rarely (the RTO doubling up to 120 s). A probe that is answered keeps the connection alive: a "
           "zero window never times out while the receiver's kernel is there, however long its program sleeps.")
    fix = (f"This is TCP working as designed: the bottleneck is {receiver}'s program. Make it read (or read sooner, "
           "on its own thread); a larger SO_RCVBUF only absorbs a longer pause. A writer that must not block "
           "indefinitely needs its own timeout (a non-blocking write with a deadline), since TCP will wait for ever.")
    return Finding("zero_window", title, sock, run.side(sock), closed.ts, until, "the window opened" if opened else "",
                   facts, why, fix)
