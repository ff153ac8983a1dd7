"""Run directories as the commands name them: a path, or a lab meaning one of its runs under ./runs."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path


def is_run_dir(path: Path) -> bool:
    from ..rundir import RunDir
    from ..runfiles import lab, run_info

    return path.is_dir() and (run_info.exists(RunDir(path)) or lab.exists(RunDir(path)))


def lab_name_of(target: str) -> str:
    """A lab's name from its name or its file."""
    from ..model import LabError, parse_yaml
    from ..paths import lab_file

    path = lab_file(target)
    if path is None:
        return target
    try:
        return str(parse_yaml(path.read_text(), str(path)).get("name") or target)
    except (LabError, OSError):
        return target


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


RUN_STAMP = re.compile(r"-\d{8}T\d{6}Z(-\d+)?$")  # what new_run_id appends to a lab's name


class NoSuchRun(Exception):
    """The argument is neither a run directory nor a lab with a run under ./runs (exit 2)."""


def latest_run_of(lab: str, runs: Path) -> Path | None:
    """The newest run of ``lab`` under ``runs``: its run.json names the lab (closewait's runs, not
    closewait-linux's, though both start with ``closewait-``)."""
    from ..rundir import RunDir
    from ..runfiles import run_info

    if not runs.is_dir():
        return None
    mine = []
    for p in runs.iterdir():
        if not p.name.startswith(f"{lab}-") or not RUN_STAMP.search(p.name) or not is_run_dir(p):
            continue
        if str(run_info.read(RunDir(p)).get("lab") or RUN_STAMP.sub("", p.name)) == lab:
            written = run_info.modified(RunDir(p))
            mine.append(((p.stat().st_mtime if written is None else written), p.name, p))
    return max(mine)[2] if mine else None


def resolve_run(target: str, runs: Path) -> Path:
    """The run directory ``target`` names: itself, or its lab's newest run under ``runs``."""
    p = Path(target)
    if p.is_dir():
        if is_run_dir(p):
            return p
        raise NoSuchRun(f"{target}: not a run directory (no run.json or lab.yaml in it)")
    name = lab_name_of(target)
    found = latest_run_of(name, runs)
    if found is None:
        raise NoSuchRun(f"{target}: not a run directory, and {runs} holds no run of a lab named {name} "
                        f"(`lab run {name}` makes one)")
    return found
