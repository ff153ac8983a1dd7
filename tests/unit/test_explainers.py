"""Each explainer speaks when its phenomenon is in the run and is silent otherwise; the field-report comparison
appears only for a lab that names it. Synthetic run directories, read the way the report reads them."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from tcplab.analysis.explain import Explanation
from tcplab.analysis.timeline import SocketId
from tcplab.model import load_lab, parse_yaml, validate
from tcplab.model.errors import LabError
from tcplab.report import write_report
from tcplab.report.gather import gather
from tcplab.report.page import build_context

from .test_report_synth import HOSTS, T0, A, F, P, R, S, Wire, ns_line, ss_line, tables, write_closewait_run

ROOT = Path(__file__).resolve().parents[2]
IPS = {"server": "10.79.0.2", "client": "10.79.0.3"}
SV, CL = IPS["server"], IPS["client"]
CPORT = 41000


def ev(ts: float, src: str, sport: int, dst: str, dport: int, old: str, new: str) -> dict[str, Any]:
    return {"ts": ts, "event": "inet_sock_set_state", "saddr": src, "sport": sport, "daddr": dst, "dport": dport,
            "old": old, "new": new}


def reset(ts: float, event: str, src: str, sport: int, dst: str, dport: int, state: str,
          reason: str | None = None) -> dict[str, Any]:
    rec = {"ts": ts, "event": event, "saddr": src, "sport": sport, "daddr": dst, "dport": dport, "state": state}
    if reason:
        rec["reason"] = reason
    return rec


def handshake(w: Wire, t: float) -> list[dict[str, Any]]:
    """client:CPORT -> server:8000 at t; returns the transitions of both ends."""
    w.send(t, "client", "server", CPORT, 8000, 1000, 0, S, 64240)
    w.send(t + 0.00005, "server", "client", 8000, CPORT, 5000, 1001, S | A, 65160)
    w.send(t + 0.0001, "client", "server", CPORT, 8000, 1001, 5001, A, 502)
    return [ev(t - 0.00001, CL, 0, SV, 8000, "CLOSE", "SYN_SENT"),
            ev(t + 0.00001, SV, 8000, CL, CPORT, "LISTEN", "SYN_RECV"),
            ev(t + 0.00006, CL, CPORT, SV, 8000, "SYN_SENT", "ESTABLISHED"),
            ev(t + 0.00011, SV, 8000, CL, CPORT, "SYN_RECV", "ESTABLISHED")]


def write_run(root: Path, w: Wire, trans: list[dict[str, Any]], snaps: dict[str, Any], end: float,
              lab_extra: dict[str, Any] | None = None, info_extra: dict[str, Any] | None = None,
              peer_events: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    rd = root / "run"
    for d in ("capture", "sockets", "logs"):
        (rd / d).mkdir(parents=True, exist_ok=True)
    w.write(rd / "capture")
    (rd / "sockets" / "transitions.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in sorted(trans, key=lambda r: r["ts"])))
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    lab = {"name": "story", "hosts": {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}},
           **(lab_extra or {})}
    (rd / "lab.yaml").write_text(json.dumps(lab))
    (rd / "run.json").write_text(json.dumps({"lab": "story", "run": "r", "hosts": IPS, "state": "down",
                                             "started": T0 - 1, "ended": end + 1, "collected_at": end, "tracer": "ok",
                                             "engine": {"kernel": "6.18.0-test"}, **(info_extra or {})}))
    for host, events in (peer_events or {}).items():
        (rd / "logs" / "peer").mkdir(parents=True, exist_ok=True)
        (rd / "logs" / "peer" / f"{host}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return rd


def listen_rows() -> tuple[list[str], list[str]]:
    return [ns_line("0.0.0.0:8000", "0.0.0.0:*", "LISTEN", "7/server")], []


def explanation(rd: Path) -> Explanation:
    return build_context(gather(rd))["ex"]


def explanation_text(rd: Path) -> str:
    doc = lxml.html.fromstring(write_report(rd).read_text(encoding="utf-8"))
    return doc.get_element_by_id("explanation").text_content()


# --- runs of other stories -------------------------------------------------------------

def timewait_run(root: Path) -> Path:
    """The client asks, the server answers, the client closes first: TIME_WAIT on the client, a prompt passive close
    (CLOSE_WAIT -> LAST_ACK within 200 µs) on the server."""
    w = Wire(IPS)
    t = T0
    trans = handshake(w, t)
    w.send(t + 0.1, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=b"GET\r\n")
    w.send(t + 0.1001, "server", "client", 8000, CPORT, 5001, 1006, P | A, 509, payload=b"OK\r\n")
    w.send(t + 0.1002, "client", "server", CPORT, 8000, 1006, 5005, A, 502)
    fin = t + 0.2
    w.send(fin, "client", "server", CPORT, 8000, 1006, 5005, F | A, 502)
    w.send(fin + 0.00005, "server", "client", 8000, CPORT, 5005, 1007, A, 509)
    w.send(fin + 0.0002, "server", "client", 8000, CPORT, 5005, 1007, F | A, 509)
    w.send(fin + 0.00025, "client", "server", CPORT, 8000, 1007, 5006, A, 502)
    trans += [ev(fin - 0.00001, CL, CPORT, SV, 8000, "ESTABLISHED", "FIN_WAIT1"),
              ev(fin + 0.00001, SV, 8000, CL, CPORT, "ESTABLISHED", "CLOSE_WAIT"),
              ev(fin + 0.00006, CL, CPORT, SV, 8000, "FIN_WAIT1", "FIN_WAIT2"),
              ev(fin + 0.00019, SV, 8000, CL, CPORT, "CLOSE_WAIT", "LAST_ACK"),
              ev(fin + 0.00021, CL, CPORT, SV, 8000, "FIN_WAIT2", "CLOSE"),
              ev(fin + 0.00026, SV, 8000, CL, CPORT, "LAST_ACK", "CLOSE")]
    tw = ss_line("TIME-WAIT", f"{CL}:{CPORT}", f"{SV}:8000", "timer:(timewait,59sec,0) ino:0 sk:3")
    snaps = {"after": {"time": t + 1.0, "hosts": tables({
        "server": listen_rows(),
        "client": ([ns_line(f"{CL}:{CPORT}", f"{SV}:8000", "TIME_WAIT")], [tw])})}}
    return write_run(root, w, trans, snaps, t + 1.1)


def quiet_run(root: Path, lab_extra: dict[str, Any] | None = None) -> Path:
    """A connection that is made and stays open: nothing to explain."""
    w = Wire(IPS)
    trans = handshake(w, T0)
    snaps = {"up": {"time": T0 + 0.5, "hosts": tables({
        "server": ([ns_line("0.0.0.0:8000", "0.0.0.0:*", "LISTEN", "7/server"),
                    ns_line(f"{SV}:8000", f"{CL}:{CPORT}", "ESTABLISHED", "7/server")], []),
        "client": ([ns_line(f"{CL}:{CPORT}", f"{SV}:8000", "ESTABLISHED", "9/client")], [])})}}
    return write_run(root, w, trans, snaps, T0 + 1.0, lab_extra)


def abort_run(root: Path, reason: str | None = "TCP_ABORT_ON_CLOSE") -> Path:
    """The client sends a request the server never reads; the server closes: an RST instead of a FIN."""
    w = Wire(IPS)
    t = T0
    trans = handshake(w, t)
    w.send(t + 0.1, "client", "server", CPORT, 8000, 1001, 5001, P | A, 502, payload=b"HELLO\r\n")
    w.send(t + 0.10005, "server", "client", 8000, CPORT, 5001, 1008, A, 509)
    rst = t + 0.3
    w.send(rst, "server", "client", 8000, CPORT, 5001, 1008, R | A, 0)
    trans += [ev(rst + 0.000001, SV, 8000, CL, CPORT, "ESTABLISHED", "CLOSE"),
              reset(rst + 0.00002, "tcp_receive_reset", CL, CPORT, SV, 8000, "ESTABLISHED"),
              ev(rst + 0.00002, CL, CPORT, SV, 8000, "ESTABLISHED", "CLOSE")]
    if reason:
        trans.append(reset(rst - 0.000002, "tcp_send_reset", SV, 8000, CL, CPORT, "ESTABLISHED", reason))
    return write_run(root, w, trans, {}, t + 1.0)


def data_after_close_run(root: Path) -> Path:
    """The server answers and closes; the client writes once more: the server's kernel resets."""
    w = Wire(IPS)
    t = T0
    trans = handshake(w, t)
    fin = t + 0.1
    w.send(fin, "server", "client", 8000, CPORT, 5001, 1001, F | A, 509)
    w.send(fin + 0.00005, "client", "server", CPORT, 8000, 1001, 5002, A, 502)
    late = t + 0.5
    w.send(late, "client", "server", CPORT, 8000, 1001, 5002, P | A, 502, payload=b"MORE\r\n")
    w.send(late + 0.00004, "server", "client", 8000, CPORT, 5002, 0, R, 0)
    trans += [ev(fin - 0.00001, SV, 8000, CL, CPORT, "ESTABLISHED", "FIN_WAIT1"),
              ev(fin + 0.00001, CL, CPORT, SV, 8000, "ESTABLISHED", "CLOSE_WAIT"),
              ev(fin + 0.00006, SV, 8000, CL, CPORT, "FIN_WAIT1", "FIN_WAIT2"),
              reset(late + 0.00003, "tcp_send_reset", SV, 8000, CL, CPORT, "FIN_WAIT2", "TCP_ABORT_ON_DATA"),
              ev(late + 0.00003, SV, 8000, CL, CPORT, "FIN_WAIT2", "CLOSE"),
              reset(late + 0.00005, "tcp_receive_reset", CL, CPORT, SV, 8000, "CLOSE_WAIT"),
              ev(late + 0.00005, CL, CPORT, SV, 8000, "CLOSE_WAIT", "CLOSE")]
    return write_run(root, w, trans, {}, t + 1.0)


