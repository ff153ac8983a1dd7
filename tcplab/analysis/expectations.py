"""Judging a run against its lab's ``expect:`` list.

Pure functions over the run directory (lab.yaml, run.json, steps.jsonl,
capture/*.pcap, sockets/snapshots.json, sockets/transitions.jsonl): no
Docker, so a run copied from a CI artifact is judged exactly as it was.

Every verdict says what was expected, what was seen that came closest, and
where to look (``capture/win.pcap #6``, ``sockets/server-close_wait.txt``,
``sockets/transitions.jsonl line 12``), in the manner of packetdrill's
"expected ... but got ..." errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..model import Lab, load_lab
from ..model.lab import Expectation, PacketMatch, ProgramMatch
from ..observe.programs import ProgramRun, describe_status, last_lines, output_search, read_programs
from ..observe.sockets import SocketRecord
from ..observe.timewait import run_records, state_view
from ..observe.tracer import join_connects
from ..rundir import RunDir
from ..wire import ACK, FLAG_BITS
from .evidence import TOOLS, missing_evidence, tool_ok
from .packets import Packet, Traffic, load_traffic

ARROW = "→"
_FLAG_BIT = dict(FLAG_BITS)


HELD, FAILED, ERROR = "held", "failed", "error"


@dataclass
class Verdict:
    """One expectation judged; the fields of result.json's ``expectations`` items.

    ``status`` is ``held`` or ``failed`` only on evidence the run recorded; when
    the evidence an expectation needs is missing or partial (a snapshot not
    taken, a tool not in the image, a step that did not play, packets the
    kernel dropped) it is ``error``: neither held nor failed."""
    name: str
    about: str
    kind: str  # packet, state, transition, program; "step" for a step the run could not play
    status: str  # held, failed, error
    expected: str
    seen: str
    where: str
    message: str = ""
    time: float | None = None  # when it held: the first matching packet or transition, the snapshot
    note: str = ""  # what differs, after the place to look: "; differs in flags, time"
    label: str = "seen"  # "closest" when ``seen`` is the nearest miss rather than what was found
    missing: str = ""  # for an error: the evidence that was missing, in one line

    @property
    def held(self) -> bool:
        return self.status == HELD

    @held.setter
    def held(self, value: bool) -> None:
        self.status = HELD if value else FAILED

    @property
    def error(self) -> bool:
        return self.status == ERROR

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "about": self.about, "kind": self.kind, "status": self.status,
                "held": self.held, "expected": self.expected, "seen": self.seen, "where": self.where,
                "message": self.message, "missing": self.missing}


@dataclass
class Evaluation:
    lab: str
    run: str
    run_dir: Path
    verdicts: list[Verdict] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None

    @property
    def held(self) -> int:
        return sum(1 for v in self.verdicts if v.held)

    @property
    def errors(self) -> int:
        return sum(1 for v in self.verdicts if v.error)

    @property
    def failed(self) -> int:
        return len(self.verdicts) - self.held - self.errors

    @property
    def passed(self) -> bool:
        return self.held == len(self.verdicts)


# --- what the run directory holds ------------------------------------------------

@dataclass
class Transition:
    """A state change as the run's reader sees it (tcplab.observe.timewait.run_records): the tracepoint's,
    or one derived for a timewait socket (``derived``), or a tracepoint X -> CLOSE that was a hand-over to
    a timewait socket (``handover``: no state change of the connection; never matched)."""
    line: int  # 1-based line in sockets/transitions.jsonl; 0 for a record derived on read
    ts: float
    saddr: str
    sport: int
    daddr: str
    dport: int
    old: str
    new: str
    derived: str = ""  # "timewait": made from the hand-over, captures and snapshots
    exact: bool = True  # False: a derived moment known only within bounds (a timer, a snapshot)
    handover: str = ""  # for a hand-over: the timewait socket's state then (TIME_WAIT, or FIN_WAIT2: an orphan)
    evidence: dict[str, Any] = field(default_factory=dict)
    expires: float | None = None  # derived entry still open at the end of the run: when its timer would end it

    def where(self) -> str:
        here = f"sockets/transitions.jsonl line {self.line}" if self.line else ""
        if not self.derived:
            return here or "sockets/transitions.jsonl"
        parts = [self.evidence.get(k) for k in ("handover", "fin", "peer_fin", "rst", "timer")]
        snaps = self.evidence.get("snapshots") or ([self.evidence["gone"]] if self.evidence.get("gone") else [])
        if snaps:
            parts.append("snapshot" + ("s " if len(snaps) > 1 else " ") + ", ".join(str(x) for x in snaps))
        joined = ", ".join(str(p) for p in parts if p)
        what = f"derived: {self.derived}" + (f", from {joined}" if joined else "")
        return f"{here} ({what})" if here else what


class RunView:
    """Everything evaluation reads, loaded once."""

    def __init__(self, rd: RunDir, lab: Lab) -> None:
        self.rd = rd
        self.lab = lab
        self.info: dict[str, Any] = rd.read_json(rd.run_json, {}) or {}
        self.traffic: Traffic = load_traffic(rd)
        self.hosts: dict[str, str] = dict(self.traffic.hosts) or {h: str(lab.host_ip(h)) for h in lab.hosts}
        self.ip_host = {ip: h for h, ip in self.hosts.items() if ip}
        self.snapshots: dict[str, Any] = rd.read_json(rd.snapshots_json, {}) or {}
        self.steps: list[dict[str, Any]] = list(rd.read_jsonl(rd.steps_jsonl))
        self.transitions: list[Transition] = list(_read_transitions(rd))
        self.programs: dict[tuple[str, str], ProgramRun] = read_programs(rd)
        self.verdicts: dict[str, Verdict] = {}

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rd.path))
        except ValueError:
            return str(path)

    def name_of(self, ip: str) -> str:
        return self.ip_host.get(ip, ip)

    def stopped_at(self) -> str:
        """Why later snapshots are missing: the step the run stopped at, if it did."""
        for s in self.steps:
            if s.get("outcome") not in (None, "ok"):
                return f"the run stopped at step {s.get('index')} ({s.get('title')}): {s.get('detail')}"
        if len(self.steps) < len(self.lab.steps):
            return f"the run played {len(self.steps)} of {len(self.lab.steps)} steps"
        return "it is not in sockets/snapshots.json"

    def anchor(self, name: str) -> tuple[float | None, str]:
        """The time of an anchor (earlier expectation, snapshot, step), or None and why not."""
        if name in self.verdicts:
            v = self.verdicts[name]
            if not v.held or v.time is None:
                return None, f"'{name}' did not hold, so there is no moment to count from"
            return v.time, ""
        if name in self.snapshots:
            return float(self.snapshots[name]["time"]), ""
        for s in self.steps:
            if name in (s.get("name"), f"steps.{s.get('index')}"):
                return float(s["start"]), ""
        if any(name == f"steps.{i}" for i in range(len(self.lab.steps))) or name in {
                sn.get("name") for sn in self.steps} or name in _snapshot_names(self.lab):
            return None, f"'{name}' was not reached: {self.stopped_at()}"
        return None, f"'{name}' is not an expectation, snapshot or step of this run"


def _snapshot_names(lab: Lab) -> set[str]:
    return {getattr(s, "snapshot") for s in lab.steps if hasattr(s, "snapshot")} | {"end"}


def _read_transitions(rd: RunDir) -> Iterable[Transition]:
    """The run's state changes, each once: the derived TIME_WAIT records as written at collection, or
    derived now for a run without them (one derivation, tcplab.observe.timewait); connect()'s sport 0
    joined to its port."""
    for r in join_connects(state_view(run_records(rd))):
        try:
            yield Transition(int(r.get("line") or 0), float(r["ts"]), str(r.get("saddr", "")),
                             int(r.get("sport") or 0), str(r.get("daddr", "")), int(r.get("dport") or 0),
                             str(r.get("old", "")), str(r.get("new", "")), str(r.get("derived") or ""),
                             bool(r.get("exact", True)), str(r.get("handover") or ""),
                             dict(r.get("evidence") or {}), r.get("expires"))
        except (KeyError, TypeError, ValueError):
            continue


# --- formatting ----------------------------------------------------------------

def fmt_offset(dt: float) -> str:
    """+2.310s, -0.004s, +0.317ms: seconds to the ms, and sub-10 ms offsets to the µs."""
    if abs(dt) >= 0.01 or dt == 0:
        return f"{dt:+.3f}s"
    return f"{dt * 1e3:+.3f}ms"


def fmt_span(seconds: float) -> str:
    return f"{seconds:.3f}s" if seconds >= 0.01 or seconds == 0 else f"{seconds * 1e3:.3f}ms"


def _when(ts: float, anchor_name: str | None, anchor_t: float | None, t0: float) -> str:
    if anchor_name is not None and anchor_t is not None:
        return f"at {anchor_name}{fmt_offset(ts - anchor_t)}"
    return f"at t={ts - t0:.3f}s"


# --- packets -------------------------------------------------------------------

def _flag_mask(bits: str) -> int:
    return sum(_FLAG_BIT[b] for b in bits)


def _option_names(p: Packet) -> list[str]:
    return p.tcp.option_names()


def _packet_diffs(m: PacketMatch, p: Packet) -> list[tuple[str, int]]:
    """The fields of ``m`` that ``p`` does not satisfy, with a weight (how far off it is)."""
    t = p.tcp
    d: list[tuple[str, int]] = []
    if m.from_ is not None and p.src_host != m.from_:
        d.append(("from", 10))
    if m.to is not None and p.dst_host != m.to:
        d.append(("to", 10))
    if m.port is not None and m.port not in (t.sport, t.dport):
        d.append(("port", 10))
    if m.flags is not None and p.flags != m.flags:
        d.append(("flags", 3))
    if m.has_flags is not None:
        mask = _flag_mask(m.has_flags)
        if t.flags & mask != mask:
            d.append(("flags", 3))
    if m.seq is not None and p.rel_seq != m.seq:
        d.append(("seq", 1))
    if m.ack is not None and (not t.flags & ACK or p.rel_ack != m.ack):
        d.append(("ack", 1))
    if m.win is not None and t.win != m.win:
        d.append(("win", 1))
    if m.ttl is not None and t.ttl != m.ttl:
        d.append(("ttl", 1))
    if m.mss is not None and t.option("mss") != m.mss:
        d.append(("mss", 1))
    if m.wscale is not None and t.option("wscale") != m.wscale:
        d.append(("wscale", 1))
    names = _option_names(p)
    if m.options is not None and names != list(m.options):
        d.append(("options", 1))
    if m.with_options is not None and not set(m.with_options) <= set(names):
        d.append(("options", 1))
    if m.without_options is not None and set(m.without_options) & set(names):
        d.append(("options", 1))
    if m.payload is not None and m.payload.encode("utf-8", "replace") not in t.payload:
        d.append(("payload", 1 if t.payload else 2))
    return d


def _direction(src: str | None, dst: str | None, port: int | None = None) -> str:
    text = f"{src or '*'}{ARROW}{dst or '*'}"
    return f"{text} port {port}" if port is not None else text


def describe_match(m: PacketMatch) -> str:
    """The packet an expectation asks for, in tcpdump's words: ``win→server [R.] seq 2 ack 1 win 0``."""
    parts = [_direction(m.from_, m.to, m.port)]
    if m.flags is not None:
        parts.append(f"[{m.flags}]")
    if m.has_flags is not None:
        parts.append(f"with flag{'s' if len(m.has_flags) > 1 else ''} {'+'.join(m.has_flags)}")
    for name in ("seq", "ack", "win", "ttl", "mss", "wscale"):
        value = getattr(m, name)
        if value is not None:
            parts.append(f"{name} {value}")
    if m.options is not None:
        parts.append(f"options [{','.join(m.options)}]")
    if m.with_options:
        parts.append(f"with {','.join(m.with_options)}")
    if m.without_options:
        parts.append(f"no {','.join(m.without_options)}")
    if m.payload is not None:
        parts.append(f"payload containing {m.payload!r}")
    return " ".join(parts)


