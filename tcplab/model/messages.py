"""Pydantic's validation errors, rewritten as the one line a user reads: ``field.path: what is wrong``.

Pydantic's own messages name its types ("Input should be a valid dictionary or
instance of Host"); these name the lab's fields, quote what was given (never
more than a few dozen characters of it, whatever its size) and suggest the fix
when it is obvious: the field a typo meant, the quotes a number needs.
"""
from __future__ import annotations

import difflib
import ipaddress
import json
import re
import reprlib
import types
import typing
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel

NAME_RULE = "lowercase letters, digits, '-' or '_', starting with a letter, at most 31 characters"
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,30}$"
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# pydantic adds the member of a union (or a key marker) to an error's location
_UNION_TAG = re.compile(r"^(constrained-str|constrained-int|str|int|float|bool|none|literal\[.*\]|function-[a-z]+\[.*\]"
                        r"|lax-or-strict\[.*\]|json-or-python\[.*\]|is-instance\[.*\]|nullable\[.*\])$", re.S)
# fields whose keys are the user's own names (a host, a variable, a sysctl), not field names
_USER_KEYS = {"hosts", "env", "sysctls"}

_PATTERN_HINTS = {
    r"^tcplab/[a-z0-9][a-z0-9_-]{0,40}$": "is not an image of this project (write e.g. tcplab/client)",
    r"^[1-9][0-9]{0,5}[kmg]$": "is not a size (write e.g. 256m or 1g)",
    r"^net\.(ipv4|ipv6|core)\.[a-z0-9_.]{1,80}$":
        "cannot be set: a lab sets only net.ipv4.*, net.ipv6.* and net.core.* sysctls",
    r"^[0-9 ]{1,64}$": "is not a sysctl value (write a number, or numbers separated by spaces)",
    r"^(net|kernel|vm)(\.[a-z0-9_]{1,40}){1,6}$":
        "is not a sysctl a lab can read (write its dotted name under net., kernel. or vm., "
        "e.g. net.ipv4.tcp_syn_retries)",
    r"^[A-Za-z_][A-Za-z0-9_]{0,63}$":
        "is not an environment variable name (letters, digits and '_', not starting with a digit)",
    r"^[SFRPUEW.]{1,8}$|^none$": "is not a set of TCP flags as tcpdump prints them (e.g. S, S., F., R., .)",
    r"^[SFRPUEW]{1,7}$": "is not a set of TCP flag letters (S F R P U E W, e.g. F)",
}

_repr = reprlib.Repr()
_repr.maxstring = 50
_repr.maxother = 50
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 3
_repr.maxlevel = 2


def short(value: Any) -> str:
    """A bounded repr: what the user gave, cut to a few dozen characters whatever its size or depth."""
    text = _repr.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def clip(text: str, limit: int = 60) -> str:
    """Text the user gave, cut to ``limit`` characters, control characters escaped (it goes on one line)."""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"'{'true' if value else 'false'}'"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    kinds: dict[type, str] = {str: "a string", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), type(value).__name__)


def render_key(key: Any) -> str:
    """A key of the lab as the path shows it: plain when it is a plain name, else quoted (hosts["a/b"])."""
    if isinstance(key, int):
        return str(key)
    text = str(key)
    if _PLAIN_KEY.match(text):
        return text
    cut = text if len(text) <= 40 else text[:40] + "..."
    return "[" + json.dumps(cut) + "]"


def render_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        piece = render_key(p)
        out += piece if (piece.startswith("[") or not out) else "." + piece
    return out


def clean_loc(loc: Sequence[Any]) -> list[Any]:
    """The lab's own path in a pydantic location (without union members and key markers)."""
    from .lab import STEP_KINDS

    parts: list[Any] = []
    for i, item in enumerate(loc):
        prev = loc[i - 1] if i else None
        if item == "[key]":  # the error is about the key itself, which is the last part already
            continue
        # the step union adds its tag after the index: steps.2.start.host -> steps.2.host
        if isinstance(prev, int) and len(parts) == 2 and parts[0] == "steps" and item in STEP_KINDS:
            continue
        if isinstance(item, str) and prev not in _USER_KEYS and (_UNION_TAG.match(item) or item in _model_names()):
            continue
        parts.append(item)
    return parts