def refused_run(root: Path) -> Path:
    """A SYN to a port nobody listens on: answered by an RST, no connection ever existed."""
    w = Wire(IPS)
    w.send(T0, "client", "server", CPORT, 9, 1000, 0, S, 64240)
    w.send(T0 + 0.00005, "server", "client", 9, CPORT, 0, 1001, R | A, 0)
    return write_run(root, w, [reset(T0 + 0.00004, "tcp_send_reset", SV, 9, CL, CPORT, "CLOSE", "NO_SOCKET")], {},
                     T0 + 1.0)


def half_closed_run(root: Path) -> Path:
    """The client shuts down its sending side and keeps the socket; the server never closes: a FIN_WAIT2 that the
    client's program still owns, for 5 s to the end of the run."""
    w = Wire(IPS)
    t = T0
    trans = handshake(w, t)
    fin = t + 0.1
    w.send(fin, "client", "server", CPORT, 8000, 1001, 5001, F | A, 502)
    w.send(fin + 0.00005, "server", "client", 8000, CPORT, 5001, 1002, A, 509)
    trans += [ev(fin - 0.00001, CL, CPORT, SV, 8000, "ESTABLISHED", "FIN_WAIT1"),
              ev(fin + 0.00001, SV, 8000, CL, CPORT, "ESTABLISHED", "CLOSE_WAIT"),
              ev(fin + 0.00006, CL, CPORT, SV, 8000, "FIN_WAIT1", "FIN_WAIT2")]
    snaps = {"later": {"time": t + 5.0, "hosts": tables({
        "server": ([ns_line("0.0.0.0:8000", "0.0.0.0:*", "LISTEN", "7/server"),
                    ns_line(f"{SV}:8000", f"{CL}:{CPORT}", "CLOSE_WAIT", "7/server")], []),
        "client": ([ns_line(f"{CL}:{CPORT}", f"{SV}:8000", "FIN_WAIT2", "9/client")], [])})}}
    return write_run(root, w, trans, snaps, t + 5.1)


