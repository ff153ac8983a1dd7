"""``result.json``: the verdicts of ``lab run`` (``tcplab.analysis.results.result_document`` makes them).

A run of ``lab up`` has none. Older runs wrote neither ``status``, ``missing`` nor ``counts.error``: their
verdicts were held or failed (``held``).
"""
from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter, with_config
from typing_extensions import TypedDict

from ..rundir import RunDir
from ._io import OPEN, read_document, write_json

NAME = "result.json"



@with_config(OPEN)
class VerdictRecord(TypedDict, total=False):
    name: str
    about: str
    kind: str  # packet, state, transition, program; step
    status: str  # held, failed, error
    held: bool
    expected: str
    seen: str
    where: str
    message: str  # the one line the terminal and junit.xml print
    missing: str  # an error: the evidence that was missing


@with_config(OPEN)
class Counts(TypedDict, total=False):
    held: int
    failed: int
    error: int


@with_config(OPEN)
class CpuDuringStory(TypedDict, total=False):
    waited: float  # seconds of the steps during which a task of the machine waited for a CPU
    story: float  # seconds of the steps that recorded it
    share: float  # waited / story
    short: bool  # half the story or more: a timing that failed may be the machine's


@with_config(OPEN)
class ResultDocument(TypedDict, total=False):
    lab: str
    run: str
    passed: bool
    counts: Counts
    expectations: list[VerdictRecord]
    cpu: CpuDuringStory  # absent where it was not recorded (an engine elsewhere, a kernel without PSI)


SCHEMA: TypeAdapter[ResultDocument] = TypeAdapter(ResultDocument)


def write(target: RunDir | Path, doc: ResultDocument) -> Path:
    """The verdicts, into the run directory (or a file of the caller's); returns the path written."""
    SCHEMA.validate_python(doc)
    path = target.result_json if isinstance(target, RunDir) else Path(target)
    write_json(path, doc, ensure_ascii=False)
    return path


def read(rd: RunDir) -> ResultDocument | None:
    """The verdicts; None when the run has none (``lab up``) or the file cannot be read."""
    doc = read_document(rd.result_json, SCHEMA, None)
    return doc if doc else None
