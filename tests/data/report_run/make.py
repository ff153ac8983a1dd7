"""Writes this run directory: the closewait story (as tests/unit/test_expectations.py plays it) plus frames
that take every path of the capture readers, in three pcap formats. Its output is committed, with
``facts.json``: what the report showed of it when it was made (tests/unit/test_report_facts.py).

Captures: ``win.pcap`` little-endian microseconds, ending in a truncated record (a live capture);
``server.pcap`` big-endian nanoseconds; ``linux.pcap`` little-endian nanoseconds. Besides the two
connections' segments (options of every kind, SACK blocks, data, a keepalive probe, a close that hands
linux's socket to TIME_WAIT): ARP seen by two hosts, UDP, a VLAN-tagged segment from an address that is
no lab host, a segment with IP options, a later IP fragment, a frame of 40 bytes.

Run from the checkout root: python tests/data/report_run/make.py
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
IPS = {"server": "10.9.0.2", "linux": "10.9.0.3", "win": "10.9.0.4"}
T0 = 1_795_000_000.0
FIN_T = T0 + 3.0
WIN_ISN, SRV_ISN, LNX_ISN, SRV2_ISN = 1_000_000, 7_000_000, 4_000_000_000, 2_500_000_000
MAC = {h: bytes([2, 0x42, 10, 9, 0, i + 2]) for i, h in enumerate(IPS)}
F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10


def ip4(a: str) -> bytes:
    return bytes(map(int, a.split(".")))


def opts(*items: tuple[int, bytes]) -> bytes:
    out = b""
    for kind, body in items:
        out += bytes([kind]) if kind in (0, 1) else bytes([kind, 2 + len(body)]) + body
    return out + b"\0" * (-len(out) % 4)


MSS = (2, struct.pack("!H", 1460))
NOP = (1, b"")
SACKOK = (4, b"")


def ws(n: int) -> tuple[int, bytes]:
    return 3, bytes([n])


def ts(val: int, ecr: int) -> tuple[int, bytes]:
    return 8, struct.pack("!II", val, ecr)


def tcp_frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, win: int, ttl: int = 64,
              options: bytes = b"", payload: bytes = b"", ip_id: int = 0, ip_options: bytes = b"",
              vlan: int | None = None, frag: int = 0x4000, smac: bytes = b"", dmac: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 + len(options) // 4) << 4,
                      flags, win, 0xBEEF, 0) + options + payload
    ihl = 5 + len(ip_options) // 4
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(tcp), ip_id, frag, ttl, 6, 0, ip4(src), ip4(dst))
    eth = (dmac or b"\x02\x42\x0a\x09\x00\xfe") + (smac or b"\x02\x42\x0a\x09\x00\xfd")
    eth += (b"\x81\x00" + struct.pack("!H", vlan) if vlan is not None else b"") + b"\x08\x00"
    return eth + ip + ip_options + tcp


# (time, sender host or address, receiver host or address, frame); a lab host's frames are in its capture
Frame = tuple[float, str, str, bytes]


def seg(t: float, src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
        **kw: object) -> Frame:
    return t, src, dst, tcp_frame(IPS.get(src, src), IPS.get(dst, dst), sport, dport, seq, ack, flags, win,
                                  smac=MAC.get(src, b""), dmac=MAC.get(dst, b""), **kw)  # type: ignore[arg-type]


def story() -> list[Frame]:
    w, s = WIN_ISN, SRV_ISN
    win_syn = opts(MSS, NOP, ws(8), NOP, NOP, SACKOK)
    return [
        seg(T0 + 1, "win", "server", 49000, 8000, w, 0, S, 8192, ttl=128, options=win_syn, ip_id=0x100),
        seg(T0 + 1.0001, "server", "win", 8000, 49000, s, w + 1, S | A, 64240,
            options=opts(MSS, NOP, NOP, SACKOK, NOP, ws(7))),
        seg(T0 + 1.0002, "win", "server", 49000, 8000, w + 1, s + 1, A, 256, ttl=128, ip_id=0x101),
        seg(FIN_T, "win", "server", 49000, 8000, w + 1, s + 1, F | A, 256, ttl=128, ip_id=0x102),
        seg(FIN_T + 0.0003, "server", "win", 8000, 49000, s + 1, w + 2, A, 229, ip_id=0x7001),
        seg(FIN_T + 2.0, "win", "server", 49000, 8000, w + 2, s + 1, R | A, 0, ttl=128, ip_id=0x103),
    ]


def linux_conn() -> list[Frame]:
    c, s = LNX_ISN, SRV2_ISN  # the client's ISN wraps past 2**32 during the connection
    t = T0 + 0.5
    hello = b"hello\r\n"
    more = b"\x00\x01binary\xff" * 3
    return [
        seg(t, "linux", "server", 50000, 8000, c, 0, S, 64240,
            options=opts(MSS, SACKOK, ts(1000, 0), NOP, ws(7)), ip_id=0x2000),
        seg(t + 0.0001, "server", "linux", 8000, 50000, s, c + 1, S | A, 65160,
            options=opts(MSS, SACKOK, ts(2000, 1000), NOP, ws(7))),
        seg(t + 0.0002, "linux", "server", 50000, 8000, c + 1, s + 1, A, 502,
            options=opts(NOP, NOP, ts(1001, 2000)), ip_id=0x2001),
        seg(t + 0.01, "linux", "server", 50000, 8000, c + 1, s + 1, P | A, 502,
            options=opts(NOP, NOP, ts(1011, 2000)), payload=hello, ip_id=0x2002),
        # IP options (a record route of one empty slot): the reader's general path
        seg(t + 0.02, "linux", "server", 50000, 8000, c + 1 + len(hello), s + 1, P | A, 502,
            payload=more, ip_id=0x2003, ip_options=b"\x07\x07\x04\x00\x00\x00\x00\x01"),
        seg(t + 0.0201, "server", "linux", 8000, 50000, s + 1, c + 1, A, 509,
            options=opts(NOP, NOP, ts(2020, 1011), NOP, NOP, (5, struct.pack("!II", c + 8, c + 8 + len(more))))),
        seg(t + 0.0202, "server", "linux", 8000, 50000, s + 1, c + 1 + len(hello) + len(more), A, 509,
            options=opts(NOP, NOP, ts(2021, 1021))),
        # a keepalive probe (seq = snd_una - 1, no data) and its answer
        seg(t + 1.5, "linux", "server", 50000, 8000, c + len(hello) + len(more), s + 1, A, 502, ip_id=0x2004),
        seg(t + 1.5001, "server", "linux", 8000, 50000, s + 1, c + 1 + len(hello) + len(more), A, 509),
        # linux closes after the story: its socket goes FIN_WAIT2 -> TIME_WAIT
        seg(FIN_T + 2.6, "linux", "server", 50000, 8000, c + 1 + len(hello) + len(more), s + 1, F | A, 502,
            ip_id=0x2005),
        seg(FIN_T + 2.6001, "server", "linux", 8000, 50000, s + 1, c + 2 + len(hello) + len(more), F | A, 509),
        seg(FIN_T + 2.6002, "linux", "server", 50000, 8000, c + 2 + len(hello) + len(more), s + 2, A, 502,
            ip_id=0x2006),
    ]


def others() -> list[Frame]:
    arp = (b"\xff" * 6 + MAC["linux"] + b"\x08\x06" + bytes.fromhex("0001080006040001") + MAC["linux"]
           + ip4(IPS["linux"]) + b"\0" * 6 + ip4(IPS["server"]))
    udp = (MAC["server"] + MAC["linux"] + b"\x08\x00" + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 36, 7, 0, 64, 17, 0,
                                                                   ip4(IPS["linux"]), ip4(IPS["server"]))
           + struct.pack("!HHHH", 5353, 53, 16, 0) + b"question")
    fragment = tcp_frame(IPS["linux"], IPS["server"], 1, 2, 3, 4, A, 5, frag=0x0010)  # a later fragment
    return [
        (T0 + 0.2, "linux", "server", arp),
        (T0 + 0.3, "linux", "server", udp),
        (T0 + 0.35, "linux", "server", fragment),
        (T0 + 0.36, "linux", "server", tcp_frame(IPS["linux"], IPS["server"], 1, 2, 3, 4, A, 5)[:40]),
        # from an address that is no lab host, VLAN-tagged: kept from the receiver's capture
        seg(T0 + 2.5, "10.9.0.99", "server", 33000, 8000, 42, 0, S, 1024, vlan=7, ip_id=0x3000),
        seg(T0 + 2.5001, "server", "10.9.0.99", 8000, 33000, 0, 43, R | A, 0),
    ]


PCAP = {"win": ("<", 1_000_000, 0xA1B2C3D4), "server": (">", 1_000_000_000, 0xA1B23C4D),
        "linux": ("<", 1_000_000_000, 0xA1B23C4D)}


def write_pcaps(frames: list[Frame]) -> None:
    (HERE / "capture").mkdir(exist_ok=True)
    for host, (endian, per_s, magic) in PCAP.items():
        out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)
        for t, src, dst, data in sorted(frames, key=lambda f: f[0]):
            if host not in (src, dst):
                continue
            t += 0.00002 if host == dst else 0.0
            ticks = round(t * per_s)
            out += struct.pack(endian + "IIII", ticks // per_s, ticks % per_s, len(data), len(data) + 4) + data
        if host == "win":
            out += struct.pack(endian + "IIII", int(FIN_T + 3), 0, 60, 60) + b"\x02" * 20  # cut by the stop
        (HERE / "capture" / f"{host}.pcap").write_bytes(out)


def main() -> None:
    lab = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    lab["hosts"]["win"]["peer"]["fin_wait2_timeout"] = "2s"
    (HERE / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    (HERE / "run.json").write_text(json.dumps({"lab": "closewait", "run": "report_run", "hosts": IPS, "started": T0,
                                               "ended": FIN_T + 3, "state": "down", "tracer": "ok"}) + "\n")
    write_pcaps(story() + linux_conn() + others())
    srv = IPS["server"]

    def sock(state: str, local: str, lport: int, peer: str | None, pport: int | None, pid: int | None = None,
             program: str | None = None) -> dict[str, object]:
        return {"source": "netstat", "state": state, "local_addr": local, "local_port": lport,
                "peer_addr": IPS[peer] if peer else "0.0.0.0", "peer_port": pport, "recv_q": 0, "send_q": 0,
                "pid": pid, "program": program, "timer": None, "info": ""}

    listen = sock("LISTEN", "0.0.0.0", 8000, None, None, 18, "server")
    lnx = sock("ESTABLISHED", srv, 8000, "linux", 50000, 18, "server")
    tables = [("established", T0 + 2, 2, [listen, lnx, sock("ESTABLISHED", srv, 8000, "win", 49000)]),
              ("close_wait", FIN_T + 0.2, 5, [listen, lnx, sock("CLOSE_WAIT", srv, 8000, "win", 49000)]),
              ("after_rst", FIN_T + 2.5, 7, [listen, lnx])]
    (HERE / "sockets").mkdir(exist_ok=True)
    (HERE / "sockets" / "snapshots.json").write_text(json.dumps(
        {name: {"time": t, "step": step, "hosts": {"server": {"netstat": {"raw": "", "records": recs}}}}
         for name, t, step, recs in tables}, indent=1) + "\n")
    lip = IPS["linux"]
    trans = [
        (T0 + 1.00015, srv, 8000, IPS["win"], 49000, "SYN_RECV", "ESTABLISHED"),
        (FIN_T + 0.00005, srv, 8000, IPS["win"], 49000, "ESTABLISHED", "CLOSE_WAIT"),
        (FIN_T + 2.00005, srv, 8000, IPS["win"], 49000, "CLOSE_WAIT", "CLOSE"),
        (FIN_T + 2.6, lip, 50000, srv, 8000, "ESTABLISHED", "FIN_WAIT1"),
        (FIN_T + 2.60012, lip, 50000, srv, 8000, "FIN_WAIT1", "FIN_WAIT2"),
        (FIN_T + 2.60013, lip, 50000, srv, 8000, "FIN_WAIT2", "CLOSE"),
    ]
    with open(HERE / "sockets" / "transitions.jsonl", "w") as f:
        f.write(json.dumps({"ts": FIN_T + 2.00004, "event": "tcp_receive_reset", "saddr": srv, "sport": 8000,
                            "daddr": IPS["win"], "dport": 49000, "state": "CLOSE_WAIT"}) + "\n")
        for t, sa, sp, da, dp, old, new in trans:
            f.write(json.dumps({"ts": t, "event": "inet_sock_set_state", "saddr": sa, "sport": sp, "daddr": da,
                                "dport": dp, "old": old, "new": new}) + "\n")
    names = [("start-telnet1", "start", "linux connects with telnet"), ("start-telnet2", "start",
             "win connects with telnet"), ("established", "snapshot", "snapshot established"),
             ("stop-telnet2", "stop", "win closes telnet"), ("wait-4", "wait", "wait for a FIN from win"),
             ("close_wait", "snapshot", "snapshot close_wait"), ("wait-6", "wait", "wait for an RST from win"),
             ("after_rst", "snapshot", "snapshot after_rst")]
    times = [T0 + 0.5, T0 + 1.0, T0 + 2, FIN_T - 0.05, FIN_T - 0.04, FIN_T + 0.2, FIN_T + 0.3, FIN_T + 2.5]
    with open(HERE / "steps.jsonl", "w") as f:
        for i, ((name, kind, title), t) in enumerate(zip(names, times)):
            f.write(json.dumps({"index": i, "name": name, "kind": kind, "title": title, "host": None, "start": t,
                                "end": t + 0.01, "outcome": "ok", "detail": ""}) + "\n")


if __name__ == "__main__":
    main()
