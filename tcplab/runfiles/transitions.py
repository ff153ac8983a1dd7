"""``sockets/transitions.jsonl``: TCP state changes and resets of the lab's sockets, then the derived TIME_WAIT.

The tracer sidecar (``images/tools/tracer.py``, see :mod:`tcplab.observe.tracer`) writes one line per
tracepoint event while the lab runs::

    {"ts": 1795508890.32559, "event": "inet_sock_set_state", "saddr": "10.77.0.2", "sport": 8000,
     "daddr": "10.77.0.4", "dport": 43692, "old": "ESTABLISHED", "new": "CLOSE_WAIT",
     "host": "server", "peer": "win"}

``tcp_send_reset`` and ``tcp_receive_reset`` records carry ``state`` (and ``reason`` for a sent reset)
instead of ``old``/``new``. Once the tracer has stopped, ``lab down`` appends the records derived for the
timewait sockets no tracepoint reports (``"derived": "timewait"``, made by :mod:`tcplab.observe.timewait`,
written by :func:`append`). This module is the file's one reader and its one writer in tcplab; how a run's
state changes are seen with the derived records (written, or derived on read) is
:func:`tcplab.observe.timewait.run_records`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from pydantic import TypeAdapter, with_config
from typing_extensions import Required, TypedDict

from ..rundir import RunDir
from . import run_info
from ._io import OPEN, append_jsonl, read_lines, read_new_lines

NAME = "sockets/transitions.jsonl"


@with_config(OPEN)
class TransitionRecord(TypedDict, total=False):
    ts: Required[float]  # seconds since the epoch (the tracepoint's monotonic clock, moved onto the captures')
    event: str  # inet_sock_set_state, tcp_send_reset, tcp_receive_reset; timewait_handover (derived)
    saddr: str  # the socket's own address and port: it belongs to ``host``
    sport: int  # 0 for connect()'s CLOSE -> SYN_SENT, before the port is chosen
    daddr: str
    dport: int
    host: str | None  # the host owning the socket (an older tracer did not say: filled in on read)
    peer: str | None  # the host at the other end
    old: str  # inet_sock_set_state: the states, in the kernel's spelling without TCP_
    new: str
    state: str  # a reset: the socket's state; a hand-over mark: the timewait socket's (TIME_WAIT, FIN_WAIT2)
    reason: str  # tcp_send_reset: the kernel's reason (NO_SOCKET, TCP_ABORT_ON_CLOSE, ...)
    # derived records (tcplab/observe/timewait.py)
    derived: str  # "timewait"
    exact: bool  # False: the moment is known only within bounds (a timer, a snapshot)
    evidence: dict[str, Any]  # what it was joined from: handover, fin, peer_fin, rst, timer, snapshots, gone
    why: str
    ended_by: str  # the end of a timewait socket: "timewait timer expired", "reset sent", ...
    expires: float  # an entry still open at the end of the run: when its timer would end it
    handover_line: int | None  # a hand-over mark: the line of the tracepoint's X -> CLOSE it explains
    # never written: added on read
    line: int  # the record's 1-based line in the file (where a verdict tells a person to look)
    handover: str  # a tracepoint X -> CLOSE that was a hand-over: the timewait socket's state then


SCHEMA: TypeAdapter[TransitionRecord] = TypeAdapter(TransitionRecord)


def exists(rd: RunDir) -> bool:
    """Whether the tracer left the file (it did not run without tracefs)."""
    return rd.transitions_jsonl.is_file()


def read_path(path: Path, host_ips: dict[str, str] | None = None, numbered: bool = False
              ) -> Iterator[TransitionRecord]:
    """The records of a transitions.jsonl file, in file order; a line cut by a crash is skipped.

    With ``host_ips`` (host -> address), records written without attribution (an older tracer) get their
    ``host`` and ``peer`` from it. With ``numbered``, each record gets its ``line``."""
    ip_host = {ip: h for h, ip in (host_ips or {}).items()}
    for n, rec in read_lines(path, SCHEMA):
        if ip_host:
            rec.setdefault("host", ip_host.get(rec.get("saddr", "")))
            rec.setdefault("peer", ip_host.get(rec.get("daddr", "")))
        if numbered:
            rec["line"] = n
        yield rec


def read(rd: RunDir) -> list[TransitionRecord]:
    """The records of the run's file as written (no derivation), each with its ``line``, attributed to hosts
    by run.json's addresses."""
    hosts = run_info.read(rd).get("hosts")
    return list(read_path(rd.transitions_jsonl, hosts, numbered=True))


def follow(rd: RunDir, offset: int, host_ips: dict[str, str] | None = None) -> tuple[list[TransitionRecord], int]:
    """The records the tracer wrote since byte ``offset``, and where to read from next (a live view); with
    ``host_ips``, attributed to hosts as :func:`read_path` does."""
    records, offset = read_new_lines(rd.transitions_jsonl, SCHEMA, offset)
    ip_host = {ip: h for h, ip in (host_ips or {}).items()}
    for rec in records if ip_host else ():
        rec.setdefault("host", ip_host.get(rec.get("saddr", "")))
        rec.setdefault("peer", ip_host.get(rec.get("daddr", "")))
    return records, offset


def append(rd: RunDir, records: list[TransitionRecord]) -> None:
    """Records at the end of the file (the derived ones, once the tracer has stopped writing)."""
    for r in records:
        SCHEMA.validate_python(r)
    append_jsonl(rd.transitions_jsonl, [dict(r) for r in records])


def cite(rec: TransitionRecord) -> str:
    """Where a person finds the record: ``sockets/transitions.jsonl line 12``; for a derived one, also what it
    was derived from (a record derived on read has no line)."""
    here = f"{NAME} line {rec['line']}" if rec.get("line") else ""
    if not rec.get("derived"):
        return here or NAME
    evidence = rec.get("evidence") or {}
    parts = [evidence.get(k) for k in ("handover", "fin", "peer_fin", "rst", "timer")]
    snaps = evidence.get("snapshots") or ([evidence["gone"]] if evidence.get("gone") else [])
    if snaps:
        parts.append("snapshot" + ("s " if len(snaps) > 1 else " ") + ", ".join(str(x) for x in snaps))
    joined = ", ".join(str(p) for p in parts if p)
    what = f"derived: {rec.get('derived')}" + (f", from {joined}" if joined else "")
    return f"{here} ({what})" if here else what
