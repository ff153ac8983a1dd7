"""`lab up`: build missing images, bring the lab up, play its steps, leave it up to explore."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, SetOpt, die, engine, interrupts_tear_down, \
    out, resolve_lab, say
from .images_cmd import ensure_images, lab_image_requests, lab_images

if TYPE_CHECKING:
    from ..backend.base import Backend
    from ..model import Lab
    from ..play.session import LabRun


def register(app: typer.Typer) -> None:
    """Add `lab up` to `app`."""
    app.command("up")(up)


def up(lab_name: str = typer.Argument(..., metavar="LAB"), sets: Optional[List[str]] = SetOpt,
       out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<lab>-<UTC time>)."),
       step: bool = typer.Option(False, "--step", help="Before each step, say what it does and what to look for, "
                                 "then wait for Enter (or `lab step LAB` from another terminal)."),
       watch: bool = typer.Option(False, "--watch", help="Show the live view of `lab watch` in place of the "
                                  "list of steps.")) -> None:
    """Build missing images, bring the lab up, play its steps, leave it up to explore."""
    lab, resolved, lab_path = resolve_lab(lab_name, sets)  # bad input is refused before anything else is loaded

    from ..backend.base import EngineError
    from ..model import LabError
    from ..play.checkpoints import checkpoint
    from ..play.lifecycle import bring_up

    interrupts_tear_down()
    try:
        backend = engine()
        checkpoint("images")
        images = ensure_images(backend, lab_images(lab, lab_path), lab_image_requests(lab, lab_path))
        if watch:
            run = _up_watched(lab, resolved, backend, out_dir, images, step)
        else:
            from .countdown import for_stderr

            run = bring_up(lab, resolved, backend, out_dir, images, say, step=step,
                           terminal=sys.stdin if step and sys.stdin.isatty() else None, show_countdown=for_stderr())
    except KeyboardInterrupt:
        die(EXIT_INTERRUPTED, "interrupted; everything created was removed")
    except LabError as e:
        die(EXIT_BAD_INPUT, str(e))
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))
    rel = os.path.relpath(run.rd.path)
    out.print(f"{lab.name} is up; run directory: {rel}", markup=False)
    out.print("\n".join("  " + line for line in up_hints(lab, rel)), markup=False)


def _up_watched(lab: Lab, resolved: dict[str, Any], backend: Backend, out_dir: Path | None,
                images: dict[str, Any], step: bool) -> LabRun:
    """``lab up --watch``: the lab comes up in this thread (an interrupt tears it down as always) while
    another shows its run directory live; what ``lab up`` says goes to the view (``lab step`` lets a
    stepping run go on)."""
    import threading

    from ..play.lifecycle import bring_up
    from ..play.naming import new_run_id
    from .watch_cmd import watch_run

    rd_path = out_dir if out_dir is not None else Path("runs") / new_run_id(lab.name)
    said: list[str] = []
    done = threading.Event()
    viewer = threading.Thread(target=watch_run, args=(str(rd_path), lab.name), name="lab-watch", daemon=True,
                              kwargs={"said": said, "stop": done})
    viewer.start()
    try:
        return bring_up(lab, resolved, backend, rd_path, images, said.append, step=step)
    finally:
        done.set()
        viewer.join()  # its last frame stays on the screen, with the last lines said


def up_hints(lab: Lab, run_dir: str) -> list[str]:
    """What to try next, on the lab's own hosts: the first whose program ``lab up`` starts, else the first
    a step starts one on, else the first host."""
    import shlex

    from ..model import StartStep

    started = [h for h, host in lab.hosts.items() if host.program_name is not None]
    started += [s.host for s in lab.steps if isinstance(s, StartStep)]
    host = (started or list(lab.hosts))[0]
    return [f"lab status {lab.name}", f"lab exec {lab.name} {host} -- netstat -tanp", f"lab shell {lab.name} {host}",
            f"lab report {shlex.quote(run_dir)}", f"lab down {lab.name}"]
