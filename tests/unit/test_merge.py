"""capture/all.pcapng: the de-duplication rule, where step comments land, and that tshark reads the file."""
from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tcplab.observe.merge import merge_captures
from tcplab.wire import ACK, FIN, SYN, RawPacket, decode_tcp

from .test_wire import MAC_A, _blocks, tcp_frame, write_pcap

IPS = {"server": "10.77.0.2", "linux": "10.77.0.3", "win": "10.77.0.4"}
T0 = 1795508889.0


@dataclass
class Frame:
    interface: str
    ts: float
    data: bytes
    comments: list[str]


def _options(body: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + 4 <= len(body):
        code, length = struct.unpack_from("<HH", body, off)
        if code == 0:
            break
        out.append((code, body[off + 4: off + 4 + length]))
        off += 4 + length + (-length % 4)
    return out


def read_merged(path: Path) -> tuple[str, list[Frame]]:
    """The section comment and the packets of a pcapng written by merge_captures (a reader for tests)."""
    names: list[str] = []
    section = ""
    frames = []
    for btype, body in _blocks(path.read_bytes()):
        if btype == 0x0A0D0D0A:
            section = next((v.decode() for c, v in _options(body[16:]) if c == 1), "")
        elif btype == 1:
            names.append(next(v.decode() for c, v in _options(body[8:]) if c == 2))
        elif btype == 6:
            iface, hi, lo, caplen, _ = struct.unpack_from("<IIIII", body)
            data = body[20: 20 + caplen]
            opts = _options(body[20 + caplen + (-caplen % 4):])
            frames.append(Frame(names[iface], (hi << 32 | lo) / 1e6, data, [v.decode() for c, v in opts if c == 1]))
    return section, frames


def conversation() -> dict[str, list[tuple[float, bytes]]]:
    """linux and win connect to the server; each packet is in its sender's and its receiver's capture."""
    s, lx, w = IPS["server"], IPS["linux"], IPS["win"]
    sent = [  # (time, sender, receiver, frame)
        (T0 + 0.000, "linux", "server", tcp_frame(lx, s, 36078, 8000, seq=100, flags=SYN, ip_id=1)),
        (T0 + 0.001, "server", "linux", tcp_frame(s, lx, 8000, 36078, seq=500, ack=101, flags=SYN | ACK, ip_id=2)),
        (T0 + 0.002, "linux", "server", tcp_frame(lx, s, 36078, 8000, seq=101, ack=501, ip_id=3)),
        (T0 + 1.000, "win", "server", tcp_frame(w, s, 43692, 8000, seq=900, flags=SYN, ip_id=4)),
        (T0 + 1.001, "server", "win", tcp_frame(s, w, 8000, 43692, seq=700, ack=901, flags=SYN | ACK, ip_id=5)),
        (T0 + 1.002, "win", "server", tcp_frame(w, s, 43692, 8000, seq=901, ack=701, ip_id=6)),
        (T0 + 2.000, "win", "server", tcp_frame(w, s, 43692, 8000, seq=901, ack=701, flags=FIN | ACK, ip_id=7)),
        (T0 + 2.0003, "server", "win", tcp_frame(s, w, 8000, 43692, seq=701, ack=902, ip_id=8)),
    ]
    caps: dict[str, list[tuple[float, bytes]]] = {h: [] for h in IPS}
    for ts, sender, receiver, frame in sent:
        caps[sender].append((ts, frame))
        caps[receiver].append((ts + 0.00002, frame))  # the receiver sees it a little later
    return caps


def write_caps(tmp: Path, caps: dict[str, list[tuple[float, bytes]]]) -> dict[str, Path]:
    return {h: write_pcap(tmp / f"{h}.pcap", sorted(pkts)) for h, pkts in caps.items()}


def step(index: int, title: str, start: float, outcome: str = "ok") -> dict[str, object]:
    return {"index": index, "name": f"s{index}", "title": title, "start": start, "end": start + 0.1,
            "outcome": outcome}


def test_each_packet_once_and_from_its_sender(tmp_path: Path) -> None:
    out = tmp_path / "all.pcapng"
    n = merge_captures(write_caps(tmp_path, conversation()), IPS, [], out, "closewait")
    _, frames = read_merged(out)
    assert n == len(frames) == 8
    ip_host = {ip: h for h, ip in IPS.items()}
    for f in frames:
        p = decode_tcp(RawPacket(f.ts, f.data, len(f.data), 0))
        assert p is not None and f.interface == ip_host[p.src]
    assert [decode_tcp(RawPacket(f.ts, f.data, 60, 0)).ip_id for f in frames] == list(range(1, 9))  # type: ignore[union-attr]
    assert frames[0].ts == pytest.approx(T0, abs=1e-6), "the sender's copy carries the sending time"


def test_receivers_copy_when_the_sender_is_no_lab_host_or_has_no_capture(tmp_path: Path) -> None:
    caps = conversation()
    outsider = tcp_frame("10.77.0.1", IPS["server"], 5555, 8000, flags=SYN, ip_id=99)
    caps["server"].append((T0 + 3.0, outsider))
    caps["linux"].append((T0 + 3.0, outsider))  # never seen by the right host: not kept from linux
    del caps["win"]  # win's capture never started
    out = tmp_path / "all.pcapng"
    merge_captures(write_caps(tmp_path, caps), IPS, [], out)
    _, frames = read_merged(out)
    got = [(f.interface, decode_tcp(RawPacket(f.ts, f.data, 60, 0)).ip_id) for f in frames]  # type: ignore[union-attr]
    assert got == [("linux", 1), ("server", 2), ("linux", 3), ("server", 4), ("server", 5), ("server", 6),
                   ("server", 7), ("server", 8), ("server", 99)]


def test_frames_that_are_not_ipv4_are_kept_once(tmp_path: Path) -> None:
    arp = b"\xff" * 6 + MAC_A + b"\x08\x06" + bytes(46)
    caps = conversation()
    for h in caps:
        caps[h].append((T0 + 0.5 + (0.001 if h == "win" else 0), arp))
    caps["server"].append((T0 + 1.5, arp))  # the same request again, later: another frame
    out = tmp_path / "all.pcapng"
    assert merge_captures(write_caps(tmp_path, caps), IPS, [], out) == 10


def test_step_comments_land_on_the_first_packet_at_or_after_the_step(tmp_path: Path) -> None:
    steps = [
        step(0, "linux connects with telnet", T0 - 0.5),
        step(1, "win connects with telnet", T0 + 0.9),
        step(2, "snapshot established", T0 + 1.5),
        step(3, "win closes telnet", T0 + 1.9),
        step(4, "snapshot close_wait", T0 + 2.5),
        step(5, "wait for an RST from win", T0 + 2.6, outcome="failed"),
        {"index": 6, "title": "never started"},
    ]
    out = tmp_path / "all.pcapng"
    merge_captures(write_caps(tmp_path, conversation()), IPS, steps, out, "closewait")
    section, frames = read_merged(out)
    placed = {i: f.comments for i, f in enumerate(frames) if f.comments}
    assert placed == {
        0: ["step: linux connects with telnet"],
        3: ["step: win connects with telnet"],
        6: ["step: snapshot established", "step: win closes telnet"],
        7: ["step: snapshot close_wait (after the last packet)",
            "step: wait for an RST from win (failed) (after the last packet)"],
    }
    assert section.splitlines() == ["tcplab closewait", "step 0: linux connects with telnet",
                                    "step 1: win connects with telnet", "step 2: snapshot established",
                                    "step 3: win closes telnet", "step 4: snapshot close_wait",
                                    "step 5: wait for an RST from win (failed)"]


def test_merging_a_capture_cut_by_a_crash(tmp_path: Path) -> None:
    paths = write_caps(tmp_path, conversation())
    whole = paths["server"].read_bytes()
    paths["server"].write_bytes(whole[:-30])  # the server's last record is cut
    (tmp_path / "empty.pcap").write_bytes(b"")
    paths["ghost"] = tmp_path / "empty.pcap"
    paths["missing"] = tmp_path / "nothing-here.pcap"
    out = tmp_path / "all.pcapng"
    n = merge_captures(paths, {**IPS, "ghost": "10.77.0.9", "missing": "10.77.0.10"}, [], out)
    assert n == 8, "the server's last packet, cut from its capture, is kept from its receiver's"
    assert not (tmp_path / "all.pcapng.tmp").exists()


def test_time_order_across_hosts(tmp_path: Path) -> None:
    caps = {"linux": [(T0 + 0.3, tcp_frame(IPS["linux"], IPS["server"], 1, 8000, ip_id=3))],
            "win": [(T0 + 0.1, tcp_frame(IPS["win"], IPS["server"], 2, 8000, ip_id=1)),
                    (T0 + 0.4, tcp_frame(IPS["win"], IPS["server"], 2, 8000, ip_id=4))],
            "server": [(T0 + 0.2, tcp_frame(IPS["server"], IPS["win"], 8000, 2, ip_id=2))]}
    out = tmp_path / "all.pcapng"
    merge_captures(write_caps(tmp_path, caps), IPS, [], out)
    _, frames = read_merged(out)
    assert [f.interface for f in frames] == ["win", "server", "linux", "win"]
    assert [f.ts for f in frames] == sorted(f.ts for f in frames)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (scripts/setup installs it)")
def test_tshark_reads_the_merged_file_without_a_word_and_shows_the_steps(tmp_path: Path) -> None:
    out = tmp_path / "all.pcapng"
    steps = [step(0, "linux connects with telnet", T0 - 0.5), step(1, "win closes telnet", T0 + 1.9)]
    merge_captures(write_caps(tmp_path, conversation()), IPS, steps, out, "closewait")
    proc = subprocess.run(["tshark", "-r", str(out), "-Y", "frame.comment", "-T", "fields",
                           "-e", "frame.interface_name", "-e", "ip.src", "-e", "tcp.flags.str", "-e", "frame.comment"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "Running as user" not in line] == []
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [("linux", IPS["linux"], "step: linux connects with telnet"),
                                                  ("win", IPS["win"], "step: win closes telnet")]
    assert "F" in rows[1][2]
    info = subprocess.run(["capinfos", "-o", str(out)], capture_output=True, text=True, timeout=60)
    if info.returncode == 0:  # capinfos comes with tshark; it checks time order too
        assert "True" in info.stdout



def test_analysis_keeps_the_same_copies_as_the_merged_file(tmp_path: Path) -> None:
    """load_traffic and all.pcapng share one rule: with win's capture missing, win's packets come from
    the server's capture in both, with the same frame numbers."""
    import json

    from tcplab.analysis.packets import load_traffic

    caps = conversation()
    del caps["win"]
    (tmp_path / "capture").mkdir()
    paths = write_caps(tmp_path / "capture", caps)
    (tmp_path / "run.json").write_text(json.dumps({"hosts": IPS}))
    merge_captures(paths, IPS, [], tmp_path / "all.pcapng")
    _, frames = read_merged(tmp_path / "all.pcapng")
    merged = [(f.interface, decode_tcp(RawPacket(f.ts, f.data, 60, 0)).ip_id) for f in frames]  # type: ignore[union-attr]
    analysed = [(p.capture, p.tcp.ip_id) for p in load_traffic(tmp_path).packets]
    assert analysed == merged
    assert ("server", 7) in analysed  # win's FIN, from the receiver's copy


def test_a_routed_copy_is_one_packet_a_rewritten_or_forged_one_is_kept_from_the_receiver(tmp_path: Path) -> None:
    """Client 10.1.0.2 - box - server 10.2.0.2: the box routes one packet (TTL one less), masquerades one (its
    address 10.2.0.3 as the source) and answers one in the server's name (an RST the server never sent)."""
    ips = {"client": "10.1.0.2", "box": "10.1.0.3", "server": "10.2.0.2"}
    c, s, out = ips["client"], ips["server"], "10.2.0.3"
    routed = (tcp_frame(c, s, 40001, 8000, seq=1, ip_id=7), tcp_frame(c, s, 40001, 8000, seq=1, ip_id=7, ttl=63))
    masq = (tcp_frame(c, s, 40002, 8000, seq=5, ip_id=8), tcp_frame(out, s, 40002, 8000, seq=5, ip_id=8, ttl=63))
    reply = tcp_frame(s, c, 8000, 40001, seq=9, ack=2, ip_id=3)  # the server's own, routed back: one packet
    forged = tcp_frame(s, c, 8000, 40002, seq=6, flags=0x04, ip_id=0)  # the box's RST in the server's name
    caps = {"client": [(T0, routed[0]), (T0 + 0.1, masq[0]), (T0 + 0.3, reply), (T0 + 0.4, forged)],
            "server": [(T0 + 0.01, routed[1]), (T0 + 0.11, masq[1]), (T0 + 0.29, reply)]}
    out_file = tmp_path / "all.pcapng"
    assert merge_captures(write_caps(tmp_path, caps), ips, [], out_file) == 5
    _, frames = read_merged(out_file)
    kept = [(f.interface, decode_tcp(RawPacket(f.ts, f.data, len(f.data), 0))) for f in frames]
    assert [(where, t.src, t.dport, t.flag_string()) for where, t in kept if t is not None] == [
        ("client", c, 8000, "."), ("client", c, 8000, "."), ("server", out, 8000, "."), ("server", s, 40001, "."),
        ("client", s, 40002, "R")]