def describe_packet(p: Packet, m: PacketMatch, when: str) -> str:
    """A captured packet, showing the fields the expectation looks at (and the usual ones)."""
    t = p.tcp
    parts = [_direction(p.src_host or t.src, p.dst_host or t.dst), f"[{p.flags}]", f"seq {p.rel_seq}"]
    if t.flags & ACK:
        parts.append(f"ack {p.rel_ack}")
    parts.append(f"win {t.win}")
    if m.port is not None:
        parts.append(f"ports {t.sport}>{t.dport}")
    if m.ttl is not None:
        parts.append(f"ttl {t.ttl}")
    if m.mss is not None:
        parts.append(f"mss {t.option('mss')}")
    if m.wscale is not None:
        parts.append(f"wscale {t.option('wscale')}")
    if m.options is not None or m.with_options or m.without_options:
        parts.append(f"options [{','.join(_option_names(p))}]")
    if m.payload is not None:
        parts.append(f"payload {t.payload[:40]!r}" + ("..." if len(t.payload) > 40 else ""))
    parts.append(when)
    return " ".join(parts)


@dataclass
class PacketWindow:
    """Where in the run a packet rule looks, from its ``after``, ``delay``, ``within`` and ``before``."""
    start: float | None = None  # only packets after this moment (the anchor)
    end: float | None = None  # only packets up to this moment (within, before)
    target: tuple[float, float] | None = None  # with a delay: where the packet that counts must be
    timing: str = ""  # in words, for "expected"
    missing: str = ""  # why the window cannot be placed: an anchor that was not reached or did not hold
    missing_where: str = ""
    unresolved_delay: bool = False  # the delay names a field this run does not set

    def contains(self, ts: float) -> bool:
        return (self.start is None or ts > self.start) and (self.end is None or ts <= self.end)

    def observed_until(self) -> float | None:
        """The last moment the rule judges; None: the end of the run."""
        if self.target is not None:
            return self.target[1]
        return self.end


