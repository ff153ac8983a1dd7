"""Which host the hints after `lab up` name (the integration test runs them on a real lab)."""
from __future__ import annotations

import shlex
from typing import Any

import pytest

from tcplab.cli.up_cmd import up_hints
from tcplab.model import validate

PROGRAM = {"run": ["/opt/lab/server", "8000", "5"]}


def lab(hosts: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> Any:
    return validate({"name": "hints", "hosts": hosts, "steps": steps or []}, "hints.yaml")


@pytest.mark.parametrize("hosts,steps,host", [
    ({"alpha": {"image": "tcplab/client"}, "web": {"image": "tcplab/server", "program": PROGRAM}}, [], "web"),
    ({"alpha": {"image": "tcplab/client"}, "beta": {"image": "tcplab/client"}},
     [{"host": "beta", "start": ["telnet", "alpha", "80"], "as": "t"}], "beta"),
    ({"alpha": {"image": "tcplab/client"}, "beta": {"image": "tcplab/client"}}, [], "alpha"),
])
def test_hints_name_the_host_with_a_program_else_the_first(hosts: dict[str, Any], steps: list[dict[str, Any]],
                                                            host: str) -> None:
    hints = [shlex.split(h) for h in up_hints(lab(hosts, steps), "runs/hints-x")]
    assert ["lab", "exec", "hints", host, "--", "netstat", "-tanp"] in hints
    assert ["lab", "shell", "hints", host] in hints
    assert not any("server" in h for h in hints)


def test_a_run_directory_with_a_space_is_one_word() -> None:
    hints = [shlex.split(h) for h in up_hints(lab({"a": {"image": "tcplab/client"}}), "my runs/x")]
    assert ["lab", "report", "my runs/x"] in hints
