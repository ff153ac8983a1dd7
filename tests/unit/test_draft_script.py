"""The scripted play of `lab new --from-pcap` (tcplab/draft/script.py), on the merged captures of shipped labs' runs
(tests/data/captures: nagle, keepalive, backlog as `lab run` wrote them) and on synthetic ones (scapy)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from scapy.utils import wrpcap

from tcplab.draft import draft_lab, read_capture_file

from ..conftest import lab_cmd
from .test_from_pcap import C, S, _conversation, _seg

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
SHARED = Path("/work/shared/captures")
if not SHARED.is_dir():  # the shared folder beside the checkout
    SHARED = Path(__file__).resolve().parents[3] / "shared" / "captures"


def _draft(name: str) -> tuple[dict[str, Any], str, list[str]]:
    capture = read_capture_file(CAPTURES / f"{name}.pcapng")
    d = draft_lab(capture, list(range(1, len(capture.connections) + 1)), f"{name}.pcapng")
    data = yaml.safe_load(d.text)
    assert isinstance(data, dict) and d.programs
    return data, d.text, d.not_inferred


def _typed(lab: dict[str, Any], prog: str) -> list[str]:
    return [s["text"] for s in lab["steps"] if s.get("send") == prog]


def test_nagle_each_request_is_written_in_its_two_pieces_and_the_fix_is_tcp_nodelay() -> None:
    lab, _, unsure = _draft("nagle")
    starts = [s for s in lab["steps"] if "start" in s]
    assert [s["start"] for s in starts] == [
        ["/opt/lab/tcpctl", "listen", "8000", "5"],
        ["/opt/lab/tcpctl", "connect", "server", "8000"],
        # the body left while the header was unacknowledged: Nagle was off
        ["/opt/lab/tcpctl", "connect", "server", "8000", "nodelay"]]
    requests = "".join(f"write head{i:02d}\nwrite body{i:02d}\nread 5\n" for i in range(1, 11))
    # the body Nagle held for the delayed ACK is written right behind its header, not when it left
    assert _typed(lab, "app1") == [requests + "close\nexit\n"]
    assert _typed(lab, "app2") == [requests + "close\nexit\n"]
    answers = "".join(f"read 12\nwrite ok{i:02d}\\n\n" for i in range(1, 11))
    # the server reads each request whole before it answers, and the client's FIN before it closes
    assert _typed(lab, "server-8000") == ["accept\n" + answers + "recv\nclose\n"] * 2
    # the second connection starts once the first's client is done
    i = next(i for i, s in enumerate(lab["steps"]) if s.get("as") == "app2")
    assert lab["steps"][i - 2]["wait"] == {"exit": "app1"}
    assert not unsure
    rules = {e["name"]: e["packet"] for e in lab["expect"]}
    # Nagle's wait as the capture shows it (the delayed-ACK timer), and none with TCP_NODELAY
    assert rules["c1-held"] == {"from": "client", "to": "server", "port": 8000, "payload": "body06",
                                "after": "c1-small-write", "delay": "44ms", "tolerance": "11ms"}
    assert rules["c1-small-write"]["payload"] == "head06"
    assert rules["c2-not-held"]["delay"] == "0s" and rules["c2-small-write"]["after"] == "start-app2"


def test_keepalive_turns_on_for_the_probing_connection_with_the_timers_the_gaps_show() -> None:
    lab, text, _ = _draft("keepalive")
    assert lab["hosts"]["client"]["sysctls"] == {"net.ipv4.tcp_keepalive_intvl": 1, "net.ipv4.tcp_keepalive_probes": 3,
                                                 "net.ipv4.tcp_keepalive_time": 3}
    assert all(len(s["start"]) == 4 for s in lab["steps"] if "start" in s)
    # two connections open at once: the server echoes the second's line, then the first's (use 1)
    assert _typed(lab, "server-8000") == ["accept\n", "accept\n", "read 19\nwrite hello from control\\n\n",
                                          "use 1\nread 19\nwrite hello from watched\\n\n"]
    # keepalive on with the last call before the probes, so that the steps' pace before it cannot make them earlier
    assert _typed(lab, "app1") == ["keepalive\nwrite hello from watched\\n\n"]
    assert _typed(lab, "app2") == ["write hello from control\\n\n"]
    kinds = [next(k for k in ("firewall", "wait", "send", "start") if k in s) for s in lab["steps"]]
    assert kinds[-3:] == ["wait", "firewall", "wait"] and lab["steps"][-1]["wait"] == {"rst_from": "client"}
    assert "intervals: \"keepalive\"" in text


def test_backlog_never_accepts_and_its_clients_burst_from_the_captures_ports() -> None:
    lab, text, _ = _draft("backlog")
    assert lab["hosts"]["strict"]["sysctls"] == {"net.ipv4.tcp_abort_on_overflow": 1}
    assert "sysctls" not in lab["hosts"]["server"]
    starts = [s["start"][1:] for s in lab["steps"] if "start" in s]
    assert starts == [
        ["listen", "8000", "2"], ["listen", "8000", "2"],  # three completed connections filled the queue
        ["burst", "server", "8000", "2", "40001", "delayack", "burst", "server", "8000", "2", "40003"],
        ["burst", "strict", "8000", "2", "41001", "delayack", "burst", "strict", "8000", "2", "41003"],
        ["burst", "server", "8000", "1", "40005", "exit"]]
    assert not [s for s in lab["steps"] if "send" in s]  # nobody accepts
    assert lab["steps"][-1] == {"wait": {"exit": "burst9"}, "host": "client", "timeout": "10s",
                                "title": "client gives up on the unanswered connection"}
    assert "backlog 2 (the queue holds backlog + 1)" in text
    names = [e["name"] for e in lab["expect"]]
    assert {"c3-synack-again", "c7-overflow-reset", "c9-dropped"} <= set(names)


def test_a_fast_answer_of_any_bytes_is_typed_ahead_with_escapes_and_a_large_one_as_filler(tmp_path: Path) -> None:
    path = tmp_path / "bin.pcap"
    req = b" \x00\x01GET\\\r\n"  # a leading space, NULs, a backslash, CR LF: tcpctl's write escapes all of them
    n = len(req)
    pk = _conversation(b"")[:3]
    pk += [_seg(10.1, C, S, 40000, 9000, "PA", 1001, 5001, req),
           _seg(10.1002, S, C, 9000, 40000, "PA", 5001, 1001 + n, b"x" * 2000),
           _seg(10.1003, C, S, 40000, 9000, "A", 1001 + n, 7001)]
    wrpcap(str(path), pk)
    d = draft_lab(read_capture_file(path), [1], "bin.pcap")
    lab = yaml.safe_load(d.text)
    assert _typed(lab, "app1") == ["write \\x20\\x00\\x01GET\\\\\\r\\n\n"]
    assert _typed(lab, "server-9000") == [f"accept\nread {n}\nfill 2000\n"]
    assert any("2000" not in u and "filler" in u for u in d.not_inferred)


def test_a_slow_answer_in_lines_stays_one_socket_call_a_step(tmp_path: Path) -> None:
    """The step-by-step play is kept where a step's pace does not change the packets (a reply a second later)."""
    path = tmp_path / "slow.pcap"
    pk = _conversation(b"hello\n")
    pk.insert(5, _seg(14.0, S, C, 9000, 40000, "PA", 5001, 1007, b"banner\n"))
    wrpcap(str(path), pk)
    assert "write " not in draft_lab(read_capture_file(path), [1], "slow.pcap").text


