"""Running a shipped story lab (labs/NAME/: its lab file beside its Dockerfile and sources) in a test: a copy
under a name and subnet of its own, its run, and the images its hosts built removed afterwards."""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from ..conftest import ROOT, lab_cmd, labeled_objects, make_lab, unique_name


@dataclass
class StoryRun:
    proc: subprocess.CompletedProcess[str]
    run_dir: Path
    seconds: float  # the wall time of `lab run`, as a user waits for it
    name: str

    def said(self) -> str:
        return f"exit {self.proc.returncode}\n{self.proc.stdout}\n{self.proc.stderr}"


def story_lab(tmp: Path, base: str) -> tuple[Path, str]:
    """A copy of labs/<base>/ in ``tmp``: its sources and Dockerfile, and its lab file under a unique name and
    subnet (the built images are tagged with the lab's name, so they are the test's own)."""
    for f in (ROOT / "labs" / base).iterdir():
        if f.is_file() and f.name != "lab.yaml":
            shutil.copy(f, tmp / f.name)
    return make_lab(tmp, f"{base}/lab", name=unique_name(base))


def run_story(tmp: Path, base: str) -> Iterator[StoryRun]:
    """`lab run` of a copy of the story (a generator for a fixture): nothing of it is left afterwards."""
    lab, name = story_lab(tmp, base)
    t = time.monotonic()
    proc = lab_cmd("run", str(lab), "--out", str(tmp / "run"), cwd=tmp, timeout=600)
    yield StoryRun(proc, tmp / "run", time.monotonic() - t, name)
    left = labeled_objects(name)
    if left:
        lab_cmd("down", name, timeout=120)
    hosts = yaml.safe_load(lab.read_text())["hosts"]
    for host in hosts:  # by tag: an image of the same content keeps its other tags (another run's)
        refs = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                               f"tcplab-build/{name}-{host}"], capture_output=True, text=True).stdout.split()
        for ref in refs:
            subprocess.run(["docker", "rmi", ref], capture_output=True)
    assert not left, f"{name} left {left}"