# --- TIME_WAIT -------------------------------------------------------------------------

def test_time_wait_is_explained_on_the_side_that_closed_first(tmp_path: Path) -> None:
    rd = timewait_run(tmp_path)
    ex = explanation(rd)
    (f,) = ex.of("time_wait")
    assert f.socket == SocketId("client", CL, CPORT, SV, 8000) and f.side == "client"
    fins = [p for p in gather(rd).traffic.packets if p.flags == "F."]
    assert f.since == pytest.approx(fins[1].ts, abs=1e-4)  # it begins when the server's FIN arrives
    assert f.until is None  # the last snapshot still lists it
    assert {f"pkt-{fins[0].n}", "snap-after"} <= {x.ref for x in f.facts}
    assert any("timewait,59sec,0" in x.text for x in f.facts)  # the kernel's own countdown, from ss
    assert f.conclusion and f.fix
    # the server's passive close took 200 µs: no CLOSE_WAIT finding, and its brief FIN_WAIT2 none either
    assert ex.of("close_wait") == [] and ex.of("fin_wait2") == [] and ex.of("rst_after_close") == []


def test_a_run_without_close_wait_gets_no_close_wait_text(tmp_path: Path) -> None:
    for rd in (timewait_run(tmp_path / "a"), quiet_run(tmp_path / "b"), abort_run(tmp_path / "c")):
        text = explanation_text(rd)
        assert "CLOSE_WAIT" not in text and "CLOSE-WAIT" not in text, rd
        assert "field report" not in text


