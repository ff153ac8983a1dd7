"""Findings computed from a run's data (tcplab.analysis.explain): which socket, which side, since when, why."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcplab.analysis.explain import Explanation, explain, option_shape, window_reason, wscale_reason
from tcplab.analysis.packets import load_traffic
from tcplab.analysis.timeline import build_timelines
from tcplab.rundir import RunDir
from tcplab.runfiles.lab import read_for_report

from .test_report_synth import HOSTS, write_closewait_run


def _explain(rd: Path, logs: dict[str, str] | None = None) -> tuple[Explanation, object]:
    traffic = load_traffic(rd)
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    trans = [json.loads(x) for x in (rd / "sockets" / "transitions.jsonl").read_text().splitlines()]
    info = json.loads((rd / "run.json").read_text())
    tl = build_timelines(trans, snaps, traffic.hosts, info["collected_at"])
    if logs is None:
        logs = {p.stem: p.read_text() for p in (rd / "logs").glob("*.log")}
    lab = read_for_report(RunDir(rd)).lab  # as the report reads it: this run's `expect` is not the model's
    return explain(traffic, tl, snaps, logs, lab, info["engine"]), traffic


def test_windows_peer_close_wait_found_on_server_side_ended_by_rst(tmp_path: Path) -> None:
    ex, traffic = _explain(write_closewait_run(tmp_path, windows=True))
    assert len(ex.of("close_wait")) == 1
    f = ex.of("close_wait")[0]
    assert (f.kind, f.socket.host, f.socket.local_port, f.socket.peer_ip, f.socket.peer_port) == \
        ("close_wait", "server", 8000, HOSTS["win"], 52552)
    assert f.side == "server"
    assert f.accepted is False and f.closed_by_app is False
    assert f.ended_by == "RST from win"
    fin = next(p for p in traffic.packets if p.flags == "F.")
    rst = next(p for p in traffic.packets if p.flags == "R.")
    assert f.since == pytest.approx(fin.ts, abs=1e-4)
    assert f.until == pytest.approx(rst.ts, abs=1e-4)
    refs = {x.ref for x in f.facts}
    assert {f"pkt-{fin.n}", f"pkt-{rst.n}", "log-server"} <= refs
    # the numbers in the sentences are this run's: the RST 120.002 s after the FIN, the ack 300 µs after it
    text = " ".join(x.text for x in f.facts)
    assert "120.002 s after its FIN" in text and "300 µs later" in text
    assert "Recv-Q, its accept queue length, was 1" in text
    assert f"never {HOSTS['win']}:52552" in text  # the log names the accepted client, not this one


def test_linux_peer_close_wait_still_open_and_no_rst_explained(tmp_path: Path) -> None:
    ex, traffic = _explain(write_closewait_run(tmp_path, windows=False))
    f = ex.of("close_wait")[0]
    assert f.until is None and f.ended_by == ""
    text = " ".join(x.text for x in f.facts)
    assert "still in CLOSE_WAIT at the end of the run" in text
    assert "orphaned FIN_WAIT2" in text and "timewait,58sec,0" in text
    assert "3 s in this run's lab.yaml" in text  # tcp_fin_timeout of the lab, read from lab.yaml
    assert "No RST came from win" in f.conclusion


def test_accepted_connection_is_not_called_unaccepted(tmp_path: Path) -> None:
    """If the program's log shows it accepted the peer, the finding must say so, whatever netstat's owner column."""
    rd = write_closewait_run(tmp_path, windows=True)
    log = (rd / "logs" / "server.log").read_text() + f"Accept client {HOSTS['win']}:52552\n"
    ex, _ = _explain(rd, {"server": log})
    assert ex.of("close_wait")[0].accepted is True
    assert "never accept()ed" not in ex.of("close_wait")[0].conclusion


def test_no_close_wait_no_findings(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, windows=True)
    trans = [json.loads(x) for x in (rd / "sockets" / "transitions.jsonl").read_text().splitlines()]
    trans = [t for t in trans if t.get("new") != "CLOSE_WAIT" and t.get("old") != "CLOSE_WAIT"]
    (rd / "sockets" / "transitions.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trans))
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    for snap in snaps.values():
        for tables in snap["hosts"].values():
            for tool in tables.values():
                tool["records"] = [r for r in tool["records"] if r["state"] != "CLOSE_WAIT"]
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    ex, _ = _explain(rd)
    assert ex.of("close_wait") == []


def test_differences_with_field_report_are_computed_from_the_packets(tmp_path: Path) -> None:
    ex, _ = _explain(write_closewait_run(tmp_path, windows=True))
    rows = {d.what: d for d in ex.differences}
    assert rows["kernel"].this_run == "6.1.0-test"
    syn = rows["win's SYN"]
    assert syn.same  # the synthetic Windows 7 SYN matches the field report's
    synack = rows["server's SYN-ACK window"]
    assert (synack.field_report, synack.this_run) == ("win 29200", "win 64240")
    assert "44 × 1460" in synack.why
    opts = rows["server's SYN-ACK options"]
    assert opts.this_run == "[mss 1460,nop,nop,sackOK,nop,wscale 10]"
    assert "wscale 10" in opts.why and "32 MiB–64 MiB" in opts.why
    assert rows["win's RST"].this_run == "[R.] seq 2, ack 1, win 0, 120.002 s after the FIN"


def test_window_reason_arithmetic() -> None:
    assert window_reason(65160, 1460, True, "server").startswith("65160 = 45 × 1448 (1460 less the 12 bytes")
    assert window_reason(64240, 1460, False, "client").startswith("64240 = 44 × 1460")
    assert "20 segments" in window_reason(29200, 1460, False, "server")
    assert "not a multiple" in window_reason(29201, 1460, False, "server")
    assert "7 means 4 MiB–8 MiB" in wscale_reason(7)


def test_option_shape_drops_timestamp_values() -> None:
    assert option_shape([("mss", 1460), ("sackOK", None), ("TS", (1, 2)), ("nop", None), ("wscale", 7)]) == \
        "[mss 1460,sackOK,TS,nop,wscale 7]"


def _cw(start: float, close_after: float) -> list[dict]:
    s, c = ("10.0.0.2", 8000), ("10.0.0.3", 40000)
    ev = lambda ts, old, new: {"ts": ts, "event": "inet_sock_set_state", "saddr": s[0], "sport": s[1],  # noqa: E731 - a row maker beside its table
                               "daddr": c[0], "dport": c[1], "old": old, "new": new}
    return [ev(start - 1, "SYN_RECV", "ESTABLISHED"), ev(start, "ESTABLISHED", "CLOSE_WAIT"),
            ev(start + close_after, "CLOSE_WAIT", "LAST_ACK"), ev(start + close_after + 1e-4, "LAST_ACK", "CLOSE")]


def test_prompt_passive_close_is_not_a_finding_but_a_slow_one_is() -> None:
    from tcplab.analysis.packets import Traffic

    hosts = {"server": "10.0.0.2", "client": "10.0.0.3"}
    quick = explain(Traffic([], [], hosts), build_timelines(_cw(10.0, 0.002), {}, hosts), {}, {}, None)
    assert quick.findings == [] and quick.normal_closes == 1
    assert quick.normal_longest == pytest.approx(0.002)
    slow = explain(Traffic([], [], hosts), build_timelines(_cw(10.0, 5.0), {}, hosts), {}, {}, None)
    assert len(slow.findings) == 1 and slow.normal_closes == 0
    f = slow.findings[0]
    assert f.closed_by_app and f.ended_by == "close() by the application"
    assert f.until - f.since == pytest.approx(5.0)
