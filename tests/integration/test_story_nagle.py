"""The nagle story on this kernel, run for real: a client that writes each request in two small pieces waits
for the server's delayed ACK (about 40 ms) on every request once the connection is interactive, the first
request is quick (quick-ACK mode), and the same client with TCP_NODELAY sends both pieces at once. One
`lab run nagle` (under a name of its own; its programs built from the Dockerfile beside it) is shared by
the tests; its deliberate faults are in tests/data/library_faults.yaml (tests/integration/test_library.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tcplab.analysis.explainers.nagle import PROMPT
from tcplab.report.gather import gather
from tcplab.report.page import build_context

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "nagle")


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()


def test_the_report_explains_the_stall_and_names_the_nodelay_connection(story: StoryRun) -> None:
    run = gather(story.run_dir)
    ex = build_context(run)["ex"]
    (f,) = ex.of("nagle")  # one stalled socket: the first run of rpc; the TCP_NODELAY run is the comparison
    nagle_conn = next(c for c in run.traffic.connections if any(p.tcp.payload == b"head01" for p in c.packets))
    assert (f.socket.host, f.socket.local_port) == ("client", nagle_conn.key[1]) and f.side == "client"
    assert "held" in f.title and "waiting for server's delayed ACK" in f.title
    facts = " ".join(x.text for x in f.facts)
    # request 1 is quick-ACKed; the explanation counts it as a pair that did not wait when its body left at once
    # behind that ACK (a client slower than that to write the body, as under CI's load once, makes it no pair)
    mine = [p for p in run.traffic.packets if p.conn is not None and p.conn.key == nagle_conn.key]
    head = next(p for p in mine if p.tcp.payload == b"head01")
    body = next(p for p in mine if p.tcp.payload == b"body01")
    ack = next(p for p in mine if p.src_host == "server" and p.flags == "." and head.ts < p.ts <= body.ts)
    if ack.ts - head.ts < PROMPT and body.ts - ack.ts < PROMPT:
        assert "did not wait" in facts
    else:
        assert "did not wait" not in facts
    assert "Compare: client:" in facts and "TCP_NODELAY" in facts
    delays = [p for p in run.traffic.packets if p.src_host == "server" and p.flags == "." and p.conn is not None
              and p.conn.key == nagle_conn.key]
    assert delays  # the bare ACKs the explanation cites are in the capture
    info = json.loads((story.run_dir / "run.json").read_text())
    if info.get("kernel", {}).get("hz"):
        assert f"HZ={info['kernel']['hz']}" in facts


def test_the_stall_is_in_the_programs_own_measure(story: StoryRun) -> None:
    logs = {p.name: p.read_text() for p in (story.run_dir / "logs" / "programs").glob("client.*.log")}
    nagle, nodelay = logs["client.nagle.log"], logs["client.nodelay.log"]
    median = lambda text: float(text.strip().splitlines()[-1].split(": ")[1].split()[0])  # noqa: E731 - one use
    assert median(nagle) >= 40 and median(nodelay) < 5, (nagle, nodelay)

