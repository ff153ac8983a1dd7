"""A half-open connection: one end still ESTABLISHED, the other end's host without any socket for it.

Speaks when a snapshot shows a connection socket ESTABLISHED on one host while the other end (a host of
the lab whose tables that snapshot read) has no socket for the same four-tuple: the peer forgot the
connection (its program was killed, its host restarted, its state was lost) and whatever it said about
it never arrived. It says since when the peer had no socket (the tracer's CLOSE, else the snapshots
around it), how the peer lost it (the reset reason the tracer saw, the counters that rose), how long
the survivor sat unaware and whether anything was on the wire meanwhile, and how it learned: the first
segment it sent drew an RST from a kernel with no socket for it.
"""
from __future__ import annotations

from ...model.lab import FirewallStep
from ...observe.snapshots import tool_ok
from ..packets import Packet
from ..timeline import SocketId, SocketTimeline
from .base import (Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, is_rst,
                   packets_from, register, where)


@register
class HalfOpen(Explainer):
    kind = "half_open"
    what = "half-open connections"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        seen: set[tuple[str, int, str, int]] = set()
        for row in run.rows:
            if row.state != "ESTABLISHED" or row.key() in seen:
                continue
            peer = run.names.get(row.peer_ip)
            if peer is None or _translated(run, row.host, peer) or not _forgotten_at(run, peer, row.snapshot,
                                                                                        row.key()):
                continue
            seen.add(row.key())
            sock = SocketId(row.host, row.local_ip, row.local_port, row.peer_ip, row.peer_port)
            if not out.full():
                out.findings.append(half_open_finding(run, sock, peer, row.snapshot, row.time))
        return out


def _translated(run: RunEvidence, host: str, peer: str) -> bool:
    """Whether the two ends see different four-tuples: ``peer`` is a router (it has no socket of a connection it
    forwards), or a NAT box stands between hosts that share no network (the far end sees the box's address)."""
    lab = run.lab
    if lab is None or host not in lab.hosts or peer not in lab.hosts:
        return False
    if run.forwards(peer):
        return True
    apart = not set(lab.host_addresses(host)) & set(lab.host_addresses(peer))
    return apart and any(h.nat is not None for h in lab.hosts.values())


def _forgotten_at(run: RunEvidence, peer: str, snapshot: str, key: tuple[str, int, str, int]) -> bool:
    """The peer's table at ``snapshot`` was read and lists no socket for the mirrored four-tuple."""
    snap = run.snapshots.get(snapshot)
    tables = (snap.get("hosts") or {}).get(peer) if snap is not None else None
    if not tables or tables.get("missing"):
        return False
    usable = [t for t in (tables.get("netstat"), tables.get("ss")) if isinstance(t, dict) and tool_ok(t)]
    if not usable:
        return False
    mirrored = (key[2], key[3], key[0], key[1])
    for t in usable:
        for r in t.get("records") or []:
            if (r.get("local_addr"), r.get("local_port"), r.get("peer_addr"), r.get("peer_port")) == mirrored:
                return False
    return True


def _lost_at(run: RunEvidence, peer_end: SocketTimeline | None) -> float | None:
    """When the peer's socket ended (its last interval's end, as the tracer or the snapshots bound it)."""
    if peer_end is None or not peer_end.intervals:
        return None
    return peer_end.intervals[-1].end


