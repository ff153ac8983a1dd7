"""Whether a run holds the evidence an expectation needs: no verdict without it.

A check (``expectations.check_*``) matches what was recorded; this module says
whether what was recorded can decide. A positive expectation that found what
it looked for has its evidence. Everything else - a miss, and every negative
claim (``count``, ``absent``, ``not``), which holds only because something was
*not* seen - needs a witness: the window it judges was observed. That means
the steps leading to the end of the window played ok, the captures it reads
ran with no packet dropped by the kernel, the snapshot it reads was taken
with a tool that worked, and the tracer ran. When any of that is missing the
verdict is an error naming what was missing, in one line.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model.lab import Expectation

if TYPE_CHECKING:
    from .expectations import RunView, Verdict

TOOLS = ("netstat", "ss")


def is_negative(exp: Expectation) -> bool:
    """Holds because something was not seen: it needs a witness even when it holds."""
    if exp.packet is not None:
        return exp.packet.count is not None
    if exp.state is not None:
        return exp.state.absent or exp.state.not_ is not None
    if exp.program is not None:
        return exp.program.running is True  # it did not exit: true only if the run was watched to its end
    return False


def missing_evidence(exp: Expectation, verdict: "Verdict", view: "RunView") -> str | None:
    """Why the run cannot decide ``exp``, or None when ``verdict`` stands."""
    if verdict.held and not is_negative(exp):
        return None
    if exp.packet is not None:
        return _packet(exp, view)
    if exp.state is not None:
        return _state(exp, view)
    if exp.transition is not None:
        return _transition(exp, view)
    if exp.program is not None:
        return _program(exp, view)
    return None


# --- steps -------------------------------------------------------------------------

def unplayed(view: "RunView", until: float | None) -> str | None:
    """The first step that did not play ok before ``until`` (None: the end of the run), said in words."""
    played = {int(s.get("index", -1)): s for s in view.steps}
    for i in range(len(view.lab.steps)):
        s = played.get(i)
        if s is None:
            last_end = max((float(x.get("end") or x.get("start") or 0.0) for x in view.steps), default=None)
            if until is None or last_end is None or until > last_end:
                return f"step {i} ({_title(view, i)}) was never played"
            return None
        start = float(s.get("start") or 0.0)
        if until is not None and start > until:
            return None  # the window closed before this step began
        if s.get("outcome") not in (None, "ok"):
            detail = f": {s.get('detail')}" if s.get("detail") else ""
            return f"step {i} ({s.get('title') or _title(view, i)}) did not play ({s.get('outcome')}{detail})"
    return None


def _title(view: "RunView", i: int) -> str:
    from ..model import step_title

    return step_title(view.lab.steps[i])


# --- packets -----------------------------------------------------------------------

def capture_gaps(view: "RunView", hosts: list[str]) -> str | None:
    """What is missing from the captures of ``hosts``: a file, or packets the kernel dropped."""
    stats: dict[str, Any] = view.info.get("capture_stats") or {}
    for h in hosts:
        if not view.rd.pcap(h).is_file():
            return f"there is no capture of {h} ({view.rel(view.rd.pcap(h))})"
        dropped = (stats.get(h) or {}).get("dropped") if isinstance(stats.get(h), dict) else None
        if dropped:
            return f"the capture of {h} lost {dropped} packets (dropped by the kernel, tcpdump says)"
    return None


def _capture_hosts(view: "RunView", src: str | None, dst: str | None) -> list[str]:
    """The captures that would hold the packets a rule asks about: each packet is in its sender's and its
    receiver's capture, so naming one end is enough; a rule that names neither needs every host's."""
    named = [h for h in (src, dst) if h is not None]
    if not named:
        return list(view.lab.hosts)
    present = [h for h in named if view.rd.pcap(h).is_file()]
    return present[:1] or named[:1]


def _packet(exp: Expectation, view: "RunView") -> str | None:
    from .expectations import packet_window

    m = exp.packet
    assert m is not None
    w = packet_window(m, view)
    if w.missing:
        return w.missing
    gap = unplayed(view, w.observed_until())
    if gap:
        return gap
    return capture_gaps(view, _capture_hosts(view, m.from_, m.to))


# --- socket tables -----------------------------------------------------------------

def table_problem(tables: dict[str, Any] | None) -> str | None:
    """Why a host's entry in a snapshot holds no usable table, or None when one tool's table is good."""
    if tables is None:
        return "no table was taken"
    if tables.get("missing"):
        return str(tables["missing"])
    problems = []
    for tool in TOOLS:
        t = tables.get(tool)
        if not isinstance(t, dict):
            continue
        if tool_ok(t):
            return None
        problems.append(f"{tool}: {t.get('error') or 'printed nothing'}")
    return "; ".join(problems) or "no table was taken"


def tool_ok(table: dict[str, Any]) -> bool:
    """A tool's table is evidence when the tool ran; runs written before this was recorded count a table
    with any text or rows."""
    if "ok" in table:
        return bool(table["ok"])
    return bool(str(table.get("raw") or "").strip() or table.get("records"))


def _state(exp: Expectation, view: "RunView") -> str | None:
    m = exp.state
    assert m is not None
    snap = view.snapshots.get(m.at)
    if snap is None:
        return f"snapshot '{m.at}' was not taken: {view.stopped_at()}"
    problem = table_problem((snap.get("hosts") or {}).get(m.host))
    if problem:
        return f"no socket table of {m.host} at '{m.at}': {problem}"
    return unplayed(view, float(snap.get("time") or 0.0) or None)


# --- transitions -------------------------------------------------------------------

def _transition(exp: Expectation, view: "RunView") -> str | None:
    m = exp.transition
    assert m is not None
    until: float | None = None
    if m.near is not None:
        t, why = view.anchor(m.near)
        if t is None:
            return why
        until = t + m.within
    if not view.rd.transitions_jsonl.is_file():
        note = view.info.get("tracer", "")
        return f"the tracer did not run ({note})" if note and note != "ok" else "the run has no transitions file"
    return unplayed(view, until)


# --- story programs ----------------------------------------------------------------

def _program(exp: Expectation, view: "RunView") -> str | None:
    """A program's verdict needs its start, for ``exit``/``running`` its end (an exit, or the run seeing it
    still running when it collected, having played every step), for ``output`` its collected output.
    A program still running at a complete run's end has no exit status: ``exit`` on it failed."""
    from ..model.lab import StartStep

    m = exp.program
    assert m is not None
    who = f"{m.name} on {m.host}"
    run = view.programs.get((m.host, m.name))
    if run is None or (run.started is None and not run.exited):
        starts = [i for i, s in enumerate(view.lab.steps)
                  if isinstance(s, StartStep) and s.host == m.host and s.as_ == m.name]
        played = {int(s.get("index", -1)): s for s in view.steps}
        for i in starts:
            if i not in played or played[i].get("outcome") not in (None, "ok"):
                return unplayed(view, None) or f"step {i} ({_title(view, i)}) was never played"
        if not view.rd.programs_jsonl.is_file():
            return f"the run recorded no program events ({view.rel(view.rd.programs_jsonl)} is missing)"
        return f"{view.rel(view.rd.programs_jsonl)} records no start of {who}"
    if run.exited:
        gap = None  # it ended: its status and (once collected) its whole output are known
    elif run.running_at is None:
        return (f"the end of {who} was never observed: no exit was recorded and its host's programs were not "
                "collected")
    else:
        gap = unplayed(view, None)
    if m.output is not None:
        from .expectations import program_output

        if program_output(view, run) is None:
            return f"the output of {who} was not collected ({view.rel(view.rd.program_log(m.host, m.name))})"
    if gap and (m.exit is not None or m.running is not None or m.output is not None):
        return f"{who} was still running when the run stopped early: {gap}"
    return None

