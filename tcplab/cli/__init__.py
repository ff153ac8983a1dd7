"""tcplab.cli: the `lab` command. :func:`main` is the entry point (`lab`, `python3 lab.py`)."""
from __future__ import annotations

import os
import sys


def main() -> None:
    from . import report_cmd
    from .app import main as app_main

    try:
        app_main()
    except SystemExit as e:
        if report_cmd.LEFT and (e.code is None or isinstance(e.code, int)):
            # `lab report` is done: end without freeing the run's packets one by one (nothing else is left to
            # do: no thread, no exit handler of tcplab's), its output flushed first
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.code or 0)
        raise
