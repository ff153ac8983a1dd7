"""Socket tables as netstat printed them, each line marked with what is notable about it.

The text is kept exactly (a person compares it with the field report's
netstat output); the marks are computed per line: CLOSE_WAIT, FIN_WAIT2, and
a connection socket that no process owns next to a listener that one does
(it is waiting in the accept queue).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..analysis.timeline import snapshot_order
from ..observe.sockets import parse_netstat
from ..rundir import RunDir
from ..runfiles.snapshots import SocketRow

_QUEUED_STATES = {"ESTABLISHED", "CLOSE_WAIT", "SYN_RECV"}


@dataclass
class TableLine:
    text: str
    marks: list[str] = field(default_factory=list)  # css classes: close-wait, fin-wait2, unaccepted
    note: str = ""


@dataclass
class HostTable:
    host: str
    argv: str
    lines: list[TableLine]
    ss_argv: str
    ss_raw: str
    file: str | None  # relative path of the .txt copy, when it exists
    ss_file: str | None


@dataclass
class SnapshotView:
    name: str
    t: float  # relative to the report's t0
    step: Any
    hosts: list[HostTable]


def mark_lines(raw: str, ss_records: list[SocketRow] | None = None) -> list[TableLine]:
    """Each line of netstat's output, with marks on the sockets a reader should look at."""
    lines = raw.splitlines()
    recs = [parse_netstat(line) for line in lines]
    listening = {r[0].local_port for r in recs if r and r[0].state == "LISTEN" and r[0].pid is not None}
    timewait = {(r.get("local_addr"), r.get("local_port"), r.get("peer_addr"), r.get("peer_port"))
                for r in (ss_records or []) if str(r.get("timer") or "").startswith("timewait")}
    out: list[TableLine] = []
    for line, parsed in zip(lines, recs):
        tl = TableLine(line)
        if parsed:
            r = parsed[0]
            notes = []
            if r.state == "CLOSE_WAIT":
                tl.marks.append("close-wait")
                notes.append("CLOSE_WAIT: the peer closed; no close() here yet")
            if r.state == "FIN_WAIT2":
                tl.marks.append("fin-wait2")
                key = (r.local_addr, r.local_port, r.peer_addr, r.peer_port)
                notes.append("FIN_WAIT2" + (": orphaned (a timewait socket, see ss)" if key in timewait else ""))
            if r.pid is None and r.state in _QUEUED_STATES and r.peer_port and r.local_port in listening:
                tl.marks.append("unaccepted")
                notes.append(f"no process owns it: never accept()ed from the listener on :{r.local_port}")
            tl.note = "; ".join(notes)
        out.append(tl)
    return out


def snapshot_views(snapshots: dict[str, Any], t0: float, rd: RunDir) -> list[SnapshotView]:
    views: list[SnapshotView] = []
    for name, snap in snapshot_order(snapshots):
        hosts: list[HostTable] = []
        for host, tables in sorted((snap.get("hosts") or {}).items()):
            ns = (tables or {}).get("netstat") or {}
            ss = (tables or {}).get("ss") or {}
            f = rd.table(host, name)
            sf = rd.table(host, name, "ss")
            hosts.append(HostTable(
                host, " ".join(str(a) for a in ns.get("argv") or ["netstat"]),
                mark_lines(str(ns.get("raw") or ""), ss.get("records") or []),
                " ".join(str(a) for a in ss.get("argv") or ["ss"]), str(ss.get("raw") or ""),
                str(f.relative_to(rd.path)) if f.is_file() else None,
                str(sf.relative_to(rd.path)) if sf.is_file() else None))
        views.append(SnapshotView(str(name), float(snap.get("time") or 0.0) - t0, snap.get("step"), hosts))
    return views
