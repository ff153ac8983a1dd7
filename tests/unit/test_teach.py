"""Teaching: a step's ``explain``, the step gate of ``lab up --step`` and ``lab step``, and the live view's
socket table made from the last snapshot and the tracer's state changes since."""
from __future__ import annotations

import io
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.live import GONE_FOR, LiveView
from tcplab.model import load_lab
from tcplab.model.errors import LabError
from tcplab.paths import LABS_DIR
from tcplab.play.gate import NotStepping, StepGate, announce, let_go
from tcplab.rundir import RunDir
from tcplab.runfiles import steps as steps_file
from tcplab.runfiles import transitions as transitions_file

EXPLAIN = "Telnet's close sends a FIN; the server's kernel acks it, but the server never closes."


def lab_with(tmp_path: Path, **step3: Any) -> Any:
    import yaml

    data = yaml.safe_load((LABS_DIR / "closewait-linux.yaml").read_text())
    data["steps"][3].update(step3)
    build = LABS_DIR / data["hosts"]["server"]["program"]["build"]
    data["hosts"]["server"]["program"]["build"] = os.path.relpath(build, tmp_path)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    lab, _ = load_lab(path, [], None)
    return lab


def test_explain_is_said_before_the_step_with_what_to_look_for(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, explain=EXPLAIN)
    lines = announce(lab, 3, lab.steps[3])
    assert lines[0] == "next: step 3: win closes telnet (4 of 8)"  # numbered as lab up's lines and steps.N
    looks_at = lines.index("  look for:")
    assert " ".join(line.strip() for line in lines[1:looks_at]) == EXPLAIN
    looks = lines[looks_at + 1:]
    # timed from stop-telnet2 (win-fin), or from an expectation that is (the ack, the CLOSE_WAIT transition)
    assert looks == ["    - closing telnet sends win's FIN: [F.] seq 1, ack 1",
                     "    - the server's kernel acks the FIN at once (ack 2)",
                     "    - the server's socket goes ESTABLISHED -> CLOSE_WAIT when the FIN arrives"]
    assert "look for:" not in "\n".join(announce(lab, 0, lab.steps[0]))


def test_explain_is_one_paragraph_of_bounded_length(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"steps\.3.*explain"):
        lab_with(tmp_path, explain="x" * 1001)


def test_a_step_waits_for_a_line_from_lab_step(tmp_path: Path) -> None:
    lab = lab_with(tmp_path)
    rd = RunDir(tmp_path / "run")
    said: list[str] = []
    gate = StepGate(rd, lab, said.append)
    let_go(rd)  # a line already there lets the step go at once
    gate.before(0, lab.steps[0])
    assert said[-1] == f"`lab step {lab.name}` plays it"
    released = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.wait(), released.set()))
    waiter.start()
    assert not released.wait(0.3), "the gate let a step go with nobody asking"
    let_go(rd)
    assert released.wait(5)
    waiter.join()
    gate.close()
    assert not rd.step_gate.exists()
    with pytest.raises(NotStepping, match="not being played with --step"):
        let_go(rd)


def test_enter_on_the_terminal_lets_a_step_go(tmp_path: Path) -> None:
    lab = lab_with(tmp_path)
    rd = RunDir(tmp_path / "run")
    read_end, write_end = os.pipe()
    terminal = io.TextIOWrapper(io.FileIO(read_end, "r"))
    said: list[str] = []
    gate = StepGate(rd, lab, said.append, terminal)
    os.write(write_end, b"\n")
    gate.before(1, lab.steps[1])
    assert said[-1].startswith("press Enter to play it")
    os.close(write_end)  # the terminal's end: `lab step` still works
    let_go(rd)
    gate.wait()
    gate.close()
    terminal.close()


