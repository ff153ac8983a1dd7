"""The lab's TCP packets, once each, on one clock, grouped into connections.

Reads the run directory only (``run.json`` for host addresses, every address of
a host of several networks its own, the per-host
pcaps). A packet crossing the bridge is in two captures; it is kept once, from
its sender's capture (the same rule as ``capture/all.pcapng``, which also keeps
a receiver's copy that a NAT box rewrote or a middlebox made), and
``frame`` points at it in that file so a person can find it in Wireshark.
Sequence numbers are made relative as tcpdump does: seq against the sender's
ISN, ack against the receiver's.

Every capture's copy of a kept packet is kept with it (``copies``, the sender's
first), joined by its signature (wire.frame_signature: what a router leaves as
it was): a router's two interfaces each hold one, so the packet is one packet
that crossed the router (its hops), and a copy the receiver lacks says the
packet never arrived. A host is every address it has (run.json's
``addresses``): a packet from a router's second address is the router's.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import Callable, Iterator

from ..observe.merge import keeps_copy
from ..rundir import RunDir
from ..runfiles import run_info
from ..runfiles.run_info import RunInfo
from ..wire import ACK, FIN, RST, SYN, Seen, TcpPacket, format_options, from_seen, read_tcp_seen, read_tcp_signed

ConnKey = tuple[str, int, str, int]  # client ip, client port, server ip, server port


@dataclass(slots=True)  # not frozen: a frozen dataclass is made four times slower
class Copy:
    """One capture's copy of a packet: the capture file's name (``router`` or ``router.right``: its host and,
    for a further interface, the network), the host whose capture it is, the frame in it, the packet as seen
    there (``tcp``)."""
    capture: str
    host: str
    frame: int
    seen: TcpPacket  # the packet as seen there; or, when ``ts`` is given, the kept packet, the same but for time
    ts: float | None = None  # when this capture saw it, for a copy that differs from the kept packet in nothing else

    @property
    def tcp(self) -> TcpPacket:
        """The packet as this capture holds it (made anew for a copy kept as its time alone: a million copies
        of a bridge's receivers then cost their times, not a million segments)."""
        s = self.seen
        if self.ts is None:
            return s
        return TcpPacket(self.ts, s.src, s.dst, s.sport, s.dport, s.seq, s.ack, s.flags, s.win, s.ttl, s.ip_id,
                         s.options, s.payload, s.checksum, self.frame)


@dataclass(slots=True, init=False)  # slots: a million of them must fit in memory
class Packet:
    n: int
    tcp: TcpPacket
    src_host: str | None
    dst_host: str | None
    capture: str  # the capture holding the kept copy: its host, or host.network for a further interface
    frame: int  # frame number in capture/<capture>.pcap
    conn: "Connection | None"
    rel_seq: int
    rel_ack: int
    rel_time: float
    probe: bool  # a zero-length probe (keepalive, zero window): seq = snd_una - 1
    _copies: list[Copy]  # every capture's copy, in time order (the kept one too): see ``copies``
    lost_at: str | None  # a packet that crossed a router and never reached its receiver: the last host it was on
    ts: float  # the segment's time (read often enough that a property costs seconds)
    joiner: "_Joiner | None" = field(default=None, compare=False, repr=False)  # joins the copies when asked

    def __init__(self, n: int, tcp: TcpPacket, src_host: str | None, dst_host: str | None, capture: str, frame: int,
                 conn: "Connection | None" = None, rel_seq: int = 0, rel_ack: int = 0, rel_time: float = 0.0,
                 probe: bool = False, copies: list[Copy] | None = None, lost_at: str | None = None) -> None:
        # by hand, not the dataclass's: ``ts`` set here, not in a __post_init__ call (a million packets)
        self.n = n
        self.tcp = tcp
        self.src_host = src_host
        self.dst_host = dst_host
        self.capture = capture
        self.frame = frame
        self.conn = conn
        self.rel_seq = rel_seq
        self.rel_ack = rel_ack
        self.rel_time = rel_time
        self.probe = probe
        self._copies = [] if copies is None else copies
        self.lost_at = lost_at
        self.ts = tcp.ts
        self.joiner = None

    @property
    def copies(self) -> list[Copy]:
        """Every capture's copy, in time order (the kept one too); the first ask of a run's packets that are
        joined when asked joins them all."""
        if self.joiner is not None and self.joiner.made is not None:
            self.joiner.run()
        return self._copies

    @copies.setter
    def copies(self, copies: list[Copy]) -> None:
        self._copies = copies

    def seen_by(self, host: str) -> list[Copy]:
        """The copies captured on ``host``'s interfaces (a router's: the one it came in on, then out)."""
        return [c for c in self.copies if c.host == host]

    def hops(self) -> list[str]:
        """The hosts that passed the packet on (neither its sender nor its receiver), in order."""
        if self.joiner is not None:
            return []  # copies joined when asked: no capture holds a packet neither from nor to its host
        src, dst = self.src_host, self.dst_host
        for c in self._copies:  # nearly every packet has none (the ladder asks of each one)
            if c.host != src and c.host != dst:
                return list(dict.fromkeys(c.host for c in self._copies if c.host != src and c.host != dst))
        return []

    def journey(self) -> str:
        """In words, the routers it crossed and where it stopped: ``via router``, ``never reached server: last
        seen on router``; empty for a packet between two hosts of one network."""
        hops = self.hops()
        if self.lost_at is not None:
            return f"never reached {self.dst_host}: last seen on {self.lost_at}"
        return f"via {', '.join(hops)}" if hops else ""

    def at(self, host: str) -> "Packet | None":
        """The packet as ``host``'s capture holds it (its first copy there), or None: never seen there."""
        seen = self.seen_by(host)
        if not seen:
            return None
        c = seen[0]
        return Packet(self.n, c.tcp, self.src_host, self.dst_host, c.capture, c.frame, self.conn, self.rel_seq,
                      self.rel_ack, self.rel_time + (c.tcp.ts - self.ts), self.probe, self.copies, self.lost_at)

    @property
    def flags(self) -> str:
        return self.tcp.flag_string()

    def endpoint(self, src: bool) -> str:
        host = self.src_host if src else self.dst_host
        ip = self.tcp.src if src else self.tcp.dst
        port = self.tcp.sport if src else self.tcp.dport
        return f"{host or ip}.{port}"

    def label(self) -> str:
        """The short form the ladder diagram prints: ``[F.] seq 1, ack 1, win 256``."""
        parts = [f"[{self.flags}]"]
        t = self.tcp
        plen = len(t.payload)
        if t.flags & SYN or plen:
            parts.append(f"seq {self.rel_seq}:{self.rel_seq + plen}" if plen else f"seq {self.rel_seq}")
        else:
            parts.append(f"seq {self.rel_seq}")
        text = " ".join(parts)
        if t.flags & ACK:
            text += f", ack {self.rel_ack}"
        text += f", win {t.win}"
        if plen:
            text += f", length {plen}"
        if self.probe:
            text += ", probe"  # zero length, seq = snd_una - 1: keepalive or zero-window
        return text

    def tcpdump_line(self) -> str:
        """As ``tcpdump -n`` prints it, with host names for addresses."""
        t = self.tcp
        seq = f"seq {self.rel_seq}:{self.rel_seq + len(t.payload)}" if t.payload else f"seq {self.rel_seq}"
        if t.flags & SYN and not t.payload:
            seq = f"seq {t.seq}"
        ack = f", ack {self.rel_ack}" if t.flags & ACK else ""
        opts = f", options {format_options(t.options)}" if t.options else ""
        return (f"IP {self.endpoint(True)} > {self.endpoint(False)}: Flags [{self.flags}], {seq}{ack}, "
                f"win {t.win}{opts}, length {len(t.payload)} (ttl {t.ttl}, id {t.ip_id})")

    def where(self) -> str:
        return f"capture/{self.capture}.pcap #{self.frame}"


@dataclass
class Connection:
    key: ConnKey
    client: str | None  # host names (None: not a lab host)
    server: str | None
    packets: list[Packet] = field(default_factory=list)
    isn: dict[str, int] = field(default_factory=dict)  # by source ip
    acked: dict[str, int] = field(default_factory=dict)  # by source ip: the last ack it sent (the peer's snd_una)

    @cached_property
    def name(self) -> str:
        c = f"{self.client or self.key[0]}:{self.key[1]}"
        s = f"{self.server or self.key[2]}:{self.key[3]}"
        return f"{c} -> {s}"

    def involves(self, a: str | None, b: str | None = None) -> bool:
        hosts = {self.client, self.server}
        return (a is None or a in hosts) and (b is None or b in hosts)

    def peer_of(self, host: str) -> str | None:
        return self.server if host == self.client else self.client


@dataclass
class Traffic:
    packets: list[Packet]
    connections: list[Connection]
    hosts: dict[str, str]  # host -> ip (on its first network)
    ip_host: dict[str, str] = field(default_factory=dict)  # every address of a host -> the host
    # each capture's SYN, FIN and RST segments in its order, read with the packets (TIME_WAIT's derivation reads
    # them: tcplab.observe.timewait.run_records); None: not read
    syn_fin_rst: dict[str, list[TcpPacket]] | None = None

    @property
    def start(self) -> float:
        return self.packets[0].ts if self.packets else 0.0

    def release(self) -> None:
        """Unlink the connections from their packets and the packets from the joiner of their copies (each
        packet's ``conn`` and its connection's list, its ``joiner`` and the joiner's list are the only cycles
        among them): once the last reference goes, a million packets are freed at once, with no collection
        walking them first. The connections are empty afterwards, and copies not joined yet never will be."""
        for c in self.connections:
            c.packets = []
        for p in self.packets:
            if p.joiner is not None:
                p.joiner.made = None  # one joiner for every packet that has one
                break


def host_captures(rd: RunDir, host: str) -> list[tuple[str, Path]]:
    """The host's captures, (name, file): ``capture/<host>.pcap`` (its first network's interface), then
    ``capture/<host>.<network>.pcap`` of each further one. A host's name holds no dot, so none is another's."""
    first = rd.pcap(host)
    more = sorted(rd.capture_dir.glob(f"{first.stem}.*.pcap"))
    return [(p.stem, p) for p in ([first] if first.is_file() else []) + more]


# a copy is matched to a kept packet seen at most this long before or after it (a router forwards in microseconds;
# the same signature again much later is another packet: a port reused, a retransmission with the IP ID wrapped)
COPY_WINDOW = 1.0


def load_traffic(run_dir: str | Path | RunDir, info: RunInfo | None = None, syn_fin_rst: bool = False) -> Traffic:
    """The run's packets; ``info``: its run.json, when the caller has read it already; ``syn_fin_rst``: keep
    each capture's SYN, FIN and RST segments too (``Traffic.syn_fin_rst``)."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    recorded = run_info.read(rd) if info is None else info
    hosts = dict(recorded.get("hosts") or {})
    if not hosts:  # a run without run.json: take the captures' names, no attribution
        hosts = {p.stem: "" for p in rd.capture_dir.glob("*.pcap") if "." not in p.stem}
    ip_host = {ip: h for h, ip in hosts.items() if ip}
    for h, by_net in (recorded.get("addresses") or {}).items():
        for ip in by_net.values():
            ip_host.setdefault(ip, h)
    captures = {h: host_captures(rd, h) for h in hosts}
    captured = {h for h, files in captures.items() if files}
    with paused_gc():
        marked: dict[str, list[TcpPacket]] | None = {} if syn_fin_rst else None
        packets = read_packets(captures, ip_host, captured, marked)
        _mark_lost(packets, captured)
        return Traffic(packets, _connections(packets), hosts, ip_host, marked)


# A packet's signature (wire.frame_signature: what a router leaves as it was) -> the packet, or the packets in time
# order where several share one.
Joins = dict[bytes, "Packet | list[Packet]"]


Captures = dict[str, list[tuple[str, Path]]]  # host -> its captures (host_captures)


def read_packets(captures: Captures, ip_host: dict[str, str], captured: set[str],
                 syn_fin_rst: dict[str, list[TcpPacket]] | None = None) -> list[Packet]:
    """The packets kept by observe.merge.keeps_copy's rule, in time order, each with every capture's copy.

    First the copies kept whatever the others hold are read: what each host sent, what it received from a
    host without a capture (and the signatures of the receivers' other copies). If one of those is the
    signature of none of these packets, the other copies whose signature none has are read: a receiver's
    copy of a captured sender's packet is then kept too (a box on the way rewrote it or made it: NAT, a
    middlebox's RST), and the rest join those. Last, every other copy joins the packet of its signature
    (no segment is made of a copy that differs from its packet only in time); when no capture holds a
    packet neither from nor to its host (no router, nothing on the way), that is done when a reader first
    asks for a packet's copies (``Packet.copies``): until then only the receivers' copies are left, and
    a report of a run on one network needs none of them. The packets and copies are those of deciding every
    copy's fate first and joining after. ``syn_fin_rst``: each capture's SYN, FIN and RST segments are put
    there as they are read."""
    rank: dict[str, int] = {}  # capture -> its place in the reading order: ties in time keep that order
    made: list[Packet] = []  # in the reading order
    joins: Joins = {}
    received: list[bytes] = []  # the signatures of the receivers' copies not kept
    on_the_way = False  # a capture holds a packet neither from nor to its host
    for host, files in captures.items():
        def first(src: str, dst: str, host: str = host) -> bool:
            nonlocal on_the_way
            sender, receiver = ip_host.get(src), ip_host.get(dst)
            on_the_way = on_the_way or (sender != host and receiver != host)
            return keeps_copy(host, sender, receiver, captured)

        def to_host(src: str, dst: str, host: str = host) -> bool:
            return ip_host.get(dst) == host

        for name, path in files:
            rank[name] = len(rank)
            with open(path, "rb") as f:
                flagged: tuple[int, list[TcpPacket]] | None = None
                if syn_fin_rst is not None:
                    flagged = (SYN | FIN | RST, syn_fin_rst.setdefault(name, []))
                for t, sig in read_tcp_signed(f, _every, first, to_host, received, flagged):
                    p = Packet(0, t, ip_host.get(t.src), ip_host.get(t.dst), name, t.index, copies=_UNJOINED)
                    made.append(p)
                    had = joins.setdefault(sig or b"", p)  # _add, inline: once per packet
                    if had is not p:
                        _add(joins, sig or b"", p)
    packets = sorted(made, key=attrgetter("ts"))  # stable: at the same time, in the order of the hosts, then files
    _in_time_order(joins)
    late: list[tuple[bytes, Packet]] = []  # kept from a receiver's capture: a box on the way rewrote it
    pending: list[tuple[str, str, Seen]] = []  # copies of no packet kept so far
    rewritten = any(sig not in joins for sig in received)  # else there is none of either
    del received
    for host, files in captures.items() if rewritten else ():
        rest = _rest(host, ip_host, captured)
        for name, path in files:
            with open(path, "rb") as f:
                for seen in read_tcp_seen(f, rest, joins):
                    t = from_seen(seen)
                    sender, receiver = ip_host.get(t.src), ip_host.get(t.dst)
                    if keeps_copy(host, sender, receiver, captured, {sender: joins} if sender else None, seen[0]):
                        late.append((seen[0], Packet(0, t, sender, receiver, name, t.index,
                                                     copies=[Copy(name, host, t.index, t)])))
                    else:
                        pending.append((name, host, seen))
    joiner = _Joiner(captures, ip_host, captured, made)
    if on_the_way:
        joiner.run(joins)
    else:
        for p in made:
            p.joiner = joiner
    del joins, made
    if late:
        joins = {}
        for sig, p in sorted(late, key=lambda k: (k[1].ts, rank[k[1].capture], k[1].frame)):
            _add(joins, sig, p)
        for name, host, seen in pending:
            found = joins.get(seen[0])
            if found is not None:
                _attach(found, name, host, seen)
        packets.extend(p for _, p in late)
        packets.sort(key=lambda p: (p.ts, rank[p.capture], p.frame))
    return packets


# The copies of a packet not joined yet (its own copy is made with the others'): never changed by anyone.
_UNJOINED: list[Copy] = []


class _Joiner:
    """Joins the copies of the packets first read (``made``, in the reading order) to them: at once, or when a
    reader first asks for one's copies (then the packets' signatures are read again rather than kept: a
    million of them would hold a tenth of a gigabyte through a report that never asks)."""

    def __init__(self, captures: Captures, ip_host: dict[str, str], captured: set[str], made: list[Packet]) -> None:
        self.captures, self.ip_host, self.captured = captures, ip_host, captured
        self.made: list[Packet] | None = made

    def run(self, joins: Joins | None = None) -> None:
        made, self.made = self.made, None
        if made is None:
            return  # joined already
        ip_host, captured = self.ip_host, self.captured
        host_of = {name: host for host, files in self.captures.items() for name, _ in files}
        with paused_gc():
            for p in made:
                p._copies = [Copy(p.capture, host_of[p.capture], p.frame, p.tcp)]  # a list of one, no room to spare
            if joins is None:
                joins = {}
                signatures = (seen[0] for host, files in self.captures.items() for name, path in files
                              for seen in _read_seen(path, _first(host, ip_host, captured)))
                for p, sig in zip(made, signatures):
                    _add(joins, sig, p)
                _in_time_order(joins)
            for host, files in self.captures.items():
                rest = _rest(host, ip_host, captured)
                for name, path in files:
                    for seen in _read_seen(path, rest):
                        found = joins.get(seen[0])
                        if found is not None:
                            _attach(found, name, host, seen)


def _first(host: str, ip_host: dict[str, str], captured: set[str]) -> Callable[[str, str], bool]:
    def first(src: str, dst: str) -> bool:
        return keeps_copy(host, ip_host.get(src), ip_host.get(dst), captured)
    return first


def _rest(host: str, ip_host: dict[str, str], captured: set[str]) -> Callable[[str, str], bool]:
    def rest(src: str, dst: str) -> bool:
        return not keeps_copy(host, ip_host.get(src), ip_host.get(dst), captured)
    return rest


def _read_seen(path: Path, keep: Callable[[str, str], bool]) -> Iterator[Seen]:
    with open(path, "rb") as f:
        yield from read_tcp_seen(f, keep)


def _every(src: str, dst: str) -> bool:
    return True


def _add(joins: Joins, sig: bytes, p: Packet) -> None:
    had = joins.setdefault(sig, p)
    if had is not p:
        if isinstance(had, list):
            had.append(p)
        else:
            joins[sig] = [had, p]


def _in_time_order(joins: Joins) -> None:
    """The packets of each shared signature in time order (stable: as the packets are sorted)."""
    for shared in joins.values():
        if isinstance(shared, list):
            shared.sort(key=attrgetter("ts"))


def _attach(found: Packet | list[Packet], name: str, host: str, seen: Seen) -> None:
    """Join a copy to the packet of its signature seen nearest in time (within COPY_WINDOW) that has no copy from
    this capture yet; a copy of none is left out (its sender's capture has the packet)."""
    _, ts, frame, ttl, win, csum, options, payload = seen
    if isinstance(found, list):
        nearest = _nearest(found, name, ts)
        if nearest is None:
            return
        best, copies = nearest, nearest._copies
    else:  # the one packet of this signature: nearly every copy
        best, copies = found, found._copies
        if abs(best.ts - ts) > COPY_WINDOW or (copies[0].capture == name if len(copies) == 1
                                                else any(c.capture == name for c in copies)):
            return
    k = best.tcp
    if ttl == k.ttl and win == k.win and csum == k.checksum and payload == k.payload and options == k.options:
        copy = Copy(name, host, frame, k, ts)  # the same segment (its signature is equal too) at another time
    else:  # the kept packet's values where they are equal (most are: its signature's are)
        copy = Copy(name, host, frame, TcpPacket(
            ts, k.src, k.dst, k.sport, k.dport, k.seq, k.ack, k.flags, k.win if win == k.win else win, ttl, k.ip_id,
            k.options if options == k.options else options, k.payload if payload == k.payload else payload,
            k.checksum if csum == k.checksum else csum, frame))
    if len(copies) == 1 and best.ts <= ts:  # two copies, already in time order
        best._copies = [copies[0], copy]  # a list of two (appending would leave room for eight)
    else:
        copies.append(copy)
        copies.sort(key=_copy_time)


def _nearest(found: list[Packet], name: str, ts: float) -> Packet | None:
    best: Packet | None = None
    for p in found:
        off = abs(p.ts - ts)
        if off <= COPY_WINDOW and (best is None or off < abs(best.ts - ts)) \
                and not any(c.capture == name for c in p._copies):
            best = p
    return best


def _mark_lost(packets: list[Packet], captured: set[str]) -> None:
    """``lost_at`` of each packet that reached a router and not its receiver."""
    lost: list[Packet] = []
    for p in packets:
        copies, dst = p._copies, p.dst_host  # packets whose copies are joined when asked crossed no router
        if len(copies) > 1 and dst in captured:
            if copies[-1].host == dst or copies[0].host == dst:  # it arrived: nearly every packet
                continue
            seen = {c.host for c in copies}
            if dst not in seen and seen - {p.src_host}:
                lost.append(p)
    if not lost:
        return
    # what each host sent, by what a NAT box leaves as it was: a packet it passed on rewritten was not lost there
    wanted = {(p._copies[-1].host, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.ip_id) for p in lost}
    sent_as: dict[tuple[str | None, int, int, int, int], list[float]] = {}
    for p in packets:
        key = (p.src_host, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.ip_id)
        if key in wanted:
            sent_as.setdefault(key, []).append(p.ts)
    for p in lost:
        last = p._copies[-1]
        passed_on = sent_as.get((last.host, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.ip_id), ())
        if not any(0 <= ts - last.tcp.ts <= COPY_WINDOW for ts in passed_on):
            p.lost_at = last.host


def _copy_time(c: Copy) -> float:
    return c.seen.ts if c.ts is None else c.ts


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a million packets are made: none of them is garbage yet, and
    each collection would walk them all again (it took a third of the time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def group_connections(packets: list[Packet]) -> list[Connection]:
    """Number the packets (in the order given), time them from the first, group them into connections and
    make their seq/ack relative; for packets of any capture, not only a run's."""
    return _connections(packets)


def _connections(packets: list[Packet]) -> list[Connection]:
    conns: dict[ConnKey, Connection] = {}
    order: list[Connection] = []
    t0 = packets[0].ts if packets else 0.0
    for i, p in enumerate(packets, 1):
        p.n = i
        p.rel_time = p.ts - t0
        t = p.tcp
        src, dst, flags, seq = t.src, t.dst, t.flags, t.seq
        fwd: ConnKey = (src, t.sport, dst, t.dport)
        c = conns.get(fwd) or conns.get((dst, t.dport, src, t.sport))
        if c is not None and flags & SYN and not flags & ACK and src in c.isn and c.isn[src] != seq:
            c = None  # the same 4-tuple used again: a new connection
        if c is None:
            is_client = bool(flags & SYN and not flags & ACK) or not (flags & SYN)
            key = fwd if is_client else (dst, t.dport, src, t.sport)
            c = Connection(key, p.src_host if is_client else p.dst_host, p.dst_host if is_client else p.src_host)
            conns[key] = c
            order.append(c)
        isn = c.isn
        if flags & SYN:
            isn.setdefault(src, seq)
        elif src not in isn:  # capture started mid-connection: count from the first seen
            isn[src] = (seq - 1) & 0xFFFFFFFF
        p.conn = c
        p.rel_seq = (seq - isn[src]) & 0xFFFFFFFF
        if flags & ACK:
            if dst not in isn:
                isn[dst] = (t.ack - 1) & 0xFFFFFFFF
            p.rel_ack = (t.ack - isn[dst]) & 0xFFFFFFFF
            # is_probe, inline: this loop runs once per packet of the run
            una = c.acked.get(dst)
            p.probe = (una is not None and not t.payload and not flags & (SYN | FIN | RST)
                       and (seq + 1) & 0xFFFFFFFF == una)
            c.acked[src] = t.ack
        c.packets.append(p)
    return order


def is_probe(t: TcpPacket, snd_una: int | None) -> bool:
    """A zero-length ACK one below what the peer last acknowledged (``snd_una - 1``): Linux's keepalive and
    zero-window probe, a byte the peer has already, so it must answer with an ACK of where it is."""
    return (snd_una is not None and not t.payload and t.flags & (SYN | FIN | RST) == 0 and bool(t.flags & ACK)
            and (t.seq + 1) & 0xFFFFFFFF == snd_una)
