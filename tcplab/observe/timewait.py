"""TIME_WAIT, and the orphaned FIN_WAIT2, as netstat and ss show them: what the tracepoint leaves out.

The tracepoint ``sock:inet_sock_set_state`` fires for full sockets only. When a connection enters
TIME_WAIT, the kernel hands it from the full socket to a small *timewait socket* and frees the full
one: the tracepoint says ``FIN_WAIT2 -> CLOSE`` (``CLOSING -> CLOSE`` after a simultaneous close) and
nothing ever fires for the timewait socket, which netstat and ss list as TIME_WAIT for 60 s (the
kernel's TCP_TIMEWAIT_LEN). Measured on this machine's kernel (6.18) with the server's FIN carrying
the ACK of the client's::

    client FIN_WAIT1 -> FIN_WAIT2   (the FIN+ACK arrives)
    client FIN_WAIT2 -> CLOSE       15 µs later: the hand-over
    ss:  TIME-WAIT 0 0 10.231.7.3:55208 10.231.7.2:8000 timer:(timewait,59sec,0) ino:0 sk:2b

An *orphaned* FIN_WAIT2 (its program closed it, the peer has not sent its FIN) is handed over the same
way, on the bare ACK of its FIN, with the substate FIN_WAIT2: ss lists ``FIN-WAIT-2 ...
timer:(timewait,59sec,0)`` and it lives for tcp_fin_timeout. That is no TIME_WAIT, and the hand-over is
not the end of its FIN_WAIT2. If the peer's FIN arrives while it lives, it becomes TIME_WAIT there and
then (its timer restarts at 60 s), again without a tracepoint.

:func:`derive` is the one place that turns a hand-over into what happened, joining three kinds of
evidence: the tracepoint (the hand-over, no reset at that moment; the peer's own socket going to
LAST_ACK or CLOSING, i.e. sending its FIN), the captures (the peer's FIN arriving at the socket, before
the hand-over or after it) and the snapshots (netstat/ss listing TIME_WAIT or FIN_WAIT2 for the 4-tuple,
ss's timewait timer). It writes nothing of its own: without evidence a hand-over stays what the
tracepoint said. Its records carry ``"derived": "timewait"`` and what they were joined from::

    {"event": "timewait_handover", "old": "FIN_WAIT2", "new": "CLOSE", "state": "TIME_WAIT", "handover_line": 9, ...}
    {"event": "inet_sock_set_state", "old": "FIN_WAIT2", "new": "TIME_WAIT", "derived": "timewait", "exact": true,
     "evidence": {"handover": "sockets/transitions.jsonl line 9", "fin": "capture/client.pcap #5",
                  "snapshots": ["tw"], "timer": "timewait,59sec,0 at tw"}, "expires": ..., "why": "..."}
    {"event": "inet_sock_set_state", "old": "TIME_WAIT", "new": "CLOSE", "derived": "timewait", "exact": false,
     "ended_by": "timewait timer expired", ...}

The end of TIME_WAIT (or of an orphan) is stated only when the run covers it: a later snapshot of the
host without the socket, or the run lasting past its timer. Otherwise the entry record says when it
``expires`` and readers show it still in that state at the end of the run.

:func:`append_derived` writes the derived records at the end of ``sockets/transitions.jsonl`` once the
tracer has stopped; :func:`run_records` is how every reader (expectations, timelines, the report) sees
that file: as written when the derived records are there, else with them derived on read. Never both.
The file itself is read and written by :mod:`tcplab.runfiles.transitions` only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, cast

from ..rundir import RunDir
from ..runfiles import run_info, snapshots as snapshot_file, transitions as transitions_file
from ..runfiles.snapshots import Snapshots
from ..runfiles.transitions import TransitionRecord
from ..wire import FIN, RST, SYN, TcpPacket, read_tcp
from .snapshots import SnapshotSocket, snapshot_sockets, tables_taken, timer_left

TIMEWAIT_LEN = 60.0  # seconds: the kernel's TCP_TIMEWAIT_LEN, fixed (no sysctl changes it)
DERIVED = "timewait"  # the value of "derived" on every record made here
HANDOVER = "timewait_handover"  # the event of the record that marks a tracepoint X -> CLOSE as a hand-over
HANDOVER_FROM = ("FIN_WAIT2", "CLOSING")  # the full socket's states that hand over to a timewait socket
RESET_WINDOW = 0.005  # a reset event this close to X -> CLOSE makes it a reset, not a hand-over
# Captures are stamped with CLOCK_REALTIME, the tracepoint with the monotonic clock plus an offset measured
# once; a FIN captured this little after the hand-over came with the segment that caused it.
CLOCK_SLOP = 0.0005
TRANSITIONS = transitions_file.NAME

Key = tuple[str, int, str, int]  # local ip, local port, peer ip, peer port


@dataclass(frozen=True)
class Segment:
    """A captured TCP segment with SYN, FIN or RST, in the capture of host ``capture``."""
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    capture: str
    frame: int = 0

    def where(self) -> str:
        return f"capture/{self.capture}.pcap #{self.frame}" if self.frame else f"capture/{self.capture}.pcap"


def is_derived(rec: TransitionRecord) -> bool:
    return bool(rec.get("derived"))


def has_derived(records: Iterable[TransitionRecord]) -> bool:
    """Whether the derivation already ran on these records (at collection, or on read)."""
    return any(is_derived(r) for r in records)


def _key(rec: TransitionRecord) -> Key:
    return (str(rec.get("saddr")), int(rec.get("sport") or 0), str(rec.get("daddr")), int(rec.get("dport") or 0))


def _line(rec: TransitionRecord) -> str:
    return f"{TRANSITIONS} line {rec['line']}" if rec.get("line") else TRANSITIONS


def _span(seconds: float) -> str:
    a = abs(seconds)
    return f"{seconds:.3f} s" if a >= 1 else f"{seconds * 1e3:.3f} ms" if a >= 1e-3 else f"{seconds * 1e6:.0f} µs"


# --- the derivation ------------------------------------------------------------------------------

def derive(records: Iterable[TransitionRecord], snapshots: Snapshots, segments: Iterable[Segment] = (),
           end: float | None = None, hosts: dict[str, str] | None = None) -> list[TransitionRecord]:
    """The derived records for every hand-over to a timewait socket in ``records`` (tracepoint records, in
    any order; a ``line`` in them is cited as evidence). ``segments``: captured SYN/FIN/RST segments;
    ``end``: the last moment the run observed (an end of TIME_WAIT later than that is not stated);
    ``hosts``: host -> address, for records without attribution. Records already derived are ignored."""
    ip_host = {ip: h for h, ip in (hosts or {}).items() if ip}
    changes: list[TransitionRecord] = []
    resets: list[TransitionRecord] = []
    for r in records:
        if is_derived(r) or "ts" not in r:
            continue
        if r.get("event") == "inet_sock_set_state":
            changes.append(r)
        elif r.get("event") in ("tcp_receive_reset", "tcp_send_reset"):
            resets.append(r)
    changes.sort(key=lambda r: float(r["ts"]))
    by_key: dict[Key, list[TransitionRecord]] = {}
    for r in changes:
        if int(r.get("sport") or 0):
            by_key.setdefault(_key(r), []).append(r)
    rows: dict[Key, list[SnapshotSocket]] = {}
    for row in snapshot_sockets(snapshots):
        rows.setdefault(row.key(), []).append(row)
    taken = tables_taken(snapshots)
    segs: dict[frozenset[tuple[str, int]], list[Segment]] = {}
    for s in segments:
        segs.setdefault(frozenset({(s.src, s.sport), (s.dst, s.dport)}), []).append(s)
    times = [float(r["ts"]) for r in changes] + [t for ts in taken.values() for t, _ in ts]
    last = max(times + ([end] if end is not None else []), default=0.0)

    out: list[TransitionRecord] = []
    for key, recs in by_key.items():
        for i, r in enumerate(recs):
            if r.get("new") != "CLOSE" or r.get("old") not in HANDOVER_FROM or _reset_at(resets, r):
                continue
            host = r.get("host") or ip_host.get(key[0])
            if not host:
                continue
            earlier = recs[:i]
            closed = next((j for j in range(len(earlier) - 1, -1, -1) if earlier[j].get("new") == "CLOSE"), -1)
            fw1 = next((float(p["ts"]) for p in reversed(earlier[closed + 1:]) if p.get("new") == "FIN_WAIT1"), None)
            since = fw1 if fw1 is not None else (float(earlier[closed]["ts"]) if closed >= 0 else -math.inf)
            until = float(recs[i + 1]["ts"]) if i + 1 < len(recs) else math.inf
            peer_key = (key[2], key[3], key[0], key[1])
            out += _one(Handover(r, key, str(host), str(r.get("peer") or ip_host.get(key[2]) or key[2]), since,
                                 until), segs.get(frozenset({key[:2], key[2:]}), []), rows.get(key, []),
                        taken.get(str(host), []), by_key.get(peer_key, []), last)
    return out


def _reset_at(resets: list[TransitionRecord], rec: TransitionRecord) -> bool:
    return any(_key(x) == _key(rec) and abs(float(x["ts"]) - float(rec["ts"])) <= RESET_WINDOW for x in resets)


@dataclass(frozen=True)
class Handover:
    """One tracepoint X -> CLOSE that may be a hand-over, and the span of its connection's life around it."""
    rec: TransitionRecord
    key: Key
    host: str
    peer: str
    since: float  # when the socket entered FIN_WAIT1 (its own FIN): a FIN of the peer's counts from here
    until: float  # the next event of the same 4-tuple (a new connection), or inf

    @property
    def ts(self) -> float:
        return float(self.rec["ts"])

    def base(self) -> dict[str, Any]:
        lip, lport, pip, pport = self.key
        return {"saddr": lip, "sport": lport, "daddr": pip, "dport": pport, "host": self.host, "peer": self.peer}


