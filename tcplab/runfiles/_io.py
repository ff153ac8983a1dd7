"""How the run files are read and written, shared by the one module of each file (nobody else uses this).

Writing: a JSON document replaces the file atomically (a reader never sees half of it); a JSONL record is
one ``write`` of one line. Reading is tolerant, because a run directory may come from a crash, an older
tcplab or a CI artifact: a missing or unreadable file is ``default``; a JSONL line cut by a crash, or one
that does not fit the schema, is skipped; a document entry that does not fit is left out and the rest kept.
The schemas are TypedDicts validated by pydantic (in Rust, straight from the JSON text), so a reader hands
out plain dicts whose shape is known, no slower than ``json.loads``.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

# every schema keeps the fields it does not know: a run of a newer tcplab is read, not refused; its validator is
# built when first used (a command that imports a run file's module may never read that file)
OPEN = ConfigDict(extra="allow", defer_build=True)
DEFERRED = ConfigDict(defer_build=True)  # for a schema's outer type that is no TypedDict (a dict of them, a union)

T = TypeVar("T")
D = TypeVar("D")

_APPEND = threading.Lock()  # JSONL writers may run in several threads (one per host at collection)


def write_json(path: Path, data: Any, *, ensure_ascii: bool = True) -> None:
    """The whole document, replacing the file at once."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=ensure_ascii) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Records appended as lines, in order, none interleaved with another thread's."""
    if not records:
        return
    text = "".join(json.dumps(r, default=str) + "\n" for r in records)
    with _APPEND, open(path, "a") as f:
        f.write(text)


def read_document(path: Path, schema: TypeAdapter[T], default: D) -> T | D:
    """A JSON document as its schema reads it; entries (top-level keys) that do not fit are left out."""
    try:
        text = path.read_bytes()
    except OSError:
        return default
    try:
        return schema.validate_json(text)
    except ValidationError:
        pass
    try:
        data = json.loads(text)
    except ValueError:
        return default
    return fitting(data, schema, default)


def fitting(data: Any, schema: TypeAdapter[T], default: D) -> T | D:
    """``data`` validated, without the top-level entries the schema refuses; ``default`` when nothing fits."""
    for _ in range(2):
        try:
            return schema.validate_python(data)
        except ValidationError as e:
            if not isinstance(data, dict):
                return default
            bad = {err["loc"][0] for err in e.errors() if err["loc"]}
            if not bad & set(data):
                return default
            data = {k: v for k, v in data.items() if k not in bad}
    return default


def read_lines(path: Path, schema: TypeAdapter[T]) -> Iterator[tuple[int, T]]:
    """``(line number, record)`` of a JSONL file, 1-based; lines that are cut or do not fit are skipped."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, schema.validate_json(line)
            except ValidationError:
                continue  # a line cut by a crash, or not a record of this file


def read_new_lines(path: Path, schema: TypeAdapter[T], offset: int) -> tuple[list[T], int]:
    """The records of the complete lines written since byte ``offset`` of a growing JSONL file, and the offset
    to read from next (a line still being written waits for its newline); a missing file is no record."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records: list[T] = []
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            records.append(schema.validate_json(line))
        except ValidationError:
            continue
    return records, offset + end
