"""The Windows peer sidecar's own frame code (images/tools/winpeer.py, stdlib only), checked against scapy.

The RST it sends leaves at layer 2: nothing below it fills in a checksum, so both
must be right as built. scapy (a test dependency) parses what winpeer builds and
recomputes the checksums; winpeer parses what scapy builds.
"""
from __future__ import annotations

import socket
import struct
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("scapy")
from scapy.all import IP, TCP, Ether, Raw
from scapy.layers.inet6 import IPv6

from ..conftest import load_module

WINPEER = Path(__file__).resolve().parents[2] / "images" / "tools" / "winpeer.py"


def _load() -> ModuleType:
    return load_module(WINPEER, "winpeer_under_test")


wp = _load()

WIN_MAC, SRV_MAC = "02:42:0a:4d:00:04", "02:42:0a:4d:00:02"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def recomputed(pkt_bytes: bytes) -> tuple[int, int]:
    """scapy's own IPv4 and TCP checksums of the frame's headers (fields deleted, rebuilt)."""
    p = Ether(pkt_bytes)
    del p[IP].chksum
    del p[TCP].chksum
    q = Ether(bytes(p))
    return q[IP].chksum, q[TCP].chksum


@pytest.mark.parametrize("seq,ack,ip_id", [(2, 1, 0x4000), (0xFFFFFFFF, 0x80000000, 0xFFFF), (123456789, 0, 0),
                                           (2**32 + 5, 2**33 + 7, 0x14000)])
def test_rst_frame_fields_and_checksums(seq: int, ack: int, ip_id: int) -> None:
    frame = wp.rst_frame(mac(WIN_MAC), mac(SRV_MAC), "10.77.0.4", "10.77.0.2", 40312, 8000, seq, ack, ip_id)
    assert len(frame) == 14 + 20 + 20
    p = Ether(frame)
    assert (p.src, p.dst, p.type) == (WIN_MAC, SRV_MAC, 0x0800)
    ip, tcp = p[IP], p[TCP]
    assert (ip.version, ip.ihl, ip.tos, ip.len, ip.id, ip.frag) == (4, 5, 0, 40, ip_id & 0xFFFF, 0)
    assert str(ip.flags) == "DF" and ip.ttl == 128 and ip.proto == 6
    assert (ip.src, ip.dst) == ("10.77.0.4", "10.77.0.2")
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (40312, 8000, seq % 2**32, ack % 2**32)
    assert str(tcp.flags) == "RA" and tcp.window == 0 and tcp.dataofs == 5 and tcp.options == []
    assert tcp.urgptr == 0 and Raw not in p
    assert (ip.chksum, tcp.chksum) == recomputed(frame)


def test_rst_frame_is_byte_for_byte_what_scapy_builds() -> None:
    """The frame the scapy version of winpeer sent, for the same fields."""
    ours = wp.rst_frame(mac(WIN_MAC), mac(SRV_MAC), "192.168.240.3", "192.168.240.2", 51000, 8000, 2, 1, 0x4001)
    theirs = bytes(Ether(src=WIN_MAC, dst=SRV_MAC)
                   / IP(src="192.168.240.3", dst="192.168.240.2", ttl=128, flags="DF", id=0x4001)
                   / TCP(sport=51000, dport=8000, flags="RA", seq=2, ack=1, window=0))
    assert ours == theirs


def test_checksum_verifies_to_zero_and_handles_odd_lengths() -> None:
    frame = wp.rst_frame(mac(WIN_MAC), mac(SRV_MAC), "10.0.0.1", "10.0.0.2", 1, 2, 3, 4, 5)
    ip = frame[14:34]
    assert wp.inet_checksum(ip) == 0  # a header with its checksum in place sums to 0xFFFF
    pseudo = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2") + struct.pack("!BBH", 0, 6, 20)
    assert wp.inet_checksum(pseudo + frame[34:]) == 0
    # odd length: padded with a zero byte (RFC 1071)
    assert wp.inet_checksum(b"\x01\x02\x03") == wp.inet_checksum(b"\x01\x02\x03\x00")
    assert wp.inet_checksum(b"") == 0xFFFF
    assert wp.inet_checksum(b"\xff\xff\x00\x01") == 0xFFFE  # end-around carry