def packet_window(m: PacketMatch, view: RunView) -> PacketWindow:
    w = PacketWindow()
    if m.after is not None:
        anchor_t, why = view.anchor(m.after)
        delay = m.delay_seconds(view.lab) if m.delay is not None else None
        if m.delay is not None:
            ref = f" ({m.delay})" if isinstance(m.delay, str) else ""
            w.timing = (f" at {m.after}+{fmt_span(delay)}±{fmt_span(m.tolerance)}{ref}" if delay is not None
                        else f" at {m.after}+{m.delay} (not set in this run)")
        elif m.within is not None:
            w.timing = f" within {fmt_span(m.within)} after {m.after}"
        else:
            w.timing = f" after {m.after}"
        if anchor_t is None:
            w.missing, w.missing_where = why, _anchor_where(view, m.after)
            return w
        w.start = anchor_t
        if m.delay is not None:
            if delay is None:
                w.unresolved_delay = True
            else:
                w.target = (anchor_t + delay - m.tolerance, anchor_t + delay + m.tolerance)
        if m.within is not None:
            w.end = anchor_t + m.within
    if m.before is not None:
        before_t, why = view.anchor(m.before)
        w.timing += f" before {m.before}"
        if before_t is None:
            w.missing, w.missing_where = why, _anchor_where(view, m.before)
            return w
        w.end = before_t if w.end is None else min(w.end, before_t)
    return w


