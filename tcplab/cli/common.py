"""What every command shares: loading labs, the engine, exit codes, progress output."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from ..model import Lab, LabError, load_lab
from ..model.messages import clip
from ..paths import known_images, lab_file

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def die(code: int, line: str) -> NoReturn:
    sys.stderr.write(f"lab: {' '.join(line.split())}\n")  # one line, whatever the terminal width
    raise SystemExit(code)


def resolve_lab(name_or_path: str, sets: list[str] | None = None) -> tuple[Lab, dict[str, Any], Path]:
    """The validated lab for a name or file; bad input exits 2 with one line."""
    path = lab_file(name_or_path)
    if path is None:
        shown = clip(name_or_path)
        if Path(name_or_path).suffix in (".yaml", ".yml") or os.sep in name_or_path:
            die(EXIT_BAD_INPUT, f"{shown}: no such file")
        die(EXIT_BAD_INPUT, f"{shown}: no such lab (not a file, and no labs/{shown}.yaml)")
    try:
        lab, resolved = load_lab(path, sets or [], known_images(), display_name=_display(path))
    except LabError as e:
        die(EXIT_BAD_INPUT, str(e))
    return lab, resolved, path


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def engine():  # noqa: ANN201 - DockerBackend, imported lazily
    from ..backend.base import EngineError
    from ..backend.docker import DockerBackend

    try:
        backend = DockerBackend()
        backend.ping()
    except EngineError as e:
        die(EXIT_ENVIRONMENT, f"Docker engine: {e}")
    return backend


def interrupts_tear_down() -> None:
    """Ctrl-C and SIGTERM (CI cancelling a job) raise KeyboardInterrupt, which tears down.

    SIGINT is set explicitly: a process started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python keeps it so.
    """
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def say(msg: str) -> None:
    err.print(f"[dim]·[/dim] {msg}", markup=True, highlight=False) if sys.stderr.isatty() else \
        err.print(f"· {msg}", markup=False)
