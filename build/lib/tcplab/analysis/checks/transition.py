"""The ``transition`` expectation: a socket of a host changing state (from, to), near an anchor, from the
state changes of ``sockets/transitions.jsonl`` as every reader sees them (with the derived TIME_WAIT)."""
from __future__ import annotations

from ...model.lab import Expectation, TransitionMatch
from ...runfiles import transitions
from ...runfiles.transitions import TransitionRecord, cite
from ..evidence import unplayed, untraced
from ..runview import RunView
from ..verdicts import ARROW, Verdict, fmt_span, verdict, when
from .base import Check, register


def judge_transition(exp: Expectation, m: TransitionMatch, view: RunView) -> Verdict:
    sock = f"{m.host}" + (f":{m.port}" if m.port is not None else "") + (f"{ARROW}{m.peer}" if m.peer else "")
    change = f"{m.from_ or '*'}→{m.to}"
    expected = f"{sock} {change}" + (f" within {fmt_span(m.within)} of {m.near}" if m.near else "")
    where_file = transitions.NAME
    anchor_t: float | None = None
    if m.near is not None:
        anchor_t, why = view.anchor(m.near)
        if anchor_t is None:
            return verdict(exp, False, expected, f"nothing to time from: {why}", view.anchor_where(m.near),
                           label="seen")
    reason = untraced(view)
    if reason:
        return verdict(exp, False, expected, f"no state changes recorded: {reason}", where_file, label="seen")
    host_ip = view.hosts.get(m.host)
    peer_ip = view.hosts.get(m.peer) if m.peer else None
    every = [t for t in view.transitions
             if t.get("saddr", "") == host_ip and (m.port is None or t.get("sport", 0) == m.port)
             and (m.peer is None or t.get("daddr", "") == peer_ip)]
    mine = [t for t in every if not t.get("handover")]  # a hand-over to a timewait socket is no state change
    t0 = view.traffic.start if view.traffic.packets else (view.transitions[0]["ts"] if view.transitions else 0.0)

    def describe(t: TransitionRecord) -> str:
        text = (f"{m.host}:{t.get('sport', 0)}{ARROW}{view.name_of(t.get('daddr', ''))}:{t.get('dport', 0)} "
                f"{t.get('old', '')}→{t.get('new', '')} {when(t['ts'], m.near, anchor_t, t0)}")
        return text + (f" (derived{'' if t.get('exact', True) else ', within bounds'})" if t.get("derived") else "")

    def state_ok(t: TransitionRecord) -> bool:
        return t.get("new", "") == m.to and (m.from_ is None or t.get("old", "") == m.from_)

    def off(t: TransitionRecord) -> float:
        return 0.0 if anchor_t is None else max(0.0, abs(t["ts"] - anchor_t) - m.within)

    hits = [t for t in mine if state_ok(t) and off(t) == 0.0]
    if hits:
        t = hits[0]
        return verdict(exp, True, expected, describe(t), cite(t), time=t["ts"], label="seen")
    if not mine:
        return verdict(exp, False, expected, f"no state change of {sock} recorded", where_file,
                       note=_transition_hint(m.to, every), label="seen")

    def closeness(t: TransitionRecord) -> tuple[float, float, bool]:
        old, new = t.get("old", ""), t.get("new", "")
        return ((new != m.to) * 2 + (m.from_ is not None and old != m.from_) + (off(t) > 0), off(t),
                not {m.from_, m.to} & {old, new})

    best = min(mine, key=closeness)
    differs = [w for w, bad in (("state", not state_ok(best)), ("time", off(best) > 0)) if bad]
    history = ", ".join(f"{t.get('old', '')}→{t.get('new', '')}" + (
        " (hand-over to a timewait socket)" if t.get("handover") else " (derived)" if t.get("derived") else "")
        for t in every[:10])
    note = f"; differs in {', '.join(differs)} (its changes: {history})"
    return verdict(exp, False, expected, describe(best), cite(best),
                   note=note + _still_in(m.from_, every, t0) + _transition_hint(m.to, every))


def _still_in(state: str | None, changes: list[TransitionRecord], t0: float) -> str:
    """Why ``from: STATE`` found no way out: a socket still in that state at the end of the run."""
    if state is None:
        return ""
    last: dict[tuple[int, str, int], TransitionRecord] = {}
    for t in changes:
        last[(t.get("sport", 0), t.get("daddr", ""), t.get("dport", 0))] = t
    for t in last.values():
        now = t.get("handover") or t.get("new", "")
        if now == state:
            text = f"; still in {state} at the end of the run"
            expires = t.get("expires")
            if expires is not None:
                text += f" (by its timer it ends at about t={expires - t0:.3f}s, after the run)"
            return text
    return ""


def _transition_hint(to: str, changes: list[TransitionRecord]) -> str:
    """What the tracer cannot see, when that is what was asked for."""
    if to == "LISTEN" and not any(t.get("new") == "LISTEN" for t in changes):
        return ("; a listener bound to the wildcard address (0.0.0.0) carries no lab address in the tracepoint, "
                "which names no network namespace, so the tracer does not record it: bind the program to "
                "the host's address")
    if to == "TIME_WAIT" and not any(t.get("new") == "TIME_WAIT" for t in changes):
        return ("; TIME_WAIT is derived (no tracepoint fires for a timewait socket) from a FIN_WAIT2/CLOSING → "
                "CLOSE hand-over with the peer's FIN captured or a snapshot listing TIME_WAIT")
    return ""


@register(TransitionMatch)
class TransitionCheck(Check[TransitionMatch]):
    def judge(self, exp: Expectation, m: TransitionMatch, view: RunView) -> Verdict:
        return judge_transition(exp, m, view)

    def missing(self, exp: Expectation, m: TransitionMatch, view: RunView) -> str | None:
        """The anchor was reached, the tracer ran, and the steps up to the window's end played."""
        until: float | None = None
        if m.near is not None:
            t, why = view.anchor(m.near)
            if t is None:
                return why
            until = t + m.within
        return untraced(view) or unplayed(view, until)
