"""The plan: what a lab creates (network, volumes, hosts, their sidecars, the tracer), pure, and the one
`lab up`, `lab export` and the benchmarks all use."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcplab.backend.base import EngineError
from tcplab.model import Lab, load_lab
from tcplab.observe.capture import READY_LINE as CAPTURE_READY
from tcplab.observe.tracer import READY_LINE as TRACER_READY
from tcplab.observe.tracer import TRACEFS
from tcplab.paths import LABS_DIR
from tcplab.peers import PEER_KINDS, PeerKind, PeerSidecar
from tcplab.peers.windows import READY_LINE as PEER_READY
from tcplab.peers.windows import WindowsPeerSidecar, host_sysctls
from tcplab.plan import LabPlan, RunNames, plan_lab
from tcplab.play.collect import copy_out
from tcplab.play.session import LabRun
from tcplab.rundir import RunDir


def closewait(*sets: str, base: str = "closewait") -> Lab:
    return load_lab(LABS_DIR / f"{base}.yaml", sets)[0]


def plan_of(lab: Lab, run_dir: Path, **kw: Any) -> LabPlan:
    return plan_lab(lab, RunNames(lab.name, "r1", str(run_dir)), RunDir(run_dir), **kw)


def test_the_plan_writes_nothing_and_needs_no_engine(tmp_path: Path) -> None:
    """Made for a run directory that does not exist: nothing is created, no backend is asked."""
    where = tmp_path / "not-yet"
    plan = plan_of(closewait(), where, agents={"server"})
    assert not where.exists()
    assert [c.name.removeprefix("tcplab-closewait-") for c in plan.containers()] == [
        "server", "linux", "win", "server-capture", "linux-capture", "win-capture", "win-peer", "tracer"]


def test_hosts_sidecars_and_their_ready_lines(tmp_path: Path) -> None:
    lab = closewait("peers.win.fin_wait2_timeout=2s")
    plan = plan_of(lab, tmp_path)
    assert plan.network.name == "tcplab-closewait" and plan.network.subnet == str(lab.network.subnet)
    win = plan.host("win")
    assert win.spec.sysctls == host_sysctls(lab.hosts["win"].peer)  # the peer kind's
    assert win.spec.ip == str(lab.host_ip("win")) and win.spec.cap_drop == ("NET_RAW",)
    assert [(s.role, s.ready) for s in win.sidecars] == [("capture", CAPTURE_READY), ("peer", PEER_READY)]
    peer = win.sidecars[1].spec
    assert peer.command == WindowsPeerSidecar("win", 2.0, "windows-7").command()
    assert peer.joins == win.spec.name and set(peer.cap_add) == {"NET_RAW", "NET_ADMIN", "SYS_NICE"}
    assert peer.realtime_us is not None and peer.realtime_us > 0 and "--realtime" in (peer.command or [])
    assert [s.role for s in plan.host("server").sidecars] == ["capture"]  # a Linux peer has no sidecar
    assert plan.tracer.ready == TRACER_READY and plan.tracer.optional and plan.tracer.spec.isolated
    assert plan.tracer.spec.mounts[0].source == TRACEFS and plan.tracer.spec.mounts[0].kind == "engine"


def test_artifacts_go_into_the_run_directory_or_into_volumes(tmp_path: Path) -> None:
    lab = closewait()
    local = plan_of(lab, tmp_path)
    assert local.volumes == []
    assert {(a.kind, a.folder) for a in local.artifacts} == {("capture", "capture"), ("peer", "logs/peer"),
                                                             ("sockets", "sockets")}
    capture = local.host("win").sidecars[0]
    assert [(m.source, m.target, m.kind) for m in capture.spec.mounts] == [
        (str(tmp_path / "capture"), "/capture", "local")]
    assert capture.follow[0].path == "/capture/win.pcap" and capture.follow[0].local == tmp_path / "capture/win.pcap"

    remote = plan_of(lab, tmp_path, volumes=True)
    assert remote.volumes == ["tcplab-closewait-capture", "tcplab-closewait-peer", "tcplab-closewait-sockets"]
    assert all(m.kind in ("volume", "engine") for c in remote.containers() for m in c.mounts)
    assert remote.writers("peer") == ["tcplab-closewait-win-peer"]
    assert remote.writers("sockets") == ["tcplab-closewait-tracer"]
    # the Linux control has no peer sidecar, so no volume for one
    assert "tcplab-closewait-linux-peer" not in plan_of(closewait(base="closewait-linux"), tmp_path,
                                                        volumes=True).volumes


def test_a_host_with_an_agent_runs_it(tmp_path: Path) -> None:
    plan = plan_of(closewait(), tmp_path, agents={"linux"})
    linux, server = plan.host("linux").spec, plan.host("server").spec
    assert linux.command == ["labagent", "/run/lab/agent"]
    assert [(m.source, m.target) for m in linux.mounts] == [(str(tmp_path / ".agents" / "linux"), "/run/lab/agent")]
    assert server.command == ["sleep", "infinity"] and server.mounts == ()


def test_the_lab_sysctls_win_over_the_peer_kinds(tmp_path: Path) -> None:
    lab = closewait("hosts.win.sysctls={net.ipv4.ip_default_ttl: 64}")
    assert plan_of(lab, tmp_path).host("win").spec.sysctls["net.ipv4.ip_default_ttl"] == "64"


def test_a_peer_kinds_sidecars_are_in_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan asks the host's peer kind; a kind with two sidecars gets both, named, mounted and labelled."""
    class TwoSidecars(PeerKind):
        os = "windows"

        def sidecars(self, host: str, peer: Any) -> list[PeerSidecar]:
            return [PeerSidecar(role=role, command=["sleep", "infinity"], capabilities=("NET_ADMIN",),
                                ready_line=f"{role} ready", artifacts="impair", folder="logs/impair", about=role)
                    for role in ("shaper", "firewall")]

    monkeypatch.setitem(PEER_KINDS, "windows", TwoSidecars())
    plan = plan_of(closewait(), tmp_path, volumes=True)
    side = plan.host("win").sidecars
    assert [(s.role, s.ready, s.spec.name, s.spec.labels["tcplab.role"]) for s in side[1:]] == [
        ("shaper", "shaper ready", "tcplab-closewait-win-shaper", "shaper"),
        ("firewall", "firewall ready", "tcplab-closewait-win-firewall", "firewall")]
    assert plan.writers("impair") == ["tcplab-closewait-win-shaper", "tcplab-closewait-win-firewall"]
    assert "tcplab-closewait-impair" in plan.volumes and plan.host("win").spec.sysctls == {}


