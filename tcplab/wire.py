"""Capture files and TCP packets: a fast pcap reader, a TCP/IPv4 decoder, a pcapng writer.

Format code only: it knows nothing of labs. It is hand-written rather than
scapy because it is on the hot path of analysis (100 000 packets must decode
in well under a second) and because the play loop watches live captures.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Container, Iterator, Sequence

LINKTYPE_ETHERNET = 1
_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}

FLAG_BITS = (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("U", 0x20), ("E", 0x40), ("W", 0x80))
ACK = 0x10
FIN, SYN, RST, PSH = 0x01, 0x02, 0x04, 0x08


@dataclass(frozen=True, slots=True)
class RawPacket:
    ts: float
    data: bytes
    orig_len: int
    index: int  # 1-based frame number in its file, as Wireshark counts


@dataclass(slots=True)  # slots: a million of them must fit in memory
class TcpPacket:
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    win: int
    ttl: int
    ip_id: int
    options: list[tuple[str, object]] = field(default_factory=list)
    payload: bytes = b""
    checksum: int = 0
    index: int = 0

    def flag_string(self) -> str:
        """Flags as tcpdump prints them: ``S``, ``S.``, ``F.``, ``R.``, ``P.``, ``.``."""
        s = "".join(ch for ch, bit in FLAG_BITS if self.flags & bit)
        if self.flags & ACK:
            s += "."
        return s or "none"

    def option_names(self) -> list[str]:
        return [name for name, _ in self.options]

    def option(self, name: str) -> object | None:
        for n, v in self.options:
            if n == name:
                return v
        return None


def pcap_format(head: bytes) -> tuple[struct.Struct, float]:
    """The record header layout and time unit that a pcap file header announces; ValueError if none."""
    if head[:4] not in _PCAP_MAGIC:
        raise ValueError("not a pcap file (bad magic)")
    endian, unit = _PCAP_MAGIC[head[:4]]
    return struct.Struct(endian + "IIII"), unit


def read_records(f: BinaryIO, rec: struct.Struct, unit: float, index: int = 0) -> Iterator[RawPacket]:
    """Records from the file's position on, numbered after ``index``; stops quietly at a truncated
    record (a live capture). While a record is being yielded, the file is positioned right after it."""
    read = f.read
    while True:
        h = read(16)
        if len(h) < 16:
            return
        sec, frac, incl, orig = rec.unpack(h)
        data = read(incl)
        if len(data) < incl:
            return
        index += 1
        yield RawPacket(sec + frac * unit, data, orig, index)


def read_pcap(f: BinaryIO) -> Iterator[RawPacket]:
    """Packets of a classic pcap file; stops quietly at a truncated last record (a live capture)."""
    head = f.read(24)
    if len(head) < 24:
        return
    rec, unit = pcap_format(head)
    yield from read_records(f, rec, unit)


# The options of every segment the bulk reader finds without any: one list, never changed by anyone.
NO_OPTIONS: list[tuple[str, object]] = []
# Ethernet (no VLAN tag), IPv4 without options, the TCP header: what nearly every frame of a lab is.
_ETH_IP_TCP = struct.Struct("!12xHBxHHHBB2x4s4sHHIIHHH")
_CHUNK = 1 << 22


def read_tcp(f: BinaryIO, keep: Callable[[str, str], bool] | None = None, flags: int = 0) -> Iterator[TcpPacket]:
    """The TCP/IPv4 segments of a classic pcap file (as :func:`read_pcap` then :func:`decode_tcp`, and
    the same packets), each with its frame number in ``index``; frames that are not TCP/IPv4 are skipped
    but counted. ``keep(src, dst)``: False skips the segments between those addresses without decoding
    them (asked once per pair); ``flags``: only segments with one of these flags. Stops quietly at a
    truncated last record; ValueError if the file is no pcap.

    This is the bulk path (a run of a million packets): records are read in large chunks, decoded in
    place with one unpack for the common layout, and addresses are made into strings once each."""
    for t, _ in _segments(f, keep, flags, None):
        yield t


def read_tcp_signed(f: BinaryIO, sign: Callable[[str, str], bool], keep: Callable[[str, str], bool] | None = None,
                    note: Callable[[str, str], bool] | None = None, noted: list[bytes] | None = None,
                    flagged: tuple[int, list[TcpPacket]] | None = None) -> Iterator[tuple[TcpPacket, bytes | None]]:
    """:func:`read_tcp`'s segments (``keep`` as there), each with its :func:`frame_signature` when
    ``sign(src, dst)`` (asked once per pair of addresses), else None. The signatures of the segments ``keep``
    leaves out between addresses ``note(src, dst)`` wants are appended to ``noted`` (no segment made).
    ``flagged``: (flags, a list): every segment with one of those flags, left out or not, is appended to the
    list, in the file's order (what ``read_tcp(f, flags=flags)`` reads, without reading the file again)."""
    return _segments(f, keep, 0, sign, note, noted, flagged)


