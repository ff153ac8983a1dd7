"""`lab ls` and `lab validate`: the labs there are, and whether lab files are sound. Nothing is started."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .common import SetOpt, out, resolve_lab


def register(app: typer.Typer) -> None:
    """Add `lab ls` and `lab validate` to `app`."""
    app.command("ls")(ls_cmd)
    app.command("validate")(validate)


def ls_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Labs by name (./labs/NAME.yaml, ./labs/NAME/lab.yaml, then the shipped ones) and labs running now."""
    from ..model import LabError, load_lab
    from ..paths import all_labs

    labs = []
    for entry in all_labs():
        shown = _shown(entry.path, entry.shipped)
        try:
            lab, _ = load_lab(entry.path)
            labs.append({"name": entry.name, "summary": lab.summary, "file": shown, "shipped": entry.shipped})
        except LabError as e:
            labs.append({"name": entry.name, "summary": f"invalid: {e}", "file": shown, "shipped": entry.shipped})
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
    for item in labs:
        where = "" if item["shipped"] else f"  ({item['file']})"
        out.print(f"{item['name']:<20} {item['summary']}{where}", markup=False)
    if running:
        out.print("\nrunning:")
        for run in running:
            out.print(f"  {run['lab']:<18} {run['state']:<9} {run['run_dir']}", markup=False)


def _shown(path: Path, shipped: bool) -> str:
    """A lab file as a person finds it: relative to the current directory, or to the shipped labs' top."""
    from ..paths import HOME

    for top in ((HOME,) if shipped else ()) + (Path.cwd(),):
        try:
            return path.resolve().relative_to(top.resolve()).as_posix()
        except ValueError:
            continue
    return str(path)


def validate(files: List[str] = typer.Argument(..., help="Lab files or names."),
             sets: Optional[List[str]] = SetOpt) -> None:
    """Check lab files; nothing is started. Every file is checked (one line each); exit 2 if any is bad."""

    worst = 0
    for f in files:
        try:
            lab, _, path = resolve_lab(f, sets)
        except SystemExit as e:  # its one line is said: go on to the next file, as a linter does
            worst = max(worst, e.code if isinstance(e.code, int) else 2)
            continue
        out.print(f"{path}: ok ({lab.name}: {len(lab.hosts)} hosts, {len(lab.steps)} steps, "
                  f"{len(lab.expect)} expectations)", markup=False)
    if worst:
        raise SystemExit(worst)
