"""Shared test helpers.

Integration tests (marked ``integration``) run real containers. Each test
gets labs of its own name and subnet (``make_lab``) so tests, and people
working beside them, never collide on the one-lab-per-name rule.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAB_PY = ROOT / "lab.py"
_subnets = itertools.count(int(os.environ.get("TCPLAB_TEST_SUBNET_BASE", "100")))


def lab_cmd(*args: str, cwd: Path | str | None = None, timeout: float = 300, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python lab.py ...``) as a user would, in its own process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("TCPLAB_HOME", str(ROOT))
    proc = subprocess.run([sys.executable, str(LAB_PY), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def shipped_labs() -> dict[str, Path]:
    """Every lab the project ships, by the name `lab run NAME` takes: labs/NAME.yaml and labs/NAME/lab.yaml."""
    labs = {f.stem: f for f in sorted((ROOT / "labs").glob("*.yaml"))}
    labs.update({f.parent.name: f for f in sorted((ROOT / "labs").glob("*/lab.yaml"))})
    return dict(sorted(labs.items()))


def isolated(name: str, path: Path | None = None) -> list[str]:
    """``--set`` assignments that run a shipped lab under a name and a /24 of its own, so a test never collides
    with anybody's run of the same lab; nothing of its story changes (a host's fixed address, if the lab file at
    ``path`` gives one, keeps its place in the new subnet)."""
    import ipaddress

    subnet = ipaddress.IPv4Network(f"10.{next(_subnets) % 156 + 100}.{os.getpid() % 250}.0/24")
    data = yaml.safe_load(path.read_text()) if path is not None else {}
    if data.get("networks") and path is not None:
        from tcplab.model import load_lab
        from tcplab.model.topology import relocation

        nets = {key: ipaddress.IPv4Network(f"10.{next(_subnets) % 156 + 100}.{os.getpid() % 250}.0/24")
                for key in data["networks"]}
        return [f"name={unique_name(name)[:31]}", *relocation(load_lab(path)[0], nets)]
    sets = [f"name={unique_name(name)[:31]}", f"network.subnet={subnet}"]
    old = ipaddress.IPv4Network((data.get("network") or {}).get("subnet") or "10.77.0.0/24")
    for host, spec in (data.get("hosts") or {}).items():
        if isinstance(spec, dict) and spec.get("ip"):
            offset = int(ipaddress.IPv4Address(spec["ip"])) - int(old.network_address)
            sets.append(f"hosts.{host}.ip={subnet.network_address + offset}")
    return sets


def remove_built_images(name: str) -> None:
    """Untag the images the hosts of lab ``name`` built for it (``tcplab-build/<name>-<host>:<hash>``); by tag,
    so an image keeps the tags of other runs, and is gone when this run's was its last."""
    refs = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                           f"reference=tcplab-build/{name}-*"], capture_output=True, text=True).stdout.split()
    for ref in sorted(set(refs)):
        subprocess.run(["docker", "rmi", ref], capture_output=True)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_lab(tmp_path: Path, base: str = "closewait", name: str | None = None,
             changes: dict[str, Any] | None = None) -> tuple[Path, str]:
    """A copy of ``labs/<base>.yaml`` under a unique name and subnet; returns (file, lab name).

    Its paths (``program.build``) are relative to the lab file, so the copy's are rewritten for where it is."""
    data = yaml.safe_load((ROOT / "labs" / f"{base}.yaml").read_text())
    for host in data["hosts"].values():
        program = host.get("program") or {}
        if "build" in program:
            program["build"] = os.path.relpath(ROOT / "labs" / program["build"], tmp_path)
    name = name or unique_name(base.replace("_", "-"))[:31]
    data["name"] = name
    data["network"] = {"subnet": f"10.{next(_subnets) % 156 + 100}.{os.getpid() % 250}.0/24"}
    for dotted, value in (changes or {}).items():
        node = data
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(parts[-1])] = value
        else:
            node[parts[-1]] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(keep_checked_facts(data), sort_keys=False))
    return path, name


