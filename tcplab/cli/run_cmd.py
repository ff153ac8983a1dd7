"""`lab run`: up, play, down, then judge the run against the lab's expectations. The CI entry point.

Exit status: 0 every expectation held; 1 one failed (or a step the lab said
would happen did not: a wait that timed out); 2 bad input; 3 the environment
failed; 130 interrupted. Whatever the outcome, nothing of the run is left on
the engine: `bring_up` tears down when it fails, and `bring_down` runs in a
``finally`` once it succeeded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional

import typer

from .common import SetOpt

if TYPE_CHECKING:
    from ..backend.base import Backend


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("run")(run)


def run(lab_name: str = typer.Argument(..., metavar="LAB"), sets: Optional[List[str]] = SetOpt,
        junit: Optional[Path] = typer.Option(None, "--junit", help="Also write junit.xml here."),
        out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<lab>-<UTC time>)."),
        compare_with: Optional[str] = typer.Option(None, "--compare-with", metavar="OTHER",
                                                   help="Then write compare.html: this run beside OTHER (a run "
                                                        "directory, or a lab: its newest run under ./runs), as "
                                                        "`lab compare` does.")
        ) -> None:
    """Up, play the steps, down, check the expectations; write result.json, junit.xml and the report."""
    from ..backend.base import EngineError
    from ..model import LabError
    from ..play.lifecycle import RunningLab, bring_down, bring_up
    from ..play.naming import new_run_id, process_start
    from ..play.errors import TeardownIncomplete
    from ..play.session import StepFailure
    from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, die, engine, resolve_lab, say, \
        interrupts_tear_down
    from .countdown import for_stderr
    from .images_cmd import ensure_images, lab_image_requests, lab_images

    lab, resolved, lab_path = resolve_lab(lab_name, sets)
    other = _other_run(compare_with) if compare_with is not None else None  # bad input before anything runs
    if not lab.expect:
        say(f"{lab.name} has no expectations: `lab run` only checks that its steps play")
    interrupts_tear_down()
    backend = engine()
    # the run directory is chosen here so that it is known even when bring_up fails
    rd_path = out_dir if out_dir is not None else Path("runs") / new_run_id(lab.name)
    step_failed: str | None = None
    left_behind: str | None = None
    try:
        try:
            images = ensure_images(backend, lab_images(lab, lab_path), lab_image_requests(lab, lab_path))
            try:
                lab_run = bring_up(lab, resolved, backend, rd_path, images, say, show_countdown=for_stderr())
            except StepFailure as e:  # bring_up collected what there was and removed everything
                step_failed = str(e)
            else:
                running = RunningLab(lab.name, lab_run.names.run, str(lab_run.rd.path), str(os.getpid()),
                                     process_start(os.getpid()))
                try:
                    _, removed = bring_down(backend, running, say)
                except TeardownIncomplete as e:  # the evidence is whole: judge it, then say what was left
                    left_behind = str(e)
                else:
                    say(f"{lab.name} is down: removed {len(removed.containers)} containers, "
                        f"{len(removed.networks)} networks, {len(removed.volumes)} volumes")
        finally:
            _remove_leftovers(backend, lab.name, say)
    except KeyboardInterrupt:
        die(EXIT_INTERRUPTED, "interrupted; everything created was removed")
    except LabError as e:
        die(EXIT_BAD_INPUT, str(e))
    except EngineError as e:
        rel = os.path.relpath(rd_path)
        if Path(rd_path).is_dir():
            from .takedown import write_report_quietly

            write_report_quietly(Path(rd_path), say)  # the report of what there is: a crash is worth reading about
        die(EXIT_ENVIRONMENT, f"{e} (artifacts so far in {rel})" if Path(rd_path).is_dir() else str(e))
    rel = os.path.relpath(rd_path)
    if step_failed:
        if not _a_step_failed(Path(rd_path)):  # the hosts' own programs, before the story began
            die(EXIT_ENVIRONMENT, f"the lab could not start: {step_failed} (artifacts in {rel})")
        say(f"a step did not complete ({step_failed}); checking what the run got to")
    try:
        code = judge(Path(rd_path), junit)
    except KeyboardInterrupt:
        die(EXIT_INTERRUPTED, "interrupted (the lab was already down)")
    except (OSError, ValueError, LabError) as e:
        die(EXIT_ENVIRONMENT, f"could not check the run in {rel}: {type(e).__name__}: {e}")
    if other is not None:
        from .compare_cmd import write_comparison

        write_comparison(Path(rd_path), other, Path("compare.html"))
    if left_behind is not None:
        die(EXIT_ENVIRONMENT, f"{left_behind}: the run was judged (exit status {code} otherwise; result.json in "
                              f"{rel}), but the engine kept that object")
    raise SystemExit(code)


def _other_run(target: str) -> Path:
    """The run --compare-with names; one line and exit 2 if there is none."""
    from .common import EXIT_BAD_INPUT, die
    from .runs import NoSuchRun, resolve_run

    try:
        return resolve_run(target, Path("runs"))
    except NoSuchRun as e:
        die(EXIT_BAD_INPUT, f"--compare-with {e}")


def _a_step_failed(run_dir: Path) -> bool:
    from ..rundir import RunDir
    from ..runfiles import steps

    return any(s.get("outcome") == "failed" for s in steps.read(RunDir(run_dir)))


def judge(run_dir: Path, junit: Path | None) -> int:
    """Evaluate a finished run, write result.json, junit.xml (and --junit), the report; print the verdicts."""
    from ..analysis.expectations import evaluate
    from ..analysis.results import failure_block, write_junit, write_result_json
    from ..rundir import RunDir
    from .common import EXIT_FAILED, EXIT_OK, out, say
    from .takedown import write_report_quietly

    rd = RunDir(run_dir)
    ev = evaluate(rd)
    write_result_json(ev, rd)
    write_junit(ev, rd.junit_xml)
    if junit is not None:
        write_junit(ev, junit)
    write_report_quietly(rd.path, say)
    for v in ev.verdicts:
        if v.held:
            out.print(f"PASS {v.name}: {v.about}", markup=False)
    for v in ev.verdicts:
        if not v.held:
            out.print(failure_block(v, ev.cited.get(v.name, ())), markup=False)
    if not ev.passed:
        from ..analysis.machine import short_of_cpu_line

        if (line := short_of_cpu_line(ev.cpu)) is not None:
            out.print(line, markup=False)
    rel = os.path.relpath(rd.path)
    total = len(ev.verdicts)
    if ev.passed:
        summary = f"{ev.lab}: all {total} expectations held"
    elif not ev.errors:
        summary = f"{ev.lab}: {ev.failed} of {total} expectations failed"
    else:
        summary = (f"{ev.lab}: {ev.failed} of {total} expectations failed, {ev.errors} could not be judged "
                   "(error: evidence missing)")
    out.print(f"{summary}; run directory: {rel} (result.json, junit.xml"
              f"{', report.html' if rd.report_html.is_file() else ''})", markup=False)
    return EXIT_OK if ev.passed else EXIT_FAILED


def _remove_leftovers(backend: "Backend", lab: str, say: Callable[[str], None]) -> None:
    """Objects of this lab that this process created and still exist (an interrupt landed between
    bring_up returning and bring_down starting): remove them. Another process's run is never touched."""
    from ..backend.base import EngineError
    from ..play.lifecycle import find_running
    from ..play.teardown import remove_agent_dirs, teardown
    from ..rundir import RunDir

    try:
        r = find_running(backend, lab)
        if r is not None and r.owner_pid == str(os.getpid()):
            say(f"removing what is left of {r.run}")
            teardown(backend, r.run)
            remove_agent_dirs(RunDir(r.run_dir))
    except EngineError as e:
        say(f"could not check for leftovers: {e}")
