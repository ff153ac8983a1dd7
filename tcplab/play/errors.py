"""How playing a lab fails: the host side (exit status 3) or a step of the story."""
from __future__ import annotations

from ..backend.base import EngineError


class HostFailure(EngineError):
    """A host or a sidecar died while the lab ran (exit status 3). A story program that exits is no
    failure: its exit is an event of the story (programs.jsonl)."""


class StepFailure(EngineError):
    """A step could not be played: its program did not become ready (or exited first), a wait timed out."""


class TeardownIncomplete(EngineError):
    """The run was collected, but the engine would not remove all of its objects (a Docker 20.10 engine under
    load now and then keeps a network "with active endpoints" that no container holds): the evidence is whole
    and can be judged; the leftover is the engine's, and still a broken environment (exit status 3)."""