@dataclass
class Phase:
    state: str  # TIME_WAIT, or FIN_WAIT2 for an orphan
    start: float
    exact: bool
    evidence: dict[str, Any]
    why: str


def _one(h: Handover, segs: list[Segment], rows: list[SnapshotSocket], taken: list[tuple[float, str]],
         peer_changes: list[TransitionRecord], last: float) -> list[TransitionRecord]:
    """The derived records of one X -> CLOSE, or none when nothing says what the timewait socket was."""
    phases = _phases(h, segs, rows, taken, peer_changes)
    if not phases:
        return []
    for ph in phases:  # what the snapshots add to each phase
        seen = _phase_rows(ph, h, rows)
        if seen:
            names = list(dict.fromkeys(x.snapshot for x in seen))
            ph.evidence["snapshots"] = names
            timed = [x for x in seen if x.timer]
            if timed:
                ph.evidence["timer"] = f"{timed[-1].timer} at {timed[-1].snapshot}"
            many = len(names) > 1
            ph.why += (f"; snapshot{'s' if many else ''} {', '.join(names)} list{'' if many else 's'} it as {ph.state}"
                       + (f" (timer:({timed[-1].timer}) at {timed[-1].snapshot})" if timed else ""))
    t, old, base = h.ts, str(h.rec["old"]), h.base()
    out: list[TransitionRecord] = [cast(TransitionRecord, {
        "ts": t, "event": HANDOVER, **base, "old": old, "new": "CLOSE", "state": phases[0].state, "derived": DERIVED,
        "handover_line": h.rec.get("line"), "why": phases[0].why})]
    prev = old
    for ph in phases:
        if ph.state != prev:
            out.append(cast(TransitionRecord, {
                "ts": ph.start, "event": "inet_sock_set_state", **base, "old": prev, "new": ph.state,
                "derived": DERIVED, "exact": ph.exact, "evidence": ph.evidence, "why": ph.why}))
        prev = ph.state
    final = phases[-1]
    ending = _ending(final, h, segs, rows, taken, last)
    if ending is not None:
        out.append(cast(TransitionRecord, {"ts": ending.pop("ts"), "event": "inet_sock_set_state", **base,
                                           "old": final.state, "new": "CLOSE", "derived": DERIVED, **ending}))
    else:
        expiry = _expiry(final, rows, h)
        if expiry is not None:  # still there at the end of the run: when its timer would end it
            out[-1]["expires"] = round(expiry[0], 6)
    return out


