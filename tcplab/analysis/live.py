"""A running lab's sockets as they are now, from its run directory alone (``lab watch``).

No host is asked anything: the table is the last snapshot's sockets (netstat/ss, with queues, timers and
owners) brought up to date by every state change the tracer reported since (``sockets/transitions.jsonl``,
appended as the kernel reports them). Each row says where its state comes from and when it was seen, since
the two differ: the tracer knows every state change at once but nothing of queues, timers or owners; a
snapshot knows all of them, as they were when it was taken.

A socket the kernel hands to its timewait table (FIN_WAIT2 or TIME_WAIT after the close) goes to CLOSE in
the tracer's eyes: it leaves the table as ``gone`` until a later snapshot shows it again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from ..model.lab import Lab, step_title
from ..rundir import RunDir
from ..runfiles import run_info
from ..runfiles import snapshots as snapshots_file
from ..runfiles import steps as steps_file
from ..runfiles import transitions as transitions_file
from ..runfiles.snapshots import HostTables, SocketRow, Snapshots
from ..runfiles.steps import StepRecord
from ..runfiles.transitions import TransitionRecord

Key = tuple[str, str, int, str, int]  # host, local address, local port, peer address, peer port
GONE_FOR = 5.0  # seconds a socket that went to CLOSE stays in the table, dimmed, before it leaves
EVENTS = 200  # the latest events kept for the stream


@dataclass
class Row:
    """One socket of one host as the view shows it."""
    host: str
    local: tuple[str, int]
    peer: tuple[str, int]
    state: str
    source: str  # "tracer", or "snapshot <name>"
    seen: float  # when its state was seen (epoch seconds)
    recv_q: int | None = None
    send_q: int | None = None
    timer: str | None = None
    owner: str | None = None  # "pid/program"; "-" for a socket no process holds
    details_from: str | None = None  # the snapshot the queues, timer and owner are from, when not the state's

    @property
    def key(self) -> Key:
        return (self.host, self.local[0], self.local[1], self.peer[0], self.peer[1])

    @property
    def gone(self) -> bool:
        return self.state == "CLOSE"


@dataclass
class Event:
    """A line of the stream: a state change, a reset, a step."""
    ts: float
    text: str
    kind: str  # transition, reset, step


def _port(value: int | None) -> int:
    return int(value or 0)


def _owner(row: SocketRow) -> str | None:
    if "pid" not in row:
        return None
    return f"{row['pid']}/{row.get('program') or '?'}" if row.get("pid") else "-"


def _snapshot_rows(name: str, taken: float, host: str, tables: HostTables) -> list[Row]:
    """A host's sockets of one snapshot: ss's rows (they have timers), the owner from netstat's where ss
    gives none; netstat's alone when ss did not run."""
    ss = tables.get("ss") or {}
    ns = tables.get("netstat") or {}
    owners = {(r.get("local_addr", ""), _port(r.get("local_port")), r.get("peer_addr", ""),
               _port(r.get("peer_port"))): _owner(r) for r in ns.get("records", [])}
    records = ss.get("records", []) if ss.get("ok", bool(ss.get("records"))) else ns.get("records", [])
    rows = []
    for r in records:
        local = (r.get("local_addr", ""), _port(r.get("local_port")))
        peer = (r.get("peer_addr", ""), _port(r.get("peer_port")))
        if local[0].startswith("127."):
            continue  # the engine's embedded DNS resolver, not the lab's
        owner = _owner(r) or owners.get((*local, *peer))
        rows.append(Row(host, local, _normal_peer(peer), r.get("state", "?"), f"snapshot {name}", taken,
                        r.get("recv_q"), r.get("send_q"), r.get("timer"), owner))
    return rows


def _normal_peer(peer: tuple[str, int]) -> tuple[str, int]:
    """A listener's peer as the tracer and the tools agree: ``0.0.0.0:0`` (netstat says ``0.0.0.0:*``)."""
    addr, port = peer
    return ("0.0.0.0" if addr in ("", "*", "0.0.0.0") else addr, port)


