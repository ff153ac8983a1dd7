"""Expectations judged against small run directories built here: pcaps written with scapy,
snapshots, transitions and steps as `lab up` writes them. The lab is the real labs/closewait.yaml,
so these tests also check that its expectations say what SCENARIO.md says."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.expectations import evaluate
from tcplab.analysis.results import junit_document, result_document, write_junit, write_result_json
from tcplab.model import LabError, load_lab
from tcplab.model.loader import apply_set, validate

from ..conftest import keep_checked_facts

ROOT = Path(__file__).resolve().parents[2]
XSD = ROOT / "tests" / "data" / "junit-ant.xsd"
IPS = {"server": "10.9.0.2", "linux": "10.9.0.3", "win": "10.9.0.4"}
T0 = 1_795_000_000.0  # the story's clock: the win SYN leaves at T0 + 1
FIN_T = T0 + 3.0
WIN_ISN, SRV_ISN = 1_000_000, 7_000_000
WIN_SYN_OPTS = [("MSS", 1460), ("NOP", None), ("WScale", 8), ("NOP", None), ("NOP", None), ("SAckOK", b"")]


@dataclass
class Pkt:
    t: float
    src: str
    dst: str
    flags: str
    seq: int
    ack: int = 0
    win: int = 502
    ttl: int = 64
    options: list[tuple[str, Any]] = field(default_factory=list)
    payload: bytes = b""


def story(rst_delay: float | None = 2.0, server_fin: bool = False) -> list[Pkt]:
    """The closewait story's packets between win and server (the linux client is left out)."""
    ws, ss = WIN_ISN, SRV_ISN
    pk = [
        Pkt(T0 + 1, "win", "server", "S", ws, 0, 8192, 128, WIN_SYN_OPTS),
        Pkt(T0 + 1.0001, "server", "win", "SA", ss, ws + 1, 64240, 64,
            [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]),
        Pkt(T0 + 1.0002, "win", "server", "A", ws + 1, ss + 1, 256, 128),
        Pkt(FIN_T, "win", "server", "FA", ws + 1, ss + 1, 256, 128),
        Pkt(FIN_T + 0.0003, "server", "win", "A", ss + 1, ws + 2, 229, 64),
    ]
    if server_fin:
        pk.append(Pkt(FIN_T + 0.5, "server", "win", "FA", ss + 1, ws + 2, 229, 64))
    if rst_delay is not None:
        pk.append(Pkt(FIN_T + rst_delay, "win", "server", "RA", ws + 2, ss + 1, 0, 128))
    return pk


def write_pcaps(run: Path, packets: list[Pkt]) -> None:
    """Each packet in its sender's capture and its receiver's, as the per-host tcpdumps see them."""
    from scapy.all import IP, TCP, Ether, Raw, wrpcap

    per_host: dict[str, list[Any]] = {h: [] for h in IPS}
    for p in packets:
        frame = Ether() / IP(src=IPS[p.src], dst=IPS[p.dst], ttl=p.ttl) / TCP(
            sport=49000 if p.src == "win" else 8000, dport=8000 if p.src == "win" else 49000, flags=p.flags,
            seq=p.seq, ack=p.ack, window=p.win, options=p.options)
        if p.payload:
            frame = frame / Raw(p.payload)
        for host, delay in ((p.src, 0.0), (p.dst, 0.00002)):
            f = frame.copy()
            f.time = p.t + delay
            per_host[host].append(f)
    (run / "capture").mkdir(parents=True, exist_ok=True)
    for host, frames in per_host.items():
        wrpcap(str(run / "capture" / f"{host}.pcap"), frames)


def sock(state: str, local: str, lport: int, peer: str | None, pport: int | None, pid: int | None = None,
         program: str | None = None) -> dict[str, Any]:
    return {"source": "netstat", "state": state, "local_addr": local, "local_port": lport,
            "peer_addr": IPS[peer] if peer else "0.0.0.0", "peer_port": pport, "recv_q": 0, "send_q": 0,
            "pid": pid, "program": program, "timer": None, "info": ""}


