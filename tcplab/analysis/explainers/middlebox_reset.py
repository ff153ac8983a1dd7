"""An RST made on the way: a box between the hosts (a NAT box, a load balancer, a firewall that tracks
connections) answered in the other end's name, because it had forgotten the connection.

Speaks for each RST that arrived at a host in the name of another lab host whose own capture never sent it, under
any destination (the analysis keeps such a copy from the receiver's capture: see :mod:`tcplab.observe.merge`). It
says who received it and when, what it answered (the segment that drew it and how long the connection had been
idle before), the TTL it arrived with against the claimed sender's own packets (fewer hops: made closer), the NAT
box of the lab and its idle timeout as the run read it, the claimed sender's socket still ESTABLISHED afterwards
(half-open: nobody told it), and the connections through the same box that kept their entry with keepalive probes.
"""
from __future__ import annotations

from ...wire import RST
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, is_rst, register, where

CONNTRACK_TIMEOUT = "net.netfilter.nf_conntrack_tcp_timeout_established"


@register
class MiddleboxReset(Explainer):
    kind = "middlebox_reset"
    what = "RSTs made by a box on the way"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        captured = {p.capture for p in run.traffic.packets}  # hosts whose own capture holds packets
        for p in run.traffic.packets:
            if (p.tcp.flags & RST and p.src_host is not None and p.dst_host is not None and p.capture != p.src_host
                    and p.src_host in captured and p.capture == p.dst_host and p.conn is not None
                    and not _sent(run, p)):
                out.add(reset_finding(run, p, p.conn))
        return out


def _sent(run: RunEvidence, p: Packet) -> bool:
    """Whether the claimed sender's own capture holds ``p`` under another destination (a NAT box rewrote it on the
    way back: the receiver's copy was kept too, but the sender did send it)."""
    t = p.tcp
    return any(q.capture == p.src_host and q.src_host == p.src_host and (q.tcp.sport, q.tcp.seq, q.tcp.ack,
               q.tcp.flags, q.tcp.ip_id) == (t.sport, t.seq, t.ack, t.flags, t.ip_id) for q in run.traffic.packets)


def _box(run: RunEvidence) -> tuple[str, float | None] | None:
    """The lab's NAT box that answers a forgotten connection with an RST, and its idle timeout (as read)."""
    if run.lab is None:
        return None
    for name, host in run.lab.hosts.items():
        if host.nat is not None and host.nat.expired == "rst":
            read = run.sysctl(name, CONNTRACK_TIMEOUT)
            return name, float(read) if read and read.isdigit() else host.nat.idle_timeout
    return None


def _half_open(run: RunEvidence, host: str, port: int, after: float) -> str | None:
    """The last snapshot after ``after`` where ``host``'s socket on local ``port`` is ESTABLISHED, with its peer."""
    found = None
    for x in run.rows:
        if x.host == host and x.local_port == port and x.state == "ESTABLISHED" and x.time > after:
            found = f"{x.snapshot} ({host} {x.local_ip}:{x.local_port} with {run.name(x.peer_ip)} {x.peer_ip}:" \
                    f"{x.peer_port})"
    return found


def _kept(run: RunEvidence, conn: Connection, host: str) -> list[tuple[Connection, list[Packet]]]:
    """Other connections of ``host`` that sent keepalive probes and were never reset."""
    out = []
    for c in run.traffic.connections:
        if c is conn or host not in (c.client, c.server):
            continue
        probes = [p for p in c.packets if p.probe and p.src_host == host]
        if probes and not any(is_rst(p) for p in c.packets):
            out.append((c, probes))
    return out


