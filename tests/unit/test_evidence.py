"""No verdict without evidence: an expectation whose evidence is missing or partial is an error,
neither held nor failed. Run directories are built as in test_expectations (labs/closewait.yaml)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.expectations import evaluate
from tcplab.observe.sockets import snapshot_tables

from .test_expectations import FIN_T, T0, WIN_ISN, Pkt, make_run, snapshots, story, verdicts

NETSTAT_MISSING = "netstat is not in the image myorg/svc:1.0"


def _no_tools(snaps: dict[str, Any], host: str = "server") -> dict[str, Any]:
    """The snapshots as an image without netstat and ss leaves them: empty tables, the tools' errors."""
    for snap in snaps.values():
        snap["hosts"][host] = {
            "netstat": {"raw": "", "records": [], "ok": False, "error": NETSTAT_MISSING},
            "ss": {"raw": "", "records": [], "ok": False, "error": "ss is not in the image myorg/svc:1.0"}}
    return snaps


# --- empty evidence is not a fact ---------------------------------------------------------

def test_an_image_without_tools_gives_errors_not_verdicts(tmp_path: Path) -> None:
    v = verdicts(make_run(tmp_path, snaps=_no_tools(snapshots())))
    for name in ("listen-owned-by-server", "win-established-unowned", "close-wait-unowned"):
        assert v[name].status == "error", v[name].message
    # "absent" over an empty table would have held: it has no witness
    gone = v["close-wait-gone"]
    assert gone.status == "error" and not gone.held
    assert gone.message.startswith("ERROR close-wait-gone: cannot judge: no socket table of server at "
                                   f"'after_rst': netstat: {NETSTAT_MISSING}; ss: ss is not in the image")
    # evidence from elsewhere still decides what it can
    assert v["win-fin"].held and v["server-enters-close-wait"].held


def test_one_working_tool_is_enough(tmp_path: Path) -> None:
    snaps = snapshots()
    for snap in snaps.values():
        table = snap["hosts"]["server"]["netstat"]
        snap["hosts"]["server"] = {"netstat": {"raw": "", "records": [], "ok": False, "error": NETSTAT_MISSING},
                                   "ss": {**table, "ok": True}}
    assert all(v.held for v in verdicts(make_run(tmp_path, snaps=snaps)).values())


def test_a_host_that_was_not_running_has_no_table(tmp_path: Path) -> None:
    snaps = snapshots()
    snaps["after_rst"]["hosts"]["server"] = {"missing": "host server was not running"}
    v = verdicts(make_run(tmp_path, snaps=snaps))["close-wait-gone"]
    assert v.status == "error" and "host server was not running" in v.missing


def test_labsnap_output_says_which_tool_worked() -> None:
    both = snapshot_tables("@@tcplab-ss@@\nState Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
                           "@@tcplab-status@@ netstat=127 ss=0\n", "sh: 1: netstat: not found\n", 0, "myorg/svc:1.0")
    assert both["netstat"]["ok"] is False and both["netstat"]["error"] == NETSTAT_MISSING
    assert both["ss"]["ok"] is True and both["ss"]["records"] == []
    none = snapshot_tables("", "exec: labsnap: not found", 127, "myorg/svc:1.0")
    assert none["ss"]["ok"] is False and "labsnap is not in the image myorg/svc:1.0" in none["ss"]["error"]
    failed = snapshot_tables("@@tcplab-ss@@\n@@tcplab-status@@ netstat=0 ss=1\n", "ss: netlink: Permission denied",
                             1)
    assert failed["ss"]["error"] == "ss exited 1: ss: netlink: Permission denied"


# --- negative expectations need a witness ---------------------------------------------------

def test_count_zero_over_steps_that_never_played(tmp_path: Path) -> None:
    """The server 'never FINs' only if the story got as far as giving it a reason to."""
    run = make_run(tmp_path, packets=story()[:3], trans=[], snaps=snapshots(upto=0), steps_played=2,
                   failed_step="win: could not start telnet2: telnet: not found")
    ev = evaluate(run)
    v = {x.name: x for x in ev.verdicts}["server-never-fins"]
    assert v.status == "error"
    assert v.missing == ("step 1 (win connects with telnet) did not play (failed: win: could not start telnet2: "
                         "telnet: not found)")
    assert not ev.passed and ev.errors >= 1


def test_count_zero_before_a_step_that_failed_later_holds(tmp_path: Path) -> None:
    """A window that closed before the run stopped was observed: its verdict stands."""
    exp = [{"name": "no-early-rst", "packet": {"from": "win", "has_flags": "R", "count": 0,
                                               "before": "stop-telnet2"}}]
    run = make_run(tmp_path, expect=exp, steps_played=7, failed_step="no RST from win within 130 s")
    assert verdicts(run)["no-early-rst"].held


