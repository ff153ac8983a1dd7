"""Issue 9: `lab export` - a lab as a compose file; the committed files under compose/ stay fresh."""
from __future__ import annotations

import random
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.backend.base import ContainerSpec, Mount
from tcplab.export import ExportError, export_compose, export_to
from tcplab.export.compose import HOLD_SCRIPT, LABEL_COMPOSE, escape, export_plan
from tcplab.model import load_lab
from tcplab.observe.tracer import TRACEFS
from tcplab.paths import COMPOSE_DIR, LABS_DIR
from tcplab.peers.windows import WindowsPeerSidecar, host_sysctls
from tcplab.plan import SidecarPlan, lab_plan

from ..conftest import ROOT, lab_cmd, make_lab

SHIPPED = ["closewait", "closewait-linux"]
# Paths inside containers the files may name; anything else absolute would be a path of the writer's machine.
CONTAINER_PATHS = ("/opt/lab/", "/var/log/lab", "/capture", "/peer", "/sockets", "/tracefs", TRACEFS)


def export(path: Path, sets: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    lab, resolved = load_lab(path, sets)
    text = export_to(COMPOSE_DIR / f"{lab.name}.yml", lab, resolved, path, sets).text
    return text, yaml.safe_load(text)


def lab_file(tmp_path: Path, base: str = "closewait", changes: dict[str, Any] | None = None) -> Path:
    path, _ = make_lab(tmp_path, base, changes=changes)
    return path


# --- the committed files -------------------------------------------------------

@pytest.mark.parametrize("lab", SHIPPED)
def test_committed_file_equals_a_fresh_export(lab: str) -> None:
    committed = COMPOSE_DIR / f"{lab}.yml"
    assert committed.is_file(), f"{committed} is missing: run `lab export {lab}`"
    fresh, _ = export(LABS_DIR / f"{lab}.yaml")
    assert committed.read_text() == fresh, f"compose/{lab}.yml is stale: run `lab export {lab}` and commit it"


def _absolute_paths(text: str) -> list[str]:
    """Absolute paths: a '/' that starts a word (not the one in 10.77.0.0/24, ./runs/x or <name>/Dockerfile)."""
    return re.findall(r"(?:^|(?<=[\s'\"(\[:=,`]))/[\w.-]+(?:/[\w.-]+)*", text, re.M)


@pytest.mark.parametrize("lab", SHIPPED)
def test_no_path_of_the_writing_machine(lab: str, tmp_path: Path) -> None:
    texts = [(COMPOSE_DIR / f"{lab}.yml").read_text(), export(LABS_DIR / f"{lab}.yaml")[0]]
    for text in texts:
        for needle in (str(ROOT), "/work", str(Path.home()), tempfile.gettempdir(), "tcplab-export-"):
            assert needle not in text
        strays = [p for p in _absolute_paths(text) if not p.startswith(CONTAINER_PATHS)]
        assert strays == []
        data = yaml.safe_load(text)
        for name, svc in data["services"].items():
            assert not svc["build"]["context"].startswith("/")
            for v in svc.get("volumes", []):
                source = v.split(":")[0]
                assert source.startswith("./") or source == TRACEFS, (name, v)


def test_the_path_check_sees_a_host_path() -> None:
    """The regex above is what keeps /work out; make sure it finds such a path in a value and a comment."""
    assert _absolute_paths("volumes: ['/work/main/runs:/capture']\n# see /home/x/lab") == \
        ["/work/main/runs", "/capture", "/home/x/lab"]


def test_a_mount_outside_the_run_directory_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = lab_plan.capture_sidecar

    def leaky(*args: Any, **kwargs: Any) -> SidecarPlan:
        side = original(*args, **kwargs)
        spec = ContainerSpec(**{**side.spec.__dict__, "mounts": (Mount("/work/secret", "/capture"),)})
        return SidecarPlan(**{**side.__dict__, "spec": spec})

    monkeypatch.setattr(lab_plan, "capture_sidecar", leaky)
    lab, resolved = load_lab(LABS_DIR / "closewait.yaml")
    with pytest.raises(ExportError, match="outside the run directory"):
        export_compose(lab, resolved, source="labs/closewait.yaml")


def test_export_is_deterministic() -> None:
    lab, resolved = load_lab(LABS_DIR / "closewait.yaml")
    a = export_compose(lab, resolved, source="x").text
    assert a == export_compose(lab, resolved, source="x").text


# --- what the services carry ------------------------------------------------------

def test_services_are_the_containers_lab_up_starts() -> None:
    lab, resolved = load_lab(LABS_DIR / "closewait.yaml")
    specs = export_plan(lab)[0].containers()
    assert [s.name.removeprefix("tcplab-closewait-") for s in specs] == [
        "server", "linux", "win", "server-capture", "linux-capture", "win-capture", "win-peer", "tracer"]
    _, data = export(LABS_DIR / "closewait-linux.yaml")
    assert "win-peer" not in data["services"]  # a Linux peer has no sidecar


def test_hosts_network_limits_sysctls_and_caps(tmp_path: Path) -> None:
    path = lab_file(tmp_path, changes={"hosts.linux.limits": {"memory": "64m", "cpus": 0.5, "pids": 100},
                                       "hosts.linux.sysctls": {"net.ipv4.tcp_keepalive_time": 7}})
    lab, _ = load_lab(path)
    _, data = export(path)
    net = data["networks"]["lab"]
    assert net["internal"] is True and net["ipam"]["config"] == [{"subnet": str(lab.network.subnet)}]
    for name in lab.hosts:
        svc = data["services"][name]
        assert svc["networks"]["lab"] == {"ipv4_address": str(lab.host_ip(name)), "aliases": [name]}
        assert svc["hostname"] == name and svc["cap_drop"] == ["NET_RAW"] and "cap_add" not in svc
        assert svc["image"] == lab.hosts[name].image
        assert svc["build"]["dockerfile"] == lab.hosts[name].image.split("/")[1] + "/Dockerfile"
        assert svc["build"]["args"] == {"BASE": "${TCPLAB_BASE_IMAGE:-tcplab/base:bookworm}"}
    linux = data["services"]["linux"]
    assert (linux["mem_limit"], linux["cpus"], linux["pids_limit"]) == ("64m", 0.5, 100)
    assert linux["sysctls"] == {"net.ipv4.tcp_keepalive_time": "7"}
    assert data["services"]["win"]["sysctls"] == host_sysctls(lab.hosts["win"].peer)


def test_sidecars_share_their_host_namespace_and_write_beside_the_file(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    lab, _ = load_lab(path)
    _, data = export(path)
    for host in lab.hosts:
        cap = data["services"][f"{host}-capture"]
        assert cap["network_mode"] == f"service:{host}" and cap["cap_add"] == ["NET_RAW"]
        assert cap["volumes"] == [f"./runs/{lab.name}/capture:/capture"]
        # each packet as it crosses: nothing drains a compose file's captures before a stop
        assert cap["command"][:3] == ["tcpdump", "-i", "eth0"] and f"/capture/{host}.pcap" in cap["command"]
        assert {"-U", "--immediate-mode"} <= set(cap["command"])
    tracer = data["services"]["tracer"]
    assert tracer["profiles"] == ["tracer"] and tracer["network_mode"] == "none"
    assert tracer["volumes"] == [f"{TRACEFS}:/tracefs", f"./runs/{lab.name}/sockets:/sockets"]


@pytest.mark.parametrize("timer,expected", [(None, 120.0), ("2s", 2.0)])
def test_windows_peer_sidecar_is_the_peers_module(tmp_path: Path, timer: str | None, expected: float) -> None:
    path = lab_file(tmp_path)
    _, data = export(path, (f"peers.win.fin_wait2_timeout={timer}",) if timer else ())
    peer = data["services"]["win-peer"]
    assert peer["image"] == "tcplab/tools" and peer["network_mode"] == "service:win"
    assert peer["command"] == WindowsPeerSidecar("win", expected, "windows-7").command()
    assert set(peer["cap_add"]) == {"NET_RAW", "NET_ADMIN", "SYS_NICE"}


def test_labels_keep_lab_down_and_gc_away(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    lab, _ = load_lab(path)
    _, data = export(path)
    objects = [*data["services"].values(), *data["networks"].values()]
    for obj in objects:
        assert obj["labels"][LABEL_COMPOSE] == lab.name
        assert not {"tcplab.lab", "tcplab.run", "tcplab.run-dir", "tcplab.owner-pid"} & set(obj["labels"])


def test_program_is_the_service_command_as_argv(tmp_path: Path) -> None:
    run = ["/opt/lab/server", "8000", "5", "$HOME; rm -rf / `x`"]
    path = lab_file(tmp_path, changes={"hosts.server.program.run": run, "hosts.server.program.env": {"A": "x$y"}})
    _, data = export(path)
    server = data["services"]["server"]
    # compose turns $$ into $: what the container gets is the fixed script and the argv untouched
    assert server["command"] == escape(["sh", "-c", HOLD_SCRIPT, "labhold", "server", *run])
    assert server["command"][2] == 'labrun "$$@" && exec sleep infinity'
    assert server["command"][-1] == "$$HOME; rm -rf / `x`"
    assert server["environment"] == {"A": "x$$y"}
    assert server["healthcheck"]["test"][-1] == "8000"
    assert data["services"]["linux"]["command"] == ["sleep", "infinity"]


def test_log_readiness_becomes_a_grep_healthcheck(tmp_path: Path) -> None:
    path = lab_file(tmp_path, changes={"hosts.server.program.ready": {"log": "up $now", "timeout": "3s"}})
    _, data = export(path)
    check = data["services"]["server"]["healthcheck"]
    assert check["test"] == ["CMD", "grep", "-qP", "--", "up $$now", "/var/log/lab/server.log"]
    assert check["retries"] == 3


def test_steps_are_comment_lines_that_shell_split_into_the_steps_argv(tmp_path: Path) -> None:
    steps = [{"host": "linux", "start": ["telnet", "server", "8000"], "as": "t1"},
             {"host": "linux", "send": "t1", "text": "a'; rm -rf / #"},
             {"host": "linux", "stop": "t1", "signal": "INT"}]
    path = lab_file(tmp_path, changes={"steps": steps, "expect": []})
    text, _ = export(path)
    lines = [line[4:] for line in text.splitlines() if line.startswith("#   docker-compose exec")]
    assert [shlex.split(line) for line in lines] == [
        ["docker-compose", "exec", "-T", "linux", "labrun", "t1", "telnet", "server", "8000"],
        ["docker-compose", "exec", "-T", "linux", "labsend", "t1", "a'; rm -rf / #"],
        ["docker-compose", "exec", "-T", "linux", "labstop", "t1", "INT"]]


def test_lab_text_cannot_escape_the_header_comment(tmp_path: Path) -> None:
    evil = "x\nservices: {}\r\ny: 1\u2028z: 2\x85w: 3"
    path = lab_file(tmp_path, changes={"story": evil, "steps.0.title": evil})  # a summary is one line (model)
    text, data = export(path)
    assert set(data) == {"services", "networks"}
    head = text[: text.index("\nservices:\n")]
    assert all(line.startswith("#") or line == "" for line in re.split("[\n\r\x85\u2028\u2029]", head))


def test_two_containers_on_one_service_name_are_refused(tmp_path: Path) -> None:
    path = lab_file(tmp_path, "closewait-linux", changes={"hosts.tracer": {"image": "tcplab/client"}})
    lab, resolved = load_lab(path)
    with pytest.raises(ExportError, match="'tracer'"):
        export_compose(lab, resolved, source="x")


# --- the command -----------------------------------------------------------------

def test_cli_writes_the_file_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    target = tmp_path / "out" / "lab.yml"
    res = lab_cmd("export", str(path), "--out", str(target), "--set", "peers.win.fin_wait2_timeout=2s", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lab, resolved = load_lab(path, ["peers.win.fin_wait2_timeout=2s"])
    assert target.read_text() == export_to(target, lab, resolved, path, ["peers.win.fin_wait2_timeout=2s"]).text
    data = yaml.safe_load(target.read_text())
    assert (target.parent / data["services"]["server"]["build"]["context"]).resolve() == (ROOT / "images").resolve()
    assert "--set peers.win.fin_wait2_timeout=2s" in target.read_text().split("\nservices:")[0]


@pytest.mark.parametrize("args,needle", [(["closewait", "--format", "helm"], "unknown format"),
                                         (["no-such-lab"], "no such lab")])
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str], needle: str) -> None:
    res = lab_cmd("export", *args, "--out", str(tmp_path / "x.yml"), cwd=tmp_path)
    assert res.returncode == 2 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.yml").exists()


# --- arguments round-trip exactly --------------------------------------------------

# A shell script as a YAML block scalar would give it, and arguments a shell or YAML would take apart.
SCRIPT = "# a comment line\nwhile :; do\n  sleep 1   \ndone\n\n"
TRICKY = [SCRIPT, "a b", "it's", '"dq"', "$HOME", "${X:-y}", "$$", ";", "`id`", "back\\slash", "\\n", "é", "日本",
          "\ttab", "cr\r", " lead", "trail ", "- dash", "key: v", "#hash", "[x]", "{y}", "*", "&a", "!t", "%p", "@",
          "'", '"', "\\", "yes", "null", "0x10", "~", "\x85nel", "line\u2028sep", "para\u2029", "\ufeffbom",
          "\u202eevil", "\x01\x1b[31m", "\x7f", "a\n", "\n", " ", "x" * 150 + " y" * 40]


def _bash_argv(command_line: str) -> list[str]:
    """The argv bash makes of one exported command line (docker-compose replaced by a printer)."""
    printer = 'docker-compose() { printf "%s\\0" "$@"; }; '
    out = subprocess.run(["bash", "-c", printer + command_line], capture_output=True, check=True).stdout
    return [a.decode() for a in out.split(b"\0")[:-1]]


def test_service_command_keeps_every_argument_exactly(tmp_path: Path) -> None:
    run = ["sh", "-c", SCRIPT, "labprog", *TRICKY]
    path = lab_file(tmp_path, changes={"hosts.server.program.run": run, "hosts.server.program.ready": None})
    _, data = export(path)
    assert data["services"]["server"]["command"] == escape(["sh", "-c", HOLD_SCRIPT, "labhold", "server", *run])


def test_service_commands_of_random_arguments_round_trip(tmp_path: Path) -> None:
    alphabet = list("ab $'\"\\`;#:-?[]{},&*!|>%@\n\r\t") + ["é", "日本", "\x85", "\u2028", "\u2029", "\x0b", "\x0c",
                                                          "\x1c", "\x7f", "\x01", "\ufeff", "\xa0", "  ", "\n\n"]
    rng = random.Random(14)
    for _ in range(10):
        run = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(40, 60))]
        lab, resolved = load_lab(lab_file(tmp_path, changes={"hosts.server.program.run": run}))
        data = yaml.safe_load(export_compose(lab, resolved, source="x").text)
        assert data["services"]["server"]["command"][5:] == escape(run), run


