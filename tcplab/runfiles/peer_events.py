"""``logs/peer/<host>.jsonl``: what a Windows peer's sidecar did (``images/tools/winpeer.py`` writes it, line by
line, from inside the host; tcplab only reads it).

``{"ts": 1795508890.1, "event": "rst_sent", "conn": {"src": "10.77.0.4", "sport": 52552, "dst": "10.77.0.2",
"dport": 8000}, "detail": "[R.] seq 2 ack 1: FIN_WAIT_2 timer (120 s) expired"}``
"""
from __future__ import annotations

from pydantic import TypeAdapter, with_config
from typing_extensions import TypedDict

from ..rundir import RunDir
from ._io import OPEN, read_lines

NAME = "logs/peer/<host>.jsonl"



@with_config(OPEN)
class Conn(TypedDict, total=False):
    src: str
    sport: int
    dst: str
    dport: int


@with_config(OPEN)
class PeerEvent(TypedDict, total=False):
    ts: float
    event: str  # timer_priority (first), syn_rewritten, fin_sent, peer_fin, fin_acked, timer_cancelled, rst_sent, error
    conn: Conn | None
    detail: str


SCHEMA: TypeAdapter[PeerEvent] = TypeAdapter(PeerEvent)


def read(rd: RunDir) -> dict[str, list[PeerEvent]]:
    """Each peer sidecar's events, by host; empty for a run without Windows peers."""
    if not rd.peer_logs_dir.is_dir():
        return {}
    return {p.stem: [e for _, e in read_lines(p, SCHEMA)] for p in sorted(rd.peer_logs_dir.glob("*.jsonl"))}
