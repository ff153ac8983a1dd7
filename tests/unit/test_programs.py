"""Story programs: their events in programs.jsonl (start, exit, output, still running), the `program`
expectation judged on them (held, failed, error), its validation, and the output reader behind
`ready.log`. Run directories are made as in test_expectations.py (labs/closewait.yaml's story)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.expectations import evaluate
from tcplab.backend.base import ExecResult
from tcplab.model import LabError
from tcplab.model.loader import validate
from tcplab.observe.programs import (ProgramOutput, describe_status, last_lines, parse_exit_file, read_programs,
                                     record_collected, record_start)
from tcplab.rundir import RunDir
from tcplab.runfiles import programs as program_events

from ..conftest import keep_checked_facts
from .test_expectations import FIN_T, ROOT, STEP_TIMES, T0, make_run

STOP_T = STEP_TIMES[3]  # stop-telnet2: win's telnet is closed
TELNET_OUT = b"Trying 10.9.0.2...\nConnected to server.\nEscape character is '^]'.\n"
SERVER_OUT = b"server listening on 0.0.0.0:8000 (backlog 5, one client at a time)\nAccept client 10.9.0.3:50000\n"


def story_programs(telnet2_exit: tuple[int, float] | None = (143, STOP_T + 0.002), collected: bool = True,
                   outputs: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """programs.jsonl of the closewait story: the server's own program, telnet1 and telnet2 (stopped)."""
    ev: list[dict[str, Any]] = [
        {"event": "start", "host": "server", "name": "server", "pid": 18, "argv": ["/opt/lab/server"], "step": None,
         "time": T0 + 0.2},
        {"event": "start", "host": "linux", "name": "telnet1", "pid": 20, "argv": ["telnet"], "step": 0,
         "time": STEP_TIMES[0]},
        {"event": "start", "host": "win", "name": "telnet2", "pid": 21, "argv": ["telnet"], "step": 1,
         "time": STEP_TIMES[1]},
    ]
    if telnet2_exit is not None:
        status, t = telnet2_exit
        ev.append({"event": "exit", "host": "win", "name": "telnet2", "pid": 21, "status": status,
                   "signal": None, "time": t})
    if collected:
        end = FIN_T + 3
        ev += [{"event": "running", "host": "server", "name": "server", "pid": 18, "time": end},
               {"event": "running", "host": "linux", "name": "telnet1", "pid": 20, "time": end}]
        if telnet2_exit is None:
            ev.append({"event": "running", "host": "win", "name": "telnet2", "pid": 21, "time": end})
        outputs = {"server.server": SERVER_OUT, "linux.telnet1": TELNET_OUT, "win.telnet2": TELNET_OUT} \
            if outputs is None else outputs
        for key, data in outputs.items():
            host, name = key.split(".")
            ev.append({"event": "output", "host": host, "name": name, "file": f"logs/programs/{key}.log",
                       "bytes": len(data), "lines": data.count(b"\n"), "time": end})
    return ev


def program_run(tmp_path: Path, expect: list[dict[str, Any]], events: list[dict[str, Any]] | None = None,
                outputs: dict[str, bytes] | None = None, **kw: Any) -> Path:
    run = make_run(tmp_path, expect=expect, **kw)
    if events is None:
        events = story_programs(outputs=outputs)
    with open(run / "programs.jsonl", "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    (run / "logs" / "programs").mkdir(parents=True, exist_ok=True)
    for e in events:
        if e["event"] == "output":
            data = (outputs or {"server.server": SERVER_OUT}).get(f"{e['host']}.{e['name']}", TELNET_OUT)
            (run / e["file"]).write_bytes(data)
    return run


def one(run: Path) -> Any:
    (v,) = [v for v in evaluate(run).verdicts if v.kind == "program"]
    return v


TELNET2 = {"host": "win", "name": "telnet2"}


# --- held ----------------------------------------------------------------------------

def test_exit_status_and_output_hold_with_the_moment_and_the_line(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "closed", "program": {**TELNET2, "exit": 143,
                                                                 "output": "^Connected to server"}}]))
    assert v.held, v.message
    assert v.expected == "telnet2 on win exits with status 143 (SIGTERM) and prints /^Connected to server/"
    assert "telnet2 on win exited with status 143 (SIGTERM) at stop-telnet2+2.000ms" in v.seen
    assert "printed 'Connected to server.'" in v.seen
    assert v.where == "logs/programs/win.telnet2.log line 2"
    assert v.time == pytest.approx(STOP_T + 0.002)


