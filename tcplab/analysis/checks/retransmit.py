"""The ``retransmit`` expectation: retransmissions a host's kernel made (the tracer's tcp:tcp_retransmit_skb and
tcp:tcp_retransmit_synack records, ``sockets/retransmits.jsonl``), in a window placed as a packet's, counted or
timed as a sequence."""
from __future__ import annotations

from ...model.lab import Expectation, RetransmitMatch
from ...runfiles import retransmits, run_info
from ...runfiles.retransmits import RetransmitRecord
from ..evidence import unplayed
from ..runview import RunView
from ..verdicts import ARROW, Verdict, verdict, when
from .base import Check, register
from .packet import expected_sequence, gaps_text, packet_window, sequence_differs

_ORDINAL = {1: "next", 2: "2nd", 3: "3rd"}


def _ordinal(n: int) -> str:
    return _ORDINAL.get(n, f"{n}th")


def describe_match(m: RetransmitMatch) -> str:
    """The retransmissions a rule asks for: ``client:40001→server retransmits (ESTABLISHED)``."""
    sock = m.host + (f":{m.port}" if m.port is not None else "") + (f"{ARROW}{m.peer}" if m.peer else "")
    return f"{sock} retransmits" + (f" ({m.state})" if m.state else "")


def cite(rec: RetransmitRecord) -> str:
    """Where a record is: ``sockets/retransmits.jsonl line 3``."""
    return f"{retransmits.NAME} line {rec.get('line', 0)}"


def _matches(m: RetransmitMatch, rec: RetransmitRecord) -> bool:
    return (rec.get("host") == m.host and (m.port is None or rec.get("sport") == m.port)
            and (m.peer is None or rec.get("peer") == m.peer) and (m.state is None or rec.get("state") == m.state))


def judge_retransmit(exp: Expectation, m: RetransmitMatch, view: RunView) -> Verdict:
    base = describe_match(m)
    w = packet_window(m, view)
    expected = base + w.timing
    if m.count is not None:
        expected = f"no retransmission: {expected}" if m.count == 0 else f"exactly {m.count} × {expected}"
    elif m.nth is not None and m.nth > 1:
        expected = f"the {_ordinal(m.nth)} {expected}"
    if w.missing:
        return verdict(exp, False, expected, f"nothing to time from: {w.missing}", w.missing_where, label="seen")
    if not retransmits.exists(view.rd):
        return verdict(exp, False, expected, _unwatched(view), retransmits.NAME, label="seen")
    anchor_t = w.start
    t0 = view.traffic.start if view.traffic.packets else float(view.info.get("started") or 0.0)
    every = retransmits.read(view.rd)
    mine = [r for r in every if _matches(m, r)]
    window = [r for r in mine if w.contains(r["ts"])]

    def describe(r: RetransmitRecord) -> str:
        peer = r.get("peer") or r.get("daddr", "?")
        state = f" {r['state']}" if r.get("state") else ""
        err = f" (err {r['err']}: the kernel could not send it)" if r.get("err") else ""
        return (f"{r.get('host')}:{r.get('sport', 0)}{ARROW}{peer}:{r.get('dport', 0)}{state} "
                f"{when(r['ts'], m.after, anchor_t, t0)}{err}")

    def on_target(r: RetransmitRecord) -> bool:
        return w.target is None or w.target[0] <= r["ts"] <= w.target[1]

    if m.intervals is not None:
        seen_gaps = [b["ts"] - a["ts"] for a, b in zip(window, window[1:])]
        sq = expected_sequence(m.intervals, m.tolerance, m.host, view, seen_gaps, skip=1)
        expected = f"{len(sq.gaps) + 1} × {base}{w.timing}, {sq.words}"
        if sq.unread:
            return verdict(exp, False, expected, sq.unread, run_info.NAME, label="seen")
        if not window:
            return verdict(exp, False, expected, _none(every, mine, m), retransmits.NAME, label="seen")
        differs = sequence_differs(sq, seen_gaps)
        if not on_target(window[0]):
            differs.append("time")
        seen = f"{len(window)}: the first {describe(window[0])}" + (
            f", then {gaps_text(seen_gaps)} apart" if seen_gaps else ", and no other")
        note = f"; differs in {', '.join(differs)}" if differs else ""
        return verdict(exp, not differs, expected, seen, cite(window[0]),
                       time=window[0]["ts"] if not differs else None, note=note, label="seen")
    if m.count is not None:
        held = len(window) == m.count
        if not window:
            return verdict(exp, held, expected, _none(every, mine, m), retransmits.NAME, label="seen")
        more = f"; and {len(window) - 3} more" if len(window) > 3 else ""
        shown = "; ".join(describe(r) for r in window[:3]) + more
        return verdict(exp, held, expected, f"{len(window)}: {shown}", cite(window[0]), time=window[0]["ts"],
                       label="seen")
    if m.after is not None or m.nth is not None:
        nth = m.nth or 1
        if len(window) >= nth:
            r = window[nth - 1]
            if on_target(r):
                return verdict(exp, True, expected, describe(r), cite(r), time=r["ts"], label="seen")
            return verdict(exp, False, expected, describe(r), cite(r), note="; differs in time",
                           label=f"the {_ordinal(nth)} retransmission")
        if window:
            shown = "; ".join(describe(r) for r in window[:3])
            return verdict(exp, False, expected, f"only {len(window)}: {shown}", cite(window[0]), label="seen")
    else:
        hits = [r for r in window if on_target(r)]
        if hits:
            return verdict(exp, True, expected, describe(hits[0]), cite(hits[0]), time=hits[0]["ts"], label="seen")
    return verdict(exp, False, expected, _none(every, mine, m, outside=len(mine) - len(window)), retransmits.NAME,
                   label="seen")


