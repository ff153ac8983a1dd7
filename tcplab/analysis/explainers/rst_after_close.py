"""An RST after a close: a host resets a connection it had already closed, or that close() itself aborted.

Speaks for an RST in the captures whose sender had closed its end before:
- it had sent its FIN and the peer never answered with one (a FIN_WAIT_2
  timer giving up: Windows' behaviour, emulated by a peer sidecar);
- it had sent its FIN and the peer then sent data nobody could read any more
  (Linux answers data for a closed socket with an RST);
- close() sent the RST instead of a FIN: unread data in the receive buffer, or
  SO_LINGER {on, 0} (the tracer's ``tcp_send_reset`` reason says which);
- the sender had no socket at all any more (reason ``NO_SOCKET``).

An RST that answers a SYN (a refused connection) is not a close and stays
unexplained here.
"""
from __future__ import annotations

from ...observe.snapshots import tool_ok
from ...peers.windows import DEFAULT_FIN_WAIT2_TIMEOUT as WINDOWS_DEFAULT
from ...runfiles.peer_events import PeerEvent
from ...runfiles.transitions import TransitionRecord
from ...wire import RST
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import (Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, is_fin, is_synack,
                   packets_from, register, where)

_NEAR = 0.005  # a tracer reset record this close to a captured RST (same ports) is about that RST


@register
class RstAfterClose(Explainer):
    kind = "rst_after_close"
    what = "connections reset after a close"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for conn in run.traffic.connections:
            rst = next((p for p in conn.packets if p.tcp.flags & RST), None)  # is_rst, inline: every packet
            if rst is None or not any(is_synack(p) and p.n < rst.n for p in conn.packets):
                continue  # no RST, or one that refused a connection that never existed
            out.add(rst_finding(run, conn, rst))
        return out


def _reason(run: RunEvidence, rst: Packet) -> TransitionRecord | None:
    key = (rst.tcp.src, rst.tcp.sport, rst.tcp.dst, rst.tcp.dport)
    for r in run.resets("tcp_send_reset"):
        if (str(r.get("saddr")), int(r.get("sport") or 0), str(r.get("daddr")), int(r.get("dport") or 0)) == key \
                and abs(float(r.get("ts") or 0.0) - rst.ts) <= _NEAR:
            return r
    return None


def _received(run: RunEvidence, rst: Packet) -> TransitionRecord | None:
    key = (rst.tcp.dst, rst.tcp.dport, rst.tcp.src, rst.tcp.sport)
    for r in run.resets("tcp_receive_reset"):
        if (str(r.get("saddr")), int(r.get("sport") or 0), str(r.get("daddr")), int(r.get("dport") or 0)) == key \
                and abs(float(r.get("ts") or 0.0) - rst.ts) <= _NEAR:
            return r
    return None


def _counted(run: RunEvidence, host: str, name: str, rst: Packet) -> bool:
    """The counter of ``host`` rose between the snapshots just before and just after ``rst``."""
    rose = run.counter_change(host, name, until=rst.ts, since=rst.ts)
    return rose is not None and rose[0] > 0


def _gone_after(run: RunEvidence, sock: SocketId, ts: float) -> str | None:
    """The first snapshot after ``ts`` whose table of the host was read and lists no socket for ``sock``."""
    for name, snap in sorted(run.snapshots.items(), key=lambda kv: float(kv[1].get("time") or 0.0)):
        if float(snap.get("time") or 0.0) <= ts:
            continue
        tables = (snap.get("hosts") or {}).get(sock.host) or {}
        netstat = tables.get("netstat")
        if netstat is None or not tool_ok(netstat):
            return None
        listed = any((r.get("local_addr"), r.get("local_port"), r.get("peer_addr"), r.get("peer_port")) == sock.key()
                     for r in netstat.get("records") or [])
        return None if listed else name
    return None


def _peer_log(run: RunEvidence, host: str, rst: Packet) -> PeerEvent | None:
    """The peer sidecar's own record of sending this RST (logs/peer/<host>.jsonl)."""
    for e in run.peer_events.get(host, []):
        conn = e.get("conn") or {}
        if (e.get("event") == "rst_sent" and conn.get("sport") == rst.tcp.sport and conn.get("dport") == rst.tcp.dport
                and abs(float(e.get("ts") or 0.0) - rst.ts) < 0.05):
            return e
    return None


