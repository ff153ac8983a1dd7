"""``send``: text typed into a story program's stdin (labsend)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import Lab, SendStep
from ..errors import StepFailure
from .base import HandLine, InHost, StepPlayer, register

if TYPE_CHECKING:
    from ..session import LabRun


class SendPlayer(StepPlayer[SendStep]):
    kind = SendStep

    def play(self, run: LabRun, step: SendStep, index: int) -> str:
        res = run.run_in(step.host, ["labsend", step.send, step.text])
        if res.exit_code != 0:
            raise StepFailure(f"{step.host}: could not send to {step.send}: {res.stderr.strip()}")
        return f"{len(step.text)} characters"

    def by_hand(self, step: SendStep, lab: Lab, files: str) -> list[HandLine]:
        return [InHost(step.host, ["labsend", step.send, step.text])]


register(SendPlayer())