def keep_checked_facts(data: dict[str, Any]) -> dict[str, Any]:
    """A lab mapping whose expectations a test replaced, with only the reference facts that still name
    expectations it has (a fact naming one it lacks is refused, as in any lab file). Changes ``data``."""
    ref = data.get("reference")
    if isinstance(ref, dict) and isinstance(ref.get("facts"), list):
        names = {e.get("name") for e in data.get("expect") or [] if isinstance(e, dict)}
        ref["facts"] = [f for f in ref["facts"]
                        if all(n in names for n in ([f["expect"]] if isinstance(f["expect"], str) else f["expect"]))]
    return data


def labeled_objects(lab: str | None = None) -> list[str]:
    """Names of Docker containers, networks and volumes that carry tcplab labels (of ``lab``, or any)."""
    import docker

    client = docker.from_env()
    label = f"tcplab.lab={lab}" if lab else "tcplab.lab"
    f = {"label": [label]}
    names = [c.name for c in client.containers.list(all=True, filters=f)]
    names += [n.name for n in client.networks.list(filters=f)]
    names += [v.name for v in client.volumes.list(filters=f)]
    return names


ShippedRun = tuple[subprocess.CompletedProcess[str], Path, float, str]
# Shipped labs run this many at a time: their stories mostly wait (timers, the peer's silence), so they overlap,
# as a CI job running the library would run them (bench/library.py --parallel measures it).
LAB_JOBS = int(os.environ.get("TCPLAB_TEST_LAB_JOBS", "4"))
_PREFETCH = pytest.StashKey[list[str]]()


def _uses_shipped_runs(item: pytest.Item) -> bool:
    return "shipped_run" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that read shipped labs' runs go first and together, the library's (which only read) first, so
    the runs, started together at the first of them, overlap each other and no other test that times the
    kernel. When the library test is among them (it reads every shipped lab), every shipped lab is started."""
    users = sorted((i for i in items if _uses_shipped_runs(i)), key=lambda i: i.path.name != "test_library.py")
    if users:
        items[:] = users + [i for i in items if not _uses_shipped_runs(i)]
        config.stash[_PREFETCH] = list(shipped_labs()) if any(i.path.name == "test_library.py" for i in users) else []


@pytest.fixture(scope="session")
def shipped_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``run(lab)``: one `lab run` of a shipped lab for the whole test session (under a name and /24 of its own,
    with the ``sets`` tests/data/library_faults.yaml declares for it, e.g. closewait's shortened Windows timer):
    its process, run directory, seconds and the name it ran under. Every test about a shipped lab's run (the
    library, the stories, drafts and comparisons) shares it, so no lab runs twice. The first call starts the
    lab asked for, then every lab the session will ask for, ``LAB_JOBS`` at a time."""
    import time
    from concurrent.futures import Future, ThreadPoolExecutor

    from .library import declared

    entries = declared()
    labs = shipped_labs()
    started: dict[str, Future[ShippedRun]] = {}
    pool = ThreadPoolExecutor(max_workers=LAB_JOBS, thread_name_prefix="shipped-run")

    def one(lab: str, sets: list[str], out: Path) -> ShippedRun:
        t = time.monotonic()
        proc = lab_cmd("run", lab, *(a for s in sets for a in ("--set", s)), "--out", str(out), timeout=600)
        return proc, out, time.monotonic() - t, sets[0].split("=", 1)[1]

    def start(lab: str) -> None:
        if lab not in started:
            sets = isolated(lab, labs[lab]) + list((entries.get(lab) or {}).get("sets") or [])
            started[lab] = pool.submit(one, lab, sets, tmp_path_factory.mktemp(f"shipped-{lab}") / "run")

    def run(lab: str) -> ShippedRun:
        if not started:
            start(lab)
            for other in request.config.stash.get(_PREFETCH, []):
                start(other)
        start(lab)
        return started[lab].result()

    yield run
    pool.shutdown(wait=True)
    names = [f.result()[3] for f in started.values() if f.exception() is None]
    left = {name: objs for name in names if (objs := labeled_objects(name))}
    for name in left:  # `lab run` removes what it made; anything left is a failure of its own
        lab_cmd("down", name, timeout=120)
    for name in names:
        remove_built_images(name)  # the images built for this run's name, no one else's
    assert not left, f"shipped labs' runs left objects behind: {left}"


