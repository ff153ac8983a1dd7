"""Whether the machine had the CPU a story's timings need: from each step's share of waiting for a CPU.

Each step records how long, while it played, a task of the machine waited for a CPU
(:mod:`tcplab.observe.machine`). Over the story (every step that says), that is a share of its time. Above
:data:`SHORT_OF_CPU` the machine was short of CPU for much of the story: the programs, the captures, the
peers' timers and tcplab itself waited for a core, so a timing that failed may be the machine's, not TCP's.
This never changes a verdict; the report shows the share and ``lab run`` says it beside a failure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..runfiles.steps import StepRecord

# of the story's time with a task waiting for a CPU. Measured on a 2-core machine: one closewait alone, 0.05-0.06
# of its steps (bring-up, which no step covers, is busier); ten at once, 0.70-0.95 (all of them held: closewait's
# timing is its peer's, at real-time priority); the whole library at once failed timings (nagle's round trips)
SHORT_OF_CPU = 0.5
MAY_BE_THE_MACHINES = "a timing that failed may be the machine's, not TCP's"  # what a short machine means for a verdict


@dataclass(frozen=True)
class CpuPressure:
    stalled: float  # seconds of the story in which a task waited for a CPU
    story: float  # seconds of the steps that recorded it

    @property
    def share(self) -> float:
        return self.stalled / self.story if self.story > 0 else 0.0

    @property
    def short(self) -> bool:
        return self.share >= SHORT_OF_CPU

    def describe(self) -> str:
        return f"a task waited for a CPU {self.share:.0%} of the story's {self.story:.1f} s"


def cpu_pressure(steps: Iterable[StepRecord]) -> CpuPressure | None:
    """Over the steps that recorded it; None when none did (an engine elsewhere, a kernel without PSI, a run
    of an older tcplab)."""
    stalled = story = 0.0
    seen = False
    for s in steps:
        if "cpu_stalled" in s and "start" in s and "end" in s:
            seen = True
            stalled += float(s["cpu_stalled"])
            story += max(0.0, float(s["end"]) - float(s["start"]))
    return CpuPressure(min(stalled, story), story) if seen else None


def short_of_cpu_line(pressure: CpuPressure | None) -> str | None:
    """What ``lab run`` says beside a failure when the machine was short of CPU; None when it was not, or
    nobody knows."""
    if pressure is None or not pressure.short:
        return None
    return (f"the machine was short of CPU during the story: {pressure.describe()}; {MAY_BE_THE_MACHINES} "
            "(run fewer labs at once, or on more cores)")