_ORDINAL = {1: "next", 2: "2nd", 3: "3rd"}


def _ordinal(n: int) -> str:
    return _ORDINAL.get(n, f"{n}th")


def check_packet(exp: Expectation, view: RunView) -> Verdict:
    """After an anchor a rule is about one packet, the next matching one (or the ``nth``): a later
    packet that happens to fit the delay does not count unless ``any: true`` says so."""
    m = exp.packet
    assert m is not None
    base = describe_match(m)
    t0 = view.traffic.start
    w = packet_window(m, view)
    one = m.after is not None and m.count is None and not m.any
    nth = m.nth or 1
    expected = _expected(base, w.timing, m.count)
    if m.nth is not None and m.nth > 1:
        expected = f"the {_ordinal(m.nth)} {expected}" if m.after is not None else f"{expected} (the {_ordinal(m.nth)})"
    if w.missing:
        return _verdict(exp, False, expected, f"nothing to time from: {w.missing}", w.missing_where, label="seen")
    anchor_t = w.start

    def when(p: Packet) -> str:
        return _when(p.ts, m.after, anchor_t, t0)

    def on_target(p: Packet) -> bool:
        return w.target is None or w.target[0] <= p.ts <= w.target[1]

    packets = view.traffic.packets
    candidates = [] if w.unresolved_delay else [p for p in packets if w.contains(p.ts) and not _packet_diffs(m, p)]
    if m.count is not None:
        held = len(candidates) == m.count
        if not candidates:
            return _verdict(exp, held, expected, f"none among the {len(packets)} packets captured", "capture/",
                            label="seen")
        shown = "; ".join(describe_packet(p, m, when(p)) + (f" ({p.where()})" if i else "")
                          for i, p in enumerate(candidates[:3]))
        more = f"; and {len(candidates) - 3} more" if len(candidates) > 3 else ""
        return _verdict(exp, held, expected, f"{len(candidates)}: {shown}{more}", candidates[0].where(),
                        time=candidates[0].ts, label="seen")
    if one or m.nth is not None:
        if len(candidates) >= nth:
            p = candidates[nth - 1]
            if on_target(p):
                return _verdict(exp, True, expected, describe_packet(p, m, when(p)), p.where(), time=p.ts,
                                label="seen")
            note = "; differs in time"
            fits = [(i, c) for i, c in enumerate(candidates, 1) if on_target(c)]
            if fits:
                i, c = fits[0]
                note += (f" (the {_ordinal(i)} matching packet, {c.where()}, came {when(c)}: write nth: {i}, "
                         "or any: true, if that is the one meant)")
            return _verdict(exp, False, expected, describe_packet(p, m, when(p)), p.where(),
                            note=note, label=f"the {_ordinal(nth)} matching packet")
        if candidates:
            shown = "; ".join(describe_packet(c, m, when(c)) + f" ({c.where()})" for c in candidates[:3])
            return _verdict(exp, False, expected, f"only {len(candidates)} matching: {shown}", candidates[0].where(),
                            label="seen")
    else:
        matching = [p for p in candidates if on_target(p)]
        if matching:
            p = matching[0]
            return _verdict(exp, True, expected, describe_packet(p, m, when(p)), p.where(), time=p.ts, label="seen")
    if not packets:
        return _verdict(exp, False, expected, "no TCP packets were captured", "capture/")

    def distance(p: Packet) -> float:
        if w.unresolved_delay:  # no moment to aim at: prefer what came after the anchor
            return 0.0 if anchor_t is None or p.ts > anchor_t else anchor_t - p.ts
        lo = w.target[0] if w.target is not None else w.start
        hi = w.target[1] if w.target is not None else w.end
        return max(0.0, (lo - p.ts) if lo is not None else 0.0, (p.ts - hi) if hi is not None else 0.0)

    def score(p: Packet) -> tuple[int, float]:
        d = _packet_diffs(m, p)
        off = distance(p)
        return sum(wt for _, wt in d) + (1 if off > 0 else 0), off

    best = min(packets, key=score)
    differs = [f for f, _ in _packet_diffs(m, best)]
    if distance(best) > 0 and not w.unresolved_delay:
        differs.append("time")
    seen = describe_packet(best, m, when(best))
    note = f"; differs in {', '.join(dict.fromkeys(differs))}" if differs else ""
    if w.unresolved_delay:
        note += f"; {m.delay} is not set in this run (only a Windows peer has that timer)"
    return _verdict(exp, False, expected, seen, best.where(), note=note)


