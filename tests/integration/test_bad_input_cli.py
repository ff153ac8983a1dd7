"""Issues 3 and 8 through the real CLI: bad input exits 2 with one line and creates nothing.

Every bad lab file (tests/data/bad, see regen.py there) goes through
``lab validate`` (all of them in two runs: it checks every file it is given,
a line each) and ``lab up`` (a run each, for every third file: it refuses
through the same resolution as validate and must print the same line; all
204 of them cost CI a minute): exit status 2, exactly the golden
line on stderr after ``lab: ``, nothing on stdout, and no Docker object created. The
engine's containers, networks and volumes are listed before and after (all of
them, not only tcplab's); since colleagues create objects meanwhile, the
comparison keeps the objects whose names or labels belong to the bad labs.
``lab up`` must refuse before it contacts the engine: a few runs point
DOCKER_HOST at nothing and must still exit 2, not 3.

The ~100 CLI runs go through a thread pool (each is its own process), so the
module takes about (runs x 0.3 s) / cores.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

import pytest

from ..conftest import ROOT, lab_cmd, load_module, make_lab, unique_name

pytestmark = pytest.mark.integration

BAD = ROOT / "tests" / "data" / "bad"
FIGURES = ROOT / "tests" / ".figures" / "bad_input.json"
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/tcplab-test/docker.sock"}
VALIDATE_BATCHES = 2  # `lab validate` runs with every bad file between them, one per core


def _regen() -> ModuleType:
    return load_module(BAD / "regen.py", "bad_regen_cli")


regen = _regen()
GOLDEN: dict[str, str] = regen.read_golden()
NAMES = sorted(GOLDEN)
UP_NAMES = NAMES[::3]  # `lab up` of these too (see above)


@dataclass
class Case:
    """One CLI run and what it must show."""
    args: list[str]
    check: Callable[[subprocess.CompletedProcess[str]], None]
    env: dict[str, str] = field(default_factory=dict)
    result: subprocess.CompletedProcess[str] | None = None


@dataclass(frozen=True)
class EngineObject:
    kind: str
    id: str
    name: str
    labels: tuple[tuple[str, str], ...]


def engine_objects() -> set[EngineObject]:
    """Every container (running or not), network and volume of the engine."""
    import docker

    client = docker.from_env()
    try:
        objs = set()
        for c in client.api.containers(all=True):
            objs.add(EngineObject("container", c["Id"], ",".join(c.get("Names") or []),
                                  tuple(sorted((c.get("Labels") or {}).items()))))
        for n in client.api.networks():
            objs.add(EngineObject("network", n["Id"], n.get("Name", ""), tuple(sorted((n.get("Labels") or {}).items()))))
        for v in (client.api.volumes() or {}).get("Volumes") or []:
            objs.add(EngineObject("volume", v["Name"], v["Name"], tuple(sorted((v.get("Labels") or {}).items()))))
        return objs
    finally:
        client.close()


def _lab_names(directory: Path, names: list[str]) -> set[str]:
    """The ``name:`` each bad file gives its lab (read as text: many are not valid YAML)."""
    found = set()
    for n in names:
        text = (directory / n).read_bytes()[:4096].decode("utf-8", "replace")
        m = re.search(r"^name:\s*[\"']?([^\"'\n]*)", text, re.M)
        if m and m.group(1).strip():
            found.add(m.group(1).strip())
    return found


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"stderr is {len(lines)} lines:\n{r.stderr}"
    assert lines[0].startswith("lab: "), lines[0]
    return lines[0]


def golden_check(name: str) -> Callable[[subprocess.CompletedProcess[str]], None]:
    def check(r: subprocess.CompletedProcess[str]) -> None:
        assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert _one_line(r) == "lab: " + GOLDEN[name]
        assert r.stdout == ""
    return check


def line_check(prefix: str, stdout_empty: bool = True) -> Callable[[subprocess.CompletedProcess[str]], None]:
    def check(r: subprocess.CompletedProcess[str]) -> None:
        assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        line = _one_line(r)
        assert line.startswith(prefix), line
        if stdout_empty:
            assert r.stdout == ""
    return check


def usage_check(*needles: str) -> Callable[[subprocess.CompletedProcess[str]], None]:
    """Typer's (click's) own usage errors: exit 2, one line naming the problem and pointing at --help."""
    def check(r: subprocess.CompletedProcess[str]) -> None:
        assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert r.stdout == ""
        assert "Traceback" not in r.stderr
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("lab: "), r.stderr
        for needle in needles:
            assert needle in r.stderr, r.stderr
        assert "--help" in r.stderr
    return check


@dataclass
class World:
    directory: Path
    cases: dict[str, Case]
    lab_names: set[str]
    before: set[EngineObject]
    after: set[EngineObject]
    seconds: float


def _misuse(directory: Path, good: Path, good_name: str) -> dict[str, Case]:
    notup = unique_name("bad-notup")
    g = good.name
    hostile = "bad\nname.yaml"
    (directory / hostile).write_text("")
    return {
        "unknown lab name": Case(["up", "no-such-lab-zz"], line_check("lab: no-such-lab-zz: no such lab")),
        "missing file": Case(["validate", "missing.yaml"], line_check("lab: missing.yaml: no such file")),
        "a device, not a file": Case(["up", "/dev/zero"], line_check("lab: /dev/zero: no such file")),
        "a directory": Case(["up", "./"], line_check("lab: ./: no lab.yaml in this directory")),
        "file name with a newline": Case(["validate", hostile], line_check("lab: bad\\x0aname.yaml: the file is empty")),
        "up --set without =": Case(["up", g, "--set", "peers.win.syn"],
                                   line_check(f"lab: {g}: --set peers.win.syn: expected KEY=VALUE")),
        "up --set windows-95": Case(["up", g, "--set", "peers.win.syn=windows-95"],
                                    line_check(f"lab: {g}: hosts.win.peer.syn: 'windows-95' is not one of")),
        "up --set into a scalar": Case(["up", g, "--set", "name.first=x"],
                                       line_check(f"lab: {g}: name: --set: this field holds a value")),
        "up --set index out of range": Case(["up", g, "--set", "steps.99.timeout=1s"],
                                            line_check(f"lab: {g}: steps.99: --set: no item 99")),
        "up --set bad duration": Case(["up", g, "--set", "steps.4.timeout=2 parsecs"],
                                      line_check(f"lab: {g}: steps.4.timeout: not a duration: '2 parsecs'")),
        "up --set unknown field": Case(["up", g, "--set", "nosuchfield=1"],
                                       line_check(f"lab: {g}: nosuchfield: unknown field 'nosuchfield'")),
        "up --set unknown peer": Case(["up", g, "--set", "peers.mac.syn=windows-7"],
                                      line_check(f"lab: {g}: peers.mac: --set: no host 'mac'")),
        "exec on a lab that is not up": Case(["exec", notup, "server", "--", "true"],
                                             line_check(f"lab: {notup}: lab is not up")),
        "status of a lab that is not up": Case(["status", notup], line_check(f"lab: {notup}: lab is not up")),
        "down of a lab that is not up": Case(["down", notup], line_check(f"lab: {notup}: lab is not up")),
        "down with no argument": Case(["down"], line_check("lab: name a lab, or --all")),
        "unknown command": Case(["frobnicate"], usage_check("frobnicate")),
        "unknown option": Case(["validate", "--frobnicate", g], usage_check("--frobnicate")),
        "up with no lab": Case(["up"], usage_check("LAB")),
        # bad input is refused before the engine is contacted: with no engine at all, still 2 (not 3)
        **{f"up {n} with no engine": Case(["up", n], golden_check(n), env=NO_ENGINE)
           for n in ("duplicate-host.yaml", "anchor-bomb.yaml", "stop-never-started.yaml", "unknown-image.yaml")},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("bad-cli")
    names = regen.materialize(directory)
    assert names == NAMES
    good, good_name = make_lab(directory, "closewait-linux", name=unique_name("bad-setbase"))
    cases: dict[str, Case] = {}
    # `lab validate` checks every file it is given, a line each: the files go in VALIDATE_BATCHES runs
    for i in range(VALIDATE_BATCHES):
        cases[f"validate batch {i}"] = Case(["validate", *names[i::VALIDATE_BATCHES]], lambda r: None)
    for n in UP_NAMES:
        cases[f"up {n}"] = Case(["up", n], golden_check(n))
    cases.update(_misuse(directory, good, good_name))
    lab_names = _lab_names(directory, names) | {good_name}

    before = engine_objects()
    started = time.monotonic()

    def run(case: Case) -> None:
        case.result = lab_cmd(*case.args, cwd=directory, timeout=120, env=case.env)

    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(run, cases.values()))
    seconds = time.monotonic() - started
    after = engine_objects()
    try:
        yield World(directory, cases, lab_names, before, after, seconds)
    finally:
        # a refusal that did not happen must not leave a lab of ours behind
        if any(c.result is not None and c.result.returncode == 0 and c.args[0] == "up" for c in cases.values()):
            lab_cmd("down", good_name, timeout=180)


def _related(obj: EngineObject, lab_names: set[str]) -> bool:
    labels = dict(obj.labels)
    if labels.get("tcplab.lab") in lab_names:
        return True
    for lab in lab_names:
        if f"tcplab-{lab}" in obj.name:
            return True
    return "bad-" in obj.name or any("bad-" in v for v in labels.values())


@pytest.mark.parametrize("command,name", [("validate", n) for n in NAMES] + [("up", n) for n in UP_NAMES])
def test_bad_file_exits_2_with_its_golden_line(world: World, command: str, name: str) -> None:
    if command == "validate":
        batch = NAMES.index(name) % VALIDATE_BATCHES
        result = world.cases[f"validate batch {batch}"].result
        assert result is not None
        assert result.returncode == 2 and result.stdout == "", f"exit {result.returncode}\n{result.stdout}"
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        mine = NAMES[batch::VALIDATE_BATCHES]
        assert len(lines) == len(mine), f"{len(lines)} lines for {len(mine)} bad files:\n{result.stderr}"
        assert lines[mine.index(name)] == "lab: " + GOLDEN[name]
        return
    case = world.cases[f"up {name}"]
    assert case.result is not None
    case.check(case.result)


MISUSE = ["unknown lab name", "missing file", "a device, not a file", "a directory", "file name with a newline",
          "up --set without =", "up --set windows-95", "up --set into a scalar", "up --set index out of range",
          "up --set bad duration", "up --set unknown field", "up --set unknown peer", "exec on a lab that is not up",
          "status of a lab that is not up", "down of a lab that is not up", "down with no argument",
          "unknown command", "unknown option", "up with no lab",
          *[f"up {n} with no engine" for n in ("duplicate-host.yaml", "anchor-bomb.yaml", "stop-never-started.yaml",
                                             "unknown-image.yaml")]]


@pytest.mark.parametrize("label", MISUSE)
def test_cli_misuse_exits_2(world: World, label: str) -> None:
    case = world.cases[label]
    assert case.result is not None
    case.check(case.result)


def test_no_docker_object_created(world: World) -> None:
    # the filter keeps what a bad lab would create and leaves colleagues' objects alone
    assert _related(EngineObject("network", "n1", "tcplab-bad-foo", ()), {"bad-foo"})
    assert _related(EngineObject("container", "c1", "/x", (("tcplab.lab", "x; rm -rf /"),)), {"x; rm -rf /"})
    assert not _related(EngineObject("container", "c2", "/tcplab-closewait-1a2b-server",
                                     (("tcplab.lab", "closewait-1a2b"),)), world.lab_names)
    assert set(MISUSE) | {f"up {n}" for n in UP_NAMES} | {f"validate batch {i}" for i in range(VALIDATE_BATCHES)} \
        == set(world.cases)
    new = sorted((o for o in world.after - world.before if _related(o, world.lab_names)), key=lambda o: o.name)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    try:
        figures = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        figures = {}
    cli_cases = len(world.cases) - VALIDATE_BATCHES + len(NAMES)  # each file validated counts as a case
    figures.update({"bad_files": len(NAMES), "cli_cases": cli_cases, "objects_created": len(new),
                    "cli_seconds": round(world.seconds, 1)})
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    assert new == []
    carrying = [o for o in world.after if dict(o.labels).get("tcplab.lab") in world.lab_names]
    assert carrying == []
    assert world.before, "the engine listing found nothing at all: is this the right engine?"
