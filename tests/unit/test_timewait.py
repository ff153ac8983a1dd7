"""TIME_WAIT as netstat and ss show it, derived from the tracepoint's hand-over (tcplab.observe.timewait).

The run directories here are synthetic but shaped after what this machine's kernel (6.18) did in real
runs: the active closer's full socket reports FIN_WAIT1 -> FIN_WAIT2 -> CLOSE within microseconds (the
hand-over to a timewait socket), no tracepoint fires for the timewait socket, ss lists it as
``TIME-WAIT ... timer:(timewait,59sec,0)``; an orphaned FIN_WAIT2 is handed over on the bare ACK of its
FIN and ss lists ``FIN-WAIT-2 ... timer:(timewait,59sec,0)`` until the peer's FIN turns it into
TIME_WAIT, again without a tracepoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.expectations import evaluate
from tcplab.analysis.timeline import build_timelines

from ..conftest import keep_checked_facts
from .test_report_synth import A, F, R, S, Wire, ns_line, ss_line, tables

IPS = {"server": "10.79.0.2", "client": "10.79.0.3"}
SRV, CLI = IPS["server"], IPS["client"]
CP, SP = 50000, 8000
T = 1_796_000_000.0
CFIN = T + 1.0  # the client's FIN leaves


def _tp(ts: float, host: str, old: str, new: str) -> dict[str, Any]:
    """A tracepoint record of ``host``'s end of the one connection."""
    me, peer = ("client", "server") if host == "client" else ("server", "client")
    lport, pport = (CP, SP) if host == "client" else (SP, CP)
    return {"ts": round(ts, 6), "event": "inet_sock_set_state", "saddr": IPS[me], "sport": lport,
            "daddr": IPS[peer], "dport": pport, "old": old, "new": new, "host": me, "peer": peer}


@dataclass
class Story:
    """One connection, client to server, closed by the client; how the server answers is the case."""
    case: str  # fin_ack, orphan_then_fin, orphan, closing, reset
    snaps: list[tuple[str, float, list[tuple[str, str]]]] = field(default_factory=list)  # name, t, client rows
    collected: float = 2.0  # seconds after CFIN the run was collected
    captures: bool = True
    server_traced: bool = True  # the server's own tracepoints (its CLOSE_WAIT -> LAST_ACK: it sent its FIN)
    expect: list[dict[str, Any]] = field(default_factory=list)

    @property
    def server_fin(self) -> float | None:
        return {"fin_ack": CFIN + 0.0008, "orphan_then_fin": CFIN + 0.5, "closing": CFIN + 0.00001}.get(self.case)

    def handover(self) -> float:
        return {"fin_ack": CFIN + 0.000835, "orphan_then_fin": CFIN + 0.000335, "orphan": CFIN + 0.000335,
                "closing": CFIN + 0.00006, "reset": CFIN + 0.7}[self.case]


