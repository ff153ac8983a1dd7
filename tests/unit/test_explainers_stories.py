"""The explainers of the refused and keepalive stories speak when their phenomenon is in the run, with this run's
numbers and the sysctls it read, and are silent otherwise. Synthetic run directories, read as the report reads
them (test_explainers' helpers)."""
from __future__ import annotations

from pathlib import Path

from .test_explainers import CL, CPORT, IPS, SV, T0, ev, explanation, handshake, refused_run, write_run
from .test_report_synth import A, P, R, S, Wire

SYN_SYSCTLS = {"net.ipv4.tcp_syn_retries": "2", "net.ipv4.tcp_syn_linear_timeouts": "4"}
KA_SYSCTLS = {"net.ipv4.tcp_keepalive_time": "2", "net.ipv4.tcp_keepalive_intvl": "1",
              "net.ipv4.tcp_keepalive_probes": "3"}


def timed_out_run(root: Path, gaps: list[float], sysctls: dict[str, str] | None = SYN_SYSCTLS) -> Path:
    """A SYN to port 8000 and its retransmissions, never answered; the socket leaves SYN_SENT 2 s after the last."""
    w = Wire(IPS)
    t = T0
    w.send(t, "client", "server", CPORT, 8000, 1000, 0, S, 64240)
    for g in gaps:
        t += g
        w.send(t, "client", "server", CPORT, 8000, 1000, 0, S, 64240)
    trans = [ev(T0 - 0.00001, CL, 0, SV, 8000, "CLOSE", "SYN_SENT"), ev(t + 2.0, CL, CPORT, SV, 8000, "SYN_SENT",
                                                                        "CLOSE")]
    rd = write_run(root, w, trans, {}, t + 3, info_extra={"sysctls": {"client": sysctls}} if sysctls else None)
    (rd / "logs" / "programs").mkdir(parents=True)
    (rd / "logs" / "programs" / "client.t.log").write_text(
        "Trying 10.79.0.2...\ntelnet: Unable to connect to remote host: Connection timed out\n")
    return rd


def test_refused(tmp_path: Path) -> None:
    (f,) = explanation(refused_run(tmp_path)).findings
    assert f.kind == "connect_failed" and f.side == "client" and f.socket.host == "client"
    assert f.title.endswith("connection refused in 50 µs")
    assert "ECONNREFUSED" in f.conclusion and any("[R.]" in x.text for x in f.facts)
    assert any("did not retry" in x.text for x in f.facts)


def test_timed_out_agrees_with_the_pattern_of_the_sysctls_read(tmp_path: Path) -> None:
    (f,) = explanation(timed_out_run(tmp_path, [1.02, 1.03, 1.02, 1.02, 1.03])).findings
    assert f.kind == "connect_failed" and "SYN unanswered, connect() timed out" in f.title
    texts = " ".join(x.text for x in f.facts)
    assert "retransmitted the SYN 5 times, 1.020 s, 1.030 s, 1.020 s, 1.020 s, 1.030 s apart" in texts
    assert ("For tcp_syn_retries=2, tcp_syn_linear_timeouts=4 (read on client, run.json) Linux retransmits 5 times, "
            "1 s, 1 s, 1 s, 1 s, 1 s apart, and gives up 7 s after the first SYN: this run agrees.") in texts
    assert "left SYN_SENT" in texts and "Connection timed out" in texts and "ETIMEDOUT" in f.conclusion


def test_timed_out_differs_from_another_kernels_pattern(tmp_path: Path) -> None:
    (f,) = explanation(timed_out_run(tmp_path, [1.0, 2.0, 4.0])).findings
    assert any(x.text.endswith("this run differs.") for x in f.facts)


def test_timed_out_without_the_sysctls_says_so(tmp_path: Path) -> None:
    (f,) = explanation(timed_out_run(tmp_path, [1.0], sysctls=None)).findings
    assert any("The run does not say which retry pattern to expect: the run did not read net.ipv4.tcp_syn_retries"
               in x.text for x in f.facts)


def keepalive_run(root: Path, answered: bool = False) -> Path:
    """An idle connection, keepalive probes from the client (seq = snd_una - 1), answered or not, then the RST."""
    w = Wire(IPS)
    trans = handshake(w, T0)
    t = T0 + 0.5
    w.send(t, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=b"hi\n")
    w.send(t + 0.001, "server", "client", 8000, CPORT, 5001, 1004, A, 509)
    probes = [t + 2.001 + i for i in range(1 if answered else 3)]
    for pt in probes:
        w.send(pt, "client", "server", CPORT, 8000, 1003, 5001, A, 502)
        if answered:
            w.send(pt + 0.0002, "server", "client", 8000, CPORT, 5001, 1004, A, 509)
    if not answered:
        end = probes[-1] + 1.0
        w.send(end, "client", "server", CPORT, 8000, 1004, 5001, R | A, 502)
        trans.append(ev(end, CL, CPORT, SV, 8000, "ESTABLISHED", "CLOSE"))
    rd = write_run(root, w, trans, {}, probes[-1] + 2, info_extra={"sysctls": {"client": KA_SYSCTLS}})
    (rd / "logs" / "programs").mkdir(parents=True)
    (rd / "logs" / "programs" / "client.watched.log").write_text("socat[9] E read(5, 0x1, 8192): Connection timed out\n")
    return rd


def test_keepalive_gives_up_on_a_vanished_peer(tmp_path: Path) -> None:
    ex = explanation(keepalive_run(tmp_path))
    (f,) = ex.of("keepalive")
    assert f.socket.host == "client" and f.side == "client" and "3 probes unanswered" in f.title
    texts = " ".join(x.text for x in f.facts)
    assert "2.000 s of silence later client sent its first keepalive probe" in texts
    assert ", probe (packet #" in texts  # the ladder's and the facts' label of a probe says so
    assert "net.ipv4.tcp_keepalive_time on client: 2 s, read by the run" in texts
    assert "client sent 3 probes, 1.000 s, 1.000 s apart (tcp_keepalive_intvl 1 s, tcp_keepalive_probes 3" in texts
    assert "server answered none of them" in texts and "[R.]" in texts and "Connection timed out" in texts
    assert "ETIMEDOUT" in f.conclusion and "SO_KEEPALIVE" in f.fix
    assert ex.of("rst_after_close") == []  # keepalive's RST is not a close


def test_keepalive_answered_is_no_alarm(tmp_path: Path) -> None:
    (f,) = explanation(keepalive_run(tmp_path, answered=True)).of("keepalive")
    assert f.title.endswith("keepalive probes, answered") and f.fix.startswith("Nothing is broken")


def test_no_probe_no_keepalive_finding(tmp_path: Path) -> None:
    assert explanation(refused_run(tmp_path)).of("keepalive") == []
