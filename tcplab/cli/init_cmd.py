"""`lab init [DIR]`: a commented starter lab for a user's own service (its Dockerfile in DIR)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Optional

import typer

from .common import EXIT_BAD_INPUT, die, out

STARTER = Path(__file__).resolve().parent / "starter.yaml"  # the template, $name $port $dir filled in
DEFAULT_NAME = "my-service"


def register(app: typer.Typer) -> None:
    """Add `lab init` to `app`."""
    app.command("init")(init)


def lab_name_for(directory: Path) -> str:
    """A lab name from a directory's name: lower case, other characters as '-', starting with a letter."""
    name = re.sub(r"[^a-z0-9_-]+", "-", directory.resolve().name.lower()).strip("-_")
    name = re.sub(r"^[^a-z]+", "", name)[:31].rstrip("-_")
    return name or DEFAULT_NAME


def starter_text(name: str, port: int, shown_dir: str) -> str:
    from string import Template

    return Template(STARTER.read_text(encoding="utf-8")).substitute(name=name, port=port, dir=shown_dir)


def init(directory: Path = typer.Argument(Path("."), metavar="[DIR]", help="Where to write lab.yaml (default: here)."),
         name: Optional[str] = typer.Option(None, "--name", help="The lab's name (default: from DIR's name)."),
         port: int = typer.Option(8000, "--port", min=1, max=65535, help="The port your service listens on."),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing lab.yaml.")) -> None:
    """Write DIR/lab.yaml: your service (the Dockerfile in DIR), a telnet client, one CLOSE_WAIT expectation."""
    from ..model import LabError, parse_yaml, validate
    from ..paths import DIR_LAB_FILE

    target = directory / DIR_LAB_FILE
    shown = shlex.quote(str(directory)) if str(directory).isprintable() else "DIR"  # it goes into a comment
    lab_name = name if name is not None else lab_name_for(directory)
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", lab_name):
        die(EXIT_BAD_INPUT, f"--name {lab_name[:40]!r}: a lab name is a-z, then a-z 0-9 _ -, up to 31 characters")
    if target.exists() and not force:
        die(EXIT_BAD_INPUT, f"{target}: exists; not overwritten (--force to replace it)")
    text = starter_text(lab_name, port, shown)
    try:
        validate(parse_yaml(text, str(target)), str(target))  # the starter is a lab the model accepts
    except LabError as e:
        raise AssertionError(f"the starter lab is refused: {e}") from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        die(EXIT_BAD_INPUT, f"{target}: cannot write: {e.strerror}")
    out.print(f"wrote {target}: lab {lab_name} (your service from the Dockerfile beside it, port {port}; "
              "a telnet client; one CLOSE_WAIT expectation)", markup=False)
    if not (directory / "Dockerfile").is_file():
        out.print(f"{shown} has no Dockerfile yet: put your service's there (or give server an image: instead "
                  "of build: .)", markup=False)
    out.print(f"next: lab run {shown}", markup=False)
