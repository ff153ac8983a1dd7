"""Issue 8.3: a crash mid-run makes `lab run` exit 3 naming what died, keep artifacts and a report,
and leave nothing behind. (The engine restart case is in test_zz_engine_restart.py: it runs last.)
A story program that dies is no crash: it is an event of the story, judged like the rest."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.wire import read_pcap_file

from ..conftest import LAB_PY, ROOT, labeled_objects, make_lab, record_figure, wait_for

pytestmark = pytest.mark.integration
LONG_WAIT = {"steps.6": {"wait": {"seconds": "40s"}, "timeout": "60s"}, "expect": []}



def start_run(tmp: Path, changes: dict) -> tuple[subprocess.Popen[str], str, Path]:
    path, name = make_lab(tmp, "closewait-linux", changes=changes)
    out = tmp / "run"
    proc = subprocess.Popen([sys.executable, str(LAB_PY), "run", str(path), "--out", str(out)], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TCPLAB_HOME": str(ROOT)})
    # the long wait is step 6: steps 0-5 are in steps.jsonl once it began
    wait_for(lambda: (out / "steps.jsonl").exists() and len((out / "steps.jsonl").read_text().splitlines()) >= 6
             or proc.poll() is not None, 90, "the run to reach its long wait")
    assert proc.poll() is None, proc.communicate()
    return proc, name, out


def finish(proc: subprocess.Popen[str], name: str, out: Path, expect_in_line: str, kind: str) -> None:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("lab: ") and expect_in_line in last, last
    assert labeled_objects(name) == []
    assert (out / "report.html").is_file()
    for pcap in (out / "capture").glob("*.pcap"):
        assert read_pcap_file(str(pcap)), f"{pcap} is empty"
    assert json.loads((out / "run.json").read_text())["state"] == "failed"
    record_figure("crashes", kind, len(labeled_objects(name)))


def test_server_program_killed_mid_run_is_an_event_not_a_crash(tmp_path: Path) -> None:
    """A story program that dies (here the host's own, killed from outside during a wait) is no failure of
    the environment: the run goes on, records its exit, and judges it."""
    import docker

    proc, name, out = start_run(tmp_path, {
        "steps.6": {"wait": {"seconds": "8s"}, "timeout": "10s"},
        "expect": [{"name": "server-killed", "program": {"host": "server", "name": "server", "exit": 137}}]})
    server = docker.from_env().containers.get(f"tcplab-{name}-server")
    assert server.exec_run(["pkill", "-KILL", "-x", "server"]).exit_code == 0
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stdout + stderr
    assert "PASS server-killed" in stdout
    assert labeled_objects(name) == []
    exits = [e for e in map(json.loads, (out / "programs.jsonl").read_text().splitlines()) if e["event"] == "exit"]
    assert [(e["name"], e["status"], e["signal"]) for e in exits if e["host"] == "server"] == [("server", 137, "KILL")]


def test_host_container_killed_from_outside(tmp_path: Path) -> None:
    import docker

    proc, name, out = start_run(tmp_path, LONG_WAIT)
    docker.from_env().containers.get(f"tcplab-{name}-linux").kill()
    finish(proc, name, out, "host linux exited with code", "host killed")