def test_lab_new_drafts_every_shared_capture_no_lab_wrote(tmp_path: Path) -> None:
    """The field captures in ../shared/captures: every connection drafted into a lab that validates."""
    captures = sorted(SHARED.glob("*.pcap*"))
    assert captures, f"no capture in {SHARED}"
    for capture in captures:
        out = tmp_path / f"{capture.stem}.yaml"
        proc = lab_cmd("new", "--from-pcap", str(capture), "--connection", "all", "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, (capture, proc.stderr)
        assert lab_cmd("validate", str(out), cwd=tmp_path).returncode == 0, capture
        lab = yaml.safe_load(out.read_text())
        assert lab["steps"] and lab["expect"], capture


def test_a_fast_answer_with_the_fin_on_it_is_written_then_closed(tmp_path: Path) -> None:
    path = tmp_path / "http.pcap"
    req = b"GET / HTTP/1.0\r\n\r\n"
    n = len(req)
    pk = _conversation(b"")[:3]
    pk += [_seg(10.1, C, S, 40000, 9000, "PA", 1001, 5001, req),
           _seg(10.1002, S, C, 9000, 40000, "FPA", 5001, 1001 + n, b"HTTP/1.0 200 OK\r\n\r\n"),
           _seg(10.1003, C, S, 40000, 9000, "FA", 1001 + n, 5021),
           _seg(10.1004, S, C, 9000, 40000, "A", 5021, 1002 + n)]
    wrpcap(str(path), pk)
    lab = yaml.safe_load(draft_lab(read_capture_file(path), [1], "http.pcap").text)
    # the server reads the request, answers and closes in one go; the client reads the answer and the FIN, closes
    assert _typed(lab, "server-9000") == [f"accept\nread {n}\nwrite HTTP/1.0 200 OK\\r\\n\\r\\n\nclose\n"]
    assert _typed(lab, "app1") == ["write GET / HTTP/1.0\\r\\n\\r\\n\nread 19\nrecv\nclose\nexit\n"]


def test_zero_window_probes_are_no_keepalive(tmp_path: Path) -> None:
    """Probes one byte behind while the server's window is closed are the kernel's zero-window probes."""
    path = tmp_path / "zw.pcap"
    pk = _conversation(b"")[:3]
    pk += [_seg(10.1, C, S, 40000, 9000, "PA", 1001, 5001, b"x" * 100),
           _seg(10.1001, S, C, 9000, 40000, "A", 5001, 1101, win=0)]
    pk += [_seg(10.3 + 0.2 * 2 ** i, C, S, 40000, 9000, "A", 1100, 5001) for i in range(4)]
    pk += [_seg(10.3001 + 0.2 * 2 ** i, S, C, 9000, 40000, "A", 5001, 1101, win=0) for i in range(4)]
    wrpcap(str(path), sorted(pk, key=lambda q: float(q.time)))
    text = draft_lab(read_capture_file(path), [1], "zw.pcap").text
    assert "keepalive" not in text


def test_zero_window_a_small_receive_buffer_a_bulk_write_and_a_reader_that_reads_once_its_window_opened() -> None:
    """zero-window's run (8000 bytes a connection): its listeners' windows of at most 2896 bytes are SO_RCVBUF 4096;
    the slow reader accepts, reads nothing while its window is closed, and reads when the capture shows it open."""
    lab, text, unsure = _draft("zero-window")
    assert [s["start"] for s in lab["steps"] if "start" in s] == [
        ["/opt/lab/tcpctl", "rcvbuf", "4096", "listen", "8001", "5"],
        ["/opt/lab/tcpctl", "rcvbuf", "4096", "listen", "8000", "5"],
        # a bulk write's last short segment says nothing of Nagle: no TCP_NODELAY
        ["/opt/lab/tcpctl", "connect", "server", "8001"], ["/opt/lab/tcpctl", "connect", "server", "8000"]]
    # what the kernel cut into segments (and sent again) is one write of the connection's bytes
    assert _typed(lab, "app1") == _typed(lab, "app2") == ["fill 8000\nclose\nexit\n"]
    assert _typed(lab, "server-8001") == ["accept\nread 8000\nrecv\nclose\n"]
    assert _typed(lab, "server-8000") == ["accept\n", "read 8000\nrecv\nclose\n"]
    steps = lab["steps"]
    i = next(i for i, s in enumerate(steps) if s.get("text") == "read 8000\nrecv\nclose\n" and s["send"] == "server-8000")
    # the stall: from the client's write to the capture's window opening again, the probes the kernel's meanwhile
    assert steps[i - 1]["wait"] == {"seconds": "2.9s"} and steps[i - 2]["send"] == "app2"
    assert steps[-1]["wait"] == {"exit": "app2"}  # the transfer ends after the reader read
    rules = {e["name"]: e["packet"] for e in lab["expect"]}
    assert rules["c2-window-closes"] == {"from": "server", "to": "client", "port": 8000, "win": 0}
    assert rules["c2-window-probes"]["intervals"] == "rto-backoff" and rules["c2-window-probes"]["probe"] is True
    assert not any(n.startswith("c1-window") for n in rules)  # the reader that reads never closed its window
    assert "keepalive" not in text and "sysctls" not in text
    assert "sends 8000 bytes" in lab["story"]  # the retransmitted segment counted once
    assert any("one write of filler" in u for u in unsure)


def test_retransmit_lost_data_is_dropped_on_the_servers_link_and_the_retransmissions_stop_where_the_captures_do() -> None:
    """retransmit's run: lossy's and bounded's data never acknowledged (sent 4 more times), control's echoed."""
    lab, text, unsure = _draft("retransmit")
    assert [s["start"] for s in lab["steps"] if "start" in s] == [
        ["/opt/lab/tcpctl", "listen", "8000", "5"],
        # the lost ones from the capture's ports, so that the impairment tells them apart; their tail left right
        # behind the unacknowledged head (the loss probe resent it alone): Nagle was off
        ["/opt/lab/tcpctl", "bind", "40001", "connect", "server", "8000", "nodelay"],
        ["/opt/lab/tcpctl", "bind", "40002", "connect", "server", "8000", "nodelay"],
        ["/opt/lab/tcpctl", "connect", "server", "8000"]]
    steps = lab["steps"]
    drops = [i for i, s in enumerate(steps) if "impair" in s]
    assert [steps[i]["match"] for i in drops] == [{"from": "client", "port": 40001, "data": True},
                                                  {"from": "client", "port": 40002, "data": True}]
    assert all(steps[i]["every"] == 1 and steps[i]["host"] == "server" for i in drops)
    first_write = next(i for i, s in enumerate(steps) if s.get("send") == "app1")
    assert max(drops) < first_write  # lost from the first write on
    assert _typed(lab, "app1") == _typed(lab, "app2") == ["write head of request 1\\n\nwrite tail of request 1\\n\n"]
    assert _typed(lab, "server-8000")[-1] == "read 18\nwrite head of request 1\\n\nread 18\nwrite tail of request 1\\n\n"
    # four RTO retransmissions, then nothing: tcp_retries2 4 ends them; the draft lasts past the last one
    assert lab["hosts"]["client"]["sysctls"] == {"net.ipv4.tcp_retries2": 4}
    assert "wait" in steps[-1] and float(steps[-1]["wait"]["seconds"].rstrip("s")) > 3.2
    rules = {e["name"]: e["packet"] for e in lab["expect"]}
    assert rules["c1-retransmits"] == {"from": "client", "to": "server", "port": 40001, "seq": 1, "has_flags": "P",
                                       "intervals": "rto-backoff", "tolerance": "100ms"}
    assert "c2-retransmits" in rules and "c3-retransmits" not in rules
    assert any("where it was lost" in u for u in unsure) and "TCP_USER_TIMEOUT" in text
