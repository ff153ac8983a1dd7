"""A run on a machine short of CPU says so beside its failure, with the share its steps recorded; the report
shows that share for every run.

Busy processes at the lowest priority, twice as many as the cores, keep a task waiting for a CPU the whole
story: the kernel's pressure stall information counts that time, each step records its part, and `lab run`
adds its line to the failure (here a FIN_WAIT_2 that has not yet timed out when the story is cut short).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab.analysis.machine import SHORT_OF_CPU

from ..conftest import isolated, lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration
SHORT = {"steps.6": {"wait": {"seconds": "0.2s"}, "timeout": "5s"}}  # the orphan's 3 s timeout is not reached
LINE = re.compile(r"^the machine was short of CPU during the story: a task waited for a CPU (\d+)% of the story's "
                  r"[0-9.]+ s; a timing that failed may be the machine's, not TCP's", re.M)


def _share(run: Path) -> float:
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.strip()]
    assert steps and all("cpu_stalled" in s for s in steps), steps
    return sum(s["cpu_stalled"] for s in steps) / sum(s["end"] - s["start"] for s in steps)


def test_a_failure_on_a_machine_short_of_cpu_says_so(tmp_path: Path) -> None:
    lab, name = make_lab(tmp_path, "closewait-linux", changes=SHORT)
    sets = isolated(f"{name[:20]}-cpu", lab)
    run_name = sets[0].split("=", 1)[1]
    # at the lowest priority: they wait for a CPU the whole time (which the kernel counts) while taking almost none
    # from the lab, or from other labs a test session runs beside this one
    busy = "import os\nos.nice(19)\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", busy]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        res = lab_cmd("run", str(lab), *(a for s in sets for a in ("--set", s)), "--out", str(tmp_path / "run"),
                      cwd=tmp_path, timeout=300)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert labeled_objects(run_name) == []
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL win-fin-wait2-dropped-silently" in res.stdout
    said = LINE.search(res.stdout)
    assert said is not None, res.stdout
    share = _share(tmp_path / "run")
    assert share >= SHORT_OF_CPU and abs(int(said.group(1)) - share * 100) <= 1, (share, said.group(0))
    cpu = json.loads((tmp_path / "run" / "result.json").read_text())["cpu"]
    assert cpu["short"] is True and abs(cpu["share"] - share) < 0.001, cpu
    junit = (tmp_path / "run" / "junit.xml").read_text()
    in_junit = re.search(r'<property name="cpu_waited_share" value="([0-9.]+)"', junit)
    assert in_junit is not None and abs(float(in_junit.group(1)) - cpu["share"]) <= 0.001, junit[:600]
    report = (tmp_path / "run" / "report.html").read_text()
    assert re.search(r'<th>CPU during the story</th><td class="error">a task waited for a CPU \d+% of the story', report)
