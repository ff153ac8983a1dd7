"""`lab gc` goes on past a run the engine will not let go of, says why in one line, and exits 3."""
from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from tcplab.backend.base import EngineError, Removed
from tcplab.cli.app import app
from tcplab.play import lifecycle
from tcplab.play.lifecycle import RunningLab


def _runs() -> list[RunningLab]:
    return [RunningLab("a", "a-1", "", "1", "x"), RunningLab("b", "b-1", "", "1", "x"), RunningLab("c", "c-1", "", "1", "x")]


def _teardown(backend: Any, run: str) -> Removed:
    if run == "b-1":
        raise EngineError("remove network tcplab-b: network tcplab-b has active endpoints")
    return Removed(containers=[f"{run}-server"], networks=[f"tcplab-{run}"])


def test_collect_garbage_tries_every_run_and_names_the_one_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "garbage", lambda backend: _runs())
    monkeypatch.setattr(lifecycle, "teardown", _teardown)
    removed, failed = lifecycle.collect_garbage(object())  # type: ignore[arg-type]
    assert [r.run for r, _ in removed] == ["a-1", "c-1"]
    assert [(r.run, why) for r, why in failed] == [("b-1", "remove network tcplab-b: network tcplab-b has active "
                                                           "endpoints")]


def test_lab_gc_says_one_line_for_it_and_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcplab.cli import down_cmd

    monkeypatch.setattr(lifecycle, "garbage", lambda backend: _runs())
    monkeypatch.setattr(lifecycle, "teardown", _teardown)
    monkeypatch.setattr(down_cmd, "engine", lambda: object())
    result = CliRunner().invoke(app, ["gc"])
    assert result.exit_code == 3, result.output
    assert "removed run a-1: 1 containers" in result.stdout and "removed run c-1" in result.stdout
    assert "Traceback" not in result.output
    assert "run b-1 not removed: remove network tcplab-b: network tcplab-b has active endpoints" in result.output
