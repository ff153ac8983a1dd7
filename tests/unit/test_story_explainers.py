"""The explainers of the part-I stories on synthetic runs: a half-open connection, a full accept queue, and an RST
from close() with SO_LINGER 0 told by its counter; each is silent on a run without its phenomenon."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.timeline import SocketId

from .test_explainers import CL, CPORT, IPS, SV, ev, explanation, handshake, listen_rows, quiet_run, reset, write_run
from .test_report_synth import T0, A, P, R, S, Wire, ns_line, ss_line, tables


def with_counters(snap: dict[str, Any], counters: dict[str, dict[str, int]]) -> dict[str, Any]:
    for host, values in counters.items():
        snap["hosts"][host]["counters"] = {"argv": ["cat"], "ok": True, "values": values}
    return snap


def half_open_run(root: Path, rst_seen: bool = False) -> Path:
    """The server's socket is reset at t+0.3 (its RST lost: not captured), the client still has its socket at t+1;
    the client writes at t+2 and the server's kernel answers with an RST."""
    w = Wire(IPS)
    t = T0
    trans = handshake(w, t)
    lost = t + 0.3
    if rst_seen:
        w.send(lost, "server", "client", 8000, CPORT, 5001, 1001, R | A, 0)
    trans += [reset(lost, "tcp_send_reset", SV, 8000, CL, CPORT, "ESTABLISHED", "TCP_ABORT_ON_CLOSE"),
              ev(lost + 0.000001, SV, 8000, CL, CPORT, "ESTABLISHED", "CLOSE")]
    write = t + 2.0
    w.send(write, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=b"again\n")
    w.send(write + 0.0002, "server", "client", 8000, CPORT, 5001, 0, R, 0)
    trans += [reset(write + 0.0003, "tcp_receive_reset", CL, CPORT, SV, 8000, "ESTABLISHED"),
              ev(write + 0.0003, CL, CPORT, SV, 8000, "ESTABLISHED", "CLOSE")]
    client_row = [ns_line(f"{CL}:{CPORT}", f"{SV}:8000", "ESTABLISHED", "9/tcpctl")]
    before = {"time": t + 0.1, "hosts": tables({
        "server": ([ns_line("0.0.0.0:8000", "0.0.0.0:*", "LISTEN", "7/tcpctl"),
                    ns_line(f"{SV}:8000", f"{CL}:{CPORT}", "ESTABLISHED", "7/tcpctl")], []),
        "client": (client_row, [])})}
    forgotten = {"time": t + 1.0, "hosts": tables({"server": ([], []), "client": (client_row, [])})}
    after = {"time": t + 3.0, "hosts": tables({"server": ([], []), "client": ([], [])})}
    snaps = {"before": with_counters(before, {"server": {"TcpExtTCPAbortOnClose": 0}, "client": {"TcpEstabResets": 0}}),
             "forgotten": with_counters(forgotten, {"server": {"TcpExtTCPAbortOnClose": 1},
                                                    "client": {"TcpEstabResets": 0}}),
             "after": with_counters(after, {"server": {"TcpExtTCPAbortOnClose": 1}, "client": {"TcpEstabResets": 1}})}
    lab = {"steps": [{"snapshot": "before"}, {"host": "server", "firewall": "drop", "to": "client", "as": "silence"},
                     {"snapshot": "forgotten"}, {"host": "server", "lift": "silence"}, {"snapshot": "after"}]}
    return write_run(root, w, trans, snaps, t + 3.1, lab_extra=lab)


def test_a_half_open_connection_is_explained_from_the_survivors_side(tmp_path: Path) -> None:
    (f,) = explanation(half_open_run(tmp_path)).of("half_open")
    assert f.socket == SocketId("client", CL, CPORT, SV, 8000) and f.side == "client"
    assert f.since == pytest.approx(T0 + 0.3, abs=1e-3) and f.ended_by == "RST from server"
    facts = " ".join(x.text for x in f.facts)
    assert "while server had no socket for the connection at all" in facts
    assert "reason TCP_ABORT_ON_CLOSE" in facts
    assert ("That RST is in no capture: it never left server's host (steps.1, the lab's firewall rule 'silence': "
            "server's firewall drops its packets to client)") in facts
    assert "server's TcpExtTCPAbortOnClose rose by 1 from snapshot before to forgotten" in facts
    assert "Nothing crossed the wire for 1.700 s (0 packets)" in facts
    assert "client's TcpEstabResets rose by 1 from snapshot forgotten to after" in facts
    assert "ECONNRESET" in f.conclusion and "SO_KEEPALIVE" in f.fix


def test_a_half_open_whose_rst_was_captured_does_not_blame_a_firewall(tmp_path: Path) -> None:
    facts = " ".join(x.text for x in explanation(half_open_run(tmp_path, rst_seen=True)).of("half_open")[0].facts)
    assert "in no capture" not in facts


def test_a_connection_open_on_both_ends_is_not_half_open(tmp_path: Path) -> None:
    assert explanation(quiet_run(tmp_path)).of("half_open") == []
    assert explanation(quiet_run(tmp_path / "q")).of("accept_queue") == []