def _none(every: list[RetransmitRecord], mine: list[RetransmitRecord], m: RetransmitMatch, outside: int = 0) -> str:
    """Why no retransmission of the window fits: what the run recorded instead."""
    if not every:
        return "the kernels retransmitted nothing in this run (the file is empty)"
    if mine:
        return (f"none in the window ({len(mine)} of {m.host}'s that fit came outside it)" if outside
                else "none in the window")
    socks = sorted({f"{r.get('host')}:{r.get('sport', 0)}" + (f" ({r['state']})" if r.get("state") else "")
                    for r in every})
    return f"none of the {len(every)} recorded fits (theirs: {', '.join(socks[:5])}{', ...' if len(socks) > 5 else ''})"


def _unwatched(view: RunView) -> str:
    """Why the run has no retransmissions file, in words."""
    note = view.info.get("tracer", "")
    why = f"the tracer did not run ({note})" if note and note != "ok" else (
        "the tracer did not watch retransmissions (no tcp:tcp_retransmit_skb tracepoint on this kernel, or an "
        "older tracer)")
    return f"no {retransmits.NAME}: {why}"


@register(RetransmitMatch)
class RetransmitCheck(Check[RetransmitMatch]):
    def judge(self, exp: Expectation, m: RetransmitMatch, view: RunView) -> Verdict:
        return judge_retransmit(exp, m, view)

    def negative(self, m: RetransmitMatch) -> bool:
        return m.count is not None or m.intervals is not None  # a sequence is every retransmission of its window

    def missing(self, exp: Expectation, m: RetransmitMatch, view: RunView) -> str | None:
        """The window must be placed (its anchors reached), the retransmissions watched (the file: no file is no
        evidence), and the steps played up to the window's end."""
        w = packet_window(m, view)
        if w.missing:
            return w.missing
        if not retransmits.exists(view.rd):
            return _unwatched(view)
        if m.intervals is not None:
            unread = expected_sequence(m.intervals, m.tolerance, m.host, view).unread
            if unread:
                return unread
        return unplayed(view, w.observed_until())

