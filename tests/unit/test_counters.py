"""Kernel counters: read in each host's network namespace at every snapshot (nstat's names), and the
``counter`` expectation on a value or its change between two snapshots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.expectations import evaluate
from tcplab.model import LabError
from tcplab.model.loader import check_references, validate
from tcplab.observe.counters import closest_names, counters_in_snapshot, parse_counters, read_counters
from tcplab.observe.sockets import snapshot_tables

NETSTAT = """TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPAbortOnClose TCPAbortOnData
TcpExt: 0 3 4 1 0
IpExt: InNoRoutes InOctets
IpExt: 0 1234
"""
SNMP = """Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm MaxConn ActiveOpens EstabResets OutRsts
Tcp: 1 -1 5 1 2
"""


def test_counters_are_named_as_nstat_names_them() -> None:
    values = parse_counters(NETSTAT + SNMP)
    assert values["TcpExtListenOverflows"] == 3 and values["TcpExtTCPAbortOnClose"] == 1
    assert values["IpExtInOctets"] == 1234 and values["TcpEstabResets"] == 1 and values["TcpMaxConn"] == -1
    assert values["IpDefaultTTL"] == 64


def test_counters_that_could_not_be_read_are_missing_not_zero() -> None:
    ok = read_counters(NETSTAT + SNMP, "", 0)
    assert ok["ok"] is True and ok["values"]["TcpOutRsts"] == 2  # type: ignore[index]
    gone = read_counters(NETSTAT, "cat: /proc/net/snmp: No such file or directory\n", 1)
    assert gone["ok"] is False and gone["error"] == "cat: /proc/net/snmp: No such file or directory"
    empty = read_counters("", "", 0)
    assert empty["ok"] is False and empty["error"] == "no counters"


def test_a_misspelt_counter_gets_the_closest_names() -> None:
    known = sorted(parse_counters(NETSTAT + SNMP))
    assert closest_names("TcpExtListenOverflow", known)[0] == "TcpExtListenOverflows"
    assert closest_names("ListenDrops", known) == ["TcpExtListenDrops"]


# --- the expectation --------------------------------------------------------------

LAB: dict[str, Any] = {
    "name": "counters", "network": {"subnet": "10.9.1.0/24"},
    "hosts": {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}},
    "steps": [{"snapshot": "before"}, {"snapshot": "after"}],
}
T0 = 1_800_000_000.0


def counters(overflows: int, ok: bool = True) -> dict[str, Any]:
    if not ok:
        return {"argv": ["cat"], "ok": False, "error": "cat: /proc/net/netstat: Permission denied", "values": {}}
    return {"argv": ["cat"], "ok": True, "values": {"TcpExtListenOverflows": overflows, "TcpExtListenDrops": overflows}}


def make_run(tmp_path: Path, expect: list[dict[str, Any]], after: dict[str, Any] | None = None,
             missing_host: bool = False) -> Path:
    run = tmp_path / "run"
    (run / "sockets").mkdir(parents=True)
    (run / "capture").mkdir()
    (run / "lab.yaml").write_text(yaml.safe_dump({**LAB, "expect": expect}, sort_keys=False))
    (run / "run.json").write_text(json.dumps({"lab": "counters", "run": "counters-1", "started": T0, "ended": T0 + 3,
                                              "hosts": {"server": "10.9.1.2", "client": "10.9.1.3"}}))
    tables = {"netstat": {"ok": True, "raw": "", "records": []}}
    snaps = {"before": {"time": T0 + 1, "step": 0, "hosts": {"server": {**tables, "counters": counters(1)}}},
             "after": {"time": T0 + 2, "step": 1,
                       "hosts": {"server": {"missing": "host server was not running"} if missing_host
                                 else {**tables, "counters": after or counters(4)}}}}
    (run / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    with open(run / "steps.jsonl", "w") as f:
        for i, name in enumerate(["before", "after"]):
            f.write(json.dumps({"index": i, "name": name, "kind": "snapshot", "title": name, "start": T0 + 1 + i,
                                "end": T0 + 1.1 + i, "outcome": "ok", "detail": ""}) + "\n")
    return run


def one(run: Path) -> Any:
    (v,) = evaluate(run).verdicts
    return v


def test_a_change_between_two_snapshots_holds_and_says_both_values(tmp_path: Path) -> None:
    v = one(make_run(tmp_path, [{"name": "overflow", "about": "the queue overflowed",
                                  "counter": {"host": "server", "name": "TcpExtListenOverflows", "since": "before",
                                              "at": "after", "min": 1}}]))
    assert v.status == "held"
    assert v.message == ("PASS overflow: TcpExtListenOverflows of server rose by 3 (1 at before, 4 at after) "
                         "(sockets/snapshots.json)")


@pytest.mark.parametrize("body,line", [
    ({"since": "before", "equals": 2}, "FAIL wrong: expected TcpExtListenOverflows of server rose by = 2 from before "
                                       "to after; seen: TcpExtListenOverflows of server rose by 3 (1 at before, 4 at "
                                       "after) (sockets/snapshots.json)"),
    ({"max": 3}, "FAIL wrong: expected TcpExtListenOverflows of server <= 3 at after; seen: TcpExtListenOverflows of "
                 "server was 4 at after (sockets/snapshots.json)"),
    ({"since": "before", "min": 5, "max": 9}, "FAIL wrong: expected TcpExtListenOverflows of server rose by between "
                                              "5 and 9 from before to after; seen: TcpExtListenOverflows of server "
                                              "rose by 3 (1 at before, 4 at after) (sockets/snapshots.json)"),
])
def test_a_wrong_value_fails_naming_expected_and_seen(tmp_path: Path, body: dict[str, Any], line: str) -> None:
    m = {"host": "server", "name": "TcpExtListenOverflows", "at": "after", **body}
    v = one(make_run(tmp_path, [{"name": "wrong", "counter": m}]))
    assert (v.status, v.message) == ("failed", line)


def test_an_unknown_counter_is_an_error_naming_the_closest(tmp_path: Path) -> None:
    v = one(make_run(tmp_path, [{"name": "typo", "counter": {"host": "server", "name": "TcpExtListenOverflow",
                                                              "at": "after", "min": 1}}]))
    assert v.status == "error"
    assert v.missing == ("server has no counter TcpExtListenOverflow on this kernel (closest: TcpExtListenOverflows, "
                         "TcpExtListenDrops)")


@pytest.mark.parametrize("kwargs,missing", [
    ({"after": counters(4, ok=False)}, "snapshot 'after' could not read the counters of server: cat: "
                                       "/proc/net/netstat: Permission denied"),
    ({"missing_host": True}, "snapshot 'after': host server was not running"),
])
def test_counters_not_read_make_an_error_not_a_verdict(tmp_path: Path, kwargs: dict[str, Any], missing: str) -> None:
    v = one(make_run(tmp_path, [{"name": "n", "counter": {"host": "server", "name": "TcpExtListenOverflows",
                                                           "at": "after", "equals": 0}}], **kwargs))
    assert (v.status, v.missing) == ("error", missing)


@pytest.mark.parametrize("body,line", [
    ({"at": "nowhere", "min": 1}, "c.yaml: expect.0.counter.at: no snapshot 'nowhere' (snapshots: after, before, end)"),
    ({"at": "after", "since": "after", "min": 1},
     "c.yaml: expect.0.counter.since: the change since 'after' at 'after' is always 0: name an earlier snapshot"),
    ({"at": "after"}, "c.yaml: expect.0.counter: give min, max or equals (the value, or its change since 'since')"),
    ({"at": "after", "equals": 1, "min": 1}, "c.yaml: expect.0.counter.equals: give equals, or min and/or max, not "
                                             "both"),
    ({"at": "after", "min": 3, "max": 1}, "c.yaml: expect.0.counter.max: max 1 is below min 3: nothing can hold"),
])
def test_a_counter_that_cannot_be_judged_is_refused_at_load(body: dict[str, Any], line: str) -> None:
    data = {**LAB, "expect": [{"name": "c", "counter": {"host": "server", "name": "TcpOutRsts", **body}}]}
    with pytest.raises(LabError) as info:
        check_references(validate(data, "c.yaml"), "c.yaml")
    assert str(info.value) == line


def test_the_report_lists_the_counters_that_moved(tmp_path: Path) -> None:
    from tcplab.report.gather import gather
    from tcplab.report.page import build_context

    run = make_run(tmp_path, [])
    (host,) = build_context(gather(run))["counters"]
    assert host == {"host": "server", "snapshots": ["before", "after"], "rows": [
        {"name": "TcpExtListenDrops", "values": ["1", "4"], "change": "+3"},
        {"name": "TcpExtListenOverflows", "values": ["1", "4"], "change": "+3"}]}
    assert build_context(gather(make_run(tmp_path / "x", [], after=counters(4, ok=False))))["counters"] == []


def test_one_snapshot_round_trip_gives_the_tables_and_the_counters() -> None:
    """labsnap prints the counters after the tables: both are read from one output, and neither leaks into the
    other; an older labsnap (no counters section) says so with None, and a failed cat is missing, not zero."""
    ss = "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\nLISTEN 0 5 0.0.0.0:8000 0.0.0.0:*\n"
    out = ("Active Internet connections (servers and established)\n@@tcplab-ss@@\n" + ss
           + "@@tcplab-counters@@\n" + NETSTAT + SNMP + "@@tcplab-status@@ netstat=0 ss=0 counters=0\n")
    tables = snapshot_tables(out, "", 0)
    assert tables["ss"]["ok"] and tables["ss"]["raw"] == ss
    counters = counters_in_snapshot(out, "")
    assert counters is not None and counters["ok"] is True and counters["values"]["TcpOutRsts"] == 2  # type: ignore[index]
    older = out.replace("@@tcplab-counters@@\n" + NETSTAT + SNMP, "").replace(" counters=0", "")
    assert counters_in_snapshot(older, "") is None and snapshot_tables(older, "", 0)["ss"]["raw"] == ss
    failed = out.replace(NETSTAT + SNMP, "").replace("counters=0", "counters=1")
    gone = counters_in_snapshot(failed, "netstat: warning\ncat: /proc/net/snmp: No such file or directory\n")
    assert gone is not None and gone["ok"] is False and gone["error"] == "cat: /proc/net/snmp: No such file or directory"
