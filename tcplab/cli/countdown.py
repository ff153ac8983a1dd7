"""A long wait's countdown on the terminal of `lab up` and `lab run` (stderr, only when it is a terminal).

It is one rich line under what the command says, redrawn four times a second by rich's own thread and gone
when the wait ends: ``waiting for an RST from win: gives up in 148 s | win's FIN_WAIT_2 timer (120 s from its
FIN) ends in 97 s``. Output that is no terminal never sees it.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from rich.text import Text

    from ..play.steps.base import Countdown, ShowCountdown


def _seconds(left: float) -> str:
    return f"{max(0.0, left):.0f} s"


class _Line:
    def __init__(self, c: Countdown) -> None:
        self.c = c

    def __rich__(self) -> Text:
        from rich.text import Text

        now = time.time()
        line = Text(f"  {self.c.what}: gives up in {_seconds(self.c.gives_up - now)}", style="dim")
        if self.c.timer is not None and self.c.timer_ends is not None:
            left = self.c.timer_ends - now
            line.append(f"  |  {self.c.timer} " + (f"ends in {_seconds(left)}" if left > 0 else
                                                     f"ended {_seconds(-left)} ago"), style="bold")
        return line


@contextmanager
def terminal_countdown(c: Countdown) -> Iterator[None]:
    from rich.console import Console
    from rich.live import Live

    with Live(_Line(c), console=Console(stderr=True, highlight=False), refresh_per_second=4, transient=True):
        yield


def for_stderr() -> ShowCountdown | None:
    """The countdown display when stderr is a terminal, else None (logs and pipes get no redrawn line)."""
    return terminal_countdown if sys.stderr.isatty() else None
