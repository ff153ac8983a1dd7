"""``lift``: a firewall rule or impairment set by an earlier ``firewall``/``impair`` step of the host is deleted
(the same argv, -D, in the same sidecar)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import FirewallStep, ImpairStep, Lab, LiftStep
from ...plan.lab_plan import FIREWALL_ROLE, IMPAIR_ROLE
from .base import HandLine, InHost, StepPlayer, register
from . import impair
from .firewall import IPTABLES, apply, index_of, rule_specs, sidecar_service

if TYPE_CHECKING:
    from ..session import LabRun


def rule_step(lab: Lab, step: LiftStep, index: int) -> tuple[FirewallStep | ImpairStep, int]:
    """The firewall or impair step that set the rule ``step`` lifts: the last one before it on its host (the
    loader checked there is one)."""
    for i in range(index - 1, -1, -1):
        s = lab.steps[i]
        if isinstance(s, (FirewallStep, ImpairStep)) and s.host == step.host and s.rule_name(i) == step.lift:
            return s, i
    raise LookupError(f"no firewall rule or impairment '{step.lift}' on {step.host} before steps.{index}")


def lift_argvs(lab: Lab, step: LiftStep, index: int) -> tuple[str, list[list[str]]]:
    """The sidecar role that holds the rule and the iptables argvs that delete it."""
    rule, at = rule_step(lab, step, index)
    if isinstance(rule, ImpairStep):
        return IMPAIR_ROLE, [[*IPTABLES, "-D", *spec] for spec in impair.impair_specs(rule, lab, at)]
    return FIREWALL_ROLE, [[*IPTABLES, "-D", *spec] for spec in rule_specs(rule, lab, at)]


class LiftPlayer(StepPlayer[LiftStep]):
    kind = LiftStep

    def play(self, run: LabRun, step: LiftStep, index: int) -> str:
        role, argvs = lift_argvs(run.lab, step, index)
        return "; ".join(apply(run, step.host, argvs, role=role))

    def by_hand(self, step: LiftStep, lab: Lab, files: str) -> list[HandLine]:
        role, argvs = lift_argvs(lab, step, index_of(lab, step))
        service = impair.sidecar_service(step.host) if role == IMPAIR_ROLE else sidecar_service(step.host)
        return [InHost(service, argv) for argv in argvs]


register(LiftPlayer())