def test_quiet_run_has_no_findings(tmp_path: Path) -> None:
    ex = explanation(quiet_run(tmp_path))
    assert ex.findings == [] and ex.more == [] and ex.differences == []


def test_time_wait_crowd_is_counted_not_explained_one_by_one(tmp_path: Path) -> None:
    rd = timewait_run(tmp_path)
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    ns = [ns_line(f"{CL}:{40000 + i}", f"{SV}:8000", "TIME_WAIT") for i in range(1, 9)]
    ss = [ss_line("TIME-WAIT", f"{CL}:{40000 + i}", f"{SV}:8000", "timer:(timewait,50sec,0)") for i in range(1, 9)]
    snaps["after"]["hosts"].update(tables({"client": (ns, ss)}))
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    info = json.loads((rd / "run.json").read_text())
    info["sysctls"] = {"client": {"net.ipv4.ip_local_port_range": "40000 40009"}}
    (rd / "run.json").write_text(json.dumps(info))
    ex = explanation(rd)
    shown = ex.of("time_wait")
    assert 0 < len(shown) < 9
    assert ex.more == [("sockets in TIME_WAIT", 9 - len(shown))]
    text = " ".join(x.text for x in shown[0].facts)
    assert "40000 40009" in text and " 10 local ports" in text  # from the recorded sysctl: 40009 - 40000 + 1


# --- RST after close -----------------------------------------------------------------------

def test_rst_instead_of_fin_is_explained_with_the_kernels_reason(tmp_path: Path) -> None:
    rd = abort_run(tmp_path)
    ex = explanation(rd)
    (f,) = ex.of("rst_after_close")
    rst = next(p for p in gather(rd).traffic.packets if "R" in p.flags)
    assert f.socket == SocketId("server", SV, 8000, CL, CPORT) and f.side == "server"
    assert f.since == pytest.approx(rst.ts, abs=1e-5) and f.until == pytest.approx(rst.ts, abs=1e-5)
    assert f"pkt-{rst.n}" in {x.ref for x in f.facts}
    text = " ".join(x.text for x in f.facts)
    assert "TCP_ABORT_ON_CLOSE" in text and "7 bytes" in text  # the tracer's reason; the unread request's length
    assert f.conclusion and f.fix


def test_rst_without_a_reason_or_a_close_is_not_called_after_close(tmp_path: Path) -> None:
    assert explanation(abort_run(tmp_path / "a", reason=None)).of("rst_after_close") == []
    assert [f.kind for f in explanation(refused_run(tmp_path / "b")).findings] == ["connect_failed"]


def test_data_after_close_reset_dates_from_the_close(tmp_path: Path) -> None:
    rd = data_after_close_run(tmp_path)
    (f,) = explanation(rd).of("rst_after_close")
    pkts = gather(rd).traffic.packets
    fin = next(p for p in pkts if p.flags == "F.")
    data = next(p for p in pkts if p.tcp.payload)
    assert f.socket.host == "server" and f.since == pytest.approx(fin.ts, abs=1e-5)
    assert {f"pkt-{fin.n}", f"pkt-{data.n}"} <= {x.ref for x in f.facts}
    assert any("TCP_ABORT_ON_DATA" in x.text for x in f.facts)


