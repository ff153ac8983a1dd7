"""``lab up --step``: before each step, say what it will do and what to look for, then wait to be let go.

A step is let go by Enter on the terminal of ``lab up`` or by ``lab step LAB`` from another one, which
writes a line into the run directory's FIFO (:attr:`tcplab.rundir.RunDir.step_gate`). The gate holds the
FIFO open for reading *and* writing, so it never sees an end of file when no ``lab step`` has it open:
``select`` then blocks until a line comes on either, with no polling. Each line lets one step go.
"""
from __future__ import annotations

import os
import select
import stat
import textwrap
from typing import Callable, TextIO

from ..model.lab import Expectation, Lab, Step, step_explain, step_name, step_title
from ..rundir import RunDir

Say = Callable[[str], None]
WIDTH = 88


class NotStepping(Exception):
    """``lab step`` found no stepping ``lab up`` for the lab."""


def anchored(lab: Lab, index: int) -> list[Expectation]:
    """The expectations timed from the step at ``index`` (``after``/``near``/``at`` naming it or its position,
    or naming an expectation that is itself timed from it): what to look for once it has played."""
    names = {step_name(lab.steps[index], index), f"steps.{index}"}
    by_name = {e.name: e for e in lab.expect}

    def anchor_of(e: Expectation) -> str | None:
        m = e.match
        return getattr(m, "after", None) or getattr(m, "near", None) or getattr(m, "at", None)

    def from_step(e: Expectation) -> bool:
        seen: set[str] = set()
        a = anchor_of(e)
        while a is not None and a not in names and a in by_name and a not in seen:
            seen.add(a)
            a = anchor_of(by_name[a])
        return a in names

    return [e for e in lab.expect if from_step(e)]


def announce(lab: Lab, index: int, step: Step) -> list[str]:
    """What ``lab up --step`` says before the step: its number and title, the lab's explanation, what to
    look for (the ``about`` lines of the expectations timed from it)."""
    lines = [f"next: step {index}: {step_title(step)} ({index + 1} of {len(lab.steps)})"]
    explain = step_explain(step)
    if explain is not None:
        lines += ["  " + w for w in textwrap.wrap(" ".join(explain.split()), WIDTH - 2)]
    looks = [e.about or e.name for e in anchored(lab, index)]
    if looks:
        lines.append("  look for:")
        lines += [f"    - {line}" for line in looks]
    return lines


class StepGate:
    """The pause before each step of a stepping ``lab up``: :meth:`before` says the step and blocks until
    Enter on ``terminal`` or a line in the run directory's FIFO. :meth:`close` removes the FIFO."""

    def __init__(self, rd: RunDir, lab: Lab, say: Say, terminal: TextIO | None = None) -> None:
        self.rd = rd
        self.lab = lab
        self.say = say
        self.terminal = terminal
        path = rd.step_gate
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        os.mkfifo(path, 0o600)
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.pending = b""

    def before(self, index: int, step: Step) -> None:
        for line in announce(self.lab, index, step):
            self.say(line)
        self.say(f"press Enter to play it (or `lab step {self.lab.name}` from another terminal)"
                 if self.terminal is not None else f"`lab step {self.lab.name}` plays it")
        self.wait()

    def wait(self) -> None:
        """Until one line comes on the terminal or the FIFO (a line already there lets go at once)."""
        while True:
            if self._take_line():
                return
            fds = [self.fd] if self.fd is not None else []
            if self.terminal is not None:
                fds.append(self.terminal.fileno())
            ready, _, _ = select.select(fds, [], [])
            if self.terminal is not None and self.terminal.fileno() in ready:
                if self.terminal.readline() != "":
                    return
                self.terminal = None  # the terminal's end: only `lab step` lets steps go now
            if self.fd is not None and self.fd in ready:
                try:
                    self.pending += os.read(self.fd, 4096)
                except BlockingIOError:
                    pass

    def _take_line(self) -> bool:
        line, nl, rest = self.pending.partition(b"\n")
        if not nl:
            return False
        self.pending = rest
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            self.rd.step_gate.unlink()
        except FileNotFoundError:
            pass


def let_go(rd: RunDir) -> None:
    """``lab step``: let the stepping ``lab up`` of this run play its next step. NotStepping when it is not
    stepping (no FIFO: no ``--step``, or its steps are done)."""
    path = rd.step_gate
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise NotStepping(f"{path} is not the FIFO of a stepping lab up")
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO: nobody reads it (its lab up is gone)
    except FileNotFoundError:
        raise NotStepping("it is not being played with --step (or its steps are done)") from None
    except OSError as e:
        raise NotStepping(f"its lab up --step does not answer ({e.strerror})") from None
    try:
        os.write(fd, b"\n")
    finally:
        os.close(fd)
