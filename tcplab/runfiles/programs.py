"""``programs.jsonl``: the story programs as events, one line each, in the order they were written.

``{"event": "start", "host", "name", "pid", "argv", "step", "time"}``
    when tcplab asked labrun to start it (``step``: the step's index; null for the host's own program)
``{"event": "exit", "host", "name", "pid", "status", "signal", "time"}``
    when it ended, by the container's clock (the host's: the same clock as the captures); ``status`` as a
    shell says it (128+N: signal N), ``signal`` its name when above 128, else null
``{"event": "running", "host", "name", "pid", "time"}``
    still running when the run collected its artifacts: it has no exit status
``{"event": "output", "host", "name", "file", "bytes", "lines", "time"}``
    its output, collected (at ``time``) into ``file`` (``logs/programs/HOST.NAME.log``)

Starts are written as the steps play, the rest at collection (:mod:`tcplab.observe.programs` makes them
from what labrun left in the host); what they mean together is :func:`tcplab.observe.programs.read_programs`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, with_config
from typing_extensions import Required, TypedDict

from ..rundir import RunDir
from ._io import DEFERRED, OPEN, append_jsonl, read_lines

NAME = "programs.jsonl"



@with_config(OPEN)
class StartEvent(TypedDict, total=False):
    event: Required[Literal["start"]]
    host: str
    name: Required[str]  # a start step's ``as``, or the host's own program's name
    pid: int | None
    argv: list[str]
    step: int | None
    time: float


@with_config(OPEN)
class ExitEvent(TypedDict, total=False):
    event: Required[Literal["exit"]]
    host: str
    name: Required[str]
    pid: int | None
    status: int | None
    signal: str | None
    time: float


@with_config(OPEN)
class RunningEvent(TypedDict, total=False):
    event: Required[Literal["running"]]
    host: str
    name: Required[str]
    pid: int | None
    time: float


@with_config(OPEN)
class OutputEvent(TypedDict, total=False):
    event: Required[Literal["output"]]
    host: str
    name: Required[str]
    file: str  # relative to the run directory
    bytes: int
    lines: int
    time: float


ProgramEvent = Annotated[Union[StartEvent, ExitEvent, RunningEvent, OutputEvent], Field(discriminator="event")]
SCHEMA: TypeAdapter[ProgramEvent] = TypeAdapter(ProgramEvent, config=DEFERRED)


def exists(rd: RunDir) -> bool:
    return rd.programs_jsonl.is_file()


def append(rd: RunDir, events: list[ProgramEvent]) -> None:
    """Events at the end of the file, in order (collection writes from one thread per host)."""
    for e in events:
        SCHEMA.validate_python(e)
    append_jsonl(rd.programs_jsonl, [dict(e) for e in events])


def read(rd: RunDir) -> list[tuple[int, ProgramEvent]]:
    """``(line, event)`` for every event the run recorded, in file order."""
    return list(read_lines(rd.programs_jsonl, SCHEMA))