class _NoBackend:
    """Building a run's plan must not ask the engine anything."""
    shares_files = True

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the plan asked the engine: backend.{name}")


def test_the_run_plays_the_plan(tmp_path: Path) -> None:
    lab, resolved = load_lab(LABS_DIR / "closewait.yaml")
    rd = RunDir(tmp_path)
    names = RunNames(lab.name, "r1", str(tmp_path))
    run = LabRun(lab, resolved, _NoBackend(), rd, names)  # type: ignore[arg-type]
    assert run.plan.containers() == plan_lab(lab, names, rd).containers()


class _RemoteFiles:
    """An engine elsewhere: each volume is read through a container that mounts it; a dead one fails."""
    shares_files = False

    def __init__(self, dead: set[str]) -> None:
        self.dead = dead
        self.asked: list[str] = []

    def read_dir(self, container: str, path: str) -> dict[str, bytes]:
        self.asked.append(container)
        if container in self.dead:
            raise EngineError(f"{container} is gone")
        return {f"{path.strip('/')}.bin": container.encode(), "../escape": b"x", ".hidden": b"x"}


def test_copy_out_reads_each_artifact_through_a_container_that_writes_it(tmp_path: Path) -> None:
    lab = closewait()
    plan = plan_of(lab, tmp_path, volumes=True)
    backend = _RemoteFiles(dead={"tcplab-closewait-server-capture"})
    copy_out(backend, RunDir(tmp_path), plan)  # type: ignore[arg-type]
    assert (tmp_path / "capture" / "capture.bin").read_bytes() == b"tcplab-closewait-linux-capture"
    assert (tmp_path / "logs" / "peer" / "peer.bin").read_bytes() == b"tcplab-closewait-win-peer"
    assert (tmp_path / "sockets" / "sockets.bin").read_bytes() == b"tcplab-closewait-tracer"
    assert not (tmp_path / "escape").exists() and not list(tmp_path.rglob(".hidden"))
    assert backend.asked == ["tcplab-closewait-server-capture", "tcplab-closewait-linux-capture",
                             "tcplab-closewait-win-peer", "tcplab-closewait-tracer"]
