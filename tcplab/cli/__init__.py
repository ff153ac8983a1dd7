"""tcplab.cli: the `lab` command.

:func:`main` is the entry point. `lab down LAB` first asks the lab's keeper
(:mod:`tcplab.cli.keeper`) and imports the rest of the CLI only when none
answers, so this module imports the standard library only.
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "down" and not args[1].startswith("-"):
        from .keeper import ask_to_take_down

        try:
            code = ask_to_take_down(args[1], sys.stdout.write, sys.stderr.write)
        except KeyboardInterrupt:
            sys.stderr.write("lab: interrupted; the lab's keeper finishes taking it down\n")
            _exit_now(130)
        if code is not None:
            _exit_now(code)
    from .app import main as app_main

    try:
        app_main()
    except SystemExit as e:
        _exit_now(e.code)
    _exit_now(0)


def _exit_now(code: object) -> NoReturn:
    """Leave without the interpreter's teardown of ~550 modules (60-90 ms on two cores).

    Everything the command writes is closed by then (files through context managers, the lab's
    containers are the engine's); only the standard streams are flushed here."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
