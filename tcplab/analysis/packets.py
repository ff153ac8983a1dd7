"""The lab's TCP packets, once each, on one clock, grouped into connections.

Reads the run directory only (``run.json`` for host addresses, the per-host
pcaps). A packet crossing the bridge is in two captures; it is kept once, from
its sender's capture (the same rule as ``capture/all.pcapng``), and
``frame`` points at it in that file so a person can find it in Wireshark.
Sequence numbers are made relative as tcpdump does: seq against the sender's
ISN, ack against the receiver's.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import Iterator

from ..observe.merge import keeps_copy
from ..rundir import RunDir
from ..runfiles import run_info
from ..runfiles.run_info import RunInfo
from ..wire import ACK, FIN, RST, SYN, TcpPacket, format_options, read_tcp

ConnKey = tuple[str, int, str, int]  # client ip, client port, server ip, server port


@dataclass(slots=True)  # slots: a million of them must fit in memory
class Packet:
    n: int
    tcp: TcpPacket
    src_host: str | None
    dst_host: str | None
    capture: str  # the host whose capture holds the kept copy
    frame: int  # frame number in capture/<capture>.pcap
    conn: "Connection | None" = None
    rel_seq: int = 0
    rel_ack: int = 0
    rel_time: float = 0.0
    probe: bool = False  # a zero-length probe (keepalive, zero window): seq = snd_una - 1
    ts: float = field(init=False)  # the segment's time (read often enough that a property costs seconds)

    def __post_init__(self) -> None:
        self.ts = self.tcp.ts

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
    hosts: dict[str, str]  # host -> ip

    @property
    def start(self) -> float:
        return self.packets[0].ts if self.packets else 0.0

    def release(self) -> None:
        """Unlink the connections from their packets (each packet's ``conn`` and its connection's list are
        the only cycles among them): once the last reference goes, a million packets are freed at once,
        with no collection walking them first. The connections are empty afterwards."""
        for c in self.connections:
            c.packets = []


def load_traffic(run_dir: str | Path | RunDir, info: RunInfo | None = None) -> Traffic:
    """The run's packets; ``info``: its run.json, when the caller has read it already."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    hosts = dict((run_info.read(rd) if info is None else info).get("hosts") or {})
    if not hosts:  # a run without run.json: take the captures' names, no attribution
        hosts = {p.stem: "" for p in rd.capture_dir.glob("*.pcap")}
    ip_host = {ip: h for h, ip in hosts.items() if ip}
    packets: list[Packet] = []
    captured = {h for h in hosts if rd.pcap(h).is_file()}
    with paused_gc():
        for host in hosts:
            if host not in captured:
                continue

            def mine(src: str, dst: str, host: str = host) -> bool:
                return keeps_copy(host, ip_host.get(src), ip_host.get(dst), captured)

            with open(rd.pcap(host), "rb") as f:
                packets.extend(Packet(0, t, ip_host.get(t.src), ip_host.get(t.dst), host, t.index)
                               for t in read_tcp(f, mine))
        packets.sort(key=attrgetter("ts"))  # stable: at the same time, in the order of the hosts, then of the file
        return Traffic(packets, _connections(packets), hosts)


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
