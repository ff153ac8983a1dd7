"""What every command shares: exit codes, one-line errors, output, loading labs, the engine.

The top imports the standard library and Typer only, and so does every command module: a command
imports what it uses when it runs, so `lab down` pays neither for validating lab files nor for
`lab up`'s image builder, nor for rich where a plain line does.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ..backend.base import Backend
    from ..model import Lab

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

SetOpt = typer.Option(None, "--set", help="Override a lab field by dotted path, e.g. peers.win.fin_wait2_timeout=2s")


class Output:
    """A standard stream as the commands print to it: plain lines, written as they are and flushed at once
    (so stdout and stderr keep their order in one log), and a rich console made only for what needs one:
    styles on a terminal, JSON, image build progress."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr
        self._rich: Console | None = None

    @property
    def file(self) -> TextIO:
        return sys.stderr if self.stderr else sys.stdout  # looked up at each use: a test may swap the streams

    @property
    def is_terminal(self) -> bool:
        return self.file.isatty()

    @property
    def rich(self) -> Console:
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self.stderr, highlight=False, soft_wrap=True)
        return self._rich

    def print(self, text: str = "", markup: bool = False) -> None:
        """One line; with ``markup``, rich's markup (``[dim]...[/dim]``) is rendered."""
        if markup:
            self.rich.print(text, markup=True)
            return
        f = self.file
        f.write(f"{text}\n")
        f.flush()

    def print_json(self, text: str) -> None:
        self.rich.print_json(text)


out = Output(stderr=False)
err = Output(stderr=True)


def die(code: int, line: str) -> NoReturn:
    sys.stderr.write(f"lab: {' '.join(line.split())}\n")  # one line, whatever the terminal width
    raise SystemExit(code)


def write_out(target: Path, text: str) -> None:
    """Write a file a command was asked for (``--out``) whole or not at all: through a temporary file beside it.
    A target that cannot be written is bad input: one line, exit 2."""
    import os

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError as e:
        die(EXIT_BAD_INPUT, f"--out {target}: cannot write: {e.strerror}")


def resolve_lab(name_or_path: str, sets: list[str] | None = None) -> tuple[Lab, dict[str, Any], Path]:
    """The validated lab for a name or file; bad input exits 2 with one line."""
    from ..model import LabError, load_lab
    from ..model.messages import clip
    from ..paths import known_images, lab_file, looks_like_path

    path = lab_file(name_or_path)
    if path is None:
        shown = clip(name_or_path)
        if Path(name_or_path).is_dir():
            die(EXIT_BAD_INPUT, f"{shown}: no lab.yaml in this directory")
        if looks_like_path(name_or_path):
            die(EXIT_BAD_INPUT, f"{shown}: no such file")
        die(EXIT_BAD_INPUT, f"{shown}: no such lab (not a file, no labs/{shown}.yaml or labs/{shown}/lab.yaml here, "
                            "and not a shipped lab: see lab ls)")
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


def engine() -> Backend:
    from ..backend import connect
    from ..backend.base import EngineError

    try:
        backend = connect()
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
    if sys.stderr.isatty():
        err.print(f"[dim]·[/dim] {msg}", markup=True)
    else:
        err.print(f"· {msg}")
