"""Issue 6: `lab run` checks the lab against TCP as it really behaves, and CI can trust its exit status.

Each lab variant runs once (module fixtures) and several tests read its run
directory: the faithful Windows story must hold (exit 0); a Linux peer, a
server that closes its sockets, and a wrong seq must fail (exit 1) with the
failure that explains them; Ctrl-C mid-run exits 130 and leaves nothing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import LAB_PY, ROOT, lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration
XSD = ROOT / "tests" / "data" / "junit-ant.xsd"
FAST = "peers.win.fin_wait2_timeout=2s"


@dataclass
class Run:
    name: str
    out: Path
    code: int
    stdout: str
    stderr: str
    left: list[str]
    seconds: float

    @property
    def result(self) -> dict[str, Any]:
        return json.loads((self.out / "result.json").read_text())

    def verdict(self, name: str) -> dict[str, Any]:
        return next(e for e in self.result["expectations"] if e["name"] == name)

    @property
    def failed(self) -> set[str]:
        return {e["name"] for e in self.result["expectations"] if not e["held"]}


def _run(tmp: Path, base: str, sets: list[str], changes: dict[str, Any] | None = None,
         junit: Path | None = None) -> Run:
    lab, name = make_lab(tmp, base, changes=changes)
    out = tmp / "run"
    args = ["run", str(lab), *[a for s in sets for a in ("--set", s)], "--out", str(out)]
    if junit is not None:
        args += ["--junit", str(junit)]
    t = time.monotonic()
    res = lab_cmd(*args, cwd=tmp, timeout=300)
    seconds = time.monotonic() - t
    left = labeled_objects(name)
    if left:  # clean up for the next tests; the test asserting nothing is left still fails
        lab_cmd("down", name, cwd=tmp, timeout=120)
    return Run(name, out, res.returncode, res.stdout, res.stderr, left, seconds)


def _validate_junit(path: Path) -> Any:
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(XSD)))
    doc = etree.parse(str(path))
    assert schema.validate(doc), f"{path}: {schema.error_log}"
    return doc


# --- the faithful lab holds ------------------------------------------------------

@pytest.fixture(scope="module")
def windows_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("win")
    return _run(tmp, "closewait", [FAST], junit=tmp / "ci" / "junit.xml")


def test_closewait_holds(windows_run: Run) -> None:
    r = windows_run
    assert r.code == 0, r.stdout + r.stderr
    assert r.result["passed"] is True and r.result["counts"]["failed"] == 0
    assert r.left == []
    assert f"all {r.result['counts']['held']} expectations held" in r.stdout
    import tcplab.report

    if hasattr(tcplab.report, "write_report"):  # the report is written from the verdicts just judged
        assert (r.out / "report.html").is_file() and "win-rst-after-fin-wait2" in (r.out / "report.html").read_text()


def test_closewait_covers_the_scenario(windows_run: Run) -> None:
    """Every fact of SCENARIO.md's "What a faithful lab reproduces", as the run saw it."""
    r = windows_run
    seen = {e["name"]: e for e in r.result["expectations"]}
    assert all(e["held"] for e in seen.values())
    syn = seen["win-syn-fingerprint"]["seen"]
    assert "[S]" in syn and "ttl 128" in syn and "win 8192" in syn and "wscale 8" in syn
    assert "options [mss,nop,wscale,nop,nop,sackOK]" in syn
    assert "win→server [F.] seq 1 ack 1" in seen["win-fin"]["seen"]
    assert "server→win [.] seq 1 ack 2" in seen["server-kernel-acks-fin"]["seen"]
    assert seen["server-never-fins"]["expected"] == "no server→win with flag F"
    assert seen["close-wait-unowned"]["seen"].startswith("server:8000→win:") and \
        seen["close-wait-unowned"]["seen"].endswith("CLOSE_WAIT -")
    rst = seen["win-rst-after-fin-wait2"]
    assert "win→server [R.] seq 2 ack 1 win 0 at win-fin+" in rst["seen"]
    assert "at win-fin+2.000s±0.050s" in rst["expected"]
    offset = float(rst["seen"].rsplit("win-fin+", 1)[1].rstrip("s"))
    assert abs(offset - 2.0) <= 0.05
    assert seen["close-wait-gone"]["seen"] == "no socket server:8000→win"
    assert seen["listen-owned-by-server"]["seen"].startswith("server:8000 LISTEN ") and \
        seen["listen-owned-by-server"]["seen"].endswith("/server")
    assert seen["win-established-unowned"]["seen"].endswith("ESTABLISHED -")
    assert "ESTABLISHED→CLOSE_WAIT" in seen["server-enters-close-wait"]["seen"]
    assert "CLOSE_WAIT→CLOSE" in seen["server-close-wait-reset"]["seen"]


