"""Retransmissions: a host sent data again because no ACK came for it.

Speaks for every connection on which a host sent a data segment whose bytes it had sent before (the capture
shows them twice): when the first copy left, the tail loss probe if there was one (the last segment again,
sooner than any RTO could fire), the retransmission timer's copies and their gaps (each about twice the one
before: the RTO backing off from its first value, at least TCP_RTO_MIN), and how it ended: the peer's ACK
(recovered), or the socket closing with no FIN and no RST of its own (the kernel gave up: at tcp_retries2's
bound as the run read it, or sooner - a TCP_USER_TIMEOUT). A zero-length probe carries no data: it is no
retransmission, and a connection that only probed is not spoken for here.
"""
from __future__ import annotations

from ...wire import FIN, RST
from ..kernel_timers import RTO_MIN, retries_timeout
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, register, where


@register
class Retransmission(Explainer):
    kind = "retransmission"
    what = "connections that sent data again"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for conn in run.traffic.connections:
            for ip in sorted({p.tcp.src for p in conn.packets}):
                out.add(retransmission_finding(run, conn, ip))
        return out


def _data(conn: Connection, ip: str) -> list[Packet]:
    return [p for p in conn.packets if p.tcp.src == ip and p.tcp.payload and not p.tcp.flags & RST]


def resent(data: list[Packet]) -> list[Packet]:
    """The segments of ``data`` (one sender's, in order) that start below the highest byte sent before them."""
    top: int | None = None
    out: list[Packet] = []
    for p in data:
        if top is not None and p.rel_seq < top:
            out.append(p)
        end = p.rel_seq + len(p.tcp.payload)
        top = end if top is None else max(top, end)
    return out


def _original(data: list[Packet], p: Packet) -> Packet:
    """The first copy of the byte ``p`` starts with."""
    return next((d for d in data if d.rel_seq <= p.rel_seq < d.rel_seq + len(d.tcp.payload)), p)


