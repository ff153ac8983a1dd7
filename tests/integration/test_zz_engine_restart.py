"""Issue 8.3: the engine restarts mid-run. `lab run` exits 3 naming the engine, keeps the artifacts,
and once the engine answers again, nothing of the run is left. Runs last: it restarts dockerd."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from ..conftest import ROOT, labeled_objects, record_figure, wait_for
from .test_crashes import LONG_WAIT, start_run

pytestmark = pytest.mark.integration


def _dockerd_pid() -> int:
    return int(Path("/var/run/docker.pid").read_text().strip())


def test_engine_restart_mid_run(tmp_path: Path) -> None:
    proc, name, out = start_run(tmp_path, LONG_WAIT)
    old = _dockerd_pid()
    os.kill(old, signal.SIGTERM)
    wait_for(lambda: not Path(f"/proc/{old}").exists(), 60, "dockerd to stop")
    # the engine comes back the way CI starts it
    subprocess.run(["bash", str(ROOT / "scripts" / "setup"), "--no-venv"], check=True, capture_output=True,
                   timeout=120)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("lab: ") and ("engine" in last or "exited" in last), last
    assert (out / "capture").is_dir() and any((out / "capture").glob("*.pcap"))
    assert labeled_objects(name) == []
    record_figure("crashes", "engine restart", 0)