def _phases(h: Handover, segs: list[Segment], rows: list[SnapshotSocket], taken: list[tuple[float, str]],
            peer_changes: list[TransitionRecord]) -> list[Phase]:
    """What the timewait socket was from the hand-over on: TIME_WAIT; or an orphaned FIN_WAIT2, maybe turned
    TIME_WAIT by the peer's FIN; or nothing known."""
    t, old = h.ts, str(h.rec["old"])
    lip, lport, pip, pport = h.key
    live = [s for s in segs if h.since - CLOCK_SLOP <= s.ts < h.until]
    fins = [s for s in live if s.flags & FIN and (s.src, s.sport) == (pip, pport)]
    fins = [s for s in fins if s.capture == h.host] or fins  # as it arrived, where the host's capture has it
    fin = min(fins, key=lambda s: s.ts) if fins else None
    peer_fin = next((p for p in peer_changes if p.get("new") in ("LAST_ACK", "CLOSING")
                     and h.since - CLOCK_SLOP <= float(p["ts"]) < h.until), None)
    covered = any(s.capture == h.host and (s.src, s.sport) == (lip, lport) and s.flags & FIN and s.ts <= t + CLOCK_SLOP
                  for s in live)
    host_rst = any(s.flags & RST and (s.src, s.sport) == (lip, lport) and s.ts >= t - CLOCK_SLOP for s in live)
    tw_rows = [x for x in rows if x.state == "TIME_WAIT" and h.since <= x.time < h.until]
    fw2_rows = [x for x in rows if x.state == "FIN_WAIT2" and t <= x.time < h.until]
    handover = {"handover": _line(h.rec)}
    fin_ev: dict[str, Any] = {}
    fin_words = ""
    fin_at: float | None = None
    if fin is not None:
        fin_at, fin_ev = fin.ts, {"fin": fin.where()}
        fin_words = f"{h.peer}'s FIN arrived ({fin.where()})"
    elif peer_fin is not None:
        fin_at, fin_ev = float(peer_fin["ts"]), {"peer_fin": _line(peer_fin)}
        fin_words = (f"{h.peer} sent its FIN (its socket went {peer_fin.get('old')} → {peer_fin.get('new')}, "
                     f"{_line(peer_fin)})")
    what = f"{old} → CLOSE ({_line(h.rec)}) is the hand-over to a timewait socket"
    derived = "derived (no tracepoint fires for a timewait socket): "
    phases: list[Phase] = []
    if old == "CLOSING":
        phases.append(Phase("TIME_WAIT", t, True, {**handover, **fin_ev},
                            f"{derived}{what} in TIME_WAIT: in CLOSING, {h.peer}'s FIN had arrived"))
    elif fin_at is not None and fin_at <= t + CLOCK_SLOP:
        phases.append(Phase("TIME_WAIT", t, True, {**handover, **fin_ev},
                            f"{derived}{what} in TIME_WAIT: {fin_words} before it"))
    elif fw2_rows or fin_at is not None or covered or host_rst:
        if fin_at is None and covered:
            said = f"no FIN from {h.peer} in capture/{h.host}.pcap before it"
        elif fin_at is not None:
            said = f"{h.peer}'s FIN came only later"
        else:
            said = f"no FIN from {h.peer} before it"
        orphan = Phase("FIN_WAIT2", t, True, dict(handover), f"{derived}orphaned FIN_WAIT2 (timewait socket): {what} "
                       f"with the substate FIN_WAIT2, not its end: {said}")
        phases.append(orphan)
        # the peer's FIN turns the orphan into TIME_WAIT only if the orphan still lived when it came
        gone = next((tt for tt, _ in taken if t < tt and (fin_at is None or tt < fin_at)
                     and not any(x.time == tt for x in rows)), None)
        timer = _expiry(orphan, rows, h)
        if (fin_at is not None and gone is None and fin_at < h.until and (timer is None or fin_at <= timer[0])
                and not any(s.flags & RST and (s.src, s.sport) == (lip, lport) and t - CLOCK_SLOP <= s.ts < fin_at
                            for s in live)):
            phases.append(Phase("TIME_WAIT", fin_at, fin is not None, {**handover, **fin_ev},
                                f"{derived}the timewait socket left by the orphan became TIME_WAIT when "
                                f"{fin_words}"))
        elif fin_at is None and any(x.time > t for x in tw_rows):
            first = min((x for x in tw_rows if x.time > t), key=lambda x: x.time)
            lo = max([t] + [x.time for x in fw2_rows if x.time < first.time])
            left = timer_left(first.timer)
            at = first.time + left[1] - TIMEWAIT_LEN if left and left[0] == "timewait" else first.time
            phases.append(Phase("TIME_WAIT", min(max(at, lo), first.time), False, dict(handover),
                                f"{derived}the timewait socket left by the orphan became TIME_WAIT (the FIN is "
                                f"not in the captures; snapshot {first.snapshot} lists TIME_WAIT)"))
    elif tw_rows:
        phases.append(Phase("TIME_WAIT", t, False, dict(handover),
                            f"{derived}{what} in TIME_WAIT at it or soon after (the peer's FIN is not in the "
                            "captures)"))
    return phases


