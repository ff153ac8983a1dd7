"""`lab down` and `lab gc`: remove a lab that is up (collecting its last artifacts first), or the leftovers
of runs whose process is gone."""
from __future__ import annotations

from typing import Optional

import typer

from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, die, engine, out, say


def register(app: typer.Typer) -> None:
    """Add `lab down` and `lab gc` to `app`."""
    app.command("down")(down)
    app.command("gc")(gc)


def down(lab_name: Optional[str] = typer.Argument(None, metavar="[LAB]"),
         all_labs: bool = typer.Option(False, "--all", help="Every lab that is up.")) -> None:
    """Collect the last artifacts, then remove every object of the lab."""
    from ..backend.base import EngineError
    from ..play.lifecycle import find_running, running_labs
    from .takedown import take_down

    if not lab_name and not all_labs:
        die(EXIT_BAD_INPUT, "name a lab, or --all")
    backend = engine()
    runs = list(running_labs(backend).values()) if all_labs else [find_running(backend, lab_name or "")]
    if runs == [None]:
        die(EXIT_BAD_INPUT, f"{lab_name}: lab is not up (lab ls shows what runs)")
    try:
        for r in runs:
            assert r is not None
            out.print(take_down(backend, r, say), markup=False)
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))


def gc(images: bool = typer.Option(False, "--images", help="Also remove the older builds of labs' own images "
                                    "(tcplab-build/*): every one but the newest of each host, unless a container "
                                    "uses it.")) -> None:
    """Remove objects left by runs whose process is gone (killed, crashed)."""
    from ..backend.base import EngineError
    from ..play.lifecycle import collect_garbage

    backend = engine()
    removed, failed = collect_garbage(backend)
    old: list[str] = []
    kept: list[tuple[str, str]] = []
    if images:
        try:
            old, kept = backend.remove_old_builds()
        except EngineError as e:
            die(EXIT_ENVIRONMENT, str(e))
    if not removed and not failed and not old and not kept:
        out.print("nothing to collect")
    for r, rm in removed:
        out.print(f"removed run {r.run}: {len(rm.containers)} containers ({', '.join(sorted(rm.containers))}), "
                  f"{len(rm.networks)} networks, {len(rm.volumes)} volumes", markup=False)
    for ref in old:
        out.print(f"removed image {ref} (an older build)", markup=False)
    for r, why in failed:  # the engine's own state (a stale endpoint count clears only when dockerd restarts)
        say(f"run {r.run} not removed: {why}")
    for ref, why in kept:
        say(f"image {ref} not removed: {why}")
    if failed or kept:
        raise SystemExit(EXIT_ENVIRONMENT)
