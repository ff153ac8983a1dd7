"""A PMTU black hole: a router takes a host's full-size segments in and never passes them on.

Speaks for every connection in which one segment reached a router (``router: true``: its capture holds it on
the way in) and never its receiver, again and again with the same sequence number, while smaller packets of
the same connection crossed that router: the path carries small packets, not big ones. It says how big the
lost segment was and the biggest that crossed, the MTU of the router's interface toward the receiver (the
lab's), whether and when the sender cut the segment to fit (PMTU discovery once the ICMP "fragmentation
needed" got through, or its own MTU probing), the lab's rule that drops that ICMP, and a connection of the run
whose SYN the router clamped (its MSS lowered on the way) for comparison.
"""
from __future__ import annotations

from ...model.lab import FirewallStep
from ...wire import SYN
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, register, where

IP_TCP_HEADERS = 40  # an IPv4 and a TCP header without options: what a packet's MTU holds besides the MSS


@register
class PmtuBlackhole(Explainer):
    kind = "pmtu_blackhole"
    what = "connections whose full-size segments vanished at a router"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for conn in run.traffic.connections:
            for src in dict.fromkeys(p.src_host for p in conn.packets if p.lost_at is not None):
                out.add(blackhole_finding(run, conn, src))
        return out


def _lost_again_and_again(conn: Connection, src: str | None) -> tuple[list[Packet], str] | None:
    """The copies of the first segment of ``src`` that vanished at one router at least twice (the same
    sequence number: a retransmission), and that router."""
    lost = [p for p in conn.packets if p.src_host == src and p.lost_at is not None and p.tcp.payload]
    by_seq: dict[int, list[Packet]] = {}
    for p in lost:
        by_seq.setdefault(p.rel_seq, []).append(p)
    again = [ps for ps in by_seq.values() if len(ps) >= 2 and len({p.lost_at for p in ps}) == 1]
    if not again:
        return None
    first = min(again, key=lambda ps: ps[0].ts)
    return first, str(first[0].lost_at)


def _router_mtu(run: RunEvidence, router: str, receiver: str | None) -> tuple[int, str] | None:
    """The MTU of the router's interface on a network it shares with the receiver, and where the lab sets it."""
    lab = run.lab
    if lab is None or receiver is None or router not in lab.hosts or receiver not in lab.hosts:
        return None
    nets = lab.lab_networks()
    for key, place in lab.hosts[router].networks.items():
        if key not in lab.hosts[receiver].networks or key not in nets:
            continue
        if place is not None and place.mtu is not None:
            return place.mtu, f"hosts.{router}.networks.{key}.mtu"
        net_mtu = nets[key].mtu
        if net_mtu is not None:
            return net_mtu, f"networks.{key}.mtu"
        return 1500, f"network {key}: the engine's default"
    return None


def _icmp_rule(run: RunEvidence, router: str) -> str:
    """`` (steps.0, the lab's rule 'blackhole': ...)`` when a step of the lab drops the router's ICMP."""
    if run.lab is None:
        return ""
    for i, s in enumerate(run.lab.steps):
        if isinstance(s, FirewallStep) and s.host == router and s.icmp == "frag-needed":
            return f" (steps.{i}, the lab's rule '{s.rule_name(i)}': {s.default_title()})"
    return ""


def _clamped_elsewhere(run: RunEvidence, router: str, conn: Connection) -> Fact | None:
    """A SYN of another connection whose MSS the router lowered on its way (its copies before and after differ)."""
    for other in run.traffic.connections:
        if other is conn:
            continue
        for p in other.packets:
            if not p.tcp.flags & SYN:
                continue
            mss = [c.tcp.option("mss") for c in p.copies]
            if len(set(mss)) > 1 and router in p.hops():
                return Fact(f"Compare: {other.name}: {router} lowered the MSS of its SYN from {mss[0]} to {mss[-1]} "
                            f"on the way (packet #{p.n}), so neither end ever sent a segment too big for the path; "
                            f"its data crossed {router} at once.", p.ts, f"pkt-{p.n}")
    return None


