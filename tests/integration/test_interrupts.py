"""Issue 8.1: an interrupt at any moment of `lab up` removes everything and keeps readable artifacts.

The points are the run's own checkpoints (tcplab/play/checkpoints.py), learnt
from one full run; the process signals itself there, as Ctrl-C or CI's
SIGTERM would. The figures go to tests/.figures/interrupts.json for the README.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tcplab.wire import read_pcap_file

from ..conftest import ROOT, isolated, lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration
QUICK = {"steps.6": {"wait": {"seconds": "0.2s"}, "timeout": "5s"}}
FIGURES = ROOT / "tests" / ".figures"


def _points(tmp: Path, lab: Path, name: str) -> list[str]:
    log = tmp / "points.log"
    res = lab_cmd("up", str(lab), "--out", str(tmp / "full"), cwd=tmp, env={"TCPLAB_CHECKPOINTS_LOG": str(log)})
    assert res.returncode == 0, res.stderr
    lab_cmd("down", name, cwd=tmp, check=True)
    points = log.read_text().split()
    assert len(points) >= 20, points
    step = len(points) / 20
    return [points[int(i * step)] for i in range(20)]


def _assert_readable(run: Path) -> None:
    if not run.exists():  # interrupted before the run directory was made (image check)
        return
    info = json.loads((run / "run.json").read_text())
    assert info["state"] == "interrupted"
    for pcap in (run / "capture").glob("*.pcap"):
        read_pcap_file(str(pcap))  # raises on a corrupt file; a partial last record is tolerated
    for line in (run / "steps.jsonl").read_text().splitlines() if (run / "steps.jsonl").exists() else []:
        json.loads(line)
    if (run / "sockets" / "snapshots.json").exists():
        json.loads((run / "sockets" / "snapshots.json").read_text())


def test_interrupt_anywhere(tmp_path: Path) -> None:
    lab, name = make_lab(tmp_path, "closewait-linux", changes=QUICK)
    points = _points(tmp_path, lab, name)
    failures: list[str] = []
    leftovers: list[int] = []

    def one(sig: str, i: int, point: str) -> None:
        # each interrupted run under a name and /24 of its own, so several go at once (the points are the run's
        # own checkpoints, not moments: the load of the others cannot move them)
        sets = isolated(f"{name[:18]}-{sig[3:5].lower()}{i}", lab)
        run_name = sets[0].split("=", 1)[1]
        out = tmp_path / f"{sig}-{i}"
        res = lab_cmd("up", str(lab), *(a for s in sets for a in ("--set", s)), "--out", str(out), cwd=tmp_path,
                      env={"TCPLAB_INTERRUPT_AT": point, "TCPLAB_INTERRUPT_SIGNAL": sig})
        left = labeled_objects(run_name)
        leftovers.append(len(left))
        if res.returncode != 130 or left:
            failures.append(f"{sig} at {point}: exit {res.returncode}, left {left}: {res.stderr[-300:]}")
            if left:
                lab_cmd("down", run_name, cwd=tmp_path)
            return
        last = res.stderr.strip().splitlines()[-1]
        if last != "lab: interrupted; everything created was removed":
            failures.append(f"{sig} at {point}: said {last!r}")
            return
        try:
            _assert_readable(out)
        except (AssertionError, ValueError, KeyError) as e:
            failures.append(f"{sig} at {point}: artifacts not readable: {e!r}")

    # every point once, Ctrl-C and CI's SIGTERM in turn: both raise the same KeyboardInterrupt from the handler
    # `lab up` installs before it creates anything, so each signal is tried early, midway and late
    runs = [("SIGINT" if i % 2 == 0 else "SIGTERM", i, point) for i, point in enumerate(points)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda r: one(*r), runs))
    FIGURES.mkdir(exist_ok=True)
    (FIGURES / "interrupts.json").write_text(json.dumps(
        {"interrupt_points": len(points), "signals": ["SIGINT", "SIGTERM"], "runs": len(runs),
         "leftover_objects": sum(leftovers), "failures": len(failures)}, indent=1))
    assert len(leftovers) == len(runs)
    assert not failures, "\n".join(failures)
