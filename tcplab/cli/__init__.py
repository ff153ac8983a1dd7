"""tcplab.cli: the `lab` command. :func:`main` is the entry point (`lab`, `python3 lab.py`)."""
from __future__ import annotations


def main() -> None:
    from .app import main as app_main

    app_main()
