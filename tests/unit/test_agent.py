"""The host agent: the real images/common/labagent (bash) run here, against HostAgent.

The agent is a shell script, so it runs the same on this machine as in a
host; the integration tests check it is what the hosts run.
"""
from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tcplab.backend.agent import HostAgent, prepare_agent_dir
from tcplab.backend.base import EngineError

ROOT = Path(__file__).resolve().parents[2]
LABAGENT = ROOT / "images" / "common" / "labagent"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[HostAgent, subprocess.Popen[bytes]]]:
    d = tmp_path / "agent"
    assert prepare_agent_dir(d)
    proc = subprocess.Popen(["bash", str(LABAGENT), str(d)])
    client = HostAgent(d, "h")
    try:
        yield client, proc
    finally:
        client.close()
        proc.kill()
        proc.wait()


def test_argv_reaches_the_command_unchanged(agent: tuple[HostAgent, subprocess.Popen[bytes]]) -> None:
    client, _ = agent
    args = ["a b", "$(touch /tmp/never)", "'\"", "*", "", "line\nbreak", "-n", "é"]
    res = client.run(["printf", "[%s]", *args])
    assert res.exit_code == 0
    assert res.stdout == "".join(f"[{a}]" for a in args)
    assert not Path("/tmp/never").exists()


def test_exit_status_and_both_outputs(agent: tuple[HostAgent, subprocess.Popen[bytes]]) -> None:
    client, _ = agent
    res = client.run(["sh", "-c", 'echo out; echo err >&2; exit "$1"', "sh", "7"])
    assert (res.exit_code, res.stdout, res.stderr) == (7, "out\n", "err\n")
    missing = client.run(["no-such-command-here"])
    assert missing.exit_code == 127 and "no-such-command-here" in missing.stderr


def test_requests_leave_no_files(agent: tuple[HostAgent, subprocess.Popen[bytes]]) -> None:
    client, _ = agent
    for i in range(5):
        assert client.run(["echo", str(i)]).stdout == f"{i}\n"
    assert sorted(p.name for p in client.directory.iterdir()) == ["requests"]


def test_overlapping_requests_each_get_their_own_answer(agent: tuple[HostAgent, subprocess.Popen[bytes]]) -> None:
    client, _ = agent
    results: dict[int, str] = {}

    def one(i: int) -> None:
        # the first ones sleep longest, so answers come back in the reverse order of the requests
        results[i] = client.run(["sh", "-c", 'sleep "$1"; echo "$2"', "sh", f"0.{8 - i}", str(i)]).stdout

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {i: f"{i}\n" for i in range(8)}
    assert time.monotonic() - t < 3  # at once, not one after the other (8 x 0.1-0.8 s = 3.6 s)


def test_a_request_written_before_the_agent_starts_is_answered(tmp_path: Path) -> None:
    d = tmp_path / "agent"
    assert prepare_agent_dir(d)
    client = HostAgent(d, "h")
    answer: list[str] = []
    th = threading.Thread(target=lambda: answer.append(client.run(["echo", "early"], timeout=20).stdout))
    th.start()
    deadline = time.monotonic() + 5
    while not list(d.glob("*.argv")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc = subprocess.Popen(["bash", str(LABAGENT), str(d)])
    try:
        th.join(20)
        assert answer == ["early\n"]
    finally:
        client.close()
        proc.kill()
        proc.wait()


def test_no_agent_times_out_with_one_line(tmp_path: Path) -> None:
    d = tmp_path / "agent"
    assert prepare_agent_dir(d)
    client = HostAgent(d, "h")
    with pytest.raises(EngineError, match=r"host h: its agent did not answer echo within 0.3 s"):
        client.run(["echo"], timeout=0.3)
    assert sorted(p.name for p in d.iterdir()) == ["requests"]
    client.close()


def test_a_dead_host_ends_the_wait_at_the_next_liveness_check(tmp_path: Path) -> None:
    d = tmp_path / "agent"
    assert prepare_agent_dir(d)
    asked: list[float] = []

    def alive() -> bool:
        asked.append(time.monotonic())
        return False

    client = HostAgent(d, "h", alive)
    t = time.monotonic()
    with pytest.raises(EngineError, match="host h is not running"):
        client.run(["echo"], timeout=30)
    assert len(asked) == 1 and time.monotonic() - t < 5
    client.close()


def test_without_its_fifo_the_agent_holds_like_sleep(tmp_path: Path) -> None:
    proc = subprocess.Popen(["bash", str(LABAGENT), str(tmp_path / "nothing-here")])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.5)
        cmd = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmd[:2] == [b"sleep", b"infinity"]
    finally:
        proc.kill()
        proc.wait()
    assert HostAgent.of(tmp_path / "nothing-here", "h") is None


def test_request_ids_that_could_name_other_files_are_ignored(agent: tuple[HostAgent, subprocess.Popen[bytes]]
                                                              ) -> None:
    client, _ = agent
    outside = client.directory.parent
    (outside / "escaped.argv").write_bytes(b"echo\0")  # would answer at once, were the id taken
    os.mkfifo(outside / "escaped.rc")
    rfd = os.open(outside / "escaped.rc", os.O_RDWR | os.O_NONBLOCK)
    fd = os.open(client.directory / "requests", os.O_WRONLY)
    os.write(fd, b"../escaped\n")
    os.close(fd)
    assert client.run(["echo", "still answering"]).stdout == "still answering\n"  # read after the bad id
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    assert poller.poll(1000) == []  # a taken id would have been answered well within this second
    os.close(rfd)
