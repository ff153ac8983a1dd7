"""The explainers of the timewait and nagle stories: the Nagle/delayed-ACK stall and a client out of local
ports. Synthetic run directories, read the way the report reads them; each explainer is silent on runs
without its phenomenon."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.timeline import SocketId

from .test_explainers import (CL, IPS, SV, ev, explanation, explanation_text, listen_rows,
                              quiet_run, timewait_run, write_run)
from .test_report_synth import OPT_SYN_LINUX, OPT_SYNACK_LINUX_TS, T0, A, F, P, S, Wire, ns_line, ss_line, tables

NAGLE_PORT, NODELAY_PORT = 41000, 41002


def _requests(w: Wire, port: int, t: float, n: int, *, nagle: bool, quick_first: bool = True,
              delack: float = 0.0432) -> float:
    """``n`` requests on client:port -> server:8000, each a 6-byte header and a 6-byte body written apart, then a
    5-byte reply. With ``nagle`` the body waits for the server's ACK of the header (at once for the first
    request when ``quick_first``, else after ``delack``); without, it follows the header at once."""
    w.send(t, "client", "server", port, 8000, 1000, 0, S, 64240, options=OPT_SYN_LINUX)
    w.send(t + 0.00005, "server", "client", 8000, port, 5000, 1001, S | A, 65160, options=OPT_SYNACK_LINUX_TS)
    w.send(t + 0.0001, "client", "server", port, 8000, 1001, 5001, A, 502)
    seq, sack = 1001, 5001
    t += 0.005
    for i in range(1, n + 1):
        w.send(t, "client", "server", port, 8000, seq, sack, P | A, 502, payload=f"head{i:02d}".encode())
        if nagle:
            late = not (quick_first and i == 1)
            ack_t = t + (delack if late else 0.00002)
            w.send(ack_t, "server", "client", 8000, port, sack, seq + 6, A, 509)
            body_t = ack_t + 0.0001
        else:
            body_t = t + 0.00007
        w.send(body_t, "client", "server", port, 8000, seq + 6, sack, P | A, 502, payload=f"body{i:02d}".encode())
        if not nagle:
            w.send(body_t + 0.00002, "server", "client", 8000, port, sack, seq + 12, A, 509)
        w.send(body_t + 0.00006, "server", "client", 8000, port, sack, seq + 12, P | A, 509,
               payload=f"ok{i:02d}\n".encode())
        seq, sack = seq + 12, sack + 5
        t = body_t + 0.0006
    w.send(t, "client", "server", port, 8000, seq, sack, F | A, 502)
    w.send(t + 0.00005, "server", "client", 8000, port, sack, seq + 1, F | A, 509)
    w.send(t + 0.0001, "client", "server", port, 8000, seq + 1, sack + 1, A, 502)
    return t + 0.001


def nagle_run(root: Path, *, control: bool = True, stalls: bool = True, hz: int | None = 250) -> Path:
    w = Wire(IPS)
    t = _requests(w, NAGLE_PORT, T0, 4, nagle=stalls)
    if control:
        _requests(w, NODELAY_PORT, t + 0.1, 4, nagle=False)
    info: dict[str, Any] = {"sysctls": {"server": {"net.ipv4.tcp_pingpong_thresh": "1"}}}
    if hz:
        info["kernel"] = {"hz": hz, "hz_source": f"CONFIG_HZ={hz} in /proc/config.gz"}
    snaps = {"start": {"time": T0 - 0.5, "hosts": tables({"server": listen_rows(), "client": ([], [])})},
             "done": {"time": T0 + 1.0, "hosts": tables({"server": listen_rows(), "client": ([], [])})}}
    with_counters(snaps, "server", "TcpExtDelayedACKs", {"start": 0, "done": 3 if stalls else 0})
    return write_run(root, w, [], snaps, T0 + 1.1, info_extra=info)


def with_counters(snaps: dict[str, Any], host: str, name: str, values: dict[str, int]) -> None:
    """The host's kernel counter ``name`` as each snapshot read it (nstat's table, as the run records it)."""
    for snap, value in values.items():
        snaps[snap]["hosts"][host]["counters"] = {"argv": ["nstat", "-az"], "values": {name: value}, "ok": True}


# --- Nagle -------------------------------------------------------------------------------

def test_nagle_stall_is_explained_on_the_writer_with_the_delayed_ack(tmp_path: Path) -> None:
    rd = nagle_run(tmp_path)
    ex = explanation(rd)
    (f,) = ex.of("nagle")
    assert f.socket == SocketId("client", CL, NAGLE_PORT, SV, 8000) and f.side == "client"
    assert "3 small writes held 43" in f.title and "server's delayed ACK" in f.title
    text = " | ".join(x.text for x in f.facts)
    assert "43.200 ms after it arrived" in text  # the bare ACK's delay, from the wire
    assert "3 of 4 pairs" in text and "1 pair did not wait" in text  # the first request: quick-ACK
    assert "net.ipv4.tcp_pingpong_thresh on server is 1 (recorded in run.json)" in text
    assert "HZ=250" in text and "4 ms tick" in text
    assert "server's kernel counted 3 ACKs sent by its delayed-ACK timer (TcpExtDelayedACKs, snapshot start to done)" \
        in text
    assert f"client:{NODELAY_PORT} → server:8000 sent 4 small segments right behind" in text  # the control
    head2 = next(p for p in ex_packets(rd) if p.tcp.payload == b"head02")
    assert f.since == pytest.approx(head2.ts, abs=1e-5)
    assert any(x.ref == f"pkt-{head2.n}" for x in f.facts)
    assert "TCP_NODELAY" in f.fix and "Nagle" in f.conclusion and "40 ms" in f.conclusion


def ex_packets(rd: Path) -> list[Any]:
    from tcplab.report.gather import gather

    return gather(rd).traffic.packets


def test_nagle_without_hz_or_control_says_less_not_wrong(tmp_path: Path) -> None:
    (f,) = explanation(nagle_run(tmp_path, control=False, hz=None)).of("nagle")
    text = " | ".join(x.text for x in f.facts)
    assert "HZ=" not in text and "Compare" not in text and "40 ms (TCP_DELACK_MIN" in text


def test_nagle_is_silent_without_a_stall(tmp_path: Path) -> None:
    ex = explanation(nagle_run(tmp_path / "a", stalls=False))  # both connections TCP_NODELAY: nothing waited
    assert ex.of("nagle") == [] and not any("Nagle" in n for n in ex.notes)
    for rd in (timewait_run(tmp_path / "b"), quiet_run(tmp_path / "c")):
        assert explanation(rd).of("nagle") == []
        assert "Nagle" not in explanation_text(rd)


def test_nagle_stall_in_the_report(tmp_path: Path) -> None:
    text = explanation_text(nagle_run(tmp_path))
    assert "held 43" in text and "waiting for server's delayed ACK" in text and "TCP_NODELAY" in text


# --- out of local ports --------------------------------------------------------------------

def churn_run(root: Path, *, ports: int = 4, reuse: str = "2", failed: bool = True, taken_over: bool = False,
              fewer: int = 0) -> Path:
    """client opens ``ports - fewer`` short connections to server:8000 from 40000.., closes each first; the
    snapshot lists them in TIME_WAIT; its log says connect() failed (``failed``); ``taken_over``: one more
    connection on port 40000's four-tuple 1.5 s later."""
    w = Wire(IPS)
    trans: list[dict[str, Any]] = []
    t = T0
    used = [40000 + i for i in range(ports - fewer)]
    for n, port in enumerate(used + ([40000] if taken_over else [])):
        if n == len(used):
            t += 1.5
        isn = 1000 + port + 7777 * n  # a new connection on the same four-tuple has an ISN of its own
        w.send(t, "client", "server", port, 8000, isn, 0, S, 64240)
        w.send(t + 0.00005, "server", "client", 8000, port, 5000, isn + 1, S | A, 65160)
        w.send(t + 0.0001, "client", "server", port, 8000, isn + 1, 5001, A, 502)
        w.send(t + 0.0002, "client", "server", port, 8000, isn + 1, 5001, F | A, 502)
        w.send(t + 0.00025, "server", "client", 8000, port, 5001, isn + 2, A, 509)
        w.send(t + 0.0005, "server", "client", 8000, port, 5001, isn + 2, F | A, 509)
        w.send(t + 0.00055, "client", "server", port, 8000, isn + 2, 5002, A, 502)
        trans += [ev(t + 0.00021, CL, port, SV, 8000, "ESTABLISHED", "FIN_WAIT1"),
                  ev(t + 0.00026, CL, port, SV, 8000, "FIN_WAIT1", "FIN_WAIT2"),
                  {**ev(t + 0.00051, CL, port, SV, 8000, "FIN_WAIT2", "TIME_WAIT"), "derived": "timewait"}]
        t += 0.002
    ns = [ns_line(f"{CL}:{p}", f"{SV}:8000", "TIME_WAIT") for p in used]
    ss = [ss_line("TIME-WAIT", f"{CL}:{p}", f"{SV}:8000", "timer:(timewait,58sec,0)") for p in used]
    snaps = {"start": {"time": T0 - 0.5, "hosts": tables({"server": listen_rows(), "client": ([], [])})},
             "exhausted": {"time": t + 2.0, "hosts": tables({"server": listen_rows(), "client": (ns, ss)})}}
    with_counters(snaps, "client", "TcpExtTWRecycled", {"start": 0, "exhausted": int(taken_over)})
    info = {"sysctls": {"client": {"net.ipv4.ip_local_port_range": f"40000 {40000 + ports - 1}",
                                   "net.ipv4.tcp_tw_reuse": reuse, "net.ipv4.tcp_tw_reuse_delay": "1000"}}}
    rd = write_run(root, w, trans, snaps, t + 2.1, info_extra=info)
    if failed:
        (rd / "logs" / "client.log").write_text(
            "==> churn.log <==\nconnection 1: local port 40000, closed by us first\n"
            f"connection {ports + 1}: connect: Cannot assign requested address (EADDRNOTAVAIL)\n")
    return rd