def write_run(root: Path, story: Story) -> Path:
    rd = root / "tw-run"
    for d in ("capture", "sockets", "logs"):
        (rd / d).mkdir(parents=True, exist_ok=True)
    w = Wire(IPS)
    w.send(T, "client", "server", CP, SP, 100, 0, S, 64240)
    w.send(T + 0.00005, "server", "client", SP, CP, 900, 101, S | A, 65160)
    w.send(T + 0.0001, "client", "server", CP, SP, 101, 901, A, 63)
    w.send(CFIN, "client", "server", CP, SP, 101, 901, F | A, 63)
    tr = [_tp(T - 0.0001, "client", "CLOSE", "SYN_SENT") | {"sport": 0},
          _tp(T + 0.00006, "client", "SYN_SENT", "ESTABLISHED"),
          _tp(T + 0.00001, "server", "LISTEN", "SYN_RECV"),
          _tp(T + 0.00011, "server", "SYN_RECV", "ESTABLISHED"),
          _tp(CFIN - 0.00001, "client", "ESTABLISHED", "FIN_WAIT1")]
    c = story.case
    if c == "fin_ack":  # the server closes at once: its FIN carries the ACK of the client's
        w.send(CFIN + 0.0008, "server", "client", SP, CP, 901, 102, F | A, 64)
        w.send(CFIN + 0.00084, "client", "server", CP, SP, 102, 902, A, 63)
        tr += [_tp(CFIN + 0.00005, "server", "ESTABLISHED", "CLOSE_WAIT"),
               _tp(CFIN + 0.00079, "server", "CLOSE_WAIT", "LAST_ACK"),
               _tp(CFIN + 0.00082, "client", "FIN_WAIT1", "FIN_WAIT2"),
               _tp(CFIN + 0.000835, "client", "FIN_WAIT2", "CLOSE"),
               _tp(CFIN + 0.00085, "server", "LAST_ACK", "CLOSE")]
    elif c in ("orphan", "orphan_then_fin", "reset"):  # a bare ACK first: the orphan is handed over at once
        w.send(CFIN + 0.0003, "server", "client", SP, CP, 901, 102, A, 64)
        tr += [_tp(CFIN + 0.00005, "server", "ESTABLISHED", "CLOSE_WAIT"),
               _tp(CFIN + 0.00032, "client", "FIN_WAIT1", "FIN_WAIT2")]
        if c != "reset":
            tr.append(_tp(CFIN + 0.000335, "client", "FIN_WAIT2", "CLOSE"))
        if c == "orphan_then_fin":
            w.send(CFIN + 0.5, "server", "client", SP, CP, 901, 102, F | A, 64)
            w.send(CFIN + 0.50002, "client", "server", CP, SP, 102, 902, A, 63)
            tr += [_tp(CFIN + 0.49999, "server", "CLOSE_WAIT", "LAST_ACK"),
                   _tp(CFIN + 0.50003, "server", "LAST_ACK", "CLOSE")]
        if c == "reset":
            w.send(CFIN + 0.7, "server", "client", SP, CP, 901, 102, R | A, 0)
            tr += [{**_tp(CFIN + 0.7, "client", "", ""), "event": "tcp_receive_reset", "state": "FIN_WAIT2"},
                   _tp(CFIN + 0.70001, "client", "FIN_WAIT2", "CLOSE")]
    elif c == "closing":  # both close at once: each FIN crosses the other
        w.send(CFIN + 0.00001, "server", "client", SP, CP, 901, 101, F | A, 64)
        w.send(CFIN + 0.00003, "client", "server", CP, SP, 102, 902, A, 63)
        w.send(CFIN + 0.00004, "server", "client", SP, CP, 902, 102, A, 64)
        tr += [_tp(CFIN + 0.000005, "server", "ESTABLISHED", "FIN_WAIT1"),
               _tp(CFIN + 0.00002, "client", "FIN_WAIT1", "CLOSING"),
               _tp(CFIN + 0.00003, "server", "FIN_WAIT1", "CLOSING"),
               _tp(CFIN + 0.00005, "server", "CLOSING", "CLOSE"),
               _tp(CFIN + 0.00006, "client", "CLOSING", "CLOSE")]
    if story.captures:
        w.write(rd / "capture")
    if not story.server_traced:
        tr = [r for r in tr if r["host"] != "server"]
    with open(rd / "sockets" / "transitions.jsonl", "w") as f:
        for rec in sorted(tr, key=lambda r: r["ts"]):
            f.write(json.dumps(rec) + "\n")
    snaps: dict[str, Any] = {}
    for i, (name, dt, rows) in enumerate(story.snaps):
        ns = [ns_line(f"{CLI}:{CP}", f"{SRV}:{SP}", st) for st, _ in rows]
        ss = [ss_line(st.replace("_", "-").replace("FIN-WAIT2", "FIN-WAIT-2"), f"{CLI}:{CP}", f"{SRV}:{SP}",
                      f"timer:({timer}) ino:0 sk:9" if timer else "ino:0 sk:9") for st, timer in rows]
        snaps[name] = {"time": CFIN + dt, "step": i, "hosts": tables({"client": (ns, ss), "server": ([], [])})}
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    steps = [{"host": "client", "start": ["telnet", "server", "8000"], "as": "telnet1"},
             {"host": "client", "stop": "telnet1"}] + [{"snapshot": n} for n, _, _ in story.snaps]
    lab = {"name": "tw", "network": {"subnet": "10.79.0.0/24"},
           "hosts": {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}},
           "steps": steps, "expect": story.expect}
    (rd / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    with open(rd / "steps.jsonl", "w") as f:
        for i, (name, start) in enumerate([("start-telnet1", T - 0.05), ("stop-telnet1", CFIN - 0.01)]
                                          + [(n, CFIN + dt) for n, dt, _ in story.snaps]):
            f.write(json.dumps({"index": i, "name": name, "kind": "x", "title": name, "host": None, "start": start,
                                "end": start + 0.005, "outcome": "ok", "detail": ""}) + "\n")
    (rd / "run.json").write_text(json.dumps({"lab": "tw", "run": rd.name, "hosts": IPS, "state": "down",
                                             "started": T - 1, "ended": CFIN + story.collected + 0.5,
                                             "collected_at": CFIN + story.collected, "tracer": "ok"}))
    return rd


TW_59 = [("TIME_WAIT", "timewait,59sec,0")]
FW2_59 = [("FIN_WAIT2", "timewait,59sec,0")]


def _lines(rd: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (rd / "sockets" / "transitions.jsonl").read_text().splitlines()]


def _timelines(rd: Path, records: list[dict[str, Any]] | None = None) -> Any:
    from tcplab.observe.timewait import run_records

    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    return build_timelines(run_records(rd) if records is None else records, snaps, IPS, CFIN + 2.0)


def _client(tl: Any) -> list[tuple[str, str]]:
    return [(iv.state, iv.source) for iv in tl.of("client")[0].intervals]


# --- the derivation ---------------------------------------------------------------------------

def test_fin_with_the_ack_enters_time_wait_at_the_hand_over(tmp_path: Path) -> None:
    from tcplab.observe.timewait import derive_run

    rd = write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59), ("end", 1.0, TW_59)]))
    got = derive_run(rd)
    handover = CFIN + 0.000835
    assert [(r["event"], r.get("old"), r.get("new"), r.get("state")) for r in got] == [
        ("timewait_handover", "FIN_WAIT2", "CLOSE", "TIME_WAIT"),
        ("inet_sock_set_state", "FIN_WAIT2", "TIME_WAIT", None)]
    assert all(r["derived"] == "timewait" and r["ts"] == pytest.approx(handover) for r in got)
    assert all((r["saddr"], r["sport"], r["host"], r["peer"]) == (CLI, CP, "client", "server") for r in got)
    ev = got[1]["evidence"]
    assert ev["handover"] == "sockets/transitions.jsonl line 9"
    assert ev["fin"] == "capture/client.pcap #5"  # the server's FIN as it arrived at the client
    assert ev["snapshots"] == ["tw", "end"] and ev["timer"] == "timewait,59sec,0 at end"
    assert got[1]["expires"] == pytest.approx(CFIN + 1.0 + 59.0)  # still there at the end: no end event


