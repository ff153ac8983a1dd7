"""Issue 9: an exported compose file runs under Debian's docker-compose (1.29) with no tcplab in the loop.

One copy of closewait (own name, own subnet, own compose project) is exported,
brought up by docker-compose, explored, and taken down; every test shares it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import docker
import pytest
import yaml

from tcplab.observe.sockets import parse_netstat
from tcplab.observe.watch import PcapTail
from tcplab.wire import ACK, SYN

from ..conftest import ROOT, lab_cmd, labeled_objects, make_lab, shipped_labs

pytestmark = pytest.mark.integration

COMPOSE = shutil.which("docker-compose")
PROJECT_LABEL = "com.docker.compose.project"


def compose(file: Path, project: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """docker-compose as a person runs it: from the file's directory, with a project name of our own."""
    assert COMPOSE is not None, "docker-compose is not installed (scripts/setup installs it: apt-get install docker-compose)"
    return subprocess.run([COMPOSE, "-p", project, "-f", file.name, *args], cwd=file.parent, capture_output=True,
                          text=True, timeout=timeout)


def compose_down(file: Path, project: str) -> None:
    """`docker-compose down -v` of the project; whatever it left is removed (only this project's) and fails."""
    res = compose(file, project, "down", "-v", "--timeout", "2")
    left = project_objects(project)
    if left:  # remove only what this project made, then fail
        client = docker.from_env()
        f = {"label": [f"{PROJECT_LABEL}={project}"]}
        for c in client.containers.list(all=True, filters=f):
            c.remove(force=True)
        for n in client.networks.list(filters=f):
            n.remove()
    assert res.returncode == 0, res.stderr
    assert left == [], f"docker-compose down -v left {left}"


def project_objects(project: str) -> list[str]:
    client = docker.from_env()
    f = {"label": [f"{PROJECT_LABEL}={project}"]}
    return [c.name for c in client.containers.list(all=True, filters=f)] + \
        [n.name for n in client.networks.list(filters=f)] + [v.name for v in client.volumes.list(filters=f)]


def service(project: str, name: str) -> docker.models.containers.Container:
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project}",
                                                               f"com.docker.compose.service={name}"]})
    assert len(found) == 1, f"service {name}: {len(found)} containers"
    return found[0]


def poll(what: str, check, timeout: float = 20.0):
    """check()'s first truthy answer, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A closewait copy exported to <tmp>/compose/<name>.yml and up under project <name>."""
    assert COMPOSE is not None, "docker-compose is not installed (scripts/setup installs it: apt-get install docker-compose)"
    tmp = tmp_path_factory.mktemp("compose")
    lab_cmd("images", "build", timeout=900, check=True)  # the local base image and the project's images
    path, name = make_lab(tmp, "closewait")
    file = tmp / "compose" / f"{name}.yml"
    lab_cmd("export", str(path), "--out", str(file), cwd=tmp, check=True)
    try:
        res = compose(file, name, "up", "-d")
        assert res.returncode == 0, res.stderr
        yield file, name
    finally:
        compose_down(file, name)


@pytest.mark.parametrize("lab", list(shipped_labs()))
def test_committed_files_pass_compose_config(lab: str) -> None:
    """compose/ holds each shipped lab's export (`lab export LAB` from the checkout's top), and it is valid."""
    res = compose(ROOT / "compose" / f"{lab}.yml", f"check-{lab}", "config", "-q", timeout=60)
    assert res.returncode == 0, res.stderr


def test_every_service_runs_and_the_tracer_waits_for_its_profile(up: tuple[Path, str]) -> None:
    file, project = up
    res = compose(file, project, "config", "--services")
    assert res.returncode == 0, res.stderr
    assert "tracer" in res.stdout.split()
    expected = {"server", "linux", "win", "server-capture", "linux-capture", "win-capture", "win-peer"}
    client = docker.from_env()
    started = {c.labels["com.docker.compose.service"]
               for c in client.containers.list(all=True, filters={"label": [f"{PROJECT_LABEL}={project}"]})}
    assert started == expected  # the tracer is in profile "tracer": not started by default
    for name in sorted(expected):
        c = service(project, name)
        assert c.status == "running", f"{name}: {c.status}: {c.logs(tail=3).decode(errors='replace')}"


