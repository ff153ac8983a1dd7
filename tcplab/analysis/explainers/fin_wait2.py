"""FIN_WAIT2 that lingers: this side's FIN was acked and the peer's FIN does not come.

Speaks for a socket that stayed in FIN_WAIT2 for :data:`LINGER` or longer (or
to the end of the run). It tells an orphan (the application closed the
socket: Linux keeps it as a timewait socket for ``tcp_fin_timeout`` and then
drops it without a packet; Windows resets the connection) from a socket the
application still holds after shutdown() (no timer at all).
"""
from __future__ import annotations

from ...peers.windows import DEFAULT_FIN_WAIT2_TIMEOUT as WINDOWS_DEFAULT
from ..timeline import Interval, SocketTimeline, timer_left
from .base import (LINGER, Explainer, Fact, Finding, Result, RunEvidence, ack_of, fmt_span, fmt_t,
                   is_fin, is_rst, last_timer, packets_from, register, where)


@register
class FinWait2(Explainer):
    kind = "fin_wait2"
    what = "sockets in FIN_WAIT2"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for tl in run.timelines.sockets:
            for iv in tl.intervals:
                if iv.state != "FIN_WAIT2":
                    continue
                if iv.end is not None and iv.end - iv.start < LINGER:
                    out.normal.append(iv.end - iv.start)
                    continue
                if not out.full():
                    out.findings.append(fin_wait2_finding(run, tl, iv))
        return out


def _orphan(iv: Interval) -> bool:
    return "orphaned" in iv.note or iv.source == "timewait"


