"""Watching a capture while it is written: new TCP packets since the last look."""
from __future__ import annotations

import struct
from pathlib import Path

from ..wire import TcpPacket, decode_tcp, pcap_format, read_records


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
                if len(head) < 24:
                    return []
                try:
                    self.rec, self.unit = pcap_format(head)
                except ValueError:
                    return []
                self.offset = 24
            f.seek(self.offset)
            for raw in read_records(f, self.rec, self.unit, self.index):
                self.offset, self.index = f.tell(), raw.index  # a truncated record is read again next time
                pkt = decode_tcp(raw)
                if pkt is not None:
                    out.append(pkt)
        return out
