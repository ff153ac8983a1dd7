"""``start``: a story program begins on a host (under labrun), and the step waits until it is ready."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import Lab, Ready, StartStep
from .base import HandLine, InHost, Note, StepPlayer, register

if TYPE_CHECKING:
    from ..session import LabRun


class StartPlayer(StepPlayer[StartStep]):
    kind = StartStep

    def play(self, run: LabRun, step: StartStep, index: int) -> str:
        pid = run.start_program(step.host, step.as_, step.start, step.ready, step=index)
        return f"pid {pid}"

    def by_hand(self, step: StartStep, lab: Lab, files: str) -> list[HandLine]:
        lines: list[HandLine] = [InHost(step.host, ["labrun", step.as_, *step.start])]
        if step.ready is not None:
            lines += ready_by_hand(step.host, step.as_, step.ready)
        return lines


def ready_by_hand(host: str, program: str, ready: Ready) -> list[HandLine]:
    """How a person sees that a started program is ready."""
    if ready.listen is not None:
        return [Note(f"ready once it listens on port {ready.listen}:"),
                InHost(host, ["ss", "-Htln", f"sport = :{ready.listen}"])]
    return [Note(f"ready once its output matches the regex {ready.log!r}:"),
            InHost(host, ["grep", "-P", "--", ready.log or "", f"/var/log/lab/{program}.log"])]


register(StartPlayer())