LISTEN = sock("LISTEN", "0.0.0.0", 8000, None, None, 18, "server")
LINUX_CONN = sock("ESTABLISHED", IPS["server"], 8000, "linux", 50000, 18, "server")


def snapshots(close_wait_owner: int | None = None, after_rst: list[dict[str, Any]] | None = None,
              upto: int = 3) -> dict[str, Any]:
    srv = IPS["server"]
    tables = [
        ("established", T0 + 2, 2, [LISTEN, LINUX_CONN, sock("ESTABLISHED", srv, 8000, "win", 49000)]),
        ("close_wait", FIN_T + 0.2, 5, [LISTEN, LINUX_CONN, sock("CLOSE_WAIT", srv, 8000, "win", 49000,
                                                                close_wait_owner,
                                                                "server" if close_wait_owner else None)]),
        ("after_rst", FIN_T + 2.5, 7, after_rst if after_rst is not None else [LISTEN, LINUX_CONN]),
    ]
    return {name: {"time": t, "step": step, "hosts": {"server": {"netstat": {"raw": "", "records": recs}}}}
            for name, t, step, recs in tables[:upto]}


def transitions(rst_t: float | None) -> list[dict[str, Any]]:
    srv, win = IPS["server"], IPS["win"]
    out = [
        {"ts": T0 + 1.00015, "event": "inet_sock_set_state", "saddr": srv, "sport": 8000, "daddr": win,
         "dport": 49000, "old": "SYN_RECV", "new": "ESTABLISHED"},
        {"ts": FIN_T + 0.00005, "event": "inet_sock_set_state", "saddr": srv, "sport": 8000, "daddr": win,
         "dport": 49000, "old": "ESTABLISHED", "new": "CLOSE_WAIT"},
    ]
    if rst_t is not None:
        out.append({"ts": rst_t + 0.00004, "event": "tcp_receive_reset", "saddr": srv, "sport": 8000, "daddr": win,
                    "dport": 49000, "state": "CLOSE_WAIT"})
        out.append({"ts": rst_t + 0.00005, "event": "inet_sock_set_state", "saddr": srv, "sport": 8000,
                    "daddr": win, "dport": 49000, "old": "CLOSE_WAIT", "new": "CLOSE"})
    return out


STEP_NAMES = [("start-telnet1", "start", "linux connects with telnet"),
              ("start-telnet2", "start", "win connects with telnet"),
              ("established", "snapshot", "snapshot established"),
              ("stop-telnet2", "stop", "win closes telnet"),
              ("wait-4", "wait", "wait for a FIN from win"),
              ("close_wait", "snapshot", "snapshot close_wait"),
              ("wait-6", "wait", "wait for an RST from win"),
              ("after_rst", "snapshot", "snapshot after_rst")]
STEP_TIMES = [T0 + 0.5, T0 + 1.0, T0 + 2, FIN_T - 0.05, FIN_T - 0.04, FIN_T + 0.2, FIN_T + 0.3, FIN_T + 2.5]


