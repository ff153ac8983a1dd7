"""`lab docs lab-file`: the lab file's reference (docs/lab-file.md), made from the model as it is installed."""
from __future__ import annotations

import typer

from .common import out


def register(app: typer.Typer) -> None:
    """Add `lab docs` to `app`."""
    docs_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The reference of the lab file.")
    docs_app.command("lab-file")(lab_file_docs)
    app.add_typer(docs_app, name="docs")


def lab_file_docs() -> None:
    """Every field of the lab file: type, default, description, example (Markdown, as docs/lab-file.md)."""
    from ..model.docs import example_files, render
    from ..paths import HOME

    text = render(example_files(HOME))
    out.file.write(text)
    out.file.flush()
