"""No verdict without evidence, on real containers: a host image without netstat and ss.

The image (``tcplab/notools``, built here in a copy of the project's images/)
is the server image without net-tools and iproute2. Its socket tables cannot
be taken: `lab run` says so once when the lab comes up, and every state
expectation on that host is an error (never a pass, never an empty table read
as "no socket"), while the client's tables still decide its own. Its program's
readiness (`ready: {listen: 8000}`) is asked of the capture sidecar instead.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, labeled_objects, lab_cmd, unique_name

pytestmark = pytest.mark.integration

NO_TOOLS_DOCKERFILE = """\
# the server image without the socket-table tools (net-tools, iproute2)
ARG BASE=tcplab/base:bookworm
FROM ${BASE} AS build
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev libnetfilter-queue-dev && rm -rf /var/lib/apt/lists/*
COPY server/server.c /src/server.c
RUN gcc -O2 -Wall -Wextra -o /src/server /src/server.c

FROM ${BASE}
COPY common/labagent common/labrun common/labstop common/labsend common/labsnap /usr/local/bin/
COPY --from=build /src/server /opt/lab/server
CMD ["sleep", "infinity"]
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    """A copy of the project's images with one more: tcplab/notools (removed afterwards)."""
    import docker

    home = tmp_path_factory.mktemp("home")
    shutil.copytree(ROOT / "images", home / "images", ignore=shutil.ignore_patterns("__pycache__"))
    (home / "images" / "notools").mkdir()
    (home / "images" / "notools" / "Dockerfile").write_text(NO_TOOLS_DOCKERFILE)
    (home / "labs").mkdir()
    yield home
    try:
        docker.from_env().images.remove("tcplab/notools", force=True)
    except docker.errors.ImageNotFound:
        pass


def test_a_host_without_socket_tools_gives_errors(home: Path, tmp_path: Path) -> None:
    name = unique_name("notools")
    lab = {
        "name": name,
        "network": {"subnet": f"10.231.{os.getpid() % 250}.0/24"},  # its own: tests run beside others
        "hosts": {
            "svc": {"image": "tcplab/notools",
                    "program": {"run": ["/opt/lab/server", "8000", "5"], "name": "server",
                                "ready": {"listen": 8000}}},
            "client": {"image": "tcplab/client"},
        },
        "steps": [
            {"host": "client", "start": ["telnet", "svc", "8000"], "as": "telnet",
             "ready": {"log": "Connected to"}},
            {"snapshot": "connected"},
        ],
        "expect": [
            {"name": "svc-listens", "state": {"host": "svc", "port": 8000, "is": "LISTEN", "at": "connected"}},
            {"name": "svc-no-close-wait", "state": {"host": "svc", "not": "CLOSE_WAIT", "at": "connected"}},
            {"name": "svc-no-socket-to-nowhere", "state": {"host": "svc", "port": 9, "absent": True,
                                                           "at": "connected"}},
            {"name": "client-established", "state": {"host": "client", "peer": "svc", "is": "ESTABLISHED",
                                                     "at": "connected"}},
            {"name": "client-syn", "packet": {"from": "client", "to": "svc", "flags": "S"}},
        ],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(lab, sort_keys=False))
    out = tmp_path / "run"
    env = {"TCPLAB_HOME": str(home)}
    built = lab_cmd("images", "build", env=env, timeout=600)
    assert built.returncode == 0, built.stderr
    res = lab_cmd("run", str(path), "--out", str(out), cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert labeled_objects(name) == []
    # said at once, one line for the host, before the story plays
    said = [ln for ln in res.stderr.splitlines() if "no socket tables" in ln]
    assert len(said) == 1 and said[0].endswith(
        "svc: no socket tables (netstat is not in the image tcplab/notools; ss is not in the image "
        "tcplab/notools): state expectations on svc will be errors")
    doc = json.loads((out / "result.json").read_text())
    status = {e["name"]: e["status"] for e in doc["expectations"]}
    assert status == {"svc-listens": "error", "svc-no-close-wait": "error", "svc-no-socket-to-nowhere": "error",
                      "client-established": "held", "client-syn": "held"}
    assert doc["counts"] == {"held": 2, "failed": 0, "error": 3} and doc["passed"] is False
    assert ("ERROR svc-no-close-wait: cannot judge: no socket table of svc at 'connected': netstat: netstat is "
            "not in the image tcplab/notools") in res.stdout
    snap = json.loads((out / "sockets" / "snapshots.json").read_text())["connected"]["hosts"]
    assert snap["svc"]["netstat"]["ok"] is False and snap["client"]["netstat"]["ok"] is True
    junit = (out / "junit.xml").read_text()
    assert junit.count("<error ") == 3 and 'errors="3"' in junit