def ipv4_offset(d: bytes) -> int | None:
    """Where the IPv4 header of an Ethernet frame starts (None: not IPv4)."""
    off = 14
    if len(d) >= 18 and d[12] == 0x81 and d[13] == 0x00:  # VLAN tag
        off = 18
    return off if len(d) >= off + 20 and d[off - 2] == 0x08 and d[off - 1] == 0x00 else None


def frame_signature(d: bytes) -> bytes | None:
    """What a router leaves as it was and a NAT box rewrites: the IP id, both addresses and the first 14 bytes
    past the IP header (TCP's ports, seq, ack and flags). None: not IPv4."""
    off = ipv4_offset(d)
    if off is None:
        return None
    body = off + (d[off] & 0x0F) * 4
    return d[off + 4:off + 6] + d[off + 12:off + 20] + d[body:body + 14]


def _segments(f: BinaryIO, keep: Callable[[str, str], bool] | None, flags: int,
              sign: Callable[[str, str], bool] | None, note: Callable[[str, str], bool] | None = None,
              noted: list[bytes] | None = None, flagged: tuple[int, list[TcpPacket]] | None = None
              ) -> Iterator[tuple[TcpPacket, bytes | None]]:
    head = f.read(24)
    if len(head) < 24:
        return
    rec, unit = pcap_format(head)
    unpack_rec, unpack_frame = rec.unpack_from, _ETH_IP_TCP.unpack_from
    names: dict[bytes, str] = {}
    # each pair of addresses: kept, signed (or, not kept: noted), the two names
    pairs: dict[bytes, tuple[bool, bool, str, str]] = {}
    into = [] if noted is None else noted
    mask, marked = (0, []) if flagged is None else flagged
    ports: dict[int, int] = {}  # each port number one object: a million packets carry a few ports
    buf, pos, index = b"", 0, 0
    while True:
        more = f.read(_CHUNK)
        if not more:
            return
        buf = buf[pos:] + more
        pos, n = 0, len(buf)
        while pos + 16 <= n:
            sec, frac, incl, orig = unpack_rec(buf, pos)
            o = pos + 16
            end = o + incl
            if end > n:
                break
            index += 1
            pos = end
            if incl < 54 or buf[o + 12:o + 14] != b"\x08\x00" or buf[o + 14] != 0x45 or buf[o + 23] != 6:
                frame = buf[o:end]
                t = decode_tcp(RawPacket(sec + frac * unit, frame, orig, index))  # any other layout
                if t is None or (flags and not t.flags & flags):
                    continue
                if t.flags & mask:
                    marked.append(t)
                pair = bytes(int(x) for x in f"{t.src}.{t.dst}".split("."))  # as the common path keys it
                known = pairs.get(pair)
                if known is None:
                    want = keep is None or keep(t.src, t.dst)
                    known = pairs[pair] = (want, sign is not None and sign(t.src, t.dst) if want else
                                           note is not None and note(t.src, t.dst), t.src, t.dst)
                if known[0]:
                    yield t, frame_signature(frame) if known[1] else None
                elif known[1]:
                    into.append(frame_signature(frame) or b"")
                continue
            if flags and not buf[o + 47] & flags:
                continue
            pair = buf[o + 26:o + 34]
            known = pairs.get(pair)
            if known is None:
                src, dst = _name(names, pair[:4]), _name(names, pair[4:])
                want = keep is None or keep(src, dst)
                known = pairs[pair] = (want, sign is not None and sign(src, dst) if want else
                                       note is not None and note(src, dst), src, dst)
            if not known[0]:
                if known[1] and not (buf[o + 20] & 0x1F or buf[o + 21]):  # noted, unless a later IP fragment
                    into.append(buf[o + 18:o + 20] + pair + buf[o + 34:o + 48])
                if buf[o + 47] & mask and (t := decode_tcp(RawPacket(sec + frac * unit, buf[o:end], orig, index))):
                    marked.append(t)
                continue
            (_, _, total, ip_id, frag, ttl, _, _, _, sport, dport, seq, ack, doff_flags, win,
             csum) = unpack_frame(buf, o)
            if frag & 0x1FFF:  # a later IP fragment: no TCP header here
                continue
            doff = (doff_flags >> 12) * 4
            t0 = o + 34
            stop = end if not total or end < o + 14 + total else o + 14 + total
            t = TcpPacket(sec + frac * unit, known[2], known[3], ports.setdefault(sport, sport),
                          ports.setdefault(dport, dport), seq, ack, doff_flags & 0xFF, win, ttl, ip_id,
                          _options(buf[t0 + 20:min(end, t0 + doff)]) if doff > 20 else NO_OPTIONS,
                          buf[t0 + (doff if doff > 20 else 20):stop], csum, index)
            if doff_flags & mask:
                marked.append(t)
            yield t, buf[o + 18:o + 20] + pair + buf[t0:t0 + 14] if known[1] else None


