"""``stop``: a story program is sent a signal (labstop), as closing its window would."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import Lab, StopStep
from ..errors import StepFailure
from .base import HandLine, InHost, StepPlayer, register

if TYPE_CHECKING:
    from ..session import LabRun


class StopPlayer(StepPlayer[StopStep]):
    kind = StopStep

    def play(self, run: LabRun, step: StopStep, index: int) -> str:
        if run.own_program(step.host, step.stop):  # the container's main process: the engine signals it
            status = run.exit_status(step.host, step.stop)
            if status is not None:
                return f"had already exited with status {status}"
            run.backend.signal(run.names.host(step.host), f"SIG{step.signal}")
            return f"sent SIG{step.signal} to the container's main process"
        res = run.run_in(step.host, ["labstop", step.stop, step.signal])
        if res.exit_code != 0:
            raise StepFailure(f"{step.host}: could not stop {step.stop}: {res.stderr.strip()}")
        run.pids.pop((step.host, step.stop), None)
        how = res.stdout.strip()  # labstop: "exited with status 143", "had already exited with status 1"
        return how if how.startswith("had already") else f"sent SIG{step.signal}" + (f"; {how}" if how else "")

    def by_hand(self, step: StopStep, lab: Lab, files: str) -> list[HandLine]:
        return [InHost(step.host, ["labstop", step.stop, step.signal])]


register(StopPlayer())
