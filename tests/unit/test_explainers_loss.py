"""The explainers of the retransmit and zero-window stories speak when their phenomenon is in the run, with this
run's numbers and the sysctls it read, and are silent otherwise. Synthetic run directories, read as the report
reads them (test_explainers' helpers)."""
from __future__ import annotations

from pathlib import Path

from tcplab.analysis.kernel_timers import retries_timeout

from .test_explainers import CL, CPORT, IPS, SV, T0, ev, explanation, handshake, refused_run, write_run
from .test_report_synth import A, P, Wire

HEAD, TAIL = b"head of request 1\n", b"tail of request 1\n"


def lossy_run(root: Path, give_up_after: float | None, retries2: str = "4", recovered: bool = False) -> Path:
    """A request in two segments that the server never acknowledges: a tail loss probe 10 ms after the tail, then
    the RTO's copies of the head 0.204 s after it, doubling; the client's socket closes ``give_up_after`` s after
    the first of them (None: still open at the end); or the server acknowledges after the first (``recovered``)."""
    w = Wire(IPS)
    trans = handshake(w, T0)
    t = T0 + 0.5
    w.send(t, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=HEAD)
    w.send(t + 0.0001, "client", "server", CPORT, 8000, 1001 + len(HEAD), 5001, P | A, 502, payload=TAIL)
    w.send(t + 0.0101, "client", "server", CPORT, 8000, 1001 + len(HEAD), 5001, P | A, 502, payload=TAIL)
    copies, gap = [t + 0.204], 0.204
    for _ in range(1 if recovered else 3):
        gap *= 2
        copies.append(copies[-1] + gap)
    for c in copies:
        w.send(c, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=HEAD + TAIL)
    end = copies[-1] + 1
    if recovered:
        w.send(copies[-1] + 0.0002, "server", "client", 8000, CPORT, 5001, 1001 + len(HEAD + TAIL), A, 509)
    elif give_up_after is not None:
        trans.append(ev(copies[0] + give_up_after, CL, CPORT, SV, 8000, "ESTABLISHED", "CLOSE"))
        end = copies[0] + give_up_after + 1
    sysctls = {"net.ipv4.tcp_retries2": retries2, "net.ipv4.tcp_early_retrans": "3"}
    return write_run(root, w, trans, {}, end, info_extra={"sysctls": {"client": sysctls}})


def test_a_connection_that_gives_up_at_tcp_retries2s_bound(tmp_path: Path) -> None:
    ex = explanation(lossy_run(tmp_path, give_up_after=6.24))
    (f,) = ex.of("retransmission")
    assert (f.socket.host, f.socket.local_port, f.side) == ("client", CPORT, "client")
    assert f.title.endswith("5 retransmissions, the kernel gave up") and f.ended_by == "the kernel gave up"
    texts = " ".join(x.text for x in f.facts)
    assert "a tail loss probe" in texts and "net.ipv4.tcp_early_retrans on client: 3" in texts
    assert "the first 204.000 ms after the first copy" in texts
    assert "then 408.000 ms, 816.000 ms, 1.632 s apart: each timeout twice the one before" in texts
    assert "no FIN and no RST" in texts
    assert f"tcp_retries2 = 4 on client lets it give up at the first timeout at least {retries_timeout(4):.3f} s" \
        in texts
    assert "TCP_USER_TIMEOUT" in f.fix and "924.6 s" in f.conclusion


def test_a_connection_that_gives_up_sooner_names_tcp_user_timeout(tmp_path: Path) -> None:
    (f,) = explanation(lossy_run(tmp_path, give_up_after=3.0)).of("retransmission")
    texts = " ".join(x.text for x in f.facts)
    assert "3.000 s after the first timer retransmission, sooner than tcp_retries2 = 4 on client allows" in texts
    assert "TCP_USER_TIMEOUT" in texts


