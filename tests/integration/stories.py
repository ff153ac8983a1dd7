"""A shipped story lab's run in a test: the session's one `lab run NAME` (tests/conftest.py ``shipped_run``), under a
name and subnet of its own, its programs built from the Dockerfile beside its lab file."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable



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
