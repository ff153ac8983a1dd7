"""The language of the war stories: packet sequences (intervals, a kernel timer's pattern for the sysctls the
run read), zero-length probes, socket queues and timers in snapshots, a program's errno, and sysctls as lab
fields. Run directories are built as in test_expectations (labs/closewait.yaml)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.kernel_timers import keepalive, syn_backoff, synack_backoff
from tcplab.model import LabError
from tcplab.model.loader import apply_set, validate
from tcplab.observe.kernel import parse_sysctls, sysctl_argv, sysctl_names

from .test_expectations import FIN_T, IPS, ROOT, SRV_ISN, T0, WIN_ISN, Pkt, make_run, snapshots, sock, verdicts
from .test_programs import TELNET2, one, program_run, story_programs


def with_sysctls(run: Path, host: str, values: dict[str, str]) -> Path:
    """The run's run.json with ``host``'s sysctls as the run read them."""
    info = json.loads((run / "run.json").read_text())
    info.setdefault("sysctls", {})[host] = values
    (run / "run.json").write_text(json.dumps(info))
    return run


def syns(offsets: list[float]) -> list[Pkt]:
    return [Pkt(T0 + 1 + dt, "win", "server", "S", WIN_ISN, 0, 64240, 64) for dt in offsets]


def offsets(gaps: list[float], jitter: float = 0.02) -> list[float]:
    out = [0.0]
    for g in gaps:
        out.append(out[-1] + g + jitter)
    return out


RETRIES_3 = {"net.ipv4.tcp_syn_retries": "3", "net.ipv4.tcp_syn_linear_timeouts": "4"}


def seq_run(tmp_path: Path, packet: dict[str, Any], pk: list[Pkt], sysctls: dict[str, str] | None = None) -> Any:
    run = make_run(tmp_path, expect=[{"name": "x", "about": "a sequence", "packet": packet}], packets=pk,
                   trans=[], snaps={})
    if sysctls is not None:
        with_sysctls(run, "win", sysctls)
    return verdicts(run)["x"]


# --- the kernel's timers ------------------------------------------------------------------

def test_syn_backoff_is_what_this_kernel_was_measured_to_do() -> None:
    # measured on 6.18 (tcp_syn_linear_timeouts 4): retries 3 -> 7 retransmissions, ETIMEDOUT at 19.6 s;
    # retries 1 -> 2 retransmissions, ETIMEDOUT at 3.08 s
    assert syn_backoff(3, 4).gaps == [1, 1, 1, 1, 1, 2, 4] and syn_backoff(3, 4).gives_up == 19
    assert syn_backoff(1, 4).gaps == [1, 1] and syn_backoff(1, 4).gives_up == 3
    # the classic: 1, 3, 7, 15, 31, 63 s and the error at 127 s
    assert syn_backoff(6, 0).gaps == [1, 2, 4, 8, 16, 32] and syn_backoff(6, 0).gives_up == 127
    assert syn_backoff(6, 4).gives_up == 131
    assert synack_backoff(5).gaps == [1, 2, 4, 8, 16]
    assert keepalive(1, 3).gaps == [1, 1] and keepalive(1, 3).gives_up == 3


# --- sequences ------------------------------------------------------------------------------

def test_syn_backoff_holds_for_the_sysctls_read(tmp_path: Path) -> None:
    v = seq_run(tmp_path, {"from": "win", "flags": "S", "intervals": "syn-backoff", "tolerance": "100ms"},
                syns(offsets([1, 1, 1, 1, 1, 2, 4])), RETRIES_3)
    assert v.held, v.message
    assert "8 × win→* [S], 1.000s, 1.000s, 1.000s, 1.000s, 1.000s, 2.000s, 4.000s apart" in v.expected
    assert "syn-backoff for tcp_syn_retries=3, tcp_syn_linear_timeouts=4 on win" in v.expected


def test_the_exponential_kernel_fails_a_linear_expectation_naming_the_gaps(tmp_path: Path) -> None:
    v = seq_run(tmp_path, {"from": "win", "flags": "S", "intervals": "syn-backoff", "tolerance": "100ms"},
                syns(offsets([1, 2, 4, 8])), {**RETRIES_3, "net.ipv4.tcp_syn_linear_timeouts": "4"})
    assert v.status == "failed"
    assert v.message.startswith("FAIL x: expected 8 × win→* [S], 1.000s, 1.000s, 1.000s, 1.000s, 1.000s, 2.000s, "
                                "4.000s apart")
    assert "seen: 5: the first win→server [S] seq 0 win 64240 at t=0.000s, then 1.020s, 2.020s, 4.020s, 8.020s apart" \
        in v.message
    assert v.message.endswith("differs in count, gap 2 (1.000s expected, 2.020s seen)")


def test_the_pattern_follows_the_sysctl_the_run_read(tmp_path: Path) -> None:
    pk = syns(offsets([1, 2, 4, 8, 16, 32]))
    sysctls = {"net.ipv4.tcp_syn_retries": "6", "net.ipv4.tcp_syn_linear_timeouts": "0"}
    assert seq_run(tmp_path, {"from": "win", "flags": "S", "intervals": "syn-backoff"}, pk, sysctls).held
    sysctls["net.ipv4.tcp_syn_linear_timeouts"] = "4"
    assert not seq_run(tmp_path / "b", {"from": "win", "flags": "S", "intervals": "syn-backoff"}, pk, sysctls).held


@pytest.mark.parametrize("sysctls", [None, {"net.ipv4.tcp_syn_retries": "3"},
                                     {**RETRIES_3, "net.ipv4.tcp_syn_retries": "three"}])
def test_a_sysctl_the_run_did_not_read_is_an_error_not_a_verdict(tmp_path: Path,
                                                                 sysctls: dict[str, str] | None) -> None:
    v = seq_run(tmp_path, {"from": "win", "flags": "S", "intervals": "syn-backoff"},
                syns(offsets([1, 1, 1, 1, 1, 2, 4])), sysctls)
    assert v.status == "error"
    assert ("the run did not read net.ipv4.tcp_syn" in v.missing) or "not a number" in v.missing, v.missing


def test_literal_intervals_with_a_tolerance(tmp_path: Path) -> None:
    pk = syns(offsets([1, 1, 2], jitter=0.04))
    assert seq_run(tmp_path, {"from": "win", "flags": "S", "intervals": ["1s", "1s", "2s"], "tolerance": "50ms"},
                   pk).held
    v = seq_run(tmp_path / "b", {"from": "win", "flags": "S", "intervals": ["1s", "1s", "2s"],
                                 "tolerance": "10ms"}, pk)
    assert v.message.endswith("differs in gap 1 (1.000s expected, 1.040s seen)"), v.message
    v = seq_run(tmp_path / "c", {"from": "win", "flags": "S", "intervals": ["1s", "1s"]}, pk)
    assert v.message.endswith("differs in count"), v.message


def test_a_sequence_after_an_anchor_at_a_delay(tmp_path: Path) -> None:
    pk = syns([0.0, 2.0, 3.0, 4.0])
    exp = [{"name": "first", "packet": {"from": "win", "flags": "S"}},
           {"name": "x", "packet": {"from": "win", "flags": "S", "after": "first", "delay": "2s",
                                    "intervals": ["1s", "1s"]}}]
    assert verdicts(make_run(tmp_path, expect=exp, packets=pk, trans=[], snaps={}))["x"].held
    exp[1]["packet"]["delay"] = "1s"
    v = verdicts(make_run(tmp_path / "b", expect=exp, packets=pk, trans=[], snaps={}))["x"]
    assert v.message.endswith("differs in time"), v.message


def test_no_matching_packet_shows_the_closest(tmp_path: Path) -> None:
    v = seq_run(tmp_path, {"from": "win", "flags": "S.", "intervals": ["1s"]}, syns([0, 1]))
    assert v.status == "failed" and "differs in flags" in v.message


# --- probes ---------------------------------------------------------------------------------

def keepalive_story(probes: int = 3, late: float = 0.0) -> list[Pkt]:
    """A connection, a line of data acked, then keepalive probes from win (seq = snd_una - 1), unanswered, the
    first one 2 s (+ ``late``) after the data."""
    ws, ss = WIN_ISN, SRV_ISN
    pk = [Pkt(T0 + 1, "win", "server", "S", ws), Pkt(T0 + 1.0001, "server", "win", "SA", ss, ws + 1),
          Pkt(T0 + 1.0002, "win", "server", "A", ws + 1, ss + 1),
          Pkt(T0 + 1.5, "win", "server", "PA", ws + 1, ss + 1, payload=b"hi\n"),
          Pkt(T0 + 1.5001, "server", "win", "A", ss + 1, ws + 4)]
    pk += [Pkt(T0 + 3.5 + late + i, "win", "server", "A", ws + 3, ss + 1) for i in range(probes)]
    return pk


def test_keepalive_probes_are_seen_as_probes(tmp_path: Path) -> None:
    pk = keepalive_story()
    exp = [{"name": "data", "packet": {"from": "win", "payload": "hi"}},
           {"name": "x", "packet": {"from": "win", "to": "server", "flags": ".", "probe": True, "after": "data",
                                    "delay": "2s", "intervals": ["1s", "1s"]}}]
    v = verdicts(make_run(tmp_path, expect=exp, packets=pk, trans=[], snaps={}))["x"]
    assert v.held, v.message
    assert "a zero-length probe (seq = snd_una - 1)" in v.expected and "seq 3 ack 1" in v.seen
    # the handshake's ACK and the server's ACK are not probes
    v = verdicts(make_run(tmp_path / "b", expect=[{"name": "x", "packet": {"flags": ".", "probe": True,
                                                                           "count": 3}}],
                          packets=pk, trans=[], snaps={}))["x"]
    assert v.held, v.message


def test_a_plain_ack_is_no_probe(tmp_path: Path) -> None:
    pk = keepalive_story(probes=0) + [Pkt(T0 + 3.5, "win", "server", "A", WIN_ISN + 4, SRV_ISN + 1)]
    v = verdicts(make_run(tmp_path, expect=[{"name": "x", "packet": {"from": "win", "probe": True,
                                                                     "after": "steps.0"}}],
                          packets=pk, trans=[], snaps={}))["x"]
    assert v.status == "failed" and "differs in probe" in v.message and "not a probe" in v.message


# --- a delay read from a sysctl -----------------------------------------------------------------

def test_a_delay_from_a_sysctl_the_run_read(tmp_path: Path) -> None:
    exp = [{"name": "data", "packet": {"from": "win", "payload": "hi"}},
           {"name": "x", "packet": {"from": "win", "probe": True, "after": "data",
                                    "delay": "hosts.win.sysctls.net.ipv4.tcp_keepalive_time",
                                    "intervals": "keepalive", "tolerance": "100ms"}}]
    ka = {"net.ipv4.tcp_keepalive_time": "2", "net.ipv4.tcp_keepalive_intvl": "1",
          "net.ipv4.tcp_keepalive_probes": "3"}
    run = with_sysctls(make_run(tmp_path, expect=exp, packets=keepalive_story(), trans=[], snaps={}), "win", ka)
    v = verdicts(run)["x"]
    assert v.held, v.message
    assert ("at data+2.000s±0.100s, or up to 0.250s later (hosts.win.sysctls.net.ipv4.tcp_keepalive_time: a kernel "
            "timer)") in v.expected
    run = make_run(tmp_path / "b", expect=exp, packets=keepalive_story(), trans=[], snaps={})
    v = verdicts(run)["x"]
    assert v.status == "error" and "did not read net.ipv4.tcp_keepalive_time on win" in v.missing


@pytest.mark.parametrize("late,held", [(0.2, True), (0.34, True), (0.4, False), (-0.2, False)])
def test_a_kernel_timers_delay_may_be_late_by_its_wheel_granularity_never_early(tmp_path: Path, late: float,
                                                                              held: bool) -> None:
    """A 2 s timer sits in the timer wheel's level of 256 ms granularity (HZ 250): it fires up to 1/8 of its
    time late (0.25 s), on top of the tolerance (0.1 s), and never early."""
    exp = [{"name": "data", "packet": {"from": "win", "payload": "hi"}},
           {"name": "x", "packet": {"from": "win", "probe": True, "after": "data",
                                    "delay": "hosts.win.sysctls.net.ipv4.tcp_keepalive_time", "tolerance": "100ms"}}]
    ka = {"net.ipv4.tcp_keepalive_time": "2", "net.ipv4.tcp_keepalive_intvl": "1",
          "net.ipv4.tcp_keepalive_probes": "3"}
    run = with_sysctls(make_run(tmp_path, expect=exp, packets=keepalive_story(late=late), trans=[], snaps={}),
                       "win", ka)
    v = verdicts(run)["x"]
    assert v.held is held, v.message
    assert "data+2.000s±0.100s, or up to 0.250s later" in v.expected, v.expected


# --- queues and timers ------------------------------------------------------------------------

def ss_snapshots(recs: list[dict[str, Any]]) -> dict[str, Any]:
    snaps = snapshots()
    srv = snaps["close_wait"]["hosts"]["server"]
    srv["ss"] = {"raw": "x", "ok": True, "records": recs}
    srv["netstat"]["ok"] = True
    return snaps


def ss_sock(state: str, peer: str | None, pport: int | None, recv_q: int, send_q: int,
            timer: str | None = None) -> dict[str, Any]:
    return {**sock(state, IPS["server"] if peer else "0.0.0.0", 8000, peer, pport), "source": "ss",
            "recv_q": recv_q, "send_q": send_q, "timer": timer}


RECS = [ss_sock("LISTEN", None, None, 6, 5), ss_sock("ESTABLISHED", "win", 49000, 0, 0, "keepalive,1.500ms,0")]


@pytest.mark.parametrize("state,held,note", [
    ({"is": "LISTEN", "recv_q": 6, "send_q": 5}, True, ""),
    ({"is": "LISTEN", "recv_q": {"min": 5}, "send_q": {"max": 5}}, True, ""),
    ({"is": "LISTEN", "recv_q": 5}, False, "differs in recv_q (5 expected, 6 seen)"),
    ({"is": "LISTEN", "send_q": {"min": 6, "max": 10}}, False, "differs in send_q (6..10 expected, 5 seen)"),
    ({"peer": "win", "is": "ESTABLISHED", "timer": "keepalive"}, True, ""),
    ({"peer": "win", "is": "ESTABLISHED", "timer": "keepalive", "timer_left": {"max": "2s"}}, True, ""),
    ({"peer": "win", "is": "ESTABLISHED", "timer": "keepalive", "timer_left": {"max": "1s"}}, False,
     "differs in timer_left (<= 1s expected, 1.5s seen)"),
    ({"peer": "win", "is": "ESTABLISHED", "timer": "on"}, False, "differs in timer (on expected, keepalive seen)"),
    ({"is": "LISTEN", "timer": "off"}, True, ""),
])
def test_queues_and_timers(tmp_path: Path, state: dict[str, Any], held: bool, note: str) -> None:
    exp = [{"name": "x", "state": {"host": "server", "port": 8000, "at": "close_wait", **state}}]
    v = verdicts(make_run(tmp_path, expect=exp, snaps=ss_snapshots(RECS)))["x"]
    assert v.held is held, v.message
    if note:
        assert f"; {note}" in v.message, v.message


def test_a_timer_without_an_ss_table_is_an_error(tmp_path: Path) -> None:
    snaps = snapshots()
    snaps["close_wait"]["hosts"]["server"]["netstat"]["ok"] = True
    snaps["close_wait"]["hosts"]["server"]["ss"] = {"raw": "", "records": [], "ok": False, "error": "ss is not in "
                                                    "the image"}
    exp = [{"name": "x", "state": {"host": "server", "port": 8000, "is": "LISTEN", "timer": "off",
                                   "at": "close_wait"}}]
    v = verdicts(make_run(tmp_path, expect=exp, snaps=snaps))["x"]
    assert v.status == "error" and "only ss shows timers" in v.missing


# --- a program's errno ------------------------------------------------------------------------

REFUSED = b"Trying 10.9.0.2...\ntelnet: Unable to connect to remote host: Connection refused\n"


@pytest.mark.parametrize("out,error,held", [
    (REFUSED, "ECONNREFUSED", True),
    (b"Traceback...\nConnectionRefusedError: [Errno 111] Connection refused\n", "ECONNREFUSED", True),
    (b"connect: ETIMEDOUT\n", "ETIMEDOUT", True),
    (b"recv: connection reset by peer\n", "ECONNRESET", True),
    (REFUSED, "ETIMEDOUT", False),
])
def test_an_errno_as_programs_print_it(tmp_path: Path, out: bytes, error: str, held: bool) -> None:
    v = one(program_run(tmp_path, [{"name": "e", "program": {**TELNET2, "error": error}}],
                        outputs={"win.telnet2": out}))
    assert v.held is held, v.message
    if held:
        assert v.where == "logs/programs/win.telnet2.log line 2" or v.where.endswith("line 1")


def test_a_wrong_errno_names_the_one_printed(tmp_path: Path) -> None:
    v = one(program_run(tmp_path, [{"name": "e", "program": {**TELNET2, "error": "ETIMEDOUT"}}],
                        outputs={"win.telnet2": REFUSED}))
    assert v.message.startswith('FAIL e: expected telnet2 on win reports ETIMEDOUT ("Connection timed out", '
                                '[Errno 110]); seen: telnet2 on win exited with status 143')
    assert "it reported ECONNREFUSED (line 2) instead" in v.message and v.message.endswith("differs in error")


def test_an_errno_without_output_collected_is_an_error(tmp_path: Path) -> None:
    events = [e for e in story_programs() if e["event"] != "output"]
    v = one(program_run(tmp_path, [{"name": "e", "program": {**TELNET2, "error": "ECONNREFUSED"}}], events=events))
    assert v.status == "error" and "output of telnet2 on win was not collected" in v.missing


# --- the lab file ------------------------------------------------------------------------------

def _lab_with(expect: list[dict[str, Any]], sets: list[str] = ()) -> Any:
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    data["expect"] = expect
    data.pop("reference", None)  # its facts name closewait's expectations
    for s in sets:
        data = apply_set(data, s, "x.yaml")
    return validate(data, "x.yaml")


@pytest.mark.parametrize("expect,line", [
    ({"packet": {"from": "win", "intervals": ["1s"], "count": 2}},
     "x.yaml: expect.0.packet.count: intervals give the count (N gaps are exactly N+1 packets: 2 here)"),
    ({"packet": {"from": "win", "intervals": ["1s"], "after": "established", "nth": 2}},
     "x.yaml: expect.0.packet.intervals: a sequence is every matching packet of the window: drop nth"),
    ({"packet": {"intervals": "syn-backoff"}}, "x.yaml: expect.0.packet.from: 'syn-backoff' is the timer"),
    ({"packet": {"from": "win", "intervals": "fibonacci"}},
     "x.yaml: expect.0.packet.intervals: 'fibonacci' is not a list of durations nor a kernel timer's pattern"),
    ({"packet": {"from": "win", "intervals": ["1s", "soon"]}}, "x.yaml: expect.0.packet.intervals"),
    ({"packet": {"from": "win", "after": "established", "delay": "hosts.mac.sysctls.net.ipv4.tcp_keepalive_time"}},
     "x.yaml: expect.0.packet.delay: unknown host 'mac'"),
    ({"packet": {"from": "win", "after": "established", "delay": "hosts.win.sysctls.net.ipv4.tcp_syn_retries"}},
     "x.yaml: expect.0.packet.delay: net.ipv4.tcp_syn_retries is not a number of seconds"),
    ({"packet": {"from": "win", "probe": "maybe"}}, "x.yaml: expect.0.packet.probe"),
    ({"state": {"host": "server", "not": "LISTEN", "recv_q": 1, "at": "end"}},
     "x.yaml: expect.0.state.recv_q: recv_q is read from the socket 'is: STATE' finds: give is"),
    ({"state": {"host": "server", "is": "LISTEN", "recv_q": {}, "at": "end"}},
     "x.yaml: expect.0.state.recv_q: give min, max or both"),
    ({"state": {"host": "server", "is": "LISTEN", "send_q": {"min": 5, "max": 2}, "at": "end"}},
     "x.yaml: expect.0.state.send_q.min: min 5 is above max 2"),
    ({"state": {"host": "server", "is": "LISTEN", "recv_q": -1, "at": "end"}}, "x.yaml: expect.0.state.recv_q"),
    ({"state": {"host": "server", "is": "LISTEN", "timer": "snooze", "at": "end"}}, "x.yaml: expect.0.state.timer"),
    ({"state": {"host": "server", "is": "LISTEN", "timer_left": {"max": "2s"}, "at": "end"}},
     "x.yaml: expect.0.state.timer_left: timer_left is the time left on a timer: give timer"),
    ({"program": {"host": "win", "name": "telnet2", "error": "EWHATEVER"}}, "x.yaml: expect.0.program.error"),
])
def test_bad_fields_name_the_field(expect: dict[str, Any], line: str) -> None:
    with pytest.raises(LabError) as e:
        _lab_with([{"name": "a", **expect}])
    assert str(e.value).startswith(line), str(e.value)


def test_a_sysctl_is_one_field_for_set() -> None:
    lab = _lab_with([], ["hosts.win.sysctls.net.ipv4.tcp_syn_retries=6"])
    assert lab.hosts["win"].sysctls == {"net.ipv4.tcp_syn_retries": 6}
    with pytest.raises(LabError) as e:
        _lab_with([], ["hosts.win.sysctls.kernel.panic=1"])
    assert str(e.value).startswith("x.yaml: hosts.win.sysctls[\"kernel.panic\"]: 'kernel.panic' cannot be set"), \
        str(e.value)


def test_the_run_reads_the_sysctls_a_lab_depends_on() -> None:
    lab = _lab_with([{"name": "a", "packet": {"from": "win", "flags": "S", "intervals": "syn-backoff"}},
                     {"name": "b", "packet": {"from": "win", "after": "a",
                                              "delay": "hosts.linux.sysctls.net.ipv4.tcp_keepalive_time"}}],
                    ["hosts.win.sysctls.net.core.somaxconn=64"])
    read = lab.expectation_sysctls()
    assert read["win"] == ["net.core.somaxconn", "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syn_linear_timeouts"]
    assert read["linux"] == ["net.ipv4.tcp_keepalive_time"]
    argv = sysctl_argv(sysctl_names(read["win"]))
    assert all(argv.count(f"/proc/sys/{n.replace('.', '/')}") == 1 for n in read["win"])
    # a kernel without a file: cat names it in its errors and the others keep their order
    names = [a.removeprefix("/proc/sys/").replace("/", ".") for a in argv[1:]]
    lacking = "net.ipv4.tcp_syn_linear_timeouts"
    out = "\n".join(str(i) for i, n in enumerate(names) if n != lacking) + "\n"
    got = parse_sysctls(out, f"cat: /proc/sys/{lacking.replace('.', '/')}: No such file or directory\n",
                        sysctl_names(read["win"]))
    assert lacking not in got and got["net.core.somaxconn"] == str(names.index("net.core.somaxconn"))


def test_fin_t_is_the_story_clock() -> None:
    assert FIN_T > T0  # the helpers above lean on the closewait story's clock