def test_out_of_ports_names_the_range_the_time_waits_and_the_error(tmp_path: Path) -> None:
    rd = churn_run(tmp_path)
    (f,) = explanation(rd).of("port_exhaustion")
    assert f.socket == SocketId("client", CL, 40000, SV, 8000) and f.side == "client"
    assert f.title == ("client: 4 local ports toward server:8000 held by TIME_WAIT, connect() fails with "
                       "EADDRNOTAVAIL")
    text = " | ".join(x.text for x in f.facts)
    assert "net.ipv4.ip_local_port_range on client is 40000 40003 (recorded in run.json): 4 local ports." in text
    assert "4 of them in TIME_WAIT, on local ports 40000, 40001, 40002, 40003: every port of the range" in text
    assert "58 s left" in text
    assert "closed 4 of them first" in text
    assert "“connection 5: connect: Cannot assign requested address (EADDRNOTAVAIL)”" in text
    assert "net.ipv4.tcp_tw_reuse on client is 2" in text and "loopback traffic only" in text
    assert "even number" not in text  # an even range: every port is tried
    assert f.until is None  # the run is far shorter than 60 s
    assert "TIME_WAIT" in f.conclusion and "EADDRNOTAVAIL" in f.conclusion and "tcp_tw_reuse" in f.fix
    assert "tcp_tw_reuse_delay on" not in text and "as on client" not in f.conclusion  # reuse 2: no take-over


