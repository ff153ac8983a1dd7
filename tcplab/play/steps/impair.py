"""``impair``: from this step on, the host's matching packets go through NFQUEUE to its impairment sidecar.

The sidecar (:func:`tcplab.plan.lab_plan.impair_sidecar`) runs images/impair/impair.c, which holds one queue
per impair step of the host from the start; the step inserts the iptables rule that sends packets to its
queue (the direction and port are iptables' match, the counting and the choice the program's), and a ``lift``
step deletes it. The program logs each packet it drops.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model.lab import ImpairStep, Lab
from ...plan.lab_plan import IMPAIR_DUP_MARK, IMPAIR_ROLE, impair_queue
from .base import HandLine, InHost, Note, StepPlayer, register
from .firewall import IPTABLES, apply, index_of

if TYPE_CHECKING:
    from ..session import LabRun


FLAG_NAMES = {"S": "SYN", "F": "FIN", "R": "RST", "P": "PSH", ".": "ACK"}  # tcpdump's letter -> iptables' name


def impair_specs(step: ImpairStep, lab: Lab, index: int) -> list[list[str]]:
    """The step's iptables rule, without the action (-I to set, -D to lift): ``from`` is the host's INPUT,
    else its OUTPUT (to ``to`` or any peer)."""
    m = step.match
    if m.from_ is not None:
        chain, peer = "INPUT", ["-s", str(lab.host_ip(m.from_))]
    else:
        chain, peer = "OUTPUT", ["-d", str(lab.host_ip(m.to))] if m.to is not None else []
    port = ["-m", "multiport", "--ports", str(m.port)] if m.port is not None else []
    if m.flags is not None:
        port += ["--tcp-flags", "SYN,ACK,FIN,RST,PSH", ",".join(FLAG_NAMES[c] for c in m.flags)]
    comment = ["-m", "comment", "--comment", f"tcplab:{step.rule_name(index)}"]
    copies = ["-m", "mark", "!", "--mark", IMPAIR_DUP_MARK]  # the program's own duplicates pass
    return [[chain, *peer, "-p", "tcp", *port, *copies, *comment, "-j", "NFQUEUE",
             "--queue-num", str(impair_queue(index))]]


def sidecar_service(host: str) -> str:
    """The impairment sidecar as ``lab export``'s compose file names its service."""
    return f"{host}-{IMPAIR_ROLE}"


NETEM_PROBE = ["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "0ms"]
NETEM_UNDO = ["tc", "qdisc", "del", "dev", "eth0", "root"]


def netem(run: LabRun, host: str) -> str:
    """Whether the kernel has netem, tried in the host's namespace (and undone): ``available``, or ``absent``
    and what tc said. An exact n-th drop needs the packets counted one by one, so NFQUEUE plays every
    impairment either way; run.json says which mechanism ran and what netem could have done."""
    container = run.names.sidecar(host, IMPAIR_ROLE)
    res = run.backend.exec(container, NETEM_PROBE)
    if res.exit_code == 0:
        run.backend.exec(container, NETEM_UNDO)
        return "available (unused: the impairments are exact, packet by packet, through nfqueue)"
    return f"absent: {(res.stderr or res.stdout).strip()[:200]}"


class ImpairPlayer(StepPlayer[ImpairStep]):
    kind = ImpairStep

    def play(self, run: LabRun, step: ImpairStep, index: int) -> str:
        run.write_run_info(impairment={"mechanism": "nfqueue", "netem": netem(run, step.host)})
        argvs = [[*IPTABLES, "-I", *spec] for spec in impair_specs(step, run.lab, index)]
        return "; ".join(apply(run, step.host, argvs, role=IMPAIR_ROLE)) + " (through nfqueue)"

    def by_hand(self, step: ImpairStep, lab: Lab, files: str) -> list[HandLine]:
        index = index_of(lab, step)
        lines: list[HandLine] = [Note(f"iptables runs in {step.host}'s impairment sidecar (NET_ADMIN, not the host), "
                                      "which runs the NFQUEUE program of images/impair")]
        lines += [InHost(sidecar_service(step.host), [*IPTABLES, "-I", *spec])
                  for spec in impair_specs(step, lab, index)]
        return lines


register(ImpairPlayer())
