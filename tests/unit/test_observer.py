"""The observer: a host whose image holds no tools is observed from a sidecar in its network and PID
namespaces; the plan gives it one, the run asks it (never the host) for tables, readiness and sysctls."""
from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.backend.base import ContainerState, EngineError, ExecResult
from tcplab.export.compose import export_plan, to_service
from tcplab.model import Lab, load_lab
from tcplab.observe import observer
from tcplab.observe.counters import COUNTERS_ARGV
from tcplab.observe.sockets import snapshot_tables
from tcplab.paths import LABS_DIR
from tcplab.plan import RunNames, plan_lab
from tcplab.play.session import LabRun
from tcplab.rundir import RunDir


def own_program_lab() -> Lab:
    """closewait with its server on an image of the user's: it runs that image's own program, no tool of ours."""
    data = yaml.safe_load((LABS_DIR / "closewait.yaml").read_text())
    data["hosts"]["server"] = {"image": "example/svc:1", "program": {"name": "server", "ready": {"listen": 8000}}}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "closewait.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        lab = load_lab(path)[0]
    assert lab.hosts["server"].own_program
    return lab


def test_a_host_of_its_own_image_gets_an_observer_in_its_network_and_pid_namespaces(tmp_path: Path) -> None:
    lab = own_program_lab()
    plan = plan_lab(lab, RunNames(lab.name, "r1", str(tmp_path)), RunDir(tmp_path))
    server = plan.host("server")
    side = server.observer
    assert side is not None and [s.role for s in server.sidecars] == ["capture", "observer"]
    spec = side.spec
    assert spec.name == "tcplab-closewait-server-observer" and spec.image == "tcplab/tools"
    assert spec.joins == spec.joins_pid == server.spec.name  # its sockets and its processes are the host's
    assert spec.cap_add == ("SYS_PTRACE",) and spec.cap_drop == ("NET_RAW",) and spec.mounts == ()
    assert spec.labels["tcplab.role"] == "observer" and spec.labels["tcplab.host"] == "server"
    assert side.ready == observer.READY_LINE and side.host == "server" and not side.optional
    # the hosts of the project's images have the tools: no observer, nothing shares their PID namespace
    for host in ("linux", "win"):
        assert plan.host(host).observer is None
    assert all(c.joins_pid is None for c in plan.containers() if c.name != spec.name)


def test_the_compose_export_shares_the_pid_namespace_too(tmp_path: Path) -> None:
    lab = own_program_lab()
    plan, rd, names = export_plan(lab)
    side = plan.host("server").observer
    assert side is not None
    svc = to_service(side.spec, lab, rd, names, ".")
    assert svc["network_mode"] == "service:server" and svc["pid"] == "service:server"
    assert svc["cap_add"] == ["SYS_PTRACE"] and svc["cap_drop"] == ["NET_RAW"]


def _fake_tools(tmp_path: Path, tools: dict[str, tuple[str, int]]) -> dict[str, str]:
    """A PATH where each tool prints its text and exits with its status (and nothing else is found)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, (text, status) in tools.items():
        (bin_dir / f"{name}.out").write_text(text)
        script = bin_dir / name
        script.write_text(f"#!{_sh()}\nwhile IFS= read -r line; do printf '%s\\n' \"$line\"; done "
                          f"<'{bin_dir / name}.out'\nexit {status}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/")}


NETSTAT = """Active Internet connections (servers and established)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name
tcp        0      0 0.0.0.0:8000            0.0.0.0:*               LISTEN      7/server
tcp        1      0 10.9.0.2:8000           10.9.0.4:40000          CLOSE_WAIT  -
"""
SS = """State      Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
LISTEN     0      5            0.0.0.0:8000      0.0.0.0:*    users:(("server",pid=7,fd=3))
CLOSE-WAIT 1      0           10.9.0.2:8000     10.9.0.4:40000
"""


def _sh() -> str:
    return next(p for p in ("/bin/sh", "/usr/bin/sh") if Path(p).exists())


def test_the_observers_snapshot_prints_what_labsnap_prints(tmp_path: Path) -> None:
    """Its script, run with stand-in tools, gives the two tables and each tool's status as labsnap does."""
    env = _fake_tools(tmp_path, {"netstat": (NETSTAT, 0), "ss": (SS, 0)})
    argv = [_sh(), *observer.SNAPSHOT_ARGV[1:]]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    labsnap = (Path(__file__).resolve().parents[2] / "images" / "common" / "labsnap").read_text()
    assert "echo \"@@tcplab-ss@@\"" in labsnap and "echo \"@@tcplab-counters@@\"" in labsnap
    assert "echo \"@@tcplab-status@@ netstat=$ns ss=$s counters=$c\"" in labsnap
    tables = snapshot_tables(res.stdout, res.stderr, res.returncode, "tcplab/tools")
    assert tables["netstat"]["ok"] and tables["ss"]["ok"]
    owners = {(r["state"], r["pid"], r["program"]) for r in tables["netstat"]["records"]}
    assert owners == {("LISTEN", 7, "server"), ("CLOSE_WAIT", None, None)}  # as netstat -tanp shows them
    assert {r["state"] for r in tables["ss"]["records"]} == {"LISTEN", "CLOSE_WAIT"}


