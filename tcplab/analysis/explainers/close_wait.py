"""CLOSE_WAIT that lingers: the peer's FIN arrived and nothing closed the socket.

Which socket, which side, since when (the peer's FIN), why (never accepted,
or accepted and never closed), what ended it (the peer's RST, a late close())
or that nothing did, and what fixes it. A CLOSE_WAIT the application ends
within :data:`LINGER` is a normal passive close: counted, not explained.
"""
from __future__ import annotations

from ...peers.windows import DEFAULT_FIN_WAIT2_TIMEOUT as WINDOWS_DEFAULT
from ..packets import Packet
from ..timeline import Interval, SnapshotSocket, SocketId, SocketTimeline, timer_left
from .base import (LINGER, Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t,
                   is_fin, is_rst, is_syn, last_timer, listener_records, log_mentions, next_interval,
                   packets_from, register, where)


@register
class CloseWait(Explainer):
    kind = "close_wait"
    what = "sockets in CLOSE_WAIT"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for tl in run.timelines.sockets:
            for iv in tl.intervals:
                if iv.state != "CLOSE_WAIT":
                    continue
                nxt = next_interval(tl, iv)
                if iv.end is not None and nxt is not None and nxt.state == "LAST_ACK" and iv.end - iv.start < LINGER:
                    out.normal.append(iv.end - iv.start)  # the application closed it promptly: nothing to explain
                    continue
                if out.full():
                    continue
                f = close_wait_finding(run, tl, iv)
                if f.closed_by_app and f.until is not None and f.since is not None and f.until - f.since < LINGER:
                    out.normal.append(f.until - f.since)
                else:
                    out.findings.append(f)
        if out.normal:
            n = len(out.normal)
            out.notes.append(f"{n} socket{'s' if n != 1 else ''} closed normally after the peer's FIN: the "
                             f"application closed {'each' if n != 1 else 'it'} within {fmt_span(max(out.normal))}.")
        return out


