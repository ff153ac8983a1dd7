"""How short of CPU the machine was while a step played: the kernel's pressure stall information.

``/proc/pressure/cpu`` counts, since boot, the microseconds during which at least one runnable task waited
for a CPU (its ``some total``). Read at a step's start and end, the difference is how much of the step the
machine was short of CPU: on a busy runner the programs, the captures and tcplab itself wait for a core, and
a timing a story measures may be the machine's, not TCP's. Only the machine tcplab runs on is read, so a run
on an engine elsewhere records nothing.
"""
from __future__ import annotations

from pathlib import Path

PRESSURE = Path("/proc/pressure/cpu")


def cpu_stall_total(path: Path = PRESSURE) -> float | None:
    """Seconds, since boot, during which a task of the machine waited for a CPU; None where the kernel does not
    say (no PSI: an older kernel, or one booted with psi=0)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return parse_stall_total(text)


def parse_stall_total(text: str) -> float | None:
    """The ``some`` line's ``total=`` (microseconds) of a pressure file, in seconds."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "some":
            for field in fields[1:]:
                key, _, value = field.partition("=")
                if key == "total" and value.isdigit():
                    return int(value) / 1e6
    return None
