"""capture/all.pcapng: every host's capture on one clock, each packet once, steps as comments.

De-duplication: a packet crossing the bridge is seen twice, by its sender's
capture and by its receiver's. The merged file keeps the sender's copy (its
interface is named after the sending host), so every packet appears once, at
the moment it left. A packet from an address that is no lab host's is kept
from the receiver's capture. Each played step becomes a comment on the first
packet at or after the step's start ("step 4: win closes telnet"), so
Wireshark shows it in place (``tshark -Y frame.comment``); the file's section
comment lists all steps too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..wire import PcapngWriter, RawPacket, read_pcap


def _sender_ip(raw: RawPacket) -> str | None:
    d = raw.data
    if len(d) >= 34 and d[12] == 0x08 and d[13] == 0x00:
        return f"{d[26]}.{d[27]}.{d[28]}.{d[29]}"
    return None


def merge_captures(pcaps: dict[str, Path], host_ips: dict[str, str], steps: Iterable[dict[str, Any]],
                   out: Path, title: str = "") -> int:
    """Write ``out``; returns the number of packets written."""
    ip_host = {ip: h for h, ip in host_ips.items()}
    streams = []
    for host, path in pcaps.items():
        if path.is_file():
            f = open(path, "rb")
            streams.append((host, f, read_pcap(f)))
    keep: list[tuple[float, int, str, RawPacket]] = []
    for order, (host, _f, packets) in enumerate(streams):
        for raw in packets:
            sender = ip_host.get(_sender_ip(raw) or "")
            if sender == host or (sender is None and _receiver_keeps(raw, host, ip_host)):
                keep.append((raw.ts, order, host, raw))
    for _, f, _ in streams:
        f.close()
    keep.sort(key=lambda k: (k[0], k[1]))
    step_list = sorted(({"ts": float(s["start"]), "text": f"step {s['index']}: {s['title']}"} for s in steps
                        if "start" in s), key=lambda s: s["ts"])
    section = "tcplab " + title + "\n" + "\n".join(s["text"] for s in step_list)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        w = PcapngWriter(f, comment=section.strip())
        ifaces = {host: w.add_interface(host, f"{host}: its own capture (packets it sent)") for host, _, _ in streams}
        si = 0
        for i, (ts, _, host, raw) in enumerate(keep):
            comments = []
            while si < len(step_list) and (step_list[si]["ts"] <= ts or i == len(keep) - 1):
                comments.append(step_list[si]["text"])
                si += 1
            w.add_packet(ifaces[host], ts, raw.data, raw.orig_len, comments)
    tmp.replace(out)
    return len(keep)


def _receiver_keeps(raw: RawPacket, host: str, ip_host: dict[str, str]) -> bool:
    d = raw.data
    if len(d) >= 34 and d[12] == 0x08 and d[13] == 0x00:
        return ip_host.get(f"{d[30]}.{d[31]}.{d[32]}.{d[33]}") == host
    return True

