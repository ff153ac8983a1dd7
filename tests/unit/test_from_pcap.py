"""`lab new --from-pcap`: drafts from synthetic captures (scapy) and from the field report's own packets."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet as ScapyPacket
from scapy.utils import wrpcap

from tcplab.draft import CaptureError, draft_lab, list_connections, read_capture_file
from tcplab.draft.from_pcap import flag_sequences
from tcplab.wire import PcapngWriter

from ..conftest import lab_cmd

FIELD_REPORT = Path("/work/shared/captures/fieldreport.pcap")
if not FIELD_REPORT.is_file():  # the shared folder beside the checkout
    FIELD_REPORT = Path(__file__).resolve().parents[3] / "shared" / "captures" / "fieldreport.pcap"

C, S = "10.1.0.20", "10.1.0.10"


def _seg(t: float, src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int = 0,
         payload: bytes = b"", ttl: int = 64, win: int = 502, options: list[Any] | None = None) -> ScapyPacket:
    p = Ether() / IP(src=src, dst=dst, ttl=ttl) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                                                      window=win, options=options or [])
    if payload:
        p = p / payload
    p.time = t
    return p


def _conversation(payload: bytes, server_closes: bool = True, cport: int = 40000) -> list[ScapyPacket]:
    """A Linux client connects, sends ``payload``, closes; the server closes too (or never)."""
    ci, si = 1000, 5000
    n = len(payload)
    pk = [_seg(10.0, C, S, cport, 9000, "S", ci, options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0))]),
          _seg(10.0001, S, C, 9000, cport, "SA", si, ci + 1),
          _seg(10.0002, C, S, cport, 9000, "A", ci + 1, si + 1),
          _seg(13.0, C, S, cport, 9000, "PA", ci + 1, si + 1, payload),
          _seg(13.0001, S, C, 9000, cport, "A", si + 1, ci + 1 + n),
          _seg(15.0, C, S, cport, 9000, "FA", ci + 1 + n, si + 1),
          _seg(15.0002, S, C, 9000, cport, "A", si + 1, ci + 2 + n)]
    if server_closes:
        pk += [_seg(15.0003, S, C, 9000, cport, "FA", si + 1, ci + 2 + n),
               _seg(15.0004, C, S, cport, 9000, "A", ci + 2 + n, si + 2)]
    return pk


def _lab(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_the_field_report_becomes_a_windows_peer_whose_timer_resets_after_the_silence() -> None:
    capture = read_capture_file(FIELD_REPORT)
    assert flag_sequences(capture) == [["S", "S.", ".", "F.", ".", "R."]]
    draft = draft_lab(capture, [1], "fieldreport.pcap")
    lab = _lab(draft.text)
    assert lab["hosts"]["win"]["peer"] == {"os": "windows", "fin_wait2_timeout": "120s", "syn": "windows-7"}
    assert lab["hosts"]["server"]["program"]["run"] == ["/opt/lab/server", "8000", "5"]
    kinds = [next(k for k in ("start", "wait", "stop") if k in s) for s in lab["steps"]]
    # the holder keeps the single-threaded server busy, so the Windows connection waits unaccepted
    assert kinds == ["start", "start", "wait", "stop", "wait", "wait"]
    assert lab["steps"][0]["host"] == "holder" and lab["steps"][1]["host"] == "win"
    assert lab["steps"][2]["wait"] == {"seconds": "52.5s"}
    assert lab["steps"][5]["wait"] == {"rst_from": "win"}
    rules = {e["name"]: e["packet"] for e in lab["expect"]}
    assert rules["c1-syn"]["ttl"] == 128 and rules["c1-syn"]["win"] == 8192 and rules["c1-syn"]["wscale"] == 8
    assert (rules["c1-fin"]["flags"], rules["c1-fin"]["seq"], rules["c1-fin"]["ack"]) == ("F.", 1, 1)
    assert rules["c1-fin-acked"]["ack"] == 2 and rules["c1-fin-acked"]["delay"] == "0s"
    assert rules["c1-server-never-fins"]["count"] == 0
    assert rules["c1-rst"] == {"from": "win", "to": "server", "port": 8000, "flags": "R.", "seq": 2, "ack": 1,
                               "win": 0, "after": "c1-fin", "tolerance": "50ms",
                               "delay": "peers.win.fin_wait2_timeout"}
    assert "--set peers.win.fin_wait2_timeout=2s" in draft.text
    assert "could not infer what kept server busy" in draft.text


def test_a_linux_conversation_is_typed_into_telnet_and_closed_by_both(tmp_path: Path) -> None:
    path = tmp_path / "talk.pcap"
    wrpcap(str(path), _conversation(b'say "hi" \\ caf\xc3\xa9\r\n'))
    lab = _lab(draft_lab(read_capture_file(path), [1], "talk.pcap").text)
    assert "peer" not in lab["hosts"]["client"] and "holder" not in lab["hosts"]
    sends = [s for s in lab["steps"] if "send" in s]
    assert sends == [{"host": "client", "send": "telnet1", "text": 'say "hi" \\ caf\u00e9\n',
                      "title": "client sends 18 bytes"}]
    waits = [s["wait"] for s in lab["steps"] if "wait" in s]
    assert waits == [{"seconds": "3s"}, {"seconds": "2s"}, {"fin_from": "client"}]
    names = [e["name"] for e in lab["expect"]]
    assert names == ["c1-syn", "c1-synack", "c1-data1", "c1-fin", "c1-fin-acked", "c1-server-fin"]
    fin = lab["expect"][3]["packet"]
    assert (fin["seq"], fin["ack"], fin["after"]) == (19, 1, "stop-telnet1")


def test_binary_payload_is_a_comment_not_a_step(tmp_path: Path) -> None:
    path = tmp_path / "bin.pcap"
    wrpcap(str(path), _conversation(b"\x00\xfe\xff\r\n"))
    draft = draft_lab(read_capture_file(path), [1], "bin.pcap")
    assert not [s for s in _lab(draft.text)["steps"] if "send" in s]
    assert any("not text" in u for u in draft.not_inferred)
    assert not draft.programs  # telnet and tcplab/server play it


def _sends(text: str) -> list[tuple[str, str]]:
    """The draft's ``send`` steps: (host, text), in order."""
    return [(s["host"], s["text"]) for s in _lab(text)["steps"] if "send" in s]


