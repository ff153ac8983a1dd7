"""A full accept queue: a listener whose completed connections wait for an accept() that does not come.

Speaks for a listener whose host counted listen overflows (TcpExtListenOverflows rose between two
snapshots) or whose ss line showed the queue over its limit (Recv-Q > Send-Q). It says which listener,
how full (Recv-Q against the backlog in Send-Q), whether any program accepted (the queued sockets'
owner), and what the kernel did with the overflow as the run recorded it: handshakes whose last ACK was
dropped (the SYN-ACK retransmitted, 1 s then doubling) while the client believed it was connected, new
SYNs left unanswered, or RSTs where ``net.ipv4.tcp_abort_on_overflow`` is 1 (its value as read).
"""
from __future__ import annotations

from ...runfiles.snapshots import SocketRow
from ..packets import Connection, Packet
from ..timeline import SocketId, snapshot_order
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, is_rst, is_syn, is_synack, register


@register
class AcceptQueue(Explainer):
    kind = "accept_queue"
    what = "listeners with a full accept queue"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for host in sorted(run.traffic.hosts or {}):
            for port, rows in _listeners(run, host).items():
                full = [(n, t, r) for n, t, r in rows if int(r.get("recv_q") or 0) > int(r.get("send_q") or 0)]
                overflow = run.counter_change(host, "TcpExtListenOverflows")
                if not full and not (overflow and overflow[0] > 0 and _synacks_of(run, host, port)):
                    continue
                out.findings.append(accept_queue_finding(run, host, port, rows, full))
        return out


def _listeners(run: RunEvidence, host: str) -> dict[int, list[tuple[str, float, SocketRow]]]:
    """ss's LISTEN line of each port of ``host`` bound to a lab address, in each snapshot."""
    own = {"0.0.0.0", "::", (run.traffic.hosts or {}).get(host)}
    out: dict[int, list[tuple[str, float, SocketRow]]] = {}
    for name, snap in snapshot_order(run.snapshots):
        recs = ((((snap.get("hosts") or {}).get(host) or {}).get("ss") or {}).get("records") or [])
        for r in recs:
            lport = r.get("local_port")
            if r.get("state") == "LISTEN" and r.get("local_addr") in own and lport:
                out.setdefault(int(lport), []).append((name, float(snap.get("time") or 0.0), r))
    return out


def _synacks_of(run: RunEvidence, host: str, port: int) -> list[Connection]:
    ip = (run.traffic.hosts or {}).get(host)
    return [c for c in run.traffic.connections if (c.key[2], c.key[3]) == (ip, port)]


def _retransmitted_synacks(conn: Connection, ip: str) -> list[Packet]:
    """The server's SYN-ACKs of a connection, when there is more than one (the same handshake again)."""
    sa = [p for p in conn.packets if is_synack(p) and p.tcp.src == ip]
    return sa if len(sa) > 1 else []


