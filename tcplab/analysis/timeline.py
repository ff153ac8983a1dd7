"""Each socket's TCP states over time, from the kernel tracepoint and the snapshots.

Input is plain data from the run directory: the records of
``sockets/transitions.jsonl`` (``{ts, event, saddr, sport, daddr, dport, old,
new}``, optionally ``host``/``peer``), ``sockets/snapshots.json`` and the host
addresses of ``run.json``. Output is one :class:`SocketTimeline` per socket:
the intervals it spent in each state.

Two quirks of the kernel's view are handled here so no reader has to:

* ``connect()`` fires CLOSE -> SYN_SENT before the source port is chosen, so
  that event carries ``sport 0``; it is joined to the next event of the same
  local address, peer and peer port.
* When a socket becomes a *timewait mini-socket* (TIME_WAIT, or an orphaned
  FIN_WAIT2 whose application already closed it), the full socket is freed and
  the tracepoint reports ``FIN_WAIT2 -> CLOSE`` (or ``FIN_WAIT1``/``CLOSING``
  -> ``CLOSE``) at once, although netstat and ss go on listing the socket in
  FIN_WAIT2 or TIME_WAIT. The snapshots tell which: the interval is extended to
  the last snapshot that lists the socket and marked as a timewait socket.

Without tracer data (``tracefs`` missing) the timeline is built from the
snapshots alone, with the times of the snapshots as the (approximate) bounds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

# States a full socket leaves for CLOSE when a timewait mini-socket takes over.
_TIMEWAIT_FROM = {"FIN_WAIT1", "FIN_WAIT2", "CLOSING"}
_MINI_STATES = {"FIN_WAIT2", "TIME_WAIT"}
# How close a reset event must be to the CLOSE it explains.
_RESET_WINDOW = 0.005


@dataclass(frozen=True, order=True)
class SocketId:
    """One end of a connection: the host that holds it, its address, and its peer's."""
    host: str
    local_ip: str
    local_port: int
    peer_ip: str
    peer_port: int

    def key(self) -> tuple[str, int, str, int]:
        return (self.local_ip, self.local_port, self.peer_ip, self.peer_port)

    def conn_key(self) -> frozenset[tuple[str, int]]:
        """The same for both ends of one connection."""
        return frozenset({(self.local_ip, self.local_port), (self.peer_ip, self.peer_port)})


@dataclass
class Interval:
    state: str
    start: float
    end: float | None  # None: still in this state at the last observation
    source: str  # "tracepoint", "snapshot" (bounds are snapshot times), "timewait" (mini-socket, seen by snapshots)
    note: str = ""
    ended_by: str = ""  # "reset received", "reset sent", "timewait socket gone", ...
    end_exact: bool = True  # False: the state ended somewhere between the last snapshot listing it and `end`

    def duration(self, until: float) -> float:
        return (self.end if self.end is not None else until) - self.start


@dataclass
class SocketTimeline:
    sock: SocketId
    intervals: list[Interval] = field(default_factory=list)

    def state_at(self, ts: float) -> str | None:
        for iv in self.intervals:
            if iv.start <= ts and (iv.end is None or ts < iv.end):
                return iv.state
        return None

    def first(self, state: str) -> Interval | None:
        return next((iv for iv in self.intervals if iv.state == state), None)


@dataclass
class Timelines:
    sockets: list[SocketTimeline]
    start: float
    end: float  # the last observation of the run: open intervals run to here
    source: str  # "tracepoint", "snapshots" or "none"

    def of(self, host: str, local_port: int | None = None, peer_ip: str | None = None,
           peer_port: int | None = None) -> list[SocketTimeline]:
        return [s for s in self.sockets if s.sock.host == host
                and local_port in (None, s.sock.local_port) and peer_ip in (None, s.sock.peer_ip)
                and peer_port in (None, s.sock.peer_port)]

    def find(self, sock: SocketId) -> SocketTimeline | None:
        return next((s for s in self.sockets if s.sock == sock), None)


# --- snapshots --------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotSocket:
    """A connection socket as one snapshot listed it (ss preferred: it shows timers)."""
    snapshot: str
    time: float
    host: str
    state: str
    local_ip: str
    local_port: int
    peer_ip: str
    peer_port: int
    pid: int | None
    program: str | None
    timer: str | None
    recv_q: int | None = None


