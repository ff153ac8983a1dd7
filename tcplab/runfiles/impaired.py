"""``logs/impair/<host>.log``: each packet a host's impairment sidecar impaired (``images/impair/impair.c``
writes it, one line per packet; tcplab only reads it).

``1795508890.123456 loss drop seq=3456789012 flags=P. len=6``: the time (epoch seconds), the rule (the impair
step's ``as``), the action, the TCP sequence number (absolute), the flags as tcpdump prints them, the payload's
length.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..rundir import RunDir

NAME = "logs/impair/<host>.log"

_LINE = re.compile(r"^(?P<ts>\d+\.\d+) (?P<rule>\S+) (?P<action>\w+) seq=(?P<seq>\d+) flags=(?P<flags>\S+) "
                   r"len=(?P<len>-?\d+)$")


@dataclass(frozen=True)
class Impaired:
    """One packet the sidecar impaired."""
    ts: float
    host: str
    rule: str
    action: str  # drop, delay, duplicate
    seq: int
    flags: str
    length: int


def parse(text: str, host: str) -> list[Impaired]:
    """The log's packets; a line that does not fit (cut by a crash) is skipped."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            out.append(Impaired(float(m["ts"]), host, m["rule"], m["action"], int(m["seq"]), m["flags"],
                                int(m["len"])))
    return out


def read(rd: RunDir) -> list[Impaired]:
    """Every impaired packet of the run, in time order; empty for a run without impairment."""
    folder: Path = rd.impair_logs_dir
    if not folder.is_dir():
        return []
    out: list[Impaired] = []
    for p in sorted(folder.glob("*.log")):
        try:
            out += parse(p.read_text(errors="replace"), p.stem)
        except OSError:
            continue
    return sorted(out, key=lambda i: i.ts)
