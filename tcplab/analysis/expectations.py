"""Judging a run against its lab's ``expect:`` list.

Pure functions over the run directory (lab.yaml, run.json, steps.jsonl,
capture/*.pcap, sockets/snapshots.json, sockets/transitions.jsonl,
programs.jsonl), read through :mod:`tcplab.runfiles`: no Docker, so a run
copied from a CI artifact is judged exactly as it was.

Each kind of expectation is one check (:mod:`tcplab.analysis.checks`); what
it needs recorded to judge at all is its evidence rule
(:mod:`tcplab.analysis.evidence`). Every verdict says what was expected, what
was seen that came closest, and where to look (:mod:`tcplab.analysis.verdicts`).
"""
from __future__ import annotations

from pathlib import Path

from ..model import Lab
from ..rundir import RunDir
from ..runfiles import lab as lab_file
from ..runfiles import steps
from .checks import check_for
from .evidence import missing_evidence
from .machine import cpu_pressure
from .references.published import cited_for
from .runview import RunView
from .verdicts import FAILED, Evaluation, Verdict, as_error, finish

__all__ = ["Evaluation", "RunView", "Verdict", "evaluate", "step_verdicts"]


def step_verdicts(view: RunView) -> list[Verdict]:
    """A failed step (a wait that timed out, a program that never became ready) is a failed check:
    the lab said TCP would get there, and it did not."""
    out = []
    for n, s in enumerate(view.steps, 1):
        if s.get("outcome") != "failed":
            continue
        name = f"step-{s.get('name', s.get('index'))}"[:31]
        expected = f"step {s.get('index')} ({s.get('title')}) completes"
        out.append(finish(Verdict(name, str(s.get("title", "")), "step", FAILED, expected,
                                  str(s.get("detail", "")), f"{steps.NAME} line {n}")))
    return out


def evaluate(run_dir: str | Path | RunDir, lab: Lab | None = None) -> Evaluation:
    """Every expectation of the run's lab (its lab.yaml unless given), in order; later ones may be
    timed from earlier ones. Failed steps come first: they explain the failures that follow."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if lab is None:
        lab = lab_file.read(rd)
    view = RunView(rd, lab)
    ev = Evaluation(lab.name, str(view.info.get("run", rd.path.name)), rd.path,
                    started=view.info.get("started"), ended=view.info.get("ended"), cpu=cpu_pressure(view.steps))
    ev.verdicts.extend(step_verdicts(view))
    ev.cited = {e.name: cited for e in lab.expect if (cited := cited_for(lab, e.name))}
    for exp in lab.expect:
        check = check_for(exp)
        v = check.judge(exp, exp.match, view)
        missing = missing_evidence(exp, v, view, check)
        if missing:
            v = as_error(v, missing)
        view.verdicts[exp.name] = v
        ev.verdicts.append(v)
    return ev