def snapshot_order(snapshots: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Snapshots in time order (the file keeps insertion order, but a reader should not rely on it)."""
    return sorted(((n, s) for n, s in snapshots.items() if isinstance(s, dict)),
                  key=lambda kv: float(kv[1].get("time") or 0.0))


def _rkey(r: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    return (r.get("local_addr"), r.get("local_port"), r.get("peer_addr"), r.get("peer_port"))


def snapshot_sockets(snapshots: dict[str, Any]) -> list[SnapshotSocket]:
    """Every connection socket of every snapshot (not listeners): netstat's rows (what the field report read,
    with owners), each completed by ss's timer, then the sockets only ss listed."""
    out: list[SnapshotSocket] = []
    for name, snap in snapshot_order(snapshots):
        t = float(snap.get("time") or 0.0)
        for host, tables in sorted((snap.get("hosts") or {}).items()):
            ss = [r for r in ((tables or {}).get("ss") or {}).get("records") or [] if isinstance(r, dict)]
            ns = [r for r in ((tables or {}).get("netstat") or {}).get("records") or [] if isinstance(r, dict)]
            by_ss = {_rkey(r): r for r in ss}
            listed = set()
            for r in ns + [r for r in ss if _rkey(r) not in {_rkey(n) for n in ns}]:
                lp, pp = r.get("local_port"), r.get("peer_port")
                if not lp or not pp or r.get("state") == "LISTEN" or _rkey(r) in listed:
                    continue
                listed.add(_rkey(r))
                twin = by_ss.get(_rkey(r), {})
                pid, prog = r.get("pid"), r.get("program")
                if pid is None and twin.get("pid") is not None:
                    pid, prog = twin.get("pid"), twin.get("program")
                out.append(SnapshotSocket(name, t, host, str(r.get("state") or ""), str(r.get("local_addr")), int(lp),
                                          str(r.get("peer_addr")), int(pp), pid, prog,
                                          r.get("timer") or twin.get("timer"), r.get("recv_q")))
    return out


_SS_TIME = re.compile(r"^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$")


def timer_left(timer: str | None) -> tuple[str, float] | None:
    """ss's ``timer:(NAME,LEFT,RETRIES)`` as (name, seconds left). ss prints LEFT as ``58sec``, ``252ms``,
    ``1min30sec``, and 1.252 s as ``1.252ms`` (seconds, a dot, then milliseconds)."""
    if not timer:
        return None
    parts = timer.split(",")
    if len(parts) < 2:
        return None
    m = _SS_TIME.match(parts[1].strip())
    if not m or not any(m.groups()):
        return None
    mins, secs, sep, ms = m.groups()
    left = int(mins or 0) * 60 + int(secs or 0) + (int(ms) / 1000 if ms else 0.0)
    return parts[0], left


# --- building ---------------------------------------------------------------