def test_a_tool_missing_from_the_observer_is_said_not_read_as_no_socket(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path, {"ss": (SS, 0)})  # no netstat on the PATH: the shell says 127
    res = subprocess.run([_sh(), *observer.SNAPSHOT_ARGV[1:]], capture_output=True, text=True, env=env, check=False)
    tables = snapshot_tables(res.stdout, res.stderr, res.returncode, "tcplab/tools")
    assert tables["netstat"] == {**tables["netstat"], "ok": False, "error": "netstat is not in the image tcplab/tools"}
    assert tables["ss"]["ok"]


def test_the_program_of_the_host_is_the_child_of_its_init() -> None:
    assert observer.parse_program("7\n/server\x008000\x005\x00") == (7, ["/server", "8000", "5"])
    assert observer.parse_program("12\n") == (12, [])  # a process whose argv is gone (a zombie)
    assert observer.parse_program("") is None


class _Engine:
    """Execs recorded by container; every container runs; a shared-files engine without agents."""
    shares_files = False

    def __init__(self, replies: dict[str, ExecResult]) -> None:
        self.replies = replies
        self.execs: list[tuple[str, list[str]]] = []

    def exec(self, container: str, argv: list[str], timeout: float | None = None) -> ExecResult:
        self.execs.append((container, argv))
        return self.replies.get(container, ExecResult(0, "", ""))

    def state(self, container: str) -> ContainerState:
        return ContainerState(container, "running")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the run asked the engine: backend.{name}")


SNAP_OUT = NETSTAT + "@@tcplab-ss@@\n" + SS + "@@tcplab-status@@ netstat=0 ss=0\n"


def _run(tmp_path: Path, engine: _Engine) -> LabRun:
    lab = own_program_lab()
    rd = RunDir(tmp_path).create()
    return LabRun(lab, {}, engine, rd, RunNames(lab.name, "r1", str(tmp_path)))  # type: ignore[arg-type]


def test_the_run_asks_the_observer_for_the_tables_and_the_host_for_its_own(tmp_path: Path) -> None:
    engine = _Engine({"tcplab-closewait-server-observer": ExecResult(0, SNAP_OUT, ""),
                      "tcplab-closewait-linux": ExecResult(0, SNAP_OUT, ""),
                      "tcplab-closewait-win": ExecResult(0, SNAP_OUT, "")})
    run = _run(tmp_path, engine)
    run.snapshot("s")
    # the tables, and the kernel counters of each host's namespace, where the host's tools are
    assert sorted(engine.execs) == [("tcplab-closewait-linux", COUNTERS_ARGV), ("tcplab-closewait-linux", ["labsnap"]),
                                   ("tcplab-closewait-server-observer", COUNTERS_ARGV),
                                   ("tcplab-closewait-server-observer", observer.SNAPSHOT_ARGV),
                                   ("tcplab-closewait-win", COUNTERS_ARGV), ("tcplab-closewait-win", ["labsnap"])]
    server = run.snapshots["s"]["hosts"]["server"]
    assert server["netstat"]["ok"] and server["netstat"]["records"][0]["program"] == "server"
    assert (tmp_path / "sockets" / "server-s.txt").read_text() == NETSTAT


