"""A lab on an engine that is not on this machine: a second Docker engine reached over TCP.

The engine runs inside a harness container (Debian's docker.io, tests/harness/dind),
started with the rights ../shared/MACHINE.md says this machine allows in place of
--privileged; only the harness has them, never a lab host. Nothing of this machine
can be mounted there, so captures, transitions, snapshots and logs must come back
through the engine's API: the run directory here must be as complete as a local
run's, and neither engine may keep anything of the lab.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import ROOT, lab_cmd, labeled_objects, make_lab, unique_name, wait_for

pytestmark = pytest.mark.integration

HARNESS_IMAGE = "tcplab-test/dind"
HARNESS_LABEL = {"tcplab.test": "remote-engine"}
LAB_IMAGES = ("tcplab/base:bookworm", "tcplab/client", "tcplab/server", "tcplab/tools")
FAST = "peers.win.fin_wait2_timeout=2s"


class RemoteEngine:
    def __init__(self, container: Any, url: str) -> None:
        import docker

        self.container = container
        self.url = url
        self.client = docker.DockerClient(base_url=url, timeout=300)

    def tcplab_objects(self) -> list[str]:
        f = {"label": ["tcplab.lab"]}
        return ([c.name for c in self.client.containers.list(all=True, filters=f)]
                + [n.name for n in self.client.networks.list(filters=f)]
                + [v.name for v in self.client.volumes.list(filters=f)])


def _answers(url: str) -> bool:
    import docker

    try:
        return bool(docker.DockerClient(base_url=url, timeout=5).ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.fixture(scope="module")
def remote() -> Iterator[RemoteEngine]:
    """The harness engine, with the lab images loaded into it (save/load: no registry here)."""
    import docker

    local = docker.from_env(timeout=300)
    local.images.build(path=str(ROOT / "tests" / "harness" / "dind"), tag=HARNESS_IMAGE, rm=True)
    for old in local.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in HARNESS_LABEL.items()]}):
        old.remove(force=True, v=True)
    api = local.api
    host_config = api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}})
    host_config.update(MaskedPaths=[], ReadonlyPaths=[],  # the CLI's --security-opt systempaths=unconfined
                       # the inner engine's storage on a volume (not on the container's own overlay), where its
                       # overlay2 driver works: ~8 s for the run instead of ~1.5 min with vfs copying every rootfs
                       Mounts=[{"Type": "volume", "Target": "/var/lib/docker"}])
    created = api.create_container(HARNESS_IMAGE, ["tracefs"], labels=HARNESS_LABEL, host_config=host_config)
    container = local.containers.get(created["Id"])
    try:
        container.start()
        container.reload()
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        url = f"tcp://{ip}:2375"
        wait_for(lambda: _answers(url), 60, "the harness engine to answer", interval=0.2)
        engine = RemoteEngine(container, url)
        for name in LAB_IMAGES:
            engine.client.api.load_image(local.api.get_image(name))
        yield engine
    finally:
        container.remove(force=True, v=True)


def _run(remote: RemoteEngine, tmp_path: Path, out: Path) -> Any:
    return lab_cmd("run", "closewait", "--set", FAST, "--out", str(out), cwd=tmp_path, timeout=600,
                   env={"DOCKER_HOST": remote.url})


def test_closewait_on_a_remote_engine(remote: RemoteEngine, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _run(remote, tmp_path, out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "the engine is on another machine: artifacts are copied out through it" in res.stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["counts"] == {"held": 11, "failed": 0, "error": 0}
    # the run directory is complete here, though nothing of this machine was mounted there
    for host in ("server", "linux", "win"):
        assert (out / "capture" / f"{host}.pcap").stat().st_size > 24, host
    assert (out / "capture" / "all.pcapng").stat().st_size > 0
    kinds = {json.loads(line)["event"] for line in (out / "sockets" / "transitions.jsonl").read_text().splitlines()}
    assert {"inet_sock_set_state", "tcp_receive_reset"} <= kinds
    peer = [json.loads(line) for line in (out / "logs" / "peer" / "win.jsonl").read_text().splitlines()]
    assert any("rst" in json.dumps(e).lower() for e in peer)
    snaps = json.loads((out / "sockets" / "snapshots.json").read_text())
    assert set(snaps) == {"established", "close_wait", "after_rst", "end"}
    assert (out / "report.html").stat().st_size > 0
    # nothing left on either engine
    assert remote.tcplab_objects() == []
    assert labeled_objects("closewait") == []
    assert not (out / ".agents").exists()


def test_a_from_scratch_host_on_a_remote_engine_is_observed_from_its_sidecar(remote: RemoteEngine,
                                                                             tmp_path: Path) -> None:
    """A host whose image holds one static binary and nothing else: its tables, with owners, come from its
    observer on the remote engine (no agent, nothing mounted), and its output from the engine's log."""
    import docker

    from .test_observer_scratch import DOCKERFILE, EXPECT, STEPS

    ctx = tmp_path / "svc"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "server.c").write_text((ROOT / "images" / "server" / "server.c").read_text())
    local = docker.from_env(timeout=300)
    ref = f"example/{unique_name('scratch')}:1"
    local.images.build(path=str(ctx), tag=ref, rm=True)
    try:
        remote.client.api.load_image(local.api.get_image(ref))
    finally:
        local.images.remove(ref, force=True)
    lab, name = make_lab(tmp_path, "closewait-linux", changes={
        "summary": "A FROM scratch service on another engine.", "story": "",
        "hosts": {"svc": {"image": ref, "pull": "never", "program": {"name": "server", "ready": {"listen": 9000}}},
                  "gone": {"image": ref, "pull": "never",
                           "program": {"name": "doomed", "run": ["7000"], "ready": {"listen": 7000}}},
                  "a": {"image": "tcplab/client"}, "b": {"image": "tcplab/client"}},
        "steps": STEPS, "expect": EXPECT})
    out = tmp_path / "run"
    res = lab_cmd("run", str(lab), "--out", str(out), cwd=tmp_path, timeout=600, env={"DOCKER_HOST": remote.url})
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((out / "result.json").read_text())
    assert {e["name"]: e["status"] for e in doc["expectations"]} == {e["name"]: "held" for e in EXPECT}
    snap = json.loads((out / "sockets" / "snapshots.json").read_text())["leak"]["hosts"]["svc"]
    owners = {(r["state"], r["program"]) for r in snap["netstat"]["records"] if r["local_port"] == 9000}
    assert owners == {("LISTEN", "server"), ("ESTABLISHED", "server"), ("CLOSE_WAIT", None)}
    assert remote.tcplab_objects() == [] and labeled_objects(name) == []


def test_an_engine_without_tracefs_says_so_and_goes_on(remote: RemoteEngine, tmp_path: Path) -> None:
    rc, _ = remote.container.exec_run(["umount", "/sys/kernel/tracing"])
    assert rc == 0
    try:
        out = tmp_path / "run"
        res = _run(remote, tmp_path, out)
        said = [ln for ln in res.stderr.splitlines() if "no socket state transitions" in ln]
        assert len(said) == 1, res.stderr
        doc = json.loads((out / "result.json").read_text())
        status = {e["name"]: e["status"] for e in doc["expectations"]}
        # the transitions are missing evidence, not failures; the packets and tables still decide the rest
        assert status["server-enters-close-wait"] == status["server-close-wait-reset"] == "error"
        assert [n for n, s in status.items() if s != "held" and "transition" not in n
                and n not in ("server-enters-close-wait", "server-close-wait-reset")] == []
        assert res.returncode == 1
        assert remote.tcplab_objects() == []
    finally:
        remote.container.exec_run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"])