# A segment as the reader of a packet's other copies needs it (:func:`read_tcp_seen`): its
# :func:`frame_signature`, time, frame number, TTL, window, checksum, options and payload.
Seen = tuple[bytes, float, int, int, int, int, list[tuple[str, object]], bytes]
# From the IP total length on: total length, fragment offset, TTL, TCP data offset, window, checksum.
_SEEN = struct.Struct("!H2xHB23xBxHH")
_SIGNATURE = struct.Struct("!H4s4sHHIIxB")  # frame_signature's bytes: IP id, addresses, ports, seq, ack, flags


def read_tcp_seen(f: BinaryIO, keep: Callable[[str, str], bool] | None = None,
                  known: Container[bytes] = ()) -> Iterator[Seen]:
    """:func:`read_tcp`'s segments (``keep`` as there) as :data:`Seen` tuples, no :class:`TcpPacket` made:
    for a reader that has the same packet from another capture already and needs to know only whether
    this copy differs from it (a router's TTL, a rewritten window) and when it was seen; those whose
    signature is in ``known`` are left out. :func:`from_seen` makes the segment of one, equal to
    :func:`read_tcp`'s."""
    head = f.read(24)
    if len(head) < 24:
        return
    rec, unit = pcap_format(head)
    unpack_rec, unpack_seen = rec.unpack_from, _SEEN.unpack_from
    pairs: dict[bytes, bool] = {}  # each pair of addresses: kept
    buf, pos, index = b"", 0, 0
    while True:
        more = f.read(_CHUNK)
        if not more:
            return
        buf = buf[pos:] + more
        pos, n = 0, len(buf)
        while pos + 16 <= n:
            sec, frac, incl, orig = unpack_rec(buf, pos)
            o = pos + 16
            end = o + incl
            if end > n:
                break
            index += 1
            pos = end
            if incl < 54 or buf[o + 12:o + 14] != b"\x08\x00" or buf[o + 14] != 0x45 or buf[o + 23] != 6:
                frame = buf[o:end]
                t = decode_tcp(RawPacket(sec + frac * unit, frame, orig, index))  # any other layout
                if t is None:
                    continue
                pair = bytes(int(x) for x in f"{t.src}.{t.dst}".split("."))  # as the common path keys it
                want = pairs.get(pair)
                if want is None:
                    want = pairs[pair] = keep is None or keep(t.src, t.dst)
                sig = frame_signature(frame) or b""
                if want and sig not in known:
                    yield sig, t.ts, index, t.ttl, t.win, t.checksum, t.options, t.payload
                continue
            pair = buf[o + 26:o + 34]
            want = pairs.get(pair)
            if want is None:
                want = pairs[pair] = keep is None or keep(_ip(pair[:4]), _ip(pair[4:]))
            if not want:
                continue
            total, frag, ttl, doff, win, csum = unpack_seen(buf, o + 16)
            if frag & 0x1FFF:  # a later IP fragment: no TCP header here
                continue
            t0 = o + 34
            sig = buf[o + 18:o + 20] + pair + buf[t0:t0 + 14]
            if sig in known:
                continue
            doff = (doff >> 4) * 4
            stop = end if not total or end < o + 14 + total else o + 14 + total
            yield (sig, sec + frac * unit, index, ttl, win, csum,
                   _options(buf[t0 + 20:min(end, t0 + doff)]) if doff > 20 else NO_OPTIONS,
                   buf[t0 + (doff if doff > 20 else 20):stop])