def test_windows_peer_reset_is_explained_with_the_peers_own_log(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, windows=True)
    rst = next(p for p in gather(rd).traffic.packets if p.flags == "R.")
    detail = "FIN_WAIT_2 timer (120.002 s) expired: sent [R.] <b>seq</b>"
    (rd / "logs" / "peer").mkdir()
    (rd / "logs" / "peer" / "win.jsonl").write_text(json.dumps(
        {"ts": rst.ts, "event": "rst_sent", "conn": {"src": HOSTS["win"], "sport": 52552, "dst": HOSTS["server"],
                                                     "dport": 8000}, "detail": detail}) + "\n")
    ex = explanation(rd)
    (f,) = ex.of("rst_after_close")
    assert f.socket.host == "win" and f.side == "client"
    fin = next(p for p in gather(rd).traffic.packets if p.flags == "F.")
    assert f.since == pytest.approx(fin.ts, abs=1e-5)
    doc = lxml.html.fromstring(write_report(rd).read_text(encoding="utf-8"))
    assert detail in doc.get_element_by_id("explanation").text_content()
    assert doc.xpath("//section[@id='explanation']//b[text()='seq']") == []  # the peer's log is text, not markup


# --- FIN_WAIT2 -----------------------------------------------------------------------------

def test_orphaned_fin_wait2_of_a_linux_peer_stays_to_the_end(tmp_path: Path) -> None:
    ex = explanation(write_closewait_run(tmp_path, windows=False))
    (f,) = ex.of("fin_wait2")
    assert f.socket.host == "win" and f.side == "client" and f.until is None
    assert f.closed_by_app  # an orphan: its application had closed it
    assert any("timewait,58sec,0" in x.text for x in f.facts)
    assert any("3 s" in x.text for x in f.facts)  # tcp_fin_timeout from this run's lab.yaml


def test_fin_wait2_of_the_windows_peer_ends_with_its_rst(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, windows=True)
    (f,) = explanation(rd).of("fin_wait2")
    rst = next(p for p in gather(rd).traffic.packets if p.flags == "R.")
    assert f.socket.host == "win" and f.until == pytest.approx(rst.ts, abs=1e-5)
    assert f"pkt-{rst.n}" in {x.ref for x in f.facts}


def test_fin_wait2_held_by_its_program_after_shutdown(tmp_path: Path) -> None:
    ex = explanation(half_closed_run(tmp_path))
    (f,) = ex.of("fin_wait2")
    assert f.socket == SocketId("client", CL, CPORT, SV, 8000) and f.until is None
    assert not f.closed_by_app
    assert any("9/client" in x.text for x in f.facts)  # the owner netstat showed
    (cw,) = ex.of("close_wait")  # the server's side of the same story, whose peer is not an orphan
    assert any("9/client" in x.text for x in cw.facts)


# --- the registry --------------------------------------------------------------------------

def test_a_new_explainer_is_one_registered_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tcplab.analysis import explainers as explainers_pkg
    from tcplab.analysis.explainers import Explainer, Fact, Finding, Result, RunEvidence

    class Established(Explainer):
        kind = "established_test"
        what = "established sockets"

        def explain(self, run: RunEvidence) -> Result:
            out = Result()
            for tl in run.timelines.sockets:
                iv = tl.first("ESTABLISHED")
                if iv is not None and iv.end is None:
                    out.findings.append(Finding(self.kind, f"{tl.sock.host} <established>", tl.sock, run.side(tl.sock),
                                                iv.start, None, "", [Fact("seen")], "why", "fix"))
            return out

    monkeypatch.setattr(explainers_pkg.base, "EXPLAINERS", list(explainers_pkg.EXPLAINERS))
    explainers_pkg.base.register(Established)
    monkeypatch.setattr("tcplab.analysis.explain.EXPLAINERS", explainers_pkg.base.EXPLAINERS)
    rd = quiet_run(tmp_path)
    ex = explanation(rd)
    assert sorted(f.socket.host for f in ex.of("established_test")) == ["client", "server"]
    doc = lxml.html.fromstring(write_report(rd).read_text(encoding="utf-8"))
    titles = [h.text_content() for h in doc.xpath("//div[contains(@class,'finding')]/h3")]
    assert "server <established>" in titles  # escaped text, not a tag
    with pytest.raises(ValueError):
        explainers_pkg.base.register(Established)  # one explainer per kind


# --- the comparison with the field report -------------------------------------------------