def test_readiness_sysctls_and_the_program_come_from_the_observer(tmp_path: Path) -> None:
    listening = "LISTEN 0 5 0.0.0.0:8000 0.0.0.0:*\n"
    engine = _Engine({"tcplab-closewait-server-observer": ExecResult(0, listening, "")})
    run = _run(tmp_path, engine)
    assert run.listening("server", 8000)
    assert engine.execs == [("tcplab-closewait-server-observer", ["ss", "-Htln", "sport = :8000"])]
    engine.replies["tcplab-closewait-server-observer"] = ExecResult(0, "", "")
    assert not run.listening("server", 8000)
    engine.execs.clear()
    assert run.observe("server", ["cat", "/proc/sys/net/ipv4/tcp_fin_timeout"]).exit_code == 0
    assert run.observe("linux", ["true"]).exit_code == 0
    assert engine.execs == [("tcplab-closewait-server-observer", ["cat", "/proc/sys/net/ipv4/tcp_fin_timeout"]),
                            ("tcplab-closewait-linux", ["true"])]
    engine.replies["tcplab-closewait-server-observer"] = ExecResult(0, "7\n/server\x008000\x00", "")
    assert run.program_seen("server") == (7, ["/server", "8000"])
    engine.replies["tcplab-closewait-server-observer"] = ExecResult(1, "", "")
    assert run.program_seen("server") is None


def test_the_plan_as_yaml_names_no_observer_for_the_shipped_labs(tmp_path: Path) -> None:
    """tcplab's own hosts keep today's containers: not one more for the shipped labs."""
    for name in ("closewait", "closewait-linux"):
        lab = load_lab(LABS_DIR / f"{name}.yaml")[0]
        plan = plan_lab(lab, RunNames(lab.name, "r1", str(tmp_path)), RunDir(tmp_path))
        assert not [c.name for c in plan.containers() if "observer" in c.name], name


class _Ended(_Engine):
    """The server's own program has ended: its container exited, its observer cannot start or answer."""

    def state(self, container: str) -> ContainerState:
        if container == "tcplab-closewait-server":
            return ContainerState(container, "exited", exit_code=3)
        return ContainerState(container, "running")

    def start_created(self, container: str) -> None:
        raise EngineError(f"start container {container}: cannot start a stopped process")

    def exec(self, container: str, argv: list[str], timeout: float | None = None) -> ExecResult:
        if container == "tcplab-closewait-server-observer":
            raise EngineError(f"exec in {container}: container is not running")
        return super().exec(container, argv, timeout)


def test_an_observer_outlived_by_its_hosts_program_is_no_failure(tmp_path: Path) -> None:
    """A program that ends before its observer joins it, or between two looks, leaves nothing to observe:
    the run goes on, and that host's table says it was not running (never an empty table)."""
    engine = _Ended({})
    run = _run(tmp_path, engine)
    side = run.plan.host("server").observer
    assert side is not None and side.ends_with_host
    run.start_sidecar(side, created=True)  # no error: its host's program had ended
    assert run.program_seen("server") is None
    run.host_running = lambda host: True  # type: ignore[method-assign]  # the engine's events lag behind
    run.snapshot("s")
    assert run.snapshots["s"]["hosts"]["server"] == {"missing": "host server was not running"}
    capture = run.plan.host("server").sidecars[0]
    with pytest.raises(EngineError):  # any other sidecar that cannot start is still a failure
        run.start_sidecar(capture, created=True)


def test_by_hand_a_snapshot_of_a_host_without_tools_is_typed_into_its_observer() -> None:
    from tcplab.export.compose import service_name, step_lines
    from tcplab.model.lab import SnapshotStep

    lab = own_program_lab()
    lines = step_lines(lab, 0, SnapshotStep(snapshot="s"))
    assert lines[1:] == ["  docker-compose exec -T server-observer netstat -tanp",
                         "  docker-compose exec -T linux netstat -tanp", "  docker-compose exec -T win netstat -tanp"]
    plan, _, names = export_plan(lab)
    side = plan.host("server").observer
    assert side is not None and service_name(names, side.spec.name) == "server-observer"  # the service it names
