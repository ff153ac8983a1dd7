"""``wait``: for some seconds, for a program to exit, or for a FIN or an RST from a host on the wire.

Every wait looks at the hosts' health as it goes: a host that dies during a
long wait ends the run at once, not when the wait is over.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ...model.lab import Lab, WaitStep
from ...observe.programs import describe_status
from ...wire import FIN, RST
from ..errors import StepFailure
from ...peers import peer_kind
from .base import (HEALTH_EVERY, POLL, Countdown, HandLine, InHost, Note, OnMachine, StepPlayer, countdown,
                   last_lines_of, register)

if TYPE_CHECKING:
    from ..session import LabRun


class WaitPlayer(StepPlayer[WaitStep]):
    kind = WaitStep

    def play(self, run: LabRun, step: WaitStep, index: int) -> str:
        w = step.wait
        now = time.time()
        if w.seconds is not None:
            with countdown(run, Countdown(f"waiting {w.seconds:g} s", now + w.seconds)):
                return wait_seconds(run, w.seconds)
        if w.exit is not None:
            with countdown(run, Countdown(f"waiting for {w.exit} on {step.host} to exit", now + step.timeout)):
                return wait_exit(run, step.host or "", w.exit, step.timeout)
        host, flag, what = (w.rst_from, RST, "RST") if w.rst_from else (w.fin_from, FIN, "FIN")
        assert host is not None
        shown = Countdown(f"waiting for an {what} from {host}", now + step.timeout)
        timer = peer_timer(run, host) if flag == RST else None
        if timer is not None:
            shown = Countdown(shown.what, shown.gives_up, *timer)
        with countdown(run, shown):
            return wait_packet(run, host, flag, what, step.timeout)

    def time_limit(self, step: WaitStep) -> float | None:
        return step.timeout

    def by_hand(self, step: WaitStep, lab: Lab, files: str) -> list[HandLine]:
        w = step.wait
        if w.seconds is not None:
            return [OnMachine(["sleep", f"{w.seconds:g}"])]
        if w.exit is not None:
            return [Note(f"until {w.exit} exits (lab up gives up after {step.timeout:g} s); labrun then writes its "
                         "pid, exit status and time to:"),
                    InHost(step.host or "", ["cat", f"/var/log/lab/{w.exit}.exit"])]
        host = w.rst_from or w.fin_from or ""
        what = "an RST" if w.rst_from else "a FIN"
        pcap = f"{files}/capture/{host}.pcap"  # a compose file's captures write each packet as it crosses
        return [Note(f"until {host} sends {what} (lab up gives up after {step.timeout:g} s); it shows in {pcap}:"),
                OnMachine(["tcpdump", "-nr", pcap, "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0"])]


def peer_timer(run: LabRun, host: str) -> tuple[str, float] | None:
    """The host's FIN_WAIT_2 timer, if its peer kind resets one and its FIN was seen: what it is and when it
    ends (its FIN's time on the capture plus the timer)."""
    peer = run.lab.hosts[host].peer
    seconds = peer_kind(peer.os).fin_wait2_reset(peer.fin_wait2_timeout)
    fin = run.fin_seen.get(host)
    if seconds is None or fin is None:
        return None
    return f"{host}'s FIN_WAIT_2 timer ({seconds:g} s from its FIN)", fin + seconds


def wait_seconds(run: LabRun, seconds: float) -> str:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, HEALTH_EVERY))
        run.check_health()  # a host that dies during a long wait ends the run now, not at the end
    return f"waited {seconds:g} s"


def wait_exit(run: LabRun, host: str, prog: str, timeout: float) -> str:
    """Until the story program ``prog`` ends (labrun's watcher says so); its time is the watcher's."""
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + HEALTH_EVERY
    while (status := run.exit_status(host, prog)) is None:
        if time.monotonic() > deadline:
            output = run.program_output(host, prog)
            raise StepFailure(f"{host}: program {prog} did not exit within {timeout:g} s; {last_lines_of(output)}")
        if time.monotonic() > next_check:
            run.check_health()
            next_check = time.monotonic() + HEALTH_EVERY
        time.sleep(POLL)
    return f"{prog} exited with {describe_status(status)}"


def wait_packet(run: LabRun, host: str, flag: int, what: str, timeout: float) -> str:
    """Until the host's capture shows a packet from it with ``flag`` that no earlier wait has counted."""
    key = (host, what)
    deadline = time.monotonic() + timeout
    ip = run.ips[host]
    next_check = time.monotonic() + HEALTH_EVERY
    while True:
        if time.monotonic() > next_check:
            run.check_health()
            next_check = time.monotonic() + HEALTH_EVERY
        for p in run.tails[host].new_packets():
            if p.src == ip and p.flags & FIN:
                run.fin_seen.setdefault(host, p.ts)  # when its FIN_WAIT_2 timer may start (a countdown says)
            if p.src == ip and p.flags & flag:
                run.seen[key] = run.seen.get(key, 0) + 1
        if run.seen.get(key, 0) > run.consumed.get(key, 0):
            run.consumed[key] = run.consumed.get(key, 0) + 1
            return f"{what} from {host} seen"
        if time.monotonic() > deadline:
            raise StepFailure(f"no {what} from {host} within {timeout:g} s")
        time.sleep(POLL)


register(WaitPlayer())
