"""``sockets/snapshots.json``: the socket tables of every host at each snapshot, parsed (the text is beside it).

``{"close_wait": {"time": 1795508890.5, "step": 4, "hosts": {"server": {"netstat": TABLE, "ss": TABLE}}}}``;
a TABLE is ``{"argv", "raw", "records": [ROW...], "ok", "error"}`` (:func:`tcplab.observe.sockets.snapshot_tables`)
and a host that was not running has ``{"missing": "host x was not running"}`` instead. Each host's entry
also holds its kernel counters, ``"counters": {"argv", "values": {"TcpExtListenOverflows": 3}, "ok", "error"}``.
The file is rewritten whole at each snapshot; ``end`` is the one taken when the steps are done.
"""
from __future__ import annotations

from pydantic import TypeAdapter, with_config
from typing_extensions import Required, TypedDict

from ..rundir import RunDir
from ._io import DEFERRED, OPEN, read_document, write_json

NAME = "sockets/snapshots.json"



@with_config(OPEN)
class SocketRow(TypedDict, total=False):
    """One socket as netstat or ss listed it (:class:`tcplab.observe.sockets.SocketRecord`)."""
    source: str  # netstat, ss
    state: str  # the kernel's spelling: CLOSE_WAIT, FIN_WAIT2
    local_addr: str
    local_port: int | None
    peer_addr: str
    peer_port: int | None
    recv_q: int | None
    send_q: int | None
    pid: int | None  # the owner (the lowest PID of those sharing it); None: no process holds it
    program: str | None
    timer: str | None  # ss's timer: "timewait,59sec,0"
    info: str  # ss's extended information


@with_config(OPEN)
class ToolTable(TypedDict, total=False):
    argv: list[str]
    raw: str  # as the tool printed it
    records: list[SocketRow]
    ok: bool  # the tool ran (an empty table is evidence only then); older runs do not say
    error: str  # why it did not


@with_config(OPEN)
class CounterTable(TypedDict, total=False):
    """The host's kernel counters by nstat's name (:mod:`tcplab.observe.counters`); not ``ok``: unread."""
    argv: list[str]
    values: dict[str, int]
    ok: bool
    error: str


@with_config(OPEN)
class HostTables(TypedDict, total=False):
    netstat: ToolTable
    ss: ToolTable
    counters: CounterTable  # absent in runs recorded before counters were read
    missing: str  # why the host has no tables (it was not running)


@with_config(OPEN)
class Snapshot(TypedDict, total=False):
    time: Required[float]  # taken before the tables: a snapshot's tables are at or after it
    step: int  # the index of the step that took it (the number of steps for ``end``)
    hosts: dict[str, HostTables]


Snapshots = dict[str, Snapshot]  # by name, in the order they were taken
SCHEMA: TypeAdapter[Snapshots] = TypeAdapter(Snapshots, config=DEFERRED)


def write(rd: RunDir, snapshots: Snapshots) -> None:
    """Every snapshot so far (the file is rewritten whole)."""
    SCHEMA.validate_python(snapshots)
    write_json(rd.snapshots_json, snapshots)


def changed(rd: RunDir) -> float | None:
    """When the file was last rewritten (its mtime), None while there is none: a live view re-reads it then."""
    try:
        return rd.snapshots_json.stat().st_mtime
    except OSError:
        return None


def read(rd: RunDir) -> Snapshots:
    """Every snapshot the run took; empty for a run without the file."""
    return read_document(rd.snapshots_json, SCHEMA, {})
