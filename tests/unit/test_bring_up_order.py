"""The order in which a host and its sidecars are made: sidecars created while the host starts,
started only once it runs (they join its network namespace)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from tcplab.backend.base import ContainerSpec
from tcplab.model import load_lab
from tcplab.paths import LABS_DIR
from tcplab.play.naming import RunNames
from tcplab.play.session import LabRun
from tcplab.rundir import RunDir


class RecordingBackend:
    """Records create/start calls; a host's start takes a while, as on a real engine."""
    shares_files = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def _note(self, what: str, name: str) -> None:
        with self.lock:
            self.calls.append((what, name, time.monotonic()))

    def create_container(self, spec: ContainerSpec) -> str:
        self._note("create", spec.name)
        return spec.name

    def start_created(self, container: str) -> None:
        self._note("start", container)
        if not container.endswith(("-capture", "-peer")):
            time.sleep(0.2)
        self._note("started", container)

    def wait_log(self, container: str, needle: str, timeout: float) -> bool:
        return True


def test_sidecars_are_created_during_the_host_start_and_started_after_it(tmp_path: Path) -> None:
    lab, resolved = load_lab(LABS_DIR / "closewait.yaml")
    backend = RecordingBackend()
    run = LabRun(lab, resolved, backend, RunDir(tmp_path).create(), RunNames(lab.name, "r1", str(tmp_path)))  # type: ignore[arg-type]
    run.start_host_and_sidecars("win")
    at = {(what, name): t for what, name, t in backend.calls}
    host = run.names.host("win")
    sidecars = [run.names.sidecar("win", "capture"), run.names.sidecar("win", "peer")]
    for s in sidecars:
        assert at[("create", s)] < at[("started", host)], "created while the host starts"
        assert at[("start", s)] >= at[("started", host)], "started once the host runs"
    assert [c for c in backend.calls if c[0] == "create"][0][1] == host
