"""Names and labels of a run's engine objects. One lab runs once at a time per engine."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..backend.base import (
    LABEL_HOST,
    LABEL_LAB,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_RUN_DIR,
)


def process_start(pid: int) -> str:
    """The kernel's start time of a process (clock ticks since boot): with the pid it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class RunNames:
    lab: str
    run: str
    run_dir: str

    @property
    def network(self) -> str:
        return f"tcplab-{self.lab}"

    def host(self, host: str) -> str:
        return f"tcplab-{self.lab}-{host}"

    def sidecar(self, host: str, role: str) -> str:
        return f"tcplab-{self.lab}-{host}-{role}"

    @property
    def tracer(self) -> str:
        return f"tcplab-{self.lab}-tracer"

    def volume(self, kind: str) -> str:
        """A volume the sidecars write ``kind`` artifacts into, on an engine that does not share our files."""
        return f"tcplab-{self.lab}-{kind}"

    def labels(self, role: str, host: str = "") -> dict[str, str]:
        """What every object of the run carries: its lab, run, role, run directory and the process that owns it
        (``lab gc`` removes a run whose owner is gone)."""
        pid = os.getpid()
        out = {LABEL_LAB: self.lab, LABEL_RUN: self.run, LABEL_ROLE: role, LABEL_RUN_DIR: self.run_dir,
               LABEL_OWNER_PID: str(pid), LABEL_OWNER_START: process_start(pid)}
        if host:
            out[LABEL_HOST] = host
        return out