def test_parse_frame_reads_what_scapy_builds() -> None:
    pkt = (Ether(src=SRV_MAC, dst=WIN_MAC)
           / IP(src="10.77.0.2", dst="10.77.0.4", ttl=64, id=7, options=[])
           / TCP(sport=8000, dport=40312, flags="FPA", seq=4000000000, ack=17, window=509,
                 options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
           / Raw(b"hello"))
    seg = wp.parse_frame(bytes(pkt))
    assert seg is not None
    assert (seg.eth_src, seg.eth_dst) == (mac(SRV_MAC), mac(WIN_MAC))
    assert (seg.src, seg.sport, seg.dst, seg.dport) == ("10.77.0.2", 8000, "10.77.0.4", 40312)
    assert (seg.seq, seg.ack, seg.window) == (4000000000, 17, 509)
    assert seg.flags == int(TCP(bytes(pkt[TCP])).flags) == wp.FIN | wp.PSH | wp.ACK
    assert seg.paylen == 5


def test_parse_frame_ip_options_truncation_and_ns_flag() -> None:
    pkt = (Ether() / IP(src="1.2.3.4", dst="5.6.7.8", options=b"\x01\x01\x01\x00")  # NOP NOP NOP EOL: ihl 6
           / TCP(sport=1, dport=2, flags="SA", seq=9, ack=10) / Raw(b"x" * 1000))
    raw = bytes(pkt)
    assert Ether(raw)[IP].ihl == 6
    seg = wp.parse_frame(raw[:wp.SNAPLEN])  # the BPF filter keeps the first SNAPLEN bytes only
    assert seg is not None and (seg.sport, seg.dport, seg.seq, seg.ack) == (1, 2, 9, 10)
    assert seg.flags == wp.SYN | wp.ACK and seg.paylen == 1000
    ns = bytes(Ether() / IP() / TCP(flags=0x110))  # NS + ACK: the ninth flag bit
    seg = wp.parse_frame(ns)
    assert seg is not None and seg.flags == 0x110 and seg.flags & wp.ACK and not seg.flags & wp.FIN


@pytest.mark.parametrize("frame", [
    bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / Raw(b"\x00" * 40)),            # not TCP (proto 0)
    bytes(Ether() / IP(proto=17) / Raw(b"\x00" * 20)),                                 # UDP
    bytes(Ether() / IPv6() / TCP()),                                                   # IPv6
    bytes(Ether() / IP(frag=185, proto=6) / Raw(b"\x00" * 40)),                        # a later fragment
    bytes(Ether() / IP() / TCP())[:14 + 20 + 19],                                      # TCP header cut short
    bytes(Ether() / IP() / TCP())[:20],                                                # nothing but Ethernet
    bytes(Ether(type=0x0806) / Raw(b"\x00" * 60)),                                     # ARP
], ids=["ip-no-tcp", "udp", "ipv6", "fragment", "short-tcp", "short", "arp"])
def test_parse_frame_rejects_what_is_not_ipv4_tcp(frame: bytes) -> None:
    assert wp.parse_frame(frame) is None


def test_bpf_program_shape() -> None:
    """The classic BPF program packs into 8-byte sock_filter entries; jumps stay inside it."""
    prog = wp.TCP4_FILTER
    assert wp.SOCK_FILTER.size == 8
    for i, (code, jt, jf, _k) in enumerate(prog):
        if code & 0x07 == 0x05:  # BPF_JMP
            assert i + 1 + max(jt, jf) < len(prog)
    assert prog[-1] == (0x06, 0, 0, 0) and prog[-2] == (0x06, 0, 0, wp.SNAPLEN)
    assert wp.SNAPLEN >= 14 + 60 + 60


def test_iface_ipv4_of_loopback_and_of_nothing() -> None:
    assert wp.iface_ipv4("lo") == "127.0.0.1"
    assert wp.iface_ipv4("no-such-if0") is None


def test_capture_on_loopback_sees_tcp_only_with_kernel_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real socket path on ``lo`` (needs CAP_NET_RAW): the BPF filter hands over IPv4/TCP only, cut to
    SNAPLEN; both directions of a connection arrive with kernel timestamps; stop() ends the reader."""
    import threading
    import time

    raw: list[bytes] = []
    real_parse = wp.parse_frame

    def recording_parse(frame: bytes):
        raw.append(bytes(frame))
        return real_parse(frame)

    monkeypatch.setattr(wp, "parse_frame", recording_parse)
    got: list[tuple[object, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def on_segment(seg: object, ts: float) -> None:
        with lock:
            got.append((seg, ts))

    try:
        cap = wp.Capture("lo", on_segment, errors.append)
    except PermissionError:
        pytest.skip("no CAP_NET_RAW here")
    try:
        cap.start(timeout=5)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.sendto(b"u" * 2000, ("127.0.0.1", 9))  # dropped by the filter, never reaches Python
        udp.close()
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        t0 = time.time()
        cli = socket.create_connection(("127.0.0.1", port))
        peer, _ = srv.accept()
        cli.sendall(b"p" * 3000)
        cli.close()
        peer.recv(4096)
        peer.close()  # its data unread or not, the server's end answers with FIN or RST: the last segment
        srv.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                segs = [s for s, _ in got if port in (s.sport, s.dport)]  # type: ignore[attr-defined]
            if any(s.flags & (wp.FIN | wp.RST) and s.sport == port for s in segs):
                break
            time.sleep(0.01)
        t1 = time.time()
    finally:
        cap.stop()
    assert not cap.thread.is_alive()
    assert not errors, errors
    assert raw and all(len(f) <= wp.SNAPLEN and f[12:14] == b"\x08\x00" and f[23] == 6 for f in raw)
    with lock:
        mine = [(s, ts) for s, ts in got if port in (s.sport, s.dport)]  # type: ignore[attr-defined]
    syns = [s for s, _ in mine if s.flags & wp.SYN and not s.flags & wp.ACK]
    assert syns and syns[0].dport == port and syns[0].src == "127.0.0.1"
    assert any(s.flags & wp.FIN and s.dport == port for s, _ in mine)
    assert any(s.paylen > 0 for s, _ in mine) and sum(s.paylen for s, _ in mine) >= 3000
    assert all(t0 - 0.5 <= ts <= t1 + 0.5 for _, ts in mine)