def retransmission_finding(run: RunEvidence, conn: Connection, ip: str) -> Finding | None:
    data = _data(conn, ip)
    again = resent(data)
    if not again:
        return None
    first_again = again[0]
    peer_ip = first_again.tcp.dst
    host, peer = run.name(ip), run.name(peer_ip)
    sock = SocketId(host, ip, first_again.tcp.sport, peer_ip, first_again.tcp.dport)
    t0 = run.t0
    lost = min((_original(data, p) for p in again), key=lambda p: p.n)  # the first byte never acknowledged
    facts: list[Fact] = [Fact(f"{host} sent {lost.label()} (packet #{lost.n}) at {fmt_t(lost.ts, t0)}, the first byte "
                              f"{peer} did not acknowledge in time.", lost.ts, f"pkt-{lost.n}")]
    probes: list[Packet] = []
    for p in again:
        orig = _original(data, p)
        sent_before = [d for d in data if d.n < p.n]
        if p.ts - orig.ts < RTO_MIN and sent_before and orig is sent_before[-1] and not probes:
            probes.append(p)  # the last segment again, sooner than any RTO: a tail loss probe
    timer = [p for p in again if p not in probes]
    for p in probes:
        orig = _original(data, p)
        facts.append(Fact(f"{fmt_span(p.ts - orig.ts)} after its last segment (packet #{orig.n}) {host} sent it again "
                          f"(packet #{p.n}): a tail loss probe, sooner than any retransmission timeout (at least "
                          f"{fmt_span(RTO_MIN)}), in case only the tail was lost (net.ipv4.tcp_early_retrans on "
                          f"{host}: {run.sysctl(host, 'net.ipv4.tcp_early_retrans') or 'not read'}).", p.ts,
                          f"pkt-{p.n}"))
    if timer:
        head = _original(data, timer[0])
        gaps = [timer[0].ts - head.ts] + [b.ts - a.ts for a, b in zip(timer, timer[1:])]
        text = (f"The retransmission timer sent it {len(timer)} time{'s' if len(timer) != 1 else ''}: the first "
                f"{fmt_span(gaps[0])} after the first copy (the RTO: at least {fmt_span(RTO_MIN)}, TCP_RTO_MIN, above "
                "the round trip)")
        if len(gaps) > 1:
            text += f", then {', '.join(fmt_span(g) for g in gaps[1:])} apart: each timeout twice the one before"
        facts.append(Fact(text + ".", timer[-1].ts, f"pkt-{timer[-1].n}"))
    last = again[-1]
    end_of_lost = lost.rel_seq + len(lost.tcp.payload)
    acked = next((p for p in conn.packets if p.tcp.src == peer_ip and p.n > first_again.n and p.rel_ack >= end_of_lost),
                 None)
    tl = run.timeline_of(sock)
    closed = None
    if tl is not None and tl.intervals:  # the socket's last state ended (the tracer's change to CLOSE) after the loss
        last_iv = tl.intervals[-1]
        if last_iv.end is not None and last_iv.end > first_again.ts and last_iv.end_exact:
            closed = last_iv.end
    own_end = next((p for p in conn.packets if p.tcp.src == ip and p.n > first_again.n and p.tcp.flags & (FIN | RST)),
                   None)
    ended_by, until = "", None
    if acked is not None:
        facts.append(Fact(f"{peer} acknowledged it at {fmt_t(acked.ts, t0)} (packet #{acked.n}): the connection "
                          "recovered.", acked.ts, f"pkt-{acked.n}"))
        state = "recovered"
        until, ended_by = acked.ts, "acknowledged"
    elif closed is not None and own_end is None:
        until, ended_by, state = closed, "the kernel gave up", "the kernel gave up"
        text = (f"No ACK ever came. At {fmt_t(closed, t0)} {host}'s kernel gave up: the socket went to CLOSE with no "
                f"FIN and no RST sent ({peer} is never told), and the program's pending or next call fails with "
                "ETIMEDOUT.")
        retries = run.sysctl(host, "net.ipv4.tcp_retries2")
        if timer and retries is not None and retries.split()[0].isdigit():
            bound = retries_timeout(int(retries.split()[0]))
            spent = closed - timer[0].ts
            if spent >= bound - 0.01:
                text += (f" That is {fmt_span(spent)} after the first timer retransmission: tcp_retries2 = {retries} "
                         f"on {host} lets it give up at the first timeout at least {fmt_span(bound)} after it "
                         f"((2^(n+1) - 1) × 200 ms; the default 15 makes it 924.6 s).")
            else:
                text += (f" That is {fmt_span(spent)} after the first timer retransmission, sooner than tcp_retries2 = "
                         f"{retries} on {host} allows ({fmt_span(bound)}): the socket had a shorter bound of its own, "
                         "TCP_USER_TIMEOUT (how long sent data may stay unacknowledged, counted from there).")
        facts.append(Fact(text, closed))
    else:
        state = "still unacknowledged at the end" if own_end is None else "closed by the program"
        facts.append(Fact(f"No ACK came by the end of the run; the last copy left at {fmt_t(last.ts, t0)}.", last.ts))
    title = f"{where(run, sock)}: {len(again)} retransmission{'s' if len(again) != 1 else ''}, {state}"
    why = (f"{host}'s kernel keeps every byte it sent until {peer} acknowledges it, and sends it again when no "
           "ACK comes: first, with tail loss probes on, the last segment after about two round trips; then when "
           "the retransmission timer fires, one RTO after the data left (the smoothed round trip plus at least "
           "TCP_RTO_MIN, 200 ms), and each time it fires again the RTO doubles, up to TCP_RTO_MAX (120 s). The "
           "program, blocked in its read or write, hears nothing of this until the kernel gives up: after "
           "tcp_retries2's worth of backoff (924.6 s with the default 15), or a socket's TCP_USER_TIMEOUT. "
           "TcpExtTCPLossProbes and TcpExtTCPTimeouts count the probes and the timeouts; the tracepoint "
           "tcp:tcp_retransmit_skb marks each copy (the tracer's sockets/retransmits.jsonl).")
    fix = ("Find the loss (a link, a firewall that drops, a peer that vanished). To learn of a dead path in seconds "
           "rather than a quarter of an hour, bound the wait: TCP_USER_TIMEOUT on the socket (what a connection may "
           "spend unacknowledged), a smaller net.ipv4.tcp_retries2 for the whole host, or the application's own "
           "timeout around its calls; then reconnect.")
    return Finding("retransmission", title, sock, run.side(sock), lost.ts, until, ended_by, facts, why, fix)
