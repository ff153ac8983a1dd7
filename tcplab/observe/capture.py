"""Capture sidecars: one tcpdump per host, in the host's network namespace.

The sidecar writes straight into the run directory (a bind mount), packet by
packet (``-U``), so whatever was captured survives a crash of anything else.
It needs NET_RAW only: no promiscuous mode (``-p``), the namespace has one
interface and all the host's traffic crosses it.
"""
from __future__ import annotations

from dataclasses import dataclass

READY_LINE = "listening on"


@dataclass(frozen=True)
class CaptureSidecar:
    host: str
    filter: str
    interface: str = "eth0"

    def command(self, out_name: str) -> list[str]:
        return ["tcpdump", "-i", self.interface, "-p", "-n", "-U", "-s", "0", "-Z", "root",
                "-w", f"/capture/{out_name}", self.filter]

    capabilities: tuple[str, ...] = ("NET_RAW",)


def parse_tcpdump_stats(text: str) -> dict[str, int]:
    """tcpdump's closing counts: captured, received by filter, dropped by kernel."""
    import re

    out: dict[str, int] = {}
    for key, pat in (("captured", r"(\d+) packets? captured"), ("received", r"(\d+) packets? received by filter"),
                     ("dropped", r"(\d+) packets? dropped by kernel")):
        m = re.search(pat, text)
        if m:
            out[key] = int(m.group(1))
    return out
