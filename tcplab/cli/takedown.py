"""Taking one lab down, as `lab down` does it: collect, remove, write the report, one closing line.

`lab run` writes its report with the same :func:`write_report_quietly`.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from ..backend.base import Backend
from ..play.lifecycle import RunningLab, bring_down


def take_down(backend: Backend, running: RunningLab, say: Callable[[str], None]) -> str:
    """Bring the run down and write its report; the line `lab down` prints.

    The report's code is imported and its template compiled on a thread while the engine removes the
    lab's objects, so only the rendering itself comes after the run is down. Not earlier: collection's
    own Python would share the interpreter with it."""
    warm = threading.Thread(target=_prepare_report, name="report-prepare", daemon=True)
    rd, removed = bring_down(backend, running, say, removing=warm.start)
    if warm.ident is not None:
        warm.join()
    write_report_quietly(rd.path, say)
    return (f"{running.lab} is down: removed {len(removed.containers)} containers, {len(removed.networks)} "
            f"networks, {len(removed.volumes)} volumes; artifacts in {os.path.relpath(rd.path)}")


def _prepare_report() -> None:
    try:
        from ..report import prepare

        prepare()
    except Exception:  # noqa: BLE001 - a failure shows again, and is said, when the report is written
        pass


def write_report_quietly(path: Path, say: Callable[[str], None]) -> None:
    try:
        from ..report import write_report
    except ImportError:
        return
    try:
        write_report(path)
    except Exception as e:  # noqa: BLE001 - the report must not stop teardown
        say(f"report not written: {e}")