def test_a_server_that_writes_is_played_by_tcpctl_on_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "banner.pcap"
    pk = _conversation(b"hello\n")
    pk.insert(5, _seg(14.0, S, C, 9000, 40000, "PA", 5001, 1007, b"banner\n"))
    wrpcap(str(path), pk)
    draft = draft_lab(read_capture_file(path), [1], "banner.pcap")
    lab = _lab(draft.text)
    assert draft.programs and lab["hosts"] == {"server": {"build": "programs"}, "client": {"build": "programs"}}
    assert lab["steps"][0]["start"] == ["/opt/lab/tcpctl", "listen", "9000", "5"]
    # the server reads the request (so its close is a FIN), writes its line, the client reads it; both close
    assert _sends(draft.text) == [("server", "accept\n"), ("client", "send hello\n"), ("server", "recv\n"),
                                  ("server", "send banner\n"), ("client", "recv\n"), ("client", "close\n"),
                                  ("server", "close\n")]
    assert not any("the server sent" in u for u in draft.not_inferred)


def _reset_by_server(data: bytes) -> list[ScapyPacket]:
    """A handshake, the client's ``data`` (if any), then the server's RST+ACK."""
    pk = _conversation(data or b"x")[:3]
    n = 0
    if data:
        n = len(data)
        pk += [_seg(10.1, C, S, 40000, 9000, "PA", 1001, 5001, data), _seg(10.1001, S, C, 9000, 40000, "A", 5001, 1001 + n)]
    return pk + [_seg(10.6, S, C, 9000, 40000, "RA", 5001, 1001 + n)]


@pytest.mark.parametrize("data, close", [(b"request\n", "pending\nclose\n"), (b"", "linger 0\nclose\n")])
def test_a_server_reset_is_a_close_with_the_data_unread_or_with_so_linger_0(
        tmp_path: Path, data: bytes, close: str) -> None:
    path = tmp_path / "rst.pcap"
    wrpcap(str(path), _reset_by_server(data))
    draft = draft_lab(read_capture_file(path), [1], "rst.pcap")
    assert _sends(draft.text)[-1] == ("server", close)
    assert ("server", "recv\n") not in _sends(draft.text)
    rules = {e["name"]: e["packet"] for e in _lab(draft.text)["expect"]}
    assert rules["c1-reset"] == {"from": "server", "to": "client", "port": 9000, "flags": "R.", "after": "c1-syn"}
    assert "look alike on the wire" in draft.text


