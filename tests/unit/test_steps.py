"""Kinds of step: each is its model class (tcplab/model/lab.py, one line in STEP_KINDS) and its player
(tcplab/play/steps/<kind>.py), which plays it on a run and says how a person plays it by hand."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tcplab.backend.base import ContainerState, ExecResult
from tcplab.model import load_lab
from tcplab.model.lab import (
    STEP_KINDS,
    BaseStep,
    Name,
    SendStep,
    SnapshotStep,
    StartStep,
    StopStep,
    WaitStep,
    step_kind,
    step_name,
    step_title,
)
from tcplab.paths import LABS_DIR
from tcplab.plan import RunNames
from tcplab.play.errors import StepFailure
from tcplab.play.session import LabRun
from tcplab.play.steps import PLAYERS, InHost, Note, OnMachine, StepPlayer, player_for
from tcplab.rundir import RunDir


def test_every_kind_of_step_has_one_player() -> None:
    assert set(PLAYERS) == set(STEP_KINDS.values())
    for kind, cls in STEP_KINDS.items():
        assert player_for(cls.model_construct()).kind is cls, kind


def test_a_step_of_no_known_kind_has_no_player() -> None:
    class Odd(BaseStep):
        odd: int

    with pytest.raises(LookupError, match="no player for a Odd: add one in tcplab/play/steps/"):
        player_for(Odd(odd=1))


@pytest.mark.parametrize("step,name,title", [
    (StartStep(host="c", start=["telnet", "s", "8000"], **{"as": "t1"}), "start-t1", "c starts t1: telnet s 8000"),
    (StopStep(host="c", stop="t1"), "stop-t1", "c closes t1"),
    (SendStep(host="c", send="t1", text="hi\n"), "send-t1-4", "c types into t1"),
    (SnapshotStep(snapshot="after"), "after", "snapshot after"),
    (WaitStep(wait={"rst_from": "w"}), "wait-4", "wait for an RST from w"),
    (WaitStep(wait={"fin_from": "w"}), "wait-4", "wait for a FIN from w"),
    (WaitStep(wait={"exit": "t1"}, host="c"), "wait-4", "wait for t1 on c to exit"),
    (WaitStep(wait={"seconds": 2.5}), "wait-4", "wait 2.5 s"),
    (SnapshotStep(snapshot="x", title="my own words"), "x", "my own words"),
])
def test_each_kind_names_and_titles_its_steps(step: BaseStep, name: str, title: str) -> None:
    assert (step_name(step, 4), step_title(step)) == (name, title)


class FakeRun:
    """What a player may use of a run, recorded."""

    def __init__(self, results: list[ExecResult]) -> None:
        self.results = results
        self.ran: list[tuple[str, list[str]]] = []
        self.pids = {("c", "t1"): 7}
        self.health_checks = 0

    def run_in(self, host: str, argv: list[str]) -> ExecResult:
        self.ran.append((host, argv))
        return self.results.pop(0)

    def check_health(self) -> None:
        self.health_checks += 1

    def own_program(self, host: str, prog: str) -> bool:
        return False


def test_stop_plays_labstop_and_says_how_the_program_ended() -> None:
    run = FakeRun([ExecResult(0, "exited with status 143\n", "")])
    step = StopStep(host="c", stop="t1", signal="INT")
    assert player_for(step).play(run, step, 3) == "sent SIGINT; exited with status 143"  # type: ignore[arg-type]
    assert run.ran == [("c", ["labstop", "t1", "INT"])] and run.pids == {}
    run = FakeRun([ExecResult(0, "had already exited with status 1", "")])
    assert player_for(step).play(run, step, 3) == "had already exited with status 1"  # type: ignore[arg-type]


def test_a_send_that_cannot_reach_its_program_fails_the_step() -> None:
    run = FakeRun([ExecResult(1, "", "no such program\n")])
    step = SendStep(host="c", send="t1", text="x")
    with pytest.raises(StepFailure, match="c: could not send to t1: no such program"):
        player_for(step).play(run, step, 0)  # type: ignore[arg-type]


def test_a_wait_for_seconds_checks_the_hosts_as_it_waits() -> None:
    run = FakeRun([])
    step = WaitStep(wait={"seconds": 0.02})
    player = player_for(step)
    assert player.play(run, step, 0) == "waited 0.02 s"  # type: ignore[arg-type]
    assert run.health_checks >= 1
    assert player.time_limit(step) == 30.0 and player_for(StopStep(host="c", stop="t1")).time_limit(step) is None


def test_by_hand_each_kind_says_what_to_type() -> None:
    lab, _ = load_lab(LABS_DIR / "closewait.yaml")
    start = StartStep(host="linux", start=["telnet", "server", "8000"], ready={"log": "^Connected"},
                      **{"as": "t1"})
    assert player_for(start).by_hand(start, lab, "./runs/x") == [
        InHost("linux", ["labrun", "t1", "telnet", "server", "8000"]),
        Note("ready once its output matches the regex '^Connected':"),
        InHost("linux", ["grep", "-P", "--", "^Connected", "/var/log/lab/t1.log"])]
    snap = SnapshotStep(snapshot="s")
    assert player_for(snap).by_hand(snap, lab, "./runs/x") == [InHost(h, ["netstat", "-tanp"]) for h in lab.hosts]
    rst = WaitStep(wait={"rst_from": "win"}, timeout=5)
    assert player_for(rst).by_hand(rst, lab, "./runs/x")[1] == OnMachine(
        ["tcpdump", "-nr", "./runs/x/capture/win.pcap", "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0"])


class RunningBackend:
    """Every host runs; nothing else is asked of it."""
    shares_files = True

    def state(self, container: str) -> ContainerState:
        return ContainerState(container, "running")


def test_a_new_kind_of_step_is_its_class_and_its_player(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered in STEP_KINDS and PLAYERS, a kind plays through LabRun.play_step and lands in steps.jsonl
    like the shipped ones: play_step knows no kind by name."""
    class ChimeStep(BaseStep):
        chime: Name
        title: str | None = None

        def name_at(self, index: int) -> str:
            return f"chime-{self.chime}"

        def default_title(self) -> str:
            return f"chime {self.chime}"

    class ChimePlayer(StepPlayer[ChimeStep]):
        kind: ClassVar[type[BaseStep]] = ChimeStep

        def play(self, run: Any, step: ChimeStep, index: int) -> str:
            return f"rang {step.chime} at step {index}"

        def time_limit(self, step: ChimeStep) -> float | None:
            return 1.5

    monkeypatch.setitem(STEP_KINDS, "chime", ChimeStep)
    monkeypatch.setitem(PLAYERS, ChimeStep, ChimePlayer())
    lab, resolved = load_lab(LABS_DIR / "closewait.yaml")
    said: list[str] = []
    rd = RunDir(tmp_path).create()
    run = LabRun(lab, resolved, RunningBackend(), rd, RunNames(lab.name, "r1", str(tmp_path)),  # type: ignore[arg-type]
                 said.append)
    run.play_step(2, ChimeStep(chime="bell"))
    assert said == ["step 2: chime bell (up to 1.5 s)"]
    assert step_kind(ChimeStep(chime="bell")) == "chime"
    [record] = [json.loads(line) for line in rd.steps_jsonl.read_text().splitlines()]
    assert (record["name"], record["kind"], record["outcome"], record["detail"]) == (
        "chime-bell", "chime", "ok", "rang bell at step 2")
