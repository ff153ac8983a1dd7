"""Loading a lab: YAML text -> overrides (``--set``) -> validated :class:`Lab`.

Every error becomes a :class:`LabError` naming the file and the field by its
dotted path (``hosts.win.peer.syn``), in the manner of netlab's validator.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from .errors import LabError
from .lab import STEP_KINDS, Lab, SendStep, SnapshotStep, StartStep, StopStep, WaitStep

MAX_FILE_BYTES = 1 << 20
_NAME_RULE = "lowercase letters, digits, '-' or '_', starting with a letter, at most 31 characters"
_PATTERN_HINTS = {
    r"^[a-z][a-z0-9_-]{0,30}$": "must be " + _NAME_RULE,
    r"^tcplab/[a-z0-9][a-z0-9_-]{0,40}$": "must be an image of this project, like tcplab/client",
    r"^[1-9][0-9]{0,5}[kmg]$": "must be a size like 256m or 1g",
}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, file: str) -> dict[str, Any]:
    """The lab file's mapping, or a LabError with the line of the problem."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise LabError(file, "", f"file is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}" if mark else "yaml"
        raise LabError(file, where, f"YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise LabError(file, "", f"YAML: {e}") from None
    if data is None:
        raise LabError(file, "", "the file is empty")
    if not isinstance(data, dict):
        raise LabError(file, "", f"a lab file is a mapping (name, hosts, steps...), not a {type(data).__name__}")
    return data


# --- --set overrides -----------------------------------------------------

_SET_RE = re.compile(r"^([A-Za-z0-9_.-]+)=(.*)$", re.S)


def _alias(path: list[str]) -> list[str]:
    """``peers.win.X`` is short for ``hosts.win.peer.X``."""
    if len(path) >= 2 and path[0] == "peers":
        return ["hosts", path[1], "peer", *path[2:]]
    return path


def apply_set(data: dict[str, Any], assignment: str, file: str) -> dict[str, Any]:
    """A copy of ``data`` with one ``KEY=VALUE`` applied; VALUE is read as a YAML scalar/flow value."""
    m = _SET_RE.match(assignment)
    if not m or not m.group(1) or ".." in m.group(1) or m.group(1).startswith(".") or m.group(1).endswith("."):
        raise LabError(file, f"--set {assignment}", "expected KEY=VALUE with KEY a dotted path like hosts.win.peer.syn")
    path = _alias(m.group(1).split("."))
    try:
        value = yaml.load(m.group(2), Loader=_UniqueKeyLoader) if m.group(2) != "" else ""  # noqa: S506
    except yaml.YAMLError:
        value = m.group(2)
    out = copy.deepcopy(data)
    node: Any = out
    for i, key in enumerate(path[:-1]):
        here = ".".join(path[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise LabError(file, here, f"--set: no item {key} in a list of {len(node)}")
            node = node[int(key)]
        elif isinstance(node, dict):
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]
        else:
            raise LabError(file, here, "--set: this field holds a value, not fields")
        if not isinstance(node, (dict, list)):
            raise LabError(file, here, "--set: this field holds a value, not fields")
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise LabError(file, ".".join(path), f"--set: no item {last} in a list of {len(node)}")
        node[int(last)] = value
    else:
        node[last] = value
    return out


# --- validation ----------------------------------------------------------

def _field_path(loc: Iterable[Any]) -> str:
    parts: list[str] = []
    prev: Any = None
    for item in loc:
        # the step union adds its tag after the index: steps.2.start.host -> steps.2.host
        if isinstance(prev, int) and parts[:1] == ["steps"] and len(parts) == 2 and item in STEP_KINDS:
            prev = item
            continue
        parts.append(str(item))
        prev = item
    return ".".join(parts)


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if kind == "extra_forbidden":
        return f"unknown field '{err['loc'][-1]}'"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(ctx.get("pattern", ""), "has characters that are not allowed here")
        return f"{_short(given)} {hint}"
    if kind == "literal_error":
        return f"{_short(given)} is not one of {ctx.get('expected')}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    return f"{_short(given)}: {err['msg'][0].lower()}{err['msg'][1:]}" if given is not None else err["msg"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(data: dict[str, Any], file: str) -> Lab:
    try:
        lab = Lab.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]  # pydantic reports in field order: the first is the one to fix first
        raise LabError(file, _field_path(first["loc"]), _message(first)) from None
    check_references(lab, file)
    return lab


def check_references(lab: Lab, file: str, known_images: set[str] | None = None) -> None:
    """Cross-field rules pydantic cannot see: hosts named in steps exist, names are unique..."""
    hosts = lab.hosts
    if known_images is not None:
        for name, host in hosts.items():
            if host.image not in known_images:
                raise LabError(file, f"hosts.{name}.image",
                               f"unknown image '{host.image}' (known: {', '.join(sorted(known_images))})")
    subnet = lab.network.subnet
    seen_ips: dict[str, str] = {}
    for name in hosts:
        ip = lab.host_ip(name)
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address, subnet.network_address + 1):
            raise LabError(file, f"hosts.{name}.ip", f"{ip} is not a usable host address of {subnet}")
        if str(ip) in seen_ips:
            raise LabError(file, f"hosts.{name}.ip", f"{ip} is also the address of host '{seen_ips[str(ip)]}'")
        seen_ips[str(ip)] = name
    for name, host in hosts.items():
        peer = host.peer
        if not peer.windows and (peer.fin_wait2_timeout is not None):
            raise LabError(file, f"hosts.{name}.peer.fin_wait2_timeout",
                           "only a Windows peer has this timer (set peer.os: windows, or use tcp_fin_timeout)")
        if peer.windows and peer.fin_wait2_timeout is not None and peer.fin_wait2_timeout < 0.05:
            raise LabError(file, f"hosts.{name}.peer.fin_wait2_timeout", "must be at least 50ms")
    started: dict[tuple[str, str], int] = {}
    snapshots: set[str] = set()
    for name, host in hosts.items():
        if host.program:
            started[(name, host.program.name)] = -1
    for i, step in enumerate(lab.steps):
        where = f"steps.{i}"
        host = getattr(step, "host", None)
        if host is not None and host not in hosts:
            raise LabError(file, f"{where}.host", f"unknown host '{host}' (hosts: {', '.join(hosts)})")
        if isinstance(step, StartStep):
            if (step.host, step.as_) in started:
                raise LabError(file, f"{where}.as", f"a program '{step.as_}' is already started on {step.host}")
            started[(step.host, step.as_)] = i
        elif isinstance(step, (StopStep, SendStep)):
            prog = step.stop if isinstance(step, StopStep) else step.send
            field = "stop" if isinstance(step, StopStep) else "send"
            if (step.host, prog) not in started:
                raise LabError(file, f"{where}.{field}", f"no program '{prog}' was started on {step.host} before this step")
            if isinstance(step, StopStep):
                del started[(step.host, prog)]
        elif isinstance(step, SnapshotStep):
            if step.snapshot in snapshots or step.snapshot == "end":
                raise LabError(file, f"{where}.snapshot", f"snapshot name '{step.snapshot}' is used twice ('end' is taken)")
            snapshots.add(step.snapshot)
        elif isinstance(step, WaitStep):
            w = step.wait
            given = [k for k in ("rst_from", "fin_from", "seconds") if getattr(w, k) is not None]
            if len(given) != 1:
                raise LabError(file, f"{where}.wait", "give exactly one of rst_from, fin_from, seconds")
            for k in ("rst_from", "fin_from"):
                h = getattr(w, k)
                if h is not None and h not in hosts:
                    raise LabError(file, f"{where}.wait.{k}", f"unknown host '{h}' (hosts: {', '.join(hosts)})")
            if w.seconds is not None and w.seconds > step.timeout:
                raise LabError(file, f"{where}.timeout", "is shorter than the wait itself")
    names: set[str] = set()
    snapshots.add("end")
    step_names = {f"steps.{i}" for i in range(len(lab.steps))}
    for i, exp in enumerate(lab.expect):
        where = f"expect.{i}"
        given = [k for k in ("packet", "state", "transition") if getattr(exp, k) is not None]
        if len(given) != 1:
            raise LabError(file, where, "an expectation has exactly one of: packet, state, transition")
        if exp.name:
            if exp.name in names:
                raise LabError(file, f"{where}.name", f"expectation name '{exp.name}' is used twice")
            names.add(exp.name)
        body = getattr(exp, given[0])
        for field in ("from_", "to", "host", "peer"):
            h = getattr(body, field, None)
            if h is not None and h not in hosts:
                raise LabError(file, f"{where}.{given[0]}.{field.rstrip('_')}", f"unknown host '{h}' (hosts: {', '.join(hosts)})")
        if exp.state is not None:
            if exp.state.at not in snapshots:
                raise LabError(file, f"{where}.state.at", f"no snapshot '{exp.state.at}' (snapshots: {', '.join(sorted(snapshots))})")
            if exp.state.absent == (exp.state.is_ is not None):
                raise LabError(file, f"{where}.state", "give exactly one of 'is: STATE' or 'absent: true'")
        anchor = getattr(body, "after", None) or getattr(body, "near", None)
        if anchor is not None and anchor not in names and anchor not in snapshots and anchor not in step_names:
            raise LabError(file, f"{where}.{given[0]}.{'after' if getattr(body, 'after', None) else 'near'}",
                           f"'{anchor}' is not an earlier expectation or a snapshot")
        if exp.packet is not None and exp.packet.delay is not None and exp.packet.after is None:
            raise LabError(file, f"{where}.packet.delay", "a delay needs 'after' (the expectation or step it counts from)")


def load_lab(path: str | Path, sets: Iterable[str] = (), known_images: set[str] | None = None,
             display_name: str | None = None) -> tuple[Lab, dict[str, Any]]:
    """The validated lab and the resolved mapping (defaults not yet filled) it came from."""
    file = display_name or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise LabError(file, "", f"cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LabError(file, "", "is not UTF-8 text") from None
    data = parse_yaml(text, file)
    for assignment in sets:
        data = apply_set(data, assignment, file)
    lab = validate(data, file)
    if known_images is not None:
        check_references(lab, file, known_images)
    return lab, data