def accept_queue_finding(run: RunEvidence, host: str, port: int, rows: list[tuple[str, float, SocketRow]],
                         full: list[tuple[str, float, SocketRow]]) -> Finding:
    t0 = run.t0
    ip = (run.traffic.hosts or {}).get(host) or ""
    facts: list[Fact] = []
    first_full = full[0] if full else None
    if first_full is not None:
        name, t, r = first_full
        facts.append(Fact(f"At snapshot {name} ({fmt_t(t, t0)}) ss showed the listener on port {port} with Recv-Q "
                          f"{r.get('recv_q')} (connections waiting for accept()) and Send-Q {r.get('send_q')} "
                          f"(its backlog): the queue holds backlog + 1, so it was full.", t, f"snap-{name}"))
        waiting = [x for x in run.rows if x.host == host and x.snapshot == name and x.local_port == port
                   and x.state == "ESTABLISHED"]
        if waiting and all(x.pid is None for x in waiting):
            facts.append(Fact(f"Its {len(waiting)} ESTABLISHED connections at that snapshot have no owner: no program "
                              "ever accept()ed them.", t, f"snap-{name}"))
    conns = _synacks_of(run, host, port)
    since: float | None = first_full[1] if first_full else None
    for conn in conns:
        again = _retransmitted_synacks(conn, ip)
        if not again:
            continue
        peer = run.name(conn.key[0])
        gaps = ", ".join(f"+{fmt_span(b.ts - a.ts)}" for a, b in zip(again, again[1:]))
        ack = next((p for p in conn.packets if p.tcp.src == conn.key[0] and not is_syn(p) and p.ts > again[0].ts), None)
        text = (f"{peer}'s connection from port {conn.key[1]}: {host} sent its SYN-ACK at {fmt_t(again[0].ts, t0)} "
                f"(packet #{again[0].n}) and again {len(again) - 1} times ({gaps} apart)")
        if ack is not None:
            text += (f", although {peer} had answered with its ACK at {fmt_t(ack.ts, t0)} (packet #{ack.n}): "
                     f"the ACK found the queue full and was dropped, so {peer} is ESTABLISHED and {host} "
                     "still holds only a request (SYN_RECV)")
            since = ack.ts if since is None else min(since, ack.ts)
        facts.append(Fact(text + ".", again[0].ts, f"pkt-{again[0].n}"))
        break
    unanswered = [c for c in conns if not any(p.tcp.src == ip for p in c.packets)
                  and sum(1 for p in c.packets if is_syn(p)) > 1]
    if unanswered:
        c = unanswered[0]
        syns = [p for p in c.packets if is_syn(p)]
        facts.append(Fact(f"{run.name(c.key[0])}'s SYNs from port {c.key[1]} ({len(syns)} of them, from "
                          f"{fmt_t(syns[0].ts, t0)}) got no answer at all: a SYN that finds the accept queue full is "
                          "dropped, so the client retries and its connect() hangs, though tcpdump sees every SYN.",
                          syns[0].ts, f"pkt-{syns[0].n}"))
    resets = [(c, p) for c in conns for p in c.packets if is_rst(p) and p.tcp.src == ip
              and any(q.tcp.src == c.key[0] and not is_syn(q) and q.ts <= p.ts for q in c.packets)
              and any(is_synack(q) for q in c.packets) and not any(q.tcp.payload for q in c.packets)]
    if resets:
        c, p = resets[0]
        facts.append(Fact(f"{host} answered {run.name(c.key[0])}'s handshake ACK from port {c.key[1]} with "
                          f"{p.label()} (packet #{p.n}) at {fmt_t(p.ts, t0)}: with tcp_abort_on_overflow = 1 an "
                          "overflow resets the connection instead of dropping the ACK.", p.ts, f"pkt-{p.n}"))
        since = p.ts if since is None else min(since, p.ts)
    for counter in ("TcpExtListenOverflows", "TcpExtListenDrops"):
        rose = run.counter_change(host, counter)
        if rose is not None and rose[0] > 0:
            facts.append(Fact(f"{host}'s {counter} rose by {rose[0]} from snapshot {rose[1]} to {rose[2]}."))
    abort = run.sysctl(host, "net.ipv4.tcp_abort_on_overflow")
    somax = run.sysctl(host, "net.core.somaxconn")
    backlog = first_full[2].get("send_q") if first_full else (rows[-1][2].get("send_q") if rows else None)
    said = f"net.ipv4.tcp_abort_on_overflow = {abort} ({run.sysctl_source(host, 'net.ipv4.tcp_abort_on_overflow')})" \
        if abort is not None else "net.ipv4.tcp_abort_on_overflow not recorded"
    if abort == "1":
        how = (f"With {said} the kernel answers the overflowing handshake's ACK with an RST: the client learns at "
               "once (ECONNRESET on its first recv() or send()).")
    else:
        how = (f"With {said} the kernel drops the handshake's last ACK and keeps the request, retransmitting its "
               "SYN-ACK (1 s, then doubling, net.ipv4.tcp_synack_retries times) in the hope that accept() makes "
               "room; the client, whose connect() returned, sends into a connection the server does not have yet. "
               "New SYNs are dropped while the queue is full.")
    why = (f"The program listening on {host}:{port} does not accept() fast enough: the kernel completes handshakes "
           f"on its own and queues them for accept(), at most min(backlog, net.core.somaxconn) + 1 of them"
           + (f" (backlog {backlog}" + (f", somaxconn {somax}" if somax else "") + ")" if backlog is not None else "")
           + ". " + how)
    fix = ("accept() promptly: a thread or event loop whose only job is accept(), handing connections on; raise "
           "the backlog given to listen() (capped by net.core.somaxconn) for bursts; set "
           "net.ipv4.tcp_abort_on_overflow = 1 where a fast, visible failure is better than a hang; watch "
           "TcpExtListenOverflows and ss -lnt (Recv-Q against Send-Q).")
    sock = SocketId(host, ip, port, "0.0.0.0", 0)
    return Finding("accept_queue", f"{host} {ip}:{port}: the accept queue is full", sock, "server", since, None, "",
                   facts, why, fix)
