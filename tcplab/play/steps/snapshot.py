"""``snapshot``: every host's socket tables (netstat and ss), under the step's name."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import Lab, SnapshotStep
from ...observe import observer
from ...observe.sockets import NETSTAT_ARGV
from .base import HandLine, InHost, StepPlayer, register

if TYPE_CHECKING:
    from ..session import LabRun


class SnapshotPlayer(StepPlayer[SnapshotStep]):
    kind = SnapshotStep

    def play(self, run: LabRun, step: SnapshotStep, index: int) -> str:
        run.snapshot(step.snapshot)
        return f"{len(run.lab.hosts)} hosts"

    def by_hand(self, step: SnapshotStep, lab: Lab, files: str) -> list[HandLine]:
        # a host whose image has no tools is read from its observer, the sidecar named after it
        return [InHost(f"{h}-{observer.ROLE}" if host.own_program else h, list(NETSTAT_ARGV))
                for h, host in lab.hosts.items()]


register(SnapshotPlayer())
