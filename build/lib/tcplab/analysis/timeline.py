"""Each socket's TCP states over time, from the kernel tracepoint and the snapshots.

Input is plain data from the run directory: the records of
``sockets/transitions.jsonl`` (``{ts, event, saddr, sport, daddr, dport, old,
new}``, optionally ``host``/``peer``), ``sockets/snapshots.json`` and the host
addresses of ``run.json``. Output is one :class:`SocketTimeline` per socket:
the intervals it spent in each state.

Two quirks of the kernel's view are handled before the intervals are built, so no reader has to:

* ``connect()`` fires CLOSE -> SYN_SENT before the source port is chosen, so
  that event carries ``sport 0``; it is joined to the next event of the same
  local address, peer and peer port (:func:`tcplab.observe.tracer.join_connects`).
* When a socket becomes a *timewait socket* (TIME_WAIT, or an orphaned
  FIN_WAIT2 whose application already closed it), the full socket is freed and
  the tracepoint reports ``FIN_WAIT2 -> CLOSE`` (or ``CLOSING -> CLOSE``) although
  netstat and ss go on listing the socket. :mod:`tcplab.observe.timewait` derives
  what happened (FIN_WAIT2 -> TIME_WAIT, the orphan living on, the end of either
  when the run saw it) as records marked ``"derived": "timewait"``; the intervals
  they open have the source ``timewait`` and say in their note what they were
  derived from. Records that already hold derived ones are not derived again.

Without tracer data (``tracefs`` missing) the timeline is built from the
snapshots alone, with the times of the snapshots as the (approximate) bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, cast

from ..observe.snapshots import SnapshotSocket, snapshot_order, snapshot_sockets, snapshot_times, timer_left
from ..observe.timewait import HANDOVER, Segment, derive, has_derived, state_view
from ..observe.tracer import join_connects
from ..runfiles.snapshots import Snapshots
from ..runfiles.transitions import TransitionRecord
from ..wire import RST

# The snapshot rows live in tcplab.observe.snapshots (the TIME_WAIT derivation reads them too); their
# names stay importable from here.
__all__ = ["Interval", "SocketId", "SocketTimeline", "Timelines", "SnapshotSocket", "build_timelines",
           "snapshot_order", "snapshot_sockets", "snapshot_times", "timer_left"]

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
    source: str  # "tracepoint", "snapshot" (bounds are snapshot times), "timewait" (derived: a timewait socket)
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


# --- building ---------------------------------------------------------------

def _events(records: list[TransitionRecord]) -> tuple[list[TransitionRecord], list[TransitionRecord]]:
    """State changes (hand-overs marked, derived ones in, connect's sport 0 joined) and reset events,
    in time order."""
    changes: list[TransitionRecord] = []
    resets: list[TransitionRecord] = []
    for r in records:
        try:
            rec = cast(TransitionRecord, {**r, "ts": float(r["ts"]), "sport": int(r.get("sport") or 0),
                                          "dport": int(r.get("dport") or 0)})
        except (KeyError, TypeError, ValueError):
            continue
        if rec.get("event") in ("tcp_receive_reset", "tcp_send_reset"):
            resets.append(rec)
        elif rec.get("event") in ("inet_sock_set_state", HANDOVER):
            changes.append(rec)
    resets.sort(key=lambda r: r["ts"])
    return join_connects(state_view(changes)), resets


Reset = tuple[float, str, int, str, int]  # a captured RST: ts, source ip, port, destination ip, port


def build_timelines(transitions: Iterable[TransitionRecord], snapshots: Snapshots, hosts: dict[str, str],
                    end: float | None = None, sent_resets: Iterable[Reset] = ()) -> Timelines:
    """Socket timelines of a run. ``transitions``: the records of sockets/transitions.jsonl, best as
    :func:`tcplab.observe.timewait.run_records` reads them (with the derived TIME_WAIT records); when
    they hold none, they are derived here from the snapshots and ``sent_resets`` (RSTs in the captures,
    which end a timewait socket exactly when its own host reset the connection). ``hosts`` maps host name
    to address; ``end`` is the run's last moment."""
    ip_host = {ip: h for h, ip in hosts.items() if ip}
    records = list(transitions)
    if not has_derived(records):
        resets_seen = [Segment(ts, src, sport, dst, dport, RST, ip_host.get(src, "")) for ts, src, sport, dst, dport
                       in sent_resets]
        records += derive(records, snapshots, resets_seen, end, hosts)
    changes, resets = _events(records)
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
        if rec.get("handover"):
            # a hand-over to a timewait socket is no state change: an orphan stays in FIN_WAIT2; for TIME_WAIT
            # the derived FIN_WAIT2/CLOSING -> TIME_WAIT at the same moment ends the interval
            if cur is not None and rec["handover"] == cur.state:
                cur.source, cur.note = "timewait", str(rec.get("why") or "")
            continue
        derived = bool(rec.get("derived"))
        if cur is not None:
            cur.end = rec["ts"]
            if derived:
                cur.end_exact = bool(rec.get("exact", True))
                if rec.get("new") == "CLOSE":
                    cur.ended_by = str(rec.get("ended_by") or "")
                    cur.note = "; ".join(x for x in (cur.note, str(rec.get("why") or "")) if x)
            elif rec.get("new") == "CLOSE":
                cur.ended_by = _reset_near(resets, rec) or ""
        elif rec.get("old") not in ("CLOSE", "LISTEN", None, "") and not tl.intervals:
            # the socket existed before the tracer started
            tl.intervals.append(Interval(str(rec["old"]), start, rec["ts"], "tracepoint", "before the first event"))
        if rec.get("new") and rec.get("new") != "CLOSE":
            tl.intervals.append(Interval(str(rec["new"]), rec["ts"], None, "timewait" if derived else "tracepoint",
                                         str(rec.get("why") or "") if derived else ""))

    source = "tracepoint" if changes else ("snapshots" if snaps else "none")
    taken = snapshot_times(snapshots)
    _snapshot_only(socks, snaps, sock_of, taken, traced=bool(changes))
    ordered = sorted(socks.values(), key=lambda s: (s.intervals[0].start if s.intervals else last, s.sock))
    return Timelines([s for s in ordered if s.intervals], start, last, source)


def _reset_near(resets: list[TransitionRecord], rec: TransitionRecord) -> str | None:
    for r in resets:
        if abs(r["ts"] - rec["ts"]) > _RESET_WINDOW:
            continue
        same = (str(r.get("saddr")), r["sport"], str(r.get("daddr")), r["dport"])
        if same == (str(rec.get("saddr")), rec["sport"], str(rec.get("daddr")), rec["dport"]):
            return "reset received" if r.get("event") == "tcp_receive_reset" else "reset sent"
    return None


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