def test_closewait_junit_is_valid(windows_run: Run) -> None:
    for path in (windows_run.out / "junit.xml", windows_run.out.parent / "ci" / "junit.xml"):
        doc = _validate_junit(path)
        cases = doc.findall(".//testcase")
        assert len(cases) == windows_run.result["counts"]["held"] and doc.find(".//failure") is None


# --- what must fail, fails, and says why ----------------------------------------------

WRONG_SEQ = {"name": "fin-wrong-seq", "about": "a deliberately wrong expectation: the FIN's seq is 1, not 5",
             "packet": {"from": "win", "to": "server", "flags": "F.", "seq": 5, "ack": 1}}


@pytest.fixture(scope="module")
def linux_peer_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The Windows expectations against a Linux peer (no RST ever comes), plus a wrong seq."""
    tmp = tmp_path_factory.mktemp("linuxpeer")
    base = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    return _run(tmp, "closewait", ["peers.win.os=linux", "peers.win.fin_wait2_timeout=null", "peers.win.syn=null",
                                   "steps.6={wait: {seconds: 3s}, timeout: 10s}"],
                changes={"expect": base["expect"] + [WRONG_SEQ]})


def test_linux_peer_fails_on_the_missing_rst(linux_peer_run: Run) -> None:
    r = linux_peer_run
    assert r.code == 1, r.stdout + r.stderr
    assert r.left == []
    assert r.failed == {"win-syn-fingerprint", "win-rst-after-fin-wait2", "server-close-wait-reset",
                        "close-wait-gone", "fin-wrong-seq"}
    rst = r.verdict("win-rst-after-fin-wait2")
    assert rst["message"].startswith("FAIL win-rst-after-fin-wait2: expected win→server [R.] seq 2 ack 1 win 0 "
                                     "at win-fin+peers.win.fin_wait2_timeout (not set in this run); closest: "
                                     "win→server [F.] seq 1 ack 1")
    assert "differs in flags, seq, win" in rst["message"]
    gone = r.verdict("close-wait-gone")
    assert gone["seen"].startswith("server:8000→win:") and gone["seen"].endswith("CLOSE_WAIT -")
    assert gone["where"] == "sockets/server-after_rst.txt"
    assert "ttl 64" in r.verdict("win-syn-fingerprint")["seen"]


def test_a_failure_says_the_machine_was_short_of_cpu_exactly_when_its_steps_say_so(linux_peer_run: Run) -> None:
    """Whatever the load beside this test: the line comes with the failures if and only if the steps recorded
    a task waiting for a CPU half the story or more; the report shows the share either way."""
    steps = [json.loads(line) for line in (linux_peer_run.out / "steps.jsonl").read_text().splitlines()]
    assert steps and all(isinstance(s.get("cpu_stalled"), float) for s in steps), steps
    share = sum(s["cpu_stalled"] for s in steps) / sum(s["end"] - s["start"] for s in steps)
    said = "the machine was short of CPU during the story" in linux_peer_run.stdout
    assert said == (share >= 0.5), (share, linux_peer_run.stdout[-500:])
    cpu = linux_peer_run.result["cpu"]
    assert abs(cpu["share"] - share) < 0.001 and cpu["short"] == said, cpu
    report = (linux_peer_run.out / "report.html").read_text()
    assert "<th>CPU during the story</th>" in report and "a task waited for a CPU" in report


def test_wrong_seq_fails_with_the_fin_as_closest(linux_peer_run: Run) -> None:
    v = linux_peer_run.verdict("fin-wrong-seq")
    assert v["message"].startswith("FAIL fin-wrong-seq: expected win→server [F.] seq 5 ack 1; closest: "
                                   "win→server [F.] seq 1 ack 1 ")
    assert v["message"].endswith("); differs in seq")
    assert v["where"].startswith("capture/win.pcap #")


def test_failures_reach_terminal_result_and_junit(linux_peer_run: Run) -> None:
    r = linux_peer_run
    doc = _validate_junit(r.out / "junit.xml")
    # what failed is a <failure>; what could not be judged for missing evidence (timed from a packet
    # that never came) is an <error>
    blocks = {f.getparent().get("name"): f for f in doc.findall(".//testcase/failure")}
    errors = {f.getparent().get("name"): f for f in doc.findall(".//testcase/error")}
    status = {e["name"]: e["status"] for e in r.result["expectations"]}
    assert set(blocks) == {n for n, s in status.items() if s == "failed"}
    assert set(errors) == {n for n, s in status.items() if s == "error"}
    blocks.update(errors)
    assert set(blocks) == r.failed
    for name in r.failed:
        v = r.verdict(name)
        assert v["message"] in r.stdout  # one block per failure or error in the terminal
        assert blocks[name].get("message") == v["message"]
        assert f"look at:  {v['where']}" in blocks[name].text
    n_failed, n_errors = len(r.failed) - len(errors), len(errors)
    total = len(r.result["expectations"])
    assert (f"{n_failed} of {total} expectations failed" + (f", {n_errors} could not be judged" if n_errors else "")
            in r.stdout)


@pytest.fixture(scope="module")
def fixed_server_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A server that closes every socket: no CLOSE_WAIT, so no RST; the RST wait times out (3 s)."""
    tmp = tmp_path_factory.mktemp("fixed")
    return _run(tmp, "closewait", [FAST, "steps.6.timeout=3s"],
                changes={"hosts.server.program.env": {"LAB_SERVER_CLOSE_ON_FIN": "1"}})


