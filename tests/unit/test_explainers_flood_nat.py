"""The explainers of the syn-flood and idle-timeout stories on synthetic runs: a SYN flood met with cookies or with
drops (and a flood's SYNs are not connect() failures), and an RST a NAT box made in the server's name; each is
silent on a run without its phenomenon."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tcplab.analysis.timeline import SocketId

from .test_explainers import explanation, quiet_run, write_run
from .test_report_synth import T0, A, P, R, S, Wire, ns_line, tables, tcp_frame

FLOOD_IPS = {"server": "10.93.9.2", "attacker": "10.93.9.3", "client": "10.93.9.4"}
SV, AT, CL = FLOOD_IPS["server"], FLOOD_IPS["attacker"], FLOOD_IPS["client"]
OPT_FLOOD = bytes.fromhex("020405b4" "01030307" "01010402")  # mss 1460, nop, wscale 7, nop, nop, sackOK
OPT_FULL = bytes.fromhex("020405b4" "01010402" "01030307")  # a SYN-ACK offering wscale and SACK
OPT_MSS = bytes.fromhex("020405b4")  # a cookie's, to a SYN without timestamps
OPT_TS = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01030307")


def counters(values: dict[str, int]) -> dict[str, Any]:
    return {"argv": ["nstat", "-az"], "ok": True, "values": values}


def flood_run(root: Path, cookies: bool) -> Path:
    """60 SYNs from the attacker, the first 4 answered in full; then cookies (MSS only) or nothing; then the
    client connects: through a cookie, or its 2 SYNs unanswered."""
    w = Wire(FLOOD_IPS)
    for i in range(60):
        t = T0 + i * 0.001
        w.send(t, "attacker", "server", 20000 + i, 8000, 1000 + i, 0, S, 64240, OPT_FLOOD)
        if i < 4 or cookies:
            w.send(t + 0.0001, "server", "attacker", 8000, 20000 + i, 5000 + i, 1001 + i, S | A, 65160,
                   OPT_FULL if i < 4 else OPT_MSS)
    t = T0 + 1.0
    w.send(t, "client", "server", 41000, 8000, 1, 0, S, 64240, OPT_TS)
    if cookies:
        w.send(t + 0.0001, "server", "client", 8000, 41000, 7, 2, S | A, 65160, OPT_TS)
        w.send(t + 0.0002, "client", "server", 41000, 8000, 2, 8, A, 502)
    else:
        w.send(t + 1.0, "client", "server", 41000, 8000, 1, 0, S, 64240, OPT_TS)
    queued = [ns_line(f"{SV}:8000", f"{AT}:{20000 + i}", "SYN_RECV") for i in range(4)]
    snaps: dict[str, Any] = {
        "before": {"time": T0 - 0.5, "hosts": tables({"server": ([], [])})},
        "flooded": {"time": T0 + 0.5, "hosts": tables({"server": (queued, [])})},
        "after": {"time": T0 + 3.0, "hosts": tables({"server": (queued, [])})}}
    sent = {"before": 0, "flooded": 56 if cookies else 0, "after": 56 if cookies else 0}
    dropped = {"before": 0, "flooded": 0 if cookies else 56, "after": 0 if cookies else 58}
    for name, snap in snaps.items():
        snap["hosts"]["server"]["counters"] = counters({
            "TcpExtSyncookiesSent": sent[name], "TcpExtTCPReqQFullDrop": dropped[name],
            "TcpExtSyncookiesRecv": int(cookies and name == "after")})
    lab = {"hosts": {h: {"image": "tcplab/client"} for h in FLOOD_IPS}}
    sysctls = {"server": {"net.ipv4.tcp_syncookies": "1" if cookies else "0", "net.core.somaxconn": "3"}}
    return write_run(root, w, [], snaps, T0 + 3.1, lab_extra=lab, info_extra={"hosts": FLOOD_IPS,
                                                                            "sysctls": sysctls})


def test_a_flood_met_with_cookies_is_one_finding_with_its_numbers(tmp_path: Path) -> None:
    ex = explanation(flood_run(tmp_path, cookies=True))
    (f,) = ex.of("syn_flood")
    assert f.socket == SocketId("server", SV, 8000, AT, 0) and f.side == "server"
    assert f.title.endswith("SYN flood, 60 SYNs, 56 answered with SYN cookies")
    facts = " ".join(x.text for x in f.facts)
    assert "attacker sent 60 SYNs to server:8000 in 59.000 ms" in facts
    assert "server answered 4 of them in full while its SYN queue had room" in facts
    assert "56 SYN-ACKs carried mss alone" in facts
    assert "Snapshot flooded shows 4 SYN_RECV sockets of server:8000 from attacker" in facts
    assert "server's TcpExtSyncookiesRecv rose by 1" in facts
    assert "client connected from port 41000 meanwhile and its handshake completed" in facts
    assert "through a cookie" in facts and "tcp_syncookies is 1" in facts
    assert "nothing is stored" in f.conclusion and "tcp_syncookies=1" in f.fix
    assert ex.of("connect_failed") == []  # the flood's SYNs are no failed connect()s


def test_a_flood_without_cookies_drops_the_clients_syns_too(tmp_path: Path) -> None:
    ex = explanation(flood_run(tmp_path, cookies=False))
    (f,) = ex.of("syn_flood")
    assert f.title.endswith("SYN flood, 60 SYNs, 56 dropped")
    facts = " ".join(x.text for x in f.facts)
    assert "56 SYNs were never answered: server dropped them." in facts
    assert "server's TcpExtTCPReqQFullDrop rose by 58" in facts
    assert "client connected from port 41000 meanwhile: 2 SYNs, none answered." in facts
    assert "without SYN cookies (tcp_syncookies=0)" in f.conclusion
    (failed,) = ex.of("connect_failed")  # the client's own connect() is still explained, with the flood named
    assert failed.socket.host == "client"
    assert "its listener's SYN queue was full (a SYN flood)" in failed.conclusion
    assert any("under a SYN flood from attacker" in x.text for x in failed.facts)


NAT_IPS = {"server": "10.93.8.10", "nat": "10.93.7.2", "client": "10.93.7.10"}
NAT_OUT = "10.93.8.2"


def nat_run(root: Path, forged: bool = True) -> Path:
    """client:40001 -> server:8000 through the NAT box: a line and its echo, 4.5 s of silence, a line the box
    answers with an RST in the server's name (not in the server's capture, TTL 64 where the server's arrive with
    63); the server's socket still ESTABLISHED afterwards. ``forged=False``: the server's own RST instead."""
    per: dict[str, list[tuple[float, bytes]]] = {"client": [], "server": [], "nat": []}
    c, s = NAT_IPS["client"], NAT_IPS["server"]

    def hop(t: float, out: bool, seq: int, ack: int, flags: int, payload: bytes = b"", ip_id: int = 1) -> None:
        if out:  # the client's, then the box's masqueraded copy at the server
            per["client"].append((t, tcp_frame(c, s, 40001, 8000, seq, ack, flags, 502, b"", payload, 64, ip_id)))
            per["server"].append((t + 0.0001, tcp_frame(NAT_OUT, s, 40001, 8000, seq, ack, flags, 502, b"", payload,
                                                         63, ip_id)))
        else:  # the server's, then the box's copy at the client
            per["server"].append((t, tcp_frame(s, NAT_OUT, 8000, 40001, seq, ack, flags, 509, b"", payload, 64,
                                               ip_id)))
            per["client"].append((t + 0.0001, tcp_frame(s, c, 8000, 40001, seq, ack, flags, 509, b"", payload, 63,
                                                         ip_id)))
    t = T0
    hop(t, True, 100, 0, S, ip_id=1)
    hop(t + 0.001, False, 900, 101, S | A, ip_id=2)
    hop(t + 0.002, True, 101, 901, A, ip_id=3)
    hop(t + 0.1, True, 101, 901, P | A, b"hello\n", ip_id=4)
    hop(t + 0.101, False, 901, 107, P | A, b"hello\n", ip_id=5)
    hop(t + 0.102, True, 107, 907, A, ip_id=6)
    late = t + 4.6
    per["client"].append((late, tcp_frame(c, s, 40001, 8000, 107, 907, P | A, 502, b"", b"again\n", 64, 7)))
    rst = tcp_frame(s, c, 8000, 40001, 907, 0, R, 0, b"", b"", 64, 0)
    per["client"].append((late + 0.0002, rst))
    if forged:
        per["nat"].append((late + 0.0001, rst))
    else:  # the server's own: it sent it (it is in its capture), the box forwarded it
        per["server"].append((late + 0.0001, tcp_frame(s, NAT_OUT, 8000, 40001, 907, 0, R, 0, b"", b"", 64, 0)))
    rd = root / "run"
    w = Wire(NAT_IPS, per)
    survivor = [ns_line(f"{s}:8000", f"{NAT_OUT}:40001", "ESTABLISHED", "7/perl")]
    snaps = {"after": {"time": late + 1.0, "hosts": tables({"server": (survivor, []), "client": ([], [])})}}
    lab = {"networks": {"inside": {"subnet": "10.93.7.0/24"}, "outside": {"subnet": "10.93.8.0/24"}},
           "hosts": {"server": {"image": "tcplab/server", "networks": {"outside": {"ip": s}}},
                     "nat": {"image": "tcplab/client", "router": True, "nat": {"out": "outside", "idle_timeout": 3},
                             "networks": {"inside": {"ip": NAT_IPS["nat"]}, "outside": {"ip": NAT_OUT}}},
                     "client": {"image": "tcplab/client", "networks": {"inside": {"ip": c}},
                                "routes": [{"to": "10.93.8.0/24", "via": "nat"}]}}}
    info = {"hosts": NAT_IPS, "addresses": {"server": {"outside": s}, "client": {"inside": c},
                                            "nat": {"inside": NAT_IPS["nat"], "outside": NAT_OUT}},
            "sysctls": {"nat": {"net.netfilter.nf_conntrack_tcp_timeout_established": "3"}}}
    assert rd == write_run(root, w, [], snaps, late + 1.1, lab_extra=lab, info_extra=info)
    return rd


def test_an_rst_the_nat_box_made_in_the_servers_name_is_explained_with_its_timeout(tmp_path: Path) -> None:
    ex = explanation(nat_run(tmp_path))
    (f,) = ex.of("middlebox_reset")
    assert f.socket == SocketId("client", NAT_IPS["client"], 40001, NAT_IPS["server"], 8000)
    assert f.ended_by == "RST from nat" and "RST made by nat in server's name" in f.title
    facts = " ".join(x.text for x in f.facts)
    assert "but server's own capture holds no such packet: it was made on the way" in facts
    assert "sent after 4.498 s in which nothing crossed the wire" in facts
    assert "It arrived with TTL 64; server's own packets arrived at client with TTL 63" in facts
    assert "nat is a NAT box that forgets a connection idle for 3 s" in facts and "longer." in facts
    assert "server's socket was still ESTABLISHED at snapshot after" in facts
    assert "TCP keepalive with an idle time below its timeout" in f.fix
    assert ex.of("half_open") == []  # the ends see different four-tuples: not the half_open explainer's


def test_the_servers_own_rst_through_the_box_is_not_a_middlebox_reset(tmp_path: Path) -> None:
    assert explanation(nat_run(tmp_path, forged=False)).of("middlebox_reset") == []


def test_a_quiet_run_has_no_flood_and_no_middlebox(tmp_path: Path) -> None:
    ex = explanation(quiet_run(tmp_path))
    assert ex.of("syn_flood") == [] and ex.of("middlebox_reset") == []