def _phase_rows(ph: Phase, h: Handover, rows: list[SnapshotSocket]) -> list[SnapshotSocket]:
    """The snapshot rows that list the timewait socket in this phase's state. A snapshot's time is taken
    before its tables, so one begun just before the hand-over may list TIME_WAIT already: TIME_WAIT rows
    count from the socket's FIN_WAIT1 on (only this connection's timewait socket can be in TIME_WAIT then)."""
    lo = h.since if ph.state == "TIME_WAIT" else h.ts
    return [x for x in rows if x.state == ph.state and lo <= x.time < h.until]


def _expiry(ph: Phase, rows: list[SnapshotSocket], h: Handover) -> tuple[float, str, str | None] | None:
    """When the kernel's timer would free the timewait socket: from the last timer ss showed, else (TIME_WAIT)
    60 s after it began; with what says so and the snapshot whose timer it is."""
    timed = [x for x in _phase_rows(ph, h, rows) if (timer_left(x.timer) or ("", 0.0))[0] == "timewait"]
    if timed:
        x = timed[-1]
        left = timer_left(x.timer)
        assert left is not None
        return x.time + left[1], f"timer:({x.timer}) at snapshot {x.snapshot}", x.snapshot
    if ph.state == "TIME_WAIT":
        return ph.start + TIMEWAIT_LEN, "60 s after it entered TIME_WAIT (TCP_TIMEWAIT_LEN)", None
    return None  # an orphan lives tcp_fin_timeout, which the host's sysctls may set: only a timer says


