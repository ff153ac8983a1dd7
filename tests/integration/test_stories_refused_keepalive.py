"""The refused and keepalive war stories, run for real on this kernel: every expectation holds as shipped,
the run records the sysctls the facts were computed for, and a copy of the run whose lab.yaml
states one fact wrongly fails naming the expected value and the closest seen (judged again with no engine).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tcplab.analysis.expectations import evaluate

from ..conftest import lab_cmd, make_lab

pytestmark = pytest.mark.integration

Run = tuple[subprocess.CompletedProcess[str], Path, float]


@pytest.fixture
def story_run(shipped_run: Callable[[str], Any]) -> Callable[[str], Run]:
    """``run(lab)``: the session's one `lab run` of that lab (tests/conftest.py ``shipped_run``), its run
    directory, its time."""
    return lambda name: shipped_run(name)[:3]


def _verdicts(rd: Path) -> dict[str, Any]:
    return {v["name"]: v for v in json.loads((rd / "result.json").read_text())["expectations"]}


def _judge_with(rd: Path, tmp_path: Path, expectation: str, change: dict[str, Any]) -> Any:
    """The verdict of ``expectation`` on a copy of the run whose lab.yaml has ``change`` under it."""
    copy = tmp_path / "faulty"
    shutil.copytree(rd, copy)
    data = yaml.safe_load((copy / "lab.yaml").read_text())
    exp = next(e for e in data["expect"] if e["name"] == expectation)
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = exp
        for p in parents:
            node = node[p]
        node[last] = value
    (copy / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    verdicts = {v.name: v for v in evaluate(copy).verdicts}
    failed = [n for n, v in verdicts.items() if v.status == "failed"]
    assert failed == [expectation], failed  # the fault, and nothing else, fails
    return verdicts[expectation]


@pytest.mark.parametrize("name", ["refused", "keepalive"])
def test_the_story_holds_on_this_kernel(name: str, story_run: Callable[[str], Run]) -> None:
    proc, rd, took = story_run(name)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert all(v["status"] == "held" for v in _verdicts(rd).values())
    print(f"lab run {name}: {took:.1f} s")


def test_refused_records_the_retry_sysctls_and_the_pattern_follows_them(story_run: Callable[[str], Run]) -> None:
    proc, rd, _ = story_run("refused")
    assert proc.returncode == 0, proc.stdout
    client = json.loads((rd / "run.json").read_text())["sysctls"]["client"]
    assert client["net.ipv4.tcp_syn_retries"] == "2" and "net.ipv4.tcp_syn_linear_timeouts" in client
    v = _verdicts(rd)["syn-retransmits"]
    assert f"tcp_syn_retries=2, tcp_syn_linear_timeouts={client['net.ipv4.tcp_syn_linear_timeouts']}" in v["expected"]
    assert "Connection refused" in _verdicts(rd)["telnet-refused"]["seen"]
    assert "Connection timed out" in _verdicts(rd)["telnet-timed-out"]["seen"]


def test_refused_fault_wrong_gaps(story_run: Callable[[str], Run], tmp_path: Path) -> None:
    """A wrong fact: the retries doubling from the start (the pattern of a kernel without linear timeouts)."""
    proc, rd, _ = story_run("refused")
    assert proc.returncode == 0, proc.stdout
    v = _judge_with(rd, tmp_path, "syn-retransmits", {"packet.intervals": ["1s", "2s", "4s"]})
    assert v.message.startswith("FAIL syn-retransmits: expected 4 × client→server port 8000 [S] after start-dropped, "
                                "1.000s, 2.000s, 4.000s apart (±0.100s); seen: 6: the first client→server [S]")
    assert "differs in count, gap 2 (2.000s expected, 1.0" in v.message


def test_refused_fault_wrong_errno(story_run: Callable[[str], Run], tmp_path: Path) -> None:
    proc, rd, _ = story_run("refused")
    assert proc.returncode == 0, proc.stdout
    v = _judge_with(rd, tmp_path, "telnet-refused", {"program.error": "ETIMEDOUT"})
    assert v.message.startswith('FAIL telnet-refused: expected closed on client reports ETIMEDOUT ("Connection timed '
                                'out", [Errno 110]); seen: closed on client exited with status 1')
    assert "it reported ECONNREFUSED (line 2) instead" in v.message


def test_keepalive_fault_wrong_idle_time(story_run: Callable[[str], Run], tmp_path: Path) -> None:
    """A wrong fact: the first probe 1 s after the last packet heard (the sysctl says 2 s)."""
    proc, rd, _ = story_run("keepalive")
    assert proc.returncode == 0, proc.stdout
    v = _judge_with(rd, tmp_path, "keepalive-probes", {"packet.delay": "1s"})
    assert v.message.startswith("FAIL keepalive-probes: expected 3 × client→server port 40001 [.] a zero-length probe "
                                "(seq = snd_una - 1) at last-heard+1.000s±0.150s, 1.000s, 1.000s apart")
    assert "seen: 3: the first client→server [.] seq " in v.message and v.message.endswith("differs in time")


def test_keepalive_fault_control_with_a_timer(story_run: Callable[[str], Run], tmp_path: Path) -> None:
    proc, rd, _ = story_run("keepalive")
    assert proc.returncode == 0, proc.stdout
    v = _judge_with(rd, tmp_path, "control-no-timer", {"state.timer": "keepalive"})
    assert v.message.startswith("FAIL control-no-timer: expected client:40002 ESTABLISHED, timer keepalive at idle; "
                                "closest: client:40002→server:8000 ESTABLISHED ")
    assert v.message.endswith("differs in timer (keepalive expected, off seen)")


def test_a_listeners_queues_on_real_containers(tmp_path: Path) -> None:
    """closewait-linux's second client waits in the accept queue of a listener with backlog 5: ss shows
    Recv-Q 1 and Send-Q 5 on the listener; a wrong queue fails naming what ss showed."""
    path, name = make_lab(tmp_path, "closewait-linux")
    data = yaml.safe_load(path.read_text())
    data["steps"] = data["steps"][:3]  # both telnets connected, the snapshot `established`
    data.pop("reference", None)  # its facts name the story's own expectations
    data["expect"] = [
        {"name": "accept-queue", "about": "one connection waits in the accept queue of a backlog of 5",
         "state": {"host": "server", "port": 8000, "is": "LISTEN", "recv_q": 1, "send_q": 5, "at": "established"}},
        {"name": "queue-wrong", "about": "a deliberate fault: two waiting",
         "state": {"host": "server", "port": 8000, "is": "LISTEN", "recv_q": {"min": 2}, "at": "established"}}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = lab_cmd("run", str(path), "--out", str(tmp_path / "run"), timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdicts = _verdicts(tmp_path / "run")
    assert verdicts["accept-queue"]["status"] == "held", verdicts["accept-queue"]
    assert verdicts["queue-wrong"]["status"] == "failed"
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL queue-wrong: "))
    assert line.startswith("FAIL queue-wrong: expected server:8000 LISTEN, Recv-Q >= 2 at established; closest: "
                           "server:8000 LISTEN "), line
    assert "/server Recv-Q 1 Send-Q 5 (sockets/server-established.ss.txt)" in line
    assert "; differs in recv_q (>= 2 expected, 1 seen)" in line, line