def test_server_listens_on_8000_as_its_program(up: tuple[Path, str]) -> None:
    _, project = up
    server = service(project, "server")

    def listening() -> list:
        recs = parse_netstat(server.exec_run(["netstat", "-tlnp"]).output.decode())
        return [r for r in recs if r.state == "LISTEN" and r.local_port == 8000]

    listen = poll("server listening on 8000", listening)
    assert listen[0].program == "server"

    def health() -> str:
        server.reload()
        status = server.attrs["State"].get("Health", {}).get("Status", "")
        return status if status in ("healthy", "unhealthy") else ""

    assert poll("server's healthcheck settles", health) == "healthy"


@pytest.fixture(scope="module")
def telnet(up: tuple[Path, str]) -> str:
    """A telnet from linux to server:8000 (started as lab program t); returns the server's address."""
    file, project = up
    server_ip = next(iter(service(project, "server").attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    poll("server listening", lambda: service(project, "server").exec_run(
        ["ss", "-Htln", "sport = :8000"]).output.strip())
    res = compose(file, project, "exec", "-T", "linux", "labrun", "t", "telnet", "server", "8000")
    assert res.returncode == 0, res.stderr
    return server_ip


def test_telnet_from_linux_reaches_established(up: tuple[Path, str], telnet: str) -> None:
    _, project = up
    linux = service(project, "linux")

    def established() -> list[str]:
        out = linux.exec_run(["ss", "-Htan", "state", "established"]).output.decode()
        return [line for line in out.splitlines() if f"{telnet}:8000" in line]

    assert poll("linux ESTABLISHED to server:8000", established)


def test_capture_beside_the_file_holds_the_handshake(up: tuple[Path, str], telnet: str) -> None:
    file, project = up
    pcap = file.parent / "runs" / project / "capture" / "linux.pcap"
    tail = PcapTail(pcap)
    seen: list = []

    def handshake() -> bool:
        seen.extend(tail.new_packets())
        flags = {p.flags & (SYN | ACK) for p in seen if telnet in (p.src, p.dst) and 8000 in (p.sport, p.dport)}
        return {SYN, SYN | ACK} <= flags

    assert poll(f"SYN and SYN-ACK in {pcap}", handshake)


def test_lab_commands_never_see_compose_objects(up: tuple[Path, str]) -> None:
    """No tcplab.lab label: `lab ls/down/gc` leave compose's objects alone; tcplab.compose names the lab."""
    file, project = up
    assert labeled_objects(project) == []
    client = docker.from_env()
    mine = client.containers.list(all=True, filters={"label": [f"tcplab.compose={project}"]})
    assert {c.labels["com.docker.compose.service"] for c in mine} >= {"server", "linux", "win", "win-peer"}
    assert not [c.name for c in mine if "tcplab.lab" in c.labels or "tcplab.run" in c.labels]
    nets = client.networks.list(filters={"label": [f"{PROJECT_LABEL}={project}"]})
    assert len(nets) == 1 and nets[0].attrs["Internal"] is True
    subnet = yaml.safe_load(file.read_text())["networks"]["lab"]["ipam"]["config"][0]["subnet"]
    assert nets[0].attrs["IPAM"]["Config"][0]["Subnet"] == subnet


def test_build_sections_build_the_images(up: tuple[Path, str]) -> None:
    """`docker-compose build` from the exported file's build sections (context, dockerfile, BASE), under
    throwaway tags so the images colleagues use stay as `lab images build` made them."""
    file, project = up
    data = yaml.safe_load(file.read_text())
    tag = f"tcplab-composetest-{project}"
    for svc in data["services"].values():
        svc["image"] = f"{tag}/{svc['image'].split('/', 1)[1]}:test"
    copy = file.with_name(f"build-{file.name}")
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    built = sorted({svc["image"] for svc in data["services"].values()})
    try:
        res = compose(copy, f"{project}-build", "build", "server", "linux", "server-capture", timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        client = docker.from_env()
        for image in built:
            assert client.images.get(image).attrs["Config"]["Cmd"] == ["sleep", "infinity"]
    finally:
        client = docker.from_env()
        for image in built:
            try:
                client.images.remove(image)
            except docker.errors.ImageNotFound:
                pass


# --- arguments reach the programs exactly ----------------------------------------

# A lab file as a person writes it: block scalars, quotes of both kinds, shell syntax, backslashes,
# non-ASCII. The program is a shell loop, so its own argv stays readable in /proc/<pid>/cmdline.
ARGV_LAB = r"""name: NAME
network: {subnet: SUBNET}
hosts:
  server:
    image: tcplab/server
    program:
      name: argv
      run: &argv
        - sh
        - -c
        - |
          # a shell script as a block scalar; "$0" and "$@" are the lab's words
          while :; do
            sleep 1
          done
        - labprog
        - a b
        - 'it''s'
        - "\"double\""
        - $HOME
        - ${PATH:-x} $$ $(id)
        - ;
        - '`id`; rm -rf /tmp/x'
        - 'back\slash \n \\ \'
        - "\ttab and\r\ncrlf"
        - é
        - 日本
        - |+
          multi
            line, indented, two breaks after

        - " lead and trail "
        - "YAML 1.1 line breaks: NEL\N LS\L PS\P"
        - "nel\Nline"
  linux: {image: tcplab/client}
steps:
  - {host: linux, start: *argv, as: argv1}
  - {host: linux, start: [cat], as: typed}
  - host: linux
    send: typed
    text: |
      GET / HTTP/1.0
      é 日本 'q' "d" $HOME \n
"""


def _cmdline(container: docker.models.containers.Container, program: str) -> bytes:
    """The argv of lab program ``program`` as its process has it (NUL-terminated words)."""
    def pid() -> str:
        res = container.exec_run(["cat", f"/run/lab/{program}.pid"])
        return res.output.decode().strip() if res.exit_code == 0 else ""

    got = container.exec_run(["cat", f"/proc/{poll(f'{program} started', pid)}/cmdline"])
    assert got.exit_code == 0, got.output
    return got.output


def test_program_and_step_arguments_reach_the_processes_byte_for_byte(tmp_path: Path) -> None:
    from tcplab.model import load_lab

    _, name = make_lab(tmp_path, "closewait")
    subnet = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())["network"]["subnet"]
    path = tmp_path / "argv.yaml"
    path.write_text(ARGV_LAB.replace("NAME", name).replace("SUBNET", subnet), encoding="utf-8")
    lab, _ = load_lab(path)
    run = lab.hosts["server"].program.run
    # the YAML says what the test means
    assert {"it's", "back\\slash \\n \\\\ \\", "\ttab and\r\ncrlf", "multi\n  line, indented, two breaks after\n\n",
            " lead and trail ", "日本"} <= set(run) and run[2].endswith("done\n")
    file = tmp_path / "compose" / f"{name}.yml"
    lab_cmd("export", str(path), "--out", str(file), cwd=tmp_path, check=True)
    try:
        res = compose(file, name, "up", "-d", "server", "linux")
        assert res.returncode == 0, res.stderr
        expected = b"".join(a.encode() + b"\0" for a in run)
        assert _cmdline(service(name, "server"), "argv") == expected

        # the steps, as a person types them: each command line of the header, into bash
        head = file.read_text(encoding="utf-8").split("\nservices:\n")[0]
        lines = [line[4:] for line in head.splitlines() if line.startswith("#   docker-compose exec")]
        assert len(lines) == 3
        env = {**os.environ, "COMPOSE_FILE": file.name, "COMPOSE_PROJECT_NAME": name}
        for line in lines:
            done = subprocess.run(["bash", "-c", line], cwd=file.parent, env=env, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, (line, done.stderr)
        linux = service(name, "linux")
        assert _cmdline(linux, "argv1") == expected
        typed = lab.steps[2].text.encode()

        def typed_back() -> bool:
            return linux.exec_run(["cat", "/var/log/lab/typed.log"]).output == typed

        assert poll("the typed text in cat's output", typed_back, timeout=10)
    finally:
        down = compose(file, name, "down", "-v", "--timeout", "2")
        left = project_objects(name)
        assert down.returncode == 0 and left == [], (down.stderr, left)
