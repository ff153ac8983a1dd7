"""TIME_WAIT on the real kernel: `transition: {to: TIME_WAIT}` holds through `lab run`.

A client closes its telnet (the active close), the server's program reads end-of-file and closes too,
so the client's socket ends in TIME_WAIT. The kernel's tracepoint shows only FIN_WAIT2 -> CLOSE for it
(the hand-over to a timewait socket); the lab's expectations can hold only through the derivation,
whose records `lab run` appends to sockets/transitions.jsonl once the tracer has stopped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

LAB: dict[str, Any] = {
    "summary": "A clean close: the client closes first and keeps TIME_WAIT.",
    "hosts": {
        "server": {"image": "tcplab/server",
                   "program": {"run": ["/opt/lab/server", "8000", "5"], "name": "server", "ready": {"listen": 8000}}},
        "client": {"image": "tcplab/client"},
    },
    "steps": [
        {"host": "client", "start": ["telnet", "server", "8000"], "as": "telnet1", "ready": {"log": "Connected to"}},
        {"snapshot": "established"},
        {"host": "client", "stop": "telnet1", "title": "client closes telnet"},
        {"wait": {"fin_from": "server"}, "timeout": "5s", "title": "the server's program closes too"},
        {"snapshot": "time_wait"},
    ],
    "expect": [
        {"name": "client-enters-time-wait", "about": "the active closer's socket goes FIN_WAIT2 -> TIME_WAIT",
         "transition": {"host": "client", "peer": "server", "from": "FIN_WAIT2", "to": "TIME_WAIT",
                        "near": "stop-telnet1", "within": "1s"}},
        {"name": "client-listed-in-time-wait", "about": "netstat lists the client's socket in TIME_WAIT",
         "state": {"host": "client", "peer": "server", "is": "TIME_WAIT", "at": "time_wait"}},
        {"name": "server-never-in-time-wait", "about": "the passive closer keeps no TIME_WAIT",
         "state": {"host": "server", "port": 8000, "peer": "client", "not": "TIME_WAIT", "at": "time_wait"}},
    ],
}


def test_time_wait_holds_through_lab_run(tmp_path: Path) -> None:
    path, name = make_lab(tmp_path, "closewait-linux", changes=dict(LAB))
    out = tmp_path / "run"
    try:
        res = lab_cmd("run", str(path), "--out", str(out), cwd=tmp_path, timeout=300)
    finally:
        left = labeled_objects(name)
        if left:
            lab_cmd("down", name, cwd=tmp_path, timeout=120)
    assert not left
    assert res.returncode == 0, res.stdout + res.stderr
    verdicts = {e["name"]: e for e in json.loads((out / "result.json").read_text())["expectations"]}
    assert all(e["held"] for e in verdicts.values()) and len(verdicts) == 3
    held = verdicts["client-enters-time-wait"]
    assert "FIN_WAIT2→TIME_WAIT" in held["seen"] and "derived: timewait" in held["where"], held

    lines = [json.loads(x) for x in (out / "sockets" / "transitions.jsonl").read_text().splitlines()]
    ips = json.loads((out / "run.json").read_text())["hosts"]
    client = [r for r in lines if r.get("host") == "client" and r.get("saddr") == ips["client"]]
    traced = [(r["old"], r["new"]) for r in client if not r.get("derived") and r["event"] == "inet_sock_set_state"]
    # what the kernel itself says: the full socket's FIN_WAIT2 ends in CLOSE, no TIME_WAIT anywhere
    assert traced[-3:] == [("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
    handover = next(n for n, r in enumerate(lines, 1) if r.get("host") == "client" and r.get("new") == "CLOSE"
                    and not r.get("derived"))
    derived = [r for r in client if r.get("derived")]
    assert derived and all(r["derived"] == "timewait" for r in derived)
    mark = next(r for r in derived if r["event"] == "timewait_handover")
    assert mark["handover_line"] == handover and mark["state"] in ("TIME_WAIT", "FIN_WAIT2")
    entry = next(r for r in derived if r.get("new") == "TIME_WAIT")
    assert entry["old"] == "FIN_WAIT2" and entry["evidence"]["fin"].startswith("capture/client.pcap #")
    assert entry["evidence"]["snapshots"] == ["time_wait", "end"]
    assert entry["evidence"]["timer"].startswith("timewait,")
    # derived once: the report read the file as written
    report = (out / "report.html").read_text()
    assert "TIME_WAIT" in report and "derived (no tracepoint fires for a timewait socket)" in report