def test_count_zero_with_packets_the_kernel_dropped(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    info = json.loads((run / "run.json").read_text())
    info["capture_stats"] = {"server": {"captured": 9, "received": 12, "dropped": 3}}
    (run / "run.json").write_text(json.dumps(info))
    v = verdicts(run)["server-never-fins"]
    assert v.status == "error"
    assert v.missing == "the capture of server lost 3 packets (dropped by the kernel, tcpdump says)"


def test_a_missing_capture_is_no_witness(tmp_path: Path) -> None:
    """server→win packets are in either end's capture: one is witness enough, none is no witness."""
    run = make_run(tmp_path)
    (run / "capture" / "server.pcap").unlink()
    assert verdicts(run)["server-never-fins"].held
    (run / "capture" / "win.pcap").unlink()
    v = verdicts(run)["server-never-fins"]
    assert v.status == "error" and v.missing == "there is no capture of server (capture/server.pcap)"


def test_transitions_without_the_tracer_are_errors(tmp_path: Path) -> None:
    v = verdicts(make_run(tmp_path, tracer=False))["server-enters-close-wait"]
    assert v.status == "error" and v.missing == "the tracer did not run (tracefs is not mounted)"


def test_results_carry_the_error(tmp_path: Path) -> None:
    from tcplab.analysis.results import result_document

    doc = result_document(evaluate(make_run(tmp_path, snaps=_no_tools(snapshots()))))
    assert doc["passed"] is False and doc["counts"] == {"held": 7, "failed": 0, "error": 4}
    item = next(e for e in doc["expectations"] if e["name"] == "close-wait-gone")
    assert (item["status"], item["held"]) == ("error", False) and item["missing"].startswith("no socket table")


# --- timing rules say which packet ------------------------------------------------------------

def _syns(offsets: list[float]) -> list[Pkt]:
    """A client's SYN and its retransmissions (the same ISN), unanswered, ``offsets`` s after T0 + 1."""
    return [Pkt(T0 + 1 + dt, "win", "server", "S", WIN_ISN, 0, 64240, 64) for dt in offsets]


LINEAR = [0, 1, 2, 3, 4, 5]  # net.ipv4.tcp_syn_linear_timeouts = 4: a retry every second at first
EXPONENTIAL = [0, 1, 3, 7]  # tcp_syn_linear_timeouts = 0: 1 s, then doubling


def _syn_run(tmp_path: Path, offsets: list[float], retry: dict[str, Any]) -> Any:
    exp = [{"name": "first-syn", "packet": {"from": "win", "flags": "S"}},
           {"name": "retry", "packet": {"from": "win", "flags": "S", "after": "first-syn", **retry}}]
    return verdicts(make_run(tmp_path, expect=exp, packets=_syns(offsets), trans=[], snaps={}))["retry"]


@pytest.mark.parametrize("offsets", [LINEAR, EXPONENTIAL], ids=["linear", "exponential"])
def test_the_next_syn_is_the_one_timed(tmp_path: Path, offsets: list[float]) -> None:
    """'SYN again 3 s after the first' is about the next SYN: on both kernels it came after 1 s."""
    v = _syn_run(tmp_path, offsets, {"delay": "3s", "tolerance": "100ms"})
    assert v.status == "failed"
    assert v.seen.startswith("win→server [S] seq 0 win 64240 at first-syn+1.000s")
    assert v.message.startswith("FAIL retry: expected win→* [S] at first-syn+3.000s±0.100s; "
                                "the next matching packet: win→server [S] seq 0 win 64240 at first-syn+1.000s")
    assert _syn_run(tmp_path / "1s", offsets, {"delay": "1s", "tolerance": "100ms"}).held


@pytest.mark.parametrize("offsets,held", [(LINEAR, False), (EXPONENTIAL, True)], ids=["linear", "exponential"])
def test_nth_names_the_retry_meant(tmp_path: Path, offsets: list[float], held: bool) -> None:
    """The second retry comes 3 s after the first SYN only when the timeouts double."""
    v = _syn_run(tmp_path, offsets, {"nth": 2, "delay": "3s", "tolerance": "100ms"})
    assert v.held is held
    if not held:  # on the linear kernel the 2nd retry came at +2 s; the SYN at +3 s was the 3rd
        assert "at first-syn+2.000s" in v.seen
        assert "the 3rd matching packet" in v.message and "write nth: 3" in v.message


def test_any_keeps_the_window_rule(tmp_path: Path) -> None:
    assert _syn_run(tmp_path, LINEAR, {"any": True, "delay": "3s", "tolerance": "100ms"}).held
    assert not _syn_run(tmp_path / "e", EXPONENTIAL, {"any": True, "delay": "5s", "tolerance": "100ms"}).held


@pytest.mark.parametrize("offsets,count", [(LINEAR, 2), (EXPONENTIAL, 1)], ids=["linear", "exponential"])
def test_counts_in_a_window(tmp_path: Path, offsets: list[float], count: int) -> None:
    assert _syn_run(tmp_path, offsets, {"within": "2.5s", "count": count}).held
    assert not _syn_run(tmp_path / "x", offsets, {"within": "2.5s", "count": count + 1}).held


def test_before_limits_a_count(tmp_path: Path) -> None:
    """The story's RST comes after the FIN: none before it, one in all."""
    base = {"from": "win", "to": "server", "has_flags": "R"}
    exp = [{"name": "fin", "packet": {"from": "win", "has_flags": "F"}},
           {"name": "no-rst-before-fin", "packet": {**base, "count": 0, "before": "fin"}},
           {"name": "one-rst", "packet": {**base, "count": 1}}]
    v = verdicts(make_run(tmp_path, expect=exp))
    assert v["no-rst-before-fin"].held and v["one-rst"].held
    late = [Pkt(FIN_T - 0.5, "win", "server", "RA", WIN_ISN + 1, 0, 0, 128)]
    v2 = verdicts(make_run(tmp_path / "b", expect=exp, packets=story()[:3] + late + story()[3:]))
    assert v2["no-rst-before-fin"].status == "failed"