def half_open_finding(run: RunEvidence, sock: SocketId, peer: str, snapshot: str, snap_t: float) -> Finding:
    t0, host = run.t0, sock.host
    conn = run.connection(sock)
    peer_end = run.other_end(sock)
    lost = _lost_at(run, peer_end)
    facts: list[Fact] = [Fact(f"At snapshot {snapshot} ({fmt_t(snap_t, t0)}) {host}'s socket was ESTABLISHED "
                              f"while {peer} had no socket for the connection at all.", snap_t, f"snap-{snapshot}")]
    reason = None
    if lost is not None:
        reset = next((r for r in run.resets("tcp_send_reset")
                      if (str(r.get("saddr")), int(r.get("sport") or 0)) == (sock.peer_ip, sock.peer_port)
                      and abs(float(r.get("ts") or 0.0) - lost) < 0.05), None)
        text = f"{peer}'s socket ended at {fmt_t(lost, t0)}"
        if reset is not None:
            reason = str(reset.get("reason") or "")
            text += f": its kernel sent an RST (tracepoint tcp_send_reset, reason {reason or 'unknown'})"
        facts.append(Fact(text + ".", lost))
    sent: list[Packet] = packets_from(conn, sock.peer_ip)
    rst = next((p for p in sent if is_rst(p) and (lost is None or p.ts > lost)), None)
    lost_rst_seen = lost is not None and any(is_rst(p) and abs(p.ts - lost) < 0.05 for p in sent)
    if lost is not None and not lost_rst_seen:
        facts.append(Fact(f"That RST is in no capture: it never left {peer}'s host"
                          + _firewall_words(run, peer) + f", so {host} was never told.", lost))
    aborted = run.counter_change(peer, "TcpExtTCPAbortOnClose", until=snap_t, since=lost)
    if aborted is not None and aborted[0] > 0:
        facts.append(Fact(f"{peer}'s TcpExtTCPAbortOnClose rose by {aborted[0]} from snapshot {aborted[1]} to "
                          f"{aborted[2]}: a close() that found unread data and aborted the connection."))
    quiet_from = lost if lost is not None else snap_t
    mine = packets_from(conn, sock.local_ip)
    data = next((p for p in mine if p.ts > quiet_from and (p.tcp.payload or p.tcp.flags)), None)
    quiet = [p for p in (conn.packets if conn else []) if quiet_from < p.ts < (data.ts if data else run.timelines.end)]
    if data is not None:
        facts.append(Fact(f"Nothing crossed the wire for {fmt_span(data.ts - quiet_from)} "
                          f"({len(quiet)} packets): {host} had nothing to send, and TCP says nothing on an idle "
                          "connection (no keepalive).", data.ts))
        facts.append(Fact(f"{host} then sent {len(data.tcp.payload)} bytes at {fmt_t(data.ts, t0)} ({data.label()}, "
                          f"packet #{data.n}).", data.ts, f"pkt-{data.n}"))
    if rst is not None:
        facts.append(Fact(f"{peer} answered with {rst.label()} (packet #{rst.n}) "
                          + (f"{fmt_span(rst.ts - data.ts)} later" if data is not None else f"at {fmt_t(rst.ts, t0)}")
                          + f": a segment for a connection {peer}'s kernel does not know draws a reset.",
                          rst.ts, f"pkt-{rst.n}"))
    resets = run.counter_change(host, "TcpEstabResets", since=rst.ts if rst is not None else None)
    if resets is not None and resets[0] > 0:
        facts.append(Fact(f"{host}'s TcpEstabResets rose by {resets[0]} from snapshot {resets[1]} to {resets[2]}: "
                          "an ESTABLISHED connection ended by a reset."))
    since = lost if lost is not None else snap_t
    why = (f"{peer} lost the connection's state"
           + (" when its program was killed with unread data (close() with unread data aborts the connection: "
              "RFC 2525 §2.17)" if reason == "TCP_ABORT_ON_CLOSE" else "")
           + f", and what its kernel said about it never reached {host}. TCP has no way to notice a silent peer "
           f"on an idle connection: {host}'s socket stays ESTABLISHED as long as it sends nothing"
           + (f" ({fmt_span(data.ts - since)} here)" if data is not None else "")
           + f". Its first segment reached a kernel with no socket for it, which answered with an RST: "
           f"{host}'s next recv() or send() fails with ECONNRESET, a later send() with EPIPE.")
    fix = (f"{host} learns of the loss only by sending. Turn on SO_KEEPALIVE with short timers "
           "(TCP_KEEPIDLE/KEEPINTVL/KEEPCNT; the defaults wait 7200 s) or use an application heartbeat or idle "
           f"timeout, and treat ECONNRESET/EPIPE as 'reconnect and retry'; on {peer}'s side a clean shutdown "
           "closes its connections with FINs instead of forgetting them.")
    return Finding("half_open", f"{where(run, sock)}: half-open: {peer} forgot the connection", sock,
                   run.side(sock), since, rst.ts if rst is not None else None,
                   f"RST from {peer}" if rst is not None else "", facts, why, fix)


def _firewall_words(run: RunEvidence, host: str) -> str:
    """`` (a firewall rule of the lab drops what it sends: steps.3 'silence')``, when the lab has one."""
    if run.lab is None:
        return ""
    rules = [(i, s) for i, s in enumerate(run.lab.steps) if isinstance(s, FirewallStep) and s.host == host]
    if not rules:
        return ""
    i, s = rules[0]
    return f" (steps.{i}, the lab's firewall rule '{s.rule_name(i)}': {s.default_title()})"