def _expected(base: str, timing: str, count: int | None) -> str:
    if count is None:
        return base + timing
    if count == 0:
        return f"no {base}{timing}"
    return f"exactly {count} × {base}{timing}"


def _anchor_where(view: RunView, name: str) -> str:
    if name in view.verdicts:
        return f"expectation {name}"
    if name in view.snapshots or name in _snapshot_names(view.lab):
        return "sockets/snapshots.json"
    return "steps.jsonl"


# --- socket states ---------------------------------------------------------------

def _records(tables: dict[str, Any]) -> tuple[list[SocketRecord], str]:
    """The rows of the first tool whose table is evidence (it ran); none when no tool worked."""
    for tool in TOOLS:
        t = tables.get(tool)
        if isinstance(t, dict) and tool_ok(t) and t.get("records") is not None:
            return [SocketRecord.from_dict(r) for r in t["records"]], tool
    return [], "netstat"


def _owner(r: SocketRecord) -> str:
    return f"{r.pid}/{r.program}" if r.pid else "-"


def describe_socket(r: SocketRecord, host: str, view: RunView) -> str:
    local = f"{host}:{r.local_port}"
    if r.peer_port is None:
        return f"{local} {r.state} {_owner(r)}"
    return f"{local}{ARROW}{view.name_of(r.peer_addr)}:{r.peer_port} {r.state} {_owner(r)}"


def _owner_ok(r: SocketRecord, owner: str | None) -> bool:
    if owner is None:
        return True
    if owner == "none":
        return r.pid is None
    if owner == "any":
        return r.pid is not None
    return r.program == owner


def _owner_words(owner: str | None) -> str:
    return {None: "", "none": ", owned by no program", "any": ", owned by a program"}.get(
        owner, f", owned by {owner}")


