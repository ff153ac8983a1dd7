"""``firewall``: a rule of a host's own firewall (iptables), set from the host's firewall sidecar.

The sidecar (:func:`tcplab.plan.lab_plan.firewall_sidecar`) shares the host's network namespace and alone
holds NET_ADMIN; every rule is one iptables argv, tagged with a comment naming the rule, so ``iptables -S``
in the namespace says which step set it. A ``lift`` step (:mod:`.lift`) deletes the same rules.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import BaseStep, FirewallStep, Lab
from ...plan.lab_plan import FIREWALL_ROLE
from ..errors import StepFailure
from .base import HandLine, InHost, Note, StepPlayer, register

if TYPE_CHECKING:
    from ..session import LabRun

IPTABLES = ["iptables", "-w", "5"]  # -w: wait for the xtables lock rather than fail


def rule_specs(step: FirewallStep, lab: Lab, index: int) -> list[list[str]]:
    """Each rule of the step as iptables' chain and match, without the action (-I to set, -D to lift):
    ``from`` is the host's INPUT, ``to`` its OUTPUT, neither both. The ICMP "fragmentation needed" that leaves
    the host, its own and what it forwards, is the mangle table's POSTROUTING (one rule, one exec to set or
    lift); a clamp is the mangle table's FORWARD (the SYNs it forwards)."""
    comment = ["-m", "comment", "--comment", f"tcplab:{step.rule_name(index)}"]
    port = ["-m", "multiport", "--ports", str(step.port)] if step.port is not None else []
    if step.firewall == "clamp-mss":
        return [["FORWARD", "-t", "mangle", "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", *port, *comment,
                 "-j", "TCPMSS", "--clamp-mss-to-pmtu"]]
    if step.icmp == "frag-needed":
        return [["POSTROUTING", "-t", "mangle", "-p", "icmp", "--icmp-type", "fragmentation-needed", *comment,
                 "-j", "DROP"]]
    chains: list[tuple[str, list[str]]] = []
    if step.from_ is not None:
        chains.append(("INPUT", ["-s", str(lab.host_ip(step.from_))]))
    elif step.to is not None:
        chains.append(("OUTPUT", ["-d", str(lab.host_ip(step.to))]))
    else:
        chains += [("INPUT", []), ("OUTPUT", [])]
    how = step.rejects_with()
    target = ["-j", "DROP"] if how is None else ["-j", "REJECT", "--reject-with", how]
    return [[chain, *peer, "-p", "tcp", *port, *comment, *target] for chain, peer in chains]


def index_of(lab: Lab, step: BaseStep) -> int:
    """The step's place in the lab (by identity: two steps may be equal), for ``by_hand``, which is not told."""
    found = next((i for i, s in enumerate(lab.steps) if s is step), None)
    return found if found is not None else lab.steps.index(step)


def sidecar_service(host: str) -> str:
    """The firewall sidecar as ``lab export``'s compose file names its service."""
    return f"{host}-{FIREWALL_ROLE}"


def apply(run: LabRun, host: str, argvs: list[list[str]], role: str = FIREWALL_ROLE) -> list[str]:
    """Run each iptables argv in the host's firewall sidecar (or its sidecar of ``role``); StepFailure naming
    the first that fails."""
    said = []
    for argv in argvs:
        res = run.backend.exec(run.names.sidecar(host, role), argv)
        run.record_command(argv, res.exit_code)
        if res.exit_code != 0:
            raise StepFailure(f"{host}: {' '.join(argv)} failed: {(res.stderr or res.stdout).strip()[:200]}")
        said.append(" ".join(argv[len(IPTABLES):]))
    return said


class FirewallPlayer(StepPlayer[FirewallStep]):
    kind = FirewallStep

    def play(self, run: LabRun, step: FirewallStep, index: int) -> str:
        rules = apply(run, step.host, [[*IPTABLES, "-I", *spec] for spec in rule_specs(step, run.lab, index)])
        return "; ".join(rules)

    def by_hand(self, step: FirewallStep, lab: Lab, files: str) -> list[HandLine]:
        index = index_of(lab, step)
        lines: list[HandLine] = [Note(f"iptables runs in {step.host}'s firewall sidecar (NET_ADMIN, not the host)")]
        lines += [
            InHost(sidecar_service(step.host), [*IPTABLES, "-I", *spec]) for spec in rule_specs(step, lab, index)]
        return lines


register(FirewallPlayer())