def test_an_exit_is_a_moment_later_expectations_can_count_from(tmp_path: Path) -> None:
    run = program_run(tmp_path, [
        {"name": "closed", "program": {**TELNET2, "exit": 143}},
        {"name": "fin-after", "packet": {"from": "win", "flags": "F.", "after": "closed", "within": "2s"}},
    ])
    vs = {v.name: v for v in evaluate(run).verdicts}
    assert vs["closed"].held and vs["fin-after"].held, vs["fin-after"].message


def test_a_program_still_running_at_the_end(tmp_path: Path) -> None:
    run = program_run(tmp_path, [{"name": "up", "program": {"host": "server", "name": "server", "running": True}},
                                 {"name": "gone", "program": {**TELNET2, "running": False}}])
    vs = {v.name: v for v in evaluate(run).verdicts}
    assert vs["up"].held and vs["up"].seen == "server on server was still running when the run ended"
    assert vs["gone"].held


def test_a_program_with_nothing_to_check_holds_once_started(tmp_path: Path) -> None:
    assert one(program_run(tmp_path, [{"name": "s", "program": {"host": "linux", "name": "telnet1"}}])).held


# --- failed ----------------------------------------------------------------------------

def test_a_wrong_exit_status_fails_saying_what_it_was(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "closed", "program": {**TELNET2, "exit": 1}}]))
    assert v.status == "failed"
    assert v.message.startswith("FAIL closed: expected telnet2 on win exits with status 1; seen: telnet2 on win "
                                "exited with status 143 (SIGTERM) at stop-telnet2+2.000ms (programs.jsonl line 4)")
    assert v.message.endswith("; differs in exit")


def test_output_not_printed_fails_with_the_last_lines(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "reset", "program": {**TELNET2, "output": "Connection reset"}}]))
    assert v.status == "failed"
    assert "its last lines: \"Trying 10.9.0.2...\" | \"Connected to server.\" | \"Escape character is '^]'.\"" \
        in v.seen
    assert v.where == "logs/programs/win.telnet2.log" and v.seen.endswith("differs in output")


def test_exit_on_a_program_still_running_at_the_end_fails(tmp_path: Path) -> None:
    """It had all the story to exit and did not: there is no exit status, and that is a finding."""
    v = one(program_run(tmp_path, [{"name": "quit", "program": {"host": "linux", "name": "telnet1", "exit": 1}}]))
    assert v.status == "failed"
    assert "telnet1 on linux was still running when the run ended" in v.seen


def test_running_true_on_a_program_that_exited_fails(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "up", "program": {**TELNET2, "running": True}}]))
    assert v.status == "failed" and v.seen.endswith("differs in running")


def test_output_regex_anchors_at_line_starts(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "o", "program": {**TELNET2, "output": "^server"}}]))
    assert v.status == "failed"  # "Connected to server." has it, but not at a line's start


# --- error: the evidence is missing ------------------------------------------------------

def test_a_program_still_running_when_the_run_stopped_early_is_an_error(tmp_path: Path) -> None:
    events = story_programs(telnet2_exit=None)
    v = one(program_run(tmp_path, [{"name": "quit", "program": {"host": "linux", "name": "telnet1", "exit": 1}}],
                        events=events, steps_played=5, failed_step="no FIN from win within 5 s"))
    assert v.status == "error"
    assert v.missing.startswith("telnet1 on linux was still running when the run stopped early: step 4")


def test_an_exit_seen_before_the_run_stopped_still_decides(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "closed", "program": {**TELNET2, "exit": 1}}],
                        steps_played=5, failed_step="no FIN from win within 5 s"))
    assert v.status == "failed"


def test_a_start_step_never_played_is_an_error_naming_it(tmp_path: Path) -> None:
    events = [e for e in story_programs() if e["name"] != "telnet2"]
    v = one(program_run(tmp_path, [{"name": "closed", "program": {**TELNET2, "exit": 143}}], events=events,
                        steps_played=1, failed_step="linux: program telnet1 was not printing /Connected to/"))
    assert v.status == "error" and v.missing.startswith("step 0 (linux connects with telnet) did not play (failed")


def test_a_run_without_program_events_is_an_error(tmp_path: Path) -> None:
    run = make_run(tmp_path, expect=[{"name": "s", "program": {"host": "server", "name": "server", "running": True}}])
    v = one(run)
    assert v.status == "error" and v.missing == "the run recorded no program events (programs.jsonl is missing)"