def test_an_odd_range_is_said_to_give_its_last_port_only_sometimes(tmp_path: Path) -> None:
    (f,) = explanation(churn_run(tmp_path, ports=5)).of("port_exhaustion")
    assert any("an even number of them" in x.text and "4 at a time" in x.text for x in f.facts)


def test_a_port_taken_over_from_time_wait_is_named(tmp_path: Path) -> None:
    (f,) = explanation(churn_run(tmp_path, reuse="1", taken_over=True)).of("port_exhaustion")
    text = " | ".join(x.text for x in f.facts)
    assert "took over local port 40000 from its TIME_WAIT" in text and "1.50" in text
    assert "tcp_tw_reuse on client is 1" in text and f.title.endswith("then 1 taken over (tcp_tw_reuse = 1)")
    assert "net.ipv4.tcp_tw_reuse_delay on client is 1000 ms (recorded in run.json)" in text
    assert "client's kernel counted 1 TIME_WAIT take-over (TcpExtTWRecycled, snapshot start to exhausted)" in text
    assert "with tcp_tw_reuse = 1 as on client" in f.conclusion


def test_out_of_ports_is_silent_while_ports_remain_and_nothing_failed(tmp_path: Path) -> None:
    assert explanation(churn_run(tmp_path / "a", failed=False, fewer=1)).of("port_exhaustion") == []
    for rd in (timewait_run(tmp_path / "b"), quiet_run(tmp_path / "c"), nagle_run(tmp_path / "d")):
        assert explanation(rd).of("port_exhaustion") == []


def test_a_full_range_without_a_failure_is_still_explained(tmp_path: Path) -> None:
    (f,) = explanation(churn_run(tmp_path, failed=False)).of("port_exhaustion")
    assert "EADDRNOTAVAIL" not in f.title and "every port of the range" in " ".join(x.text for x in f.facts)


def test_each_time_wait_socket_is_still_explained_beside_it(tmp_path: Path) -> None:
    """The synthetic run is read as the report reads it: the TIME_WAIT explainer still speaks for each socket."""
    rd = churn_run(tmp_path)
    ex = explanation(rd)
    assert len(ex.of("time_wait")) + sum(n for _, n in ex.more) >= 4
    assert json.loads((rd / "sockets" / "snapshots.json").read_text())["exhausted"]["hosts"]["client"]