def from_seen(seen: Seen) -> TcpPacket:
    """The segment of a :func:`read_tcp_seen` tuple."""
    sig, ts, index, ttl, win, csum, options, payload = seen
    ip_id, src, dst, sport, dport, seq, ack, flags = _SIGNATURE.unpack(sig)
    return TcpPacket(ts, _ip(src), _ip(dst), sport, dport, seq, ack, flags, win, ttl, ip_id, options, payload, csum,
                     index)


def _name(names: dict[bytes, str], b: bytes) -> str:
    name = names.get(b)
    if name is None:
        name = names[b] = _ip(b)
    return name


def read_pcap_file(path: str) -> list[RawPacket]:
    with open(path, "rb") as f:
        return list(read_pcap(f))


LINKTYPE_RAW = (101, 228)  # raw IPv4 (tcpdump on a tun device)
LINKTYPE_SLL = 113  # Linux cooked capture (tcpdump -i any)
LINKTYPE_SLL2 = 276
_ETH_IPV4 = b"\0" * 12 + b"\x08\x00"


def _as_ethernet(linktype: int, data: bytes) -> bytes | None:
    """The frame with an Ethernet header in place of its link layer (what decode_tcp reads), or None."""
    if linktype == LINKTYPE_ETHERNET:
        return data
    if linktype in LINKTYPE_RAW:
        return _ETH_IPV4 + data
    if linktype == LINKTYPE_SLL and len(data) >= 16:
        return data[:12] + data[14:]  # its protocol field lands where Ethernet's type is
    if linktype == LINKTYPE_SLL2 and len(data) >= 20:
        return b"\0" * 12 + data[0:2] + data[20:]
    return None


@dataclass(frozen=True)
class CaptureFrame:
    """A frame of a pcap or pcapng file as Ethernet, and the interface that captured it (pcapng's name)."""
    raw: RawPacket
    interface: str


def read_capture(f: BinaryIO) -> Iterator[CaptureFrame]:
    """Frames of a pcap or pcapng file of any byte order, as Ethernet frames (Ethernet, Linux cooked and
    raw IP link types; frames of other link types are skipped). ValueError if the file is neither."""
    head = f.read(4)
    if head == b"\x0a\x0d\x0d\x0a":
        yield from _read_pcapng(f, head)
        return
    rest = f.read(20)
    if len(rest) < 20:
        raise ValueError("not a pcap or pcapng file (too short)")
    rec, unit = pcap_format(head + rest)
    linktype = struct.unpack(rec.format[0] + "I", rest[16:20])[0] & 0xFFFF
    for raw in read_records(f, rec, unit):
        data = _as_ethernet(linktype, raw.data)
        if data is not None:
            yield CaptureFrame(RawPacket(raw.ts, data, raw.orig_len, raw.index), "")


