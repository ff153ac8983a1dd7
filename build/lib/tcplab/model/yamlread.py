"""Reading a lab file's YAML as hostile input: bounded in size, depth and expansion.

A lab file may come from anyone (a bug report, a CI artifact). Before a value
reaches the model it must be cheap to hold and to print:

- at most ``MAX_FILE_BYTES`` (checked on the bytes, before any parsing);
- brackets nested at most ``MAX_DEPTH`` deep (checked on the text: libyaml's
  scanner is quadratic in flow depth and its composer recurses in C, so a
  300 000-deep ``[[[...`` takes minutes, then crashes the process);
- at most ``MAX_NODES`` values once aliases are expanded (checked on the event
  stream, with integer arithmetic only: a kilobyte of nested ``*alias`` lists,
  the "billion laughs", would otherwise make validation or an error message
  walk 10^9 values);
- a key given twice is an error naming its path and both lines (PyYAML keeps
  the last silently).

The fast C parser is used when PyYAML has it; an error is described from the
pure-Python parser so the message is the same wherever tcplab runs.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import LabError
from .messages import render_path

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000

_FastLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BRACKETS = re.compile(r"[\[\]{}]")


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    # duplicates were refused (with their path) before construction; keys are scalars
    return {loader.construct_object(k, deep=deep): loader.construct_object(v, deep=deep) for k, v in node.value}


class _SlowLoader(yaml.SafeLoader):
    """Pure-Python SafeLoader: its error messages are the same on every installation."""


class _Loader(_FastLoader):  # type: ignore[misc]
    """SafeLoader (libyaml's when present) whose mappings were checked for duplicate keys first."""


for _cls in (_SlowLoader, _Loader):
    _cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def decode(raw: bytes, file: str) -> str:
    """UTF-8 text, or a LabError naming the line of the first byte that is not."""
    if len(raw) > MAX_FILE_BYTES:
        raise LabError(file, "", f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; a lab file is a few KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise LabError(file, f"line {line}",
                       f"byte 0x{raw[e.start]:02x} is not UTF-8: save the file as UTF-8") from None


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


def _check_brackets(text: str, file: str) -> None:
    depth = 0
    for m in _BRACKETS.finditer(text):
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise LabError(file, _line_col(text, m.start()), f"brackets nested deeper than {MAX_DEPTH} levels")


def _check_events(text: str, file: str) -> None:
    """Depth and expanded size from the event stream; no value is built or expanded."""
    open_: list[list[Any]] = []  # [values inside, anchor, start mark] of each open collection
    sizes: dict[str, int] = {}
    top = 0

    def add(n: int, mark: Any) -> None:
        nonlocal top
        if open_:
            open_[-1][0] += n
            total = open_[-1][0]
        else:
            top += n
            total = top
        if total > MAX_NODES:
            where = f"line {mark.line + 1}" if mark is not None else ""
            raise LabError(file, where, f"holds more than {MAX_NODES} values once its aliases (*name) are expanded")

    for ev in yaml.parse(text, Loader=_FastLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_.append([0, ev.anchor, ev.start_mark])
            if len(open_) > MAX_DEPTH:
                where = f"line {ev.start_mark.line + 1}" if ev.start_mark is not None else ""
                raise LabError(file, where, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            inside, anchor, mark = open_.pop()
            if anchor:
                sizes[anchor] = inside + 1
            add(inside + 1, mark)
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.anchor:
                sizes[ev.anchor] = 1
            add(1, ev.start_mark)
        elif isinstance(ev, yaml.AliasEvent):
            add(sizes.get(ev.anchor or "", 1), ev.start_mark)


def _check_keys(node: yaml.Node, path: list[Any], file: str, seen: set[int]) -> None:
    """Every key a plain value, none twice in one mapping (depth is bounded by _check_events)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                line = k.start_mark.line + 1
                kind = "list" if isinstance(k, yaml.SequenceNode) else "mapping"
                raise LabError(file, render_path(path) or f"line {line}",
                               f"a key must be a plain name, not a {kind} (line {line})")
            here = [*path, k.value]
            if (k.tag, k.value) in lines:
                raise LabError(file, render_path(here),
                               f"given twice (lines {lines[(k.tag, k.value)]} and {k.start_mark.line + 1}): keep one "
                               "(YAML would silently use the last)")
            lines[(k.tag, k.value)] = k.start_mark.line + 1
            _check_keys(v, here, file, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, [*path, i], file, seen)


_HINTS = (
    ("found character '\\t' that cannot start any token", "tabs cannot indent YAML; use spaces"),
    ("found undefined alias", None),
    ("expected <block end>", " (check the indentation)"),
    ("mapping values are not allowed here", " (a value with ': ' in it must be quoted)"),
    ("expected ',' or '}'", " (a '{' not closed?)"),
    ("expected ',' or ']'", " (a '[' not closed?)"),
)


def _yaml_message(e: yaml.YAMLError, text: str) -> tuple[str, str]:
    """(where, what) for a YAML error, in the words of the pure-Python parser."""
    if isinstance(e, yaml.reader.ReaderError):
        char = chr(e.character) if isinstance(e.character, int) else str(e.character)
        return _line_col(text, e.position), f"YAML: the control character {char!r} is not allowed in a lab file"
    if not isinstance(e, yaml.MarkedYAMLError):
        return "", f"YAML: {str(e).splitlines()[0]}"
    mark = e.problem_mark or e.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = str(e.problem or e.context or "").strip()
    tag = re.match(r"could not determine a constructor for the tag '(.*)'", problem)
    if tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        return where, f"YAML: the tag '{name}' is not allowed in a lab file (plain YAML only)"
    if "mapping values are not allowed here" in problem and mark is not None and mark.column > 1024:
        return where, "YAML: a key longer than 1024 characters (YAML's limit; a name here has at most 31)"
    if "found another document" in problem:
        return where, "YAML: a second document ('---'): a lab file is one document"
    for needle, hint in _HINTS:
        if needle in problem:
            if hint is None:
                alias = problem.rsplit("'", 2)[-2] if problem.count("'") >= 2 else "?"
                return where, f"YAML: *{alias} refers to no &{alias} anchor defined before it"
            return where, ("YAML: " + hint) if not hint.startswith(" ") else f"YAML: {problem}{hint}"
    return where, f"YAML: {problem}"


def _describe(e: yaml.YAMLError, text: str, file: str) -> LabError:
    try:  # the pure-Python parser's words, the same wherever tcplab runs
        for _ in yaml.parse(text, Loader=_SlowLoader):
            pass
        loader = _SlowLoader(text)
        try:
            loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as slow:
        e = slow
    where, what = _yaml_message(e, text)
    return LabError(file, where, what)


def load(text: str, file: str) -> Any:
    """The document of ``text``, within the limits above; LabError otherwise."""
    _check_brackets(text, file)
    try:
        _check_events(text, file)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_keys(node, [], file, set())
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise _describe(e, text, file) from None
