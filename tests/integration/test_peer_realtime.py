"""The Windows peer's FIN_WAIT_2 timer at SCHED_FIFO, on the real engine: the session's one `lab run closewait`
(tests/conftest.py ``shipped_run``) is enough. Its peer sidecar alone gets SYS_NICE; it runs its timers at
SCHED_FIFO where the engine gives real-time tasks room (cgroup v2, or cgroup v1 whose engine cgroup has a
real-time budget), and says why not elsewhere; run.json and the report carry its word."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from .stories import story_run

pytestmark = pytest.mark.integration

RT_ROOT = Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")  # present where real-time tasks are scheduled by cgroup
ENGINE_RT = Path("/sys/fs/cgroup/cpu/docker/cpu.rt_runtime_us")  # the engine's own budget (cgroupfs driver)


def engine_gives_realtime() -> bool:
    """Whether this machine's engine can start a container at SCHED_FIFO: no RT group scheduling at all, or a
    budget in the engine's cgroup."""
    if not RT_ROOT.exists():
        return True
    try:
        return int(ENGINE_RT.read_text()) > 0
    except (OSError, ValueError):
        return False


def test_the_peer_alone_gets_sys_nice_and_says_how_its_timer_ran(shipped_run: Any) -> None:
    story = story_run(shipped_run, "closewait")
    assert story.proc.returncode == 0, story.said()
    info = json.loads((story.run_dir / "run.json").read_text())
    caps: dict[str, list[str]] = info["capabilities"]
    assert [c for c, v in caps.items() if "SYS_NICE" in v] == [f"tcplab-{story.name}-win-peer"]
    events = [json.loads(line) for line in (story.run_dir / "logs" / "peer" / "win.jsonl").read_text().splitlines()]
    first = events[0]
    assert first["event"] == "timer_priority" and first["conn"] is None
    said = info["peer_timers"]["win"]
    assert said == first["detail"]
    if engine_gives_realtime():
        assert said.startswith("FIN_WAIT_2 timers at SCHED_FIFO priority 10 (CAP_SYS_NICE"), said
    else:
        assert "SCHED_FIFO refused, EPERM" in said and "CAP_SYS_NICE" in said, said
    assert html.escape(said) in (story.run_dir / "report.html").read_text(encoding="utf-8")