def test_step_and_program_lines_are_one_line_each_that_bash_splits_exactly(tmp_path: Path) -> None:
    steps = [{"host": "linux", "start": ["sh", "-c", SCRIPT, "labprog", *TRICKY], "as": "t1"},
             {"host": "linux", "send": "t1", "text": "GET / HTTP/1.0\r\n\r\né 日本 'q' $x\n"},
             {"host": "linux", "stop": "t1"}]
    run = ["/opt/lab/server", *TRICKY]
    path = lab_file(tmp_path, changes={"steps": steps, "expect": [], "hosts.server.program.run": run})
    text, _ = export(path)
    head = text[: text.index("\nservices:\n")]
    lines = [line[4:] for line in head.splitlines() if line.startswith("#   docker-compose exec")]
    assert [_bash_argv(line)[2:] for line in lines] == [
        ["linux", "labrun", "t1", *steps[0]["start"]],
        ["linux", "labsend", "t1", steps[1]["text"]],
        ["linux", "labstop", "t1", "TERM"]]
    program = [line for line in head.splitlines() if line.startswith("#   server: ")]
    assert len(program) == 1
    assert _bash_argv("docker-compose " + program[0].removeprefix("#   server: ")) == run
    assert "bash" in head  # the reader is told which shell reads $'...'
    # printable arguments stay POSIX-quoted (shlex splits them): $'...' only where it is needed
    plain, _ = export(lab_file(tmp_path))
    first = next(line[4:] for line in plain.splitlines() if line.startswith("#   docker-compose exec"))
    assert shlex.split(first) == ["docker-compose", "exec", "-T", "linux", "labrun", "telnet1", "telnet", "server",
                                  "8000"]
    assert "$'" not in plain and "bash" not in plain.split("\nservices:")[0]

