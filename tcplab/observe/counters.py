"""A host's kernel counters (SNMP MIB and Linux's own), as nstat names them: ``TcpExtListenOverflows``.

The counters are per network namespace, and each host's ``/proc/net`` shows its own namespace's, so they
are read in the host (no sidecar, no privilege): ``/proc/net/netstat`` (TcpExt, IpExt, MPTcpExt) and
``/proc/net/snmp`` (Ip, Icmp, Tcp, Udp). Each file pairs a line of names with a line of values under
the same prefix; nstat's name is the prefix and the field, joined.
"""
from __future__ import annotations

import difflib
import re

COUNTER_FILES = ("/proc/net/netstat", "/proc/net/snmp")
COUNTERS_ARGV = ["cat", *COUNTER_FILES]


def parse_counters(text: str) -> dict[str, int]:
    """``{"TcpExtListenOverflows": 3, "TcpOutRsts": 7, ...}`` from the files' text (pairs of lines)."""
    out: dict[str, int] = {}
    names: dict[str, list[str]] = {}
    for line in text.splitlines():
        prefix, sep, rest = line.partition(":")
        if not sep or not prefix.isalnum():
            continue
        fields = rest.split()
        if prefix not in names:
            names[prefix] = fields
            continue
        keys = names.pop(prefix)
        if len(keys) != len(fields):
            continue
        for key, value in zip(keys, fields):
            try:
                out[prefix + key] = int(value)
            except ValueError:
                continue  # Tcp's MaxConn is -1, an int; anything else is not a counter
    return out


def read_counters(stdout: str, stderr: str, exit_code: int) -> dict[str, object]:
    """What a snapshot records of a host's counters: ``{"ok": true, "values": {...}}``, or ``ok: false`` and
    why (a file missing, nothing parsed): such a host's counters are missing, not zero."""
    values = parse_counters(stdout)
    if exit_code != 0 or not values:
        why = (stderr.strip().splitlines() or [f"cat exited with {exit_code}" if exit_code else "no counters"])[0]
        return {"argv": list(COUNTERS_ARGV), "ok": False, "error": why[:200], "values": values}
    return {"argv": list(COUNTERS_ARGV), "ok": True, "values": values}


def counters_in_snapshot(stdout: str, stderr: str) -> dict[str, object] | None:
    """The counters labsnap printed after the socket tables (one round trip for both), as
    :func:`read_counters` records them; None when its output has no counters (a labsnap of an older image)."""
    from .sockets import SNAP_COUNTERS, SNAP_STATUS

    _, sep, rest = stdout.partition(SNAP_COUNTERS)
    if not sep:
        return None
    text, _, status = rest.partition(SNAP_STATUS)
    code = re.search(r"counters=(\d+)", status)
    errors = "\n".join(ln for ln in stderr.splitlines() if ln.startswith("cat:"))
    return read_counters(text, errors, int(code.group(1)) if code else 1)


def closest_names(name: str, known: list[str], n: int = 3) -> list[str]:
    """The counter names most like a name that is not one (a typo, another kernel's name)."""
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.6)
    if close:
        return close
    lower = name.lower()
    return [k for k in known if lower in k.lower() or k.lower() in lower][:n]