def make_run(tmp_path: Path, sets: list[str] = (), packets: list[Pkt] | None = None,
             snaps: dict[str, Any] | None = None, trans: list[dict[str, Any]] | None = None,
             steps_played: int = 8, failed_step: str | None = None, expect: list[dict[str, Any]] | None = None,
             tracer: bool = True) -> Path:
    """A run directory of labs/closewait.yaml (with ``sets``), as `lab run` leaves it."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    for s in ["peers.win.fin_wait2_timeout=2s", *sets]:
        data = apply_set(data, s, "closewait.yaml")
    if expect is not None:
        data["expect"] = expect
        keep_checked_facts(data)
    (run / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (run / "run.json").write_text(json.dumps({"lab": "closewait", "run": "closewait-20261124T101500Z",
                                              "hosts": IPS, "started": T0, "ended": FIN_T + 3,
                                              "tracer": "ok" if tracer else "tracefs is not mounted"}))
    write_pcaps(run, story() if packets is None else packets)
    (run / "sockets").mkdir()
    (run / "sockets" / "snapshots.json").write_text(json.dumps(snapshots() if snaps is None else snaps))
    if tracer:
        with open(run / "sockets" / "transitions.jsonl", "w") as f:
            for rec in (transitions(FIN_T + 2.0) if trans is None else trans):
                f.write(json.dumps(rec) + "\n")
    with open(run / "steps.jsonl", "w") as f:
        for i, ((name, kind, title), t) in enumerate(list(zip(STEP_NAMES, STEP_TIMES))[:steps_played]):
            failed = failed_step is not None and i == steps_played - 1
            f.write(json.dumps({"index": i, "name": name, "kind": kind, "title": title, "host": None, "start": t,
                                "end": t + 0.01, "outcome": "failed" if failed else "ok",
                                "detail": failed_step if failed else ""}) + "\n")
    return run


def verdicts(run: Path) -> dict[str, Any]:
    return {v.name: v for v in evaluate(run).verdicts}


def failed(run: Path) -> set[str]:
    return {n for n, v in verdicts(run).items() if not v.held}


# --- the faithful story holds ----------------------------------------------------

def test_every_closewait_expectation_holds_on_the_story(tmp_path: Path) -> None:
    ev = evaluate(make_run(tmp_path))
    assert [v.name for v in ev.verdicts if not v.held] == []
    assert ev.passed and ev.held == 11
    # they cover every fact of SCENARIO.md's "What a faithful lab reproduces"
    kinds = {v.name: v.kind for v in ev.verdicts}
    assert list(kinds.values()).count("transition") == 2 and list(kinds.values()).count("state") == 4


def test_a_held_packet_says_where_it_is(tmp_path: Path) -> None:
    v = verdicts(make_run(tmp_path))
    assert v["win-fin"].where == "capture/win.pcap #4"
    assert v["win-fin"].seen == "win→server [F.] seq 1 ack 1 win 256 at stop-telnet2+0.050s"
    assert v["win-rst-after-fin-wait2"].seen.endswith("at win-fin+2.000s")
    assert v["server-enters-close-wait"].where == "sockets/transitions.jsonl line 2"


# --- failures say what was expected, what came closest, where to look ---------------

def test_a_late_rst_fails_with_the_closest_packet(tmp_path: Path) -> None:
    run = make_run(tmp_path, packets=story(rst_delay=2.310), trans=transitions(FIN_T + 2.310))
    v = verdicts(run)["win-rst-after-fin-wait2"]
    assert not v.held
    assert v.message == (
        "FAIL win-rst-after-fin-wait2: expected win→server [R.] seq 2 ack 1 win 0 at win-fin+2.000s±0.050s "
        "(peers.win.fin_wait2_timeout); the next matching packet: win→server [R.] seq 2 ack 1 win 0 at win-fin+2.310s "
        "(capture/win.pcap #6); differs in time")
    # what depends on it fails too, and says why
    assert "'win-rst-after-fin-wait2' did not hold" in verdicts(run)["server-close-wait-reset"].seen


def test_rst_within_tolerance_holds(tmp_path: Path) -> None:
    run = make_run(tmp_path, packets=story(rst_delay=2.049), trans=transitions(FIN_T + 2.049))
    assert failed(run) == set()


def test_the_delay_follows_the_peer_timer_set_on_the_command_line(tmp_path: Path) -> None:
    run = make_run(tmp_path, sets=["peers.win.fin_wait2_timeout=3s"])
    v = verdicts(run)["win-rst-after-fin-wait2"]
    assert not v.held and "at win-fin+3.000s±0.050s" in v.expected


def test_no_rst_at_all(tmp_path: Path) -> None:
    run = make_run(tmp_path, packets=story(rst_delay=None), trans=transitions(None),
                   snaps=snapshots(after_rst=[LISTEN, LINUX_CONN, sock("CLOSE_WAIT", IPS["server"], 8000, "win",
                                                                       49000)]))
    assert failed(run) == {"win-rst-after-fin-wait2", "server-close-wait-reset", "close-wait-gone"}
    v = verdicts(run)
    assert "differs in flags" in v["win-rst-after-fin-wait2"].message
    assert v["close-wait-gone"].seen == "server:8000→win:49000 CLOSE_WAIT -"
    assert v["close-wait-gone"].where == "sockets/server-after_rst.txt"


def test_a_linux_peer_has_no_timer_to_time_the_rst_from(tmp_path: Path) -> None:
    run = make_run(tmp_path, sets=["peers.win.os=linux", "peers.win.fin_wait2_timeout=null", "peers.win.syn=null"],
                   packets=story(rst_delay=None), trans=transitions(None))
    v = verdicts(run)["win-rst-after-fin-wait2"]
    assert not v.held
    assert "peers.win.fin_wait2_timeout is not set in this run" in v.message
    assert "closest: win→server [F.] seq 1 ack 1 win 256 at win-fin+0.000s" in v.message


def test_server_fin_breaks_never(tmp_path: Path) -> None:
    run = make_run(tmp_path, packets=story(server_fin=True))
    v = verdicts(run)["server-never-fins"]
    assert not v.held
    assert v.message == ("FAIL server-never-fins: expected no server→win with flag F; seen: 1: server→win [F.] seq 1 "
                         "ack 2 win 229 at t=2.500s (capture/server.pcap #6)")


def test_wrong_seq(tmp_path: Path) -> None:
    exp = [{"name": "fin-seq-5", "about": "a wrong seq",
            "packet": {"from": "win", "to": "server", "flags": "F.", "seq": 5, "ack": 1}}]
    v = verdicts(make_run(tmp_path, expect=exp))["fin-seq-5"]
    assert not v.held
    assert v.message == ("FAIL fin-seq-5: expected win→server [F.] seq 5 ack 1; closest: win→server [F.] seq 1 "
                         "ack 1 win 256 at t=2.000s (capture/win.pcap #4); differs in seq")


def test_close_wait_owned_by_a_program_fails_on_owner(tmp_path: Path) -> None:
    v = verdicts(make_run(tmp_path, snaps=snapshots(close_wait_owner=18)))["close-wait-unowned"]
    assert not v.held
    assert v.message == ("FAIL close-wait-unowned: expected server:8000→win CLOSE_WAIT, owned by no program at "
                         "close_wait; closest: server:8000→win:49000 CLOSE_WAIT 18/server "
                         "(sockets/server-close_wait.txt); differs in owner")


def test_no_close_wait_at_all(tmp_path: Path) -> None:
    snaps = snapshots()
    snaps["close_wait"]["hosts"]["server"]["netstat"]["records"] = [LISTEN, LINUX_CONN]
    v = verdicts(make_run(tmp_path, snaps=snaps))["close-wait-unowned"]
    assert not v.held
    assert v.seen == "no socket server:8000→win (server had: server:8000 LISTEN 18/server; " \
                     "server:8000→linux:50000 ESTABLISHED 18/server)"


def test_a_run_that_stopped_early(tmp_path: Path) -> None:
    run = make_run(tmp_path, packets=story(rst_delay=None), trans=transitions(None), snaps=snapshots(upto=2),
                   steps_played=7, failed_step="no RST from win within 130 s")
    ev = evaluate(run)
    first = ev.verdicts[0]
    assert (first.kind, first.name, first.held) == ("step", "step-wait-6", False)
    assert first.seen == "no RST from win within 130 s" and first.where == "steps.jsonl line 7"
    gone = {v.name: v for v in ev.verdicts}["close-wait-gone"]
    assert gone.seen == ("snapshot 'after_rst' was not taken: the run stopped at step 6 (wait for an RST from "
                         "win): no RST from win within 130 s")


def test_transitions_without_the_tracer(tmp_path: Path) -> None:
    v = verdicts(make_run(tmp_path, tracer=False))["server-enters-close-wait"]
    assert not v.held and "the tracer did not run (tracefs is not mounted)" in v.seen


def test_a_transition_out_of_its_window(tmp_path: Path) -> None:
    trans = transitions(FIN_T + 2.0)
    trans[1]["ts"] = FIN_T + 0.2
    v = verdicts(make_run(tmp_path, trans=trans))["server-enters-close-wait"]
    assert not v.held
    assert v.message.startswith("FAIL server-enters-close-wait: expected server:8000→win ESTABLISHED→CLOSE_WAIT "
                                "within 0.050s of win-fin; closest: server:8000→win:49000 ESTABLISHED→CLOSE_WAIT "
                                "at win-fin+0.200s (sockets/transitions.jsonl line 2); differs in time")


# --- the language: options, flags, payload, anchors, counts --------------------------

def _one(tmp_path: Path, packet: dict[str, Any], packets: list[Pkt] | None = None) -> Any:
    exp = [{"name": "x", "about": "one check", "packet": packet}]
    return verdicts(make_run(tmp_path, expect=exp, packets=packets))["x"]


@pytest.mark.parametrize("packet,held", [
    ({"from": "win", "flags": "S", "options": ["mss", "nop", "wscale", "nop", "nop", "sackOK"]}, True),
    ({"from": "win", "flags": "S", "options": ["mss", "nop", "nop", "sackOK", "nop", "wscale"]}, False),
    ({"from": "server", "flags": "S.", "options": ["mss", "nop", "nop", "sackOK", "nop", "wscale"]}, True),
    ({"from": "win", "flags": "S", "with_options": ["sackOK", "mss"]}, True),
    ({"from": "win", "flags": "S", "with_options": ["TS"]}, False),
    ({"from": "win", "flags": "S", "without_options": ["TS"]}, True),
    ({"from": "win", "flags": "S", "without_options": ["wscale"]}, False),
    ({"from": "win", "flags": "S", "mss": 1460, "wscale": 8, "ttl": 128, "win": 8192}, True),
    ({"from": "server", "flags": "S.", "wscale": 8}, False),
    ({"from": "win", "has_flags": "F"}, True),
    ({"from": "win", "has_flags": "FR"}, False),
    ({"from": "win", "flags": "R."}, True),
    ({"from": "win", "flags": "R"}, False),
    ({"from": "win", "to": "linux"}, False),
    ({"port": 8000, "flags": "S."}, True),
    ({"port": 8001}, False),
])
def test_packet_fields(tmp_path: Path, packet: dict[str, Any], held: bool) -> None:
    assert _one(tmp_path, packet).held is held


def test_payload_substring(tmp_path: Path) -> None:
    pk = story()
    pk.insert(3, Pkt(T0 + 2.5, "win", "server", "PA", WIN_ISN + 1, SRV_ISN + 1, 256, 128, payload=b"hello\r\n"))
    for p in pk[4:]:
        if p.src == "win":
            p.seq += 7
        else:
            p.ack += 7
    assert _one(tmp_path, {"from": "win", "payload": "hello"}, pk).held
    v = _one(tmp_path / "b", {"from": "win", "payload": "bye"}, pk)
    assert not v.held and "payload b'hello\\r\\n'" in v.seen


@pytest.mark.parametrize("count,held", [(0, False), (2, True), (3, False)])
def test_counts(tmp_path: Path, count: int, held: bool) -> None:
    v = _one(tmp_path, {"from": "win", "to": "server", "has_flags": "F", "count": 0} if count == 0
             else {"from": "server", "count": count})
    assert v.held is held
    if count == 0:
        assert v.seen.startswith("1: win→server [F.] seq 1 ack 1")


def test_after_a_step_ignores_what_came_before(tmp_path: Path) -> None:
    assert not _one(tmp_path, {"from": "win", "flags": "S", "after": "established"}).held
    assert _one(tmp_path / "b", {"from": "win", "flags": "F.", "after": "steps.3"}).held
    v = _one(tmp_path / "c", {"from": "win", "flags": "S", "count": 0, "after": "stop-telnet2"})
    assert v.held


def test_after_with_delay_counts_from_a_step(tmp_path: Path) -> None:
    # stop-telnet2 starts 50 ms before the FIN
    assert _one(tmp_path, {"from": "win", "flags": "F.", "after": "stop-telnet2", "delay": "50ms",
                           "tolerance": "1ms"}).held
    v = _one(tmp_path / "b", {"from": "win", "flags": "F.", "after": "stop-telnet2", "delay": "0s",
                              "tolerance": "10ms"})
    assert not v.held and v.seen.endswith("at stop-telnet2+0.050s; differs in time")


# --- the lab file's rules ---------------------------------------------------------

def _lab_with(tmp_path: Path, expect: list[dict[str, Any]]) -> None:
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    data["expect"] = expect
    validate(keep_checked_facts(data), "x.yaml")


@pytest.mark.parametrize("expect,line", [
    ([{"about": "no name", "packet": {"from": "win"}}], "x.yaml: expect.0.name: is required"),
    ([{"name": "a", "packet": {"from": "win"}}, {"name": "a", "packet": {"from": "win"}}],
     "x.yaml: expect.1.name: expectation name 'a' is used twice"),
    ([{"name": "a", "packet": {"from": "mac"}}], "x.yaml: expect.0.packet.from: unknown host 'mac'"),
    ([{"name": "a", "packet": {"from": "win", "after": "nowhere"}}],
     "x.yaml: expect.0.packet.after: 'nowhere' is not an earlier expectation, a snapshot or a step"),
    ([{"name": "a", "packet": {"from": "win", "after": "b"}}, {"name": "b", "packet": {"from": "win"}}],
     "x.yaml: expect.0.packet.after: 'b' is not an earlier expectation"),
    ([{"name": "a", "packet": {"from": "win", "after": "established", "delay": "peers.win.colour"}}],
     "x.yaml: expect.0.packet.delay: 'peers.win.colour' is not a duration field"),
    ([{"name": "a", "packet": {"from": "win", "after": "established", "delay": "soon"}}],
     "x.yaml: expect.0.packet.delay: not a duration: 'soon'"),
    ([{"name": "a", "packet": {"from": "win", "delay": "2s"}}], "x.yaml: expect.0.packet.delay: a delay needs 'after'"),
    ([{"name": "a", "packet": {"flags": "F.", "has_flags": "F"}}], "x.yaml: expect.0.packet.has_flags: give flags"),
    ([{"name": "a", "packet": {"options": ["TS"], "without_options": ["TS"]}}],
     "x.yaml: expect.0.packet.without_options: TS is also required present"),
    ([{"name": "a", "state": {"host": "server", "is": "LISTEN", "absent": True, "at": "end"}}],
     "x.yaml: expect.0.state: give exactly one of 'is: STATE', 'not: STATE' or 'absent: true'"),
    ([{"name": "a", "state": {"host": "server", "is": "LISTEN", "at": "later"}}],
     "x.yaml: expect.0.state.at: no snapshot 'later'"),
    ([{"name": "a", "transition": {"host": "server", "to": "CLOSE", "near": "nowhere"}}],
     "x.yaml: expect.0.transition.near: 'nowhere' is not"),
    ([{"name": "a", "transition": {"host": "server", "to": "NOT_A_STATE"}}], "x.yaml: expect.0.transition.to:"),
])
def test_bad_expectations_name_the_field(tmp_path: Path, expect: list[dict[str, Any]], line: str) -> None:
    with pytest.raises(LabError) as e:
        _lab_with(tmp_path, expect)
    assert str(e.value).startswith(line), str(e.value)


def test_state_spellings_and_steps_as_anchors(tmp_path: Path) -> None:
    _lab_with(tmp_path, [
        {"name": "a", "state": {"host": "server", "not": "close-wait", "at": "end"}},
        {"name": "b", "transition": {"host": "server", "from": "TCP_ESTABLISHED", "to": "CLOSE-WAIT",
                                     "near": "stop-telnet2"}},
        {"name": "c", "packet": {"from": "win", "after": "steps.3", "delay": "peers.win.tcp_fin_timeout"}},
    ])


def test_the_shipped_labs_load() -> None:
    for name in ("closewait", "closewait-linux"):
        lab, _ = load_lab(ROOT / "labs" / f"{name}.yaml")
        assert lab.expect and all(e.about for e in lab.expect)


# --- result.json and junit.xml ------------------------------------------------------

def test_result_json_shape(tmp_path: Path) -> None:
    run = make_run(tmp_path, packets=story(rst_delay=2.310), trans=transitions(FIN_T + 2.310))
    ev = evaluate(run)
    write_result_json(ev, run / "result.json")
    doc = json.loads((run / "result.json").read_text())
    assert set(doc) == {"lab", "run", "passed", "counts", "expectations"}
    assert doc["passed"] is False and doc["counts"] == {"held": 9, "failed": 1, "error": 1}
    assert doc["lab"] == "closewait" and doc["run"] == "closewait-20261124T101500Z"
    for item in doc["expectations"]:
        assert set(item) == {"name", "about", "kind", "status", "held", "expected", "seen", "where", "message",
                             "missing"}
    assert doc == result_document(ev)


def _schema() -> Any:
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XSD)))


def test_junit_validates_against_the_ant_schema(tmp_path: Path) -> None:
    from lxml import etree

    run = make_run(tmp_path, packets=story(rst_delay=2.310), trans=transitions(FIN_T + 2.310))
    ev = evaluate(run)
    path = write_junit(ev, tmp_path / "out" / "junit.xml")
    doc = etree.parse(str(path))
    schema = _schema()
    assert schema.validate(doc), schema.error_log
    suite = doc.getroot()[0]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("11", "1", "1")
    failures = doc.findall(".//testcase/failure")
    assert [f.getparent().get("name") for f in failures] == ["win-rst-after-fin-wait2"]
    # timed from an RST that did not hold, the CLOSE_WAIT's end cannot be judged: an <error>, not a <failure>
    errors = doc.findall(".//testcase/error")
    assert [e.getparent().get("name") for e in errors] == ["server-close-wait-reset"]
    assert "missing:  'win-rst-after-fin-wait2' did not hold" in errors[0].text
    rst = failures[0]
    assert rst.get("message") == {v.name: v for v in ev.verdicts}["win-rst-after-fin-wait2"].message
    assert "look at:  capture/win.pcap #6" in rst.text


def test_junit_stays_valid_with_hostile_text(tmp_path: Path) -> None:
    from lxml import etree

    ev = evaluate(make_run(tmp_path))
    ev.verdicts[0].held = False
    ev.verdicts[0].message = "FAIL <x> & \"y\" \x00\x1b[31m ]]> \ud800"
    ev.verdicts[0].about = "</failure><testcase name='evil'/>"
    doc = etree.fromstring(junit_document(ev, hostname="ci-1"))
    assert _schema().validate(doc), _schema().error_log
    assert len(doc.findall(".//testcase")) == 11
    assert doc.find(".//failure").get("message").startswith("FAIL <x> & \"y\" ")


def test_the_schema_rejects_what_ci_would_reject(tmp_path: Path) -> None:
    """The shipped XSD is strict enough to matter: a suite without its counts is refused."""
    from lxml import etree

    doc = etree.fromstring(junit_document(evaluate(make_run(tmp_path))))
    del doc[0].attrib["failures"]
    assert not _schema().validate(doc)