def rst_finding(run: RunEvidence, conn: Connection, rst: Packet) -> Finding | None:
    t0 = run.t0
    src_ip, dst_ip = rst.tcp.src, rst.tcp.dst
    host, peer = run.name(src_ip), run.name(dst_ip)
    own_fin = next((p for p in packets_from(conn, src_ip) if is_fin(p) and p.n < rst.n), None)
    peer_fin = next((p for p in packets_from(conn, dst_ip) if is_fin(p) and p.n < rst.n), None)
    reason_rec = _reason(run, rst)
    reason = str(reason_rec.get("reason") or "") if reason_rec is not None else ""
    data_after = [p for p in packets_from(conn, dst_ip) if p.tcp.payload and p.n < rst.n
                  and (own_fin is None or p.n > own_fin.n)]
    unread = [p for p in packets_from(conn, dst_ip) if p.tcp.payload and p.n < rst.n]
    sock = SocketId(host, src_ip, rst.tcp.sport, dst_ip, rst.tcp.dport)
    facts: list[Fact] = []
    since: float | None = None
    timeout = run.fin_wait2_reset(host)  # its FIN_WAIT_2 timer: a Windows peer's

    if own_fin is not None and peer_fin is None and not data_after:
        kind = "fin_wait2_timeout"
        since = own_fin.ts
        facts.append(Fact(f"{host} closed first: its FIN at {fmt_t(own_fin.ts, t0)} ({own_fin.label()}, packet "
                          f"#{own_fin.n}); {peer} never sent a FIN.", own_fin.ts, f"pkt-{own_fin.n}"))
        text = (f"{fmt_span(rst.ts - own_fin.ts)} later {host} sent {rst.label()} (packet #{rst.n})")
        if rst.rel_seq == own_fin.rel_seq + 1:
            text += (": its sequence number is the one after its FIN, so nothing new was sent; it only ends the "
                     "connection")
        facts.append(Fact(text + ".", rst.ts, f"pkt-{rst.n}"))
    elif own_fin is not None and data_after:
        kind = "data_after_close"
        since = own_fin.ts
        d = data_after[0]
        facts.append(Fact(f"{host} closed its socket: its FIN at {fmt_t(own_fin.ts, t0)} (packet #{own_fin.n}).",
                          own_fin.ts, f"pkt-{own_fin.n}"))
        facts.append(Fact(f"{peer} then sent {len(d.tcp.payload)} bytes at {fmt_t(d.ts, t0)} ({d.label()}, packet "
                          f"#{d.n}); {host} answered with {rst.label()} (packet #{rst.n}), "
                          f"{fmt_span(rst.ts - d.ts)} later.", d.ts, f"pkt-{d.n}"))
    elif own_fin is None and (reason in ("TCP_ABORT_ON_CLOSE", "TCP_ABORT_ON_LINGER")
                              or (reason == "TCP_STATE" and _counted(run, host, "TcpExtTCPAbortOnData", rst)
                                  and not _counted(run, host, "TcpExtTCPAbortOnClose", rst))):
        # SO_LINGER {on, 0}: kernels that name the reason say TCP_ABORT_ON_LINGER; others reset from
        # tcp_disconnect (TCP_STATE), told apart by the counter close() raises for it
        kind = "abort_on_close" if reason == "TCP_ABORT_ON_CLOSE" else "linger_zero"
        since = rst.ts
        text = f"{host} sent {rst.label()} at {fmt_t(rst.ts, t0)} (packet #{rst.n}) and never a FIN"
        if kind == "abort_on_close" and unread:
            text += (f"; {peer} had sent {sum(len(p.tcp.payload) for p in unread)} bytes of data on this connection "
                     f"(last at packet #{unread[-1].n})")
        facts.append(Fact(text + ".", rst.ts, f"pkt-{rst.n}"))
    elif own_fin is None and reason == "NO_SOCKET":
        kind = "no_socket"
        since = None
        facts.append(Fact(f"{host} sent {rst.label()} at {fmt_t(rst.ts, t0)} (packet #{rst.n}) in answer to "
                          f"{peer}'s segment: {host} had no socket for this connection any more.", rst.ts,
                          f"pkt-{rst.n}"))
    else:
        return None

    if kind in ("abort_on_close", "linger_zero"):
        name = "TcpExtTCPAbortOnClose" if kind == "abort_on_close" else "TcpExtTCPAbortOnData"
        rose = run.counter_change(host, name, until=rst.ts, since=rst.ts)
        if rose is not None:
            facts.append(Fact(f"{host}'s {name} rose by {rose[0]} from snapshot {rose[1]} to {rose[2]}.", rst.ts))
        gone = _gone_after(run, sock, rst.ts)
        if gone is not None:
            facts.append(Fact(f"Snapshot {gone} lists no socket of {host} for this connection: an aborted "
                              "connection leaves no TIME_WAIT.", rst.ts, f"snap-{gone}"))
    if reason_rec is not None:
        state = reason_rec.get("state")
        facts.append(Fact(f"The tracer saw tcp_send_reset on {host} with reason {reason or 'unknown'}"
                          + (f" (socket state {state})" if state else "") + ".", float(reason_rec.get("ts") or rst.ts)))
    logged = _peer_log(run, host, rst)
    if logged is not None:
        facts.append(Fact(f"{host}'s peer sidecar logged: “{logged.get('detail', '')}” (logs/peer/{host}.jsonl).",
                          float(logged.get("ts") or rst.ts)))
    got = _received(run, rst)
    other = run.timelines.find(SocketId(peer, dst_ip, rst.tcp.dport, src_ip, rst.tcp.sport))
    if got is not None or other is not None:
        state = (got.get("state") if got is not None else None) or (
            other.state_at(rst.ts - 1e-6) if other is not None else None)
        if state:
            facts.append(Fact(f"On {peer} the RST ended a socket in {state}"
                              + (" (tracepoint tcp_receive_reset)" if got is not None else "") + ".", rst.ts))

    place = where(run, sock)
    if kind == "fin_wait2_timeout" and own_fin is not None:
        after = fmt_span(rst.ts - own_fin.ts)
        title = f"{place}: RST {after} after {host}'s FIN"
        if timeout is not None:
            why = (f"{host} emulates Windows: when a connection it has closed stays in FIN_WAIT_2 (its FIN acked, no "
                   f"FIN from the peer) for its FIN_WAIT_2 timer, {fmt_span(timeout)} in this run's lab.yaml "
                   f"({WINDOWS_DEFAULT:g} s in Windows), Windows resets it. Linux would not: it drops an orphaned "
                   "FIN_WAIT2 silently after net.ipv4.tcp_fin_timeout.")
        else:
            why = f"{host} gave up waiting for {peer}'s FIN {after} after its own and reset the connection."
        fix = (f"The RST is {host}'s way out of a connection the other end never closed. The fix is on {peer}: "
               "its program must close() the socket when it reads end-of-file, so its FIN comes.")
    elif kind == "data_after_close":
        title = f"{place}: RST after {peer}'s data reached a closed socket"
        why = (f"{host}'s application had closed the socket, so data arriving for it can never be read; Linux answers "
               f"such data with an RST, and {peer}'s next recv() or send() fails with ECONNRESET.")
        fix = (f"Make the protocol end cleanly: {peer} should not send after {host} has closed (wait for the reply, "
               f"or read end-of-file first), or {host} should shut down its sending side and read until "
               f"{peer} closes before calling close().")
    elif kind == "abort_on_close":
        title = f"{place}: close() sent an RST instead of a FIN"
        why = ("close() on a socket whose receive buffer still holds unread data sends an RST instead of a FIN "
               "(RFC 2525 §2.17; counted in TcpExtTCPAbortOnClose): the unread data is thrown away, and the peer's "
               "recv() fails with ECONNRESET.")
        fix = (f"{host}'s program should read everything the peer sent (until recv() returns 0, or at least what the "
               "protocol says is coming) before close(); or shutdown(SHUT_WR) first and drain.")
    elif kind == "linger_zero":
        title = f"{place}: close() with SO_LINGER 0 sent an RST"
        why = ("SO_LINGER set to {on, 0} makes close() abort the connection: an RST instead of a FIN, no TIME_WAIT "
               "(counted in TcpExtTCPAbortOnData, which also counts data arriving after the close).")
        fix = (f"Remove SO_LINGER {{on, 0}} from {host}'s program unless aborting is the intent; a normal close() "
               "sends a FIN and lets the peer read everything.")
    else:
        title = f"{place}: RST from a host with no socket for the connection"
        why = (f"{host} had closed or lost its socket (the application closed it and its state is gone, or "
               f"the host restarted): a segment for a connection the kernel does not know is answered with an RST.")
        fix = (f"{peer} learns the connection is gone only when it sends; enable keepalive or an application-level "
               "heartbeat to notice sooner, and reconnect on ECONNRESET.")
    return Finding("rst_after_close", title, sock, run.side(sock), since, rst.ts, f"RST from {host}", facts, why, fix,
                   closed_by_app=kind != "no_socket")
