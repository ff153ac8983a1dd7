"""``lift``: a firewall rule set by an earlier ``firewall`` step of the host is deleted (the same argv, -D)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import FirewallStep, Lab, LiftStep
from .base import HandLine, InHost, StepPlayer, register
from .firewall import IPTABLES, apply, index_of, rule_specs, sidecar_service

if TYPE_CHECKING:
    from ..session import LabRun


def rule_step(lab: Lab, step: LiftStep, index: int) -> tuple[FirewallStep, int]:
    """The firewall step that set the rule ``step`` lifts: the last one before it on its host (the loader
    checked there is one)."""
    for i in range(index - 1, -1, -1):
        s = lab.steps[i]
        if isinstance(s, FirewallStep) and s.host == step.host and s.rule_name(i) == step.lift:
            return s, i
    raise LookupError(f"no firewall rule '{step.lift}' on {step.host} before steps.{index}")


def lift_argvs(lab: Lab, step: LiftStep, index: int) -> list[list[str]]:
    rule, at = rule_step(lab, step, index)
    return [[*IPTABLES, "-D", *spec] for spec in rule_specs(rule, lab, at)]


class LiftPlayer(StepPlayer[LiftStep]):
    kind = LiftStep

    def play(self, run: LabRun, step: LiftStep, index: int) -> str:
        return "; ".join(apply(run, step.host, lift_argvs(run.lab, step, index)))

    def by_hand(self, step: LiftStep, lab: Lab, files: str) -> list[HandLine]:
        return [InHost(sidecar_service(step.host), argv) for argv in lift_argvs(lab, step, index_of(lab, step))]


register(LiftPlayer())
