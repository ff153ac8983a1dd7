"""What every explainer shares: the run's evidence, findings, the registry, and small look-ups.

An explainer is one phenomenon (CLOSE_WAIT, a lingering FIN_WAIT2, TIME_WAIT,
an RST after a close, ...). It reads the run's evidence (packets, socket
timelines, snapshots, logs, the lab as the model reads it, run.json) and returns
findings only when its phenomenon is in the run; a run without it gets
nothing from it. Each finding says which socket, which side, since when, why,
and what fixes it, with every number taken from this run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import Any, Callable, ClassVar

from ...model import Lab, Peer
from ...model.lab import errno_pattern
from ...peers import peer_kind
from ...runfiles import run_info
from ...runfiles.peer_events import PeerEvent
from ...runfiles.run_info import RunInfo
from ...runfiles.snapshots import Snapshots, SocketRow
from ...runfiles.transitions import TransitionRecord
from ...wire import ACK, FIN, RST, SYN
from ..packets import Connection, Packet, Traffic
from ..timeline import Interval, SnapshotSocket, SocketId, SocketTimeline, Timelines, snapshot_order, snapshot_sockets

_ADDR = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})")

LINGER = 1.0  # a closing state that ends within this many seconds is a normal close, not a finding
MAX_FINDINGS = 20  # per explainer; the rest are counted
FLOOD_SYNS = 50  # single SYNs from one source to one listener that make a flood


# --- formatting -------------------------------------------------------------

def fmt_span(seconds: float) -> str:
    """120.002 s, 2.221 ms, 63 µs."""
    a = abs(seconds)
    if a >= 1:
        return f"{seconds:.3f} s"
    if a >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_t(ts: float, t0: float) -> str:
    return f"t = {ts - t0:.6f} s"


def option_shape(options: list[tuple[str, object]]) -> str:
    """Options as tcpdump prints them, with timestamp values left out: ``[mss 1460,sackOK,TS,nop,wscale 10]``."""
    parts = []
    for name, val in options:
        parts.append(name if val is None or name in ("TS", "sack") else f"{name} {val}")
    return "[" + ",".join(parts) + "]"


# --- what a finding is ----------------------------------------------------------

@dataclass
class Fact:
    text: str
    at: float | None = None  # absolute time (the pcaps' clock)
    ref: str | None = None  # what the report links to: "pkt-12", "snap-close_wait", "log-server"


@dataclass
class Finding:
    kind: str  # the explainer's kind: "close_wait", "fin_wait2", "time_wait", "rst_after_close"
    title: str
    socket: SocketId
    side: str  # "server" or "client" (who accepted / who connected), "" when unknown
    since: float | None
    until: float | None  # None: still so at the end of the run
    ended_by: str
    facts: list[Fact] = field(default_factory=list)
    conclusion: str = ""  # why
    fix: str = ""  # what fixes it
    accepted: bool | None = None  # None: unknown (CLOSE_WAIT: did a program ever accept the connection)
    closed_by_app: bool = False


@dataclass
class Result:
    """What one explainer found in one run."""
    findings: list[Finding] = field(default_factory=list)
    more: int = 0  # findings beyond MAX_FINDINGS, counted, not explained one by one
    notes: list[str] = field(default_factory=list)  # one-line remarks (e.g. how many closes were normal)
    normal: list[float] = field(default_factory=list)  # durations of the phenomenon's normal, prompt cases

    def full(self, limit: int = MAX_FINDINGS) -> bool:
        """Whether ``limit`` findings are explained already; the one asked about is then counted in ``more``."""
        if len(self.findings) < limit:
            return False
        self.more += 1
        return True

    def add(self, finding: Finding | None, limit: int = MAX_FINDINGS) -> None:
        """A finding (None: nothing found), explained one by one up to ``limit``, counted beyond."""
        if finding is not None and not self.full(limit):
            self.findings.append(finding)


# --- the run's evidence ---------------------------------------------------------

@dataclass
class RunEvidence:
    """Everything an explainer may read, loaded once for all of them."""
    traffic: Traffic
    timelines: Timelines
    snapshots: Snapshots
    logs: dict[str, str]
    lab: Lab | None  # the run's lab.yaml through the model (None: a run without a readable one)
    info: RunInfo  # run.json
    transitions: list[TransitionRecord] = field(default_factory=list)  # sockets/transitions.jsonl records
    peer_events: dict[str, list[PeerEvent]] = field(default_factory=dict)  # logs/peer/<host>.jsonl records

    @cached_property
    def t0(self) -> float:
        return self.traffic.start if self.traffic.packets else self.timelines.start

    @cached_property
    def rows(self) -> list[SnapshotSocket]:
        return snapshot_sockets(self.snapshots)

    @cached_property
    def names(self) -> dict[str, str]:
        """Address -> host name (every address of a host of several networks)."""
        out = dict(self.traffic.ip_host) or {ip: h for h, ip in self.traffic.hosts.items() if ip} or \
            {ip: h for h, ip in (self.info.get("hosts") or {}).items() if ip}
        for h, by_net in (self.info.get("addresses") or {}).items():
            for ip in by_net.values():
                out.setdefault(ip, h)
        return out

    @cached_property
    def floods(self) -> dict[tuple[str, str, int], list[Connection]]:
        """(source, listener address, port) -> the connections of a SYN flood from that source: at least
        ``FLOOD_SYNS`` connections whose source sent one SYN and nothing else (no retransmission, no ACK of a
        SYN-ACK): SYNs no socket sent, never meant to complete."""
        groups: dict[tuple[str, str, int], list[Connection]] = {}
        for c in self.traffic.connections:
            client = c.key[0]
            sent = list(islice((p for p in c.packets if p.tcp.src == client), 2))  # two are one too many
            if len(sent) == 1 and sent[0].tcp.flags & (SYN | ACK) == SYN:
                groups.setdefault((client, c.key[2], c.key[3]), []).append(c)
        return {k: v for k, v in groups.items() if len(v) >= FLOOD_SYNS}

    @cached_property
    def _flooding(self) -> set[int]:
        return {id(c) for group in self.floods.values() for c in group}

    def flooding(self, conn: Connection) -> bool:
        """Whether ``conn`` is one of a SYN flood's (see :attr:`floods`)."""
        return id(conn) in self._flooding

    @property
    def engine(self) -> dict[str, Any]:
        e = self.info.get("engine")
        return e if isinstance(e, dict) else {}

    def name(self, ip: str) -> str:
        return self.names.get(ip, ip)

    def forwards(self, host: str) -> bool:
        """Whether ``host`` is a router of the lab (a NAT box too): the packets in its name that it forwards or
        masquerades are another host's, and it has no socket of them."""
        h = self.lab.hosts.get(host) if self.lab is not None else None
        return h is not None and h.router

    def peer(self, host: str) -> Peer:
        """The TCP stack ``host`` shows on the wire, as the lab set it (the model's default for a host the lab
        does not name)."""
        h = self.lab.hosts.get(host) if self.lab is not None else None
        return h.peer if h is not None else Peer()

    def fin_wait2_reset(self, host: str) -> float | None:
        """After how many seconds ``host``'s stack resets a connection left in FIN_WAIT_2, as the run played it
        (the lab's timer, else its peer kind's own: Windows' 120 s); None: it never does (Linux)."""
        p = self.peer(host)
        return peer_kind(p.os).fin_wait2_reset(p.fin_wait2_timeout)

    def connection(self, sock: SocketId) -> Connection | None:
        return find_connection(self.traffic, sock)

    def timeline_of(self, sock: SocketId) -> SocketTimeline | None:
        return self.timelines.find(sock)

    def other_end(self, sock: SocketId) -> SocketTimeline | None:
        key = (sock.peer_ip, sock.peer_port, sock.local_ip, sock.local_port)
        return next((x for x in self.timelines.sockets if x.sock.key() == key), None)

    def rows_of(self, sock: SocketId) -> list[SnapshotSocket]:
        return [x for x in self.rows if x.host == sock.host and
                (x.local_ip, x.local_port, x.peer_ip, x.peer_port) == sock.key()]

    def side(self, sock: SocketId) -> str:
        conn = self.connection(sock)
        if conn is None:
            return ""
        if (conn.key[2], conn.key[3]) == (sock.local_ip, sock.local_port):
            return "server"
        if (conn.key[0], conn.key[1]) == (sock.local_ip, sock.local_port):
            return "client"
        return ""

    def sysctl(self, host: str, name: str) -> str | None:
        """A sysctl of ``host``'s network namespace as the run recorded it (run.json ``sysctls``), else as the lab
        set it (lab.yaml ``hosts.<host>.sysctls``, or the peer's ``tcp_fin_timeout``); None when neither says."""
        rec = ((self.info.get("sysctls") or {}).get(host) or {})
        if isinstance(rec, dict) and rec.get(name) is not None:
            return str(rec[name])
        h = self.lab.hosts.get(host) if self.lab is not None else None
        if h is not None:
            if h.sysctls.get(name) is not None:
                return str(h.sysctls[name])
            if name == "net.ipv4.tcp_fin_timeout" and h.peer.tcp_fin_timeout is not None:
                return str(h.peer.tcp_fin_timeout)
        return None

    def sysctl_source(self, host: str, name: str) -> str:
        rec = ((self.info.get("sysctls") or {}).get(host) or {})
        return "recorded in run.json" if isinstance(rec, dict) and rec.get(name) is not None else "set in lab.yaml"

    def counter(self, host: str, snapshot: str, name: str) -> int | None:
        """A kernel counter of ``host`` (nstat's name) as a snapshot read it; None when it was not read."""
        snap = self.snapshots.get(snapshot)
        tables = (snap.get("hosts") or {}).get(host) if snap is not None else None
        table = (tables or {}).get("counters") or {}
        if not table.get("ok"):
            return None
        value = (table.get("values") or {}).get(name)
        return value if isinstance(value, int) else None

    def counter_change(self, host: str, name: str, until: float | None = None,
                       since: float | None = None) -> tuple[int, str, str] | None:
        """How much a counter of ``host`` rose between the last snapshot at or before ``since`` (None: the first)
        and the first at or after ``until`` (None: the last): (change, from snapshot, to snapshot)."""
        read = [(float(s.get("time") or 0.0), n, v) for n, s in snapshot_order(self.snapshots)
                if (v := self.counter(host, n, name)) is not None]
        if len(read) < 2:
            return None
        before = [r for r in read if since is None or r[0] <= since]
        after = [r for r in read if until is None or r[0] >= until]
        if not before or not after:
            return None
        a = before[0] if since is None else before[-1]
        b = after[-1] if until is None else after[0]
        if a[0] >= b[0]:
            return None
        return b[2] - a[2], a[1], b[1]

    def resets(self, event: str | None = None) -> list[TransitionRecord]:
        """The tracer's reset records (tcp_send_reset / tcp_receive_reset), in time order."""
        out = [r for r in self.transitions if r.get("event") in ("tcp_send_reset", "tcp_receive_reset")
               and (event is None or r.get("event") == event)]
        return sorted(out, key=lambda r: float(r.get("ts") or 0.0))

    def ss_info(self, sock: SocketId) -> list[tuple[str, float, str]]:
        """(snapshot, time, ss's extended info) for ``sock``, in time order: ``... rto:204 ato:40 mss:1460 ...``."""
        out = []
        for name, snap in snapshot_order(self.snapshots):
            recs = (((snap.get("hosts") or {}).get(sock.host) or {}).get("ss") or {}).get("records") or []
            for r in recs:
                if (isinstance(r, dict) and (r.get("local_addr"), r.get("local_port"), r.get("peer_addr"),
                                             r.get("peer_port")) == sock.key()):
                    out.append((name, float(snap.get("time") or 0.0), str(r.get("info") or "")))
                    break
        return out