def close_wait_finding(run: RunEvidence, tl: SocketTimeline, iv: Interval) -> Finding:
    s = tl.sock
    t0 = run.t0
    host, peer = s.host, run.name(s.peer_ip)
    conn = run.connection(s)
    side = run.side(s)
    facts: list[Fact] = []
    end = run.timelines.end

    # how the connection came to be
    if conn is not None:
        syn = next((p for p in conn.packets if is_syn(p) and p.tcp.src != s.local_ip), None)
        if side == "server" and syn is not None:
            ack = next((p for p in conn.packets if p.n > syn.n and p.tcp.src == s.peer_ip and not is_syn(p)), None)
            text = f"{peer} connected to {host}:{s.local_port} at {fmt_t(syn.ts, t0)} (SYN, packet #{syn.n})"
            if ack is not None:
                text += (f"; the kernel completed the handshake {fmt_span(ack.ts - syn.ts)} later "
                         f"(ACK, packet #{ack.n}), whether or not a program ever accepts the connection")
            facts.append(Fact(text + ".", syn.ts, f"pkt-{syn.n}"))

    # who owned it
    rows = run.rows
    mine = run.rows_of(s)
    owners = sorted({f"{x.pid}/{x.program}" for x in mine if x.pid is not None})
    listeners = listener_records(run.snapshots, host, s.local_port)
    listener_owner = next((f"{r['pid']}/{r['program']}" for _, _, r in listeners if r.get("pid")), None)
    accepted: bool | None = None
    if mine:
        listed = ", ".join(dict.fromkeys(x.snapshot for x in mine))
        if owners:
            accepted = True
            facts.append(Fact(f"It belongs to {', '.join(owners)} in the snapshots ({listed}).",
                              mine[0].time, f"snap-{mine[0].snapshot}"))
        else:
            accepted = False if listener_owner else None
            text = (f"No process owns it: netstat's PID/Program column shows '-' for it in every snapshot that "
                    f"lists it ({listed})")
            if listener_owner:
                text += (f", while the listener on port {s.local_port} belongs to {listener_owner}. A connection "
                         "socket that no process owns, next to a listener that one does, was never accept()ed: it "
                         "waited in the listener's accept queue")
                queued = [(n, r) for n, _, r in listeners if int(r.get("recv_q") or 0) > 0]
                if queued:
                    n, r = queued[0]
                    text += f" (the listener's Recv-Q, its accept queue length, was {r.get('recv_q')} at snapshot {n})"
            facts.append(Fact(text + ".", mine[0].time, f"snap-{mine[0].snapshot}"))
        busy = _program_busy(rows, host, s, listener_owner, run.names)
        if busy and accepted is False:
            facts.append(Fact(busy[0], busy[1], f"snap-{busy[2]}"))

    # what the program's log says
    log = run.logs.get(host, "")
    if log:
        mentions = log_mentions(log)
        me = f"{s.peer_ip}:{s.peer_port}"
        accepts = [a for a, lines in mentions.items() if any("ccept" in ln for ln in lines)]
        if me in mentions:
            facts.append(Fact(f"logs/{host}.log mentions {me}: “{mentions[me][0]}”.", None, f"log-{host}"))
            if any("ccept" in ln for ln in mentions[me]):
                accepted = True
        elif accepts:
            facts.append(Fact(f"logs/{host}.log records accepting {', '.join(accepts)}, never {me}.", None,
                              f"log-{host}"))
        else:
            facts.append(Fact(f"logs/{host}.log never mentions {me}.", None, f"log-{host}"))

    # the peer's FIN: the moment CLOSE_WAIT began
    fin = next((p for p in packets_from(conn, s.peer_ip) if is_fin(p)), None)
    if fin is not None:
        text = f"{peer} sent its FIN at {fmt_t(fin.ts, t0)} ({fin.label()}, packet #{fin.n})"
        if iv.source == "tracepoint":
            text += (f"; the kernel tracepoint shows {host}'s socket going ESTABLISHED → CLOSE_WAIT at "
                     f"{fmt_t(iv.start, t0)}")
        facts.append(Fact(text + ".", fin.ts, f"pkt-{fin.n}"))
        ack = next((p for p in packets_from(conn, s.local_ip) if p.n > fin.n and p.rel_ack >= fin.rel_seq + 1), None)
        if ack is not None:
            who = "kernel" if accepted is False else "TCP stack"
            facts.append(Fact(f"{host}'s {who} acknowledged it {fmt_span(ack.ts - fin.ts)} later "
                              f"({ack.label()}, packet #{ack.n}).", ack.ts, f"pkt-{ack.n}"))
    elif iv.source == "tracepoint":
        facts.append(Fact(f"The kernel tracepoint shows {host}'s socket going ESTABLISHED → CLOSE_WAIT at "
                          f"{fmt_t(iv.start, t0)} (the FIN itself is not in the captures).", iv.start))
    else:
        facts.append(Fact(f"It was first seen in CLOSE_WAIT at {fmt_t(iv.start, t0)} (a snapshot; "
                          "no tracer data and no FIN in the captures).", iv.start))

    # did the application close it?
    own_fin = next((p for p in packets_from(conn, s.local_ip) if is_fin(p) and (fin is None or p.n > fin.n)), None)
    nxt = next_interval(tl, iv)
    closed_by_app = own_fin is not None or (nxt is not None and nxt.state == "LAST_ACK")
    if conn is not None and own_fin is None:
        sent = len(packets_from(conn, s.local_ip))
        facts.append(Fact(f"{host} never sent a FIN on this connection ({sent} packets from {host}, none with F): "
                          "no program called close() on this socket.", None, None))
    elif own_fin is not None:
        facts.append(Fact(f"{host} sent its own FIN at {fmt_t(own_fin.ts, t0)} ({own_fin.label()}, packet "
                          f"#{own_fin.n}), {fmt_span(own_fin.ts - (fin.ts if fin else iv.start))} after the peer's: "
                          "the application closed the socket.", own_fin.ts, f"pkt-{own_fin.n}"))

    # how it ended, or that it did not
    since = fin.ts if fin is not None and iv.source != "tracepoint" else iv.start
    rst = next((p for p in packets_from(conn, s.peer_ip) if is_rst(p) and p.ts >= since - 0.001), None)
    ended_by = ""
    if iv.end is not None:
        if rst is not None and abs(rst.ts - iv.end) < 0.5:
            ended_by = f"RST from {peer}"
            after = f", {fmt_span(rst.ts - fin.ts)} after its FIN" if fin is not None else ""
            text = (f"It left CLOSE_WAIT when {peer}'s RST arrived at {fmt_t(rst.ts, t0)} "
                    f"({rst.label()}, packet #{rst.n}{after})")
            if iv.ended_by == "reset received":
                text += "; the tracepoint shows CLOSE_WAIT → CLOSE with tcp_receive_reset"
            facts.append(Fact(text + ".", rst.ts, f"pkt-{rst.n}"))
        elif iv.ended_by == "reset received":
            ended_by = f"RST from {peer}"
            facts.append(Fact(f"It left CLOSE_WAIT at {fmt_t(iv.end, t0)} when a reset arrived (tracepoint "
                              "tcp_receive_reset; the RST is not in the captures).", iv.end))
        elif closed_by_app:
            ended_by = "close() by the application"
            facts.append(Fact(f"It left CLOSE_WAIT at {fmt_t(iv.end, t0)} for {nxt.state if nxt else 'CLOSE'}.",
                              iv.end))
        else:
            ended_by = iv.ended_by or "gone"
            facts.append(Fact(f"It left CLOSE_WAIT at {fmt_t(iv.end, t0)}"
                              f"{'' if iv.end_exact else ' (or earlier: the next snapshot no longer lists it)'}.",
                              iv.end))
    else:
        last = mine[-1] if mine else None
        text = "It is still in CLOSE_WAIT at the end of the run"
        if last is not None:
            text += f": the last snapshot ({last.snapshot}, {fmt_t(last.time, t0)}) lists it"
        if fin is not None:
            text += f", {fmt_span(end - fin.ts)} after {peer}'s FIN"
        facts.append(Fact(text + ".", end, f"snap-{last.snapshot}" if last else None))

    peer_fact = _peer_side(run, s, peer, fin, rst, closed_by_app)
    if peer_fact is not None:
        facts.append(peer_fact)

    dur = (iv.end if iv.end is not None else end) - iv.start
    place = where(run, s)
    if iv.end is not None:
        title = f"{place}: CLOSE_WAIT for {fmt_span(dur)}" + (f", until the {ended_by}" if ended_by else "")
    else:
        title = f"{place}: in CLOSE_WAIT for {fmt_span(dur)}, still at the end of the run"
    conclusion = _conclusion(host, peer, accepted, closed_by_app, ended_by, iv.end is None, rst, fin)
    fix = _fix(host, accepted, closed_by_app, listener_owner, owners, dur)
    return Finding("close_wait", title, s, side, iv.start, iv.end, ended_by, facts, conclusion, fix, accepted,
                   closed_by_app)


