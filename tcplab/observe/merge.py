"""capture/all.pcapng: every host's capture on one clock, each packet once, steps as comments.

One clock: the hosts are containers of one machine, so their captures share
the kernel's wall clock and need no alignment.

De-duplication: a packet crossing the bridge is seen twice, by its sender's
capture and by its receiver's. The merged file keeps the sender's copy (its
interface is named after the sending host), so every packet appears once, at
the moment it left. A packet is kept from the receiver's capture instead when
its source is no lab host, or when the sender has no capture file (a host
whose capture never started), or when the sender's capture has no packet with
its IP id, addresses, ports, seq, ack and flags: a box on the way rewrote it
(a NAT box's masquerade) or made it in the sender's name (a middlebox's RST);
a router's copy differs from the sender's only in TTL and checksum, so it is
still one packet. Frames that are not IPv4 (ARP, when a lab's
filter lets it through) are kept once: identical bytes seen by several hosts
within 10 ms are one frame, kept from the first capture that has it.

Steps: each played step becomes a comment ``step: <title>`` on the first
packet at or after the step's start, so Wireshark shows it in place
(``tshark -Y frame.comment``); a step that did not end well says how
(``(failed)``, ``(interrupted)``). Steps that began after the last packet are
put on the last packet, marked ``(after the last packet)``. The file's
section comment lists every step with its number.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Container, Iterable, Mapping

from ..runfiles.steps import StepRecord
from ..wire import PcapngWriter, RawPacket, frame_signature, ipv4_offset, read_pcap

SAME_FRAME_WINDOW = 0.010  # seconds: identical non-IP frames this close are one frame seen twice


def _ipv4_ends(raw: RawPacket) -> tuple[str, str] | None:
    d = raw.data
    off = ipv4_offset(d)
    if off is None:
        return None
    return (f"{d[off + 12]}.{d[off + 13]}.{d[off + 14]}.{d[off + 15]}",
            f"{d[off + 16]}.{d[off + 17]}.{d[off + 18]}.{d[off + 19]}")


def signature(raw: RawPacket) -> bytes | None:
    """What a router leaves as it was and a NAT box rewrites (:func:`tcplab.wire.frame_signature`). None: not
    IPv4."""
    return frame_signature(raw.data)


def sent_signatures(captures: Mapping[str, Iterable[RawPacket]], ip_host: Mapping[str, str]
                    ) -> dict[str, set[bytes]]:
    """Host -> the signatures of the packets its own captures hold with one of its addresses (``ip_host``:
    address -> host) as their source."""
    out: dict[str, set[bytes]] = {}
    for host, packets in captures.items():
        mine = out.setdefault(host, set())
        for raw in packets:
            ends = _ipv4_ends(raw)
            sig = signature(raw)
            if ends is not None and sig is not None and ip_host.get(ends[0]) == host:
                mine.add(sig)
    return out


def keeps_copy(host: str, sender: str | None, receiver: str | None, captured: Container[str],
               sent: Mapping[str, Container[bytes]] | None = None, sig: bytes | None = None) -> bool:
    """Whether ``host``'s capture holds the copy of a packet that is kept (the module's rule): the
    sender's copy, or the receiver's when the sender is no lab host or has no capture, or when the sender's
    capture has no packet of its signature (``sent``: :func:`sent_signatures`; ``sig``: this copy's), so a box
    on the way rewrote it (NAT) or made it in the sender's name (a middlebox's RST).
    analysis.packets keeps the same copies, so frame numbers agree with all.pcapng's choice."""
    if sender == host:
        return True
    if receiver != host:
        return False
    if sender is None or sender not in captured:
        return True
    return sent is not None and sig is not None and sig not in sent.get(sender, ())


@dataclass(frozen=True)
class StepMark:
    ts: float
    index: int
    text: str


def step_marks(steps: Iterable[StepRecord]) -> list[StepMark]:
    """The comments of played steps (records of steps.jsonl), in time order."""
    marks: list[StepMark] = []
    for s in steps:
        if "start" not in s:
            continue
        text = f"step: {s.get('title') or s.get('name') or s.get('index')}"
        if s.get("outcome") not in (None, "ok"):
            text += f" ({s['outcome']})"
        marks.append(StepMark(float(s["start"]), int(s.get("index", len(marks))), text))
    return sorted(marks, key=lambda m: (m.ts, m.index))


def select_packets(captures: dict[str, list[RawPacket]],
                   host_ips: dict[str, str]) -> list[tuple[float, str, RawPacket]]:
    """Each packet once (see the module's doc), as (time, host whose copy it is, packet), in time order."""
    ip_host = {ip: h for h, ip in host_ips.items()}
    keep: list[tuple[float, int, str, RawPacket]] = []
    other: dict[bytes, list[tuple[float, int]]] = {}  # non-IP frames already kept -> (time, capture)
    sent = sent_signatures(captures, ip_host)
    for order, (host, packets) in enumerate(captures.items()):
        for raw in packets:
            ends = _ipv4_ends(raw)
            if ends is None:
                times = other.setdefault(raw.data, [])
                if any(o != order and abs(t - raw.ts) <= SAME_FRAME_WINDOW for t, o in times):
                    continue
                times.append((raw.ts, order))
                keep.append((raw.ts, order, host, raw))
                continue
            if keeps_copy(host, ip_host.get(ends[0]), ip_host.get(ends[1]), captures, sent, signature(raw)):
                keep.append((raw.ts, order, host, raw))
    keep.sort(key=lambda k: (k[0], k[1]))
    return [(ts, host, raw) for ts, _, host, raw in keep]


def merge_captures(pcaps: dict[str, Path], host_ips: dict[str, str], steps: Iterable[StepRecord],
                   out: Path, title: str = "") -> int:
    """Write ``out``; returns the number of packets written. Missing captures are skipped."""
    captures: dict[str, list[RawPacket]] = {}
    for host, path in pcaps.items():
        if path.is_file():
            with open(path, "rb") as f:
                try:
                    captures[host] = list(read_pcap(f))
                except ValueError:  # not a pcap at all (an empty file has no header and reads as no packets)
                    continue
    packets = select_packets(captures, host_ips)
    marks = step_marks(steps)
    section = "\n".join([f"tcplab {title}".strip()] + [f"step {m.index}: {m.text.removeprefix('step: ')}"
                                                          for m in marks])
    comments: dict[int, list[str]] = {}
    i = 0
    for m in marks:
        while i < len(packets) and packets[i][0] < m.ts:
            i += 1
        if i < len(packets):
            comments.setdefault(i, []).append(m.text)
        elif packets:
            comments.setdefault(len(packets) - 1, []).append(m.text + " (after the last packet)")
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        w = PcapngWriter(f, comment=section)
        ifaces = {host: w.add_interface(host, f"{host}: its own capture (the packets it sent)") for host in captures}
        for n, (ts, host, raw) in enumerate(packets):
            w.add_packet(ifaces[host], ts, raw.data, raw.orig_len, comments.get(n, []))
    tmp.replace(out)
    return len(packets)
