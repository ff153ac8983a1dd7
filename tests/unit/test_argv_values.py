"""The quick coercion of argv values: Typer's seam is there, every value comes out as Typer's own adapter makes
it (or fails with its message), and a command no longer imports Typer's pydantic adapters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import pytest
import typer
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from tcplab.cli.app import app
from tcplab.cli.argv_values import take_argv_values_as_they_are

ROOT = Path(__file__).resolve().parents[2]


def _quick_and_typers(fn: Any) -> list[tuple[Any, Any, Any]]:
    """(parameter with the quick coercion, typer's own coercion, command) for each parameter of a one-command app made of ``fn``."""
    demo = typer.Typer(add_completion=False)
    demo.command()(fn)
    demo.command("other")(lambda: None)  # two commands: a group, as `lab` is
    command = typer.main.get_command(demo)
    assert take_argv_values_as_they_are(command) == len(command.commands["fn"].params)
    sub = command.commands["fn"]
    return [(p, build_runtime_param(p.type_descriptor), sub) for p in sub.params]


def fn(name: str = typer.Argument(...), sets: Optional[List[str]] = typer.Option(None, "--set"),
       out: Optional[Path] = typer.Option(None, "--out"), count: int = typer.Option(3, "--count"),
       flag: bool = typer.Option(False, "--flag"), known: Path = typer.Option(Path("."), exists=True),
       small: int = typer.Option(1, min=0, max=5)) -> None:
    pass


VALUES = {"name": ["closewait", "", "ünïcode"], "sets": [None, ["a=1", "b=2"], ("x=y",)],
          "out": [None, "runs/x", "", "/abs/path"], "count": [3, "7", " 8 ", "seven", 2.5],
          "flag": [True, False], "known": [".", "no/such/path"], "small": [1, "4", 9, "-1"]}


def _outcome(runtime: Any, param: Any, value: Any, command: Any) -> tuple[str, Any]:
    ctx = typer._click.Context(command)
    try:
        return "value", runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as e:
        return "error", e.format_message()


def test_every_value_comes_out_as_typers_own_adapter_makes_it() -> None:
    compared = 0
    for param, typers, command in _quick_and_typers(fn):
        for value in VALUES[param.name]:
            quick = _outcome(param.get_runtime_param(), param, value, command)
            assert quick == _outcome(typers, param, value, command), (param.name, value)
            compared += 1
    assert compared == sum(len(v) for v in VALUES.values())


def test_lab_gets_it_for_every_parameter_of_every_command() -> None:
    command = typer.main.get_command(app)
    params = [p for sub in command.commands.values() for c in [sub, *getattr(sub, "commands", {}).values()]
              for p in c.params]
    assert take_argv_values_as_they_are(command) == len(params) > 20


@pytest.mark.parametrize("argv", [["validate", "labs/closewait.yaml"], ["ls"], ["validate", "--help"],
                                  ["export", "closewait", "--set", "peers.win.fin_wait2_timeout=2s", "--out", "OUT"]])
def test_a_command_does_not_import_typers_pydantic_adapters(argv: list[str], tmp_path: Path) -> None:
    argv = [str(tmp_path / "compose.yml") if a == "OUT" else a for a in argv]
    probe = ("import runpy, sys\n"
             f"sys.argv = ['lab', *{argv!r}]\n"
             "try:\n    runpy.run_path('lab.py', run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "print('ADAPTERS', 'typer._adapters' in sys.modules, code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "ADAPTERS False 0", done.stderr
