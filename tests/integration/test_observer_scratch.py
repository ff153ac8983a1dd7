"""Observation that needs nothing in the image: a ``FROM scratch`` image holding one static binary.

The closewait server (images/server/server.c: single-threaded, it serves one client and never accepts
the next) is compiled with ``gcc -static`` in a build stage and copied alone into a ``FROM scratch``
image: no shell, no netstat, no ss, no ps, no labrun. It runs as its image's own program; its observer
(the tools image in its network and PID namespaces) takes its socket tables with their owners as
``netstat -tanp`` shows them, sees it listen (``ready: {listen: ...}``), and the second client's
close leaves a CLOSE_WAIT that no process owns. A second host of the same image is stopped by a step:
its exit status and its output (the container's) are the program's.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import ROOT, lab_cmd, labeled_objects, make_lab, remove_built_images

pytestmark = pytest.mark.integration

DOCKERFILE = """\
FROM tcplab/base:bookworm AS build
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY server.c /src/server.c
RUN gcc -O2 -static -o /src/server /src/server.c

FROM scratch
COPY --from=build /src/server /server
ENTRYPOINT ["/server"]
CMD ["9000", "1"]
"""
STEPS: list[dict[str, Any]] = [
    {"host": "a", "start": ["telnet", "svc", "9000"], "as": "first", "ready": {"log": "Connected to"}},
    {"host": "b", "start": ["telnet", "svc", "9000"], "as": "second", "ready": {"log": "Connected to"}},
    {"host": "b", "stop": "second", "title": "b closes its telnet"},
    {"wait": {"fin_from": "b"}, "timeout": "5s"},
    {"host": "gone", "stop": "doomed"},
    {"host": "gone", "wait": {"exit": "doomed"}, "timeout": "10s"},
    {"snapshot": "leak"},
]
EXPECT: list[dict[str, Any]] = [
    {"name": "listens", "state": {"host": "svc", "port": 9000, "is": "LISTEN", "owner": "server", "at": "leak"}},
    {"name": "serves-a", "state": {"host": "svc", "port": 9000, "peer": "a", "is": "ESTABLISHED", "owner": "server",
                                   "at": "leak"}},
    {"name": "close-wait-leaked", "about": "b's socket on the service sits in CLOSE_WAIT, owned by nobody",
     "state": {"host": "svc", "port": 9000, "peer": "b", "is": "CLOSE_WAIT", "owner": "none", "at": "leak"}},
    {"name": "server-runs", "program": {"host": "svc", "name": "server", "running": True,
                                        "output": "^server listening on 0.0.0.0:9000 "}},
    {"name": "stopped", "program": {"host": "gone", "name": "doomed", "exit": 143,
                                    "output": "^server listening on 0.0.0.0:7000 "}},
]


@pytest.fixture
def scratch_lab(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    ctx = tmp_path / "svc"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "server.c").write_text((ROOT / "images" / "server" / "server.c").read_text())
    lab, name = make_lab(tmp_path, "closewait-linux", changes={
        "summary": "A FROM scratch service leaks a CLOSE_WAIT.", "story": "",
        "hosts": {"svc": {"build": "svc", "program": {"name": "server", "ready": {"listen": 9000}}},
                  "gone": {"build": "svc", "program": {"name": "doomed", "run": ["7000"], "ready": {"listen": 7000}}},
                  "a": {"image": "tcplab/client"}, "b": {"image": "tcplab/client"}},
        "steps": STEPS, "expect": EXPECT})
    yield lab, name
    remove_built_images(name)


def _files_of(image: str) -> list[str]:
    """The regular files and links of an image's filesystem (what a container of it holds, less the engine's)."""
    cid = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        tar = subprocess.run(["docker", "export", cid], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return sorted(m.name for m in t.getmembers() if not m.isdir() and not m.name.startswith((".dockerenv", "etc/",
                                                                                               "dev/", "proc/", "sys/")))


def test_a_from_scratch_service_is_observed_from_its_sidecar(scratch_lab: tuple[Path, str], tmp_path: Path) -> None:
    lab, name = scratch_lab
    out = tmp_path / "run"
    res = lab_cmd("run", str(lab), "--out", str(out), cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert labeled_objects(name) == []
    assert "no socket tables" not in res.stderr
    images = json.loads((out / "images.json").read_text())
    built = [ref for ref, info in images.items() if info.get("kind") == "built" and "svc" in info.get("hosts", [])]
    assert len(built) == 1
    assert _files_of(built[0]) == ["server"]  # one static binary, nothing else: no shell, no tool

    doc = json.loads((out / "result.json").read_text())
    assert {e["name"]: e["status"] for e in doc["expectations"]} == {e["name"]: "held" for e in EXPECT}

    # the tables are netstat's and ss's as the observer took them, with the owner as netstat -tanp shows it
    snap = json.loads((out / "sockets" / "snapshots.json").read_text())["leak"]["hosts"]["svc"]
    assert snap["netstat"]["ok"] and snap["ss"]["ok"]
    events = [json.loads(line) for line in (out / "programs.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "start" and e["host"] == "svc")
    pid = start["pid"]
    assert isinstance(pid, int) and start["argv"] == ["/server", "9000", "1"]
    rows = {(r["state"], r["pid"], r["program"]) for r in snap["netstat"]["records"] if r["local_port"] == 9000}
    assert rows == {("LISTEN", pid, "server"), ("ESTABLISHED", pid, "server"), ("CLOSE_WAIT", None, None)}
    assert f"{pid}/server" in (out / "sockets" / "svc-leak.txt").read_text()
    ss_owner = {r["pid"] for r in snap["ss"]["records"] if r["state"] == "LISTEN" and r["local_port"] == 9000}
    assert ss_owner == {pid}

    # liveness and exit: the container's; output: the container's log
    assert [e["event"] for e in events if e["host"] == "svc"] == ["start", "running", "output"]
    gone = [e for e in events if e["host"] == "gone"]
    assert [e["event"] for e in gone] == ["start", "exit", "output"]
    assert gone[1]["status"] == 143 and gone[1]["signal"] == "TERM" and gone[1]["pid"] == gone[0]["pid"]
    assert gone[1]["time"] >= gone[0]["time"] and gone[0]["argv"] == ["/server", "7000"]
    assert (out / gone[2]["file"]).read_text().startswith("server listening on 0.0.0.0:7000 ")

    # the observer: SYS_PTRACE only, listed with the other sidecars' privileges
    info = json.loads((out / "run.json").read_text())
    caps = info["capabilities"]
    assert caps[f"tcplab-{name}-svc-observer"] == ["SYS_PTRACE"] and caps[f"tcplab-{name}-svc"] == []
    assert f"tcplab-{name}-a-observer" not in caps  # the project's hosts have the tools
    assert info["evidence"]["socket_tables"]["svc"] == {"netstat": "ok", "ss": "ok"}
    report = (out / "report.html").read_text()
    assert f"tcplab-{name}-svc-observer" in report and "SYS_PTRACE" in report


def test_exec_and_status_of_a_host_without_tools_go_to_its_observer(scratch_lab: tuple[Path, str], tmp_path: Path,
                                                                    lab_down_after: list[str]) -> None:
    """`lab exec`, `lab status` (and `lab shell`) reach a FROM scratch host through its observer, and say so."""
    lab, name = scratch_lab
    lab_down_after.append(name)
    up = lab_cmd("up", str(lab), "--out", str(tmp_path / "run"), cwd=tmp_path, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    res = lab_cmd("exec", name, "svc", "--", "netstat", "-tanp")
    assert res.returncode == 0, res.stderr
    assert re.search(r"0\.0\.0\.0:9000 .* LISTEN +\d+/server", res.stdout), res.stdout
    assert f"svc: its image has no tools: running in its observer tcplab-{name}-svc-observer" in res.stderr
    files = lab_cmd("exec", name, "svc", "--", "ls", "/proc/1/root/")
    assert "server" in files.stdout.split(), files.stdout + files.stderr  # the host's own files, read through /proc
    plain = lab_cmd("exec", name, "a", "--", "netstat", "-tanp")
    assert plain.returncode == 0 and "observer" not in plain.stderr  # a host of the project's images: as today
    status = lab_cmd("status", name)
    svc_lines = status.stdout.split(f"tcplab-{name}-svc ", 1)[1].split("\n  tcplab-", 1)[0]
    assert re.search(r"LISTEN +0\.0\.0\.0:9000 -> 0\.0\.0\.0:\* +\d+/server", svc_lines), status.stdout
