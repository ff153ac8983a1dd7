"""A step player: how one kind of step plays on a running lab, and how a person plays it by hand.

Each kind of step of the model (:data:`tcplab.model.lab.STEP_KINDS`) has one
player, in a module of this package that registers it; :func:`player_for`
finds it. A player gets the run (:class:`tcplab.play.session.LabRun`) and uses
what it offers: commands in a host, the story programs, snapshots, the
captures as they grow, the hosts' health.
"""
from __future__ import annotations

import time

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, TypeVar

from ...model.lab import BaseStep, Lab

if TYPE_CHECKING:
    from ...observe.programs import ProgramOutput
    from ..session import LabRun

POLL = 0.01  # seconds between looks at what a step waits for
HEALTH_EVERY = 0.5  # seconds between host health checks while a step waits


@dataclass(frozen=True)
class InHost:
    """A command typed into a host (``docker-compose exec -T HOST argv...``)."""
    host: str
    argv: list[str]


@dataclass(frozen=True)
class OnMachine:
    """A command typed on the machine that holds the run's files."""
    argv: list[str]


@dataclass(frozen=True)
class Note:
    """A line for the person typing: what to wait for, where to look."""
    text: str


HandLine = InHost | OnMachine | Note


@dataclass(frozen=True)
class Countdown:
    """What a long wait shows a person while it waits (``lab up`` on a terminal): what it waits for, when it
    gives up, and the timer that should end it, if one is known (a Windows peer's FIN_WAIT_2 timer)."""
    what: str
    gives_up: float  # epoch seconds
    timer: str | None = None  # "win's FIN_WAIT_2 timer (2m)"
    timer_ends: float | None = None  # epoch seconds


# Shows a countdown for as long as the context lasts (set by the CLI when its stderr is a terminal).
ShowCountdown = Callable[[Countdown], AbstractContextManager[object]]
LONG_WAIT = 3.0  # seconds: shorter waits show no countdown


def countdown(run: LabRun, c: Countdown) -> AbstractContextManager[object]:
    """The run's countdown display for ``c`` while a wait lasts; nothing when it has none or the wait is short."""
    show: ShowCountdown | None = getattr(run, "show_countdown", None)
    if show is None or c.gives_up - time.time() < LONG_WAIT:
        return nullcontext()
    return show(c)
S = TypeVar("S", bound=BaseStep)


class StepPlayer(Generic[S]):
    """Plays the steps of one kind. Subclasses set ``kind`` and implement :meth:`play`."""

    kind: ClassVar[type[BaseStep]]

    def play(self, run: LabRun, step: S, index: int) -> str:
        """Play the step at ``index``; what happened, in a few words (steps.jsonl's ``detail``).
        StepFailure when it cannot be played, HostFailure when a host died meanwhile."""
        raise NotImplementedError

    def time_limit(self, step: S) -> float | None:
        """The longest the step may take, said as it begins; None: it has no limit of its own."""
        return None

    def by_hand(self, step: S, lab: Lab, files: str) -> list[HandLine]:
        """What a person types to play the step without tcplab (``lab export`` writes it as comments);
        ``files`` is where the run's files are, as the person sees them (``./runs/<lab>``)."""
        return []


PLAYERS: dict[type[BaseStep], StepPlayer[Any]] = {}


def register(player: StepPlayer[S]) -> StepPlayer[S]:
    """Make ``player`` the one that plays steps of its ``kind``."""
    if player.kind in PLAYERS:
        raise ValueError(f"two players for {player.kind.__name__}")
    PLAYERS[player.kind] = player
    return player


def player_for(step: BaseStep) -> StepPlayer[Any]:
    """The player of ``step``'s kind; LookupError for a kind no module of tcplab/play/steps registers."""
    try:
        return PLAYERS[type(step)]
    except KeyError:
        raise LookupError(f"no player for a {type(step).__name__}: add one in tcplab/play/steps/") from None


def last_lines_of(output: ProgramOutput) -> str:
    """The program's last lines, for a one-line message: ``its last lines: "a" | "b"``."""
    output.poll()  # what it printed last, as it ended or timed out
    return output.last_lines()