def blackhole_finding(run: RunEvidence, conn: Connection, src: str | None) -> Finding | None:
    found = _lost_again_and_again(conn, src)
    if found is None:
        return None
    lost, router = found
    first, last = lost[0], lost[-1]
    crossed = [p for p in conn.packets if p.src_host == src and router in p.hops() and p.lost_at is None
               and p.ts < first.ts]
    if not crossed:
        return None  # nothing of this sender crossed before: a dead path, not a size
    t = first.tcp
    host, peer = src or t.src, first.dst_host or t.dst
    sock = SocketId(host, t.src, t.sport, t.dst, t.dport)
    t0 = run.t0
    size = min(len(p.tcp.payload) for p in lost)  # one segment: a retransmission is never more
    gso = max(len(p.tcp.payload) for p in lost)
    biggest = max(crossed, key=lambda p: len(p.tcp.payload))
    gaps = [b.ts - a.ts for a, b in zip(lost, lost[1:])]
    whole = (f", the first within a {gso}-byte packet of {host}'s capture (the kernel's segments before the "
             "interface cuts them, GSO)") if gso > size else ""
    facts = [Fact(f"{host} sent the segment at seq {first.rel_seq} ({size} bytes of data) {len(lost)} times{whole}, "
                  f"from {fmt_t(first.ts, t0)} to {fmt_t(last.ts, t0)}" + (
                      f", {', '.join(fmt_span(g) for g in gaps)} apart" if gaps else "")
                  + f"; each copy reached {router} and none left it toward {peer}: {router}'s capture on its way "
                  f"out and {peer}'s hold none (packets #{first.n} to #{last.n}).", first.ts, f"pkt-{first.n}"),
             Fact(f"Smaller packets of the same connection crossed {router} before: the biggest, "
                  f"{len(biggest.tcp.payload)} bytes of data (packet #{biggest.n}). The path carries small packets, "
                  "not big ones.", biggest.ts, f"pkt-{biggest.n}")]
    mtu = _router_mtu(run, router, first.dst_host)
    if mtu is not None:
        facts.append(Fact(f"{router}'s interface toward {peer} has MTU {mtu[0]} ({mtu[1]}): it carries at most "
                          f"{mtu[0] - IP_TCP_HEADERS} bytes of TCP data and options per packet, less than the "
                          f"{size} bytes of data plus options {host} sent.", None))
    fit = next((p for p in conn.packets if p.src_host == src and p.ts > last.ts and p.rel_seq == first.rel_seq
                and 0 < len(p.tcp.payload) < size and p.lost_at is None), None)
    if fit is not None:
        facts.append(Fact(f"At {fmt_t(fit.ts, t0)} ({fmt_span(fit.ts - first.ts)} after the first copy) {host} sent "
                          f"the segment again cut to {len(fit.tcp.payload)} bytes (packet #{fit.n}), and it crossed "
                          f"{router}: {host} had learned the path's MTU.", fit.ts, f"pkt-{fit.n}"))
    compare = _clamped_elsewhere(run, router, conn)
    if compare is not None:
        facts.append(compare)
    why = (f"A path MTU black hole. {host}'s segments fit its own link, so it sends them full-size with Don't "
           f"Fragment set; {router} cannot forward them onto its smaller link and drops them. It should answer "
           f"each with an ICMP 'fragmentation needed' (type 3 code 4) naming its MTU, and {host} would cut its "
           f"segments to fit (PMTU discovery); that ICMP never reached {host}{_icmp_rule(run, router)}. So the "
           "handshake and small requests work, and every full-size segment is retransmitted with a doubling "
           "timeout and lost again" + (", until the ICMP got through." if fit is not None else "."))
    fix = (f"Let ICMP 'fragmentation needed' (type 3 code 4) through, on {router} and every firewall on the path; or "
           f"clamp the MSS of the SYNs on {router} to the path's MTU (iptables -t mangle -A FORWARD -p tcp "
           "--tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu; the lab's firewall: clamp-mss); or let "
           f"{host} find the MTU itself: net.ipv4.tcp_mtu_probing = 1 (after a black hole is suspected) or 2 "
           "(always), RFC 4821.")
    title = f"{where(run, sock)}: full-size segments vanish at {router} (a PMTU black hole)"
    return Finding("pmtu_blackhole", title, sock, run.side(sock), first.ts, fit.ts if fit is not None else None,
                   f"{host} sent it cut to fit" if fit is not None else "", facts, why, fix)