def check_state(exp: Expectation, view: RunView) -> Verdict:
    m = exp.state
    assert m is not None
    sock = f"{m.host}" + (f":{m.port}" if m.port is not None else "") + (f"{ARROW}{m.peer}" if m.peer else "")
    if m.is_ is not None:
        expected = f"{sock} {m.is_}{_owner_words(m.owner)} at {m.at}"
    elif m.not_ is not None:
        expected = f"{sock} not {m.not_}{_owner_words(m.owner)} at {m.at}"
    else:
        expected = f"no socket {sock}{_owner_words(m.owner)} at {m.at}"
    snap = view.snapshots.get(m.at)
    if snap is None:
        return _verdict(exp, False, expected, f"snapshot '{m.at}' was not taken: {view.stopped_at()}",
                        "sockets/snapshots.json", label="seen")
    tables = (snap.get("hosts") or {}).get(m.host)
    where = view.rel(view.rd.table(m.host, m.at))
    if tables is None:
        return _verdict(exp, False, expected, f"snapshot '{m.at}' has no table of {m.host} (was it running?)",
                        "sockets/snapshots.json", label="seen")
    records, tool = _records(tables)
    if tool != "netstat":
        where = view.rel(view.rd.table(m.host, m.at, tool))
    peer_ip = view.hosts.get(m.peer) if m.peer else None
    mine = [r for r in records
            if (m.port is None or r.local_port == m.port)
            and (m.peer is None or (peer_ip is not None and r.peer_addr == peer_ip))]
    snap_t = float(snap.get("time", 0.0)) or None
    shown = "; ".join(describe_socket(r, m.host, view) for r in mine[:4]) + (
        f"; and {len(mine) - 4} more" if len(mine) > 4 else "")
    if m.is_ is not None:
        hits = [r for r in mine if r.state == m.is_ and _owner_ok(r, m.owner)]
        if hits:
            return _verdict(exp, True, expected, describe_socket(hits[0], m.host, view), where, time=snap_t,
                            label="seen")
        if mine:
            same_state = [r for r in mine if r.state == m.is_]
            best = same_state[0] if same_state else mine[0]
            differs = "owner" if same_state else "state"
            return _verdict(exp, False, expected, describe_socket(best, m.host, view), where,
                            note=f"; differs in {differs}" + (f" (all: {shown})" if len(mine) > 1 else ""))
        return _verdict(exp, False, expected, f"no socket {sock}" + _others(records, m.host, view), where,
                        label="seen")
    if m.not_ is not None:
        hits = [r for r in mine if r.state == m.not_ and _owner_ok(r, m.owner)]
        if not hits:
            return _verdict(exp, True, expected, shown or f"no socket {sock}", where, time=snap_t, label="seen")
        return _verdict(exp, False, expected, describe_socket(hits[0], m.host, view), where, label="seen")
    hits = [r for r in mine if _owner_ok(r, m.owner)]
    if not hits:
        return _verdict(exp, True, expected, f"no socket {sock}", where, time=snap_t, label="seen")
    return _verdict(exp, False, expected, "; ".join(describe_socket(r, m.host, view) for r in hits[:4]), where,
                    label="seen")


def _others(records: list[SocketRecord], host: str, view: RunView) -> str:
    interesting = [r for r in records if not r.local_addr.startswith("127.")]
    if not interesting:
        return f" (no other TCP socket on {host})"
    return f" ({host} had: " + "; ".join(describe_socket(r, host, view) for r in interesting[:4]) + ")"


# --- transitions -----------------------------------------------------------------

def check_transition(exp: Expectation, view: RunView) -> Verdict:
    m = exp.transition
    assert m is not None
    sock = f"{m.host}" + (f":{m.port}" if m.port is not None else "") + (f"{ARROW}{m.peer}" if m.peer else "")
    change = f"{m.from_ or '*'}→{m.to}"
    expected = f"{sock} {change}" + (f" within {fmt_span(m.within)} of {m.near}" if m.near else "")
    where_file = "sockets/transitions.jsonl"
    anchor_t: float | None = None
    if m.near is not None:
        anchor_t, why = view.anchor(m.near)
        if anchor_t is None:
            return _verdict(exp, False, expected, f"nothing to time from: {why}", _anchor_where(view, m.near),
                            label="seen")
    if not view.rd.transitions_jsonl.is_file():
        note = view.info.get("tracer", "")
        reason = f"the tracer did not run ({note})" if note and note != "ok" else "the run has no transitions file"
        return _verdict(exp, False, expected, f"no state changes recorded: {reason}", where_file, label="seen")
    host_ip = view.hosts.get(m.host)
    peer_ip = view.hosts.get(m.peer) if m.peer else None
    every = [t for t in view.transitions
             if t.saddr == host_ip and (m.port is None or t.sport == m.port)
             and (m.peer is None or t.daddr == peer_ip)]
    mine = [t for t in every if not t.handover]  # a hand-over to a timewait socket is no state change
    t0 = view.traffic.start if view.traffic.packets else (view.transitions[0].ts if view.transitions else 0.0)

    def describe(t: Transition) -> str:
        text = (f"{m.host}:{t.sport}{ARROW}{view.name_of(t.daddr)}:{t.dport} {t.old}→{t.new} "
                f"{_when(t.ts, m.near, anchor_t, t0)}")
        return text + (f" (derived{'' if t.exact else ', within bounds'})" if t.derived else "")

    def state_ok(t: Transition) -> bool:
        return t.new == m.to and (m.from_ is None or t.old == m.from_)

    def off(t: Transition) -> float:
        return 0.0 if anchor_t is None else max(0.0, abs(t.ts - anchor_t) - m.within)

    hits = [t for t in mine if state_ok(t) and off(t) == 0.0]
    if hits:
        t = hits[0]
        return _verdict(exp, True, expected, describe(t), t.where(), time=t.ts, label="seen")
    if not mine:
        return _verdict(exp, False, expected, f"no state change of {sock} recorded", where_file,
                        note=_transition_hint(m.to, every), label="seen")
    best = min(mine, key=lambda t: ((t.new != m.to) * 2 + (m.from_ is not None and t.old != m.from_)
                                    + (off(t) > 0), off(t), not {m.from_, m.to} & {t.old, t.new}))
    differs = [w for w, bad in (("state", not state_ok(best)), ("time", off(best) > 0)) if bad]
    history = ", ".join(f"{t.old}→{t.new}" + (" (hand-over to a timewait socket)" if t.handover else
                                             " (derived)" if t.derived else "") for t in every[:10])
    note = f"; differs in {', '.join(differs)} (its changes: {history})"
    return _verdict(exp, False, expected, describe(best), best.where(),
                    note=note + _still_in(m.from_, every, t0) + _transition_hint(m.to, every))


