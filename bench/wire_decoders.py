#!/usr/bin/env python3
"""Decoders of a run's captures side by side: tcplab.wire against dpkt, python-pcapng and numpy, on the same
1 000 000-packet pcap and pcapng, in one invocation.

Every decoder does the same job, the one `lab report` needs: the TCP/IPv4 segments of the file as
tcplab.wire.TcpPacket objects (addresses, ports, seq/ack, flags, window, TTL, IP id, options, payload,
checksum, frame number), all kept in memory. Each runs in its own process (its peak memory is its own),
``--repeat`` times, best time kept; the figures are the process's CPU time and wall time of the decoding
(imports excluded), its peak resident memory, and the ratio to tcplab.wire's bulk reader. A digest of every
decoded field checks that all decoders found the same packets.

The capture is bench/report.py's synthetic run of ``--packets`` packets (made once under ``--out`` and
reused): capture/server.pcap holds every packet once (little-endian, microseconds), capture/all.pcapng
the same packets as tcplab merged them.

dpkt, python-pcapng and numpy live in a benchmark venv, made on first use:
    python3 -m venv bench/.venv-decoders
    bench/.venv-decoders/bin/pip install dpkt==1.9.8 python-pcapng==2.1.1 numpy

Usage: python bench/wire_decoders.py [--packets 1000000] [--repeat 3] [--out bench/out]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-decoders"
PACKAGES = ["dpkt==1.9.8", "python-pcapng==2.1.1", "numpy"]
sys.path.insert(0, str(ROOT))

from tcplab.wire import (TcpPacket, _options, decode_tcp, pcap_format, read_capture,  # noqa: E402 - after sys.path
                         read_tcp)


# --- the decoders (each returns the list of TcpPacket of one file) ---------------------------------------

def wire_bulk(path: Path) -> list[TcpPacket]:
    """tcplab.wire.read_tcp: what `lab report` reads the per-host pcaps with."""
    with open(path, "rb") as f:
        return list(read_tcp(f))


def wire_records(path: Path) -> list[TcpPacket]:
    """tcplab.wire's record reader and decode_tcp (what `lab report` used before read_tcp; pcap or pcapng)."""
    out = []
    with open(path, "rb") as f:
        for frame in read_capture(f):
            t = decode_tcp(frame.raw)
            if t is not None:
                out.append(t)
    return out


def _dpkt_options(buf: bytes) -> list[tuple[str, object]]:
    return _options(buf)  # dpkt.tcp.parse_opts gives (kind, bytes) pairs; the names are tcplab's


def dpkt_decoder(path: Path) -> list[TcpPacket]:
    import dpkt

    out = []
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        reader: Iterable[tuple[float, bytes]] = (dpkt.pcapng.Reader(f) if head == b"\x0a\x0d\x0d\x0a"
                                                 else dpkt.pcap.Reader(f))
        for index, (ts, buf) in enumerate(reader, 1):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or ip.off & dpkt.ip.IP_OFFMASK:
                continue
            tcp = ip.data
            if not isinstance(tcp, dpkt.tcp.TCP):
                continue
            out.append(TcpPacket(ts, dpkt.utils.inet_to_str(ip.src), dpkt.utils.inet_to_str(ip.dst), tcp.sport,
                                 tcp.dport, tcp.seq, tcp.ack, tcp.flags, tcp.win, ip.ttl, ip.id,
                                 _dpkt_options(tcp.opts) if tcp.opts else [], bytes(tcp.data), tcp.sum, index))
    return out


def pcapng_decoder(path: Path) -> list[TcpPacket]:
    """python-pcapng reads pcapng only; its blocks give the frame, decoded here as decode_tcp does."""
    import pcapng
    from pcapng.blocks import EnhancedPacket

    from tcplab.wire import RawPacket

    out = []
    with open(path, "rb") as f:
        index = 0
        for block in pcapng.FileScanner(f):
            if isinstance(block, EnhancedPacket):
                index += 1
                t = decode_tcp(RawPacket(float(block.timestamp), block.packet_data, block.packet_len, index))
                if t is not None:
                    out.append(t)
    return out