def _ending(ph: Phase, h: Handover, segs: list[Segment], rows: list[SnapshotSocket], taken: list[tuple[float, str]],
            last: float) -> dict[str, Any] | None:
    """How the last phase ended, when the run covers it: ts, exact, ended_by, evidence, why; else None."""
    lip, lport, pip, pport = h.key
    listing = _phase_rows(ph, h, rows)
    last_seen = max([x.time for x in listing], default=ph.start)
    listed_at = {x.time for x in rows}
    gone = next(((tt, name) for tt, name in taken if tt > last_seen and tt >= ph.start and tt < h.until
                 and tt not in listed_at), None)
    expiry = _expiry(ph, rows, h)
    bound = min(gone[0] if gone else math.inf, h.until, expiry[0] + 1.0 if expiry else math.inf)
    rsts = [s for s in segs if s.flags & RST and ph.start - CLOCK_SLOP <= s.ts <= bound
            and ((s.src, s.sport) == (lip, lport) or ((s.src, s.sport) == (pip, pport) and s.capture == h.host))]
    name = f"{ph.state}" + (" (orphaned, timewait socket)" if ph.state == "FIN_WAIT2" else "")
    derived = "derived: "
    if rsts:
        rst = min(rsts, key=lambda s: s.ts)
        sent = (rst.src, rst.sport) == (lip, lport)
        return {"ts": rst.ts, "exact": True, "ended_by": "reset sent" if sent else "reset received",
                "evidence": {"rst": rst.where()},
                "why": f"{derived}{name} ended when {'its host' if sent else h.peer} sent an RST ({rst.where()})"}
    if h.until < math.inf and (expiry is None or h.until <= expiry[0]) and (gone is None or h.until <= gone[0]):
        return {"ts": h.until, "exact": False, "ended_by": "4-tuple used again", "evidence": {},
                "why": f"{derived}{name} ended by the time a new connection used the same addresses and ports"}
    if gone is not None:
        if expiry is not None and last_seen <= expiry[0] <= gone[0]:
            return {"ts": round(expiry[0], 6), "exact": False, "ended_by": "timewait timer expired",
                    "evidence": {"timer": expiry[1], "gone": gone[1]},
                    "why": f"{derived}{name} expired by its timer ({expiry[1]}); snapshot {gone[1]} no longer lists it"}
        return {"ts": gone[0], "exact": False, "ended_by": "timewait socket gone", "evidence": {"gone": gone[1]},
                "why": f"{derived}{name} was gone by snapshot {gone[1]}, sooner than its timer"
                       + (f" ({expiry[1]})" if expiry else "")}
    if expiry is not None and last_seen <= expiry[0] <= last:
        return {"ts": round(expiry[0], 6), "exact": False, "ended_by": "timewait timer expired",
                "evidence": {"timer": expiry[1]},
                "why": f"{derived}{name} expired by its timer ({expiry[1]}), before the run ended"}
    return None


