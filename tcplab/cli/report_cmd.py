"""`lab report [LAB or RUN_DIR] [--open] [--judge]`: (re)write a run's report.html from its artifacts.

A RUN_DIR needs no Docker engine (a finished run, or one copied from CI); a
LAB name is looked up among the labs that are up (that needs the engine);
with no argument, the newest run under ./runs is used. With --judge the run
is first judged again from its own lab.yaml (edited since, perhaps: a fact
changed on purpose), as `lab run` judges it, with its exit status.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NoReturn, Optional

import typer

from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, die, out, say
from .runs import has_display, is_run_dir, lab_name_of


class NotARun(Exception):
    """The argument names no run directory (exit 2)."""


def newest_run(runs: Path) -> Path:
    """The most recently started run directory under ``runs``."""
    from ..rundir import RunDir
    from ..runfiles import run_info

    cands = [p for p in runs.iterdir() if is_run_dir(p)] if runs.is_dir() else []
    if not cands:
        raise NotARun(f"no run directories under {runs}; give a RUN_DIR or a LAB that is up")

    def last_written(p: Path) -> tuple[float, str]:
        written = run_info.modified(RunDir(p))
        return (p.stat().st_mtime if written is None else written), p.name

    return max(cands, key=last_written)


def resolve_run_dir(target: str | None, runs: Path, find_run_dir: Callable[[str], str | None]) -> Path:
    """The run directory meant by ``target``. ``find_run_dir(lab)`` asks the engine (called only for a LAB)."""
    if target is None:
        return newest_run(runs)
    p = Path(target)
    if p.is_dir():
        if is_run_dir(p):
            return p
        raise NotARun(f"{target}: not a run directory (no run.json or lab.yaml in it)")
    name = lab_name_of(target)
    found = find_run_dir(name)
    if found:
        return Path(found)
    hint = ""
    if runs.is_dir():
        mine = sorted((d for d in runs.glob(f"{name}-*") if is_run_dir(d)), key=lambda d: d.name)
        if mine:
            hint = f"; its last run is {os.path.relpath(mine[-1])}: `lab report {os.path.relpath(mine[-1])}`"
    raise NotARun(f"{target}: lab is not up and is not a run directory{hint}")


def _engine_lookup(name: str) -> str | None:
    from ..play.lifecycle import find_running
    from .common import engine

    r = find_running(engine(), name)
    return r.run_dir if r is not None else None


def register(app: typer.Typer) -> None:
    """Add `lab report` to `app`."""
    app.command("report")(report)


def report(target: Optional[str] = typer.Argument(None, metavar="[LAB or RUN_DIR]",
                                                  help="A run directory, or a lab that is up; default: the "
                                                       "newest run under ./runs."),
           open_: bool = typer.Option(False, "--open", help="Open the report in a browser (if there is a "
                                                            "display; else print its path)."),
           judge: bool = typer.Option(False, "--judge", help="Check the expectations again, from the run's own "
                                                             "lab.yaml, as `lab run` does: rewrite result.json and "
                                                             "junit.xml, print the verdicts, exit 1 if one did not "
                                                             "hold.")) -> None:
    """(Re)write report.html for a run from its artifacts; works on a running lab and on a finished run."""
    from ..report import write_report

    try:
        run_dir = resolve_run_dir(target, Path("runs"), _engine_lookup)
    except NotARun as e:
        die(EXIT_BAD_INPUT, str(e))
    if judge:
        _judge_again(run_dir)
    try:
        path = write_report(run_dir)
    except OSError as e:
        die(EXIT_ENVIRONMENT, f"report not written: {e}")
    rel = os.path.relpath(path)
    shown = str(path) if rel.startswith("..") else rel
    out.print(shown, markup=False)
    if open_:
        if has_display():
            import webbrowser

            if not webbrowser.open(path.resolve().as_uri()):
                say(f"no browser found: open {shown} yourself")
        else:
            say(f"no display: open {shown} in a browser")


def _judge_again(run_dir: Path) -> NoReturn:
    """The run judged from its lab.yaml (as edited since, if it was): exit 0 all held, 1 not, 2 a bad lab.yaml."""
    from ..model import LabError
    from .run_cmd import judge

    try:
        code = judge(run_dir, None)
    except LabError as e:
        die(EXIT_BAD_INPUT, str(e))
    except (OSError, ValueError) as e:
        die(EXIT_ENVIRONMENT, f"could not check the run in {run_dir}: {type(e).__name__}: {e}")
    raise SystemExit(code)