def _numpy_fields(data: bytes, offsets: list[int], lengths: list[int], stamps: list[float],
                  first_index: list[int]) -> list[TcpPacket]:
    """Frames at ``offsets`` of ``data`` decoded in bulk: one gather of their first 54 bytes, the fields as
    columns (numpy views of big-endian integers), Python objects made only at the end, each address once.
    Frames of another layout go through decode_tcp."""
    import numpy as np

    from tcplab.wire import RawPacket, _ip

    buf = np.frombuffer(data, dtype=np.uint8)
    o = np.asarray(offsets, dtype=np.int64)
    incl = np.asarray(lengths, dtype=np.int64)
    padded = np.concatenate([buf, np.zeros(54, dtype=np.uint8)])  # the last frame may be shorter than 54
    hdr = np.lib.stride_tricks.sliding_window_view(padded, 54)[o]  # (frames, 54): a copy of their headers only

    def be(lo: int, size: int) -> Any:
        dtype = {1: ">u1", 2: ">u2", 4: ">u4"}[size]
        return np.ascontiguousarray(hdr[:, lo:lo + size]).view(dtype).ravel().astype(np.int64)

    fast = (incl >= 54) & (be(12, 2) == 0x0800) & (hdr[:, 14] == 0x45) & (hdr[:, 23] == 6)
    keep = fast & ((be(20, 2) & 0x1FFF) == 0)
    idx = np.flatnonzero(keep)
    total = be(16, 2)[idx]
    doff_flags = be(46, 2)[idx]
    doff = np.maximum(20, (doff_flags >> 12) * 4)
    ok, end = o[idx], (o + incl)[idx]
    a = ok + 34 + doff
    b = np.where(total > 0, np.minimum(end, ok + 14 + total), end)
    src, dst = be(26, 4)[idx], be(30, 4)[idx]
    uniq = np.unique(np.concatenate([src, dst]))
    name_of = {int(v): _ip(int(v).to_bytes(4, "big")) for v in uniq}
    names = np.array([name_of[int(v)] for v in uniq], dtype=object)
    srcs = names[np.searchsorted(uniq, src)].tolist()
    dsts = names[np.searchsorted(uniq, dst)].tolist()
    idx_l = idx.tolist()
    cols = [be(34, 2)[idx].tolist(), be(36, 2)[idx].tolist(), be(38, 4)[idx].tolist(), be(42, 4)[idx].tolist(),
            (doff_flags & 0xFF).tolist(), be(48, 2)[idx].tolist(), hdr[idx, 22].tolist(), be(18, 2)[idx].tolist(),
            be(50, 2)[idx].tolist(), a.tolist(), b.tolist(), doff.tolist(), end.tolist()]
    out: list[tuple[int, TcpPacket]] = []
    for (i, s, d, sport, dport, seq, ack, flags, win, ttl, ip_id, csum, pa, pb, doff_i, e) in zip(idx_l, srcs, dsts,
                                                                                                 *cols):
        opts = _options(data[pa - doff_i + 20:min(e, pa)]) if doff_i > 20 else []
        out.append((i, TcpPacket(stamps[i], s, d, sport, dport, seq, ack, flags, win, ttl, ip_id, opts,
                                 data[pa:pb], csum, first_index[i])))
    other = np.flatnonzero(~fast).tolist()
    for i in other:  # any other layout: the general decoder
        t = decode_tcp(RawPacket(stamps[i], data[offsets[i]:offsets[i] + lengths[i]], lengths[i], first_index[i]))
        if t is not None:
            out.append((i, t))
    if other:
        out.sort(key=lambda x: x[0])
    return [t for _, t in out]


