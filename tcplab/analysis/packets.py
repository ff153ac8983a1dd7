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
first): a router's two interfaces each hold one, so the packet is one packet
that crossed the router (its hops), and a copy the receiver lacks says the
packet never arrived. A host is every address it has (run.json's
``addresses``): a packet from a router's second address is the router's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..observe.merge import keeps_copy, sent_signatures, signature
from ..rundir import RunDir
from ..runfiles import run_info
from ..runfiles.run_info import RunInfo
from ..wire import ACK, FIN, RST, SYN, RawPacket, TcpPacket, decode_tcp, format_options, read_pcap

ConnKey = tuple[str, int, str, int]  # client ip, client port, server ip, server port


@dataclass(frozen=True)
class Copy:
    """One capture's copy of a packet: the capture file's name (``router`` or ``router.right``: its host and,
    for a further interface, the network), the host whose capture it is, the frame in it, the packet as seen
    there."""
    capture: str
    host: str
    frame: int
    tcp: TcpPacket


@dataclass
class Packet:
    n: int
    tcp: TcpPacket
    src_host: str | None
    dst_host: str | None
    capture: str  # the capture holding the kept copy: its host, or host.network for a further interface
    frame: int  # frame number in capture/<capture>.pcap
    conn: "Connection | None" = None
    rel_seq: int = 0
    rel_ack: int = 0
    rel_time: float = 0.0
    probe: bool = False  # a zero-length probe (keepalive, zero window): seq = snd_una - 1
    copies: list[Copy] = field(default_factory=list)  # every capture's copy, in time order (the kept one too)
    lost_at: str | None = None  # a packet that crossed a router and never reached its receiver: the last host it was on

    def seen_by(self, host: str) -> list[Copy]:
        """The copies captured on ``host``'s interfaces (a router's: the one it came in on, then out)."""
        return [c for c in self.copies if c.host == host]

    def hops(self) -> list[str]:
        """The hosts that passed the packet on (neither its sender nor its receiver), in order."""
        return list(dict.fromkeys(c.host for c in self.copies if c.host not in (self.src_host, self.dst_host)))

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
    def ts(self) -> float:
        return self.tcp.ts

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

    @property
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

    @property
    def start(self) -> float:
        return self.packets[0].ts if self.packets else 0.0


CopyKey = tuple[str, str, int, int, int, int, int, int]


def _copy_key(t: TcpPacket) -> CopyKey:
    """What stays the same as a packet crosses a router (not its TTL, nor a clamped MSS, nor its length: a
    router that cuts a GSO packet into segments passes on its first with the same sequence number and IP ID):
    the same key in two captures is the same packet."""
    return t.src, t.dst, t.sport, t.dport, t.seq, t.ack, t.flags, t.ip_id


def host_captures(rd: RunDir, host: str) -> list[tuple[str, Path]]:
    """The host's captures, (name, file): ``capture/<host>.pcap`` (its first network's interface), then
    ``capture/<host>.<network>.pcap`` of each further one. A host's name holds no dot, so none is another's."""
    first = rd.pcap(host)
    more = sorted(rd.capture_dir.glob(f"{first.stem}.*.pcap"))
    return [(p.stem, p) for p in ([first] if first.is_file() else []) + more]


# a copy is matched to a kept packet seen at most this long before or after it (a router forwards in microseconds;
# the same key again much later is another packet: a port reused, a retransmission with the IP ID wrapped)
COPY_WINDOW = 1.0