def reset_finding(run: RunEvidence, rst: Packet, conn: Connection) -> Finding:
    t0 = run.t0
    host, claimed = str(rst.dst_host), str(rst.src_host)
    sock = SocketId(host, rst.tcp.dst, rst.tcp.dport, rst.tcp.src, rst.tcp.sport)
    facts = [Fact(f"{host} received {rst.label()} (packet #{rst.n}) at {fmt_t(rst.ts, t0)} in {claimed}'s name, but "
                  f"{claimed}'s own capture holds no such packet: it was made on the way.", rst.ts, f"pkt-{rst.n}")]
    before = [p for p in conn.packets if p.ts < rst.ts]
    drew = next((p for p in reversed(before) if p.src_host == host), None)
    idle = None
    if drew is not None:
        earlier = [p for p in before if p.ts < drew.ts]
        if earlier:
            idle = drew.ts - earlier[-1].ts
            facts.append(Fact(f"It answered {host}'s {drew.label()} (packet #{drew.n}), sent after "
                              f"{fmt_span(idle)} in which nothing crossed the wire on the connection.", drew.ts,
                              f"pkt-{drew.n}"))
    own = [p for p in conn.packets if p.src_host == claimed and p.capture == host and p is not rst]
    if own and own[-1].tcp.ttl != rst.tcp.ttl:
        hops = own[-1].tcp.ttl - rst.tcp.ttl
        facts.append(Fact(f"It arrived with TTL {rst.tcp.ttl}; {claimed}'s own packets arrived at {host} with TTL "
                          f"{own[-1].tcp.ttl}: the RST was made {abs(hops)} hop{'s' if abs(hops) != 1 else ''} "
                          f"{'closer to' if hops < 0 else 'farther from'} {host}.", own[-1].ts, f"pkt-{own[-1].n}"))
    box = _box(run)
    if box is not None:
        name, timeout = box
        text = f"{name} is a NAT box that forgets a connection idle for {timeout:g} s ({CONNTRACK_TIMEOUT})"
        if idle is not None and timeout is not None:
            text += (f": the connection had been idle for {fmt_span(idle)}, "
                     + ("longer." if idle > timeout else "less (something else made the RST?)."))
        facts.append(Fact(text + "", None))
    survivor = _half_open(run, claimed, rst.tcp.sport, rst.ts)
    if survivor is not None:
        facts.append(Fact(f"{claimed}'s socket was still ESTABLISHED at snapshot {survivor}: half-open, nothing told "
                          "it.", None))
    for c, probes in _kept(run, conn, host)[:2]:
        gaps = [b.ts - a.ts for a, b in zip(probes, probes[1:])]
        facts.append(Fact(f"{c.name} sent {len(probes)} keepalive probes"
                          + (f", {fmt_span(min(gaps))} to {fmt_span(max(gaps))} apart" if gaps else "")
                          + " and was never reset: each probe refreshed its entry.", probes[0].ts,
                          f"pkt-{probes[0].n}"))
    boxed = f"{box[0]}" if box is not None else "a box between the hosts"
    why = (f"{boxed} keeps an entry for each connection it passes and silently forgets one that stays idle longer "
           f"than its timeout (AWS NLB: 350 s; a home router or a firewall: minutes to hours). The next segment "
           f"finds no entry: the box answers it with an RST in {claimed}'s name, so {host}'s next recv() or send() "
           f"fails with ECONNRESET, while {claimed} heard nothing and keeps its socket ESTABLISHED (half-open) until "
           "it sends something itself.")
    fix = ("Send something more often than the box forgets: TCP keepalive with an idle time below its timeout "
           "(SO_KEEPALIVE and TCP_KEEPIDLE, or net.ipv4.tcp_keepalive_time: e.g. 300 s for NLB's 350 s), or an "
           "application heartbeat; or raise the box's idle timeout; and treat ECONNRESET as 'reconnect and retry'.")
    return Finding("middlebox_reset", f"{where(run, sock)}: RST made by {boxed} in {claimed}'s name", sock,
                   run.side(sock), drew.ts if drew is not None else rst.ts, rst.ts, f"RST from {boxed}", facts, why,
                   fix)
