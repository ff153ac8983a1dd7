"""The connection sockets of ``sockets/snapshots.json`` as rows: one reader for everyone who needs them.

A snapshot holds, per host, netstat's table (what the field report read, with owners) and ss's (which
also shows timers: ``timer:(timewait,59sec,0)``). The timeline, the TIME_WAIT derivation and the
explanation read the same rows through :func:`snapshot_sockets`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..runfiles.snapshots import HostTables, Snapshot, Snapshots, SocketRow, ToolTable

@dataclass(frozen=True)
class SnapshotSocket:
    """A connection socket as one snapshot listed it (ss preferred: it shows timers)."""
    snapshot: str
    time: float
    host: str
    state: str
    local_ip: str
    local_port: int
    peer_ip: str
    peer_port: int
    pid: int | None
    program: str | None
    timer: str | None
    recv_q: int | None = None

    def key(self) -> tuple[str, int, str, int]:
        return (self.local_ip, self.local_port, self.peer_ip, self.peer_port)


def snapshot_order(snapshots: Snapshots) -> list[tuple[str, Snapshot]]:
    """Snapshots in time order (the file keeps insertion order, but a reader should not rely on it)."""
    return sorted(((n, s) for n, s in snapshots.items() if isinstance(s, dict)),
                  key=lambda kv: float(kv[1].get("time") or 0.0))


def _rkey(r: SocketRow) -> tuple[Any, Any, Any, Any]:
    return (r.get("local_addr"), r.get("local_port"), r.get("peer_addr"), r.get("peer_port"))


def snapshot_sockets(snapshots: Snapshots) -> list[SnapshotSocket]:
    """Every connection socket of every snapshot (not listeners): netstat's rows (what the field report read,
    with owners), each completed by ss's timer, then the sockets only ss listed."""
    out: list[SnapshotSocket] = []
    for name, snap in snapshot_order(snapshots):
        t = float(snap.get("time") or 0.0)
        for host, tables in sorted((snap.get("hosts") or {}).items()):
            ss = [r for r in ((tables or {}).get("ss") or {}).get("records") or [] if isinstance(r, dict)]
            ns = [r for r in ((tables or {}).get("netstat") or {}).get("records") or [] if isinstance(r, dict)]
            by_ss = {_rkey(r): r for r in ss}
            listed = set()
            in_netstat = {_rkey(n) for n in ns}
            for r in ns + [r for r in ss if _rkey(r) not in in_netstat]:
                lp, pp = r.get("local_port"), r.get("peer_port")
                if not lp or not pp or r.get("state") == "LISTEN" or _rkey(r) in listed:
                    continue
                listed.add(_rkey(r))
                twin: SocketRow = by_ss.get(_rkey(r), {})
                pid, prog = r.get("pid"), r.get("program")
                if pid is None and twin.get("pid") is not None:
                    pid, prog = twin.get("pid"), twin.get("program")
                out.append(SnapshotSocket(name, t, host, str(r.get("state") or ""), str(r.get("local_addr")), int(lp),
                                          str(r.get("peer_addr")), int(pp), pid, prog,
                                          r.get("timer") or twin.get("timer"), r.get("recv_q")))
    return out


def tables_taken(snapshots: Snapshots) -> dict[str, list[tuple[float, str]]]:
    """Host -> (time, name) of the snapshots that hold a usable table of that host, in time order: only
    there is a socket's absence evidence that it is gone (a tool missing from the image lists nothing)."""
    out: dict[str, list[tuple[float, str]]] = {}
    for name, snap in snapshot_order(snapshots):
        for host, tables in (snap.get("hosts") or {}).items():
            if table_problem(tables) is None:
                out.setdefault(host, []).append((float(snap.get("time") or 0.0), name))
    return out


def snapshot_times(snapshots: Snapshots) -> dict[str, list[float]]:
    """Host -> the times of the snapshots with a usable table of that host (a socket absent there is gone)."""
    return {host: [t for t, _ in taken] for host, taken in tables_taken(snapshots).items()}


def table_problem(tables: HostTables | None) -> str | None:
    """Why a host's entry in a snapshot holds no usable table, or None when one tool's table is good."""
    if tables is None:
        return "no table was taken"
    if tables.get("missing"):
        return str(tables["missing"])
    problems = []
    for tool, t in tool_tables(tables):
        if not isinstance(t, dict):
            continue
        if tool_ok(t):
            return None
        problems.append(f"{tool}: {t.get('error') or 'printed nothing'}")
    return "; ".join(problems) or "no table was taken"


def tool_tables(tables: HostTables) -> list[tuple[str, ToolTable | None]]:
    """Each tool's table of a host's entry in a snapshot, netstat's first (what the field report read)."""
    return [("netstat", tables.get("netstat")), ("ss", tables.get("ss"))]


def tool_ok(table: ToolTable) -> bool:
    """A tool's table is evidence when the tool ran; runs written before this was recorded count a table
    with any text or rows."""
    if "ok" in table:
        return bool(table["ok"])
    return bool(str(table.get("raw") or "").strip() or table.get("records"))


_SS_TIME = re.compile(r"^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$")


def timer_left(timer: str | None) -> tuple[str, float] | None:
    """ss's ``timer:(NAME,LEFT,RETRIES)`` as (name, seconds left). ss prints LEFT as ``58sec``, ``252ms``,
    ``1min30sec``, and 1.252 s as ``1.252ms`` (seconds, a dot, then milliseconds)."""
    if not timer:
        return None
    parts = timer.split(",")
    if len(parts) < 2:
        return None
    m = _SS_TIME.match(parts[1].strip())
    if not m or not any(m.groups()):
        return None
    mins, secs, sep, ms = m.groups()
    left = int(mins or 0) * 60 + int(secs or 0) + (int(ms) / 1000 if ms else 0.0)
    return parts[0], left