def test_a_recovered_loss_and_one_still_open(tmp_path: Path) -> None:
    (f,) = explanation(lossy_run(tmp_path, None, recovered=True)).of("retransmission")
    assert f.title.endswith("recovered") and f.ended_by == "acknowledged"
    (g,) = explanation(lossy_run(tmp_path / "b", None)).of("retransmission")
    assert g.title.endswith("still unacknowledged at the end") and g.until is None


def test_tcp_retries2s_bound_is_the_kernels_924_6_s_for_15() -> None:
    assert retries_timeout(15) == 924.6 and retries_timeout(4) == 6.2 and retries_timeout(9) == 204.6


def zero_window_run(root: Path, reopen: bool = True) -> Path:
    """The client fills the server's window (win 0), probes it at 0.2, 0.6, 1.4 s; the server reads after 2 s."""
    w = Wire(IPS)
    trans = handshake(w, T0)
    t = T0 + 0.5
    w.send(t, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=b"x" * 1448)
    w.send(t + 0.001, "server", "client", 8000, CPORT, 5001, 2449, A, 0)
    for dt in (0.201, 0.601, 1.401):
        w.send(t + dt, "client", "server", CPORT, 8000, 2448, 5001, A, 502)  # seq = snd_una - 1
        w.send(t + dt + 0.0001, "server", "client", 8000, CPORT, 5001, 2449, A, 0)
    if reopen:
        w.send(t + 2.0, "server", "client", 8000, CPORT, 5001, 2449, A, 2896)
        w.send(t + 2.0002, "client", "server", CPORT, 8000, 2449, 5001, P | A, 502, payload=b"x" * 1448)
    return write_run(root, w, trans, {}, t + 3)


def test_a_zero_window_its_probes_and_its_opening(tmp_path: Path) -> None:
    ex = explanation(zero_window_run(tmp_path))
    (f,) = ex.of("zero_window")
    assert (f.socket.host, f.socket.local_port) == ("client", CPORT)
    assert f.title.endswith("server's zero window, 3 window probes, open again after 1.999 s")
    texts = " ".join(x.text for x in f.facts)
    assert "server advertised a zero window" in texts
    assert "client sent 3 window probes" in texts and "the first 200.000 ms after the zero window" in texts
    assert "then 400.000 ms, 800.000 ms apart: the persist timer doubles each time" in texts
    assert "client's data flowed again 200 µs later" in texts
    assert ex.of("retransmission") == []  # probes carry no data: no retransmission
    assert ex.of("keepalive") == []  # probes into a zero window are not keepalive


def test_a_window_still_shut_at_the_end(tmp_path: Path) -> None:
    (f,) = explanation(zero_window_run(tmp_path, reopen=False)).of("zero_window")
    assert f.title.endswith("still shut at the end") and f.until is None


def test_silent_without_their_phenomenon(tmp_path: Path) -> None:
    ex = explanation(refused_run(tmp_path))
    assert ex.of("retransmission") == [] and ex.of("zero_window") == []


def test_the_ladder_marks_each_packet_the_tracer_says_the_kernel_retransmitted(tmp_path: Path) -> None:
    import json
    import re

    from tcplab.report import write_report

    rd = lossy_run(tmp_path, give_up_after=6.24)
    t = T0 + 0.5
    resent_at = [t + 0.0101, t + 0.204, t + 0.612, t + 1.428, t + 3.06]  # the probe and the RTO's copies
    (rd / "sockets" / "retransmits.jsonl").write_text("".join(json.dumps(
        {"ts": ts + 0.00003, "event": "tcp_retransmit_skb", "saddr": CL, "sport": CPORT, "daddr": SV, "dport": 8000,
         "state": "ESTABLISHED", "err": 0, "host": "client", "peer": "server"}) + "\n" for ts in resent_at))
    html = write_report(rd).read_text(encoding="utf-8")
    marked = re.findall(r'<g class="pkt [a-z ]*resent" id="a-(\d+)"', html)
    assert len(marked) == 5 and "↻ retransmitted by client" in html and "kernel (tcp_retransmit_skb)" in html
    first = re.search(r'<g class="pkt data" id="a-(\d+)"', html)  # the head's first copy is no retransmission
    assert first is not None and first.group(1) not in marked