def load_traffic(run_dir: str | Path | RunDir, info: RunInfo | None = None) -> Traffic:
    """The run's packets; ``info``: its run.json, when the caller has read it already."""
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
    frames: dict[str, list[tuple[str, RawPacket]]] = {}
    for host in hosts:
        for name, path in captures[host]:
            with open(path, "rb") as f:
                frames.setdefault(host, []).extend((name, raw) for raw in read_pcap(f))
    sent = sent_signatures({h: (raw for _, raw in fs) for h, fs in frames.items()}, ip_host)
    kept: list[tuple[float, int, Packet]] = []
    others: list[tuple[str, str, int, TcpPacket]] = []  # copies not kept: (capture, host, frame, packet)
    for order, host in enumerate(hosts):
        for name, raw in frames.get(host, ()):
            t = decode_tcp(raw)
            if t is None:
                continue
            src, dst = ip_host.get(t.src), ip_host.get(t.dst)
            if keeps_copy(host, src, dst, captured, sent, signature(raw)):
                p = Packet(0, t, src, dst, name, raw.index)
                p.copies.append(Copy(name, host, raw.index, t))
                kept.append((t.ts, order, p))
            else:
                others.append((name, host, raw.index, t))
    kept.sort(key=lambda k: (k[0], k[1]))
    packets = [k[2] for k in kept]
    _attach_copies(packets, others)
    # what each host sent, by what a NAT box leaves as it was: a packet it passed on rewritten was not lost there
    sent_as: dict[tuple[str | None, int, int, int, int], list[float]] = {}
    for p in packets:
        sent_as.setdefault((p.src_host, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.ip_id), []).append(p.ts)
    for p in packets:
        if len(p.copies) > 1 and p.dst_host in captured:
            seen = {c.host for c in p.copies}
            if p.dst_host not in seen and seen - {p.src_host}:
                last = p.copies[-1]
                passed_on = sent_as.get((last.host, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.ip_id), ())
                if not any(0 <= ts - last.tcp.ts <= COPY_WINDOW for ts in passed_on):
                    p.lost_at = last.host
    return Traffic(packets, _connections(packets), hosts, ip_host)


def _attach_copies(packets: list[Packet], others: list[tuple[str, str, int, TcpPacket]]) -> None:
    """Each capture's copy of a kept packet joins it (the nearest in time with the same key, one copy per
    capture); a copy of no kept packet is left out, as before (its sender's capture has it)."""
    by_key: dict[CopyKey, list[Packet]] = {}
    for p in packets:
        by_key.setdefault(_copy_key(p.tcp), []).append(p)
    for name, host, frame, t in others:  # each capture's in its own time order
        best: Packet | None = None
        for p in by_key.get(_copy_key(t), ()):
            off = abs(p.ts - t.ts)
            if off <= COPY_WINDOW and (best is None or off < abs(best.ts - t.ts)) \
                    and not any(c.capture == name for c in p.copies):
                best = p
        if best is not None:
            best.copies.append(Copy(name, host, frame, t))
    for p in packets:
        if len(p.copies) > 1:
            p.copies.sort(key=lambda c: c.tcp.ts)


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
        fwd: ConnKey = (t.src, t.sport, t.dst, t.dport)
        rev: ConnKey = (t.dst, t.dport, t.src, t.sport)
        c = conns.get(fwd) or conns.get(rev)
        if c is not None and t.flags & SYN and not t.flags & ACK and t.src in c.isn and c.isn[t.src] != t.seq:
            c = None  # the same 4-tuple used again: a new connection
        if c is None:
            is_client = bool(t.flags & SYN and not t.flags & ACK) or not (t.flags & SYN)
            key = fwd if is_client else rev
            c = Connection(key, p.src_host if is_client else p.dst_host, p.dst_host if is_client else p.src_host)
            conns[key] = c
            order.append(c)
        if t.flags & SYN:
            c.isn.setdefault(t.src, t.seq)
        elif t.src not in c.isn:  # capture started mid-connection: count from the first seen
            c.isn[t.src] = (t.seq - 1) & 0xFFFFFFFF
        p.conn = c
        p.rel_seq = (t.seq - c.isn[t.src]) & 0xFFFFFFFF
        other = t.dst
        if t.flags & ACK:
            if other not in c.isn:
                c.isn[other] = (t.ack - 1) & 0xFFFFFFFF
            p.rel_ack = (t.ack - c.isn[other]) & 0xFFFFFFFF
        p.probe = is_probe(t, c.acked.get(t.dst))
        if t.flags & ACK:
            c.acked[t.src] = t.ack
        c.packets.append(p)
    return order


def is_probe(t: TcpPacket, snd_una: int | None) -> bool:
    """A zero-length ACK one below what the peer last acknowledged (``snd_una - 1``): Linux's keepalive and
    zero-window probe, a byte the peer has already, so it must answer with an ACK of where it is."""
    return (snd_una is not None and not t.payload and t.flags & (SYN | FIN | RST) == 0 and bool(t.flags & ACK)
            and (t.seq + 1) & 0xFFFFFFFF == snd_una)
