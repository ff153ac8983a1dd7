"""A synthetic closewait run directory (no containers) for the report's unit tests, and its own checks.

``write_closewait_run`` writes what a real ``lab up``/``lab down`` of the
closewait story writes: run.json, lab.yaml, steps, per-host pcaps (each
packet in its sender's and its receiver's capture, as on the bridge),
kernel transitions, netstat/ss snapshots and the server's log. ``windows``
chooses the ending: an RST 120.002 s after the FIN (the Windows peer), or
none (the Linux peer: the CLOSE_WAIT stays).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcplab.analysis.packets import load_traffic
from tcplab.observe.sockets import parse_netstat, parse_ss
from tcplab.rundir import safe_name

T0 = 1_795_500_000.0
HOSTS = {"server": "10.77.0.2", "linux": "10.77.0.3", "win": "10.77.0.4"}
MAC = {h: bytes([2, 0x42, 10, 77, 0, i + 2]) for i, h in enumerate(HOSTS)}
F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10

OPT_SYN_LINUX = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01030307")  # mss,sackOK,TS,nop,wscale 7
OPT_SYNACK_LINUX_TS = bytes.fromhex("020405b4" "0402" "080a0000000200000001" "0103030a")
OPT_SYN_WIN7 = bytes.fromhex("020405b4" "01" "030308" "0101" "0402")
OPT_SYNACK_NOTS = bytes.fromhex("020405b4" "0101" "0402" "01" "03030a")


def tcp_frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
              options: bytes = b"", payload: bytes = b"", ttl: int = 64, ip_id: int = 0) -> bytes:
    opts = options + b"\0" * (-len(options) % 4)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 + len(opts) // 4) << 4,
                      flags, win, 0, 0) + opts + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000, ttl, 6, 0,
                     bytes(int(x) for x in src.split(".")), bytes(int(x) for x in dst.split(".")))
    return b"\x02\x42\x0a\x4d\x00\x01" * 2 + b"\x08\x00" + ip + tcp


def pcap_bytes(records: list[tuple[float, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for ts, data in records:
        sec = int(ts)
        out.append(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(data), len(data)) + data)
    return b"".join(out)


@dataclass
class Wire:
    """Packets as they cross the bridge: each lands in its sender's and its receiver's capture."""
    ips: dict[str, str]
    per_host: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)

    def send(self, ts: float, src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
             options: bytes = b"", payload: bytes = b"", ttl: int = 64) -> None:
        frame = tcp_frame(self.ips[src], self.ips[dst], sport, dport, seq, ack, flags, win, options, payload, ttl)
        self.per_host.setdefault(src, []).append((ts, frame))
        self.per_host.setdefault(dst, []).append((ts + 0.000004, frame))

    def write(self, capture_dir: Path) -> None:
        capture_dir.mkdir(parents=True, exist_ok=True)
        for h in self.ips:
            (capture_dir / f"{safe_name(h)}.pcap").write_bytes(pcap_bytes(sorted(self.per_host.get(h, []))))


NETSTAT_HEAD = ("Active Internet connections (servers and established)\n"
                "Proto Recv-Q Send-Q Local Address           Foreign Address         State       "
                "PID/Program name    \n")
SS_HEAD = "State      Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n"


def ns_line(local: str, peer: str, state: str, owner: str = "-", recv_q: int = 0) -> str:
    return f"tcp   {recv_q:>6} {0:>6} {local:<23} {peer:<23} {state:<11} {owner:<20}\n"


def ss_line(state: str, local: str, peer: str, extra: str = "") -> str:
    return f"{state:<10} 0      0      {local:>18} {peer:>18} {extra}\n"


def tables(rows: dict[str, tuple[list[str], list[str]]]) -> dict[str, Any]:
    out = {}
    for host, (ns, ss) in rows.items():
        ns_raw, ss_raw = NETSTAT_HEAD + "".join(ns), SS_HEAD + "".join(ss)
        out[host] = {"netstat": {"argv": ["netstat", "-tanp"], "raw": ns_raw,
                                 "records": [r.to_dict() for r in parse_netstat(ns_raw)]},
                     "ss": {"argv": ["ss", "-tanpoei"], "raw": ss_raw,
                            "records": [r.to_dict() for r in parse_ss(ss_raw)]}}
    return out


def write_closewait_run(root: Path, windows: bool = True, payload: bytes = b"hello\r\n", timer: float = 120.002,
                        result: dict[str, Any] | None = None, hosts: dict[str, str] | None = None,
                        reference: str | None = "closewait-field-report", fin_ack: float = 0.0003,
                        run_info: dict[str, Any] | None = None, ack_win: int = 256) -> Path:
    """A run directory of the closewait story under ``root``; returns its path.

    Timeline (relative to T0): linux connects at 0.0 and sends ``payload`` at 0.1; win connects at 0.3,
    sends its FIN at 0.8 (server acks at + ``fin_ack``); with ``windows`` win resets at FIN + ``timer``.
    The lab names ``reference`` (as labs/closewait.yaml does); ``run_info`` is merged into run.json; win's
    handshake ACK advertises ``ack_win``.
    """
    ips = hosts or HOSTS
    names = list(ips)
    srv, lin, win = names[0], names[1], names[2]
    rd = root / "closewait-20261124T101500Z"
    for d in ("capture", "sockets", "logs"):
        (rd / d).mkdir(parents=True, exist_ok=True)
    w = Wire(ips)
    t = T0
    # linux <-> server: handshake, one message, acked
    w.send(t, lin, srv, 40000, 8000, 1000, 0, S, 64240, OPT_SYN_LINUX)
    w.send(t + 0.00005, srv, lin, 8000, 40000, 5000, 1001, S | A, 65160, OPT_SYNACK_LINUX_TS)
    w.send(t + 0.0001, lin, srv, 40000, 8000, 1001, 5001, A, 63)
    w.send(t + 0.1, lin, srv, 40000, 8000, 1001, 5001, P | A, 63, payload=payload)
    w.send(t + 0.10005, srv, lin, 8000, 40000, 5001, 1001 + len(payload), A, 64)
    # win <-> server: handshake (Windows 7 SYN), FIN, kernel's ack
    w.send(t + 0.3, win, srv, 52552, 8000, 7000, 0, S, 8192, OPT_SYN_WIN7, ttl=128)
    w.send(t + 0.30005, srv, win, 8000, 52552, 9000, 7001, S | A, 64240, OPT_SYNACK_NOTS)
    w.send(t + 0.3001, win, srv, 52552, 8000, 7001, 9001, A, ack_win, ttl=128)
    fin = t + 0.8
    w.send(fin, win, srv, 52552, 8000, 7001, 9001, F | A, 256, ttl=128)
    w.send(fin + fin_ack, srv, win, 8000, 52552, 9001, 7002, A, 63)
    rst = fin + timer
    if windows:
        w.send(rst, win, srv, 52552, 8000, 7002, 9001, R | A, 0, ttl=128)
    w.write(rd / "capture")

    S_, L, W = ips[srv], ips[lin], ips[win]
    trans = [
        {"ts": t - 0.0001, "event": "inet_sock_set_state", "saddr": L, "sport": 0, "daddr": S_, "dport": 8000,
         "old": "CLOSE", "new": "SYN_SENT"},
        {"ts": t + 0.00006, "event": "inet_sock_set_state", "saddr": L, "sport": 40000, "daddr": S_, "dport": 8000,
         "old": "SYN_SENT", "new": "ESTABLISHED"},
        {"ts": t + 0.00001, "event": "inet_sock_set_state", "saddr": S_, "sport": 8000, "daddr": L, "dport": 40000,
         "old": "LISTEN", "new": "SYN_RECV"},
        {"ts": t + 0.00011, "event": "inet_sock_set_state", "saddr": S_, "sport": 8000, "daddr": L, "dport": 40000,
         "old": "SYN_RECV", "new": "ESTABLISHED"},
        {"ts": t + 0.2999, "event": "inet_sock_set_state", "saddr": W, "sport": 0, "daddr": S_, "dport": 8000,
         "old": "CLOSE", "new": "SYN_SENT"},
        {"ts": t + 0.30006, "event": "inet_sock_set_state", "saddr": W, "sport": 52552, "daddr": S_, "dport": 8000,
         "old": "SYN_SENT", "new": "ESTABLISHED"},
        {"ts": t + 0.30001, "event": "inet_sock_set_state", "saddr": S_, "sport": 8000, "daddr": W, "dport": 52552,
         "old": "LISTEN", "new": "SYN_RECV"},
        {"ts": t + 0.30011, "event": "inet_sock_set_state", "saddr": S_, "sport": 8000, "daddr": W, "dport": 52552,
         "old": "SYN_RECV", "new": "ESTABLISHED"},
        {"ts": fin - 0.00001, "event": "inet_sock_set_state", "saddr": W, "sport": 52552, "daddr": S_, "dport": 8000,
         "old": "ESTABLISHED", "new": "FIN_WAIT1"},
        {"ts": fin + 0.00001, "event": "inet_sock_set_state", "saddr": S_, "sport": 8000, "daddr": W, "dport": 52552,
         "old": "ESTABLISHED", "new": "CLOSE_WAIT"},
        {"ts": fin + 0.00031, "event": "inet_sock_set_state", "saddr": W, "sport": 52552, "daddr": S_, "dport": 8000,
         "old": "FIN_WAIT1", "new": "FIN_WAIT2"},
    ]
    if windows:  # the peer sidecar resets: win's socket is killed, the server's reset by the RST
        trans += [
            {"ts": rst - 0.00002, "event": "inet_sock_set_state", "saddr": W, "sport": 52552, "daddr": S_,
             "dport": 8000, "old": "FIN_WAIT2", "new": "CLOSE"},
            {"ts": rst + 0.00001, "event": "tcp_receive_reset", "saddr": S_, "sport": 8000, "daddr": W, "dport": 52552,
             "state": "CLOSE_WAIT"},
            {"ts": rst + 0.00001, "event": "inet_sock_set_state", "saddr": S_, "sport": 8000, "daddr": W,
             "dport": 52552, "old": "CLOSE_WAIT", "new": "CLOSE"},
        ]
    else:  # Linux: the orphaned FIN_WAIT2 becomes a timewait socket at once
        trans.append({"ts": fin + 0.00032, "event": "inet_sock_set_state", "saddr": W, "sport": 52552, "daddr": S_,
                      "dport": 8000, "old": "FIN_WAIT2", "new": "CLOSE"})
    with open(rd / "sockets" / "transitions.jsonl", "w") as f:
        for rec in sorted(trans, key=lambda r: r["ts"]):
            f.write(json.dumps(rec) + "\n")

    listen = ns_line("0.0.0.0:8000", "0.0.0.0:*", "LISTEN", "7/server")
    listen_q = ns_line("0.0.0.0:8000", "0.0.0.0:*", "LISTEN", "7/server", recv_q=1)
    est_lin = ns_line(f"{S_}:8000", f"{L}:40000", "ESTABLISHED", "7/server")
    def srv_win(st: str) -> str:
        return ns_line(f"{S_}:8000", f"{W}:52552", st, "-", recv_q=1 if st == "CLOSE_WAIT" else 0)

    def ss_srv(st: str) -> str:
        # as the kernel shows it: no ato before the FIN (no data received), ato:40 once the delayed ACK ran
        info = "\n\t sack bbr wscale:8,10 rto:204" + (" ato:40" if st == "CLOSE-WAIT" else "") + " mss:1460"
        return ss_line(st, f"{S_}:8000", f"{W}:52552", "ino:0 sk:1 <->" + info)

    # the Windows peer keeps the orphan longer than its own timer (a long tcp_fin_timeout); Linux: 60 s
    fw2_timer = "timewait,2min10sec,0" if windows else "timewait,58sec,0"
    ss_fw2 = ss_line("FIN-WAIT-2", f"{W}:52552", f"{S_}:8000", f"timer:({fw2_timer}) ino:0 sk:2")
    snaps: dict[str, Any] = {}
    snaps["established"] = {"time": t + 0.5, "step": 2, "hosts": tables({
        srv: ([listen_q, est_lin, srv_win("ESTABLISHED")], [ss_srv("ESTAB")]),
        win: ([ns_line(f"{W}:52552", f"{S_}:8000", "ESTABLISHED", "9/telnet")], [])})}
    snaps["close_wait"] = {"time": fin + 0.5, "step": 5, "hosts": tables({
        srv: ([listen_q, est_lin, srv_win("CLOSE_WAIT")], [ss_srv("CLOSE-WAIT")]),
        win: ([ns_line(f"{W}:52552", f"{S_}:8000", "FIN_WAIT2")], [ss_fw2])})}
    last = "after_rst" if windows else "end"
    after = (rst + 0.2) if windows else (fin + 5.0)
    srv_rows = [listen, est_lin] if windows else [listen_q, est_lin, srv_win("CLOSE_WAIT")]
    snaps[last] = {"time": after, "step": 7, "hosts": tables({
        srv: (srv_rows, [] if windows else [ss_srv("CLOSE-WAIT")]),
        win: ([] if windows else [ns_line(f"{W}:52552", f"{S_}:8000", "FIN_WAIT2")], [] if windows else [ss_fw2])})}
    (rd / "sockets" / "snapshots.json").write_text(json.dumps(snaps))

    steps = [
        (0, "start-telnet1", "linux connects with telnet", t - 0.05, lin),
        (1, "send-telnet1-1", "linux types into telnet1", t + 0.05, lin),
        (2, "start-telnet2", "win connects with telnet", t + 0.25, win),
        (3, "established", "snapshot established", t + 0.5, None),
        (4, "stop-telnet2", "win closes telnet", t + 0.75, win),
        (5, "close_wait", "snapshot close_wait", fin + 0.5, None),
        (6, "wait-6", "wait for an RST from win" if windows else "wait 5 s", fin + 0.6, None),
        (7, last, f"snapshot {last}", after, None),
    ]
    with open(rd / "steps.jsonl", "w") as f:
        for i, name, title, start, host in steps:
            f.write(json.dumps({"index": i, "name": name, "kind": "x", "title": title, "host": host, "start": start,
                                "end": start + 0.01, "outcome": "ok", "detail": ""}) + "\n")
    (rd / "logs" / f"{safe_name(srv)}.log").write_text(
        "==> server.log <==\nserver listening on 0.0.0.0:8000 (backlog 5, one client at a time)\n"
        f"Accept client {L}:40000\nrecv from {L}:40000: {payload.decode('latin-1')}\n")
    peer = ({"os": "windows", "fin_wait2_timeout": f"{timer}s", "syn": "windows-7"} if windows
            else {"os": "linux", "tcp_fin_timeout": 3})
    lab = {"name": "closewait", "summary": "A single-threaded server leaves a CLOSE_WAIT.",
           "story": "A single-threaded TCP server on port 8000 accepts its first client and blocks in recv().",
           "network": {"subnet": "10.77.0.0/24"},
           "hosts": {srv: {"image": "tcplab/server"}, lin: {"image": "tcplab/client"},
                     win: {"image": "tcplab/client", "peer": peer}},
           "expect": [{"packet": {"from": win, "flags": "F."}}]}
    if reference:
        lab["reference"] = reference
    (rd / "lab.yaml").write_text(json.dumps(lab))  # JSON is YAML
    image = {"id": "sha256:" + "ab" * 32, "base": "tcplab/base", "created": "2026-11-24T08:00:00Z", "built_now": False}
    (rd / "images.json").write_text(json.dumps({"tcplab/server": image}))
    (rd / "run.json").write_text(json.dumps({
        "lab": "closewait", "run": rd.name, "hosts": ips, "state": "down", "started": t - 1.0, "ended": after + 1.0,
        "collected_at": after + 0.5, "tracer": "ok",
        "engine": {"docker": "20.10.24", "api": "1.41", "kernel": "6.1.0-test", "os": "linux"},
        "capabilities": {f"tcplab-closewait-{srv}": [], f"tcplab-closewait-{srv}-capture": ["NET_RAW"]},
        **(run_info or {})}))
    if result is not None:
        (rd / "result.json").write_text(json.dumps(result))
    return rd


# --- the helper's own checks: the synthetic run reads back as the story says --------------------

def test_synthetic_run_reads_back_as_two_connections_each_packet_once(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path)
    traffic = load_traffic(rd)
    assert len(traffic.packets) == 11  # 5 linux + 6 win, though every packet is in two captures
    assert [c.name for c in traffic.connections] == ["linux:40000 -> server:8000", "win:52552 -> server:8000"]
    fin = next(p for p in traffic.packets if p.flags == "F.")
    assert (fin.rel_seq, fin.rel_ack, fin.tcp.win) == (1, 1, 256)
    rst = next(p for p in traffic.packets if p.flags == "R.")
    assert rst.label() == "[R.] seq 2, ack 1, win 0"
    assert round(rst.ts - fin.ts, 3) == 120.002


def test_linux_variant_has_no_rst(tmp_path: Path) -> None:
    traffic = load_traffic(write_closewait_run(tmp_path, windows=False))
    assert not any("R" in p.flags for p in traffic.packets)
