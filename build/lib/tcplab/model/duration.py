"""Durations as lab files write them: ``120s``, ``500ms``, ``2m``, ``1.5s``, or a number of seconds."""
from __future__ import annotations

import math
import re
import reprlib

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(us|µs|ms|s|min|m|h)?\s*$")
MAX_SECONDS = 24 * 3600.0


def _show(value: object) -> str:
    """The value as given, cut short: a hostile 100 000-character value stays a short message."""
    text = reprlib.repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: object) -> float:
    """Seconds from a duration; ValueError with a short reason otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {'true' if value else 'false'} (write e.g. 120s, 500ms, 2m)")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if not m:
            raise ValueError(f"not a duration: {_show(value)} (write e.g. 120s, 500ms, 2m)")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError(f"not a duration: {_show(value)} (write e.g. 120s, 500ms, 2m)")
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {_show(value)} (write e.g. 120s, 500ms, 2m)")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {_show(value)}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {_show(value)} is longer than the 24 h a lab may wait")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form: 120s, 2s, 500ms, 1.5s."""
    if seconds and seconds < 1 and abs(seconds * 1000 - round(seconds * 1000)) < 1e-9:
        return f"{round(seconds * 1000)}ms"
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return f"{text}s"
