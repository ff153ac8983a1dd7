"""Whether a run holds the evidence an expectation needs: no verdict without it.

A check (:mod:`tcplab.analysis.checks`) matches what was recorded; evidence says
whether what was recorded can decide. A positive expectation that found what
it looked for has its evidence. Everything else - a miss, and every negative
claim (``count``, ``absent``, ``not``), which holds only because something was
*not* seen - needs a witness: the window it judges was observed. That means
the steps leading to the end of the window played ok, the captures it reads
ran with no packet dropped by the kernel, the snapshot it reads was taken
with a tool that worked, and the tracer ran. When any of that is missing the
verdict is an error naming what was missing, in one line.

Each kind's own rule (what it reads, so what must have been recorded) lives
beside its check; this module holds the rule they share and the witnesses
they ask about.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..model import step_title
from ..model.lab import Expectation

if TYPE_CHECKING:
    from .runview import RunView
    from .verdicts import Verdict



class EvidenceRule(Protocol):
    """What a kind of expectation needs recorded (its check is one)."""

    def negative(self, m: Any) -> bool:
        """Holds because something was not seen: it needs a witness even when it holds."""
        ...

    def missing(self, exp: Expectation, m: Any, view: "RunView") -> str | None:
        """Why the run cannot decide ``exp`` (whose body is ``m``), or None."""
        ...


def missing_evidence(exp: Expectation, verdict: "Verdict", view: "RunView", rule: EvidenceRule) -> str | None:
    """Why the run cannot decide ``exp``, or None when ``verdict`` stands; ``rule`` is its kind's."""
    if verdict.held and not rule.negative(exp.match):
        return None
    return rule.missing(exp, exp.match, view)


# --- steps -------------------------------------------------------------------------

def unplayed(view: "RunView", until: float | None) -> str | None:
    """The first step that did not play ok before ``until`` (None: the end of the run), said in words."""
    played = {int(s.get("index", -1)): s for s in view.steps}
    for i in range(len(view.lab.steps)):
        s = played.get(i)
        if s is None:
            last_end = max((float(x.get("end") or x.get("start") or 0.0) for x in view.steps), default=None)
            if until is None or last_end is None or until > last_end:
                return f"step {i} ({title_of(view, i)}) was never played"
            return None
        start = float(s.get("start") or 0.0)
        if until is not None and start > until:
            return None  # the window closed before this step began
        if s.get("outcome") not in (None, "ok"):
            detail = f": {s.get('detail')}" if s.get("detail") else ""
            return f"step {i} ({s.get('title') or title_of(view, i)}) did not play ({s.get('outcome')}{detail})"
    return None


def title_of(view: "RunView", i: int) -> str:
    """The title of the lab's step ``i``."""
    return step_title(view.lab.steps[i])


# --- packets -----------------------------------------------------------------------

def capture_gaps(view: "RunView", hosts: list[str]) -> str | None:
    """What is missing from the captures of ``hosts``: a file, or packets the kernel dropped."""
    stats = view.info.get("capture_stats") or {}
    for h in hosts:
        if not view.rd.pcap(h).is_file():
            return f"there is no capture of {h} ({view.rel(view.rd.pcap(h))})"
        dropped = (stats.get(h) or {}).get("dropped") if isinstance(stats.get(h), dict) else None
        if dropped:
            return f"the capture of {h} lost {dropped} packets (dropped by the kernel, tcpdump says)"
    return None


def capture_hosts(view: "RunView", src: str | None, dst: str | None) -> list[str]:
    """The captures that would hold the packets a rule asks about: each packet is in its sender's and its
    receiver's capture, so naming one end is enough; a rule that names neither needs every host's."""
    named = [h for h in (src, dst) if h is not None]
    if not named:
        return list(view.lab.hosts)
    present = [h for h in named if view.rd.pcap(h).is_file()]
    return present[:1] or named[:1]


# --- socket tables -----------------------------------------------------------------

# --- state changes -----------------------------------------------------------------

def untraced(view: "RunView") -> str | None:
    """Why the run has no state changes to read, or None when the tracer left its file."""
    if view.traced:
        return None
    note = view.info.get("tracer", "")
    return f"the tracer did not run ({note})" if note and note != "ok" else "the run has no transitions file"
