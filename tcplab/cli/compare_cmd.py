"""`lab compare RUN_A RUN_B [--out FILE]`: two runs side by side in one HTML page, with what differs.

A RUN is a run directory, or a lab (its name or file) meaning that lab's
newest run under ./runs. Needs no Docker engine: the page is made from the
two run directories alone. `lab run LAB --compare-with OTHER` makes the same
page once its run is judged (:func:`write_comparison`).
"""
from __future__ import annotations

import os
from pathlib import Path

import typer

from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, die, err, out, say
from .runs import NoSuchRun, has_display, resolve_run


def shown(path: Path) -> str:
    rel = os.path.relpath(path)
    return str(path.resolve()) if rel.startswith("..") else rel


def write_comparison(run_a: Path, run_b: Path, out_file: Path) -> Path:
    """Write the page; say what differs (on stderr, a line each) and print the page's path; an unwritable file
    is exit 3."""
    from ..report.compare import write_compare

    try:
        path, diffs = write_compare(run_a, run_b, out_file)
    except OSError as e:
        die(EXIT_ENVIRONMENT, f"comparison not written: {e}")
    err.print(f"what differs between {shown(run_a)} and {shown(run_b)}:" if diffs
              else f"nothing compared differs between {shown(run_a)} and {shown(run_b)}", markup=False)
    for d in diffs:
        err.print(f"  - {d.text}", markup=False)
    out.print(shown(path), markup=False)
    return path


def register(app: typer.Typer) -> None:
    """Add `lab compare` to `app`."""
    app.command("compare")(compare)


def compare(run_a: str = typer.Argument(..., metavar="RUN_A", help="A run directory, or a lab: its newest run "
                                                                   "under ./runs."),
            run_b: str = typer.Argument(..., metavar="RUN_B", help="The run to put beside it (the same forms)."),
            out_file: Path = typer.Option(Path("compare.html"), "--out", help="The page to write."),
            open_: bool = typer.Option(False, "--open", help="Open the page in a browser (if there is a display).")
            ) -> None:
    """Two runs side by side in one HTML page: ladders, socket timelines, expectations, and what differs."""
    try:
        a, b = resolve_run(run_a, Path("runs")), resolve_run(run_b, Path("runs"))
    except NoSuchRun as e:
        die(EXIT_BAD_INPUT, str(e))
    if out_file.is_dir():
        die(EXIT_BAD_INPUT, f"--out {out_file}: is a directory; give a file name")
    if not out_file.resolve().parent.is_dir():
        die(EXIT_BAD_INPUT, f"--out {out_file}: no such directory {out_file.parent}")
    path = write_comparison(a, b, out_file)
    if open_:
        if has_display():
            import webbrowser

            if not webbrowser.open(path.resolve().as_uri()):
                say(f"no browser found: open {shown(path)} yourself")
        else:
            say(f"no display: open {shown(path)} in a browser")
