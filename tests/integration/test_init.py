"""`lab init` runs as written: a starter lab beside a small service's Dockerfile, then `lab run` of it.

The service is examples/own-service's (it forgets close() when a client hangs up): the starter's one
expectation, a CLOSE_WAIT on the service after the client hangs up, holds on the real run.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ..conftest import ROOT, lab_cmd, labeled_objects, remove_built_images, unique_name

pytestmark = pytest.mark.integration


def test_a_lab_written_by_init_runs_as_written(tmp_path: Path) -> None:
    svc = tmp_path / "svc"
    svc.mkdir()
    for f in ("Dockerfile", "svc.c"):
        shutil.copyfile(ROOT / "examples" / "own-service" / f, svc / f)
    name = unique_name("init")
    res = lab_cmd("init", "svc", "--name", name, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    subnet = f"10.{50 + os.getpid() % 50}.{os.getpid() % 250}.0/24"
    try:  # as written, but for a subnet of its own (the engine is shared)
        res = lab_cmd("run", "svc", "--set", f"network.subnet={subnet}", cwd=tmp_path, timeout=900)
        left = labeled_objects(name)
    finally:
        remove_built_images(name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not left
    (run,) = (tmp_path / "runs").glob(f"{name}-*")
    verdicts = json.loads((run / "result.json").read_text())["expectations"]
    assert [(v["name"], v["held"]) for v in verdicts] == [("close-wait", True)]
    assert "CLOSE_WAIT" in verdicts[0]["seen"]