# --- the run directory -------------------------------------------------------------------------------

def read_records(rd: RunDir) -> list[TransitionRecord]:
    """The records of sockets/transitions.jsonl as written, each with its ``line``."""
    return transitions_file.read(rd)


def _candidates(records: list[TransitionRecord]) -> set[frozenset[tuple[str, int]]]:
    return {frozenset({_key(r)[:2], _key(r)[2:]}) for r in records
            if r.get("event") == "inet_sock_set_state" and not is_derived(r) and r.get("new") == "CLOSE"
            and r.get("old") in HANDOVER_FROM}


def read_segments(rd: RunDir, hosts: dict[str, str], conns: set[frozenset[tuple[str, int]]],
                  read: Mapping[str, list[TcpPacket]] | None = None) -> list[Segment]:
    """The SYN, FIN and RST segments of connections ``conns`` in every host's capture; ``read``: each capture's
    (by its name, the host's), read already (analysis.packets.Traffic.syn_fin_rst), so none is read again."""
    out: list[Segment] = []
    for host in hosts:
        path = rd.pcap(host)
        if read is not None:
            _add_segments(out, read.get(path.stem, ()), conns, host)
            continue
        if not path.is_file():
            continue
        try:
            with open(path, "rb") as f:
                _add_segments(out, read_tcp(f, flags=SYN | FIN | RST), conns, host)
        except (OSError, ValueError):
            continue  # a capture that cannot be read is evidence that is not there
    return out