# --- the registry -----------------------------------------------------------------

class Explainer:
    """One phenomenon. Subclasses set ``kind``, ``what`` (the phenomenon in a few words, for the count of the
    findings not explained one by one: "sockets in CLOSE_WAIT") and implement :meth:`explain`."""
    kind: ClassVar[str] = ""
    what: ClassVar[str] = ""

    def explain(self, run: RunEvidence) -> Result:
        raise NotImplementedError


EXPLAINERS: list[type[Explainer]] = []


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator: the explainer takes part in every report, in the order of registration."""
    if any(c.kind == cls.kind for c in EXPLAINERS):
        raise ValueError(f"two explainers of kind {cls.kind!r}")
    EXPLAINERS.append(cls)
    return cls


# --- looking things up ------------------------------------------------------

def find_connection(traffic: Traffic, sock: SocketId) -> Connection | None:
    ends = sock.conn_key()
    for c in traffic.connections:
        if frozenset({(c.key[0], c.key[1]), (c.key[2], c.key[3])}) == ends:
            return c
    return None


def packets_from(conn: Connection | None, ip: str) -> list[Packet]:
    return [p for p in conn.packets if p.tcp.src == ip] if conn else []


def first(packets: list[Packet], pred: Callable[[Packet], bool]) -> Packet | None:
    return next((p for p in packets if pred(p)), None)


def is_fin(p: Packet) -> bool:
    return bool(p.tcp.flags & FIN)


def is_rst(p: Packet) -> bool:
    return bool(p.tcp.flags & RST)


def is_syn(p: Packet) -> bool:
    return bool(p.tcp.flags & SYN)


def is_synack(p: Packet) -> bool:
    return bool(p.tcp.flags & SYN and p.tcp.flags & ACK)


def ack_of(conn: Connection | None, fin: Packet) -> Packet | None:
    """The first packet of the other end that acknowledges ``fin``."""
    if conn is None:
        return None
    return first([p for p in conn.packets if p.n > fin.n and p.tcp.src == fin.tcp.dst and p.tcp.flags & ACK],
                 lambda p: p.rel_ack >= fin.rel_seq + len(fin.tcp.payload) + 1)


def next_interval(tl: SocketTimeline, iv: Interval) -> Interval | None:
    i = tl.intervals.index(iv)
    return tl.intervals[i + 1] if i + 1 < len(tl.intervals) else None


def previous_interval(tl: SocketTimeline, iv: Interval) -> Interval | None:
    i = tl.intervals.index(iv)
    return tl.intervals[i - 1] if i > 0 else None


def listener_records(snapshots: Snapshots, host: str, port: int) -> list[tuple[str, float, SocketRow]]:
    """The LISTEN socket of ``host`` on ``port`` in each snapshot (netstat's record: owner, Recv-Q)."""
    out = []
    for name, snap in snapshot_order(snapshots):
        recs = ((((snap.get("hosts") or {}).get(host) or {}).get("netstat") or {}).get("records") or [])
        for r in recs:
            if r.get("state") == "LISTEN" and r.get("local_port") == port:
                out.append((name, float(snap.get("time") or 0.0), r))
                break
    return out


def log_mentions(text: str) -> dict[str, list[str]]:
    """``ip:port`` -> the log lines that mention it."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        for m in _ADDR.finditer(line):
            out.setdefault(f"{m.group(1)}:{m.group(2)}", []).append(line.strip())
    return out


def last_timer(rows: list[SnapshotSocket], sock: SocketId) -> tuple[str, str] | None:
    """The last (snapshot, ss timer) shown for ``sock``: the kernel's own countdown, e.g. ``timewait,51sec,0``."""
    found = None
    for x in rows:
        if x.host == sock.host and (x.local_ip, x.local_port, x.peer_ip, x.peer_port) == sock.key() and x.timer:
            found = (x.snapshot, x.timer)
    return found


def programs_said(run: RunEvidence, host: str, errnos: tuple[str, ...]) -> dict[str, str]:
    """The first line of a program of ``host`` reporting each errno of ``errnos`` (its name, strerror text or
    ``[Errno N]``), as a sentence: ``telnet on client printed: '...'``. Read from the programs' own logs
    (``programs/<host>.<name>`` in ``run.logs``)."""
    out: dict[str, str] = {}
    for key, text in sorted(run.logs.items()):
        if not key.startswith(f"programs/{host}."):
            continue
        name = key.removeprefix(f"programs/{host}.")
        for line in text.splitlines():
            for errno in errnos:
                if errno not in out and re.search(errno_pattern(errno), line, re.IGNORECASE):
                    out[errno] = f"{name} on {host} printed: '{line.strip()[:160]}'."
    return out


def where(run: RunEvidence, sock: SocketId) -> str:
    return f"{sock.host} {sock.local_ip}:{sock.local_port} ↔ {run.name(sock.peer_ip)} {sock.peer_ip}:{sock.peer_port}"


def kernel_version(release: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def kernel_hz(info: RunInfo) -> tuple[int, str] | None:
    """The kernel's HZ (timer ticks per second) and where the run found it: run.json ``kernel.hz``
    (with ``kernel.hz_source``); None when the run does not record it."""
    k = info.get("kernel")
    if isinstance(k, dict) and isinstance(k.get("hz"), int) and k["hz"] > 0:
        return k["hz"], str(k.get("hz_source") or run_info.NAME)
    return None
