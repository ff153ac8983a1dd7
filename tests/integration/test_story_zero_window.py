"""The zero-window story on this kernel, run for real: a reader that stops reading closes its window, the writer's
kernel probes it with backoff and the connection waits, alive, until the reader reads; the same transfer to a
reader that reads never stalls. One `lab run zero-window` (the session's, tests/conftest.py ``shipped_run``) is
shared by the tests; its deliberate fault is in tests/data/library_faults.yaml (tests/integration/test_library.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tcplab.report.gather import gather
from tcplab.report.page import build_context
from tcplab.wire import decode_tcp, read_pcap_file

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "zero-window")


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()


def test_each_probe_is_one_byte_below_what_the_reader_acknowledged(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    client, server = info["hosts"]["client"], info["hosts"]["server"]
    seen = [t for raw in read_pcap_file(str(story.run_dir / "capture" / "client.pcap"))
            if (t := decode_tcp(raw)) is not None and 40001 in (t.sport, t.dport)]
    closed = next(i for i, t in enumerate(seen) if t.src == server and t.win == 0)
    acked = seen[closed].ack
    probes = [t for t in seen[closed:] if t.src == client and not t.payload and t.seq == acked - 1]
    assert len(probes) >= 3
    # while the window is shut the client sends nothing else: no data, nothing but probes
    reopened = next(i for i, t in enumerate(seen) if i > closed and t.src == server and t.win > 0)
    assert [t for t in seen[closed:reopened] if t.src == client and t not in probes] == []


def test_the_report_explains_the_zero_window_once_and_the_control_not_at_all(story: StoryRun) -> None:
    run = gather(story.run_dir)
    ex = build_context(run)["ex"]
    (f,) = ex.of("zero_window")
    assert (f.socket.host, f.socket.local_port) == ("client", 40001)
    assert f.ended_by == "the window opened" and "open again after" in f.title
    text = " ".join(x.text for x in f.facts)
    assert "window probes" in text and "the persist timer doubles each time" in text
    assert "bytes unread in the Recv-Q of server's socket" in text and "TcpExtTCPWinProbe on client rose by" in text
