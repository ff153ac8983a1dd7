"""Issue 3: `lab up` brings the closewait cast up on a real engine; `lab down` and `lab gc` leave nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.observe.sockets import parse_netstat

from ..conftest import LAB_PY, ROOT, lab_cmd, labeled_objects, make_lab, wait_for

pytestmark = pytest.mark.integration

CONNECT_ONLY = {"expect": [], "steps": [
    {"host": "linux", "start": ["telnet", "server", "8000"], "as": "telnet1", "ready": {"log": "Connected to"}},
    {"host": "win", "start": ["telnet", "server", "8000"], "as": "telnet2", "ready": {"log": "Connected to"}},
]}


@pytest.fixture(scope="module")
def connected_lab(tmp_path_factory: pytest.TempPathFactory):
    """closewait's cast with both telnets connected (SCENARIO steps 1-3), up until the module ends."""
    tmp = tmp_path_factory.mktemp("foundation")
    path, name = make_lab(tmp, "closewait", changes=CONNECT_ONLY)
    up = lab_cmd("up", str(path), cwd=tmp)
    try:
        assert up.returncode == 0, up.stderr
        yield name, tmp, up
    finally:
        lab_cmd("down", name, cwd=tmp)
        assert labeled_objects(name) == []


def test_up_prints_run_dir_and_next_steps(connected_lab) -> None:
    name, tmp, up = connected_lab
    first = up.stdout.splitlines()[0]
    run_dir = tmp / first.split("run directory: ")[1]
    assert run_dir.is_dir() and (run_dir / "lab.yaml").is_file()
    images = json.loads((run_dir / "images.json").read_text())
    assert set(images) == {"tcplab/server", "tcplab/client", "tcplab/tools"}
    assert all(v["id"].startswith("sha256:") for v in images.values())
    for verb in ("lab exec", "lab status", "lab down"):
        assert verb in up.stdout


def test_server_table_is_the_scenario(connected_lab) -> None:
    """LISTEN and the linux connection owned by the server's PID; the win connection waits unowned."""
    name, tmp, up = connected_lab
    run = json.loads(next(tmp.glob("runs/*/run.json")).read_text())
    ips = run["hosts"]
    res = lab_cmd("exec", name, "server", "--", "netstat", "-tanp", cwd=tmp)
    assert res.returncode == 0, res.stderr
    records = parse_netstat(res.stdout)
    listen = [r for r in records if r.state == "LISTEN" and r.local_port == 8000]
    assert len(listen) == 1 and listen[0].local_addr == "0.0.0.0"
    assert listen[0].program == "server" and listen[0].pid is not None
    server_pid = listen[0].pid
    by_peer = {r.peer_addr: r for r in records if r.local_port == 8000 and r.state != "LISTEN"}
    assert by_peer[ips["linux"]].state == "ESTABLISHED"
    assert by_peer[ips["linux"]].pid == server_pid
    assert by_peer[ips["win"]].state == "ESTABLISHED"
    assert by_peer[ips["win"]].pid is None and by_peer[ips["win"]].program is None


def test_exec_passes_argv_and_exit_status(connected_lab) -> None:
    name, tmp, _ = connected_lab
    res = lab_cmd("exec", name, "linux", "--", "sh", "-c", "exit 7", cwd=tmp)
    assert res.returncode == 7
    res = lab_cmd("exec", name, "linux", "--", "echo", "a; rm -rf /", cwd=tmp)
    assert res.stdout == "a; rm -rf /\n"


def test_status_and_ls_show_the_running_lab(connected_lab) -> None:
    name, tmp, _ = connected_lab
    st = lab_cmd("status", name, cwd=tmp)
    assert st.returncode == 0
    lines = st.stdout.splitlines()
    assert lines[0].startswith(f"{name}  up")
    assert any("CLOSE_WAIT" not in line and "ESTABLISHED" in line for line in lines)
    listing = json.loads(lab_cmd("ls", "--json", cwd=tmp).stdout)
    assert "closewait" in {lab["name"] for lab in listing["labs"]}
    assert any(r["lab"] == name and r["state"] == "up" for r in listing["running"])


def test_network_is_internal_and_hosts_unprivileged(connected_lab) -> None:
    import docker

    name, _, _ = connected_lab
    client = docker.from_env()
    net = client.networks.get(f"tcplab-{name}")
    assert net.attrs["Internal"] is True
    for c in client.containers.list(filters={"label": [f"tcplab.lab={name}"]}):
        assert c.attrs["HostConfig"]["Privileged"] is False
        for key in ("tcplab.run", "tcplab.owner-pid", "tcplab.role"):
            assert key in c.labels


def test_same_lab_twice_is_refused(connected_lab) -> None:
    name, tmp, _ = connected_lab
    path = next(tmp.glob(f"{name}.yaml"))
    res = lab_cmd("up", str(path), cwd=tmp)
    assert res.returncode == 2
    assert "already up" in res.stderr and len(res.stderr.strip().splitlines()) == 1



def test_gc_removes_a_killed_run_and_only_that(tmp_path: Path, connected_lab) -> None:
    """kill -9 of `lab up` leaves objects; gc removes them; a lab left up (connected_lab) is untouched."""
    import docker

    up_name = connected_lab[0]
    path, name = make_lab(tmp_path, "closewait-linux", changes={"expect": [], "steps": [{"wait": {"seconds": "60s"}, "timeout": "90s"}]})
    client = docker.from_env()
    bystander = client.networks.create(f"tcplab-test-bystander-{os.getpid()}", internal=True)
    try:
        proc = subprocess.Popen([sys.executable, str(LAB_PY), "up", str(path)], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "TCPLAB_HOME": str(ROOT)})
        wait_for(lambda: any('"playing"' in p.read_text() for p in tmp_path.glob("runs/*/run.json"))
                  or proc.poll() is not None, 60, "the run to reach its steps")
        assert proc.poll() is None, proc.communicate()
        wait_for(lambda: len(labeled_objects(name)) >= 4, 30, "hosts to exist")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = labeled_objects(name)
        assert left, "kill -9 should leave objects for gc"
        res = lab_cmd("gc", cwd=tmp_path)
        assert res.returncode == 0
        assert f"removed run {name}-" in res.stdout
        assert labeled_objects(name) == []
        run_dir = next(tmp_path.glob("runs/*"))
        run_id = json.loads((run_dir / "run.json").read_text())["run"]
        # the tracer died with SIGKILL: its tracefs instance (kernel ring buffers) is gc's to remove
        assert not Path("/sys/kernel/tracing/instances", f"tcplab-{run_id}").exists()
        assert not (run_dir / ".agents").exists()
        assert labeled_objects(up_name), "gc must not touch a lab that was left up"
        client.networks.get(bystander.id)  # unlabelled objects are never touched
    finally:
        bystander.remove()