def test_a_server_that_closes_first_closes_before_its_client(tmp_path: Path) -> None:
    path = tmp_path / "first.pcap"
    ci, si = 1001, 5001
    pk = _conversation(b"req\n")[:5] + [
        _seg(13.5, S, C, 9000, 40000, "FA", si, ci + 4), _seg(13.5001, C, S, 40000, 9000, "A", ci + 4, si + 1),
        _seg(13.6, C, S, 40000, 9000, "FA", ci + 4, si + 1), _seg(13.6001, S, C, 9000, 40000, "A", si + 1, ci + 5)]
    wrpcap(str(path), pk)
    draft = draft_lab(read_capture_file(path), [1], "first.pcap")
    assert _sends(draft.text)[-2:] == [("server", "close\n"), ("client", "close\n")]
    assert ("server", "recv\n") in _sends(draft.text)  # read first: a close with the request unread would reset
    waits = [s["wait"] for s in _lab(draft.text)["steps"] if "wait" in s]
    assert waits[-2:] == [{"fin_from": "server"}, {"fin_from": "client"}]
    assert not any("closes first" in u for u in draft.not_inferred)


def test_pcapng_interface_names_name_the_hosts_and_each_connection_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "all.pcapng"
    first = _conversation(b"one\r\n", server_closes=False)
    second = [_seg(p.time + 1, p[IP].src.replace(C, "10.1.0.30"), p[IP].dst.replace(C, "10.1.0.30"),
                   p[TCP].sport, p[TCP].dport, str(p[TCP].flags), p[TCP].seq, p[TCP].ack) for p in first[:3]]
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        ifs = {C: w.add_interface("alpha"), S: w.add_interface("srv"), "10.1.0.30": w.add_interface("beta")}
        for p in sorted(first + second, key=lambda p: float(p.time)):
            raw = bytes(p)
            w.add_packet(ifs[p[IP].src], float(p.time), raw, len(raw))
    capture = read_capture_file(path)
    assert [line.split(",")[0] for line in list_connections(capture)] == [
        "1: 10.1.0.20:40000 -> 10.1.0.10:9000", "2: 10.1.0.30:40000 -> 10.1.0.10:9000"]
    lab = _lab(draft_lab(capture, [1, 2], "all.pcapng").text)
    assert list(lab["hosts"]) == ["srv", "alpha", "beta", "holder"]
    assert "c2-syn" in [e["name"] for e in lab["expect"]]


