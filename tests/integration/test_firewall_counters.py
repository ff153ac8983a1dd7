"""Firewall steps, kernel counters and a host's own sysctls, on real containers with the project's images.

The server's firewall first rejects the client's connections to port 8000 (an RST for the SYN: telnet
says "Connection refused" and the client counts a failed attempt), then with an ICMP port unreachable
(refused too, with no TCP segment), then the rule is lifted and telnet connects; then the server drops everything from the client and the client's typing goes unanswered
(it retransmits) until that rule is lifted too. Only the server gets a firewall sidecar, and only it
holds NET_ADMIN; each rule is one iptables argv in steps.jsonl. The client runs with its own
net.ipv4.tcp_retries2, which the run reads back into run.json and the report.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

HOSTS = {
    "server": {"image": "tcplab/server",
               "program": {"run": ["/opt/lab/server", "8000", "5"], "name": "server", "ready": {"listen": 8000}}},
    "client": {"image": "tcplab/client", "sysctls": {"net.ipv4.tcp_retries2": 7}},
}
STEPS: list[dict[str, Any]] = [
    {"snapshot": "before"},
    {"host": "server", "firewall": "reject", "from": "client", "port": 8000, "as": "closed"},
    {"host": "client", "start": ["telnet", "server", "8000"], "as": "refused", "ready": {"log": "Unable to connect"}},
    {"snapshot": "refused"},
    {"host": "server", "lift": "closed"},
    {"host": "server", "firewall": "reject", "from": "client", "with": "icmp-port-unreachable", "as": "unreach"},
    {"host": "client", "start": ["telnet", "server", "8000"], "as": "icmp", "ready": {"log": "Unable to connect"}},
    {"host": "server", "lift": "unreach"},
    {"host": "client", "start": ["telnet", "server", "8000"], "as": "telnet", "ready": {"log": r"^Connected to"}},
    {"host": "server", "firewall": "drop", "from": "client", "as": "blackhole"},
    {"host": "client", "send": "telnet", "text": "hello\n"},
    {"wait": {"seconds": 0.6}, "timeout": "2s"},
    {"snapshot": "dropped"},
    {"host": "server", "lift": "blackhole"},
]
EXPECT: list[dict[str, Any]] = [
    {"name": "syn-rejected", "about": "the reject rule answers the SYN with an RST",
     "packet": {"from": "server", "to": "client", "port": 8000, "flags": "R.", "after": "firewall-closed",
                "before": "lift-closed"}},
    {"name": "telnet-refused", "about": "telnet reads the RST as a refused connection",
     "program": {"host": "client", "name": "refused", "output": "Connection refused"}},
    {"name": "attempt-failed", "about": "the client counts one failed connection attempt (TcpAttemptFails)",
     "counter": {"host": "client", "name": "TcpAttemptFails", "since": "before", "at": "refused", "equals": 1}},
    {"name": "icmp-refused", "about": "an ICMP port unreachable refuses the connection too, with no RST",
     "program": {"host": "client", "name": "icmp", "output": "Connection refused"}},
    {"name": "no-rst-for-icmp", "about": "the ICMP reject sends no TCP segment",
     "packet": {"from": "server", "to": "client", "has_flags": "R", "count": 0, "after": "firewall-unreach",
                "before": "lift-unreach"}},
    {"name": "connects-after-lift", "about": "with the rule lifted, telnet connects",
     "program": {"host": "client", "name": "telnet", "output": "^Connected to"}},
    {"name": "typing-retransmitted", "about": "the dropped data is retransmitted (TcpRetransSegs rises)",
     "counter": {"host": "client", "name": "TcpRetransSegs", "since": "refused", "at": "dropped", "min": 1}},
    {"name": "server-never-sees-it", "about": "the server's capture sees the data but its stack never acks it",
     "packet": {"from": "server", "to": "client", "port": 8000, "has_flags": "P", "count": 0}},
]


def run_lab(tmp: Path, expect: list[dict[str, Any]] = EXPECT) -> tuple[Any, Path, str]:
    lab, name = make_lab(tmp, "closewait-linux", changes={
        "summary": "A firewall rejects, then drops, a client.", "story": "", "reference": None,
        "hosts": HOSTS, "steps": STEPS, "expect": expect})
    out = tmp / "run"
    res = lab_cmd("run", str(lab), "--out", str(out), cwd=tmp, timeout=300)
    assert labeled_objects(name) == []
    return res, out, name


def test_firewall_rules_counters_and_sysctls_on_real_hosts(tmp_path: Path) -> None:
    res, out, name = run_lab(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads((out / "result.json").read_text())
    assert {e["name"]: e["status"] for e in result["expectations"]} == {e["name"]: "held" for e in EXPECT}
    steps = {s["name"]: s for s in map(json.loads, (out / "steps.jsonl").read_text().splitlines())}
    (rule,) = steps["firewall-closed"]["commands"]
    assert rule == {"argv": ["iptables", "-w", "5", "-I", "INPUT", "-s", json.loads((out / "run.json").read_text())[
        "hosts"]["client"], "-p", "tcp", "-m", "multiport", "--ports", "8000", "-m", "comment", "--comment",
        "tcplab:closed", "-j", "REJECT", "--reject-with", "tcp-reset"], "exit": 0}
    (lifted,) = steps["lift-closed"]["commands"]
    assert lifted["argv"][3] == "-D" and lifted["argv"][4:] == rule["argv"][4:]
    info = json.loads((out / "run.json").read_text())
    caps = {c.removeprefix(f"tcplab-{name}-"): v for c, v in info["capabilities"].items()}
    assert caps["server-firewall"] == ["NET_ADMIN"] and "client-firewall" not in caps
    assert caps["server"] == [] and caps["client"] == []
    # the host's own sysctl, as its namespace reads it, in run.json and in the report
    assert info["sysctls"]["client"]["net.ipv4.tcp_retries2"] == "7"
    assert info["sysctls"]["server"]["net.ipv4.tcp_retries2"] == "15"
    html = (out / "report.html").read_text()
    assert re.search(r"<td>client</td><td class=\"mono\">net.ipv4.tcp_retries2</td><td class=\"mono\">7</td>"
                     r"<td class=\"mono\">7</td><td>yes</td>", html)
    # every snapshot read both hosts' counters
    snaps = json.loads((out / "sockets" / "snapshots.json").read_text())
    for snap in snaps.values():
        for host in ("server", "client"):
            assert snap["hosts"][host]["counters"]["ok"], snap["hosts"][host]["counters"]


def test_a_wrong_counter_fact_fails_naming_the_expected_and_the_seen(tmp_path: Path) -> None:
    wrong = {e["name"]: dict(e) for e in EXPECT}
    attempt, retrans = wrong["attempt-failed"], wrong["typing-retransmitted"]
    wrong["attempt-failed"] = {**attempt, "counter": {**attempt["counter"], "equals": 2}}
    wrong["typing-retransmitted"] = {**retrans, "counter": {**retrans["counter"], "name": "TcpRetransSeg"}}
    res, _, _ = run_lab(tmp_path, list(wrong.values()))
    assert res.returncode == 1, res.stdout + res.stderr
    assert ("FAIL attempt-failed: expected TcpAttemptFails of client rose by = 2 from before to refused; seen: "
            "TcpAttemptFails of client rose by 1") in res.stdout
    assert ("ERROR typing-retransmitted: cannot judge: client has no counter TcpRetransSeg on this kernel "
            "(closest: TcpRetransSegs") in res.stdout