def _still_in(state: str | None, changes: list[Transition], t0: float) -> str:
    """Why ``from: STATE`` found no way out: a socket still in that state at the end of the run."""
    if state is None:
        return ""
    last: dict[tuple[int, str, int], Transition] = {}
    for t in changes:
        last[(t.sport, t.daddr, t.dport)] = t
    for t in last.values():
        now = t.handover or t.new
        if now == state:
            text = f"; still in {state} at the end of the run"
            if t.expires is not None:
                text += f" (by its timer it ends at about t={t.expires - t0:.3f}s, after the run)"
            return text
    return ""


def _transition_hint(to: str, changes: list[Transition]) -> str:
    """What the tracer cannot see, when that is what was asked for."""
    if to == "LISTEN" and not any(t.new == "LISTEN" for t in changes):
        return ("; a listener bound to the wildcard address (0.0.0.0) carries no lab address in the tracepoint, "
                "which names no network namespace, so the tracer does not record it: bind the program to "
                "the host's address")
    if to == "TIME_WAIT" and not any(t.new == "TIME_WAIT" for t in changes):
        return ("; TIME_WAIT is derived (no tracepoint fires for a timewait socket) from a FIN_WAIT2/CLOSING → "
                "CLOSE hand-over with the peer's FIN captured or a snapshot listing TIME_WAIT")
    return ""


# --- story programs ----------------------------------------------------------------

def describe_program_match(m: ProgramMatch) -> str:
    """``reader on client exits with status 1 and prints /Connection reset by peer/``."""
    said = []
    if m.exit is not None:
        said.append(f"exits with {describe_status(m.exit)}")
    elif m.running is True:
        said.append("is still running at the end")
    elif m.running is False:
        said.append("has exited by the end")
    if m.output is not None:
        said.append(f"prints /{m.output}/")
    return f"{m.name} on {m.host} " + (" and ".join(said) if said else "is started")


def _moment(view: RunView, ts: float) -> str:
    """A moment of the run in the story's words: after the last step that began before it."""
    before = [s for s in view.steps if float(s.get("start") or 0.0) <= ts]
    if before:
        s = before[-1]
        return f"at {s.get('name')}{fmt_offset(ts - float(s['start']))}"
    t0 = view.traffic.start if view.traffic.packets else float(view.info.get("started") or ts)
    return f"at t={ts - t0:.3f}s"