def run_dir(tmp_path: Path) -> RunDir:
    from tcplab.runfiles import run_info, snapshots

    rd = RunDir(tmp_path / "run").create()
    run_info.RunInfoFile(rd).update(state="playing", started=100.0,
                                    hosts={"server": "10.0.0.2", "win": "10.0.0.4"})
    row = {"source": "ss", "local_addr": "10.0.0.2", "local_port": 8000, "peer_addr": "10.0.0.4",
           "peer_port": 40000, "state": "ESTABLISHED", "recv_q": 0, "send_q": 0, "timer": None}
    listener = {"source": "ss", "local_addr": "0.0.0.0", "local_port": 8000, "peer_addr": "0.0.0.0",
                "peer_port": None, "state": "LISTEN", "recv_q": 1, "send_q": 5}
    owners = [{"source": "netstat", "local_addr": "0.0.0.0", "local_port": 8000, "peer_addr": "0.0.0.0",
               "peer_port": None, "state": "LISTEN", "pid": 7, "program": "server"},
              {**row, "source": "netstat", "pid": None, "program": None}]
    snapshots.write(rd, {"established": {"time": 110.0, "step": 2, "hosts": {"server": {
        "ss": {"ok": True, "records": [row, listener]}, "netstat": {"ok": True, "records": owners}}}}})
    return rd


def transition(ts: float, old: str, new: str, **where: Any) -> dict[str, Any]:
    rec = {"ts": ts, "event": "inet_sock_set_state", "saddr": "10.0.0.2", "sport": 8000, "daddr": "10.0.0.4",
           "dport": 40000, "old": old, "new": new}
    rec.update(where)
    return rec


