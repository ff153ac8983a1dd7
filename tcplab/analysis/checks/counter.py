"""The ``counter`` expectation: a kernel counter of a host (nstat's name) at a snapshot, or its change since
an earlier one, from the counters each snapshot read in the host's network namespace
(``sockets/snapshots.json``, :mod:`tcplab.observe.counters`)."""
from __future__ import annotations

from ...model.lab import CounterMatch, Expectation
from ...observe.counters import closest_names
from ...runfiles import snapshots
from ..runview import RunView
from ..verdicts import Verdict, verdict
from .base import Check, register


def bounds_words(m: CounterMatch) -> str:
    """``= 0``, ``>= 1``, ``between 1 and 3``."""
    if m.equals is not None:
        return f"= {m.equals}"
    if m.min is not None and m.max is not None:
        return f"between {m.min} and {m.max}"
    return f">= {m.min}" if m.min is not None else f"<= {m.max}"


def describe_counter_match(m: CounterMatch) -> str:
    """``TcpExtListenOverflows of server rose by >= 1 from before to after``."""
    if m.since is not None:
        return f"{m.name} of {m.host} rose by {bounds_words(m)} from {m.since} to {m.at}"
    return f"{m.name} of {m.host} {bounds_words(m)} at {m.at}"


def counters_at(view: RunView, host: str, snap: str) -> tuple[dict[str, int] | None, str]:
    """The host's counters at a snapshot, or None and why they are not recorded."""
    taken = view.snapshots.get(snap)
    if taken is None:
        return None, f"snapshot '{snap}' was not taken: {view.stopped_at()}"
    tables = (taken.get("hosts") or {}).get(host)
    if tables is None:
        return None, f"snapshot '{snap}' has nothing of {host}"
    if tables.get("missing"):
        return None, f"snapshot '{snap}': {tables['missing']}"
    table = tables.get("counters")
    if table is None:
        return None, f"snapshot '{snap}' read no counters of {host} (a run recorded before counters were read)"
    if not table.get("ok"):
        return None, f"snapshot '{snap}' could not read the counters of {host}: {table.get('error') or 'unknown'}"
    return dict(table.get("values") or {}), ""


def _inside(m: CounterMatch, value: int) -> bool:
    if m.equals is not None:
        return value == m.equals
    return (m.min is None or value >= m.min) and (m.max is None or value <= m.max)


def unknown_name(m: CounterMatch, values: dict[str, int]) -> str:
    """Why ``m.name`` is no counter of this kernel, naming the closest ones."""
    close = closest_names(m.name, sorted(values))
    hint = f"closest: {', '.join(close)}" if close else "see nstat -az for the names"
    return f"{m.host} has no counter {m.name} on this kernel ({hint})"


def judge_counter(exp: Expectation, m: CounterMatch, view: RunView) -> Verdict:
    expected = describe_counter_match(m)
    where = snapshots.NAME
    at, why = counters_at(view, m.host, m.at)
    if at is None:
        return verdict(exp, False, expected, why, where, label="seen")
    if m.name not in at:
        return verdict(exp, False, expected, unknown_name(m, at), where, label="seen")
    snap_t = float(view.snapshots[m.at].get("time") or 0.0) or None
    if m.since is None:
        value = at[m.name]
        seen = f"{m.name} of {m.host} was {value} at {m.at}"
        return verdict(exp, _inside(m, value), expected, seen, where, time=snap_t, label="seen")
    before, why = counters_at(view, m.host, m.since)
    if before is None or m.name not in before:
        return verdict(exp, False, expected, why or f"{m.name} was not read at {m.since}", where, label="seen")
    change = at[m.name] - before[m.name]
    seen = f"{m.name} of {m.host} rose by {change} ({before[m.name]} at {m.since}, {at[m.name]} at {m.at})"
    return verdict(exp, _inside(m, change), expected, seen, where, time=snap_t, label="seen")


@register(CounterMatch)
class CounterCheck(Check[CounterMatch]):
    def judge(self, exp: Expectation, m: CounterMatch, view: RunView) -> Verdict:
        return judge_counter(exp, m, view)

    def missing(self, exp: Expectation, m: CounterMatch, view: RunView) -> str | None:
        """A counter's verdict needs the host's counters read at ``at`` (and ``since``), and the name to be one
        of this kernel's: a name it does not count cannot be judged (the closest names are said)."""
        for snap in (m.at, m.since):
            if snap is None:
                continue
            values, why = counters_at(view, m.host, snap)
            if values is None:
                return why
            if m.name not in values:
                return unknown_name(m, values)
        return None
