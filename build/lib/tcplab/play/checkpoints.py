"""Named points of a run, for the interrupt tests and for timing.

``TCPLAB_CHECKPOINTS_LOG=FILE`` appends each point's name as it is reached
(the tests learn the points of a whole run from it); ``TCPLAB_INTERRUPT_AT=
POINT`` makes the process send itself ``TCPLAB_INTERRUPT_SIGNAL`` (SIGINT by
default) there, exactly as a user's Ctrl-C or CI's SIGTERM would arrive.
Both are no-ops unless set.
"""
from __future__ import annotations

import os
import signal


def checkpoint(point: str) -> None:
    log = os.environ.get("TCPLAB_CHECKPOINTS_LOG")
    if log:
        with open(log, "a") as f:
            f.write(point + "\n")
    if os.environ.get("TCPLAB_INTERRUPT_AT") == point:
        name = os.environ.get("TCPLAB_INTERRUPT_SIGNAL", "SIGINT")
        os.kill(os.getpid(), signal.Signals[name])
