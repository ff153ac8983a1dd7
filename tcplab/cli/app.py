"""The `lab` command: the Typer app, made of the command modules, each of which adds its commands.

Every command lives in a ``*_cmd`` module that exposes ``register(app)``; :data:`COMMANDS` lists them
in the order `lab --help` shows them. Command modules import nothing of this one (the app imports them),
and what they share is in :mod:`tcplab.cli.common` (exit codes, output, labs, the engine) and
:mod:`tcplab.cli.images_cmd` (a lab's images).
"""
from __future__ import annotations

import typer

from . import (compare_cmd, docs_cmd, down_cmd, export_cmd, hosts_cmd, images_cmd, init_cmd, labs_cmd, new_cmd,
               report_cmd, run_cmd, up_cmd, watch_cmd)
from .common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, die

# ls, validate | init | new | up | exec, shell, status | watch, step | down, gc | run | report | compare | export |
# docs, images (groups: last)
COMMANDS = (labs_cmd, init_cmd, new_cmd, up_cmd, hosts_cmd, watch_cmd, down_cmd, run_cmd, report_cmd, compare_cmd,
            export_cmd, docs_cmd, images_cmd)

HELP = """Turn a TCP war story into a reproducible experiment.

A LAB is a lab file's path, a directory holding lab.yaml, or a name: ./labs/NAME.yaml or \
./labs/NAME/lab.yaml of the current directory, else a lab shipped with tcplab (lab ls lists them). \
Runs go to ./runs/.

TCPLAB_HOME=DIR: use DIR/labs and DIR/images (a checkout) instead of the shipped labs and images."""

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=HELP)
for _module in COMMANDS:
    _module.register(app)


def main() -> None:
    """Run the app; usage errors become one line (`lab: ...`, exit 2) like every other bad input."""
    from .argv_values import take_argv_values_as_they_are

    command = typer.main.get_command(app)
    take_argv_values_as_they_are(command)
    try:
        code = command.main(prog_name="lab", standalone_mode=False)
    except KeyboardInterrupt:
        die(EXIT_INTERRUPTED, "interrupted")
    except Exception as e:  # click's UsageError family: typer vendors click, so match on its interface
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):
            ctx = getattr(e, "ctx", None)
            path = ctx.command_path if ctx is not None else "lab"
            sub = path.removeprefix("lab").strip()
            die(EXIT_BAD_INPUT, f"{sub + ': ' if sub else ''}{e.format_message().rstrip('.')} (see {path} --help)")
        raise
    raise SystemExit(code if isinstance(code, int) else 0)
