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


def _image(id_: str, created: int, *tags: str) -> dict[str, Any]:
    return {"Id": id_, "Created": created, "RepoTags": list(tags) or ["<none>:<none>"]}


def test_old_builds_keeps_the_newest_of_each_repository_and_what_a_container_uses() -> None:
    from tcplab.backend.images import old_builds

    images = [_image("sha:a1", 100, "tcplab-build/svc-a:111"),
              _image("sha:a2", 200, "tcplab-build/svc-a:222"),
              _image("sha:a3", 300, "tcplab-build/svc-a:333"),
              _image("sha:b1", 150, "tcplab-build/svc-b:aaa"),
              _image("sha:lost", 50),  # its tag went to a newer build of the same hash
              _image("sha:used", 120, "tcplab-build/svc-a:444"),
              # one make, tagged for two labs: old in c's repository, newest in d's
              _image("sha:shared", 160, "tcplab-build/lab-c:555", "tcplab-build/lab-d:555"),
              _image("sha:c2", 400, "tcplab-build/lab-c:666")]
    old = old_builds(images, used={"sha:used"})
    assert old == ["sha:lost", "tcplab-build/svc-a:111", "tcplab-build/lab-c:555", "tcplab-build/svc-a:222"]


def test_lab_gc_images_names_each_image_and_exits_3_for_one_the_engine_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcplab.cli import down_cmd

    class Engine:
        def remove_old_builds(self) -> tuple[list[str], list[tuple[str, str]]]:
            return (["tcplab-build/svc-a:111"], [("tcplab-build/svc-a:222", "conflict: image is being used")])

    monkeypatch.setattr(lifecycle, "garbage", lambda backend: [])
    monkeypatch.setattr(down_cmd, "engine", lambda: Engine())
    result = CliRunner().invoke(app, ["gc", "--images"])
    assert result.exit_code == 3, result.output
    assert "removed image tcplab-build/svc-a:111 (an older build)" in result.stdout
    assert "image tcplab-build/svc-a:222 not removed: conflict: image is being used" in result.output
    plain = CliRunner().invoke(app, ["gc"])  # without --images, no image is looked at
    assert plain.exit_code == 0 and plain.stdout.strip() == "nothing to collect", plain.output


def test_two_builds_in_one_second_are_told_apart_by_the_inspections_time() -> None:
    from tcplab.backend.images import old_builds

    images = [_image("sha:z-later", 0, "tcplab-build/svc:2"), _image("sha:a-earlier", 0, "tcplab-build/svc:1")]
    images[0]["Created"] = "2026-12-01T14:55:01.12345Z"
    images[1]["Created"] = "2026-12-01T14:55:01.1234Z"  # fewer digits, earlier: not "later" as text
    assert old_builds(images, used=set()) == ["tcplab-build/svc:1"]
    images[1]["Created"] = "2026-12-01T14:55:01.5Z"
    assert old_builds(images, used=set()) == ["tcplab-build/svc:2"]
