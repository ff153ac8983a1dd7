"""Running a shipped story lab in a test: `lab run NAME` under a name and subnet of its own (its programs built
from the Dockerfile beside its lab file), and the images its hosts built for that name removed afterwards."""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from ..conftest import isolated, lab_cmd, labeled_objects, shipped_labs


@dataclass
class StoryRun:
    proc: subprocess.CompletedProcess[str]
    run_dir: Path
    seconds: float  # the wall time of `lab run`, as a user waits for it
    name: str

    def said(self) -> str:
        return f"exit {self.proc.returncode}\n{self.proc.stdout}\n{self.proc.stderr}"


def run_story(tmp: Path, base: str) -> Iterator[StoryRun]:
    """`lab run` of the shipped lab ``base`` (a generator for a fixture): nothing of it is left afterwards."""
    path = shipped_labs()[base]
    sets = isolated(base, path)
    name = sets[0].split("=", 1)[1]
    t = time.monotonic()
    proc = lab_cmd("run", base, *(a for s in sets for a in ("--set", s)), "--out", str(tmp / "run"), timeout=600)
    yield StoryRun(proc, tmp / "run", time.monotonic() - t, name)
    left = labeled_objects(name)
    if left:
        lab_cmd("down", name, timeout=120)
    remove_built_images(name, path)
    assert not left, f"{name} left {left}"


def remove_built_images(name: str, path: Path) -> None:
    """Untag the images the hosts of lab ``name`` (its file at ``path``) built for it: each run under a name of
    its own tags them ``tcplab-build/<name>-<host>:<hash>``. By tag, so an image keeps the tags of other runs."""
    for host, spec in (yaml.safe_load(path.read_text()).get("hosts") or {}).items():
        if not isinstance(spec, dict) or "build" not in spec:
            continue
        refs = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                               f"tcplab-build/{name}-{host}"], capture_output=True, text=True).stdout.split()
        for ref in refs:
            subprocess.run(["docker", "rmi", ref], capture_output=True)
