"""The machine's CPU pressure during a story: read from the kernel's pressure file, summed over the steps that
recorded it, and said beside a failure only when the machine was short of CPU for much of the story."""
from __future__ import annotations

from pathlib import Path

from tcplab.analysis.machine import SHORT_OF_CPU, cpu_pressure, short_of_cpu_line
from tcplab.observe.machine import cpu_stall_total, parse_stall_total
from tcplab.runfiles.steps import StepRecord

PSI = """some avg10=5.22 avg60=28.07 avg300=23.11 total=17806476252
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
"""


def test_the_some_total_is_read_in_seconds() -> None:
    assert parse_stall_total(PSI) == 17806.476252
    assert parse_stall_total("full avg10=0.00 total=5\n") is None  # no "some" line
    assert parse_stall_total("some avg10=1.0 total=x\n") is None


def test_a_kernel_without_pressure_information_says_nothing(tmp_path: Path) -> None:
    assert cpu_stall_total(tmp_path / "no-such-file") is None
    (tmp_path / "cpu").write_text(PSI)
    assert cpu_stall_total(tmp_path / "cpu") == 17806.476252


def _step(i: int, start: float, end: float, stalled: float | None) -> StepRecord:
    s: StepRecord = {"index": i, "start": start, "end": end}
    if stalled is not None:
        s["cpu_stalled"] = stalled
    return s


def test_the_share_is_over_the_steps_that_recorded_it() -> None:
    steps = [_step(0, 0.0, 1.0, 0.2), _step(1, 1.0, 1.5, None), _step(2, 1.5, 4.5, 2.4)]
    p = cpu_pressure(steps)
    assert p is not None and p.story == 4.0 and abs(p.stalled - 2.6) < 1e-9 and p.share == 0.65 and p.short
    assert p.describe() == "a task waited for a CPU 65% of the story's 4.0 s"
    assert cpu_pressure([_step(0, 0.0, 1.0, None)]) is None  # a remote engine, or an older run
    assert cpu_pressure([]) is None


def test_the_line_is_said_only_when_the_machine_was_short_of_cpu() -> None:
    below = cpu_pressure([_step(0, 0.0, 10.0, 10.0 * SHORT_OF_CPU - 0.01)])
    at = cpu_pressure([_step(0, 0.0, 10.0, 10.0 * SHORT_OF_CPU)])
    assert short_of_cpu_line(below) is None and short_of_cpu_line(None) is None
    line = short_of_cpu_line(at)
    assert line is not None and line.startswith("the machine was short of CPU during the story: a task waited for "
                                                "a CPU 50% of the story's 10.0 s; a timing that failed may be")