def test_lab_new_refuses_a_file_that_is_no_capture_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    proc = lab_cmd("new", "--from-pcap", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a pcap" in proc.stderr
    assert list(tmp_path.iterdir()) == [bad]


def test_lab_new_lists_several_connections_then_writes_the_chosen_one(tmp_path: Path) -> None:
    path = tmp_path / "two.pcap"
    wrpcap(str(path), _conversation(b"a\r\n") + [
        _seg(p.time + 20, p[IP].src, p[IP].dst, 40001 if p[TCP].sport == 40000 else 9000,
             9000 if p[TCP].dport == 9000 else 40001, str(p[TCP].flags), p[TCP].seq, p[TCP].ack, bytes(p[TCP].payload))
        for p in _conversation(b"b\r\n")])
    proc = lab_cmd("new", "--from-pcap", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "2: 10.1.0.20:40001 -> 10.1.0.10:9000" in proc.stdout
    proc = lab_cmd("new", "--from-pcap", str(path), "--connection", "2", "--out", "d.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert lab_cmd("validate", str(tmp_path / "d.yaml"), cwd=tmp_path).returncode == 0
    assert lab_cmd("new", "--from-pcap", str(path), "--connection", "3", cwd=tmp_path).returncode == 2


def test_no_tcp_in_the_capture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    wrpcap(str(path), [Ether() / IP(src=C, dst=S) / b"x"])
    with pytest.raises(CaptureError):
        read_capture_file(path)


def test_a_refused_port_has_no_listener_and_unanswered_syns_meet_a_dropping_firewall(tmp_path: Path) -> None:
    path = tmp_path / "refused.pcap"
    wrpcap(str(path), [_seg(1.0, C, S, 40000, 8001, "S", 100),
                       _seg(1.0002, S, C, 8001, 40000, "RA", 0, 101),
                       *(_seg(2.0 + i, C, S, 40001, 8000, "S", 500) for i in (0, 1, 3, 7))])
    draft = draft_lab(read_capture_file(path), [1, 2], "refused.pcap")
    lab = _lab(draft.text)
    # only the answered port's server listens (the refused one has nothing)
    assert lab["hosts"]["server"]["program"]["run"] == ["/opt/lab/server", "8000", "5"]
    steps = lab["steps"]
    assert [next(k for k in ("start", "wait", "firewall") if k in s) for s in steps] == [
        "start", "wait", "firewall", "start", "wait"]
    assert "ready" not in steps[0] and steps[1]["wait"] == {"exit": "telnet1"}
    assert steps[2] == {"host": "server", "firewall": "drop", "from": "client", "port": 8000, "as": "drop2",
                        "title": "server drops client's packets to port 8000"}
    assert "tcp_syn_retries" in draft.text and steps[4]["timeout"] == "150s"
    rules = {e["name"]: e["packet"] for e in lab["expect"]}
    assert rules["c1-refused"]["flags"] == "R." and rules["c1-refused"]["delay"] == "0s"
    assert rules["c1-syn-once"]["count"] == 1
    assert rules["c2-syn-retransmits"]["intervals"] == "syn-backoff"
    assert rules["c2-nothing-back"] == {"from": "server", "to": "client", "port": 8000, "count": 0}


def test_more_addresses_than_a_lab_holds_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    wrpcap(str(path), [_seg(1.0 + i, f"10.1.1.{i + 2}", S, 40000, 9000, "S", 100) for i in range(16)])
    proc = lab_cmd("new", "--from-pcap", str(path), "--connection", "all", cwd=tmp_path)
    assert proc.returncode == 2 and "at most 16 hosts" in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert list(tmp_path.iterdir()) == [path]


def test_many_connections_from_few_ports_say_the_port_range_cannot_be_seen(tmp_path: Path) -> None:
    """Four short connections from four ports in a row, each a line with a bare LF: telnet types CR LF, so
    the FIN's expected seq is one more than the capture's; the narrow port range is a comment, not a guess."""
    path = tmp_path / "ports.pcap"
    pk: list[ScapyPacket] = []
    for i, port in enumerate([40000, 40001, 40002, 40003]):
        for p in _conversation(b"request\n", cport=port):
            p.time += i * 10
            pk.append(p)
    wrpcap(str(path), pk)
    draft = draft_lab(read_capture_file(path), [1, 2, 3, 4], "ports.pcap")
    (note,) = [u for u in draft.not_inferred if "port range" in u]
    assert "4 connections came from ports 40000 to 40003:" in note and "EADDRNOTAVAIL" in note
    assert 'ip_local_port_range=\\"40000 40003\\"' not in note and 'ip_local_port_range="40000 40003"' in note
    fins = [e["packet"] for e in _lab(draft.text)["expect"] if e["name"] in {f"c{n}-fin" for n in range(1, 5)}]
    assert [f["seq"] for f in fins] == [10] * 4  # 1 + 8 bytes + the CR telnet adds
    assert not draft.programs


def test_a_few_connections_from_far_apart_ports_say_nothing_of_the_range(tmp_path: Path) -> None:
    path = tmp_path / "apart.pcap"
    pk = [p for i, port in enumerate([40000, 45000, 52000]) for p in _conversation(b"a\r\n", cport=port)]
    for i, p in enumerate(pk):
        p.time += (i // 9) * 10
    wrpcap(str(path), pk)
    assert not [u for u in draft_lab(read_capture_file(path), [1, 2, 3], "apart.pcap").not_inferred
                if "port range" in u]


def test_a_bare_rst_answering_data_is_a_server_that_forgot_the_connection(tmp_path: Path) -> None:
    """The server's RST without ACK answers the client's second line: its kernel had no socket for the connection.
    The draft makes the server forget it (SO_LINGER 0 close) behind a firewall that drops the reset, before the
    client writes; an RST+ACK after data stays an abortive close."""
    path = tmp_path / "forgot.pcap"
    pk = _conversation(b"request\n")[:5] + [_seg(14.0, C, S, 40000, 9000, "PA", 1009, 5001, b"again\n"),
                                            _seg(14.0001, S, C, 9000, 40000, "R", 5001)]
    wrpcap(str(path), pk)
    draft = draft_lab(read_capture_file(path), [1], "forgot.pcap")
    steps = [s for s in _lab(draft.text)["steps"] if "host" in s]
    assert [(s["host"], s.get("firewall") or s.get("lift") or s.get("text")) for s in steps[-4:]] == [
        ("server", "drop"), ("server", "linger 0\nclose\n"), ("server", "silence1"), ("client", "send again\n")]
    assert ("server", "pending\nclose\n") not in _sends(draft.text)


def test_lab_new_puts_the_programs_beside_a_draft_that_builds_them_and_keeps_the_users_files(tmp_path: Path) -> None:
    wrpcap(str(tmp_path / "rst.pcap"), _reset_by_server(b"request\n"))
    (tmp_path / "programs").mkdir()
    (tmp_path / "programs" / "Dockerfile").write_text("FROM mine\n")
    proc = lab_cmd("new", "--from-pcap", str(tmp_path / "rst.pcap"), "--out", str(tmp_path / "d.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "programs" / "tcpctl.c").read_bytes() == (
        Path(__file__).resolve().parents[2] / "labs" / "programs" / "tcpctl.c").read_bytes()
    assert (tmp_path / "programs" / "Dockerfile").read_text() == "FROM mine\n"
    wrpcap(str(tmp_path / "talk.pcap"), _conversation(b"hi\r\n"))
    other = tmp_path / "other"
    other.mkdir()
    assert lab_cmd("new", "--from-pcap", str(tmp_path / "talk.pcap"), "--out", str(other / "t.yaml"),
                   cwd=other).returncode == 0
    assert not (other / "programs").exists()  # telnet and tcplab/server need nothing beside the draft


def test_keepalive_probes_turn_keepalive_on_with_the_timers_their_gaps_show(tmp_path: Path) -> None:
    path = tmp_path / "ka.pcap"
    pk = _conversation(b"hello\n")[:5]  # the data at 13.0 is acked at 13.0001; the client's next seq is 1007
    pk += [_seg(18.0001 + i * 2, C, S, 40000, 9000, "A", 1006, 5001) for i in range(4)]
    pk.append(_seg(26.0001, C, S, 40000, 9000, "RA", 1007, 5001))
    wrpcap(str(path), pk)
    draft = draft_lab(read_capture_file(path), [1], "ka.pcap")
    lab = _lab(draft.text)
    assert lab["hosts"]["client"]["sysctls"] == {"net.ipv4.tcp_keepalive_time": 5, "net.ipv4.tcp_keepalive_intvl": 2,
                                                 "net.ipv4.tcp_keepalive_probes": 4}
    assert "# connection 1: 4 keepalive probes, the first 5.0 s after the last packet, 2.0, 2.0, 2.0 s apart, then " \
           "an RST" in draft.text
    steps = lab["steps"]
    assert [s["text"] for s in steps if s.get("send") == "app1"] == ["keepalive\nwrite hello\\n\n"]
    # the probes went unanswered: the server falls silent after the last exchange, the client's kernel resets
    assert [s for s in steps if "firewall" in s] == [
        {"host": "server", "firewall": "drop", "from": "client", "as": "vanish1",
         "title": "server falls silent: its firewall drops all client sends"}]
    assert steps[-1]["wait"] == {"rst_from": "client"}
    assert not [u for u in draft.not_inferred if "RST" in u]  # the kernel's reset is played, not a guess
    path2 = tmp_path / "plain.pcap"
    wrpcap(str(path2), _conversation(b"hello\n"))  # its ACKs are not one byte behind: no probe
    assert "keepalive" not in draft_lab(read_capture_file(path2), [1], "plain.pcap").text
