"""Watching a capture while it is written: new TCP packets since the last look."""
from __future__ import annotations

import struct
from pathlib import Path

from ..wire import _PCAP_MAGIC, RawPacket, TcpPacket, decode_tcp


class PcapTail:
    """Reads the complete records appended to a pcap file since the previous call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.index = 0
        self.rec: struct.Struct | None = None
        self.unit = 1e-6

    def new_packets(self) -> list[TcpPacket]:
        try:
            f = open(self.path, "rb")
        except OSError:
            return []
        out: list[TcpPacket] = []
        with f:
            if self.rec is None:
                head = f.read(24)
                if len(head) < 24 or head[:4] not in _PCAP_MAGIC:
                    return []
                endian, self.unit = _PCAP_MAGIC[head[:4]]
                self.rec = struct.Struct(endian + "IIII")
                self.offset = 24
            f.seek(self.offset)
            while True:
                h = f.read(16)
                if len(h) < 16:
                    break
                sec, frac, incl, orig = self.rec.unpack(h)
                data = f.read(incl)
                if len(data) < incl:
                    break
                self.offset += 16 + incl
                self.index += 1
                pkt = decode_tcp(RawPacket(sec + frac * self.unit, data, orig, self.index))
                if pkt is not None:
                    out.append(pkt)
        return out