def _model_names() -> set[str]:
    """The lab's model classes by name: pydantic puts a union's model member (``Between``) in a location."""
    from . import lab

    return {n for n, v in vars(lab).items() if isinstance(v, type) and issubclass(v, BaseModel)}


# --- what a location allows (for "did you mean") --------------------------------

def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _model_fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def allowed_fields(root: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names the model allows at the parent of ``loc`` (a raw pydantic location)."""
    from .lab import STEP_KINDS

    tp: Any = root
    for item in loc[:-1]:
        members = _union_members(_unwrap(tp))
        if len(members) > 1:  # a tagged union: the next location item names the member
            if item in STEP_KINDS:
                tp = STEP_KINDS[item]
                continue
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if not models:
                return []
            tp = models[0]
        else:
            tp = members[0]
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or n: f.annotation for n, f in tp.model_fields.items()}
            if item not in fields:
                return []
            tp = fields[item]
        elif typing.get_origin(tp) in (list, tuple):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    for m in _union_members(_unwrap(tp)):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return _model_fields(m)
    return []


# --- messages ---------------------------------------------------------------------

def _unknown_field(name: Any, allowed: list[str]) -> str:
    text = f"unknown field {short(name)}"
    if not allowed:
        return text
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    if close:
        return f"{text} (did you mean '{close[0]}'?)"
    return f"{text} (fields here: {', '.join(allowed)})"


def _name_problem(given: Any) -> str:
    text = str(given)
    if re.match(NAME_PATTERN, text.lower()) and text != text.lower():
        return f"{short(given)} is not a valid name: {NAME_RULE} (did you mean '{text.lower()}'?)"
    if len(text) > 31 and re.match(r"^[a-z][a-z0-9_-]*$", text):
        return f"{short(given)} is {len(text)} characters long; a name has at most 31"
    return f"{short(given)} is not a valid name: {NAME_RULE}"


def _bad_chars(pattern: str, given: str) -> str:
    """The characters of ``given`` a ``^[...]{m,n}$`` pattern refuses, for a precise message."""
    m = re.match(r"^\^(\[[^\]]*(?:\\\][^\]]*)*\])\{\d+,\d+\}\$$", pattern)
    if not m:
        return ""
    cls = re.compile(m.group(1))
    bad = sorted({c for c in given if not cls.match(c)})
    if not bad:
        return ""
    return " ".join(repr(c) for c in bad[:5]) + (" is" if len(bad) == 1 else " are")


def _pattern_message(ctx: dict[str, Any], given: Any) -> str:
    pattern = str(ctx.get("pattern", ""))
    if pattern in (NAME_PATTERN,) or pattern.startswith(NAME_PATTERN + "|"):
        return _name_problem(given)
    if pattern in _PATTERN_HINTS:
        return f"{short(given)} {_PATTERN_HINTS[pattern]}"
    bad = _bad_chars(pattern, str(given))
    if bad:
        return f"{short(given)}: {bad} not allowed here"
    return f"{short(given)} does not have the form this field needs"


def _network_message(given: Any) -> str:
    text = str(given)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"{short(given)} is not an IPv4 network (write e.g. 10.77.0.0/24)"
    if net.version == 6:
        return f"{short(given)} is an IPv6 network; a lab's network is IPv4 (write e.g. 10.77.0.0/24)"
    return f"{short(given)} has host bits set (did you mean {net}?)"


def _step_kind_message(given: Any) -> str:
    from .lab import STEP_KINDS

    kinds = ", ".join(STEP_KINDS)
    if not isinstance(given, dict):
        return f"a step is a mapping with one of: {kinds}; not {_type_name(given)} {short(given)}"
    found = [k for k in STEP_KINDS if k in given]
    if not found:
        return f"a step needs one of: {kinds} (none given)"
    return f"a step has exactly one of: {kinds} (this one has {' and '.join(found)})"


def _size(given: Any) -> int | None:
    try:
        return len(given)
    except TypeError:
        return None


def message(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    """The 'what is wrong' part of the line for one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    loc = err["loc"]
    parts = clean_loc(loc)
    last = parts[-1] if parts else ""
    if kind == "extra_forbidden":
        return _unknown_field(loc[-1], allowed_fields(root, loc))
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        return _pattern_message(ctx, given)
    if kind == "literal_error":
        return f"{short(given)} is not one of {ctx.get('expected')}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind == "step_kind":
        return _step_kind_message(given)
    if kind == "string_type":
        if isinstance(given, (int, float)) and not isinstance(given, bool):
            return f"expected text, not the number {given!r} (quote it: \"{given!r}\")"
        return f"expected text, not {_type_name(given)}"
    if kind in ("int_parsing", "int_from_float"):
        return f"{short(given)} is not a whole number"
    if kind in ("int_type", "float_type", "float_parsing"):
        return f"expected a number, not {_type_name(given)}" if kind != "float_parsing" else \
            f"{short(given)} is not a number"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, not {short(given)}"
    if kind in ("greater_than", "greater_than_equal"):
        bound = ctx.get("gt", ctx.get("ge"))
        least = "more than" if kind == "greater_than" else "at least"
        return f"{short(given)} is too small (it must be {least} {bound})"
    if kind in ("less_than", "less_than_equal"):
        bound = ctx.get("lt", ctx.get("le"))
        return f"{short(given)} is too large (it must be {'less than' if kind == 'less_than' else 'at most'} {bound})"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        if _size(given) == 0:
            if last == "hosts":
                return "is empty: a lab needs at least one host"
            if last in ("start", "run"):
                return "is empty: give the command to run, as a list (e.g. [telnet, server, \"8000\"])"
            return f"is empty: give at least {n} item{'s' if n != 1 else ''}"
        return f"has {_size(given)} items; at least {n} needed"
    if kind == "too_long":
        return f"has {_size(given)} items; at most {ctx.get('max_length')} allowed"
    if kind == "string_too_long":
        return f"is {_size(given)} characters long; at most {ctx.get('max_length')} allowed"
    if kind == "string_too_short":
        return "is empty"
    if kind == "dict_type":
        return f"expected a mapping (name: value, ...), not {_type_name(given)}"
    if kind == "list_type":
        hint = " (write the command as a list of arguments: [telnet, server, \"8000\"])" \
            if last in ("start", "run") and isinstance(given, str) else ""
        return f"expected a list, not {_type_name(given)}{hint}"
    if kind in ("model_type", "model_attributes_type"):
        if given is None:
            fields = allowed_fields(root, (*loc, ""))
            return f"is empty: give its fields ({', '.join(fields)})" if fields else "is empty: give its fields"
        return f"expected a mapping of fields, not {_type_name(given)} {short(given)}"
    if kind in ("ip_v4_address", "ip_any_address"):
        return f"{short(given)} is not an IPv4 address (write e.g. 10.77.0.10)"
    if kind in ("ip_v4_network", "ip_any_network"):
        return _network_message(given)
    msg = str(err.get("msg", kind))
    msg = msg[:1].lower() + msg[1:]
    return f"{short(given)}: {msg}" if given is not None else msg


def _parent(loc: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(loc[:-1])


def pick(errors: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The error to report: the first, except that a typo ('imgae') beats the field it left missing, and that
    where a value may be a number or a mapping (``length: 1348`` or ``length: {min: 1349}``), a mapping's own
    error beats "expected a number"."""
    first = errors[0]
    if first["type"] == "missing":
        for e in errors:
            if e["type"] == "extra_forbidden" and _parent(e["loc"]) == _parent(first["loc"]):
                return e
    if first["type"] == "int_type" and isinstance(first.get("input"), dict):
        for e in errors[1:]:
            if _parent(e["loc"])[:len(first["loc"]) - 1] == _parent(first["loc"]) and len(e["loc"]) > len(first["loc"]):
                return e
    return first


def describe(errors: Sequence[Mapping[str, Any]], root: type[BaseModel]) -> tuple[str, str]:
    """(field path, message) for a pydantic ValidationError's errors()."""
    err = pick(errors)
    return render_path(clean_loc(err["loc"])), message(err, root)