def program_output(view: RunView, run: ProgramRun) -> str | None:
    """The program's output as the run collected it; None when it was not collected."""
    if run.output_file is None:
        return None
    try:
        return view.rd.program_log(run.host, run.name).read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def check_program(exp: Expectation, view: RunView) -> Verdict:
    """How a story program ended and what it printed, from programs.jsonl and its collected output."""
    m = exp.program
    assert m is not None
    expected = describe_program_match(m)
    who = f"{m.name} on {m.host}"
    run = view.programs.get((m.host, m.name))
    events = view.rel(view.rd.programs_jsonl)
    if run is None or (run.started is None and not run.exited):
        return _verdict(exp, False, expected, f"{who} was never started", events, label="seen")
    where = f"{events} line {run.exit_line or run.line}" if (run.exit_line or run.line) else events
    if run.exited:
        ended = f"{who} exited with {describe_status(run.status)} {_moment(view, run.ended or 0.0)}"
    elif run.running_at is not None:
        ended = f"{who} was still running when the run ended"
    else:
        ended = f"{who} was started {_moment(view, run.started or 0.0)}; its end was not recorded"
    differs: list[str] = []
    if m.exit is not None and run.status != m.exit:
        differs.append("exit")
    if m.running is not None and (run.running_at is None if m.running else not run.exited):
        differs.append("running")
    seen = ended
    if m.output is not None:
        text = program_output(view, run)
        log = view.rel(view.rd.program_log(m.host, m.name))
        found = output_search(m.output, text) if text is not None else None
        if found is not None:
            line = text.count("\n", 0, found.start()) + 1
            whole = text.splitlines()[line - 1] if text.splitlines() else found.group(0)
            seen += f"; printed {whole.strip()[:160]!r}"
            if not differs:
                where = f"{log} line {line}"
        else:
            differs.append("output")
            seen += f"; {last_lines(text)}" if text is not None else "; its output was not collected"
            where = log
    note = f"; differs in {', '.join(differs)}" if differs else ""
    return _verdict(exp, not differs, expected, seen, where, time=run.ended if run.exited else None, note=note,
                    label="seen")


# --- steps the run could not play ----------------------------------------------------

def step_verdicts(view: RunView) -> list[Verdict]:
    """A failed step (a wait that timed out, a program that never became ready) is a failed check:
    the lab said TCP would get there, and it did not."""
    out = []
    for n, s in enumerate(view.steps, 1):
        if s.get("outcome") != "failed":
            continue
        name = f"step-{s.get('name', s.get('index'))}"[:31]
        expected = f"step {s.get('index')} ({s.get('title')}) completes"
        out.append(_finish(Verdict(name, str(s.get("title", "")), "step", FAILED, expected,
                                   str(s.get("detail", "")), f"steps.jsonl line {n}")))
    return out


# --- the whole list --------------------------------------------------------------

_CHECKS = {"packet": check_packet, "state": check_state, "transition": check_transition, "program": check_program}


def _verdict(exp: Expectation, held: bool, expected: str, seen: str, where: str, time: float | None = None,
             label: str = "closest", note: str = "") -> Verdict:
    v = Verdict(exp.name, exp.about or expected, exp.kind, HELD if held else FAILED, expected, seen + note, where,
                time=time, note=note)
    return _finish(v, label)


def _finish(v: Verdict, label: str = "seen") -> Verdict:
    """The one-line message of the terminal, result.json and junit.xml:
    ``FAIL name: expected E; closest: S (where); differs in ...``, or for an error
    ``ERROR name: cannot judge: MISSING; expected E``."""
    core = v.seen[: len(v.seen) - len(v.note)] if v.note else v.seen
    v.label = label
    if v.held:
        v.message = f"PASS {v.name}: {core} ({v.where})"
    elif v.error:
        v.message = f"ERROR {v.name}: cannot judge: {v.missing}; expected {v.expected}"
    else:
        v.message = f"FAIL {v.name}: expected {v.expected}; {label}: {core} ({v.where}){v.note}"
    return v


def as_error(v: Verdict, missing: str) -> Verdict:
    """The verdict made an error: what was seen stays, for whoever looks, but it decides nothing."""
    v.status = ERROR
    v.missing = missing
    return _finish(v, v.label)


def evaluate(run_dir: str | Path | RunDir, lab: Lab | None = None) -> Evaluation:
    """Every expectation of the run's lab (its lab.yaml unless given), in order; later ones may be
    timed from earlier ones. Failed steps come first: they explain the failures that follow."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if lab is None:
        lab, _ = load_lab(rd.lab_yaml, display_name=str(rd.lab_yaml))
    view = RunView(rd, lab)
    ev = Evaluation(lab.name, str(view.info.get("run", rd.path.name)), rd.path,
                    started=view.info.get("started"), ended=view.info.get("ended"))
    ev.verdicts.extend(step_verdicts(view))
    for exp in lab.expect:
        v = _CHECKS[exp.kind](exp, view)
        missing = missing_evidence(exp, v, view)
        if missing:
            v = as_error(v, missing)
        view.verdicts[exp.name] = v
        ev.verdicts.append(v)
    return ev
