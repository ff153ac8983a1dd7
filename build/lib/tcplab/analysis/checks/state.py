"""The ``state`` expectation: a socket of a host in a state (or not, or absent) at a snapshot, owned or not,
from the socket tables of ``sockets/snapshots.json``."""
from __future__ import annotations

from ...model.lab import Expectation, StateMatch
from ...observe.sockets import SocketRecord
from ...runfiles import snapshots
from ...runfiles.snapshots import HostTables
from ...observe.snapshots import table_problem, tool_ok, tool_tables
from ..evidence import unplayed
from ..runview import RunView
from ..verdicts import ARROW, Verdict, verdict
from .base import Check, register


def _records(tables: HostTables) -> tuple[list[SocketRecord], str]:
    """The rows of the first tool whose table is evidence (it ran); none when no tool worked."""
    for tool, t in tool_tables(tables):
        if isinstance(t, dict) and tool_ok(t) and t.get("records") is not None:
            return [SocketRecord.from_dict(dict(r)) for r in t.get("records") or []], tool
    return [], "netstat"


def _owner(r: SocketRecord) -> str:
    return f"{r.pid}/{r.program}" if r.pid else "-"


def describe_socket(r: SocketRecord, host: str, view: RunView) -> str:
    local = f"{host}:{r.local_port}"
    if r.peer_port is None:
        return f"{local} {r.state} {_owner(r)}"
    return f"{local}{ARROW}{view.name_of(r.peer_addr)}:{r.peer_port} {r.state} {_owner(r)}"


def _owner_ok(r: SocketRecord, owner: str | None) -> bool:
    if owner is None:
        return True
    if owner == "none":
        return r.pid is None
    if owner == "any":
        return r.pid is not None
    return r.program == owner


def _owner_words(owner: str | None) -> str:
    return {None: "", "none": ", owned by no program", "any": ", owned by a program"}.get(
        owner, f", owned by {owner}")


def judge_state(exp: Expectation, m: StateMatch, view: RunView) -> Verdict:
    sock = f"{m.host}" + (f":{m.port}" if m.port is not None else "") + (f"{ARROW}{m.peer}" if m.peer else "")
    if m.is_ is not None:
        expected = f"{sock} {m.is_}{_owner_words(m.owner)} at {m.at}"
    elif m.not_ is not None:
        expected = f"{sock} not {m.not_}{_owner_words(m.owner)} at {m.at}"
    else:
        expected = f"no socket {sock}{_owner_words(m.owner)} at {m.at}"
    snap = view.snapshots.get(m.at)
    if snap is None:
        return verdict(exp, False, expected, f"snapshot '{m.at}' was not taken: {view.stopped_at()}",
                       snapshots.NAME, label="seen")
    tables = (snap.get("hosts") or {}).get(m.host)
    where = view.rel(view.rd.table(m.host, m.at))
    if tables is None:
        return verdict(exp, False, expected, f"snapshot '{m.at}' has no table of {m.host} (was it running?)",
                       snapshots.NAME, label="seen")
    records, tool = _records(tables)
    if tool != "netstat":
        where = view.rel(view.rd.table(m.host, m.at, tool))
    peer_ip = view.hosts.get(m.peer) if m.peer else None
    mine = [r for r in records
            if (m.port is None or r.local_port == m.port)
            and (m.peer is None or (peer_ip is not None and r.peer_addr == peer_ip))]
    snap_t = float(snap.get("time", 0.0)) or None
    shown = "; ".join(describe_socket(r, m.host, view) for r in mine[:4]) + (
        f"; and {len(mine) - 4} more" if len(mine) > 4 else "")
    if m.is_ is not None:
        hits = [r for r in mine if r.state == m.is_ and _owner_ok(r, m.owner)]
        if hits:
            return verdict(exp, True, expected, describe_socket(hits[0], m.host, view), where, time=snap_t,
                           label="seen")
        if mine:
            same_state = [r for r in mine if r.state == m.is_]
            best = same_state[0] if same_state else mine[0]
            differs = "owner" if same_state else "state"
            return verdict(exp, False, expected, describe_socket(best, m.host, view), where,
                           note=f"; differs in {differs}" + (f" (all: {shown})" if len(mine) > 1 else ""))
        return verdict(exp, False, expected, f"no socket {sock}" + _others(records, m.host, view), where,
                       label="seen")
    if m.not_ is not None:
        hits = [r for r in mine if r.state == m.not_ and _owner_ok(r, m.owner)]
        if not hits:
            return verdict(exp, True, expected, shown or f"no socket {sock}", where, time=snap_t, label="seen")
        return verdict(exp, False, expected, describe_socket(hits[0], m.host, view), where, label="seen")
    hits = [r for r in mine if _owner_ok(r, m.owner)]
    if not hits:
        return verdict(exp, True, expected, f"no socket {sock}", where, time=snap_t, label="seen")
    return verdict(exp, False, expected, "; ".join(describe_socket(r, m.host, view) for r in hits[:4]), where,
                   label="seen")


def _others(records: list[SocketRecord], host: str, view: RunView) -> str:
    interesting = [r for r in records if not r.local_addr.startswith("127.")]
    if not interesting:
        return f" (no other TCP socket on {host})"
    return f" ({host} had: " + "; ".join(describe_socket(r, host, view) for r in interesting[:4]) + ")"


@register(StateMatch)
class StateCheck(Check[StateMatch]):
    def judge(self, exp: Expectation, m: StateMatch, view: RunView) -> Verdict:
        return judge_state(exp, m, view)

    def negative(self, m: StateMatch) -> bool:
        return m.absent or m.not_ is not None

    def missing(self, exp: Expectation, m: StateMatch, view: RunView) -> str | None:
        """The snapshot was taken, with a tool that could read the host's table, after the steps before it."""
        snap = view.snapshots.get(m.at)
        if snap is None:
            return f"snapshot '{m.at}' was not taken: {view.stopped_at()}"
        problem = table_problem((snap.get("hosts") or {}).get(m.host))
        if problem:
            return f"no socket table of {m.host} at '{m.at}': {problem}"
        return unplayed(view, float(snap.get("time") or 0.0) or None)