def test_comparison_only_for_a_lab_that_names_the_reference(tmp_path: Path) -> None:
    named = write_closewait_run(tmp_path / "a", windows=True)
    plain = write_closewait_run(tmp_path / "b", windows=True, reference=None)
    ex = explanation(named)
    assert ex.differences and ex.reference and ex.reference_name == "closewait-field-report"
    assert explanation(plain).differences == []
    doc = lxml.html.fromstring(write_report(plain).read_text(encoding="utf-8"))
    assert doc.xpath("//table[contains(@class,'diff')]") == []
    assert "field report" not in doc.get_element_by_id("explanation").text_content()
    doc = lxml.html.fromstring(write_report(named).read_text(encoding="utf-8"))
    assert len(doc.xpath("//table[contains(@class,'diff')]//tr[td]")) == len(ex.differences)


def test_unknown_reference_is_said_not_compared(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, reference="no-such-report")
    ex = explanation(rd)
    assert ex.differences == [] and ex.reference is None and ex.reference_unknown == "no-such-report"
    assert "no-such-report" in explanation_text(rd)


def _fin_ack_row(rd: Path) -> Any:
    return next(d for d in explanation(rd).differences if d.what == "server's ACK of the FIN")


def test_fin_ack_delay_is_explained_from_the_runs_ato_and_hz(tmp_path: Path) -> None:
    hz100 = {"kernel": {"hz": 100, "hz_source": "test"}}
    within = _fin_ack_row(write_closewait_run(tmp_path / "a", fin_ack=0.00225, run_info=hz100))
    assert "2.250 ms" in within.this_run and "2.250 ms" in within.why  # the measured delay
    assert "ato:40" in within.why and "10.000 ms" in within.why  # ss after the FIN; the tick at HZ 100
    late = _fin_ack_row(write_closewait_run(tmp_path / "b", fin_ack=0.0172, run_info=hz100))
    assert "1.7 ticks" in late.why  # 17.2 ms at 10 ms a tick
    unknown = _fin_ack_row(write_closewait_run(tmp_path / "c", fin_ack=0.00225))
    assert "10.000 ms" not in unknown.why and not re.search(r"\d\.\d ticks", unknown.why)
    # without ss's view of the socket the ato is not claimed
    rd = write_closewait_run(tmp_path / "d", fin_ack=0.00225, run_info=hz100)
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    for snap in snaps.values():
        snap["hosts"]["server"]["ss"]["records"] = []
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    assert "ato:40" not in _fin_ack_row(rd).why
    # an ACK at once, and no ato afterwards (the timer never ran, as with a route's quickack 1): no tick is blamed
    rd = write_closewait_run(tmp_path / "e", fin_ack=0.00008, run_info=hz100)
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    for snap in snaps.values():
        for r in snap["hosts"]["server"]["ss"]["records"]:
            r["info"] = r["info"].replace(" ato:40", "")
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))
    quick = _fin_ack_row(rd)
    assert "80 µs" in quick.why and "10.000 ms" not in quick.why


def test_window_scale_why_uses_the_recorded_sysctls(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, run_info={"sysctls": {"server": {"net.ipv4.tcp_rmem": "4096 131072 6291456",
                                                                        "net.core.rmem_max": "212992"}}})
    row = next(d for d in explanation(rd).differences if d.what == "server's SYN-ACK options")
    assert "6291456" in row.why and "gives 7, not 10" in row.why  # 6 MiB gives 7; the packet says 10


def test_handshake_ack_window_why_names_the_linux_first_window(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, ack_win=251)  # what the emulated Windows peer's Linux kernel advertises
    row = next(d for d in explanation(rd).differences if d.what == "win's ACK")
    assert "251 × 2^8 = 64256" in row.why and "44 × 1460 = 64240" in row.why  # computed from the packets


# --- the labs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["closewait", "closewait-linux"])
def test_shipped_closewait_labs_name_the_field_report(name: str) -> None:
    lab, _ = load_lab(ROOT / "labs" / f"{name}.yaml")
    assert lab.reference is not None and lab.reference.report == "closewait-field-report"
    from tcplab.analysis.references import REFERENCES

    assert lab.reference.report in REFERENCES


def test_lab_reference_must_be_known() -> None:
    base = parse_yaml((ROOT / "labs" / "closewait.yaml").read_text(), "closewait.yaml")
    with pytest.raises(LabError, match="reference"):
        validate(dict(base, reference="no-such-report"), "x.yaml")
    ref = validate(dict(base, reference="closewait-field-report"), "x.yaml").reference  # the short form
    assert ref is not None and ref.report == "closewait-field-report" and ref.facts == []
