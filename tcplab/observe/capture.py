"""Capture sidecars: one tcpdump per host, in the host's network namespace.

The sidecar writes straight into the run directory (a bind mount), packet by
packet (``-U``), so whatever was captured survives a crash of anything else.
It needs NET_RAW only: no promiscuous mode (``-p``), the namespace has one
interface and all the host's traffic crosses it.

``--immediate-mode`` matters as much as ``-U``: without it libpcap hands
packets over in ring-buffer blocks, when a block fills or after a 1 s
timeout, so a packet could reach the file a second late (a wait step
watching the file sees it late) or never (tcpdump stopped by SIGTERM drops
the block it has not been given yet: the last packets of a run).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

READY_LINE = "listening on"
COUNTS_LINE = "dropped by kernel"  # the last line of the counts tcpdump prints on SIGUSR1 and at exit


# tcpdump's ring (-B, KiB). In immediate mode libpcap uses TPACKET_V2, whose slots are each sized for the
# snaplen, or with -s 0 for the largest frame the interface can hand over: 64 KB on a veth with offloads
# (GSO), so 32 MiB held 512 packets (in 64 MiB of blocks) and a burst while tcpdump waits on a write
# overflowed it (bench/capture.py: kernel drops from 14 000 pps, and at 70 000). With the snaplen of a
# frame (below) the same 32 MiB holds ~20 000 slots of 1680 bytes. It is kernel memory, taken once per capture.
BUFFER_KIB = 32768
# Ethernet header (14), a VLAN tag (4) and the interface's MTU: every frame a lab's link carries, whole.
# Only the kernel's GSO super-packets (a host's bulk data handed down in 64 KB pieces) are longer; they are
# cut, and wire.decode_tcp keeps their length from the IP header.
FRAME_OVERHEAD = 18
DEFAULT_MTU = 1500  # the engine's bridge MTU where a lab sets none (Docker's default)


def frame_snaplen(mtu: int | None) -> int:
    """The snaplen that keeps every frame of a link of this MTU whole (the lab's, else the default)."""
    return (mtu or DEFAULT_MTU) + FRAME_OVERHEAD


@dataclass(frozen=True)
class CaptureSidecar:
    host: str
    filter: str
    interface: str = "eth0"
    buffer_kib: int = BUFFER_KIB
    snaplen: int = DEFAULT_MTU + FRAME_OVERHEAD

    def command(self, out_name: str) -> list[str]:
        return ["tcpdump", "-i", self.interface, "-p", "-n", "-U", "--immediate-mode", "-B", str(self.buffer_kib),
                "-s", str(self.snaplen), "-Z", "root", "-w", f"/capture/{out_name}", self.filter]

    capabilities: tuple[str, ...] = ("NET_RAW",)


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
