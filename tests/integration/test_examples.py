"""The worked examples under examples/ run as the docs say: copied anywhere, `lab run` holds every expectation.

Each example is a lab directory (lab.yaml, a Dockerfile, the service's source). The test copies the whole
examples/ folder outside the checkout and runs each example from the copy's parent by its path. Every
expectation must hold on real evidence, and a state expectation that names an owner program must have
seen it: in the verdict, in the socket table it cites, and in the report.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, lab_cmd, labeled_objects, remove_built_images, unique_name

pytestmark = pytest.mark.integration
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/lab.yaml"))


def test_there_are_examples() -> None:
    assert "own-service" in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_an_example_copied_anywhere_holds_its_expectations(example: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    name = unique_name(example)[:31]
    subnet = f"10.{150 + os.getpid() % 50}.{os.getpid() % 250}.0/24"
    try:
        res = lab_cmd("run", f"examples/{example}", "--set", f"name={name}", "--set", f"network.subnet={subnet}",
                      cwd=tmp_path, timeout=900)
        left = labeled_objects(name)
    finally:  # the images the example built for this lab name
        remove_built_images(name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not left
    (run,) = (tmp_path / "runs").glob(f"{name}-*")
    verdicts = json.loads((run / "result.json").read_text())["expectations"]
    assert verdicts and all(v["held"] for v in verdicts)
    lab = yaml.safe_load((ROOT / "examples" / example / "lab.yaml").read_text())
    owners = {e["name"]: e["state"]["owner"] for e in lab["expect"]
              if "state" in e and e["state"].get("owner") not in (None, "none", "any")}
    report = (run / "report.html").read_text()
    for v in verdicts:
        if v["name"] in owners:
            owner = owners[v["name"]]
            assert v["seen"].split()[-1].endswith(f"/{owner}"), v  # netstat's PID/Program
            table = (run / v["where"]).read_text()
            assert [line for line in table.splitlines() if line.split() and line.split()[-1].endswith(f"/{owner}")]
            assert f"/{owner}" in report
