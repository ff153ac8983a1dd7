"""The retransmit story on this kernel, run for real: two connections whose data the server's link loses, one
giving up when tcp_retries2 (4) is used up, one when its TCP_USER_TIMEOUT (3000 ms) runs out, and a control whose
packets arrive. One `lab run retransmit` (the session's, tests/conftest.py ``shipped_run``) is shared by the tests;
its deliberate faults are in tests/data/library_faults.yaml (tests/integration/test_library.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tcplab.analysis.kernel_timers import RTO_MIN, retries_timeout
from tcplab.report.gather import gather
from tcplab.report.page import build_context
from tcplab.rundir import RunDir
from tcplab.runfiles import retransmits
from tcplab.wire import decode_tcp, read_pcap_file

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "retransmit")


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()


def test_the_tracers_records_are_the_captures_retransmissions_one_for_one(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    client = info["hosts"]["client"]
    sent = [t for raw in read_pcap_file(str(story.run_dir / "capture" / "client.pcap"))
            if (t := decode_tcp(raw)) is not None and t.src == client and t.payload]
    records = retransmits.read(RunDir(story.run_dir))
    for port in (40001, 40002):
        data = [t for t in sent if t.sport == port]
        seen: set[int] = set()
        again = []
        for t in data:  # a copy of a byte sent before: the request's segments again
            if t.seq in seen or any(s < t.seq + len(t.payload) and t.seq < s for s in seen):
                again.append(t)
            seen.add(t.seq)
        mine = [r for r in records if r.get("sport") == port]
        assert len(mine) == len(again) >= 5, (port, len(mine), len(again))  # a probe and 4 RTOs at least
        # the tracepoint fires as the copy is handed down, microseconds after the capture stamps it
        assert all(0 <= r["ts"] - t.ts < 0.005 for r, t in zip(mine, again)), [(r["ts"], t.ts) for r, t in
                                                                                  zip(mine, again)]
        assert {(r["host"], r["peer"], r["state"], r["err"]) for r in mine} == {("client", "server", "ESTABLISHED", 0)}
    assert not [r for r in records if r.get("sport") == 40003]


def test_the_report_explains_both_give_ups_with_the_bound_that_ended_each(story: StoryRun) -> None:
    run = gather(story.run_dir)
    ex = build_context(run)["ex"]
    found = {f.socket.local_port: f for f in ex.of("retransmission") if f.socket.host == "client"}
    assert set(found) == {40001, 40002}, [f.title for f in ex.of("retransmission")]
    lossy, bounded = found[40001], found[40002]
    assert lossy.ended_by == bounded.ended_by == "the kernel gave up"
    lossy_text, bounded_text = " ".join(x.text for x in lossy.facts), " ".join(x.text for x in bounded.facts)
    assert "a tail loss probe" in lossy_text and "each timeout twice the one before" in lossy_text
    assert f"tcp_retries2 = 4 on client lets it give up at the first timeout at least {retries_timeout(4):.3f} s" \
        in lossy_text
    assert "sooner than tcp_retries2 = 4 on client allows" in bounded_text and "TCP_USER_TIMEOUT" in bounded_text
    # bounded's end: 3 s (its user timeout) after its first RTO retransmission, by the tracer's clock
    records = [r for r in retransmits.read(RunDir(story.run_dir)) if r.get("sport") == 40002]
    first_rto = next(r for r, prev in zip(records[1:], records) if r["ts"] - prev["ts"] >= RTO_MIN - 0.02)
    assert bounded.until is not None and 2.95 <= bounded.until - first_rto["ts"] <= 3.2, bounded.until - first_rto["ts"]
    assert not [f for f in ex.of("retransmission") if f.socket.local_port == 40003]


def test_the_ladder_marks_every_retransmission_the_tracer_saw(story: StoryRun) -> None:
    import re

    html = (story.run_dir / "report.html").read_text(encoding="utf-8")
    marked = re.findall(r'<g class="pkt [a-z ]*resent" id="a-(\d+)"', html)
    assert len(marked) == len(retransmits.read(RunDir(story.run_dir))), len(marked)
