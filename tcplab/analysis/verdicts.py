"""A verdict on one expectation, the verdicts of a run, and how they are said.

Every verdict says what was expected, what was seen that came closest, and where to look
(``capture/win.pcap #6``, ``sockets/server-close_wait.txt``, ``sockets/transitions.jsonl line 12``), in
the manner of packetdrill's "expected ... but got ..." errors, on one line for the terminal,
result.json and junit.xml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model.lab import Expectation
from ..runfiles.result import VerdictRecord
from .machine import CpuPressure

ARROW = "→"
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

    def to_dict(self) -> VerdictRecord:
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
    # expectation -> the published facts it checks, each with its source, in one line (the lab's reference)
    cited: dict[str, list[str]] = field(default_factory=dict)
    cpu: CpuPressure | None = None  # how short of CPU the machine was while the steps played, where recorded

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


# --- making one ------------------------------------------------------------------

def verdict(exp: Expectation, held: bool, expected: str, seen: str, where: str, time: float | None = None,
            label: str = "closest", note: str = "") -> Verdict:
    """``exp`` held or failed; ``note`` (what differs) follows ``seen`` and, in the message, the place."""
    v = Verdict(exp.name, exp.about or expected, exp.kind, HELD if held else FAILED, expected, seen + note, where,
                time=time, note=note)
    return finish(v, label)


def finish(v: Verdict, label: str = "seen") -> Verdict:
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
    return finish(v, v.label)


# --- saying when -----------------------------------------------------------------

def fmt_offset(dt: float) -> str:
    """+2.310s, -0.004s, +0.317ms: seconds to the ms, and sub-10 ms offsets to the µs."""
    if abs(dt) >= 0.01 or dt == 0:
        return f"{dt:+.3f}s"
    return f"{dt * 1e3:+.3f}ms"


def fmt_span(seconds: float) -> str:
    return f"{seconds:.3f}s" if seconds >= 0.01 or seconds == 0 else f"{seconds * 1e3:.3f}ms"


def when(ts: float, anchor_name: str | None, anchor_t: float | None, t0: float) -> str:
    """``at win-fin+2.000s`` from an anchor, else ``at t=3.141s`` from the run's first packet."""
    if anchor_name is not None and anchor_t is not None:
        return f"at {anchor_name}{fmt_offset(ts - anchor_t)}"
    return f"at t={ts - t0:.3f}s"
