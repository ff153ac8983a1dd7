"""Story programs belong to the story: a client reset by its server prints "Connection reset by peer"
and exits 1, and that is what the lab is about, not an environment failure. `lab run` records each
program's start, exit and output (programs.jsonl), judges `program` expectations on them, and exits
0 or 1 with result.json; `ready.log` is a regex, and a failed ready check names the program's last lines.

The lab: a single-threaded server (backlog 1) serves telnet `first`; `reader` (bash's /dev/tcp and
cat) connects next and waits in the accept queue. When the server program is stopped, the kernel
closes its listening socket and resets the queued connection: cat reads ECONNRESET.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.wire import decode_tcp, read_pcap_file

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

READER = ["bash", "-c", "exec 3<>/dev/tcp/server/8000 && echo connected && exec cat <&3"]
HOSTS = {
    "server": {"image": "tcplab/server",
               "program": {"run": ["/opt/lab/server", "8000", "1"], "name": "server", "ready": {"listen": 8000}}},
    "client": {"image": "tcplab/client"},
}
STEPS: list[dict[str, Any]] = [
    # a regex: "Connected to" alone would also match "Connected to 10.x" lines; this one needs the name and the dot
    {"host": "client", "start": ["telnet", "server", "8000"], "as": "first", "ready": {"log": r"^Connected to \w+\.$"}},
    {"host": "client", "start": READER, "as": "reader", "ready": {"log": "^connected$"}},
    {"host": "server", "stop": "server", "title": "the server goes away"},
    {"host": "client", "wait": {"exit": "reader"}, "timeout": "5s"},
    {"host": "client", "wait": {"exit": "first"}, "timeout": "5s"},
    {"host": "client", "stop": "reader", "title": "close the reader (it is gone already)"},
]
EXPECT: list[dict[str, Any]] = [
    {"name": "reader-reset", "about": "the queued client reads the reset and exits 1",
     "program": {"host": "client", "name": "reader", "exit": 1, "output": "Connection reset by peer"}},
    {"name": "first-closed", "about": "the served client sees the server's FIN (Debian's telnet then exits 0)",
     "program": {"host": "client", "name": "first", "exit": 0, "output": "^Connection closed by foreign host"}},
    {"name": "server-terminated", "about": "the server ended by SIGTERM",
     "program": {"host": "server", "name": "server", "exit": 143, "running": False}},
    {"name": "rst-to-reader", "about": "the server's kernel resets the queued connection",
     "packet": {"from": "server", "to": "client", "has_flags": "R", "after": "stop-server", "within": "1s"}},
]


def run_lab(tmp: Path, expect: list[dict[str, Any]] = EXPECT, steps: list[dict[str, Any]] = STEPS,
            hosts: dict[str, Any] = HOSTS) -> tuple[Any, Path, str]:
    lab, name = make_lab(tmp, "closewait-linux", changes={
        "summary": "A client in the accept queue is reset when the server goes away.", "story": "",
        "hosts": hosts, "steps": steps, "expect": expect})
    out = tmp / "run"
    res = lab_cmd("run", str(lab), "--out", str(out), cwd=tmp, timeout=300)
    assert labeled_objects(name) == []
    return res, out, name


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "programs.jsonl").read_text().splitlines()]


def test_a_client_reset_by_its_server_is_the_story(tmp_path: Path) -> None:
    res, out, _ = run_lab(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads((out / "result.json").read_text())
    assert {e["name"]: e["status"] for e in result["expectations"]} == {
        "reader-reset": "held", "first-closed": "held", "server-terminated": "held", "rst-to-reader": "held"}
    reader = next(e for e in result["expectations"] if e["name"] == "reader-reset")
    assert reader["where"] == "logs/programs/client.reader.log line 2"
    assert "printed 'cat: -: Connection reset by peer'" in reader["seen"]

    ev = events(out)
    starts = {e["name"]: e for e in ev if e["event"] == "start"}
    assert (starts["server"]["step"], starts["first"]["step"], starts["reader"]["step"]) == (None, 0, 1)
    assert starts["reader"]["argv"] == READER
    exits = {e["name"]: e for e in ev if e["event"] == "exit"}
    assert (exits["reader"]["status"], exits["server"]["status"], exits["server"]["signal"]) == (1, 143, "TERM")
    steps = {s["name"]: s for s in map(json.loads, (out / "steps.jsonl").read_text().splitlines())}
    # the server ended during its stop step; its kernel's RST reached the reader, which ended right after
    # (exit times are the watcher's: just after the program is gone, so after the packets its end sent)
    rst = next(p.ts for p in map(decode_tcp, read_pcap_file(str(out / "capture" / "client.pcap")))
               if p is not None and p.flag_string() == "R." and p.sport == 8000)
    assert steps["stop-server"]["start"] <= rst <= exits["server"]["time"] <= steps["stop-server"]["end"]
    assert rst <= exits["reader"]["time"] <= rst + 0.5 and exits["reader"]["time"] <= steps["wait-3"]["end"]
    assert steps["wait-3"]["detail"] == "reader exited with status 1"
    # stopping a program that already exited is no failure: the step says how it had ended
    assert steps["stop-reader"]["outcome"] == "ok"
    assert steps["stop-reader"]["detail"] == "had already exited with status 1"
    assert steps["stop-server"]["detail"] == "sent SIGTERM; exited with status 143"
    outputs = {e["name"]: e for e in ev if e["event"] == "output"}
    assert outputs["reader"]["file"] == "logs/programs/client.reader.log"
    assert (out / "logs" / "programs" / "client.reader.log").read_text() == \
        "connected\ncat: -: Connection reset by peer\n"
    assert ".exit" not in (out / "logs" / "client.log").read_text()  # the combined log stays output only


def test_a_wrong_exit_status_fails_the_run_with_its_result(tmp_path: Path) -> None:
    wrong = [{**EXPECT[0], "program": {**EXPECT[0]["program"], "exit": 2}}]
    res, out, _ = run_lab(tmp_path, expect=wrong)
    assert res.returncode == 1, res.stdout + res.stderr
    (verdict,) = json.loads((out / "result.json").read_text())["expectations"]
    assert verdict["status"] == "failed"
    assert verdict["message"].startswith("FAIL reader-reset: expected reader on client exits with status 2 and "
                                         "prints /Connection reset by peer/; seen: reader on client exited with "
                                         "status 1 at stop-server+")
    assert verdict["message"].endswith("differs in exit")
    assert "FAIL reader-reset" in res.stdout


def test_a_program_that_exits_before_it_is_ready_fails_its_step_naming_its_last_lines(tmp_path: Path) -> None:
    """Nothing listens on port 9: telnet says so and exits 1 before it ever prints 'Connected'."""
    steps = [STEPS[0], {"host": "client", "start": ["telnet", "server", "9"], "as": "nine",
                        "ready": {"log": "^Connected"}},
             {"snapshot": "never"}]
    expect = [{"name": "nine-refused", "program": {"host": "client", "name": "nine", "exit": 1,
                                                   "output": "Connection refused"}}]
    res, out, _ = run_lab(tmp_path, expect=expect, steps=steps)
    assert res.returncode == 1, res.stdout + res.stderr
    result = json.loads((out / "result.json").read_text())
    step, program = result["expectations"]
    assert step["name"] == "step-start-nine" and step["status"] == "failed"
    assert step["seen"] == ('client: program nine exited with status 1 before it was printing /^Connected/; its '
                            'last lines: "Trying 10.' + step["seen"].split('"Trying 10.', 1)[1])
    assert step["seen"].endswith('| "telnet: Unable to connect to remote host: Connection refused"')
    # its exit was seen before the run stopped: the program expectation is judged, and holds
    assert program["status"] == "held", program["message"]


def test_a_ready_timeout_names_what_the_program_printed_last(tmp_path: Path) -> None:
    steps = [{**STEPS[0], "ready": {"log": "^Connected to nowhere", "timeout": "1s"}}]
    res, out, _ = run_lab(tmp_path, expect=[], steps=steps)
    assert res.returncode == 1, res.stdout + res.stderr
    (step,) = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert step["outcome"] == "failed"
    assert step["detail"] == ("client: program first was not printing /^Connected to nowhere/ within 1 s; its last "
                              "lines: \"Trying " + step["detail"].split('"Trying ', 1)[1])
    assert step["detail"].endswith("| \"Connected to server.\" | \"Escape character is '^]'.\"")


def test_the_host_program_failing_to_start_is_the_lab_not_starting(tmp_path: Path) -> None:
    """The server cannot bind a port it may not use: the lab never got to its story (exit 3), and the
    message says why in the program's own words."""
    hosts = {**HOSTS, "server": {"image": "tcplab/server", "program": {
        "run": ["/opt/lab/server", "99999"], "name": "server", "ready": {"listen": 8000}}}}
    res, _, _ = run_lab(tmp_path, expect=[], steps=[], hosts=hosts)
    assert res.returncode == 3, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("lab: the lab could not start: server: program server exited with status 2 before it "
                           'was listening on port 8000; its last line: "usage: server [PORT [BACKLOG]]"'), last