@pytest.fixture
def lab_down_after():
    """Collects lab names; brings each down (and asserts nothing is left) after the test."""
    names: list[str] = []
    yield names
    for name in names:
        if labeled_objects(name):
            lab_cmd("down", name, timeout=120)
        left = labeled_objects(name)
        if left:
            import docker

            client = docker.from_env()
            for c in client.containers.list(all=True, filters={"label": [f"tcplab.lab={name}"]}):
                c.remove(force=True)
            for n in client.networks.list(filters={"label": [f"tcplab.lab={name}"]}):
                n.remove()
            pytest.fail(f"objects of {name} left behind: {left}")


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``cond`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# --- the README's reliability figures, produced by the tests themselves ------------------------

README = ROOT / "README.md"
_BEGIN, _END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


def reliability_section(figures: dict[str, dict[str, Any]]) -> str:
    rows = []
    i = figures.get("interrupts")
    if i and {"interrupt_points", "signals", "runs", "failures", "leftover_objects"} <= set(i):
        rows.append(f"| interrupt anywhere (`test_interrupts.py`) | {i['interrupt_points']} points of `lab up` x "
                    f"{' and '.join(i['signals'])} = {i['runs']} runs | {i['failures']} failed, "
                    f"{i['leftover_objects']} objects left behind |")
    b = figures.get("bad_input")
    if b and {"bad_files", "cli_cases", "objects_created"} <= set(b):  # both halves ran (unit and CLI)
        rows.append(f"| bad input (`test_bad_input*.py`) | {b['bad_files']} malformed lab files, "
                    f"{b['cli_cases']} CLI cases | {b['objects_created']} Docker objects created |")
    c = figures.get("crashes")
    if c:
        kinds = ", ".join(sorted(c))
        rows.append(f"| crashes mid-`lab run` (`test_crashes.py`, `test_zz_engine_restart.py`) | {len(c)}: {kinds} "
                    f"| exit 3 naming what died, report written, {sum(c.values())} objects left behind |")
    head = "| what | tried | result |\n| --- | --- | --- |\n"
    return f"{_BEGIN}\n{head}" + "\n".join(rows) + f"\n{_END}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the figures the run produced into README.md's reliability section (between its markers)."""
    import json

    figures_dir = ROOT / "tests" / ".figures"
    figures = {p.stem: json.loads(p.read_text()) for p in figures_dir.glob("*.json")} if figures_dir.is_dir() else {}
    if not README.is_file() or reliability_section(figures).count("\n| ") < 5:
        return  # a partial run (some tests selected) has not measured every row: keep the figures there
    text = README.read_text()
    if _BEGIN in text and _END in text:
        start, end = text.index(_BEGIN), text.index(_END) + len(_END)
        README.write_text(text[:start] + reliability_section(figures) + text[end:])


def record_figure(name: str, key: str, value: Any) -> None:
    """Keep one figure of this run (``tests/.figures/<name>.json``) for the README's reliability table."""
    import json

    d = ROOT / "tests" / ".figures"
    d.mkdir(exist_ok=True)
    path = d / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1))


def load_module(path: Path, name: str) -> Any:
    """A Python file that is no package module (a sidecar's script, a generator), imported by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclass and NamedTuple machinery look their module up
    spec.loader.exec_module(module)
    return module