def _read_pcapng(f: BinaryIO, first: bytes) -> Iterator[CaptureFrame]:
    """Enhanced and simple packet blocks of every section; interfaces' link types, names and time units."""
    interfaces: list[tuple[int, str, float]] = []  # (link type, name, seconds per tick)
    endian = "<"
    index = 0
    block_type = first
    while True:
        if len(block_type) < 4:
            return
        length_b = f.read(4)
        if len(length_b) < 4:
            return
        if block_type == b"\x0a\x0d\x0d\x0a":
            magic = f.read(4)
            endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">" if magic == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                raise ValueError("not a pcapng file (bad byte-order magic)")
            length = struct.unpack(endian + "I", length_b)[0]
            body = magic + f.read(max(0, length - 16))
            interfaces = []
        else:
            length = struct.unpack(endian + "I", length_b)[0]
            body = f.read(max(0, length - 12))
        if length < 12 or len(body) < length - 12:
            if index == 0 and not interfaces and block_type != b"\x0a\x0d\x0d\x0a":
                raise ValueError("not a pcapng file (truncated block)")
            return
        f.read(4)  # the trailing copy of the length
        btype = struct.unpack(endian + "I", block_type)[0]
        if btype == 1 and len(body) >= 8:
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            name, unit = "", 1e-6
            for code, value in _pcapng_options(body[8:], endian):
                if code == 2:
                    name = value.decode("utf-8", "replace")
                elif code == 9 and value:
                    unit = 2.0 ** -(value[0] & 0x7F) if value[0] & 0x80 else 10.0 ** -value[0]
            interfaces.append((linktype, name, unit))
        elif btype in (6, 3) and interfaces:
            if btype == 6 and len(body) >= 20:
                iface, hi, lo, caplen, orig = struct.unpack_from(endian + "IIIII", body, 0)
                data, ticks = body[20:20 + caplen], (hi << 32) | lo
            elif btype == 3 and len(body) >= 4:
                iface, ticks, orig = 0, 0, struct.unpack_from(endian + "I", body, 0)[0]
                data = body[4:4 + min(orig, len(body) - 4)]
            else:
                iface = len(interfaces)
            if iface < len(interfaces):
                linktype, name, unit = interfaces[iface]
                index += 1
                frame = _as_ethernet(linktype, data)
                if frame is not None:
                    yield CaptureFrame(RawPacket(ticks * unit, frame, orig, index), name)
        block_type = f.read(4)


def _pcapng_options(b: bytes, endian: str) -> Iterator[tuple[int, bytes]]:
    i = 0
    while i + 4 <= len(b):
        code, length = struct.unpack_from(endian + "HH", b, i)
        if code == 0:
            return
        yield code, b[i + 4: i + 4 + length]
        i += 4 + length + (-length % 4)


def _ip(b: bytes) -> str:
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def decode_tcp(raw: RawPacket) -> TcpPacket | None:
    """The TCP/IPv4 segment in an Ethernet frame, or None for anything else."""
    d = raw.data
    off = 14
    if len(d) < off + 20:
        return None
    ethertype = (d[12] << 8) | d[13]
    if ethertype == 0x8100:  # VLAN tag
        ethertype = (d[16] << 8) | d[17]
        off = 18
    if ethertype != 0x0800 or len(d) < off + 20 or d[off] >> 4 != 4:
        return None
    ihl = (d[off] & 0x0F) * 4
    if ihl < 20 or d[off + 9] != 6 or len(d) < off + ihl + 20:
        return None
    if ((d[off + 6] & 0x1F) << 8 | d[off + 7]) != 0:  # a later IP fragment: no TCP header here
        return None
    total = (d[off + 2] << 8) | d[off + 3]
    ip_id = (d[off + 4] << 8) | d[off + 5]
    ttl = d[off + 8]
    src = _ip(d[off + 12: off + 16])
    dst = _ip(d[off + 16: off + 20])
    t = off + ihl
    sport, dport, seq, ack, doff_flags, win, csum = struct.unpack_from("!HHIIHHH", d, t)
    doff = max(20, (doff_flags >> 12) * 4)  # a bogus offset below the header's size: no options
    flags = doff_flags & 0xFF
    opts = _options(d[t + 20: t + doff])
    end = min(len(d), off + total) if total else len(d)
    payload = d[t + doff: end]
    if total and off + total > len(d) and raw.orig_len > len(d):
        # cut by the capture's snaplen (a GSO super-packet is longer than any frame): its length is the IP
        # header's, the bytes past the cut read as zeros
        payload += bytes(off + total - max(len(d), t + doff))
    return TcpPacket(raw.ts, src, dst, sport, dport, seq, ack, flags, win, ttl, ip_id, opts,
                     payload, csum, raw.index)