def fin_wait2_finding(run: RunEvidence, tl: SocketTimeline, iv: Interval) -> Finding:
    s = tl.sock
    t0, host, peer = run.t0, s.host, run.name(s.peer_ip)
    conn = run.connection(s)
    facts: list[Fact] = []
    fin = next((p for p in packets_from(conn, s.local_ip) if is_fin(p)), None)
    if fin is not None:
        ack = ack_of(conn, fin)
        text = f"{host} sent its FIN at {fmt_t(fin.ts, t0)} ({fin.label()}, packet #{fin.n})"
        if ack is not None:
            text += f"; {peer} acknowledged it {fmt_span(ack.ts - fin.ts)} later (packet #{ack.n})"
        facts.append(Fact(text + ".", fin.ts, f"pkt-{fin.n}"))
    src = "the kernel tracepoint" if iv.source in ("tracepoint", "timewait") else "the snapshots"
    facts.append(Fact(f"{host}'s socket was in FIN_WAIT2 from {fmt_t(iv.start, t0)} ({src}): its own direction "
                      f"is closed and acknowledged, and it waits for {peer}'s FIN.", iv.start))

    orphan = _orphan(iv)
    mine = run.rows_of(s)
    owners = sorted({f"{x.pid}/{x.program}" for x in mine if x.pid is not None})
    fto = run.sysctl(host, "net.ipv4.tcp_fin_timeout")
    if orphan:
        text = ("Its application had already closed the socket: it is an orphan. The tracepoint shows FIN_WAIT2 → "
                "CLOSE when the kernel swapped the full socket for a timewait socket, which netstat and ss go on "
                "listing as FIN_WAIT2")
        timer = last_timer(run.rows, s)
        if timer:
            left = timer_left(timer[1])
            text += f" (ss: timer:({timer[1]}) at snapshot {timer[0]}" + (f", {fmt_span(left[1])} left" if left else "")
            text += ")"
        facts.append(Fact(text + ".", iv.start, f"snap-{timer[0]}" if timer else None))
    elif owners:
        facts.append(Fact(f"It still belongs to {', '.join(owners)} in the snapshots: the program shut down its "
                          "sending side (shutdown()) but has not closed the socket.", mine[0].time,
                          f"snap-{mine[0].snapshot}"))

    peer_pkts = [p for p in packets_from(conn, s.peer_ip) if fin is None or p.n > fin.n]
    peer_fin = next((p for p in peer_pkts if is_fin(p)), None)
    other = run.other_end(s)
    cw = other.first("CLOSE_WAIT") if other is not None else None
    if peer_fin is None and conn is not None:
        n = len(peer_pkts)
        text = (f"{peer} never sent its FIN ({n} packet{'s' if n != 1 else ''} from {peer} after {host}'s FIN, "
                "none with F)")
        if cw is not None:
            text += f"; its socket sat in CLOSE_WAIT from {fmt_t(cw.start, t0)}: {peer}'s side never closed"
        facts.append(Fact(text + ".", None))

    timeout = run.fin_wait2_reset(host)  # its FIN_WAIT_2 timer: a Windows peer's
    windows = timeout is not None
    rst = next((p for p in packets_from(conn, s.local_ip) if is_rst(p) and p.ts >= iv.start - 0.001), None)
    ended_by = ""
    if iv.end is None:
        facts.append(Fact(f"It is still in FIN_WAIT2 at the end of the run, {fmt_span(run.timelines.end - iv.start)} "
                          "after it began.", run.timelines.end))
    elif rst is not None and (iv.ended_by == "reset sent" or abs(rst.ts - iv.end) < 0.5):
        ended_by = f"RST from {host}"
        text = f"It ended at {fmt_t(rst.ts, t0)} when {host} reset the connection ({rst.label()}, packet #{rst.n}"
        text += f", {fmt_span(rst.ts - fin.ts)} after its FIN)" if fin is not None else ")"
        facts.append(Fact(text + ".", rst.ts, f"pkt-{rst.n}"))
    elif iv.ended_by == "timewait timer expired":
        ended_by = "its timer (no packet)"
        facts.append(Fact(f"Its timer expired at about {fmt_t(iv.end, t0)} ({fmt_span(iv.end - iv.start)} after it "
                          f"began) and the kernel dropped it without sending anything: no RST from {host} is in the "
                          "captures.", iv.end))
    else:
        ended_by = iv.ended_by or "gone"
        facts.append(Fact(f"It was gone at {fmt_t(iv.end, t0)}"
                          f"{'' if iv.end_exact else ' (or earlier: the next snapshot no longer lists it)'}"
                          + (f", with no RST from {host} in the captures" if conn is not None and rst is None else "")
                          + ".", iv.end))

    if timeout is not None:
        facts.append(Fact(f"{host} emulates Windows, whose FIN_WAIT_2 timer resets the connection "
                          f"{fmt_span(timeout)} after its FIN (peer.fin_wait2_timeout in this run's lab.yaml; "
                          f"Windows' default is {WINDOWS_DEFAULT:g} s).", None))
    elif fto is not None:
        src = run.sysctl_source(host, "net.ipv4.tcp_fin_timeout")
        facts.append(Fact(f"net.ipv4.tcp_fin_timeout on {host} is {fto} s ({src}; "
                          "60 s by default): how long Linux keeps an orphaned FIN_WAIT2.", None))

    dur = (iv.end if iv.end is not None else run.timelines.end) - iv.start
    title = f"{where(run, s)}: FIN_WAIT2 for {fmt_span(dur)}" + (
        f", until {ended_by}" if ended_by else ", still at the end of the run" if iv.end is None else "")
    why = (f"FIN_WAIT2 means {host} has closed its direction (its FIN was acknowledged) and waits for {peer}'s FIN. "
           f"{peer} did not send one" + (", because its application never closed its socket" if cw is not None else "")
           + ".")
    if orphan:
        lim = f"{fto} s here" if fto is not None else "60 s by default"
        why += (" No application holds this socket any more, so the operating system bounds the wait: Linux drops an "
                f"orphaned FIN_WAIT2 silently after net.ipv4.tcp_fin_timeout ({lim}); Windows resets the connection "
                f"when its FIN_WAIT_2 timer expires ({WINDOWS_DEFAULT:g} s by default).")
    elif owners:
        why += (" The application still holds the socket after shutdown(), so no timer applies: it waits as long as "
                "that.")
    if windows:
        fix = (f"Nothing to fix on {host}: its timer is how Windows gives up. The fix is on {peer}: its program must "
               "close() the socket when it reads end-of-file, so its FIN comes.")
    elif owners and not orphan:
        fix = (f"The program on {host} should close() the socket once it has read what it needs; and {peer}'s program "
               "must close its end when it reads end-of-file.")
    else:
        fix = (f"The fix is on {peer}: its program must close() the socket when it reads end-of-file, so its FIN "
               "comes. "
               f"Shortening net.ipv4.tcp_fin_timeout on {host} only frees {host}'s orphan sooner; {peer}'s socket "
               "stays.")
    return Finding("fin_wait2", title, s, run.side(s), iv.start, iv.end, ended_by, facts, why, fix,
                   closed_by_app=orphan)
