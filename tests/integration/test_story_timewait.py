"""The timewait story on this kernel, run for real: the side that closes first keeps TIME_WAIT (60 s, shown
by ss's timer, not waited out), the passive closer passes through CLOSE_WAIT and LAST_ACK, a client with four
local ports fails its fifth connect() with EADDRNOTAVAIL, and the same client with tcp_tw_reuse = 1 takes a
TIME_WAIT port over. One `lab run timewait` (under a name of its own; its program built from the Dockerfile
beside it) is shared by the tests; its deliberate faults are in tests/data/library_faults.yaml
(tests/integration/test_library.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tcplab.report.gather import gather
from tcplab.report.page import build_context

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "timewait")


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()
    assert len(result["expectations"]) == len(yaml.safe_load((story.run_dir / "lab.yaml").read_text())["expect"])


def test_the_kernel_facts_it_depends_on_are_recorded(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    sysctls = info["sysctls"]
    assert sysctls["tight"]["net.ipv4.ip_local_port_range"] == "40000 40003"
    assert sysctls["reuse"]["net.ipv4.tcp_tw_reuse"] == "1"
    assert sysctls["tight"]["net.ipv4.tcp_tw_reuse"] in ("0", "1", "2")  # the kernel's own default, as read
    assert (info.get("kernel") or {}).get("release") or (info.get("engine") or {}).get("kernel")  # uname -r


def test_the_report_explains_time_wait_and_the_ports_running_out(story: StoryRun) -> None:
    ex = build_context(gather(story.run_dir))["ex"]
    out = {f.socket.host: f for f in ex.of("port_exhaustion")}
    assert set(out) == {"tight", "reuse"}, [f.title for f in ex.findings]
    tight = out["tight"]
    assert tight.side == "client" and "EADDRNOTAVAIL" in tight.title and "4 local ports" in tight.title
    facts = " ".join(x.text for x in tight.facts)
    assert "every port of the range" in facts and "Cannot assign requested address" in facts
    assert "net.ipv4.tcp_tw_reuse on tight is" in facts
    assert "took over local port 4000" in " ".join(x.text for x in out["reuse"].facts)
    # the TIME_WAIT sockets themselves, on the client, with ss's own countdown; the server's prompt passive close
    tw = ex.of("time_wait")
    assert tw and all(f.socket.host in ("tight", "reuse") and f.side == "client" for f in tw)
    assert any("timer:(timewait," in x.text for f in tw for x in f.facts)
    assert ex.of("close_wait") == []
    html = (story.run_dir / "report.html").read_text(encoding="utf-8")
    assert "held by TIME_WAIT" in html and "EADDRNOTAVAIL" in html

