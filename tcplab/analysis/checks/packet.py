"""The ``packet`` expectation: packets on the wire (from/to, flags, relative seq/ack, options, payload, count),
timed from an anchor, from the run's captures (:mod:`tcplab.analysis.packets`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...model.lab import INTERVAL_PATTERNS, Expectation, Intervals, PacketMatch, RetransmitMatch, sysctl_ref
from ...wire import ACK, FLAG_BITS
from ..evidence import capture_gaps, capture_hosts, unplayed
from ...runfiles import run_info
from ..kernel_timers import RTO_MIN, recorded, recorded_pattern, rto_backoff
from ..packets import Packet
from ..runview import RunView
from ..verdicts import ARROW, Verdict, fmt_span, verdict, when
from .base import Check, register

_FLAG_BIT = dict(FLAG_BITS)


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
    if m.length is not None and not _length_fits(m, len(t.payload)):
        d.append(("length", 1))
    if m.probe is not None and p.probe != m.probe:
        d.append(("probe", 2))
    return d


def _length_fits(m: PacketMatch, length: int) -> bool:
    if isinstance(m.length, int):
        return length == m.length
    return m.length is None or ((m.length.min is None or length >= m.length.min)
                                and (m.length.max is None or length <= m.length.max))


def _length_words(m: PacketMatch) -> str:
    if isinstance(m.length, int):
        return f"length {m.length}"
    lo, hi = (m.length.min, m.length.max) if m.length is not None else (None, None)
    if lo is not None and hi is not None:
        return f"length {lo}-{hi}"
    return f"length >= {lo}" if lo is not None else f"length <= {hi}"


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
    if m.length is not None:
        parts.append(_length_words(m))
    if m.probe is not None:
        parts.append("a zero-length probe (seq = snd_una - 1)" if m.probe else "not a probe")
    if m.seen_at is not None:
        parts.append(f"as captured on {m.seen_at}")
    return " ".join(parts)


def describe_packet(p: Packet, m: PacketMatch, at: str) -> str:
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
    if m.probe is not None:
        parts.append(f"length {len(t.payload)}" + (", a probe" if p.probe else ", not a probe"))
    elif m.length is not None:
        parts.append(f"length {len(t.payload)}")
    parts.append(at)
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
    unread: str = ""  # a sysctl the rule is stated for that the run did not read

    def contains(self, ts: float) -> bool:
        return (self.start is None or ts > self.start) and (self.end is None or ts <= self.end)

    def observed_until(self) -> float | None:
        """The last moment the rule judges; None: the end of the run."""
        if self.target is not None:
            return self.target[1]
        return self.end


def packet_window(m: PacketMatch | RetransmitMatch, view: RunView) -> PacketWindow:
    """Where the rule looks: after its anchor (at its delay), up to ``within`` or ``before``."""
    w = PacketWindow()
    if m.after is not None:
        anchor_t, why = view.anchor(m.after)
        delay = m.delay_seconds(view.lab) if m.delay is not None else None
        ref = sysctl_ref(m.delay)
        if ref is not None:
            value, w.unread = recorded(view.info.get("sysctls"), *ref)
            delay = None if value is None else float(value)
        # a delay that is a sysctl of the kernel's is one of its timers, which fire up to 1/8 of their time
        # late (the timer wheel's granularity), never early
        late = delay / 8 if ref is not None and delay is not None else 0.0
        if m.delay is not None:
            named = f" ({m.delay}{': a kernel timer' if late else ''})" if isinstance(m.delay, str) else ""
            slack = f", or up to {fmt_span(late)} later" if late else ""
            w.timing = (f" at {m.after}+{fmt_span(delay)}±{fmt_span(m.tolerance)}{slack}{named}" if delay is not None
                        else f" at {m.after}+{m.delay} (not {'read' if ref else 'set'} in this run)")
        elif m.within is not None:
            w.timing = f" within {fmt_span(m.within)} after {m.after}"
        else:
            w.timing = f" after {m.after}"
        if anchor_t is None:
            w.missing, w.missing_where = why, view.anchor_where(m.after)
            return w
        w.start = anchor_t
        if m.delay is not None:
            if delay is None:
                w.unresolved_delay = True
            else:
                w.target = (anchor_t + delay - m.tolerance, anchor_t + delay + m.tolerance + late)
        if m.within is not None:
            w.end = anchor_t + m.within
    if m.before is not None:
        before_t, why = view.anchor(m.before)
        w.timing += f" before {m.before}"
        if before_t is None:
            w.missing, w.missing_where = why, view.anchor_where(m.before)
            return w
        w.end = before_t if w.end is None else min(w.end, before_t)
    return w


_ORDINAL = {1: "next", 2: "2nd", 3: "3rd"}


def _ordinal(n: int) -> str:
    return _ORDINAL.get(n, f"{n}th")


def judge_packet(exp: Expectation, m: PacketMatch, view: RunView) -> Verdict:
    """After an anchor a rule is about one packet, the next matching one (or the ``nth``): a later
    packet that happens to fit the delay does not count unless ``any: true`` says so."""
    base = describe_match(m)
    t0 = view.traffic.start
    w = packet_window(m, view)
    one = m.after is not None and m.count is None and not m.any
    nth = m.nth or 1
    expected = _expected(base, w.timing, m.count)
    if m.nth is not None and m.nth > 1:
        expected = f"the {_ordinal(m.nth)} {expected}" if m.after is not None else f"{expected} (the {_ordinal(m.nth)})"
    if w.missing:
        return verdict(exp, False, expected, f"nothing to time from: {w.missing}", w.missing_where, label="seen")
    if w.unread:
        return verdict(exp, False, expected, w.unread, run_info.NAME, label="seen")
    anchor_t = w.start

    def at(p: Packet) -> str:
        return when(p.ts, m.after, anchor_t, t0)

    def on_target(p: Packet) -> bool:
        return w.target is None or w.target[0] <= p.ts <= w.target[1]

    packets = view.traffic.packets
    if m.seen_at is not None:  # each packet as the host's capture holds it; one it never saw is not there
        packets = [q for q in (p.at(m.seen_at) for p in packets) if q is not None]
    candidates = [] if w.unresolved_delay else [p for p in packets if w.contains(p.ts) and not _packet_diffs(m, p)]
    if m.intervals is not None:
        seq = judge_sequence(exp, m, view, base, w, candidates, at, on_target)
        if seq is not None:
            return seq
    elif m.count is not None:
        held = len(candidates) == m.count
        if not candidates:
            return verdict(exp, held, expected, f"none among the {len(packets)} packets captured", "capture/",
                           label="seen")
        shown = "; ".join(describe_packet(p, m, at(p)) + (f" ({p.where()})" if i else "")
                          for i, p in enumerate(candidates[:3]))
        more = f"; and {len(candidates) - 3} more" if len(candidates) > 3 else ""
        return verdict(exp, held, expected, f"{len(candidates)}: {shown}{more}", candidates[0].where(),
                       time=candidates[0].ts, label="seen")
    if one or m.nth is not None:
        if len(candidates) >= nth:
            p = candidates[nth - 1]
            if on_target(p):
                return verdict(exp, True, expected, describe_packet(p, m, at(p)), p.where(), time=p.ts,
                               label="seen")
            note = "; differs in time"
            fits = [(i, c) for i, c in enumerate(candidates, 1) if on_target(c)]
            if fits:
                i, c = fits[0]
                note += (f" (the {_ordinal(i)} matching packet, {c.where()}, came {at(c)}: write nth: {i}, "
                         "or any: true, if that is the one meant)")
            return verdict(exp, False, expected, describe_packet(p, m, at(p)), p.where(),
                           note=note, label=f"the {_ordinal(nth)} matching packet")
        if candidates:
            shown = "; ".join(describe_packet(c, m, at(c)) + f" ({c.where()})" for c in candidates[:3])
            return verdict(exp, False, expected, f"only {len(candidates)} matching: {shown}", candidates[0].where(),
                           label="seen")
    else:
        matching = [p for p in candidates if on_target(p)]
        if matching:
            p = matching[0]
            return verdict(exp, True, expected, describe_packet(p, m, at(p)), p.where(), time=p.ts, label="seen")
    if not packets:
        return verdict(exp, False, expected, "no TCP packets were captured"
                       + (f" on {m.seen_at}" if m.seen_at is not None else ""), "capture/")

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
    seen = describe_packet(best, m, at(best))
    note = f"; differs in {', '.join(dict.fromkeys(differs))}" if differs else ""
    if w.unresolved_delay:
        note += f"; {m.delay} is not set in this run (only a Windows peer has that timer)"
    return verdict(exp, False, expected, seen, best.where(), note=note)


@dataclass
class Sequence:
    """The gaps a sequence rule asks for, with each one's tolerance, in words; or why it has none."""
    gaps: list[float]
    tolerances: list[float]
    words: str
    unread: str = ""
    floor: float | None = None  # the least the first gap may be (rto-backoff: TCP_RTO_MIN)


