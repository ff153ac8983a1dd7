#!/usr/bin/env python3
"""Benchmark of `lab report`: time and size of report.html for runs of 100, 10 000 and 100 000 packets,
against `tshark -r` printing the same capture in the same invocation.

Each run directory is synthetic but shaped like a real one: run.json with the
hosts, one pcap per host (every packet in its sender's and its receiver's
capture, as on the bridge), capture/all.pcapng merged by tcplab itself,
steps, kernel transitions and snapshots. Connections carry a bulk transfer
(data and acks), so the ladder has to fold.

Each command is its own process, timed by its wall clock and its CPU time (user + system, from wait4:
steadier than wall time on a shared machine), with its peak resident memory; the load average is
printed beside every row, and the rows end with the table for bench/README.md.

Usage: .venv/bin/python bench/report.py [--sizes 100,10000,100000] [--out bench/out] [--repeat 3]
                                        [--no-in-process]
Exit status 1 if the largest report is 5 MB or more, or `lab report` of the largest run took more than
1 GiB.
"""
from __future__ import annotations

import argparse
from typing import NamedTuple
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcplab.observe.merge import merge_captures  # noqa: E402 - after the sys.path line above
from tcplab.report import write_report  # noqa: E402 - after the sys.path line above

HOSTS = {"server": "10.99.0.2", "linux": "10.99.0.3", "win": "10.99.0.4"}
LIMIT = 5 * 1024 * 1024
F, S, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10
ETH = b"\x02\x42\x0a\x63\x00\x02\x02\x42\x0a\x63\x00\x03\x08\x00"


def frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
          payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, win, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return ETH + ip + tcp + payload


