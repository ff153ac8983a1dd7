"""A shipped story lab's run in a test (the session's one `lab run NAME`, under a name and subnet of its own, its
programs built from the Dockerfile beside its lab file), and the images its hosts built for that name, removed."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml



@dataclass
class StoryRun:
    proc: subprocess.CompletedProcess[str]
    run_dir: Path
    seconds: float  # the wall time of `lab run`, as a user waits for it
    name: str

    def said(self) -> str:
        return f"exit {self.proc.returncode}\n{self.proc.stdout}\n{self.proc.stderr}"


def story_run(shipped_run: Callable[[str], Any], base: str) -> StoryRun:
    """The session's one `lab run` of the shipped lab ``base`` (tests/conftest.py ``shipped_run``, which also
    removes what it leaves)."""
    proc, run_dir, seconds, name = shipped_run(base)
    return StoryRun(proc, run_dir, seconds, name)


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
