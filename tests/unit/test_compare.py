"""`lab compare`'s differences and page, on synthetic runs (tests/unit/test_report_synth.py writes them)."""
from __future__ import annotations

import json
import html as html_lib
import re
from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.timeline import Timelines
from tcplab.cli.runs import NoSuchRun, latest_run_of, resolve_run
from tcplab.report.compare import Column, align, column, compare_context, labels, render_compare
from tcplab.report.differences import Side, differences, request_times, timing_differences, verdict_differences
from tcplab.report.gather import gather
from tcplab.report.ladder import FoldRow, LadderOptions, StepRow

from .test_report_synth import A, P, S, T0, Wire, write_closewait_run


def _pair(tmp_path: Path, **b_kw: Any) -> tuple[Column, Column]:
    a = gather(write_closewait_run(tmp_path / "a", windows=True, timer=2.0))
    b = gather(write_closewait_run(tmp_path / "b", windows=False, **b_kw))
    la, lb = labels(a, b)
    return column(a, la, LadderOptions()), column(b, lb, LadderOptions())


def _texts(a: Column, b: Column, kind: str | None = None) -> list[str]:
    return [d.text for d in differences(a.side, b.side) if kind is None or d.kind == kind]


def test_the_rst_one_peer_sends_and_the_other_never_does(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    assert _texts(a, b, "packets") == [
        "win sends an RST to server in A (1 packet, the first at t = 2.800 s, 2.000 s after its own FIN); "
        "in B win never sends one."]
    # the other way round, the run that has it is still the one named
    assert _texts(b, a, "packets") == _texts(a, b, "packets")


def test_two_identical_runs_differ_in_nothing(tmp_path: Path) -> None:
    a = gather(write_closewait_run(tmp_path / "a"))
    b = gather(write_closewait_run(tmp_path / "b"))
    assert _texts(column(a, "A", LadderOptions()), column(b, "B", LadderOptions())) == []


def test_socket_states_reached_and_left_at_the_end(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    states = _texts(a, b, "state")
    assert "at the end of the run server's socket to win (port 8000) is gone in A, still in CLOSE_WAIT in B." in states
    assert not any("linux" in t for t in states)  # the first client's connection is alike in both


def test_the_steps_only_one_run_plays(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    # the sixth steps are both named wait-6 (by position), but they wait for different things
    assert _texts(a, b, "steps") == ["only A plays “wait for an RST from win”, “snapshot after_rst” (not in B).",
                                     "only B plays “wait 5 s”, “snapshot end” (not in A)."]


def _rr_run(root: Path, answer_after: float, requests: int = 5) -> Path:
    """A client asking and a server answering each request after ``answer_after`` seconds."""
    ips = {"server": "10.9.0.2", "client": "10.9.0.3"}
    rd = root / "rr"
    w = Wire(ips)
    t = T0
    w.send(t, "client", "server", 40000, 7, 100, 0, S, 64240)
    w.send(t + 0.0001, "server", "client", 7, 40000, 500, 101, S | A, 64240)
    w.send(t + 0.0002, "client", "server", 40000, 7, 101, 501, A, 502)
    seq_c, seq_s = 101, 501
    for _ in range(requests):
        t += 0.5
        w.send(t, "client", "server", 40000, 7, seq_c, seq_s, P | A, 502, payload=b"ping")
        seq_c += 4
        w.send(t + answer_after, "server", "client", 7, 40000, seq_s, seq_c, P | A, 502, payload=b"pong")
        seq_s += 4
    w.write(rd / "capture")
    (rd / "run.json").write_text(json.dumps({"lab": "rr", "run": "rr", "hosts": ips}))
    return rd


def _side(rd: Path, label: str) -> Side:
    data = gather(rd)
    return Side(label, data.traffic, Timelines([], 0.0, 0.0, "none"), data.steps, data.result)


def test_request_times_differ_by_the_delayed_ack(tmp_path: Path) -> None:
    nagle, nodelay = _rr_run(tmp_path / "a", 0.040), _rr_run(tmp_path / "b", 0.0001)
    assert [round(x, 4) for x in request_times(gather(nagle).traffic)[("client", "server")]] == [0.04] * 5
    diffs = timing_differences(_side(nagle, "nagle"), _side(nodelay, "nodelay"))
    assert [d.text for d in diffs] == ["server answers client's requests in 40.0 ms in nagle (median of 5), "
                                       "in 0.1 ms in nodelay (median of 5)."]
    assert timing_differences(_side(nagle, "A"), _side(_rr_run(tmp_path / "c", 0.041), "B")) == []  # alike


def _verdicts(*items: tuple[str, str]) -> dict[str, Any]:
    return {"passed": all(s == "held" for _, s in items),
            "expectations": [{"name": n, "status": s, "about": f"about {n}"} for n, s in items]}


def test_expectation_verdicts_that_differ(tmp_path: Path) -> None:
    a = gather(write_closewait_run(tmp_path / "a", result=_verdicts(("win-fin", "held"), ("rst", "held"))))
    b = gather(write_closewait_run(tmp_path / "b", windows=False,
                                   result=_verdicts(("win-fin", "failed"), ("no-rst", "held"))))
    texts = [d.text for d in verdict_differences(_side(a.rd.path, "A"), _side(b.rd.path, "B"))]
    assert texts == ["expectation win-fin held in A, failed in B: about win-fin.",
                     "only A checks rst (held); B has no such expectation.",
                     "only B checks no-rst (held); A has no such expectation."]
    unjudged = gather(write_closewait_run(tmp_path / "c"))
    assert [d.text for d in verdict_differences(_side(a.rd.path, "A"), _side(unjudged.rd.path, "C"))] == [
        "A's expectations were checked; C's were not (it has no result.json: `lab up` does not judge)."]


def test_ladders_are_padded_to_start_shared_steps_level() -> None:
    steps = [{"index": 0, "name": "one"}, {"index": 1, "name": "two"}]
    timelines = Timelines([], 0.0, 0.0, "none")

    def col(rows: list[Any]) -> Column:
        return Column(None, Side("x", None, timelines, steps, None), 0.0, rows, [])  # type: ignore[arg-type]

    a = col([StepRow(0.0, 0, "one"), FoldRow(), FoldRow(), StepRow(1.0, 1, "two")])
    b = col([StepRow(0.0, 0, "one"), StepRow(1.0, 1, "two"), FoldRow()])
    assert align(a, b) == ({}, {1: 68})
    assert align(b, a) == ({1: 68}, {})


def test_the_page_escapes_what_the_runs_say(tmp_path: Path) -> None:
    a = write_closewait_run(tmp_path / "a")
    steps = (a / "steps.jsonl").read_text().replace("win closes telnet", "<script>alert(1)</script>")
    (a / "steps.jsonl").write_text(steps)
    html = render_compare(gather(a), gather(write_closewait_run(tmp_path / "b", windows=False)))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "script-src 'none'" in html_lib.unescape(html) and "<script" not in html
    assert html.count('class="ladder"') == 2 and html.count('class="timeline"') == 2


def test_a_lab_name_means_its_newest_run_not_a_longer_named_labs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = write_closewait_run(runs / "x").rename(runs / "closewait-20261124T101500Z")
    new = write_closewait_run(runs / "y").rename(runs / "closewait-20261125T101500Z")
    other = write_closewait_run(runs / "z", run_info={"lab": "closewait-linux"})
    other.rename(runs / "closewait-linux-20261126T101500Z")
    (runs / "x").rmdir()
    (runs / "y").rmdir()
    (runs / "z").rmdir()
    assert old.is_dir()
    assert latest_run_of("closewait", runs) == new
    assert resolve_run("closewait-linux", runs) == runs / "closewait-linux-20261126T101500Z"
    with pytest.raises(NoSuchRun, match="not a run directory"):
        resolve_run(str(runs), runs)
    with pytest.raises(NoSuchRun, match="holds no run of a lab named half-open"):
        resolve_run("half-open", runs)


def test_a_wait_that_takes_longer_differs_but_the_tools_own_steps_do_not(tmp_path: Path) -> None:
    def run(name: str, wait: float, snapshot: float) -> Path:
        rd = write_closewait_run(tmp_path / name)
        steps = [{"index": 0, "name": "wait-0", "kind": "wait", "title": "wait for an RST from win", "start": T0,
                  "end": T0 + wait, "outcome": "ok"},
                 {"index": 1, "name": "end", "kind": "snapshot", "title": "snapshot end", "start": T0 + wait,
                  "end": T0 + wait + snapshot, "outcome": "ok"}]
        (rd / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
        return rd

    a, b = run("a", 2.0, 0.2), run("b", 5.0, 0.6)  # the snapshots: three times as long, and never said
    texts = [d.text for d in timing_differences(_side(a, "A"), _side(b, "B"))]
    assert texts == ["step “wait for an RST from win” takes 2.000 s in A, 5.000 s in B."]
    assert timing_differences(_side(run("c", 3.0, 0.2), "A"), _side(b, "B")) == []  # not twice as long


def test_a_run_without_socket_states_leaves_the_others_axis_alone(tmp_path: Path) -> None:
    a = write_closewait_run(tmp_path / "a", timer=2.0)
    b = write_closewait_run(tmp_path / "b", windows=False)
    for name in ("transitions.jsonl", "snapshots.json"):
        (b / "sockets" / name).unlink()
    ctx = compare_context(gather(a), gather(b))
    assert ctx["window"] == ("0", "3.5")  # a: from its first packet until it was collected
    assert ctx["b"]["timeline"] == "" and 'class="timeline"' in ctx["a"]["timeline"]


def test_what_held_is_written_where_it_happened(tmp_path: Path) -> None:
    a = write_closewait_run(tmp_path / "a", timer=2.0)
    fin = next(p for p in gather(a).traffic.packets if p.flags == "F.")
    verdicts = [{"name": "win-fin", "kind": "packet", "status": "held", "about": "win's FIN <b>", "where": fin.where()},
                {"name": "cw", "kind": "state", "status": "held", "about": "CLOSE_WAIT, unowned",
                 "where": "sockets/server-close_wait.txt"},
                {"name": "f", "kind": "packet", "status": "failed", "about": "failed: beside no packet", "where": fin.where()}]
    (a / "result.json").write_text(json.dumps({"passed": False, "expectations": verdicts}))
    steps = [json.loads(line) for line in (a / "steps.jsonl").read_text().splitlines()]
    for s in steps:
        s["kind"] = "snapshot" if s["title"].startswith("snapshot ") else "x"
    (a / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    html = render_compare(gather(a), gather(write_closewait_run(tmp_path / "b", windows=False)))
    notes = re.findall(r'<text[^>]*class="enote"[^>]*>([^<]*)</text>', html)
    assert notes == ["✓ win&#39;s FIN &lt;b&gt;", "✓ CLOSE_WAIT, unowned"]


def test_a_run_whose_machine_was_short_of_cpu_says_so_beside_the_other(tmp_path: Path) -> None:
    from tcplab.report.differences import machine_differences

    def run(name: str, stalled: float | None) -> Path:
        rd = write_closewait_run(tmp_path / name)
        step = {"index": 0, "name": "wait-0", "kind": "wait", "title": "wait", "start": T0, "end": T0 + 2.0,
                "outcome": "ok", **({"cpu_stalled": stalled} if stalled is not None else {})}
        (rd / "steps.jsonl").write_text(json.dumps(step) + "\n")
        return rd

    loaded, idle, unknown = _side(run("a", 1.6), "A"), _side(run("b", 0.1), "B"), _side(run("c", None), "B")
    assert [d.text for d in machine_differences(idle, loaded)] == [
        "the machine was short of CPU during A's story (a task waited for a CPU 80% of the story's 2.0 s), not "
        "during B's (5%): A's timings may be the machine's, not TCP's."]
    assert machine_differences(loaded, unknown) == []  # B did not record it: nothing to set against A's
    assert machine_differences(loaded, _side(run("d", 1.2), "B")) == []  # both short
