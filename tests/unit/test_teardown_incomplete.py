"""`lab run`'s take-down when the engine keeps an object after the run was collected (Docker 20.10 under load
now and then keeps a network "with active endpoints" that no container holds): bring_down says so with
TeardownIncomplete, after recording it in run.json, so that the whole evidence can still be judged; a failure
before the collection is complete stays what it was. Collection and teardown are stand-ins here."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.backend.base import EngineError
from tcplab.play import lifecycle
from tcplab.play.errors import TeardownIncomplete
from tcplab.rundir import RunDir

KEPT = "remove network tcplab-x: error while removing network: network tcplab-x id 35a2 has active endpoints"


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> lifecycle.RunningLab:
    RunDir(tmp_path / "run").create().lab_yaml.write_text("name: x\n")  # a run directory as bring_up leaves it

    def teardown(backend: Any, run: str) -> Any:
        raise EngineError(KEPT)

    monkeypatch.setattr(lifecycle, "load_run_lab", lambda running: None)
    monkeypatch.setattr(lifecycle, "teardown", teardown)
    monkeypatch.setattr(lifecycle, "derive_timewait", lambda rd, say: None)
    return lifecycle.RunningLab("x", "x-run", str(tmp_path / "run"), "1", "1")


def test_a_collected_run_whose_network_the_engine_keeps(running: lifecycle.RunningLab,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "collect", lambda *a, **k: None)
    with pytest.raises(TeardownIncomplete, match="active endpoints"):
        lifecycle.bring_down(object(), running, lambda msg: None)  # type: ignore[arg-type]
    info = json.loads((Path(running.run_dir) / "run.json").read_text())
    assert info["state"] == "down" and info["error"] == f"teardown incomplete: {KEPT}"


def test_a_collection_that_failed_is_not_judged(running: lifecycle.RunningLab,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def collect(*a: Any, **k: Any) -> None:
        raise EngineError("copy /capture from tcplab-x-a-capture: gone")

    monkeypatch.setattr(lifecycle, "collect", collect)
    with pytest.raises(EngineError) as e:
        lifecycle.bring_down(object(), running, lambda msg: None)  # type: ignore[arg-type]
    assert not isinstance(e.value, TeardownIncomplete)
