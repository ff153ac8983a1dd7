"""The library's declared faults (tests/data/library_faults.yaml) and how one is put into a run's lab.yaml."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .conftest import ROOT

FAULTS_FILE = ROOT / "tests" / "data" / "library_faults.yaml"


def declared() -> dict[str, dict[str, Any]]:
    """Lab name -> its entry: ``sets`` (CI's, if any) and ``faults``."""
    return dict(yaml.safe_load(FAULTS_FILE.read_text()) or {})


def fault_id(lab: str, fault: dict[str, Any]) -> str:
    return f"{lab}:{fault['expect']}:" + ",".join(f"{k}={v}" for k, v in fault["change"].items())


def with_fault(data: dict[str, Any], fault: dict[str, Any]) -> dict[str, Any]:
    """The lab mapping with the fault's fields changed under its expectation (KeyError: no such expectation
    or field, so a stale entry is noticed rather than ignored). Changes ``data``."""
    exp = next((e for e in data.get("expect") or [] if e.get("name") == fault["expect"]), None)
    if exp is None:
        raise KeyError(f"the lab has no expectation {fault['expect']!r}")
    for dotted, value in fault["change"].items():
        *parents, last = dotted.split(".")
        node = exp
        for p in parents:
            node = node[p]
        if last not in node and not isinstance(node, dict):
            raise KeyError(dotted)
        node[last] = value
    return data


def put_fault(lab_yaml: Path, fault: dict[str, Any]) -> None:
    data = yaml.safe_load(lab_yaml.read_text())
    lab_yaml.write_text(yaml.safe_dump(with_fault(data, fault), sort_keys=False, allow_unicode=True))


def fail_line(output: str, expectation: str) -> str:
    """The FAIL line the terminal printed for ``expectation`` ("" when there is none)."""
    return next((line for line in output.splitlines() if line.startswith(f"FAIL {expectation}: ")), "")


def failure_block(output: str, expectation: str) -> str:
    """The FAIL line and the indented lines under it."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"FAIL {expectation}: "):
            block = [line]
            for more in lines[i + 1:]:
                if not more.startswith("  "):
                    break
                block.append(more)
            return "\n".join(block)
    return ""

