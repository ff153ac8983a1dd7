"""What the run shows and why: every registered explainer, then the comparison the lab asks for.

Pure data in (packets, socket timelines, snapshots, program logs, the lab as
the model reads it, run.json, the tracer's records), structured findings out; the
report renders them. Each phenomenon (CLOSE_WAIT, a lingering FIN_WAIT2,
TIME_WAIT, an RST after a close, ...) is one explainer in
:mod:`tcplab.analysis.explainers` that speaks only when the run shows it.
A lab that names a field report (``reference:``) is compared with it by
:mod:`tcplab.analysis.references`; every other lab gets no comparison.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Lab
from ..runfiles.peer_events import PeerEvent
from ..runfiles.run_info import RunInfo
from ..runfiles.snapshots import Snapshots
from ..runfiles.transitions import TransitionRecord
from .explainers import EXPLAINERS, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, option_shape
from .packets import Traffic
from .references import Difference, reference_named
from .references.closewait_field_report import FIELD_REPORT, window_reason, wscale_reason
from .timeline import Timelines

__all__ = ["Explanation", "explain", "Fact", "Finding", "Difference", "FIELD_REPORT", "fmt_span", "fmt_t",
           "option_shape", "window_reason", "wscale_reason"]


@dataclass
class Explanation:
    t0: float
    findings: list[Finding]
    differences: list[Difference]
    results: dict[str, Result] = field(default_factory=dict)  # by explainer kind
    more: list[tuple[str, int]] = field(default_factory=list)  # ("sockets in TIME_WAIT", 12): not explained one by one
    notes: list[str] = field(default_factory=list)
    reference: str | None = None  # the title of the field report compared with; None: the lab names none
    reference_name: str = ""
    reference_unknown: str = ""  # a reference the lab names that tcplab does not know

    @property
    def normal_closes(self) -> int:
        """Sockets whose CLOSE_WAIT the application ended promptly (not findings)."""
        r = self.results.get("close_wait")
        return len(r.normal) if r else 0

    @property
    def normal_longest(self) -> float:
        r = self.results.get("close_wait")
        return max(r.normal) if r and r.normal else 0.0

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def explain(traffic: Traffic, timelines: Timelines, snapshots: Snapshots, logs: dict[str, str],
            lab: Lab | None, engine: dict[str, str] | None = None, *, info: RunInfo | None = None,
            transitions: list[TransitionRecord] | None = None,
            peer_events: dict[str, list[PeerEvent]] | None = None, reference: str | None = None) -> Explanation:
    """Run every explainer over one run's evidence. ``lab`` is the run's lab.yaml through the model (None
    when the run has no readable one); ``info`` is run.json (the engine, and what else the run recorded:
    HZ, sysctls); ``engine`` alone is accepted for callers that have only that. ``reference``: the field
    report the lab names, when the model could not read it (a lab of a tcplab that knows other reports)."""
    run_info = RunInfo(**(info or {}))
    if engine and not run_info.get("engine"):
        run_info["engine"] = engine
    run = RunEvidence(traffic, timelines, snapshots, logs, lab, run_info, list(transitions or []),
                      dict(peer_events or {}))
    findings: list[Finding] = []
    results: dict[str, Result] = {}
    more: list[tuple[str, int]] = []
    notes: list[str] = []
    for cls in EXPLAINERS:
        r = cls().explain(run)
        results[cls.kind] = r
        findings += r.findings
        if r.more:
            more.append((cls.what, r.more))
        notes += r.notes
    named = lab.reference.report if lab is not None and lab.reference is not None else None
    name = str(named or reference or "")
    ref = reference_named(name)
    differences = ref.compare(run, findings) if ref is not None else []
    unknown = name if name and ref is None else ""
    return Explanation(run.t0, findings, differences, results, more, notes,
                       reference=ref.title if ref is not None else None, reference_name=name,
                       reference_unknown=unknown)