def accept_queue_run(root: Path, abort: bool) -> Path:
    """A listener with backlog 2 and three queued connections; a fourth handshake's ACK finds the queue full: dropped
    (SYN-ACK again 1 s, then 2 s later), or with tcp_abort_on_overflow = 1 reset."""
    w = Wire(IPS)
    t = T0
    port = 40003
    w.send(t, "client", "server", port, 8000, 1000, 0, S, 64240)
    w.send(t + 0.0001, "server", "client", 8000, port, 5000, 1001, S | A, 65160)
    w.send(t + 0.2, "client", "server", port, 8000, 1001, 5001, A, 502)
    if abort:
        w.send(t + 0.2001, "server", "client", 8000, port, 5001, 0, R, 0)
    else:
        for dt in (1.0, 3.0):
            w.send(t + 0.0001 + dt, "server", "client", 8000, port, 5000, 1001, S | A, 65160)
            w.send(t + 0.0002 + dt, "client", "server", port, 8000, 1001, 5001, A, 502)
    ns, _ = listen_rows()
    queued = [ns_line(f"{SV}:8000", f"{CL}:{40000 + i}", "ESTABLISHED") for i in (1, 2, 4)]
    listener = ss_line("LISTEN", "0.0.0.0:8000", "0.0.0.0:*", 'users:(("tcpctl",pid=7,fd=3))').replace(
        "LISTEN     0      0", "LISTEN     3      2")
    start = {"time": t - 0.5, "hosts": tables({"server": (ns, [listener.replace("LISTEN     3", "LISTEN     0")])})}
    full = {"time": t + 0.5, "hosts": tables({"server": (ns + queued, [listener])})}
    snaps = {"start": with_counters(start, {"server": {"TcpExtListenOverflows": 0, "TcpExtListenDrops": 0}}),
             "full": with_counters(full, {"server": {"TcpExtListenOverflows": 1 if abort else 3,
                                                     "TcpExtListenDrops": 1 if abort else 3}})}
    info = {"sysctls": {"server": {"net.ipv4.tcp_abort_on_overflow": "1" if abort else "0",
                                   "net.core.somaxconn": "4096"}}}
    return write_run(root, w, [], snaps, t + 3.5, info_extra=info)


def test_a_full_accept_queue_is_explained_with_the_dropped_ack(tmp_path: Path) -> None:
    (f,) = explanation(accept_queue_run(tmp_path, abort=False)).of("accept_queue")
    assert f.socket.host == "server" and f.socket.local_port == 8000 and f.side == "server"
    facts = " ".join(x.text for x in f.facts)
    assert "Recv-Q 3 (connections waiting for accept()) and Send-Q 2 (its backlog)" in facts
    assert "Its 3 ESTABLISHED connections at that snapshot have no owner" in facts
    assert "and again 2 times (+1.000 s, +2.000 s apart)" in facts
    assert "the ACK found the queue full and was dropped" in facts
    assert "server's TcpExtListenOverflows rose by 3 from snapshot start to full" in facts
    assert "net.ipv4.tcp_abort_on_overflow = 0 (recorded in run.json)" in f.conclusion
    assert "(backlog 2, somaxconn 4096)" in f.conclusion and "accept() promptly" in f.fix


def test_with_abort_on_overflow_the_reset_is_the_explanation(tmp_path: Path) -> None:
    (f,) = explanation(accept_queue_run(tmp_path, abort=True)).of("accept_queue")
    facts = " ".join(x.text for x in f.facts)
    assert "answered client's handshake ACK from port 40003 with [R]" in facts and "again" not in facts
    assert "net.ipv4.tcp_abort_on_overflow = 1 (recorded in run.json)" in f.conclusion
    assert "answers the overflowing handshake's ACK with an RST" in f.conclusion


def linger_run(root: Path, counter: str) -> Path:
    """Everything read, then close() resets; the tracer names the reason TCP_STATE (tcp_disconnect)."""
    w = Wire(IPS)
    t = T0
    trans = handshake(w, t)
    rst = t + 0.3
    w.send(rst, "server", "client", 8000, CPORT, 5001, 1001, R | A, 0)
    trans += [reset(rst - 0.000002, "tcp_send_reset", SV, 8000, CL, CPORT, "CLOSE", "TCP_STATE"),
              ev(rst + 0.000001, SV, 8000, CL, CPORT, "ESTABLISHED", "CLOSE")]
    zero = {"TcpExtTCPAbortOnData": 0, "TcpExtTCPAbortOnClose": 0}
    snaps = {"before": with_counters({"time": t + 0.1, "hosts": tables({"server": listen_rows()})},
                                     {"server": zero}),
             "after": with_counters({"time": t + 0.5, "hosts": tables({"server": listen_rows()})},
                                    {"server": {**zero, counter: 1}})}
    return write_run(root, w, trans, snaps, t + 1.0)


def test_so_linger_zero_is_told_by_its_counter_when_the_reason_is_tcp_state(tmp_path: Path) -> None:
    (f,) = explanation(linger_run(tmp_path, "TcpExtTCPAbortOnData")).of("rst_after_close")
    assert f.title.endswith("close() with SO_LINGER 0 sent an RST")
    facts = " ".join(x.text for x in f.facts)
    assert "server's TcpExtTCPAbortOnData rose by 1 from snapshot before to after" in facts
    assert "Snapshot after lists no socket of server for this connection: an aborted connection leaves no TIME_WAIT" \
        in facts
    # the other counter is not this story: no finding claims SO_LINGER
    assert explanation(linger_run(tmp_path / "other", "TcpExtTCPAbortOnClose")).of("rst_after_close") == []
