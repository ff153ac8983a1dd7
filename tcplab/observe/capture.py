"""Capture sidecars: tcpdump in each host's network namespace, written one of two ways.

By default each packet is written as it crosses (``--immediate-mode -U``): a
wait step following the file sees a FIN as it crosses, a stop loses nothing,
and a host killed from outside keeps every packet it had. The price is a
wake-up and a write per packet: on 2 cores that holds about 50 000 small
packets a second with no kernel drops (bench/capture.py --variants).

A lab with ``capture: {blocks: true}`` (floods) writes every packet into the
run directory in large writes instead: libpcap's TPACKET_V3 ring hands
tcpdump packets a block at a time, and tcpdump's stdio writes its file a
buffer at a time (no ``-U``). Per packet it costs next to nothing (100 000
small packets a second with no drops); but a packet reaches the file up to a
second late, when the kernel retires its block, and tcpdump's stdio buffer
reaches it only when full or when tcpdump exits. So a stop is drained first
(tcplab/play/collect.py): tcpdump is asked for its counts until it has
handled every packet the kernel had taken for it, then stopped (SIGTERM: it
writes out its buffer and exits). What must be seen as it crosses (a wait
step waits for a host's FIN or RST) comes from a second tcpdump in the same
sidecar that keeps only those (the filter runs in the kernel: the others
cost it nothing), packet by packet, into ``capture/<host>.live``, which the
wait steps follow.

Both need NET_RAW only: no promiscuous mode (``-p``), the namespace has one
interface and all the host's traffic crosses it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..wire import RawPacket, decode_tcp, pcap_format, read_tcp

READY_LINE = "listening on"
COUNTS_LINE = "dropped by kernel"  # the last line of the counts tcpdump prints on SIGUSR1 and at exit


# tcpdump's ring (-B, KiB): kernel memory, taken once per capture. TPACKET_V3 packs packets into its blocks at
# their captured length, so 32 MiB holds some 200 000 small packets: seconds of a flood while tcpdump waits on
# a write. (In immediate mode libpcap used TPACKET_V2, a slot of the snaplen per packet: with -s 0, 64 KB on a
# veth with GSO, 32 MiB held 512 packets and dropped from 14 000 pps; bench/capture.py --variants.)
BUFFER_KIB = 32768
# Ethernet header (14), a VLAN tag (4) and the interface's MTU: every frame a lab's link carries, whole.
# Only the kernel's GSO super-packets (a host's bulk data handed down in 64 KB pieces) are longer; they are
# cut, and wire.decode_tcp keeps their length from the IP header.
FRAME_OVERHEAD = 18
DEFAULT_MTU = 1500  # the engine's bridge MTU where a lab sets none (Docker's default)


def frame_snaplen(mtu: int | None) -> int:
    """The snaplen that keeps every frame of a link of this MTU whole (the lab's, else the default)."""
    return (mtu or DEFAULT_MTU) + FRAME_OVERHEAD


# The packets a wait step looks for as they cross (tcplab/play/steps/wait.py): a host's FIN or RST.
LIVE_FILTER = "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0"
# The live capture's snaplen: Ethernet (14), an IP header with options (60), a TCP header with options (60),
# and room for a VLAN tag: what decode_tcp needs of a segment, whose length it takes from the IP header.
LIVE_SNAPLEN = 160

# How the sidecar starts its captures (a fixed script: the lab's filter and every name come as arguments).
# $1: the interface, or "" to find it by $2, the address it holds (the engine names a host's interfaces in an
# order of its own); $3: the live capture's file, or "" for none; $4: its filter; the rest: the main
# tcpdump's arguments after its interface. The live tcpdump starts first, its lines renamed (only the main
# one says READY_LINE); the main one starts once the live one has written its file's header, which tcpdump
# does once it captures, so the sidecar's READY_LINE means both capture.
CAPTURE_SCRIPT = (
    'i=$1; a=$2; live=$3; lf=$4; shift 4; '
    'if [ -n "$a" ]; then i=$(ip -o -4 addr show to "$a" | cut -d" " -f2 | cut -d@ -f1); '
    '[ -n "$i" ] || { echo "no interface with that address" >&2; exit 1; }; fi; '
    'if [ -n "$live" ]; then '
    f'{{ tcpdump -i "$i" -p -n -U --immediate-mode -s {LIVE_SNAPLEN} -Z root -w "$live" "$lf" 2>&1 >/dev/null '
    f'| sed -u "s/{READY_LINE}/live capture on/" >&2; }} & '
    'until [ -s "$live" ]; do kill -0 $! 2>/dev/null || exit 1; sleep 0.01; done; fi; '
    'exec tcpdump -i "$i" "$@"')


def live_filter(lab_filter: str) -> str:
    """The live capture's filter: the lab's, narrowed to FINs and RSTs."""
    return f"({lab_filter}) and ({LIVE_FILTER})" if lab_filter.strip() else LIVE_FILTER


@dataclass(frozen=True)
class CaptureSidecar:
    host: str
    filter: str
    interface: str = "eth0"
    buffer_kib: int = BUFFER_KIB
    snaplen: int = DEFAULT_MTU + FRAME_OVERHEAD

    def tcpdump_args(self, out_name: str, packet_by_packet: bool = False) -> list[str]:
        """The main tcpdump's arguments after ``-i <interface>``: every packet into ``/capture/<out_name>``, a
        block at a time, or each as it crosses (``packet_by_packet``: a wake-up and a write each)."""
        each = ["-U", "--immediate-mode"] if packet_by_packet else []
        return ["-p", "-n", *each, "-B", str(self.buffer_kib), "-s", str(self.snaplen), "-Z", "root",
                "-w", f"/capture/{out_name}", self.filter]

    def command(self, out_name: str, live_name: str | None = None, address: str | None = None,
                packet_by_packet: bool = False) -> list[str]:
        """The sidecar's argv: the main capture into ``/capture/<out_name>``, and with ``live_name`` the live
        one into ``/capture/<live_name>``; on the interface holding ``address`` if given, else ``interface``."""
        if live_name is None and address is None:
            return ["tcpdump", "-i", self.interface, *self.tcpdump_args(out_name, packet_by_packet)]
        return ["sh", "-c", CAPTURE_SCRIPT, "sh", "" if address else self.interface, address or "",
                f"/capture/{live_name}" if live_name else "", live_filter(self.filter),
                *self.tcpdump_args(out_name, packet_by_packet)]

    capabilities: tuple[str, ...] = ("NET_RAW",)


def drained(counts: dict[str, int], taken: int) -> bool:
    """Whether tcpdump has handled (written or lost) every packet of the ``taken`` the kernel had taken for
    it when asked first: ``received`` counts a packet when the kernel puts it in the ring (or drops it,
    the ring full); ``captured`` when tcpdump has read it from its block into its file's buffer."""
    return counts.get("captured", 0) + counts.get("dropped", 0) >= taken


def salvage(main: Path, live: Path) -> int:
    """Append to the capture ``main`` the packets of the live capture ``live`` it lacks; how many.

    For a capture that ended with its host's interface (the host's container killed, or ended): tcpdump
    lost the block the kernel had not handed it yet, up to its last second; the live capture had each FIN
    and RST as it crossed (cut at its snaplen: their lengths stay in their IP headers)."""
    try:
        with open(live, "rb") as f:
            head = f.read(24)
            rec, unit = pcap_format(head)
            records = []
            while len(h := f.read(rec.size)) == rec.size:
                data = f.read(rec.unpack(h)[2])
                records.append((h, data))
    except (OSError, ValueError):
        return 0
    try:
        with open(main, "rb") as f:
            magic = f.read(4)
            if magic and magic != head[:4]:
                return 0  # not written in the same format: leave it as it is
            f.seek(0)
            held = {_key(p) for p in read_tcp(f)} if magic else set()
    except FileNotFoundError:
        held = set()
    missing = [(h, d) for h, d in records if (k := _key(decode_tcp(RawPacket(0.0, d, len(d), 0)))) and k not in held]
    if missing:
        with open(main, "ab") as out:
            if out.tell() < 24:
                out.truncate(0)
                out.write(head)
            for h, d in missing:
                out.write(h + d)
    return len(missing)


def _key(p: object) -> tuple[object, ...] | None:
    if p is None:
        return None
    return tuple(getattr(p, a) for a in ("src", "dst", "sport", "dport", "seq", "ack", "flags", "ip_id"))


def parse_tcpdump_stats(text: str) -> dict[str, int]:
    """tcpdump's counts: captured, received by filter, dropped by kernel (the last ones it printed).

    tcpdump prints them when it exits, and on SIGUSR1 while it runs; the counts
    are totals since it started, so the last block printed is the truest.
    """
    out: dict[str, int] = {}
    for key, pat in (("captured", r"(\d+) packets? captured"), ("received", r"(\d+) packets? received by filter"),
                     ("dropped", r"(\d+) packets? dropped by kernel")):
        found = re.findall(pat, text)
        if found:
            out[key] = int(found[-1])
    return out