# how far below TCP_RTO_MIN a first RTO may seem: the capture stamps the original a little after the kernel does
FLOOR_SLACK = 0.001


def expected_sequence(intervals: Intervals, tolerance: float, host: str, view: RunView,
                      seen: list[float] | None = None, skip: int = 0) -> Sequence:
    """The gaps of ``intervals``: as written, or a kernel timer's for the sysctls the run read on ``host`` (the
    sender), without its first ``skip`` gaps (a sequence of retransmissions has no original), or ``rto-backoff``
    computed from the first of the gaps ``seen``. A kernel timer fires up to 1/8 of its time late (the timer
    wheel's granularity), so each gap of a timer's pattern is allowed that much on top of ``tolerance``."""
    tol = tolerance
    if isinstance(intervals, list):
        return Sequence(list(intervals), [tol] * len(intervals),
                        f"{', '.join(fmt_span(g) for g in intervals)} apart (±{fmt_span(tol)})")
    name = str(intervals)
    if name == "rto-backoff":
        first = seen[0] if seen else RTO_MIN
        gaps = rto_backoff(first, max(len(seen or []), 2)).gaps
        return Sequence(gaps, [tol + g / 8 for g in gaps],
                        f"each gap twice the one before, the first (the RTO) at least {fmt_span(RTO_MIN)} "
                        f"(±{fmt_span(tol)} + 1/8 of each gap: rto-backoff on {host})", floor=RTO_MIN)
    pattern, why = recorded_pattern(name, INTERVAL_PATTERNS[name], view.info.get("sysctls"), host)
    if pattern is None:
        return Sequence([], [], f"{name} of {host}", unread=why)
    gaps = pattern.gaps[skip:]
    spaced = f"{', '.join(fmt_span(g) for g in gaps)} apart" if gaps else "no retransmission"
    return Sequence(gaps, [tol + g / 8 for g in gaps],
                    f"{spaced} (±{fmt_span(tol)} + 1/8 of each gap: {name} for {pattern.why} on {host})")


