"""Socket tables as ``netstat -tanp`` and ``ss -tanpoei`` print them, parsed into records.

The raw text is always kept beside the records: the field report read netstat,
and a person comparing with it should see the same table.

The two tools' records are made comparable: states in the kernel's spelling
(``CLOSE_WAIT``, ``FIN_WAIT2``), IPv4-mapped addresses as IPv4 (netstat prints
``127.0.0.1`` where ss prints ``[::ffff:127.0.0.1]``), ss's ``*`` (a dual-stack
listener) as ``::`` like netstat, and as owner the lowest PID of the processes
sharing the socket (netstat names one; ss lists all, in no useful order). What
still differs is kept as each tool says it: ss gives a listener's backlog as
Send-Q where netstat says 0, and only ss (``-o``) shows timers.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ..backend.base import COMMAND_MISSING

NETSTAT_ARGV = ["netstat", "-tanp"]
SS_ARGV = ["ss", "-tanpoei"]

_SS_STATES = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV", "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT", "UNCONN": "CLOSE", "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING",
}


@dataclass(frozen=True)
class SocketRecord:
    source: str  # "netstat" or "ss"
    state: str  # kernel spelling: ESTABLISHED, CLOSE_WAIT, FIN_WAIT2...
    local_addr: str
    local_port: int | None
    peer_addr: str
    peer_port: int | None
    recv_q: int
    send_q: int
    pid: int | None
    program: str | None
    timer: str | None = None
    info: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SocketRecord":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})  # type: ignore[arg-type]


def _split_endpoint(text: str) -> tuple[str, int | None]:
    addr, _, port = text.rpartition(":")
    addr = addr.strip("[]")
    if "%" in addr:  # ss prints 0.0.0.0%lo for bound devices
        addr = addr.split("%", 1)[0]
    if addr == "*":  # ss: a dual-stack wildcard; netstat prints it as ::
        addr = "::"
    elif addr.lower().startswith("::ffff:") and "." in addr:
        addr = addr[7:]
    return addr, int(port) if port.isdigit() else None


def _normal_state(state: str) -> str:
    return _SS_STATES.get(state, state)


def parse_netstat(text: str) -> list[SocketRecord]:
    out: list[SocketRecord] = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 6 or cols[0] not in ("tcp", "tcp6") or not (cols[1].isdigit() and cols[2].isdigit()):
            continue
        state = cols[5] if len(cols) >= 7 or not ("/" in cols[5] or cols[5] == "-") else ""
        owner = cols[6] if len(cols) >= 7 else "-"
        pid: int | None = None
        program: str | None = None
        if owner != "-" and "/" in owner:
            p, _, prog = owner.partition("/")
            pid = int(p) if p.isdigit() else None
            program = prog or None
        la, lp = _split_endpoint(cols[3])
        pa, pp = _split_endpoint(cols[4])
        out.append(SocketRecord("netstat", _normal_state(state), la, lp, pa, pp,
                                int(cols[1]), int(cols[2]), pid, program))
    return out


_USERS = re.compile(r'users:\((?P<list>(?:\("[^"]*",pid=\d+,fd=\d+\),?)+)\)')
_USER = re.compile(r'\("(?P<prog>[^"]*)",pid=(?P<pid>\d+),fd=\d+\)')
_TIMER = re.compile(r"timer:\(([^)]*)\)")


def parse_ss(text: str) -> list[SocketRecord]:
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("State") or line.startswith("Netid"):
            continue
        if line[0].isspace() and rows:
            rows[-1].append(line.strip())
        else:
            rows.append([line])
    out: list[SocketRecord] = []
    for row in rows:
        head = row[0]
        cols = head.split()
        if len(cols) < 5 or not (cols[1].isdigit() and cols[2].isdigit()):
            continue  # not a socket row (a message such as "Failed to find cgroup2 mount")
        rest = " ".join(c for c in cols[5:] + row[1:] if c)
        pid, program = _owner(rest)
        t = _TIMER.search(rest)
        la, lp = _split_endpoint(cols[3])
        pa, pp = _split_endpoint(cols[4])
        out.append(SocketRecord("ss", _normal_state(cols[0]), la, lp, pa, pp, int(cols[1]), int(cols[2]),
                                pid, program, t.group(1) if t else None, rest))
    return out


def _owner(rest: str) -> tuple[int | None, str | None]:
    """The lowest PID in ss's ``users:((...),(...))`` and its program name."""
    m = _USERS.search(rest)
    if not m:
        return None, None
    users = sorted((int(u.group("pid")), u.group("prog")) for u in _USER.finditer(m.group("list")))
    return users[0][0], users[0][1] or None


SNAP_SEPARATOR = "@@tcplab-ss@@\n"  # printed by images/common/labsnap between the two tables
SNAP_STATUS = "@@tcplab-status@@"  # its last line: each tool's exit status
SNAP_COUNTERS = "@@tcplab-counters@@\n"  # then the kernel counters' files (observe/counters.py reads them)


def snapshot_tables(stdout: str, stderr: str, exit_code: int, image: str = "") -> dict[str, Any]:
    """One host's ``labsnap`` output as the two tables of snapshots.json, each saying whether its tool
    worked (``ok``) and, if not, why (``error``): an empty table is evidence only from a tool that ran."""
    in_image = f" in the image {image}" if image else " in the host's image"
    ns, sep, rest = stdout.partition(SNAP_SEPARATOR)
    if not sep:
        why = (f"labsnap is not{in_image} (it has no tcplab tools)" if exit_code in COMMAND_MISSING
               else f"labsnap failed (exit {exit_code}): {_first_line(stderr) or 'no output'}")
        return {tool: {"argv": argv, "raw": "", "records": [], "ok": False, "error": why}
                for tool, argv in (("netstat", NETSTAT_ARGV), ("ss", SS_ARGV))}
    ss, _, status_line = rest.lstrip("\n").partition(SNAP_STATUS)
    ss = ss.partition(SNAP_COUNTERS)[0]
    codes = dict(re.findall(r"(netstat|ss)=(\d+)", status_line))
    out: dict[str, Any] = {}
    for tool, argv, raw, parse in (("netstat", NETSTAT_ARGV, ns, parse_netstat), ("ss", SS_ARGV, ss, parse_ss)):
        code = int(codes[tool]) if tool in codes else None
        table: dict[str, Any] = {"argv": argv, "raw": raw, "records": [r.to_dict() for r in parse(raw)]}
        if code is None:  # an older labsnap: no status line; a table with text is taken as the tool's
            table["ok"] = bool(raw.strip())
        else:
            table["ok"] = code == 0
        if not table["ok"]:
            table["error"] = (f"{tool} is not{in_image}" if code in COMMAND_MISSING
                              else f"{tool} exited {code}: {_tool_error(stderr, tool)}" if code is not None
                              else f"{tool} printed nothing")
        out[tool] = table
    return out


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _tool_error(stderr: str, tool: str) -> str:
    mine = [ln.strip() for ln in stderr.splitlines() if tool in ln]
    return (mine[0] if mine else _first_line(stderr)) or "no message"
