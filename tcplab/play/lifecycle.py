"""The lab lifecycle the CLI offers: up, down, find what runs, collect garbage.

Docker is the registry of what runs: every object carries the run's labels,
including the run directory, so `lab down` in another process (or after a
reboot of the CLI) finds both the objects and where their artifacts go.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from ..backend.base import (LABEL_LAB, LABEL_OWNER_PID, LABEL_OWNER_START, LABEL_RUN, LABEL_RUN_DIR, Backend,
                            EngineError, LabeledObject, Removed)
from ..model import Lab, LabError
from ..rundir import RunDir
from ..runfiles import lab as lab_file
from ..runfiles import run_info
from ..runfiles.run_info import RunInfoFile
from .naming import RunNames, new_run_id, owner_alive
from .collect import collect
from .errors import TeardownIncomplete
from .gate import StepGate
from .session import LabRun
from .steps.base import ShowCountdown
from .teardown import remove_agent_dirs, teardown

Say = Callable[[str], None]


@dataclass
class RunningLab:
    lab: str
    run: str
    run_dir: str
    owner_pid: str
    owner_start: str
    objects: list[LabeledObject] = field(default_factory=list)

    @property
    def owner_alive(self) -> bool:
        return owner_alive(self.owner_pid, self.owner_start)

    @property
    def left_up(self) -> bool:
        """`lab up` finished and handed the lab to the user: its run.json says so."""
        return run_info.read(RunDir(self.run_dir)).get("state") == "up"

    @property
    def orphaned(self) -> bool:
        return not self.owner_alive and not self.left_up


def running_labs(backend: Backend) -> dict[str, RunningLab]:
    """Every run that has objects on the engine, by run id."""
    runs: dict[str, RunningLab] = {}
    for obj in backend.list_labeled():
        run = obj.labels.get(LABEL_RUN, "?")
        r = runs.setdefault(run, RunningLab(obj.labels.get(LABEL_LAB, "?"), run, obj.labels.get(LABEL_RUN_DIR, ""),
                                            obj.labels.get(LABEL_OWNER_PID, ""), obj.labels.get(LABEL_OWNER_START, "")))
        r.objects.append(obj)
    return runs


def find_running(backend: Backend, lab_name: str) -> RunningLab | None:
    for r in running_labs(backend).values():
        if r.lab == lab_name:
            return r
    return None


def load_run_lab(run: RunningLab) -> Lab:
    return lab_file.read(RunDir(run.run_dir))


def bring_up(lab: Lab, resolved: dict[str, Any], backend: Backend, out: Path | None, images: dict[str, Any],
             say: Say, step: bool = False, terminal: TextIO | None = None,
             show_countdown: ShowCountdown | None = None) -> LabRun:
    """Create and play the lab. On any failure or interrupt: collect what there is, remove everything, re-raise.

    With ``step``, each step waits to be let go (:mod:`tcplab.play.gate`): by a line on ``terminal``, or by
    ``lab step`` from another terminal. ``show_countdown`` shows a long wait's countdown."""
    existing = find_running(backend, lab.name)
    if existing is not None:
        if existing.orphaned:
            say(f"removing leftovers of {existing.run} (its `lab up` is gone)")
            teardown(backend, existing.run)
        else:
            raise LabError(lab.name, "", f"is already up (run {existing.run}, {existing.run_dir}); "
                                         f"`lab down {lab.name}` first")
    run_id = new_run_id(lab.name)
    rd = RunDir(out if out is not None else Path("runs") / run_id)
    if rd.exists():
        raise LabError(str(rd.path), "--out", "already holds a run; choose another directory")
    names = RunNames(lab.name, run_id, str(rd.path))
    run = LabRun(lab, resolved, backend, rd, names, say)
    run.show_countdown = show_countdown
    gate = StepGate(rd, lab, say, terminal) if step and lab.steps else None
    if gate is not None:
        run.before_step = gate.before
    try:
        run.up(images)
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        say("interrupted: removing what was created" if interrupted else f"failed: {e}; collecting and removing")
        try:
            if lab_file.exists(rd):  # an interrupt affords no final snapshot
                collect(backend, rd, names, lab, say, final_snapshot=not interrupted)
        except BaseException as inner:  # noqa: BLE001 - teardown must still happen
            say(f"collecting artifacts failed: {inner}")
        finally:
            teardown(backend, run_id)
            run.close_agents()
            run.write_run_info(state="interrupted" if interrupted else "failed", ended=time.time(), error=str(e))
        raise
    finally:
        if gate is not None:
            gate.close()
    return run


def bring_down(backend: Backend, running: RunningLab, say: Say,
               removing: Callable[[], None] | None = None) -> tuple[RunDir, Removed]:
    """Collect the run, then remove its objects. TeardownIncomplete: collected, but the engine kept an object.

    ``removing`` is called as removal starts: the caller's own work can wait for the engine beside it."""
    rd = RunDir(running.run_dir)
    names = RunNames(running.lab, running.run, running.run_dir)
    collected_whole = False
    left: EngineError | None = None
    try:
        if rd.exists():
            lab = load_run_lab(running)
            t = time.monotonic()
            collect(backend, rd, names, lab, say)
            collected = time.monotonic() - t
            RunInfoFile(rd).update(phases={"collection": round(collected, 4)})
            collected_whole = True
        else:
            say(f"run directory {rd.path} is gone: removing objects without collecting")
    finally:
        t = time.monotonic()
        removed = Removed()
        if removing is not None:
            try:
                removing()
            except Exception:  # noqa: BLE001 - the caller's work beside removal must never stop removal
                pass
        try:
            removed = teardown(backend, running.run)
        except EngineError as e:
            left = e
        remove_agent_dirs(rd)
        if rd.exists():
            derive_timewait(rd, say)
        if rd.exists():
            RunInfoFile(rd).update(phases={"teardown": round(time.monotonic() - t, 4)}, state="down", ended=time.time(),
                                   **({"error": f"teardown incomplete: {left}"} if left is not None else {}))
        if left is not None:
            if collected_whole:
                raise TeardownIncomplete(str(left)) from None
            raise left
    return rd, removed


def derive_timewait(rd: RunDir, say: Say) -> None:
    """Append the derived TIME_WAIT records to sockets/transitions.jsonl. Called after teardown: the tracer
    is gone, so no hand-over can be written after them. Never fatal: readers derive on read without them."""
    from ..observe.timewait import append_derived  # here: `lab up` never needs it

    try:
        append_derived(rd)
    except Exception as e:  # noqa: BLE001 - the run is down and its artifacts are kept whatever happens here
        say(f"TIME_WAIT not derived into sockets/transitions.jsonl: {type(e).__name__}: {e}")


def garbage(backend: Backend) -> list[RunningLab]:
    return [r for r in running_labs(backend).values() if r.orphaned]


def collect_garbage(backend: Backend) -> tuple[list[tuple[RunningLab, Removed]], list[tuple[RunningLab, str]]]:
    """Remove the objects of every run whose process is gone: what was removed, and the runs the engine would
    not let go of (why, in its words), each tried in turn."""
    out: list[tuple[RunningLab, Removed]] = []
    failed: list[tuple[RunningLab, str]] = []
    for r in garbage(backend):
        try:
            out.append((r, teardown(backend, r.run)))
        except EngineError as e:
            failed.append((r, str(e)))
            continue
        if r.run_dir:
            remove_agent_dirs(RunDir(r.run_dir))
    return out, failed