def test_an_end_never_observed_is_an_error(tmp_path: Path) -> None:
    """The host died before collection: no exit, no 'still running' either."""
    v = one(program_run(tmp_path, [{"name": "quit", "program": {"host": "linux", "name": "telnet1", "exit": 0}}],
                        events=story_programs(collected=False)))
    assert v.status == "error" and v.missing.startswith("the end of telnet1 on linux was never observed")


def test_output_not_collected_is_an_error(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "o", "program": {**TELNET2, "exit": 143, "output": "x"}}],
                        outputs={"server.server": SERVER_OUT}))
    assert v.status == "error"
    assert v.missing == "the output of telnet2 on win was not collected (logs/programs/win.telnet2.log)"


def test_result_json_carries_the_program_verdict(tmp_path: Path) -> None:
    from tcplab.analysis.results import result_document

    doc = result_document(evaluate(program_run(tmp_path, [{"name": "closed", "program": {**TELNET2, "exit": 143}}])))
    (item,) = [e for e in doc["expectations"] if e["name"] == "closed"]
    assert item["kind"] == "program" and item["status"] == "held"


# --- the lab file -------------------------------------------------------------------------

def _lab(expect: list[dict[str, Any]] | None = None, **sets: Any) -> None:
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    data["expect"] = expect or []
    keep_checked_facts(data)
    for dotted, value in sets.items():
        node = data
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[parts[-1]] = value
    validate(data, "x.yaml")


@pytest.mark.parametrize("expect,line", [
    ([{"name": "a", "program": {"host": "win", "name": "telnet9"}}],
     "x.yaml: expect.0.program.name: no program 'telnet9' on win (programs of win: telnet2)"),
    ([{"name": "a", "program": {"host": "win", "name": "telnet1"}}],
     "x.yaml: expect.0.program.name: no program 'telnet1' on win (programs of win: telnet2; it runs on linux)"),
    ([{"name": "a", "program": {"host": "mac", "name": "telnet1"}}],
     "x.yaml: expect.0.program.host: unknown host 'mac' (hosts: server, linux, win)"),
    ([{"name": "a", "program": {"host": "win", "name": "telnet2", "exit": 1, "running": True}}],
     "x.yaml: expect.0.program.running: a program that exited is not running at the end"),
    ([{"name": "a", "program": {"host": "win", "name": "telnet2", "exit": 256}}],
     "x.yaml: expect.0.program.exit:"),
    ([{"name": "a", "program": {"host": "win", "name": "telnet2", "exit": True}}],
     "x.yaml: expect.0.program.exit:"),
    ([{"name": "a", "program": {"host": "win", "name": "telnet2", "output": "reset (by"}}],
     "x.yaml: expect.0.program.output: 'reset (by' is not a regular expression: missing ), unterminated subpattern"),
    ([{"name": "a", "program": {"host": "win", "name": "telnet2", "exit": 1}, "packet": {"from": "win"}}],
     "x.yaml: expect.0: an expectation has exactly one of: packet, state, transition, program"),
])
def test_bad_program_expectations_name_the_field(expect: list[dict[str, Any]], line: str) -> None:
    with pytest.raises(LabError) as e:
        _lab(expect)
    assert str(e.value).startswith(line), str(e.value)


def test_the_host_program_and_started_programs_are_known() -> None:
    _lab([{"name": "a", "program": {"host": "server", "name": "server", "running": True}},
          {"name": "b", "program": {"host": "linux", "name": "telnet1", "output": r"^Connected to \w+\.$"}}])


@pytest.mark.parametrize("step,line", [
    ({"wait": {"exit": "telnet2"}}, "x.yaml: steps.8.host: a wait for 'telnet2' to exit names the host it runs on"),
    ({"host": "linux", "wait": {"exit": "telnet2"}},
     "x.yaml: steps.8.wait.exit: no program 'telnet2' was started on linux before this step"),
    ({"host": "win", "wait": {"seconds": "1s"}}, "x.yaml: steps.8.host: only a wait for a program's exit names a host"),
    ({"host": "mac", "wait": {"exit": "telnet2"}}, "x.yaml: steps.8.host: unknown host 'mac'"),
    ({"host": "win", "wait": {"exit": "telnet2", "seconds": "1s"}},
     "x.yaml: steps.8.wait: give exactly one of rst_from, fin_from, seconds, exit (this one has seconds and exit)"),
])
def test_bad_waits_for_an_exit_name_the_field(step: dict[str, Any], line: str) -> None:
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    data["steps"].append(step)
    with pytest.raises(LabError) as e:
        validate(data, "x.yaml")
    assert str(e.value).startswith(line), str(e.value)