def _add_segments(out: list[Segment], segments: Iterable[TcpPacket], conns: set[frozenset[tuple[str, int]]],
                  host: str) -> None:
    for t in segments:
        if frozenset({(t.src, t.sport), (t.dst, t.dport)}) in conns:
            out.append(Segment(t.ts, t.src, t.sport, t.dst, t.dport, t.flags, host, t.index))


def derive_run(rd: RunDir | Any, records: list[TransitionRecord] | None = None,
               segments: Mapping[str, list[TcpPacket]] | None = None) -> list[TransitionRecord]:
    """The derived records of a run directory (computed, not written); ``segments``: as read_segments'
    ``read``."""
    rd = rd if isinstance(rd, RunDir) else RunDir(rd)
    records = read_records(rd) if records is None else records
    conns = _candidates(records)
    if not conns:
        return []
    info = run_info.read(rd)
    hosts = dict(info.get("hosts") or {})
    return derive(records, dict(snapshot_file.read(rd)), read_segments(rd, hosts, conns, segments),
                  info.get("collected_at"), hosts)


def derives(records: list[TransitionRecord]) -> bool:
    """Whether :func:`run_records` derives records from the captures for these (no derived ones were written,
    and a socket was handed over to TIME_WAIT's timer): then it reads their SYN, FIN and RST segments."""
    return not has_derived(records) and bool(_candidates(records))


def run_records(rd: RunDir | Any, segments: Mapping[str, list[TcpPacket]] | None = None) -> list[TransitionRecord]:
    """sockets/transitions.jsonl as every reader should see it: with the derived records, written at
    collection or (for a run without them) derived now; each record read from the file has its ``line``.
    ``segments``: each capture's SYN, FIN and RST segments, when the caller has read them already
    (analysis.packets.Traffic.syn_fin_rst)."""
    rd = rd if isinstance(rd, RunDir) else RunDir(rd)
    records = read_records(rd)
    if has_derived(records):
        return records
    return records + derive_run(rd, records, segments)


def append_derived(rd: RunDir | Any) -> int:
    """Append the derived records to sockets/transitions.jsonl, once; call it when the tracer has stopped
    writing (a hand-over traced later would otherwise be left out). Returns how many lines were added."""
    rd = rd if isinstance(rd, RunDir) else RunDir(rd)
    records = read_records(rd)
    if not records or has_derived(records):
        return 0
    derived = derive_run(rd, records)
    transitions_file.append(rd, derived)
    return len(derived)


# --- reading with the derived records ---------------------------------------------------------------------

def state_view(records: Iterable[TransitionRecord]) -> list[TransitionRecord]:
    """The state changes a reader should see, in time order: the tracepoint's ``inet_sock_set_state``
    records and the derived ones. A tracepoint X -> CLOSE that was a hand-over comes as a copy with
    ``handover`` set to the timewait socket's state at that moment (TIME_WAIT, or FIN_WAIT2 for an orphan)
    and ``why``: it is no state change of the connection."""
    records = list(records)
    marks = {(_key(r), round(float(r["ts"]), 6)): r for r in records if r.get("event") == HANDOVER}
    out: list[tuple[float, int, TransitionRecord]] = []
    for r in records:
        if r.get("event") != "inet_sock_set_state" or "ts" not in r:
            continue
        mark = None if is_derived(r) else marks.get((_key(r), round(float(r["ts"]), 6)))
        if mark is not None and r.get("new") == "CLOSE":
            r = cast(TransitionRecord, {**r, "handover": mark.get("state"), "why": mark.get("why", ""),
                                        **({"expires": mark["expires"]} if "expires" in mark else {})})
        out.append((float(r["ts"]), 1 if is_derived(r) else 0, r))
    out.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in out]