class Writer:
    """Per-host pcaps written as packets are made (a 100 000-packet run does not sit in memory twice)."""

    def __init__(self, capture: Path) -> None:
        capture.mkdir(parents=True, exist_ok=True)
        self.files = {h: open(capture / f"{h}.pcap", "wb") for h in HOSTS}
        for f in self.files.values():
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.count = 0

    def send(self, ts: float, src: str, dst: str, *fields: object, payload: bytes = b"") -> None:
        data = frame(HOSTS[src], HOSTS[dst], *fields, payload=payload)  # type: ignore[arg-type]
        for host, t in ((src, ts), (dst, ts + 0.000003)):
            sec = int(t)
            self.files[host].write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(data), len(data)) + data)
        self.count += 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def make_run(root: Path, packets: int) -> Path:
    """A run directory with about ``packets`` TCP packets in up to 20 connections."""
    rd = root / f"bench-{packets}"
    if rd.exists():
        shutil.rmtree(rd)
    for d in ("sockets", "logs"):
        (rd / d).mkdir(parents=True)
    conns = max(1, min(20, packets // 50))
    per = max(8, packets // conns)
    w = Writer(rd / "capture")
    t0 = 1_795_500_000.0
    trans: list[dict] = []
    steps = []
    t = t0
    srv = HOSTS["server"]
    for c in range(conns):
        client = "linux" if c % 2 == 0 else "win"
        cip, port = HOSTS[client], 40000 + c
        steps.append({"index": len(steps), "name": f"start-{c}", "title": f"{client} connection {c}",
                      "start": t - 0.001, "end": t, "outcome": "ok", "host": client})
        w.send(t, client, "server", port, 8000, 0, 0, S, 64240)
        w.send(t + 2e-5, "server", client, 8000, port, 0, 1, S | A, 65160)
        w.send(t + 4e-5, client, "server", port, 8000, 1, 1, A, 63)
        for st, old, new, ip, sp, dip, dp in ((t - 1e-5, "CLOSE", "SYN_SENT", cip, port, srv, 8000),
                                              (t + 3e-5, "SYN_SENT", "ESTABLISHED", cip, port, srv, 8000),
                                              (t + 1e-5, "LISTEN", "SYN_RECV", srv, 8000, cip, port),
                                              (t + 5e-5, "SYN_RECV", "ESTABLISHED", srv, 8000, cip, port)):
            trans.append({"ts": st, "event": "inet_sock_set_state", "saddr": ip, "sport": sp, "daddr": dip,
                          "dport": dp, "old": old, "new": new})
        t += 1e-4
        seq = 1
        for _ in range((per - 7) // 2):
            w.send(t, client, "server", port, 8000, seq, 1, P | A, 63, payload=b"x" * 100)
            seq += 100
            w.send(t + 1e-5, "server", client, 8000, port, 1, seq, A, 64)
            t += 2e-5
        t += 1.5 if c == conns // 2 else 0.0  # one idle stretch to fold
        w.send(t, client, "server", port, 8000, seq, 1, F | A, 63)
        w.send(t + 1e-5, "server", client, 8000, port, 1, seq + 1, A, 64)
        w.send(t + 2e-5, "server", client, 8000, port, 1, seq + 1, F | A, 64)
        w.send(t + 3e-5, client, "server", port, 8000, seq + 1, 2, A, 63)
        for st, old, new, ip, sp, dip, dp in ((t, "ESTABLISHED", "FIN_WAIT1", cip, port, srv, 8000),
                                              (t + 1e-5, "ESTABLISHED", "CLOSE_WAIT", srv, 8000, cip, port),
                                              (t + 2e-5, "FIN_WAIT1", "FIN_WAIT2", cip, port, srv, 8000),
                                              (t + 2e-5, "CLOSE_WAIT", "LAST_ACK", srv, 8000, cip, port),
                                              (t + 3e-5, "FIN_WAIT2", "CLOSE", cip, port, srv, 8000),
                                              (t + 4e-5, "LAST_ACK", "CLOSE", srv, 8000, cip, port)):
            trans.append({"ts": st, "event": "inet_sock_set_state", "saddr": ip, "sport": sp, "daddr": dip,
                          "dport": dp, "old": old, "new": new})
        t += 1e-3
    w.close()
    with open(rd / "steps.jsonl", "w") as f:
        for s in steps:
            f.write(json.dumps(s) + "\n")
    with open(rd / "sockets" / "transitions.jsonl", "w") as f:
        for r in sorted(trans, key=lambda r: r["ts"]):
            f.write(json.dumps(r) + "\n")
    (rd / "sockets" / "snapshots.json").write_text("{}")
    (rd / "lab.yaml").write_text(f"name: bench-{packets}\nsummary: synthetic bulk transfers\n"
                                 "hosts: {server: {image: tcplab/server}, linux: {image: tcplab/client}, "
                                 "win: {image: tcplab/client}}\n")
    (rd / "run.json").write_text(json.dumps({"lab": f"bench-{packets}", "run": rd.name, "hosts": HOSTS,
                                             "state": "down", "started": t0 - 1, "ended": t + 1,
                                             "engine": {"kernel": os.uname().release}}))
    (rd / "logs" / "server.log").write_text("server listening on 0.0.0.0:8000\n")
    merge_captures({h: rd / "capture" / f"{h}.pcap" for h in HOSTS}, HOSTS, steps, rd / "capture" / "all.pcapng",
                   rd.name)
    return rd


class Measured(NamedTuple):
    wall: float
    cpu: float  # user + system
    rss: int  # peak resident bytes


def measured(cmd: list[str]) -> Measured:
    """One run of ``cmd`` as a process of its own: its wall time, CPU time and peak memory (wait4)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd)
    return Measured(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)


def best(runs: list[Measured]) -> Measured:
    """The fastest run's times; the largest peak memory of all."""
    fastest = min(runs, key=lambda m: m.wall)
    return Measured(fastest.wall, min(m.cpu for m in runs), max(m.rss for m in runs))


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,10000,100000")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    ap.add_argument("--no-in-process", dest="in_process", action="store_false",
                    help="skip write_report timed inside this process")
    args = ap.parse_args()
    tshark = shutil.which("tshark")
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for n in sizes:
        rd = make_run(args.out, n)
        merged = rd / "capture" / "all.pcapng"

        def report_in_process(rd: Path = rd) -> float:
            t = time.perf_counter()
            write_report(rd)
            return time.perf_counter() - t

        la0 = load()
        t_report = min(report_in_process() for _ in range(args.repeat)) if args.in_process else float("nan")
        cli = [sys.executable, str(ROOT / "lab.py"), "report", str(rd)]
        read = [tshark, "-n", "-r", str(merged)] if tshark else []
        lab_runs, tshark_runs = [], []
        for _ in range(args.repeat):  # alternated, so that both see the same load
            lab_runs.append(measured(cli))
            if tshark:
                tshark_runs.append(measured(read))
        lab = best(lab_runs)
        ts = best(tshark_runs) if tshark else Measured(float("nan"), float("nan"), 0)
        html = (rd / "report.html").stat().st_size
        rows.append((n, merged.stat().st_size, html, t_report, lab, ts, f"{la0} -> {load()}"))
    print(f"{'packets':>8} {'pcapng':>10} {'report':>10} {'report':>9} {'lab report':>11} {'tshark -r':>10} "
          f"{'ratio':>6} {'lab report':>11} {'tshark -r':>10} {'lab report':>11}  load average")
    print(f"{'':>8} {'bytes':>10} {'bytes':>10} {'in-proc s':>9} {'wall s':>11} {'wall s':>10} {'wall':>6} "
          f"{'CPU s':>11} {'CPU s':>10} {'peak MiB':>11}")
    for n, pcap, html, tr, lab, ts, la in rows:
        print(f"{n:>8} {pcap:>10} {html:>10} {tr:>9.3f} {lab.wall:>11.3f} {ts.wall:>10.3f} {lab.wall / ts.wall:>6.2f} "
              f"{lab.cpu:>11.3f} {ts.cpu:>10.3f} {lab.rss / 2**20:>11.0f}  {la}")
    print(f"\nRows for bench/README.md ({started}, best of {args.repeat}, tshark {tshark_version(tshark)}):\n")
    print("| packets | all.pcapng | report.html | `lab report` wall (CPU) | `tshark -r` wall (CPU) | ratio (wall) "
          "| `lab report` peak memory | load average | date |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, pcap, html, _, lab, ts, la in rows:
        print(f"| {n:,} | {pcap / 1e6:.1f} MB | {html / 2**20:.2f} MiB | {lab.wall:.2f} s ({lab.cpu:.2f}) | "
              f"{ts.wall:.2f} s ({ts.cpu:.2f}) | {lab.wall / ts.wall:.2f} | {lab.rss / 2**20:.0f} MiB | {la} | "
              f"{started[:10]} |".replace(",", " "))
    big = rows[-1]
    ok_size = big[2] < LIMIT
    ok_rss = big[4].rss <= 2**30
    print(f"\nlargest report: {big[2] / 1024 / 1024:.2f} MiB for {big[0]} packets (limit 5 MiB): "
          f"{'ok' if ok_size else 'TOO LARGE'}; `lab report` peak memory {big[4].rss / 2**20:.0f} MiB (limit 1024): "
          f"{'ok' if ok_rss else 'TOO MUCH'}")
    return 0 if ok_size and ok_rss else 1


def tshark_version(tshark: str | None) -> str:
    if not tshark:
        return "missing"
    out = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout
    return out.split("\n")[0].split(" ")[2] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
