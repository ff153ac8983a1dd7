"""`lab export`: a lab as a file another tool runs without tcplab (today: a compose file)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import EXIT_BAD_INPUT, die, out, resolve_lab, write_out


def register(app: typer.Typer) -> None:
    """Add `lab export` to `app`."""
    app.command("export")(export_cmd)


def export_cmd(
    lab_name: str = typer.Argument(..., metavar="LAB"),
    fmt: str = typer.Option("compose", "--format", help="Output format (only: compose)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Where to write (default ./compose/<lab>.yml)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="Override a lab field by dotted path."),
) -> None:
    """Write the lab as a compose file that docker-compose runs as is (default compose/LAB.yml)."""
    from ..export import FORMATS, ExportError, export_to
    if fmt not in FORMATS:
        die(EXIT_BAD_INPUT, f"--format {fmt}: unknown format (known: {', '.join(FORMATS)})")
    lab, resolved, path = resolve_lab(lab_name, sets)
    target = out_file if out_file is not None else Path("compose") / f"{lab.name}.yml"  # beside runs/
    if target.is_dir():
        die(EXIT_BAD_INPUT, f"--out {target}: is a directory; name the file")
    try:
        exported = export_to(target, lab, resolved, path, sets or [])
    except ExportError as e:
        die(EXIT_BAD_INPUT, f"{lab.name}: cannot export: {e}")
    write_out(target, exported.text)
    try:
        shown = str(target.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(target)
    out.print(f"wrote {shown}: {len(exported.services)} services ({', '.join(exported.services)})",
              markup=False)
