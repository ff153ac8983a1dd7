"""The keeper `lab up` leaves beside a lab: `lab down` asks it; without it `lab down` still works.

Small labs (closewait's cast, both telnets connected, no RST wait) so each
test brings up its own.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.cli.keeper import keeper_pids

from ..conftest import LAB_PY, ROOT, lab_cmd, labeled_objects, make_lab, wait_for

pytestmark = pytest.mark.integration

CONNECT_ONLY = {"expect": [], "steps": [
    {"host": "linux", "start": ["telnet", "server", "8000"], "as": "telnet1", "ready": {"log": "Connected to"}},
    {"snapshot": "connected"},
]}


def up(tmp: Path, changes: dict | None = None) -> tuple[str, Path]:
    path, name = make_lab(tmp, "closewait", changes=changes or CONNECT_ONLY)
    res = lab_cmd("up", str(path), "--out", str(tmp / "run"), cwd=tmp)
    assert res.returncode == 0, res.stderr
    return name, tmp / "run"


def test_down_is_served_by_the_keeper_and_both_leave(tmp_path: Path) -> None:
    name, run_dir = up(tmp_path)
    try:
        [pid] = keeper_pids(name)
        assert Path(f"/proc/{pid}/stat").read_text().split()[18] == "10"  # niced: it warms up on idle CPU
        # the keeper's own session: a Ctrl-C in the terminal of `lab up` was never its business
        assert os.getsid(pid) == pid
        status = lab_cmd("status", name, cwd=tmp_path)
        assert f"keeper pid {pid}" in status.stdout.splitlines()[0], status.stdout
        down = lab_cmd("down", name, cwd=tmp_path)
        assert down.returncode == 0, down.stderr
        assert down.stdout.strip() == f"{name} is down: removed 8 containers, 1 networks, 0 volumes; artifacts in run"
        wait_for(lambda: not keeper_pids(name), 10, "the keeper to exit")
        assert labeled_objects(name) == []
        info = json.loads((run_dir / "run.json").read_text())
        assert info["state"] == "down" and "collection" in info["phases"] and "teardown" in info["phases"]
        assert (run_dir / "report.html").stat().st_size > 10_000
        assert "connected" in json.loads((run_dir / "sockets" / "snapshots.json").read_text())
        assert "end" in json.loads((run_dir / "sockets" / "snapshots.json").read_text())
    finally:
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp_path)


def test_without_its_keeper_down_does_the_work_itself(tmp_path: Path) -> None:
    name, run_dir = up(tmp_path)
    try:
        [pid] = keeper_pids(name)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not keeper_pids(name), 10, "the keeper to die")
        down = lab_cmd("down", name, cwd=tmp_path)
        assert down.returncode == 0, down.stderr
        assert down.stdout.startswith(f"{name} is down: removed 8 containers")
        assert labeled_objects(name) == []
        assert (run_dir / "report.html").is_file()
    finally:
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp_path)


def test_keeper_leaves_when_its_lab_is_taken_down_another_way(tmp_path: Path) -> None:
    name, _ = up(tmp_path)
    try:
        [pid] = keeper_pids(name)
        # `lab down` by a path the fast path does not take (an option): the full command does the work
        down = subprocess.run([sys.executable, str(LAB_PY), "down", "--all"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "TCPLAB_HOME": str(ROOT)})
        assert down.returncode == 0, down.stderr
        wait_for(lambda: not keeper_pids(name), 10, "the keeper to notice its lab is down")
    finally:
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp_path)


def test_a_failed_up_leaves_no_keeper(tmp_path: Path) -> None:
    changes = {"expect": [], "steps": [{"wait": {"fin_from": "win"}, "timeout": "1s"}]}  # no FIN ever comes
    path, name = make_lab(tmp_path, "closewait", changes=changes)
    res = lab_cmd("up", str(path), cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert labeled_objects(name) == []
    wait_for(lambda: not keeper_pids(name), 10, "the keeper of a failed up to exit")


ASK_AS_ANOTHER_USER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(bytes.fromhex(sys.argv[1]))
try:
    s.sendall(json.dumps({"request": "down", "cwd": "/"}).encode() + b"\\n")
    print(repr(s.recv(4096)))
except (BrokenPipeError, ConnectionResetError):  # hung up on before or after the request
    print(repr(b""))
"""


def test_another_user_cannot_ask_the_keeper(tmp_path: Path) -> None:
    from tcplab.cli.keeper import socket_name

    name, _ = up(tmp_path)
    try:
        [pid] = keeper_pids(name)
        # nobody reaches the socket (abstract sockets have no file mode) but the keeper checks its peer's uid
        other = subprocess.run(["/usr/bin/python3", "-c", ASK_AS_ANOTHER_USER, socket_name(name).hex()], cwd="/",
                               capture_output=True, text=True, timeout=60, user=65534, env={"PATH": "/usr/bin:/bin"})
        assert other.returncode == 0, other.stderr
        assert other.stdout.strip() == "b''"  # hung up on, unanswered
        assert keeper_pids(name) == [pid]
        assert len(labeled_objects(name)) == 9
    finally:
        lab_cmd("down", name, cwd=tmp_path)
        assert labeled_objects(name) == []
