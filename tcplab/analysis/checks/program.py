"""The ``program`` expectation: how a story program ended (its exit status, or still running) and what it
printed, from ``programs.jsonl`` and the output the run collected (:mod:`tcplab.observe.programs`)."""
from __future__ import annotations

import re

from ...model.lab import ERRNOS, Expectation, ProgramMatch, StartStep, errno_pattern
from ...observe.programs import ProgramRun, describe_status, last_lines, output_search
from ...runfiles import programs
from ..evidence import title_of, unplayed
from ..runview import RunView
from ..verdicts import Verdict, fmt_offset, verdict
from .base import Check, register


def describe_program_match(m: ProgramMatch) -> str:
    """``reader on client exits with status 1 and prints /Connection reset by peer/``."""
    said = []
    if m.exit is not None:
        said.append(f"exits with {describe_status(m.exit)}")
    elif m.running is True:
        said.append("is still running at the end")
    elif m.running is False:
        said.append("has exited by the end")
    if m.output is not None:
        said.append(f"prints /{m.output}/")
    if m.error is not None:
        number, text = ERRNOS[m.error]
        said.append(f"reports {m.error} (\"{text}\", [Errno {number}])")
    return f"{m.name} on {m.host} " + (" and ".join(said) if said else "is started")


def errors_printed(text: str) -> list[tuple[str, int]]:
    """Each errno of ERRNOS the output reports, with the line of its first report, in order of lines."""
    found = []
    for name in ERRNOS:
        hit = re.search(errno_pattern(name), text, re.IGNORECASE)
        if hit:
            found.append((name, text.count("\n", 0, hit.start()) + 1))
    return sorted(found, key=lambda f: f[1])


def _moment(view: RunView, ts: float) -> str:
    """A moment of the run in the story's words: after the last step that began before it."""
    before = [s for s in view.steps if float(s.get("start") or 0.0) <= ts]
    if before:
        s = before[-1]
        return f"at {s.get('name')}{fmt_offset(ts - float(s['start']))}"
    t0 = view.traffic.start if view.traffic.packets else float(view.info.get("started") or ts)
    return f"at t={ts - t0:.3f}s"


def program_output(view: RunView, run: ProgramRun) -> str | None:
    """The program's output as the run collected it; None when it was not collected."""
    if run.output_file is None:
        return None
    try:
        return view.rd.program_log(run.host, run.name).read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def judge_program(exp: Expectation, m: ProgramMatch, view: RunView) -> Verdict:
    """How a story program ended and what it printed, from programs.jsonl and its collected output."""
    expected = describe_program_match(m)
    who = f"{m.name} on {m.host}"
    run = view.programs.get((m.host, m.name))
    events = programs.NAME
    if run is None or (run.started is None and not run.exited):
        return verdict(exp, False, expected, f"{who} was never started", events, label="seen")
    where = f"{events} line {run.exit_line or run.line}" if (run.exit_line or run.line) else events
    if run.exited:
        ended = f"{who} exited with {describe_status(run.status)} {_moment(view, run.ended or 0.0)}"
    elif run.running_at is not None:
        ended = f"{who} was still running when the run ended"
    else:
        ended = f"{who} was started {_moment(view, run.started or 0.0)}; its end was not recorded"
    differs: list[str] = []
    if m.exit is not None and run.status != m.exit:
        differs.append("exit")
    if m.running is not None and (run.running_at is None if m.running else not run.exited):
        differs.append("running")
    seen = ended
    if m.output is not None:
        text = program_output(view, run)
        log = view.rel(view.rd.program_log(m.host, m.name))
        found = output_search(m.output, text) if text is not None else None
        if text is not None and found is not None:
            line = text.count("\n", 0, found.start()) + 1
            whole = text.splitlines()[line - 1] if text.splitlines() else found.group(0)
            seen += f"; printed {whole.strip()[:160]!r}"
            if not differs:
                where = f"{log} line {line}"
        else:
            differs.append("output")
            seen += f"; {last_lines(text)}" if text is not None else "; its output was not collected"
            where = log
    if m.error is not None:
        text = program_output(view, run)
        log = view.rel(view.rd.program_log(m.host, m.name))
        reported = errors_printed(text) if text is not None else []
        mine = [line for name, line in reported if name == m.error]
        if text is None:
            differs.append("error")
            seen += "; its output was not collected"
        elif mine:
            seen += f"; printed {text.splitlines()[mine[0] - 1].strip()[:160]!r}"
            if not differs:
                where = f"{log} line {mine[0]}"
        else:
            differs.append("error")
            others = ", ".join(f"{name} (line {line})" for name, line in reported)
            seen += (f"; it reported {others} instead: {last_lines(text)}" if others
                     else f"; it reported no error: {last_lines(text)}")
            where = log
    note = f"; differs in {', '.join(differs)}" if differs else ""
    return verdict(exp, not differs, expected, seen, where, time=run.ended if run.exited else None, note=note,
                   label="seen")


@register(ProgramMatch)
class ProgramCheck(Check[ProgramMatch]):
    def judge(self, exp: Expectation, m: ProgramMatch, view: RunView) -> Verdict:
        return judge_program(exp, m, view)

    def negative(self, m: ProgramMatch) -> bool:
        return m.running is True  # it did not exit: true only if the run was watched to its end

    def missing(self, exp: Expectation, m: ProgramMatch, view: RunView) -> str | None:
        """A program's verdict needs its start, for ``exit``/``running`` its end (an exit, or the run seeing it
        still running when it collected, having played every step), for ``output`` its collected output.
        A program still running at a complete run's end has no exit status: ``exit`` on it failed."""
        who = f"{m.name} on {m.host}"
        run = view.programs.get((m.host, m.name))
        if run is None or (run.started is None and not run.exited):
            starts = [i for i, s in enumerate(view.lab.steps)
                      if isinstance(s, StartStep) and s.host == m.host and s.as_ == m.name]
            played = {int(s.get("index", -1)): s for s in view.steps}
            for i in starts:
                if i not in played or played[i].get("outcome") not in (None, "ok"):
                    return unplayed(view, None) or f"step {i} ({title_of(view, i)}) was never played"
            if not view.program_events:
                return f"the run recorded no program events ({programs.NAME} is missing)"
            return f"{programs.NAME} records no start of {who}"
        if run.exited:
            gap = None  # it ended: its status and (once collected) its whole output are known
        elif run.running_at is None:
            return (f"the end of {who} was never observed: no exit was recorded and its host's programs were not "
                    "collected")
        else:
            gap = unplayed(view, None)
        if (m.output is not None or m.error is not None) and program_output(view, run) is None:
            return f"the output of {who} was not collected ({view.rel(view.rd.program_log(m.host, m.name))})"
        if gap and (m.exit is not None or m.running is not None or m.output is not None or m.error is not None):
            return f"{who} was still running when the run stopped early: {gap}"
        return None
