"""tcplab.wire: the pcap reader, the TCP/IPv4 decoder, the pcapng writer; and the live tail of a capture.

Frames are built byte by byte here (``tcp_frame``) so each test says exactly
what is on the wire; test_merge.py builds its captures with the same helpers.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tcplab.observe.watch import PcapTail
from tcplab.wire import (ACK, FIN, PSH, SYN, PcapngWriter, RawPacket, decode_tcp, format_options, read_capture,
                         read_pcap)

MAC_A, MAC_B = bytes.fromhex("02420a000002"), bytes.fromhex("02420a000003")
WIN7_SYN_OPTIONS = bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 8, 1, 1, 4, 2])  # mss 1460,nop,wscale 8,nop,nop,sackOK


def _ip4(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def tcp_frame(src: str, dst: str, sport: int, dport: int, seq: int = 0, ack: int = 0, flags: int = ACK,
              win: int = 64240, options: bytes = b"", payload: bytes = b"", ttl: int = 64, ip_id: int = 1,
              pad_to: int = 60, vlan: int | None = None, frag: int = 0) -> bytes:
    """An Ethernet/IPv4/TCP frame; short frames are padded to 60 bytes as Ethernet does."""
    options += b"\0" * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, win, 0, 0) + options + payload
    total = 20 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ip_id, 0x4000 | frag, ttl, 6, 0, _ip4(src), _ip4(dst))
    eth = MAC_B + MAC_A + (struct.pack("!HH", 0x8100, vlan) if vlan is not None else b"") + b"\x08\x00"
    frame = eth + ip + tcp
    return frame + b"\0" * max(0, pad_to - len(frame))


def pcap_bytes(packets: list[tuple[float, bytes]], nano: bool = False, big: bool = False) -> bytes:
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)
    for ts, data in packets:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        out += struct.pack(e + "IIII", sec, frac, len(data), len(data)) + data
    return out


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    path.write_bytes(pcap_bytes(packets))
    return path


def raw(data: bytes, ts: float = 1.0) -> RawPacket:
    return RawPacket(ts, data, len(data), 1)


# --- decode_tcp -----------------------------------------------------------------

def test_windows_7_syn_as_the_field_report_shows_it() -> None:
    p = decode_tcp(raw(tcp_frame("192.168.1.110", "192.168.1.177", 52552, 8000, seq=1000, flags=SYN, win=8192,
                                 options=WIN7_SYN_OPTIONS, ttl=128, ip_id=0x1234)))
    assert p is not None
    assert (p.src, p.dst, p.sport, p.dport, p.seq, p.win, p.ttl, p.ip_id) == (
        "192.168.1.110", "192.168.1.177", 52552, 8000, 1000, 8192, 128, 0x1234)
    assert p.flag_string() == "S" and p.payload == b""
    assert p.option_names() == ["mss", "nop", "wscale", "nop", "nop", "sackOK"]
    assert (p.option("mss"), p.option("wscale"), p.option("TS")) == (1460, 8, None)
    assert format_options(p.options) == "[mss 1460,nop,wscale 8,nop,nop,sackOK]"


def test_linux_syn_ack_with_timestamps() -> None:
    opts = bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + struct.pack("!II", 4111371583, 7) + bytes([1, 3, 3, 7])
    p = decode_tcp(raw(tcp_frame("10.0.0.2", "10.0.0.3", 8000, 36078, seq=5, ack=1001, flags=SYN | ACK,
                                 options=opts)))
    assert p is not None and p.flag_string() == "S." and p.ack == 1001
    assert p.option("TS") == (4111371583, 7)
    assert format_options(p.options) == "[mss 1460,sackOK,TS val 4111371583 ecr 7,nop,wscale 7]"


def test_sack_blocks_unknown_options_and_eol() -> None:
    sack = bytes([1, 1, 5, 18]) + struct.pack("!IIII", 1001, 2001, 3001, 4001)
    mptcp = bytes([30, 4, 0xAB, 0xCD])
    p = decode_tcp(raw(tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, options=sack + mptcp + bytes([0, 1, 1, 1]))))
    assert p is not None
    assert p.options == [("nop", None), ("nop", None), ("sack", ((1001, 2001), (3001, 4001))),
                         ("opt-30", "abcd"), ("eol", None)]
    assert format_options(p.options) == "[nop,nop,sack 2 {1001:2001}{3001:4001},opt-30 abcd,eol]"


@pytest.mark.parametrize("options", [bytes([1, 1, 2, 4]), bytes([2, 1, 0, 0]), bytes([1, 1, 1, 8]),
                                     bytes([8, 40, 0, 0])])
def test_malformed_options_end_the_list_without_error(options: bytes) -> None:
    data = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, options=options)
    p = decode_tcp(raw(data))
    assert p is not None and all(name in ("nop", "eol") for name, _ in p.options)


def test_payload_is_cut_at_the_ip_length_not_the_ethernet_padding() -> None:
    fin = decode_tcp(raw(tcp_frame("10.0.0.4", "10.0.0.2", 43692, 8000, seq=1, ack=1, flags=FIN | ACK)))
    assert fin is not None and fin.flag_string() == "F." and fin.payload == b""
    data = decode_tcp(raw(tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, flags=PSH | ACK, payload=b"hello\r\n")))
    assert data is not None and data.flag_string() == "P." and data.payload == b"hello\r\n"


def test_vlan_tagged_frames_decode_and_short_ones_do_not_crash() -> None:
    p = decode_tcp(raw(tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, vlan=7)))
    assert p is not None and (p.sport, p.dport) == (1, 2)
    tagged = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, vlan=7, pad_to=0)
    for cut in (34, 36, 37, 40, 50):
        assert decode_tcp(raw(tagged[:cut])) is None


def test_what_is_not_a_tcp_segment_decodes_to_none() -> None:
    tcp = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2)
    udp = tcp[:23] + b"\x11" + tcp[24:]
    arp = MAC_B + MAC_A + b"\x08\x06" + bytes(28)
    ipv6 = MAC_B + MAC_A + b"\x86\xdd" + bytes(60)
    bad_ihl = tcp[:14] + b"\x43" + tcp[15:]
    version6_in_v4_type = tcp[:14] + b"\x65" + tcp[15:]
    fragment = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, frag=185)
    for data in (udp, arp, ipv6, bad_ihl, version6_in_v4_type, fragment, tcp[:40], b""):
        assert decode_tcp(raw(data)) is None
    assert decode_tcp(raw(tcp[:54])) is not None


def test_a_data_offset_below_five_words_reads_no_options() -> None:
    data = bytearray(tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, payload=b"abc"))
    data[14 + 20 + 12] = 0x20  # data offset 2 words: impossible
    p = decode_tcp(raw(bytes(data)))
    assert p is not None and p.options == [] and p.payload == b"abc"


# --- read_pcap ------------------------------------------------------------------

def _frames(n: int) -> list[tuple[float, bytes]]:
    return [(1795508889.5 + i * 0.001, tcp_frame("10.0.0.3", "10.0.0.2", 1000 + i, 8000)) for i in range(n)]


def test_read_pcap_numbers_frames_as_wireshark_does(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "a.pcap", _frames(3))
    with open(path, "rb") as f:
        got = list(read_pcap(f))
    assert [p.index for p in got] == [1, 2, 3]
    assert [round(p.ts, 6) for p in got] == [round(ts, 6) for ts, _ in _frames(3)]
    assert all(p.orig_len == len(p.data) == 60 for p in got)


@pytest.mark.parametrize("cut", [1, 10, 15, 16, 17, 40, 75])
def test_a_truncated_last_record_is_tolerated(tmp_path: Path, cut: int) -> None:
    """A capture read while tcpdump writes it (or after a crash) ends inside a record: the rest is kept."""
    whole = pcap_bytes(_frames(3))
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole[:len(whole) - 76 + cut - 1])  # the last record is 16 + 60 bytes long
    with open(path, "rb") as f:
        got = list(read_pcap(f))
    assert len(got) == 2 and decode_tcp(got[-1]) is not None


def test_nanosecond_and_big_endian_captures(tmp_path: Path) -> None:
    for nano, big in ((True, False), (False, True), (True, True)):
        path = tmp_path / f"x-{nano}-{big}.pcap"
        path.write_bytes(pcap_bytes([(100.123456789, tcp_frame("10.0.0.3", "10.0.0.2", 1, 2))], nano, big))
        with open(path, "rb") as f:
            (p,) = list(read_pcap(f))
        assert abs(p.ts - 100.123456789) < (1e-9 if nano else 1e-6)


def test_not_a_pcap_is_refused_and_an_empty_file_has_no_packets(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))  # a pcapng section header
    with open(bad, "rb") as f, pytest.raises(ValueError):
        list(read_pcap(f))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with open(empty, "rb") as f:
        assert list(read_pcap(f)) == []


# --- PcapTail -------------------------------------------------------------------

def test_tail_reads_each_complete_record_once_as_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "live.pcap"
    tail = PcapTail(path)
    assert tail.new_packets() == []  # no file yet
    whole = pcap_bytes(_frames(3))
    path.write_bytes(whole[:20])  # not even the file header
    assert tail.new_packets() == []
    path.write_bytes(whole[:24 + 76 + 30])  # one record and part of the next
    first = tail.new_packets()
    assert [p.sport for p in first] == [1000] and first[0].index == 1
    assert tail.new_packets() == []
    path.write_bytes(whole)
    rest = tail.new_packets()
    assert [(p.sport, p.index) for p in rest] == [(1001, 2), (1002, 3)]
    assert tail.new_packets() == []


# --- PcapngWriter ---------------------------------------------------------------

def _blocks(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off < len(data):
        btype, length = struct.unpack_from("<II", data, off)
        assert length % 4 == 0 and length >= 12
        assert struct.unpack_from("<I", data, off + length - 4)[0] == length, "trailing length differs"
        out.append((btype, data[off + 8: off + length - 4]))
        off += length
    assert off == len(data)
    return out


def test_pcapng_blocks_are_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    with open(path, "wb") as f:
        w = PcapngWriter(f, comment="tcplab test")
        a = w.add_interface("server", "server: its own capture")
        b = w.add_interface("win")
        w.add_packet(a, 1795508889.717972, b"\x01" * 61, 61, ["step: one", "step: two"])
        w.add_packet(b, 1795508889.717973, b"\x02" * 60, 1500)
    blocks = _blocks(path.read_bytes())
    assert [t for t, _ in blocks] == [0x0A0D0D0A, 1, 1, 6, 6]
    iface, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", blocks[3][1])
    assert (iface, (hi << 32 | lo), caplen, origlen) == (0, 1795508889717972, 61, 61)
    assert b"step: one" in blocks[3][1] and b"step: two" in blocks[3][1]
    assert struct.unpack_from("<IIIII", blocks[4][1])[0::3] == (1, 60)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (scripts/setup installs it)")
def test_tshark_reads_what_the_writer_wrote(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    with open(path, "wb") as f:
        w = PcapngWriter(f, comment="tcplab test")
        a = w.add_interface("server")
        w.add_packet(a, 1795508889.5, tcp_frame("10.0.0.2", "10.0.0.4", 8000, 43692, flags=ACK), 60,
                     ["step: win closes telnet"])
        w.add_packet(a, 1795508889.6, tcp_frame("10.0.0.2", "10.0.0.4", 8000, 43692, flags=FIN | ACK), 60)
    proc = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
                           "-e", "frame.time_epoch", "-e", "tcp.flags", "-e", "frame.comment"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "Running as user" not in line] == []
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [(r[0], r[1][:17], int(r[2], 16), r[3]) for r in rows] == [
        ("server", "1795508889.500000", ACK, "step: win closes telnet"),
        ("server", "1795508889.600000", FIN | ACK, "")]


# --- read_capture: pcap or pcapng, any link type a user's capture has -------------------------------

def _pcapng_block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)


def test_read_capture_reads_the_merged_pcapng_with_interface_names(tmp_path: Path) -> None:
    import io
    buf = io.BytesIO()
    w = PcapngWriter(buf, comment="steps")
    a, b = w.add_interface("server"), w.add_interface("win")
    w.add_packet(a, 10.5, tcp_frame("10.0.0.2", "10.0.0.3", 1, 2), 60, ["step: one"])
    w.add_packet(b, 11.25, tcp_frame("10.0.0.3", "10.0.0.2", 2, 1), 60)
    frames = list(read_capture(io.BytesIO(buf.getvalue())))
    assert [(f.interface, f.raw.ts, f.raw.index) for f in frames] == [("server", 10.5, 1), ("win", 11.25, 2)]
    assert decode_tcp(frames[1].raw) is not None


def test_read_capture_big_endian_pcapng_with_nanoseconds_and_a_second_section() -> None:
    import io
    e = ">"
    shb = _pcapng_block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)
    idb = _pcapng_block(1, struct.pack(e + "HHI", 1, 0, 0) + struct.pack(e + "HH", 9, 1) + b"\x09\0\0\0"
                        + struct.pack(e + "HH", 0, 0), e)
    frame = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2)
    ticks = 5_123_456_789
    epb = _pcapng_block(6, struct.pack(e + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, 60, 60) + frame, e)
    data = shb + idb + epb
    frames = list(read_capture(io.BytesIO(data + data)))
    assert len(frames) == 2 and abs(frames[0].raw.ts - 5.123456789) < 1e-9
    assert all(decode_tcp(f.raw) is not None for f in frames)


def test_read_capture_takes_linux_cooked_and_raw_ip_captures(tmp_path: Path) -> None:
    import io
    frame = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, flags=SYN)
    ip = frame[14:]
    for linktype, body in ((113, struct.pack("!HHH8sH", 4, 1, 6, bytes(8), 0x0800) + ip), (101, ip),
                           (276, struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 4, 6, bytes(8)) + ip)):
        head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
        rec = struct.pack("<IIII", 1, 0, len(body), len(body)) + body
        (got,) = list(read_capture(io.BytesIO(head + rec)))
        t = decode_tcp(got.raw)
        assert t is not None and (t.src, t.dst, t.flags) == ("10.0.0.3", "10.0.0.2", SYN), linktype


def test_read_capture_refuses_what_is_neither() -> None:
    import io
    for data in (b"hello world, no capture here", b"ab"):
        with pytest.raises(ValueError):
            list(read_capture(io.BytesIO(data)))
