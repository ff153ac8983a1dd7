"""Where no agent directory can be made, the hosts hold PID 1 with `sleep infinity` and the story is
played through Docker exec instead: same steps, same artifacts."""
from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

STORY = {"expect": [], "steps": [
    {"host": "linux", "start": ["telnet", "server", "8000"], "as": "telnet1", "ready": {"log": "Connected to"}},
    {"snapshot": "connected"},
    {"host": "linux", "stop": "telnet1"},
    {"wait": {"fin_from": "linux"}, "timeout": "5s"},
]}


def test_a_run_directory_that_cannot_hold_fifos_falls_back_to_docker_exec(tmp_path: Path) -> None:
    path, name = make_lab(tmp_path, "closewait-linux", changes=STORY)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".agents").write_text("a file where the agents' directory would go\n")  # mkdir fails
    since = int(time.time())
    try:
        up = lab_cmd("up", str(path), "--out", str(run_dir), cwd=tmp_path)
        assert up.returncode == 0, up.stderr
        client = docker.from_env()
        commands = {c.labels["tcplab.host"]: c.attrs["Config"]["Cmd"] for c in client.containers.list(
            filters={"label": [f"tcplab.lab={name}", "tcplab.role=host"]})}
        assert list(commands.values()) == [["sleep", "infinity"]] * 3
        execs = [e for e in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                          filters={"label": [f"tcplab.lab={name}"], "event": ["exec_start"]})]
        assert len(execs) >= 4  # labrun, its readiness, the snapshot's labsnap per host, labstop
        steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
        assert [s["outcome"] for s in steps] == ["ok"] * 4
        snaps = json.loads((run_dir / "sockets" / "snapshots.json").read_text())
        assert any(r["state"] == "ESTABLISHED" for r in snaps["connected"]["hosts"]["linux"]["netstat"]["records"])
    finally:
        down = lab_cmd("down", name, cwd=tmp_path)
        assert down.returncode == 0, down.stderr
    assert labeled_objects(name) == []
    assert "Connected to" in (run_dir / "logs" / "linux.log").read_text()  # program logs through the archive API