def _events(transitions: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """State changes (with the sport-0 SYN_SENT joined to its socket) and reset events, in time order."""
    changes: list[dict[str, Any]] = []
    resets: list[dict[str, Any]] = []
    for r in transitions:
        try:
            rec = dict(r, ts=float(r["ts"]), sport=int(r.get("sport") or 0), dport=int(r.get("dport") or 0))
        except (KeyError, TypeError, ValueError):
            continue
        if rec.get("event") == "inet_sock_set_state":
            changes.append(rec)
        elif rec.get("event") in ("tcp_receive_reset", "tcp_send_reset"):
            resets.append(rec)
    changes.sort(key=lambda r: r["ts"])
    resets.sort(key=lambda r: r["ts"])
    pending: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    joined: list[dict[str, Any]] = []
    for rec in changes:
        k = (str(rec.get("saddr")), str(rec.get("daddr")), rec["dport"])
        if rec["sport"] == 0:
            pending.setdefault(k, []).append(rec)
            continue
        if rec.get("old") == "SYN_SENT" and pending.get(k):
            first = pending[k].pop(0)
            joined.append(dict(first, sport=rec["sport"]))
        joined.append(rec)
    joined.sort(key=lambda r: r["ts"])
    return joined, resets


Reset = tuple[float, str, int, str, int]  # a captured RST: ts, source ip, port, destination ip, port


def build_timelines(transitions: Iterable[dict[str, Any]], snapshots: dict[str, Any], hosts: dict[str, str],
                    end: float | None = None, sent_resets: Iterable[Reset] = ()) -> Timelines:
    """Socket timelines of a run. ``hosts`` maps host name to address; ``end`` is the run's last moment;
    ``sent_resets`` (RSTs in the captures) end a timewait socket's interval exactly when its own host reset
    the connection (a peer emulation that resets and removes its socket)."""
    ip_host = {ip: h for h, ip in hosts.items() if ip}
    changes, resets = _events(transitions)
    snaps = snapshot_sockets(snapshots)
    times = [r["ts"] for r in changes] + [s.time for s in snaps]
    start = min(times) if times else 0.0
    last = max(times + ([end] if end is not None else [])) if times or end is not None else 0.0
    socks: dict[tuple[str, int, str, int], SocketTimeline] = {}

    def sock_of(host: str, lip: str, lport: int, pip: str, pport: int) -> SocketTimeline:
        key = (lip, lport, pip, pport)
        if key not in socks:
            socks[key] = SocketTimeline(SocketId(host, lip, lport, pip, pport))
        return socks[key]

    for rec in changes:
        lip, pip = str(rec.get("saddr")), str(rec.get("daddr"))
        host = rec.get("host") or ip_host.get(lip)
        if not host:
            continue
        tl = sock_of(host, lip, rec["sport"], pip, rec["dport"])
        cur = tl.intervals[-1] if tl.intervals and tl.intervals[-1].end is None else None
        if cur is not None:
            cur.end = rec["ts"]
            if rec.get("new") == "CLOSE":
                cur.ended_by = _reset_near(resets, rec) or ""
        elif rec.get("old") not in ("CLOSE", "LISTEN", None, "") and not tl.intervals:
            # the socket existed before the tracer started
            tl.intervals.append(Interval(str(rec["old"]), start, rec["ts"], "tracepoint", "before the first event"))
        if rec.get("new") and rec.get("new") != "CLOSE":
            tl.intervals.append(Interval(str(rec["new"]), rec["ts"], None, "tracepoint"))

    source = "tracepoint" if changes else ("snapshots" if snaps else "none")
    taken = snapshot_times(snapshots)
    if changes:
        _timewait_sockets(socks, snaps, taken, list(sent_resets))
    _snapshot_only(socks, snaps, sock_of, taken, traced=bool(changes))
    ordered = sorted(socks.values(), key=lambda s: (s.intervals[0].start if s.intervals else last, s.sock))
    return Timelines([s for s in ordered if s.intervals], start, last, source)


def _reset_near(resets: list[dict[str, Any]], rec: dict[str, Any]) -> str | None:
    for r in resets:
        if abs(r["ts"] - rec["ts"]) > _RESET_WINDOW:
            continue
        same = (str(r.get("saddr")), r["sport"], str(r.get("daddr")), r["dport"])
        if same == (str(rec.get("saddr")), rec["sport"], str(rec.get("daddr")), rec["dport"]):
            return "reset received" if r.get("event") == "tcp_receive_reset" else "reset sent"
    return None


def snapshot_times(snapshots: dict[str, Any]) -> dict[str, list[float]]:
    """Host -> the times of the snapshots that have a table of that host (a socket absent there is gone)."""
    out: dict[str, list[float]] = {}
    for _, snap in snapshot_order(snapshots):
        for host in snap.get("hosts") or {}:
            out.setdefault(host, []).append(float(snap.get("time") or 0.0))
    return out


def _timewait_sockets(socks: dict[tuple[str, int, str, int], SocketTimeline], snaps: list[SnapshotSocket],
                      taken: dict[str, list[float]], sent_resets: list[Reset]) -> None:
    """Extend X -> CLOSE where snapshots show the socket living on as a timewait mini-socket."""
    by_key: dict[tuple[str, int, str, int], list[SnapshotSocket]] = {}
    for s in snaps:
        by_key.setdefault((s.local_ip, s.local_port, s.peer_ip, s.peer_port), []).append(s)
    for key, tl in socks.items():
        snap_times = taken.get(tl.sock.host, [])
        if not tl.intervals:
            continue
        iv = tl.intervals[-1]
        if iv.end is None or iv.state not in _TIMEWAIT_FROM or iv.ended_by:
            continue
        later = [s for s in by_key.get(key, []) if s.time >= iv.end and s.state in _MINI_STATES]
        if not later:
            # no snapshot in between, but the socket's own host reset the connection later (the Windows
            # peer's FIN_WAIT_2 timer): the orphaned FIN_WAIT2 lived on as a mini-socket until that RST
            rst = next((r[0] for r in sorted(sent_resets) if r[1:] == key and r[0] >= iv.end), None)
            if iv.state == "FIN_WAIT2" and rst is not None:
                iv.note = ("orphaned FIN_WAIT2 (timewait socket): the tracepoint reports FIN_WAIT2 -> CLOSE when "
                           "the full socket is freed; it ended when its host sent an RST (see the captures)")
                iv.source, iv.end, iv.ended_by, iv.end_exact = "timewait", rst, "reset sent", True
            continue
        state = later[0].state
        last_seen = max(s.time for s in later)
        after = [t for t in snap_times if t > last_seen]
        gone_at = after[0] if after else None
        timer = next((s.timer for s in reversed(later) if s.timer), None)
        what = "orphaned FIN_WAIT2 (timewait socket)" if state == "FIN_WAIT2" else "TIME_WAIT (timewait socket)"
        last_name = max(later, key=lambda s: s.time).snapshot
        note = (f"{what}: the tracepoint reports {iv.state} -> CLOSE when the full socket is freed; "
                f"snapshots list it {'to the end of the run' if gone_at is None else 'until ' + last_name}")
        if timer:
            note += f" (timer {timer})"
        ended_by = "" if gone_at is None else "timewait socket gone"
        last_timed = next((s for s in reversed(later) if timer_left(s.timer)), None)
        if gone_at is not None and last_timed is not None:
            expiry = last_timed.time + timer_left(last_timed.timer)[1]  # type: ignore[index]
            if last_seen <= expiry <= gone_at:  # the kernel's own countdown says when, within the snapshots' bounds
                gone_at, ended_by = expiry, "timewait timer expired"
                note += f"; by its timer it expired at about {expiry - iv.start:.3f} s after entering {state}"
        if gone_at is not None:
            rst = next((r[0] for r in sorted(sent_resets) if r[1:] == key and last_seen <= r[0] <= gone_at), None)
            if rst is not None:  # the socket's own host reset the connection: the socket ended there
                gone_at, ended_by = rst, "reset sent"
                note += "; it ended when its host sent an RST (see the captures)"
        exact = gone_at is None or ended_by == "reset sent"
        if state == iv.state:
            iv.note, iv.source, iv.end, iv.ended_by, iv.end_exact = note, "timewait", gone_at, ended_by, exact
        else:
            tl.intervals.append(Interval(state, iv.end, gone_at, "timewait", note, ended_by, exact))


def _snapshot_only(socks: dict[tuple[str, int, str, int], SocketTimeline], snaps: list[SnapshotSocket],
                   sock_of: Any, taken: dict[str, list[float]], traced: bool) -> None:
    """Sockets the tracer did not see (or no tracer at all): states at the snapshot times."""
    seen: dict[tuple[str, int, str, int], list[SnapshotSocket]] = {}
    for s in snaps:
        key = (s.local_ip, s.local_port, s.peer_ip, s.peer_port)
        if traced and key in socks:
            continue
        seen.setdefault(key, []).append(s)
    for key, rows in seen.items():
        tl = sock_of(rows[0].host, *key)
        for s in rows:
            cur = tl.intervals[-1] if tl.intervals else None
            if cur is not None and cur.state == s.state and cur.end is None:
                continue
            if cur is not None and cur.end is None:
                cur.end, cur.end_exact = s.time, False
            tl.intervals.append(Interval(s.state, s.time, None, "snapshot", "seen in snapshot " + s.snapshot))
        last_seen = rows[-1].time
        after = [t for t in taken.get(rows[0].host, []) if t > last_seen]
        if after and tl.intervals[-1].end is None:
            tl.intervals[-1].end, tl.intervals[-1].end_exact = after[0], False
            tl.intervals[-1].ended_by = "gone by the next snapshot"
