"""tcplab.cli: the `lab` command.

:func:`main` is the entry point. `lab down LAB` first asks the lab's keeper
(:mod:`tcplab.cli.keeper`) and imports the rest of the CLI only when none
answers, so this module imports the standard library only.
"""
from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "down" and not args[1].startswith("-"):
        from .keeper import ask_to_take_down

        try:
            code = ask_to_take_down(args[1], sys.stdout.write, sys.stderr.write)
        except KeyboardInterrupt:
            sys.stderr.write("lab: interrupted; the lab's keeper finishes taking it down\n")
            raise SystemExit(130) from None
        if code is not None:
            sys.stdout.flush()
            raise SystemExit(code)
    from .app import main as app_main

    app_main()