def test_orphan_handed_over_on_the_ack_becomes_time_wait_when_the_fin_arrives(tmp_path: Path) -> None:
    from tcplab.observe.timewait import derive_run

    rd = write_run(tmp_path, Story("orphan_then_fin", [("orphan", 0.2, FW2_59), ("tw", 0.6, TW_59)]))
    got = derive_run(rd)
    assert [(r["event"], r.get("old"), r.get("new"), r.get("state")) for r in got] == [
        ("timewait_handover", "FIN_WAIT2", "CLOSE", "FIN_WAIT2"),
        ("inet_sock_set_state", "FIN_WAIT2", "TIME_WAIT", None)]
    assert got[0]["ts"] == pytest.approx(CFIN + 0.000335)
    assert got[1]["ts"] == pytest.approx(CFIN + 0.5 + 0.000004)  # the FIN's arrival in the client's capture
    assert got[1]["exact"] is True


def test_orphan_without_a_fin_stays_fin_wait2_even_with_no_snapshot(tmp_path: Path) -> None:
    """The capture holds the connection and no FIN from the server: not TIME_WAIT."""
    from tcplab.observe.timewait import derive_run

    got = derive_run(write_run(tmp_path, Story("orphan", [])))
    assert [(r["event"], r.get("state")) for r in got] == [("timewait_handover", "FIN_WAIT2")]
    assert "no FIN" in got[0]["why"]


def test_closing_enters_time_wait(tmp_path: Path) -> None:
    from tcplab.observe.timewait import derive_run

    got = derive_run(write_run(tmp_path, Story("closing", [])))
    changes = [(r["host"], r["old"], r["new"]) for r in got if r["event"] == "inet_sock_set_state"]
    assert sorted(changes) == [("client", "CLOSING", "TIME_WAIT"), ("server", "CLOSING", "TIME_WAIT")]