def test_the_table_is_the_last_snapshot_brought_up_to_date_by_the_tracer(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    transitions_file.append(rd, [transition(105.0, "SYN_RECV", "ESTABLISHED")])  # before the snapshot
    view = LiveView(rd)
    view.update(now=111.0)
    by_state = {r.state: r for r in view.table()}
    assert by_state["LISTEN"].source == "snapshot established" and by_state["LISTEN"].owner == "7/server"
    assert by_state["ESTABLISHED"].source == "snapshot established"  # the snapshot is newer than the change
    assert by_state["ESTABLISHED"].owner == "-"  # no process holds it (the accept queue)

    # the tracer's change after the snapshot: its state, its time; queues and owner still the snapshot's
    transitions_file.append(rd, [transition(112.5, "ESTABLISHED", "CLOSE_WAIT")])
    view.update(now=113.0)
    rows = {r.state: r for r in view.table()}
    assert set(rows) == {"LISTEN", "CLOSE_WAIT"}
    cw = rows["CLOSE_WAIT"]
    assert (cw.source, cw.seen, cw.owner, cw.details_from) == ("tracer", 112.5, "-", "snapshot established")
    assert [e.text for e in view.events if e.kind == "transition"][-1] \
        == "server 10.0.0.2:8000 -> win:40000  ESTABLISHED -> CLOSE_WAIT"

    # a socket that went to CLOSE stays as gone for a while, then leaves
    transitions_file.append(rd, [transition(114.0, "CLOSE_WAIT", "CLOSE")])
    view.update(now=114.5)
    assert [r.gone for r in view.table() if r.local == ("10.0.0.2", 8000) and r.peer[1]] == [True]
    view.expire(114.0 + GONE_FOR + 0.1)
    assert [r.state for r in view.table()] == ["LISTEN"]


def test_connect_without_a_port_yet_is_one_row_once_it_has_one(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    client = {"saddr": "10.0.0.4", "daddr": "10.0.0.2", "dport": 8000, "host": "win", "peer": "server"}
    transitions_file.append(rd, [transition(120.0, "CLOSE", "SYN_SENT", **client, sport=0),
                                 transition(120.1, "SYN_SENT", "ESTABLISHED", **client, sport=40001)])
    view = LiveView(rd)
    view.update(now=121.0)
    assert [(r.local, r.state) for r in view.table() if r.host == "win"] == [(("10.0.0.4", 40001), "ESTABLISHED")]


def test_steps_and_snapshots_join_the_stream_in_time_order(tmp_path: Path) -> None:
    rd = run_dir(tmp_path)
    view = LiveView(rd)
    view.update(now=111.0)
    steps_file.append(rd, {"index": 3, "title": "win closes telnet", "start": 112.0, "end": 112.1, "outcome": "ok"})
    transitions_file.append(rd, [transition(112.05, "ESTABLISHED", "CLOSE_WAIT")])
    # a line still being written is not read until its newline comes
    with open(rd.transitions_jsonl, "a") as f:
        f.write('{"ts": 113.0, "event": "inet_sock_set_state"')
    view.update(now=113.0)
    assert [e.kind for e in view.events] == ["snapshot", "step", "transition"]
    assert view.events[1].text == "step 3: win closes telnet"
    assert view.tracer_seen == 1
    assert not view.ended


class CountdownRun:
    """What a wait for an RST uses of a run, with a countdown display that records what it was shown."""

    def __init__(self, lab: Any, fin_at: float | None) -> None:
        from tcplab.wire import RST, TcpPacket

        self.lab = lab
        self.ips = {h: str(lab.host_ip(h)) for h in lab.hosts}
        rst = TcpPacket(ts=time.time(), src=self.ips["win"], dst=self.ips["server"], sport=1, dport=8000, seq=0,
                        ack=0, flags=RST, win=0, ttl=128, ip_id=0)
        self.tails = {"win": type("Tail", (), {"new_packets": staticmethod(lambda: [rst])})()}
        self.seen: dict[Any, int] = {}
        self.consumed: dict[Any, int] = {}
        self.fin_seen = {"win": fin_at} if fin_at is not None else {}
        self.shown: list[Any] = []

    def check_health(self) -> None:
        pass

    def show_countdown(self, c: Any) -> Any:
        from contextlib import nullcontext

        self.shown.append(c)
        return nullcontext()


def test_a_long_wait_for_the_windows_reset_counts_down_its_fin_wait2_timer() -> None:
    from tcplab.cli.countdown import _Line
    from tcplab.model.lab import WaitStep
    from tcplab.play.steps import player_for

    lab, _ = load_lab(LABS_DIR / "closewait.yaml", ["peers.win.fin_wait2_timeout=20s"])
    step = WaitStep(wait={"rst_from": "win"}, timeout=150)
    fin_at = time.time() - 5
    run = CountdownRun(lab, fin_at)
    assert player_for(step).play(run, step, 5) == "RST from win seen"  # type: ignore[arg-type]
    [c] = run.shown
    assert (c.what, c.timer, c.timer_ends) == ("waiting for an RST from win",
                                               "win's FIN_WAIT_2 timer (20 s from its FIN)", fin_at + 20)
    line = _Line(c).__rich__().plain
    assert re.fullmatch(r"  waiting for an RST from win: gives up in 1[45]\d s  \|  win's FIN_WAIT_2 timer "
                        r"\(20 s from its FIN\) ends in 1[45] s", line), line

    short = WaitStep(wait={"rst_from": "win"}, timeout=2)  # shorter than a countdown is worth
    quick = CountdownRun(lab, None)
    player_for(short).play(quick, short, 5)  # type: ignore[arg-type]
    assert quick.shown == []


def test_the_reports_list_of_steps_shows_each_steps_explain_as_text(tmp_path: Path) -> None:
    import json

    import lxml.html

    from tcplab.report import write_report

    from .test_report_synth import write_closewait_run

    rd = write_closewait_run(tmp_path)
    lines = (rd / "steps.jsonl").read_text().splitlines()
    said = EXPLAIN + " <b>bold?</b>"
    lines[4] = json.dumps({**json.loads(lines[4]), "explain": said})
    (rd / "steps.jsonl").write_text("\n".join(lines) + "\n")
    doc = lxml.html.fromstring(write_report(rd).read_text(encoding="utf-8"))
    cells = [td.text_content() for td in doc.xpath("//h3[.='Steps played']/following-sibling::table[1]//td")]
    assert "win closes telnet" + said in cells
    assert not doc.xpath("//td//b")


def test_lab_export_writes_a_steps_explain_as_comment_lines(tmp_path: Path) -> None:
    from tcplab.export.compose import step_lines

    lab = lab_with(tmp_path, explain=EXPLAIN)
    lines = step_lines(lab, 3, lab.steps[3])
    assert lines[0] == "step 4: win closes telnet"
    notes = [line for line in lines[1:] if line.startswith("  # ")]
    assert " ".join(n.removeprefix("  # ") for n in notes[:2]) == EXPLAIN