def _options(b: bytes) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    i = 0
    n = len(b)
    while i < n:
        kind = b[i]
        if kind == 0:
            out.append(("eol", None))
            break
        if kind == 1:
            out.append(("nop", None))
            i += 1
            continue
        if i + 1 >= n:
            break
        length = b[i + 1]
        if length < 2 or i + length > n:
            break
        body = b[i + 2: i + length]
        if kind == 2 and length == 4:
            out.append(("mss", struct.unpack("!H", body)[0]))
        elif kind == 3 and length == 3:
            out.append(("wscale", body[0]))
        elif kind == 4:
            out.append(("sackOK", None))
        elif kind == 5 and len(body) % 8 == 0:  # SACK blocks: (left edge, right edge) pairs
            out.append(("sack", tuple(struct.iter_unpack("!II", body))))
        elif kind == 8 and length == 10:
            out.append(("TS", struct.unpack("!II", body)))
        else:
            out.append((f"opt-{kind}", body.hex()))
        i += length
    return out


def format_options(options: list[tuple[str, object]]) -> str:
    parts = []
    for name, val in options:
        if name == "TS" and isinstance(val, tuple):
            parts.append(f"TS val {val[0]} ecr {val[1]}")
        elif name == "sack" and isinstance(val, tuple):  # as tcpdump: sack 1 {1001:2001}
            parts.append(f"sack {len(val)} " + "".join(f"{{{a}:{b}}}" for a, b in val))
        elif val is None:
            parts.append(name)
        else:
            parts.append(f"{name} {val}")
    return "[" + ",".join(parts) + "]"


# --- pcapng writer -------------------------------------------------------

def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """Writes a pcapng file: one interface per capture, packets with optional comments."""

    def __init__(self, f: BinaryIO, comment: str | None = None) -> None:
        self.f = f
        opts = (_opt(1, comment.encode()) if comment else b"") + _opt(4, b"tcplab") + _opt(0, b"")
        body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts
        f.write(_block(0x0A0D0D0A, body))
        self.interfaces = 0

    def add_interface(self, name: str, description: str = "", linktype: int = LINKTYPE_ETHERNET) -> int:
        opts = _opt(2, name.encode())
        if description:
            opts += _opt(3, description.encode())
        opts += _opt(9, bytes([6])) + _opt(0, b"")  # if_tsresol: microseconds
        self.f.write(_block(0x00000001, struct.pack("<HHI", linktype, 0, 0) + opts))
        self.interfaces += 1
        return self.interfaces - 1

    def add_packet(self, interface: int, ts: float, data: bytes, orig_len: int, comments: Sequence[str] = ()) -> None:
        us = int(round(ts * 1e6))
        opts = b"".join(_opt(1, c.encode()) for c in comments)
        if opts:
            opts += _opt(0, b"")
        body = struct.pack("<IIIII", interface, us >> 32, us & 0xFFFFFFFF, len(data), orig_len) + _pad(data) + opts
        self.f.write(_block(0x00000006, body))
