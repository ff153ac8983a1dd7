"""``steps.jsonl``: one line per step played, written as each step ends (so a crash keeps those before it).

``{"index": 3, "name": "stop-telnet2", "kind": "stop", "title": "win closes telnet2", "host": "win",
"start": 1795508890.1, "end": 1795508890.2, "outcome": "ok", "detail": "sent SIGTERM"}``; ``outcome`` is
``ok``, ``failed`` or ``interrupted``.
"""
from __future__ import annotations

from pydantic import TypeAdapter, with_config
from typing_extensions import Required, TypedDict

from ..rundir import RunDir
from ._io import OPEN, append_jsonl, read_lines, read_new_lines

NAME = "steps.jsonl"


@with_config(OPEN)
class StepCommand(TypedDict, total=False):
    argv: list[str]
    exit: int


@with_config(OPEN)
class StepRecord(TypedDict, total=False):
    index: Required[int]  # the step's position in the lab's steps
    name: str  # its stable name: a snapshot's, start-<as>, stop-<program>, wait-<index>
    kind: str  # start, stop, send, snapshot, wait
    title: str
    explain: str  # the lab's explanation of the step, for teaching (absent when it gives none)
    host: str | None
    start: float
    end: float
    outcome: str  # ok, failed, interrupted
    detail: str  # what happened, or why it failed
    commands: list[StepCommand]  # the commands it ran on the lab's behalf (a firewall step's iptables)
    cpu_stalled: float  # seconds of the step during which a task of the machine waited for a CPU (its pressure
    # stall information); absent where the engine is elsewhere or the kernel does not say


SCHEMA: TypeAdapter[StepRecord] = TypeAdapter(StepRecord)


def append(rd: RunDir, record: StepRecord) -> None:
    """One step played; a record that does not fit the schema is a ValueError (the reader would skip it)."""
    SCHEMA.validate_python(record)
    append_jsonl(rd.steps_jsonl, [dict(record)])


def read(rd: RunDir) -> list[StepRecord]:
    """The steps played, in the order they were; empty for a run that played none."""
    return [r for _, r in read_lines(rd.steps_jsonl, SCHEMA)]


def follow(rd: RunDir, offset: int) -> tuple[list[StepRecord], int]:
    """The steps that ended since byte ``offset`` of the file, and where to read from next (a live view)."""
    return read_new_lines(rd.steps_jsonl, SCHEMA, offset)
