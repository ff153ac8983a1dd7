"""The war-story library on this kernel: every shipped lab holds every expectation as shipped, and each of
its deliberate faults (tests/data/library_faults.yaml) fails naming the expected value and the closest seen.

Each lab runs once (`lab run NAME`, under a name and subnet of its own; a story that takes minutes as
shipped gets the ``sets`` its entry declares), shared by its fault variants: a fault is judged on a copy of
that run directory whose lab.yaml has the fault (`lab report COPY --judge`), so no fault costs a run.
How long each lab takes is bench/library.py's figure, not an assertion here.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from tcplab.rundir import RunDir
from tcplab.runfiles import lab as lab_file

from ..conftest import lab_cmd, shipped_labs
from ..library import declared, failure_block, fail_line, fault_id, put_fault

pytestmark = pytest.mark.integration

LABS = shipped_labs()
ENTRIES = declared()
FAULTS = [(name, f) for name, entry in ENTRIES.items() for f in entry.get("faults") or []]

Run = tuple[subprocess.CompletedProcess[str], Path]


@pytest.fixture
def library_run(shipped_run: Callable[[str], Any]) -> Callable[[str], Run]:
    """``run(lab)``: that lab's one `lab run` of the session (tests/conftest.py ``shipped_run``), and its run
    directory."""
    return lambda name: shipped_run(name)[:2]


def _said(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("name", LABS)
def test_a_shipped_lab_holds_every_expectation_on_this_kernel(name: str, library_run: Callable[[str], Run]) -> None:
    proc, rd = library_run(name)
    assert proc.returncode == 0, _said(proc)
    result = json.loads((rd / "result.json").read_text())
    assert result["passed"] and result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, _said(proc)
    lab = lab_file.read(RunDir(rd))  # as tcplab reads a run's lab: a build context is not beside it
    info = json.loads((rd / "run.json").read_text())
    print(f"{name}: {info['ended'] - info['started']:.1f} s, phases {info.get('phases')}")
    # the kernel facts it depends on are in the run's record, in every host
    for host in lab.hosts:
        missing = [s for s in [*lab.sysctls_read(), "kernel.osrelease"] if s not in info["sysctls"][host]]
        assert not missing, f"run.json has no {missing} for {host} (does this kernel lack them?)"
    # the report holds each published fact with this run's verdict: held, all of them
    html = (rd / "report.html").read_text(encoding="utf-8")
    assert 'id="facts"' in html and html.count('<tr class="fact held">') == len(lab.reference.facts)


@pytest.mark.parametrize("name,fault", FAULTS, ids=[fault_id(n, f) for n, f in FAULTS])
def test_a_deliberate_fault_fails_naming_the_expected_and_the_closest(
        name: str, fault: dict[str, Any], library_run: Callable[[str], Run], tmp_path: Path) -> None:
    proc, rd = library_run(name)
    assert proc.returncode == 0, f"the lab's own run did not hold, so its faults prove nothing:\n{_said(proc)}"
    copy = tmp_path / "run"
    shutil.copytree(rd, copy)
    put_fault(copy / "lab.yaml", fault)
    judged = lab_cmd("report", str(copy), "--judge", timeout=120)
    assert judged.returncode == 1, _said(judged)
    line = fail_line(judged.stdout, fault["expect"])
    assert line, f"no FAIL line for {fault['expect']}:\n{judged.stdout}"
    assert " expected " in line and ("; closest: " in line or "; seen: " in line), line
    for fragment in fault["message"]:
        assert fragment in line, f"{fragment!r} is not in\n{line}"
    result = json.loads((copy / "result.json").read_text())
    failed = [v["name"] for v in result["expectations"] if v["status"] == "failed"]
    assert failed == [fault["expect"]], failed  # the fault, and nothing else, fails
    # the facts that expectation checks are named with their sources, under its FAIL line
    lab = lab_file.read(RunDir(copy))
    block = failure_block(judged.stdout, fault["expect"])
    for fact in lab.reference.facts_checked_by(fault["expect"]) if lab.reference else []:
        source = lab.reference.source(fact.source)
        assert f"source:   “{fact.says}”" in block and source is not None and source.title in block, block
    assert "this kernel differs" in (copy / "report.html").read_text(encoding="utf-8").lower() or \
        not (lab.reference and lab.reference.facts_checked_by(fault["expect"]))
