"""tcplab.wire.read_tcp, the bulk reader `lab report` reads a run's captures with: the same segments,
field for field, as the record reader and decode_tcp, in every pcap format, whatever the chunk size;
its filters; truncated and foreign files."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from tcplab import wire
from tcplab.wire import ACK, FIN, PSH, RST, SYN, decode_tcp, read_pcap, read_tcp

from .test_wire import WIN7_SYN_OPTIONS, pcap_bytes, tcp_frame

A, B, C = "10.0.0.2", "10.0.0.3", "192.168.7.9"
ARP = bytes.fromhex("ffffffffffff02420a000003080600010800060400010242") + bytes(18)


def frames() -> list[tuple[float, bytes]]:
    """Every layout the readers meet: options of each kind, padding, a VLAN tag, IP options, fragments,
    frames that are no TCP/IPv4 and frames too short to be."""
    ip_opts = tcp_frame(A, B, 1, 2, payload=b"ip options")
    ip_opts = ip_opts[:14] + bytes([0x46]) + ip_opts[15:16] + (int.from_bytes(ip_opts[16:18], "big") + 4).to_bytes(
        2, "big") + ip_opts[18:34] + b"\x01\x01\x01\x00" + ip_opts[34:]
    fin = tcp_frame(A, B, 3, 4, flags=FIN | ACK, payload=b"bye")
    out = [
        tcp_frame(A, B, 40000, 8000, seq=4_294_967_000, flags=SYN, win=8192, options=WIN7_SYN_OPTIONS, ttl=128),
        tcp_frame(B, A, 8000, 40000, seq=7, ack=4_294_967_001, flags=SYN | ACK,
                  options=bytes([2, 4, 5, 180, 4, 2, 8, 10]) + (1).to_bytes(4, "big") + (2).to_bytes(4, "big")),
        tcp_frame(A, B, 40000, 8000, seq=1, ack=8, flags=PSH | ACK, payload=b"hello\r\n", ip_id=65535),
        tcp_frame(B, A, 8000, 40000, seq=8, ack=8, options=bytes([1, 1, 5, 10]) + bytes(range(8))),
        tcp_frame(C, B, 33000, 8000, flags=SYN, vlan=7),
        tcp_frame(A, B, 1, 2, frag=1),  # a later fragment
        tcp_frame(A, B, 1, 2, payload=b"x" * 1400, pad_to=0),
        tcp_frame(A, B, 1, 2)[:50],  # cut: no room for the TCP header
        ip_opts,
        ARP,
        fin[:16] + b"\0\0" + fin[18:],  # IP total length 0 (segmentation offload): the payload runs to the end
        tcp_frame(B, A, 4, 3, flags=RST),
    ]
    return [(1_795_000_000 + i * 0.001234, f) for i, f in enumerate(out)]


def expected(data: bytes) -> list[wire.TcpPacket]:
    return [t for r in read_pcap(io.BytesIO(data)) if (t := decode_tcp(r)) is not None]


@pytest.mark.parametrize("chunk", [1, 61, 4096, 1 << 22])
@pytest.mark.parametrize("nano,big", [(False, False), (True, False), (False, True), (True, True)])
def test_the_bulk_reader_decodes_what_the_record_reader_decodes(monkeypatch: pytest.MonkeyPatch, chunk: int,
                                                                 nano: bool, big: bool) -> None:
    monkeypatch.setattr(wire, "_CHUNK", chunk)
    data = pcap_bytes(frames(), nano=nano, big=big)
    got = list(read_tcp(io.BytesIO(data)))
    assert got == expected(data)
    assert [t.index for t in got] == [1, 2, 3, 4, 5, 7, 9, 11, 12]  # frame numbers as Wireshark counts them
    assert got[6].options == [] and got[6].payload == b"ip options" and got[4].src == C


@pytest.mark.parametrize("chunk", [1, 61, 4096, 1 << 22])
@pytest.mark.parametrize("nano,big", [(False, True), (True, False)])
def test_the_copies_reader_gives_each_segments_signature_and_the_segment_back(monkeypatch: pytest.MonkeyPatch,
                                                                               chunk: int, nano: bool, big: bool) -> None:
    """read_tcp_seen: what read_tcp_signed reads, every segment signed, without a TcpPacket made of it;
    from_seen makes it back, field for field."""
    monkeypatch.setattr(wire, "_CHUNK", chunk)
    data = pcap_bytes(frames(), nano=nano, big=big)
    signed = list(wire.read_tcp_signed(io.BytesIO(data), lambda src, dst: True))
    seen = list(wire.read_tcp_seen(io.BytesIO(data)))
    assert [s[0] for s in seen] == [sig for _, sig in signed]
    assert [wire.from_seen(s) for s in seen] == [t for t, _ in signed] == expected(data)
    assert [wire.from_seen(s) for s in wire.read_tcp_seen(io.BytesIO(data), lambda src, dst: src == A)] == [
        t for t in expected(data) if t.src == A]


@pytest.mark.parametrize("chunk", [1, 61, 1 << 22])
def test_the_signatures_of_segments_left_out_are_noted_when_asked(monkeypatch: pytest.MonkeyPatch,
                                                                   chunk: int) -> None:
    monkeypatch.setattr(wire, "_CHUNK", chunk)
    data = pcap_bytes(frames())
    every = list(wire.read_tcp_signed(io.BytesIO(data), lambda src, dst: True))
    noted: list[bytes] = []
    got = list(wire.read_tcp_signed(io.BytesIO(data), lambda src, dst: True, lambda src, dst: src != A,
                                    lambda src, dst: dst == B, noted))
    assert got == [(t, sig) for t, sig in every if t.src != A]
    assert noted == [sig for t, sig in every if t.src == A and t.dst == B] and len(noted) >= 3


def test_the_bulk_reader_on_the_fixed_runs_captures() -> None:
    run = Path(__file__).resolve().parents[1] / "data" / "report_run" / "capture"
    for name in ("win", "server", "linux"):  # little-endian µs, big-endian ns, little-endian ns
        data = (run / f"{name}.pcap").read_bytes()
        assert list(read_tcp(io.BytesIO(data))) == expected(data) != []


def test_pairs_it_is_told_to_skip_are_not_decoded_and_asked_once() -> None:
    asked: list[tuple[str, str]] = []

    def keep(src: str, dst: str) -> bool:
        asked.append((src, dst))
        return src == A

    data = pcap_bytes(frames())
    got = list(read_tcp(io.BytesIO(data), keep))
    assert got == [t for t in expected(data) if t.src == A]
    assert sorted(asked) == sorted(set(asked)) and (B, A) in asked and (C, B) in asked


def test_only_segments_with_the_flags_asked_for() -> None:
    data = pcap_bytes(frames())
    got = list(read_tcp(io.BytesIO(data), flags=SYN | FIN | RST))
    assert got == [t for t in expected(data) if t.flags & (SYN | FIN | RST)]
    assert [t.flag_string() for t in got] == ["S", "S.", "S", "F.", "R"]


@pytest.mark.parametrize("cut", [1, 8, 16, 17, 40])
def test_a_truncated_last_record_ends_the_segments_quietly(cut: int) -> None:
    data = pcap_bytes(frames())
    whole = list(read_tcp(io.BytesIO(data)))
    assert list(read_tcp(io.BytesIO(data[:-cut]))) == whole[:-1]  # the last frame (an RST) is cut


def test_a_file_that_is_no_pcap_is_one_line_of_error_and_a_short_one_has_no_segments() -> None:
    with pytest.raises(ValueError, match=r"^not a pcap file \(bad magic\)$"):
        list(read_tcp(io.BytesIO(b"\x0a\x0d\x0d\x0a" + bytes(40))))
    assert list(read_tcp(io.BytesIO(b""))) == [] and list(read_tcp(io.BytesIO(pcap_bytes([])[:20]))) == []