def _program_busy(rows: list[SnapshotSocket], host: str, s: SocketId, owner: str | None,
                  names: dict[str, str]) -> tuple[str, float, str] | None:
    """What the listener's owner was doing meanwhile: the connections it owned on the same port."""
    if owner is None:
        return None
    for x in rows:
        if (x.host == host and x.local_port == s.local_port and x.pid is not None and
                f"{x.pid}/{x.program}" == owner and (x.peer_ip, x.peer_port) != (s.peer_ip, s.peer_port)):
            other = f"{names.get(x.peer_ip, x.peer_ip)} {x.peer_ip}:{x.peer_port}"
            return (f"Meanwhile {owner} owned one connection on the same port, to {other} ({x.state} at snapshot "
                    f"{x.snapshot}): a program serving one client at a time calls accept() again only when that "
                    "client leaves.", x.time, x.snapshot)
    return None


def _peer_side(run: RunEvidence, s: SocketId, peer: str, fin: Packet | None, rst: Packet | None,
               closed_by_app: bool) -> Fact | None:
    other = run.other_end(s)
    t0 = run.t0
    parts: list[str] = []
    at: float | None = None
    held: str | None = None  # the owner of the peer's FIN_WAIT2 socket, when its program still holds it
    if other is not None:
        fw2 = other.first("FIN_WAIT2")
        owners = sorted({f"{x.pid}/{x.program}" for x in run.rows_of(other.sock)
                         if x.pid is not None and x.state == "FIN_WAIT2"})
        if fw2 is not None and "orphaned" not in fw2.note and fw2.source != "timewait" and owners:
            held = ", ".join(owners)
        if fw2 is not None:
            at = fw2.start
            if fw2.end is None:
                tail = "still so at the end of the run"
            elif fw2.ended_by == "reset sent":
                tail = f"until it sent its RST at {fmt_t(fw2.end, t0)}"
            else:
                tail = f"until {fmt_t(fw2.end, t0)}{'' if fw2.end_exact else ' or earlier'}"
            parts.append(f"{peer}'s end went to FIN_WAIT2 at {fmt_t(fw2.start, t0)}, {tail}")
            if "orphaned" in fw2.note:
                text = ("its application had closed it, so it is an orphaned FIN_WAIT2 kept by Linux as a "
                        "timewait socket (the tracepoint shows FIN_WAIT2 → CLOSE at once; ss lists it as "
                        "FIN-WAIT-2 with a timewait timer")
                timer = last_timer(run.rows, other.sock)
                if timer:
                    left = timer_left(timer[1])
                    text += f": timer:({timer[1]}) at snapshot {timer[0]}" + (
                        f", {fmt_span(left[1])} left" if left else "")
                parts.append(text + ")")
    timeout = run.fin_wait2_reset(peer)  # its FIN_WAIT_2 timer: a Windows peer's
    if timeout is not None:
        text = (f"{peer} emulates Windows, which resets a connection whose peer never sends its FIN "
                f"{fmt_span(timeout)} after its own FIN (peer.fin_wait2_timeout in this run's lab.yaml; "
                f"Windows' default is {WINDOWS_DEFAULT:g} s)")
        if rst is not None and fin is not None:
            text += f"; measured here: {fmt_span(rst.ts - fin.ts)}"
        parts.append(text)
    elif fin is not None and rst is None and not closed_by_app and held is not None:
        parts.append(f"{peer}'s program still holds its socket ({held} in the snapshots) after shutting down its "
                     "side: no timer ends its FIN_WAIT2, and nothing from the peer will end the CLOSE_WAIT")
    elif fin is not None and rst is None and not closed_by_app:
        fto = run.peer(peer).tcp_fin_timeout
        when = f"net.ipv4.tcp_fin_timeout ({fto} s in this run's lab.yaml; 60 s by default)" if fto else \
            "net.ipv4.tcp_fin_timeout (60 s by default)"
        parts.append(f"{peer} is a Linux peer: Linux drops an orphaned FIN_WAIT2 socket silently after {when} "
                     "and sends no RST, so nothing from the peer will end the CLOSE_WAIT")
    if not parts:
        return None
    return Fact("; ".join(parts) + ".", at)