def numpy_decoder(path: Path) -> list[TcpPacket]:
    """The records are walked in Python (each one's length says where the next begins), the frames decoded
    by numpy in bulk."""
    data = path.read_bytes()
    offsets: list[int] = []
    lengths: list[int] = []
    stamps: list[float] = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        # tcplab's own pcapng: little-endian, one section, microsecond interfaces, Ethernet
        pos, n = 0, len(data)
        unpack = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        while pos + 12 <= n:
            btype, blen = unpack(data, pos)
            if btype == 6:
                _, hi, lo, caplen, _ = epb(data, pos + 8)
                offsets.append(pos + 28)
                lengths.append(caplen)
                stamps.append(((hi << 32) | lo) * 1e-6)
            pos += blen
    else:
        rec, unit = pcap_format(data[:24])
        up = rec.unpack_from
        pos, n = 24, len(data)
        while pos + 16 <= n:
            sec, frac, incl, _ = up(data, pos)
            if pos + 16 + incl > n:
                break
            offsets.append(pos + 16)
            lengths.append(incl)
            stamps.append(sec + frac * unit)
            pos += 16 + incl
    return _numpy_fields(data, offsets, lengths, stamps, list(range(1, len(offsets) + 1)))


DECODERS: dict[str, Callable[[Path], list[TcpPacket]]] = {
    "wire.read_tcp": wire_bulk, "wire records": wire_records, "dpkt": dpkt_decoder,
    "python-pcapng": pcapng_decoder, "numpy": numpy_decoder}
FORMATS = {"wire.read_tcp": ("pcap",), "python-pcapng": ("pcapng",)}  # the others read both


def digest(packets: list[TcpPacket]) -> str:
    h = 0
    for t in packets:
        h = zlib.crc32(repr((round(t.ts, 6), t.src, t.dst, t.sport, t.dport, t.seq, t.ack, t.flags, t.win, t.ttl,
                             t.ip_id, t.options, t.payload, t.checksum, t.index)).encode(), h)
    return f"{len(packets)}:{h:08x}"


def child(name: str, path: Path) -> None:
    import gc

    gc.disable()  # as lab report decodes: no collection walks the packets being made
    fn = DECODERS[name]
    c0, w0 = time.process_time(), time.perf_counter()
    packets = fn(path)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"cpu": cpu, "wall": wall, "rss": rss, "digest": digest(packets)}))


def venv_python() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return py


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs of each decoder")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--only", default="", help="decoders, comma-separated (default: all)")
    ap.add_argument("--child", nargs=2, metavar=("DECODER", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    rd = args.out / f"bench-{args.packets}"
    if not (rd / "capture" / "all.pcapng").is_file():
        sys.path.insert(0, str(ROOT / "bench"))
        from report import make_run

        make_run(args.out, args.packets)
    files = {"pcap": rd / "capture" / "server.pcap", "pcapng": rd / "capture" / "all.pcapng"}
    py = venv_python()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    names = [n for n in DECODERS if not args.only or n in args.only.split(",")]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.packets} packets, best of {args.repeat}, "
          f"load average at start {load()}")
    rows = []
    for fmt, path in files.items():
        digests = set()
        for name in names:
            if fmt not in FORMATS.get(name, ("pcap", "pcapng")):
                continue
            runs = []
            for _ in range(args.repeat):
                r = subprocess.run([str(py), __file__, "--child", name, str(path)], env=env, check=True,
                                   capture_output=True, text=True)
                runs.append(json.loads(r.stdout))
            best = min(runs, key=lambda x: x["cpu"])
            digests.add(best["digest"])
            rows.append((fmt, name, best, load()))
        if len(digests) > 1:
            print(f"DIFFERENT PACKETS in {fmt}: {sorted(digests)}")
    print("| file | decoder | CPU s | wall s | peak RSS MiB | CPU / wire's | load average after |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    bases = {fmt: next((b["cpu"] for f, n, b, _ in sorted(rows, key=lambda r: r[1] != "wire.read_tcp")
                        if f == fmt and n.startswith("wire")), None) for fmt in files}
    for fmt, name, best, la in rows:
        b = bases[fmt]
        ratio = f"{best['cpu'] / b:.2f}" if b else "-"
        print(f"| {files[fmt].name} | {name} | {best['cpu']:.2f} | {best['wall']:.2f} | {best['rss'] / 2**20:.0f} | "
              f"{ratio} | {la} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
