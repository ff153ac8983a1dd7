"""The ``state`` expectation: a socket of a host in a state (or not, or absent) at a snapshot, owned or not,
from the socket tables of ``sockets/snapshots.json``."""
from __future__ import annotations

from ...model.lab import Expectation, QueueBytes, SecondsBetween, StateMatch
from ...observe.sockets import SocketRecord
from ...runfiles import snapshots
from ...runfiles.snapshots import HostTables
from ...observe.snapshots import table_problem, timer_left, tool_ok, tool_tables
from ..evidence import unplayed
from ..runview import RunView
from ..verdicts import ARROW, Verdict, verdict
from .base import Check, register


def _records(tables: HostTables, ss_first: bool = False) -> tuple[list[SocketRecord], str]:
    """The rows of the first tool whose table is evidence (it ran); none when no tool worked. ``ss_first``:
    ss's (only ss shows timers, and a listener's backlog as Send-Q where netstat says 0)."""
    order = tool_tables(tables)
    for tool, t in (order[::-1] if ss_first else order):
        if isinstance(t, dict) and tool_ok(t) and t.get("records") is not None:
            return [SocketRecord.from_dict(dict(r)) for r in t.get("records") or []], tool
    return [], "netstat"


def _owner(r: SocketRecord) -> str:
    return f"{r.pid}/{r.program}" if r.pid else "-"


def describe_socket(r: SocketRecord, host: str, view: RunView, m: StateMatch | None = None) -> str:
    local = f"{host}:{r.local_port}"
    if r.peer_port is None:
        text = f"{local} {r.state} {_owner(r)}"
    else:
        text = f"{local}{ARROW}{view.name_of(r.peer_addr)}:{r.peer_port} {r.state} {_owner(r)}"
    if m is not None and (m.recv_q is not None or m.send_q is not None):
        text += f" Recv-Q {r.recv_q} Send-Q {r.send_q}"
    if m is not None and (m.timer is not None or m.timer_left is not None):
        text += f" timer:({r.timer})" if r.timer else " no timer"
    return text


def _in(value: float, want: QueueBytes | SecondsBetween) -> bool:
    if isinstance(want, int):
        return value == want
    return (want.min is None or value >= want.min) and (want.max is None or value <= want.max)


def _bounds(want: QueueBytes | SecondsBetween, unit: str = "") -> str:
    if isinstance(want, int):
        return str(want)
    def fmt(v: float | None) -> str:
        return f"{v:g}{unit}"
    if want.min is not None and want.max is not None:
        return f"{fmt(want.min)}..{fmt(want.max)}"
    return f">= {fmt(want.min)}" if want.min is not None else f"<= {fmt(want.max)}"


def _socket_words(m: StateMatch) -> str:
    """What ``is`` asks of the socket besides its state: ``, Recv-Q 6, Send-Q 5, timer keepalive``."""
    out = ""
    if m.recv_q is not None:
        out += f", Recv-Q {_bounds(m.recv_q)}"
    if m.send_q is not None:
        out += f", Send-Q {_bounds(m.send_q)}"
    if m.timer is not None:
        out += f", timer {m.timer}" if m.timer != "off" else ", no timer"
    if m.timer_left is not None:
        out += f" with {_bounds(m.timer_left, 's')} left"
    return out


def _socket_diffs(r: SocketRecord, m: StateMatch) -> list[str]:
    """What of ``is``'s extras the socket ``r`` does not show."""
    d = []
    if m.recv_q is not None and not _in(r.recv_q, m.recv_q):
        d.append(f"recv_q ({_bounds(m.recv_q)} expected, {r.recv_q} seen)")
    if m.send_q is not None and not _in(r.send_q, m.send_q):
        d.append(f"send_q ({_bounds(m.send_q)} expected, {r.send_q} seen)")
    left = timer_left(r.timer)
    name = left[0] if left else (r.timer.split(",")[0] if r.timer else "off")
    if m.timer is not None and name != m.timer:
        d.append(f"timer ({m.timer} expected, {name} seen)")
    if m.timer_left is not None and (left is None or not _in(left[1], m.timer_left)):
        d.append(f"timer_left ({_bounds(m.timer_left, 's')} expected, "
                 f"{f'{left[1]:g}s' if left else 'none'} seen)")
    return d


def extras(m: StateMatch) -> bool:
    """The expectation reads a queue or a timer (ss's columns)."""
    return any(getattr(m, k) is not None for k in ("recv_q", "send_q", "timer", "timer_left"))


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
        expected = f"{sock} {m.is_}{_owner_words(m.owner)}{_socket_words(m)} at {m.at}"
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
    records, tool = _records(tables, ss_first=extras(m))
    if tool != "ss" and (m.timer is not None or m.timer_left is not None):
        return verdict(exp, False, expected, f"no ss table of {m.host} at '{m.at}' (only ss shows timers)",
                       where, label="seen")
    if tool != "netstat":
        where = view.rel(view.rd.table(m.host, m.at, tool))
    peer_ip = view.hosts.get(m.peer) if m.peer else None
    mine = [r for r in records
            if (m.port is None or r.local_port == m.port)
            and (m.peer is None or (peer_ip is not None and r.peer_addr == peer_ip))]
    snap_t = float(snap.get("time", 0.0)) or None
    shown = "; ".join(describe_socket(r, m.host, view, m) for r in mine[:4]) + (
        f"; and {len(mine) - 4} more" if len(mine) > 4 else "")
    if m.is_ is not None:
        hits = [r for r in mine if r.state == m.is_ and _owner_ok(r, m.owner) and not _socket_diffs(r, m)]
        if hits:
            return verdict(exp, True, expected, describe_socket(hits[0], m.host, view, m), where, time=snap_t,
                           label="seen")
        if mine:
            same_state = [r for r in mine if r.state == m.is_]
            owned = [r for r in same_state if _owner_ok(r, m.owner)]
            best = owned[0] if owned else same_state[0] if same_state else mine[0]
            differs = ", ".join(_socket_diffs(best, m)) if owned else "owner" if same_state else "state"
            return verdict(exp, False, expected, describe_socket(best, m.host, view, m), where,
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
        tables = (snap.get("hosts") or {}).get(m.host)
        problem = table_problem(tables)
        if problem:
            return f"no socket table of {m.host} at '{m.at}': {problem}"
        if tables is not None and (m.timer is not None or m.timer_left is not None):
            ss = tables.get("ss")
            if not isinstance(ss, dict) or not tool_ok(ss):
                why = (ss or {}).get("error") if isinstance(ss, dict) else "not taken"
                return f"no ss table of {m.host} at '{m.at}' (only ss shows timers): {why}"
        return unplayed(view, float(snap.get("time") or 0.0) or None)
