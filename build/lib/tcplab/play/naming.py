"""Run ids and the owners of runs; the names of a run's objects are the plan's (:mod:`tcplab.plan.names`)."""
from __future__ import annotations

import time

from ..plan.names import RunNames, process_start

__all__ = ["RunNames", "new_run_id", "owner_alive", "process_start"]


def owner_alive(pid: str, start: str) -> bool:
    return pid.isdigit() and process_start(int(pid)) == start and start != ""


def new_run_id(lab: str) -> str:
    return f"{lab}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