def test_a_reset_is_no_hand_over(tmp_path: Path) -> None:
    from tcplab.observe.timewait import derive_run

    assert derive_run(write_run(tmp_path, Story("reset", [("later", 0.8, [])]))) == []


def test_snapshots_alone_make_time_wait_when_nothing_was_captured(tmp_path: Path) -> None:
    from tcplab.observe.timewait import derive_run

    got = derive_run(write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59)], captures=False)))
    tw = [r for r in got if r.get("new") == "TIME_WAIT"]
    assert len(tw) == 1 and tw[0]["evidence"]["snapshots"] == ["tw"] and "fin" not in tw[0]["evidence"]


def test_the_peers_own_tracepoint_says_it_sent_its_fin(tmp_path: Path) -> None:
    """No capture, no snapshot, but the server's socket went CLOSE_WAIT -> LAST_ACK before the hand-over."""
    from tcplab.observe.timewait import derive_run

    got = derive_run(write_run(tmp_path, Story("fin_ack", [], captures=False)))
    tw = [r for r in got if r.get("new") == "TIME_WAIT"]
    assert len(tw) == 1 and tw[0]["evidence"]["peer_fin"] == "sockets/transitions.jsonl line 7"


def test_no_evidence_no_derivation(tmp_path: Path) -> None:
    """No capture, no snapshot, no tracepoint of the peer: FIN_WAIT2 -> CLOSE may be TIME_WAIT or an
    orphan; nothing is made up."""
    from tcplab.observe.timewait import derive_run

    assert derive_run(write_run(tmp_path, Story("fin_ack", [], captures=False, server_traced=False))) == []


@pytest.mark.parametrize("snaps, collected, end, exact_by", [
    # a later snapshot without it: its last timer says when (59 s left at +1 s)
    ([("tw", 1.0, TW_59), ("gone", 70.0, [])], 70.5, 1.0 + 59.0, "timewait timer expired"),
    # no snapshot with a timer, but the run lasted past entry + 60 s
    ([], 61.0, 0.000835 + 60.0, "timewait timer expired"),
    # gone sooner than its timer said (reused, killed): somewhere before that snapshot
    ([("tw", 1.0, TW_59), ("gone", 10.0, [])], 10.5, 10.0, "timewait socket gone"),
])
def test_the_end_of_time_wait_when_the_run_covers_it(tmp_path: Path, snaps: list[Any], collected: float,
                                                     end: float, exact_by: str) -> None:
    from tcplab.observe.timewait import derive_run

    got = derive_run(write_run(tmp_path, Story("fin_ack", snaps, collected=collected)))
    ends = [r for r in got if r.get("old") == "TIME_WAIT"]
    assert len(ends) == 1 and ends[0]["new"] == "CLOSE"
    assert ends[0]["ts"] == pytest.approx(CFIN + end) and ends[0]["exact"] is False
    assert ends[0]["ended_by"] == exact_by


def test_still_in_time_wait_at_the_end_of_a_short_run(tmp_path: Path) -> None:
    from tcplab.observe.timewait import derive_run

    got = derive_run(write_run(tmp_path, Story("fin_ack", [], collected=30.0)))
    assert not [r for r in got if r.get("old") == "TIME_WAIT"]


# --- written once at collection, read everywhere without counting twice ------------------------

def test_collection_appends_the_derived_lines_once(tmp_path: Path) -> None:
    from tcplab.observe.timewait import append_derived, run_records

    rd = write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59)]))
    before = _lines(rd)
    assert append_derived(rd) == 2
    assert append_derived(rd) == 0  # already there
    after = _lines(rd)
    assert after[:len(before)] == before and len(after) == len(before) + 2
    assert all(r["derived"] == "timewait" for r in after[len(before):])
    records = run_records(rd)
    assert sum(1 for r in records if r.get("new") == "TIME_WAIT") == 1
    tl = _timelines(rd, records)
    assert [s for s, _ in _client(tl)].count("TIME_WAIT") == 1
    ev = evaluate(rd, _lab(rd, [{"name": "tw", "transition": {"host": "client", "to": "TIME_WAIT"}}]))
    assert ev.verdicts[0].held and f"line {len(before) + 2}" in ev.verdicts[0].where