def _conclusion(host: str, peer: str, accepted: bool | None, closed_by_app: bool, ended_by: str,
                still: bool, rst: Packet | None, fin: Packet | None) -> str:
    text = ("CLOSE_WAIT means the peer's FIN arrived and the local application has not closed the socket. "
            "Nothing in TCP times CLOSE_WAIT out: only close() by the application, or a reset from the peer, "
            "ends it.")
    if closed_by_app:
        return text + f" Here the application on {host} did close it."
    if accepted is False:
        text += (f" Here no application ever had the socket: {host}'s program never accept()ed the connection "
                 "from " + peer + ", so there was nothing to call close() on it.")
    elif accepted:
        text += f" Here {host}'s program accepted the connection but did not close it after the FIN."
    if ended_by.startswith("RST") and rst is not None and fin is not None:
        text += f" It ended only because {peer} gave up and sent an RST {rst.ts - fin.ts:.3f} s after its FIN."
    elif still:
        text += f" No RST came from {peer}, so it stays until {host}'s program exits or accepts and closes it."
    return text


def _fix(host: str, accepted: bool | None, closed_by_app: bool, listener_owner: str | None, owners: list[str],
         dur: float) -> str:
    if closed_by_app:
        return (f"The program on {host} closed the socket, but only {fmt_span(dur)} after the peer's FIN: close it "
                "as soon as recv() returns 0 (or poll() reports POLLRDHUP/POLLHUP).")
    if accepted is False:
        who = listener_owner or f"{host}'s program"
        return (f"{who} must accept() every connection the kernel queues for it and serve them concurrently "
                "(a thread or process per client, or an event loop with non-blocking sockets), closing each when "
                "recv() returns 0. A larger backlog only lengthens the queue; it does not empty it.")
    who = owners[0] if owners else f"{host}'s program"
    return (f"{who} must close() the socket when recv() returns 0 (the peer's FIN): that sends {host}'s FIN and "
            "ends CLOSE_WAIT. Look for a code path that returns, or blocks elsewhere, without closing.")