def test_fixed_server_has_no_close_wait(fixed_server_run: Run) -> None:
    r = fixed_server_run
    assert r.code == 1, r.stdout + r.stderr  # the lab's claim failed; the environment did not
    assert r.left == []
    assert {"close-wait-unowned", "server-never-fins", "step-wait-6", "win-established-unowned"} <= r.failed
    assert {"win-syn-fingerprint", "win-fin", "listen-owned-by-server", "server-enters-close-wait"}.isdisjoint(
        r.failed)
    # the server accepted win's connection in a child: it is owned now
    assert r.verdict("win-established-unowned")["message"].endswith("/server (sockets/server-established.txt); "
                                                                     "differs in owner")
    # (server-kernel-acks-fin may go either way here: the child's FIN often rides on the ACK of win's FIN)
    cw = r.verdict("close-wait-unowned")
    assert cw["message"].startswith("FAIL close-wait-unowned: expected server:8000→win CLOSE_WAIT, owned by no "
                                    "program at close_wait; ")
    assert "CLOSE_WAIT -" not in cw["seen"]
    assert cw["where"] == "sockets/server-close_wait.txt"
    fin = r.verdict("server-never-fins")
    assert fin["seen"].startswith("1: server→win [F.]")
    step = r.verdict("step-wait-6")
    assert step["kind"] == "step" and step["seen"] == "no RST from win within 3 s"
    assert "snapshot 'after_rst' was not taken: the run stopped at step 6" in r.verdict("close-wait-gone")["seen"]


# --- the control lab, bad input, Ctrl-C -------------------------------------------------

def test_the_linux_control_holds_its_own_truths(tmp_path: Path) -> None:
    r = _run(tmp_path, "closewait-linux", [])
    assert r.code == 0, r.stdout + r.stderr
    assert r.left == [] and r.result["passed"] and r.result["counts"]["held"] >= 8


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    res = lab_cmd("run", "no-such-lab", cwd=tmp_path)
    assert res.returncode == 2 and "no-such-lab: no such lab" in res.stderr
    lab, _ = make_lab(tmp_path, "closewait")
    res = lab_cmd("run", str(lab), "--set", "expect.0.packet.after=nowhere", cwd=tmp_path)
    assert res.returncode == 2 and "expect.0.packet.after: 'nowhere' is not" in res.stderr


def test_ctrl_c_mid_run_leaves_nothing(tmp_path: Path) -> None:
    lab, name = make_lab(tmp_path, "closewait-linux", changes={"steps.6": {"wait": {"seconds": "60s"},
                                                                          "timeout": "70s"}})
    out = tmp_path / "run"
    env = dict(os.environ, TCPLAB_HOME=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(LAB_PY), "run", str(lab), "--out", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        steps = out / "steps.jsonl"
        # step 5's record is written as step 6 (the long wait) begins
        while not (steps.is_file() and '"index": 5' in steps.read_text()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached its wait step"
            time.sleep(0.1)
        assert labeled_objects(name), "the lab should be up mid-run"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = labeled_objects(name)
    if left:
        lab_cmd("down", name, cwd=tmp_path, timeout=120)
    assert proc.returncode == 130, stderr
    assert left == []
    assert "interrupted" in stderr
    assert not (out / "result.json").exists()