def _lab(rd: Path, expect: list[dict[str, Any]]) -> Any:
    from tcplab.model import load_lab

    data = yaml.safe_load((rd / "lab.yaml").read_text())
    data["expect"] = expect
    keep_checked_facts(data)
    (rd / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_lab(rd / "lab.yaml")[0]


# --- what people see: the timeline and the verdicts --------------------------------------------

def test_timeline_goes_fin_wait2_then_time_wait_still_at_the_end(tmp_path: Path) -> None:
    rd = write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59), ("end", 1.0, TW_59)]))
    tl = _timelines(rd)
    assert _client(tl) == [("SYN_SENT", "tracepoint"), ("ESTABLISHED", "tracepoint"), ("FIN_WAIT1", "tracepoint"),
                           ("FIN_WAIT2", "tracepoint"), ("TIME_WAIT", "timewait")]
    fw2, tw = tl.of("client")[0].intervals[-2:]
    assert fw2.end == pytest.approx(CFIN + 0.000835) and tw.start == fw2.end
    assert tw.end is None and "derived" in tw.note and "timewait,59sec" in tw.note


def test_timeline_orphan_then_time_wait_from_the_fin(tmp_path: Path) -> None:
    """The old timeline put TIME_WAIT at the hand-over; the socket was an orphaned FIN_WAIT2 until the FIN."""
    rd = write_run(tmp_path, Story("orphan_then_fin", [("orphan", 0.2, FW2_59), ("tw", 0.6, TW_59)]))
    fw2, tw = _timelines(rd).of("client")[0].intervals[-2:]
    assert (fw2.state, tw.state) == ("FIN_WAIT2", "TIME_WAIT")
    assert "orphaned" in fw2.note and fw2.end == pytest.approx(CFIN + 0.500004) and fw2.end_exact
    assert tw.start == pytest.approx(CFIN + 0.500004)
    assert "orphaned" not in tw.note  # the chart labels an interval whose note says so as an orphan


def test_timeline_with_raw_records_derives_once(tmp_path: Path) -> None:
    """build_timelines given the file as it is (no derived lines) derives itself, from the snapshots."""
    rd = write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59)]))
    tl = _timelines(rd, _lines(rd))
    assert [s for s, _ in _client(tl)][-2:] == ["FIN_WAIT2", "TIME_WAIT"]


def test_transition_to_time_wait_holds(tmp_path: Path) -> None:
    expect = [{"name": "tw", "transition": {"host": "client", "peer": "server", "from": "FIN_WAIT2", "to": "TIME_WAIT",
                                            "near": "stop-telnet1", "within": "50ms"}},
              {"name": "tw-snap", "state": {"host": "client", "peer": "server", "is": "TIME_WAIT", "at": "tw"}},
              {"name": "no-close", "transition": {"host": "client", "from": "FIN_WAIT2", "to": "CLOSE"}}]
    rd = write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59)], expect=expect))
    v = {x.name: x for x in evaluate(rd).verdicts}
    assert v["tw"].held, v["tw"].message
    assert "FIN_WAIT2→TIME_WAIT" in v["tw"].seen and "derived" in v["tw"].where
    assert v["tw-snap"].held
    # the hand-over is no close: FIN_WAIT2 -> CLOSE did not happen to the connection
    assert not v["no-close"].held and "hand-over" in v["no-close"].seen


def test_transition_out_of_time_wait_only_when_the_run_saw_it(tmp_path: Path) -> None:
    expect = [{"name": "tw-end", "transition": {"host": "client", "from": "TIME_WAIT", "to": "CLOSE"}}]
    short = write_run(tmp_path / "a", Story("fin_ack", [("tw", 1.0, TW_59)], expect=expect))
    v = evaluate(short).verdicts[0]
    assert not v.held and "still in TIME_WAIT" in v.seen
    long = write_run(tmp_path / "b", Story("fin_ack", [("tw", 1.0, TW_59), ("gone", 70.0, [])], collected=70.5,
                                           expect=expect))
    v = evaluate(long).verdicts[0]
    assert v.held and "derived" in v.where


def test_orphan_fin_wait2_hand_over_is_not_its_end(tmp_path: Path) -> None:
    expect = [{"name": "fw2-end", "transition": {"host": "client", "from": "FIN_WAIT2", "to": "CLOSE"}}]
    rd = write_run(tmp_path, Story("orphan", [("orphan", 0.2, FW2_59), ("gone", 61.0, [])], collected=61.5,
                                   expect=expect))
    v = evaluate(rd).verdicts[0]
    assert v.held, v.message
    assert v.time == pytest.approx(CFIN + 0.2 + 59.0)  # its timer, not the hand-over 335 µs after the FIN


