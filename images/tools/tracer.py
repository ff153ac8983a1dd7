#!/usr/bin/env python3
"""Kernel TCP state tracer of one lab run.

Reads the tracepoints sock:inet_sock_set_state, tcp:tcp_send_reset and
tcp:tcp_receive_reset from a private tracefs instance (so two labs, or another
tool, never disturb each other's settings), keeps only events of the lab's
addresses, and appends them as JSON lines with wall-clock microsecond
timestamps (the pcaps' clock). Where the kernel has them, tcp:tcp_retransmit_skb
and tcp:tcp_retransmit_synack are read too and go to retransmits.jsonl beside
OUT_FILE (one line per retransmission the kernel made). Each record names the host whose socket it is
("host": the owner of the socket's local address) and the host at the other
end ("peer"), so a reader needs no address table.

The instance uses the "mono" trace clock; the offset to CLOCK_REALTIME is
measured once at start, which is exact to a few µs because both clocks are
system-wide (containers share them).

The instance is removed on SIGTERM/SIGINT, after the trace pipe is closed: a
tracefs instance with an open file cannot be removed, and a leaked instance
keeps its ring buffers (buffer_size_kb per CPU) until reboot.

Usage: tracer.py TRACEFS SUBNET OUT_FILE INSTANCE_NAME [HOST=IP]...
With HOST=IP pairs, only events with one of those addresses at either end are
kept; without them, events with an address in SUBNET.
Prints "tracer ready" on stdout once the events are enabled.
"""
import ipaddress
import json
import os
import re
import signal
import sys
import time
from typing import Any

EVENTS = ("sock/inet_sock_set_state", "tcp/tcp_send_reset", "tcp/tcp_receive_reset")
# read where the kernel has them; their records go to RETRANSMITS beside the output file
OPTIONAL_EVENTS = ("tcp/tcp_retransmit_skb", "tcp/tcp_retransmit_synack")
RETRANSMITS = "retransmits.jsonl"
LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+"
                  r"(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s+(?P<rest>.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as the tracepoints print it; IPv4-mapped IPv6 becomes IPv4. None when unparseable."""
    try:
        a = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if a.version == 6 and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def parse_event(line: str, offset: float) -> dict[str, Any] | None:
    """One trace_pipe line as a record (without host attribution), or None for anything else."""
    m = LINE.match(line)
    if not m:
        return None
    f = dict(FIELD.findall(m.group("rest")))
    if f.get("protocol", "IPPROTO_TCP") != "IPPROTO_TCP":
        return None
    if "src" in f:  # tcp_send_reset prints src=ip:port dest=ip:port ([v6]:port), the local end first
        ends = []
        for key in ("src", "dest"):
            addr, _, port = f.get(key, "").rpartition(":")
            ends.append((_addr(addr), port))
        (saddr, sport), (daddr, dport) = ends
    else:
        v6 = f.get("family") == "AF_INET6"
        saddr = _addr(f.get("saddrv6" if v6 else "saddr", ""))
        daddr = _addr(f.get("daddrv6" if v6 else "daddr", ""))
        sport, dport = f.get("sport", "0"), f.get("dport", "0")
    if saddr is None or daddr is None:
        return None
    rec = {
        "ts": round(float(m.group("ts")) + offset, 6),
        "event": m.group("event"),
        "saddr": str(saddr),
        "sport": int(sport) if sport.isdigit() else 0,
        "daddr": str(daddr),
        "dport": int(dport) if dport.isdigit() else 0,
    }
    if m.group("event") == "inet_sock_set_state":
        rec["old"] = f.get("oldstate", "").replace("TCP_", "")
        rec["new"] = f.get("newstate", "").replace("TCP_", "")
    else:
        if "state" in f:
            rec["state"] = f["state"].replace("TCP_", "")
        if "reason" in f:
            rec["reason"] = f["reason"]
        if f.get("err", "").lstrip("-").isdigit():
            rec["err"] = int(f["err"])
    return rec


def select(rec: dict[str, Any], hosts: dict[str, str],
           subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, Any] | None:
    """The record if it is the lab's, with the host owning the socket and the host at the other end;
    None if not. ``hosts``: address -> host name (empty: any address in ``subnet`` is the lab's)."""
    if hosts:
        if rec["saddr"] not in hosts and rec["daddr"] not in hosts:
            return None
        rec["host"] = hosts.get(rec["saddr"])
        rec["peer"] = hosts.get(rec["daddr"])
        return rec
    if any(ipaddress.ip_address(rec[k]) in subnet for k in ("saddr", "daddr")):
        return rec
    return None


def _stop(*_: object) -> None:
    raise SystemExit(0)


def main() -> int:
    tracefs, subnet_s, out_path, name = sys.argv[1:5]
    subnet = ipaddress.ip_network(subnet_s)
    hosts = {}
    for pair in sys.argv[5:]:
        host, _, ip = pair.partition("=")
        hosts[str(ipaddress.ip_address(ip))] = host

    inst = os.path.join(tracefs, "instances", name)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not os.path.isdir(inst):
        os.mkdir(inst)
    try:
        write(os.path.join(inst, "trace_clock"), "mono")
        write(os.path.join(inst, "buffer_size_kb"), "1024")
        for ev in EVENTS:
            write(os.path.join(inst, "events", ev, "enable"), "1")
        optional = [ev for ev in OPTIONAL_EVENTS if os.path.isdir(os.path.join(inst, "events", ev))]
        for ev in optional:
            write(os.path.join(inst, "events", ev, "enable"), "1")
        # offset mono -> realtime: take the pair closest together out of a few tries
        best = None
        for _ in range(5):
            a = time.clock_gettime(time.CLOCK_REALTIME)
            mono = time.clock_gettime(time.CLOCK_MONOTONIC)
            b = time.clock_gettime(time.CLOCK_REALTIME)
            if best is None or b - a < best[0]:
                best = (b - a, (a + b) / 2 - mono)
        offset = best[1]
        # the file exists only where retransmissions are watched: no file is no evidence, an empty one is "none"
        retransmits_path = os.path.join(os.path.dirname(out_path), RETRANSMITS) if optional else os.devnull
        with open(os.path.join(inst, "trace_pipe"), "r", errors="replace") as pipe, open(out_path, "a") as out, \
                open(retransmits_path, "a") as retransmits:
            print("tracer ready", flush=True)
            for line in pipe:
                rec = parse_event(line, offset)
                if rec is None or select(rec, hosts, subnet) is None:
                    continue
                dest = retransmits if rec["event"].startswith("tcp_retransmit") else out
                dest.write(json.dumps(rec) + "\n")
                dest.flush()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for ev in EVENTS + OPTIONAL_EVENTS:
            try:
                write(os.path.join(inst, "events", ev, "enable"), "0")
            except OSError:
                pass
        try:
            os.rmdir(inst)
        except OSError as e:
            print(f"tracer: could not remove instance {name}: {e}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