@dataclass
class LiveView:
    """The sockets and the stream of a run directory as it grows; :meth:`update` reads what is new."""
    rd: RunDir
    lab: Lab | None = None
    rows: dict[Key, Row] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    snapshot: str | None = None  # the last snapshot's name
    snapshot_time: float | None = None
    tracer_seen: int = 0  # transitions read
    state: str = ""  # run.json's: starting, playing, up, down, failed, interrupted
    started: float | None = None  # when the run began (run.json): the stream's times count from it
    _t_offset: int = 0
    _s_offset: int = 0
    _snap_mtime: float = -1.0
    _hosts: dict[str, str] = field(default_factory=dict)
    _snapped: set[str] = field(default_factory=set)  # the hosts whose tables the last snapshot has

    def update(self, now: float | None = None) -> None:
        """Read what the run directory gained since the last update."""
        info = run_info.read(self.rd)
        self.state = str(info.get("state") or "")
        self.started = float(info["started"]) if info.get("started") else self.started
        self._hosts = dict(info.get("hosts") or {})
        self._read_snapshots()
        records, self._t_offset = transitions_file.follow(self.rd, self._t_offset, self._hosts)
        self.apply_transitions(records)
        steps, self._s_offset = steps_file.follow(self.rd, self._s_offset)
        self.apply_steps(steps)
        self.expire(time.time() if now is None else now)

    def _read_snapshots(self) -> None:
        mtime = snapshots_file.changed(self.rd)
        if mtime is None or mtime == self._snap_mtime:
            return
        self._snap_mtime = mtime
        self.apply_snapshots(snapshots_file.read(self.rd))

    def apply_snapshots(self, snaps: Snapshots) -> None:
        """The last snapshot replaces what an older one said; the tracer's later word on a socket stays."""
        if not snaps:
            return
        name, snap = list(snaps.items())[-1]
        taken = float(snap["time"])
        if self.snapshot_time is not None and taken <= self.snapshot_time:
            return  # the one shown is as new (or the view's own read, taken after it)
        self.snapshot, self.snapshot_time = name, taken
        fresh: dict[Key, Row] = {}
        for host, tables in (snap.get("hosts") or {}).items():
            if tables.get("missing"):
                continue
            for row in _snapshot_rows(name, taken, host, tables):
                fresh[row.key] = row
        snapped_hosts = self._snapped = {h for h, t in (snap.get("hosts") or {}).items() if not t.get("missing")}
        for key, row in list(self.rows.items()):
            newer = row.source == "tracer" and row.seen > taken
            if key in fresh:
                if newer:  # the tracer saw a change after the snapshot: its state, the snapshot's details
                    s = fresh[key]
                    row.recv_q, row.send_q, row.timer, row.owner = s.recv_q, s.send_q, s.timer, s.owner
                    row.details_from = s.source
                    del fresh[key]
            elif row.host in snapped_hosts and not newer:
                del self.rows[key]  # the snapshot no longer has it and the tracer saw nothing since
        self.rows.update(fresh)
        self.events.append(Event(taken, f"snapshot {name}", "snapshot"))
        self._trim()

    def apply_transitions(self, records: Iterable[TransitionRecord]) -> None:
        for rec in records:
            self.tracer_seen += 1
            host = rec.get("host") or "?"
            local = (rec.get("saddr", ""), _port(rec.get("sport")))
            peer = _normal_peer((rec.get("daddr", ""), _port(rec.get("dport"))))
            ts = float(rec["ts"])
            event = rec.get("event", "")
            peer_name = rec.get("peer") or peer[0]
            where = f"{host} {local[0]}:{local[1]} -> {peer_name}:{peer[1]}"
            if event in ("tcp_send_reset", "tcp_receive_reset"):
                what = "sends an RST" if event == "tcp_send_reset" else "receives an RST"
                self.events.append(Event(ts, f"{where}  {what} in {rec.get('state', '?')}"
                                         + (f" ({rec['reason']})" if rec.get("reason") else ""), "reset"))
                continue
            if "new" not in rec or rec.get("derived"):
                continue
            old, new = rec.get("old", "?"), rec["new"]
            self.events.append(Event(ts, f"{where}  {old} -> {new}" + self._about(host, old, new), "transition"))
            if host in self._snapped and self.snapshot_time is not None and ts <= self.snapshot_time:
                continue  # the snapshot is newer: it has the socket as it was then, or no longer has it
            if old == "SYN_SENT" and local[1]:  # connect()'s socket had no port yet when it left CLOSE
                for portless in [k for k in self.rows if k[0] == host and k[2] == 0 and k[3:] == peer]:
                    del self.rows[portless]
            key: Key = (host, *local, *peer)
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = Row(host, local, peer, new, "tracer", ts)
            row.state, row.source, row.seen = new, "tracer", ts
            if row.details_from is None and row.recv_q is not None:
                row.details_from = f"snapshot {self.snapshot}" if self.snapshot else None
        self._trim()

    def _about(self, host: str, old: str, new: str) -> str:
        """The ``about`` of a transition expectation this change may be the one of, in the lab's words."""
        if self.lab is None:
            return ""
        for e in self.lab.expect:
            m = e.transition
            if m is not None and m.host == host and m.to == new and m.from_ in (None, old):
                return f"  ({e.about or e.name})"
        return ""

    def apply_steps(self, records: Iterable[StepRecord]) -> None:
        for s in records:
            title = s.get("title") or s.get("name") or ""
            if self.lab is not None and 0 <= s["index"] < len(self.lab.steps) and not title:
                title = step_title(self.lab.steps[s["index"]])
            outcome = s.get("outcome", "")
            self.events.append(Event(float(s.get("start") or 0.0), f"step {s['index']}: {title}"
                                     + (f"  [{outcome}]" if outcome and outcome != "ok" else ""), "step"))
        self._trim()

    def expire(self, now: float) -> None:
        """Sockets gone for longer than GONE_FOR leave the table."""
        for key, row in list(self.rows.items()):
            if row.gone and now - row.seen > GONE_FOR:
                del self.rows[key]

    def _trim(self) -> None:
        self.events.sort(key=lambda e: e.ts)
        del self.events[:-EVENTS]

    def table(self) -> list[Row]:
        """The rows by host, then listeners first, then by ports."""
        return sorted(self.rows.values(), key=lambda r: (r.host, r.state != "LISTEN", r.local[1], r.peer))

    @property
    def ended(self) -> bool:
        """The run says it is over: down, or failed or interrupted while coming up."""
        return self.state in ("down", "failed", "interrupted")