def test_the_report_shows_time_wait_derived_once(tmp_path: Path) -> None:
    from tcplab.report import write_report

    rd = write_run(tmp_path, Story("fin_ack", [("tw", 0.02, TW_59), ("end", 1.0, TW_59)]))
    write_report(rd)
    html = (rd / "report.html").read_text()
    rows = html[html.index("The same as a table"):]
    assert rows.count("<td>TIME_WAIT</td>") == 1 and "<td>timewait</td>" in rows
    assert "derived (no tracepoint fires for a timewait socket)" in rows and "server&#39;s FIN arrived" in rows


# --- what the tracer records, and so what a transition can name --------------------------------------

def test_connect_is_found_by_its_port(tmp_path: Path) -> None:
    """connect() fires CLOSE -> SYN_SENT before the port is chosen (sport 0): joined, it has the port."""
    expect = [{"name": "connects", "transition": {"host": "client", "port": CP, "from": "CLOSE", "to": "SYN_SENT"}}]
    v = evaluate(write_run(tmp_path, Story("fin_ack", [], expect=expect))).verdicts[0]
    assert v.held and v.time == pytest.approx(T - 0.0001)


def test_a_listener_is_recorded_only_when_bound_to_the_hosts_address(tmp_path: Path) -> None:
    expect = [{"name": "listens", "transition": {"host": "server", "port": SP, "to": "LISTEN"}}]
    rd = write_run(tmp_path, Story("fin_ack", [], expect=expect))
    v = evaluate(rd).verdicts[0]
    assert not v.held and "bind the program to the host's address" in v.seen
    # measured here: a listener bound to 10.231.9.2:9000 is recorded as CLOSE -> LISTEN with daddr 0.0.0.0
    with open(rd / "sockets" / "transitions.jsonl", "a") as f:
        f.write(json.dumps({"ts": T - 0.5, "event": "inet_sock_set_state", "saddr": SRV, "sport": SP,
                            "daddr": "0.0.0.0", "dport": 0, "old": "CLOSE", "new": "LISTEN", "host": "server",
                            "peer": None}) + "\n")
    assert evaluate(rd).verdicts[0].held


@pytest.mark.parametrize("transition, field", [
    ({"host": "server", "to": "NEW_SYN_RECV"}, "expect.0.transition.to: NEW_SYN_RECV is the request socket"),
    ({"host": "client", "from": "ESTABLISHED", "to": "TIME_WAIT"},
     "expect.0.transition.to: a socket enters TIME_WAIT from FIN_WAIT2 or CLOSING"),
    ({"host": "client", "from": "TIME_WAIT", "to": "ESTABLISHED"}, "expect.0.transition.to: TIME_WAIT ends only"),
    ({"host": "server", "peer": "client", "to": "LISTEN"}, "expect.0.transition.to: a listening socket has no peer"),
    ({"host": "client", "from": "FIN-WAIT-2", "to": "FIN_WAIT2"}, "expect.0.transition.to: from and to are both"),
])
def test_a_transition_that_cannot_hold_is_refused(tmp_path: Path, transition: dict[str, Any], field: str) -> None:
    from tcplab.model import LabError
    from tcplab.model.loader import validate

    lab = {"name": "tw", "hosts": {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}},
           "expect": [{"name": "e1", "transition": transition}]}
    with pytest.raises(LabError) as e:
        validate(lab, "x.yaml")
    assert str(e.value).startswith(f"x.yaml: {field}"), str(e.value)


@pytest.mark.parametrize("transition", [
    {"host": "client", "from": "FIN_WAIT2", "to": "TIME_WAIT"},
    {"host": "client", "from": "closing", "to": "time-wait"},
    {"host": "client", "from": "TIME_WAIT", "to": "CLOSE"}, {"host": "server", "from": "LISTEN", "to": "SYN_RECV"},
    {"host": "server", "to": "LISTEN"}, {"host": "client", "peer": "server", "from": "FIN_WAIT1", "to": "FIN_WAIT2"},
])
def test_every_transition_a_run_can_show_is_accepted(transition: dict[str, Any]) -> None:
    from tcplab.model.loader import validate

    validate({"name": "tw", "hosts": {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}},
              "expect": [{"name": "e1", "transition": transition}]}, "x.yaml")