def test_a_wait_for_an_exit_may_follow_the_stop() -> None:
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    data["steps"] += [{"host": "win", "wait": {"exit": "telnet2"}}, {"host": "server", "wait": {"exit": "server"}}]
    lab = validate(data, "x.yaml")
    from tcplab.model import step_title

    assert step_title(lab.steps[-1]) == "wait for server on server to exit"


def test_ready_log_is_a_regex_and_a_bad_one_names_the_field() -> None:
    _lab(steps__0__ready={"log": r"^Connected to (server|10\.)"})
    with pytest.raises(LabError) as e:
        _lab(steps__0__ready={"log": "Connected to ["})
    assert str(e.value).startswith("x.yaml: steps.0.ready.log: 'Connected to [' is not a regular expression")


# --- the events: one writer, one reader ----------------------------------------------------

def test_exit_file_lines_and_statuses() -> None:
    assert parse_exit_file("19 3 1796093274.603755\n33 143 1796093275.5\ncut") == [
        (19, 3, 1796093274.603755), (33, 143, 1796093275.5)]
    assert describe_status(143) == "status 143 (SIGTERM)" and describe_status(1) == "status 1"
    assert describe_status(137) == "status 137 (SIGKILL)"


def test_collection_records_exits_outputs_and_what_still_runs(tmp_path: Path) -> None:
    rd = RunDir(tmp_path).create()
    record_start(rd, "client", "reader", 40, ["cat"], 1, 100.0)
    record_start(rd, "client", "first", 30, ["telnet", "server"], 0, 99.0)
    files = {"reader.log": b"connected\ncat: -: Connection reset by peer\n", "reader.exit": b"40 1 101.25\n",
             "first.log": b"Connected to server.\n"}
    record_collected(rd, "client", files, 103.0)
    record_collected(rd, "client", files, 104.0)  # a second collection writes no second exit
    events = [e for _, e in program_events.read(rd)]
    assert [e["event"] for e in events].count("exit") == 1
    runs = read_programs(rd)
    reader, first = runs[("client", "reader")], runs[("client", "first")]
    assert (reader.status, reader.ended, reader.step, reader.exited) == (1, 101.25, 1, True)
    assert reader.running_at is None and rd.program_log("client", "reader").read_bytes() == files["reader.log"]
    assert (first.exited, first.running_at, first.collected) == (False, 104.0, True)  # the last look


def test_a_name_started_again_is_judged_on_its_last_run(tmp_path: Path) -> None:
    rd = RunDir(tmp_path).create()
    record_start(rd, "h", "p", 10, ["x"], 0, 1.0)
    record_start(rd, "h", "p", 20, ["x"], 2, 3.0)
    record_collected(rd, "h", {"p.exit": b"10 0 2.0\n20 7 4.0\n"}, 5.0)
    run = read_programs(rd)[("h", "p")]
    assert (run.pid, run.status, run.ended, run.step) == (20, 7, 4.0, 2)


def test_output_is_read_a_few_new_lines_at_a_time() -> None:
    log = [b"Trying 10.9.0.2...\nConn"]
    asked: list[list[str]] = []

    def run(argv: list[str]) -> ExecResult:
        asked.append(argv)
        start = int(argv[2].lstrip("+"))
        lines = b"".join(log).decode().split("\n")
        return ExecResult(0, "\n".join(lines[start - 1:]), "")

    out = ProgramOutput(run, "reader")
    assert not out.search(r"^Connected to \w+")
    log.append(b"ected to server.\nEscape character is '^]'.\n")
    assert out.search(r"^Connected to \w+")
    assert [a[2] for a in asked] == ["+1", "+2"] and asked[0][3] == "/var/log/lab/reader.log"
    assert out.last_lines() == ("its last lines: \"Trying 10.9.0.2...\" | \"Connected to server.\" | "
                                "\"Escape character is '^]'.\"")


def test_last_lines_stay_on_one_line() -> None:
    assert last_lines("") == "it printed nothing"
    assert last_lines("a\x1b[31mred\r\n\n" + "x" * 300) == f'its last lines: "a?[31mred" | "{"x" * 117}..."'
