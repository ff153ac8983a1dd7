"""The part-I war stories of the firewall/counters work (labs/half-open.yaml, backlog.yaml, abortive-close.yaml)
on this kernel: each `lab run` as shipped holds every expectation and its report explains the phenomenon;
a copy of the run with one wrong fact, judged again, fails naming the expected and the closest seen."""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.expectations import evaluate


pytestmark = pytest.mark.integration

# each lab: phrases of its report's explanation, then one wrong fact (expectation, field, value) and what its
# FAIL line must name
STORIES: dict[str, dict[str, Any]] = {
    "half-open": {
        "explained": ["half-open: server forgot the connection", "reason TCP_ABORT_ON_CLOSE",
                      "That RST is in no capture: it never left server's host",
                      "Nothing crossed the wire for"],
        "fault": ("client-counts-reset", "counter.equals", 2),
        "message": ["expected TcpEstabResets of client rose by = 2 from forgotten to after",
                    "seen: TcpEstabResets of client rose by 1"],
    },
    "backlog": {
        "explained": ["server 10.", ":8000: the accept queue is full", "Recv-Q 3 (connections waiting for accept())",
                      "and Send-Q 2 (its backlog)", "the ACK found the queue full and was dropped",
                      "with tcp_abort_on_overflow = 1 an overflow resets the connection",
                      "net.ipv4.tcp_abort_on_overflow = 1 (recorded in run.json)"],
        "fault": ("synack-again-after-1s", "packet.delay", "2s"),
        "message": ["expected server→client port 40003 [S.] at first-synack+2.000s±0.200s",
                    "the next matching packet: server→client [S.] seq 0 ack 1", "ports 8000>40003 at first-synack+1.0"],
    },
    "abortive-close": {
        "explained": ["close() sent an RST instead of a FIN", "close() with SO_LINGER 0 sent an RST",
                      "TcpExtTCPAbortOnData rose by 1", "an aborted connection leaves no TIME_WAIT"],
        "fault": ("linger-counted", "counter.name", "TcpExtTCPAbortOnClose"),
        "message": ["expected TcpExtTCPAbortOnClose of server rose by = 1 from after_unread to after_linger",
                    "seen: TcpExtTCPAbortOnClose of server rose by 0"],
    },
}


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.fixture
def story_runs(shipped_run: Any) -> Any:
    """``run(lab)``: the session's one `lab run` of that lab (tests/conftest.py ``shipped_run``)."""
    def run(lab: str) -> tuple[Any, Path, str]:
        proc, out, _, name = shipped_run(lab)
        return proc, out, name
    return run


@pytest.mark.parametrize("lab", list(STORIES))
def test_the_story_holds_and_is_explained(lab: str, story_runs: Any) -> None:
    proc, out, _ = story_runs(lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0
    info = json.loads((out / "run.json").read_text())
    print(f"{lab}: {info['ended'] - info['started']:.1f} s, phases {info['phases']}")
    page = text_of((out / "report.html").read_text(encoding="utf-8"))
    for phrase in STORIES[lab]["explained"]:
        assert phrase in page, phrase


@pytest.mark.parametrize("lab", list(STORIES))
def test_a_wrong_fact_fails_naming_expected_and_closest(lab: str, story_runs: Any, tmp_path: Path) -> None:
    proc, out, _ = story_runs(lab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    expect, field, value = STORIES[lab]["fault"]
    data = yaml.safe_load((copy / "lab.yaml").read_text())
    exp = next(e for e in data["expect"] if e["name"] == expect)
    kind, key = field.split(".")
    exp[kind][key] = value
    (copy / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    verdicts = {v.name: v for v in evaluate(copy).verdicts}
    assert [n for n, v in verdicts.items() if v.status == "failed"] == [expect]
    for fragment in STORIES[lab]["message"]:
        assert fragment in verdicts[expect].message, verdicts[expect].message