def sequence_of(m: PacketMatch, view: RunView, seen: list[float] | None = None) -> Sequence:
    """The gaps of ``m.intervals`` for the sending host (``from``)."""
    assert m.intervals is not None
    return expected_sequence(m.intervals, m.tolerance, m.from_ or "", view, seen)


def sequence_differs(sq: Sequence, seen_gaps: list[float]) -> list[str]:
    """How the gaps seen differ from the sequence's: their count, the first below its floor, the first gap off."""
    differs: list[str] = []
    if len(seen_gaps) != len(sq.gaps):
        differs.append("count")
    if sq.floor is not None and seen_gaps and seen_gaps[0] < sq.floor - FLOOR_SLACK:
        differs.append(f"gap 1 ({fmt_span(seen_gaps[0])} seen: below TCP_RTO_MIN, {fmt_span(sq.floor)})")
    off = [i for i, (g, s, tol) in enumerate(zip(sq.gaps, seen_gaps, sq.tolerances)) if abs(s - g) > tol]
    if off:
        i = off[0]
        differs.append(f"gap {i + 1} ({fmt_span(sq.gaps[i])} expected, {fmt_span(seen_gaps[i])} seen)")
    return differs


def gaps_text(seen_gaps: list[float]) -> str:
    """The gaps seen, in words (the first 12)."""
    return ", ".join(fmt_span(g) for g in seen_gaps[:12]) + (", ..." if len(seen_gaps) > 12 else "")


def judge_sequence(exp: Expectation, m: PacketMatch, view: RunView, base: str, w: PacketWindow,
                   candidates: list[Packet], at: Callable[[Packet], str],
                   on_target: Callable[[Packet], bool]) -> Verdict | None:
    """Every matching packet of the window, the gaps between them as asked; None: nothing matched at all (the
    caller then shows the closest packet)."""
    seen_gaps = [b.ts - a.ts for a, b in zip(candidates, candidates[1:])]
    sq = sequence_of(m, view, seen_gaps)
    expected = f"{len(sq.gaps) + 1} × {base}{w.timing}, {sq.words}"
    if sq.unread:
        return verdict(exp, False, expected, sq.unread, run_info.NAME, label="seen")
    if not candidates:
        return None
    differs = sequence_differs(sq, seen_gaps)
    if not on_target(candidates[0]):
        differs.append("time")
    first = candidates[0]
    seen = f"{len(candidates)}: the first {describe_packet(first, m, at(first))}" + (
        f", then {gaps_text(seen_gaps)} apart" if seen_gaps else ", and no other")
    note = f"; differs in {', '.join(differs)}" if differs else ""
    return verdict(exp, not differs, expected, seen, first.where(), time=first.ts if not differs else None,
                   note=note, label="seen")


def _expected(base: str, timing: str, count: int | None) -> str:
    if count is None:
        return base + timing
    if count == 0:
        return f"no {base}{timing}"
    return f"exactly {count} × {base}{timing}"


@register(PacketMatch)
class PacketCheck(Check[PacketMatch]):
    def judge(self, exp: Expectation, m: PacketMatch, view: RunView) -> Verdict:
        return judge_packet(exp, m, view)

    def negative(self, m: PacketMatch) -> bool:
        return m.count is not None or m.intervals is not None  # a sequence is every packet of its window

    def missing(self, exp: Expectation, m: PacketMatch, view: RunView) -> str | None:
        """The window must be placed (its anchors reached, the sysctls it is stated for read), played up to its
        end, and captured whole."""
        w = packet_window(m, view)
        if w.missing:
            return w.missing
        if w.unread:
            return w.unread
        if m.intervals is not None:
            unread = sequence_of(m, view).unread
            if unread:
                return unread
        gap = unplayed(view, w.observed_until())
        if gap:
            return gap
        if m.seen_at is not None:
            return capture_gaps(view, [m.seen_at])
        return capture_gaps(view, capture_hosts(view, m.from_, m.to))
