"""`lab ls` and `lab validate`: the labs there are, and whether lab files are sound. Nothing is started."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from .common import SetOpt, out, resolve_lab


def register(app: typer.Typer) -> None:
    """Add `lab ls` and `lab validate` to `app`."""
    app.command("ls")(ls_cmd)
    app.command("validate")(validate)


def ls_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Labs in labs/ and labs running now."""
    from ..model import LabError, load_lab
    from ..paths import DIR_LAB_FILE, LABS_DIR

    labs = []
    files = sorted([*LABS_DIR.glob("*.y*ml"), *LABS_DIR.glob(f"*/{DIR_LAB_FILE}")],
                   key=lambda f: f.relative_to(LABS_DIR))
    for f in files:
        rel = f.relative_to(LABS_DIR).as_posix()
        try:
            lab, _ = load_lab(f)
            labs.append({"name": lab.name, "summary": lab.summary, "file": f"labs/{rel}"})
        except LabError as e:
            labs.append({"name": f.parent.name if f.name == DIR_LAB_FILE else f.stem, "summary": f"invalid: {e}",
                         "file": f"labs/{rel}"})
    running = []
    try:
        from ..backend import connect
        from ..play.lifecycle import running_labs

        for r in running_labs(connect()).values():
            running.append({"lab": r.lab, "run": r.run, "run_dir": r.run_dir,
                            "state": "up" if r.left_up else ("starting" if r.owner_alive else "orphaned")})
    except Exception:  # noqa: BLE001 - listing labs works without an engine
        pass
    if as_json:
        out.print_json(json.dumps({"labs": labs, "running": running}))
        return
    for entry in labs:
        out.print(f"{entry['name']:<20} {entry['summary']}", markup=False)
    if running:
        out.print("\nrunning:")
        for run in running:
            out.print(f"  {run['lab']:<18} {run['state']:<9} {run['run_dir']}", markup=False)


def validate(files: List[str] = typer.Argument(..., help="Lab files or names."),
             sets: Optional[List[str]] = SetOpt) -> None:
    """Check lab files; nothing is started."""

    for f in files:
        lab, _, path = resolve_lab(f, sets)
        out.print(f"{path}: ok ({lab.name}: {len(lab.hosts)} hosts, {len(lab.steps)} steps, "
                  f"{len(lab.expect)} expectations)", markup=False)
