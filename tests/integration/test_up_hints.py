"""The lines `lab up` prints after "is up" name the lab's own hosts, and each one works as printed."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tcplab.observe.sockets import parse_netstat

from ..conftest import lab_cmd, make_lab

pytestmark = pytest.mark.integration


def test_hints_after_lab_up_name_the_labs_hosts_and_work(tmp_path: Path, lab_down_after: list[str]) -> None:
    # no host is called "server": "web" runs the program, "cli" and "peer" run none
    path, name = make_lab(tmp_path, "closewait-linux", changes={
        "hosts": {"cli": {"image": "tcplab/client"},
                  "web": {"image": "tcplab/server", "program": {"run": ["/opt/lab/server", "8000", "5"],
                                                                 "name": "server", "ready": {"listen": 8000}}},
                  "peer": {"image": "tcplab/client"}},
        "steps": [], "expect": []})
    lab_down_after.append(name)
    up = lab_cmd("up", str(path), "--out", str(tmp_path / "run"), cwd=tmp_path, timeout=300)
    assert up.returncode == 0, up.stderr
    hints = [shlex.split(line) for line in up.stdout.splitlines()[1:] if line.startswith("  lab ")]
    commands = {h[1]: h for h in hints}
    assert set(commands) == {"status", "exec", "shell", "report", "down"}, up.stdout
    assert commands["exec"][:5] == ["lab", "exec", name, "web", "--"]  # the host whose program has sockets
    assert commands["shell"] == ["lab", "shell", name, "web"]
    for hint in ("status", "exec", "report"):  # run as printed (shell needs a terminal; down is the fixture's)
        res = lab_cmd(*commands[hint][1:], cwd=tmp_path, timeout=120)
        assert res.returncode == 0, (commands[hint], res.stderr)
        if hint == "exec":
            listening = [r for r in parse_netstat(res.stdout) if r.state == "LISTEN" and r.local_port == 8000]
            assert listening and listening[0].program == "server", res.stdout
