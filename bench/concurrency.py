#!/usr/bin/env python3
"""Benchmark: many `lab run closewait` at once - are the verdicts still right, how late is the RST, how many
labs a minute does the machine get through?

Each lab is a copy of labs/closewait.yaml under a name of its own (``concNNNNxK``) and a /24 of its own in
10.94.0.0/16 and 10.95.0.0/16, run as `lab run COPY --set peers.win.fin_wait2_timeout=2s --out DIR`, each in
its own process, N of them started at once. In one invocation:

1. *rounds*: ``--rounds`` times, ``--labs`` (10) at once, the peer's timer as shipped (SCHED_FIFO where
   the engine allows it); then ``--baseline-rounds`` rounds of the same with the peer at the normal policy
   (the product before the timer had a real-time class: this file runs `lab` with ``--realtime 0`` and no
   budget for the peer, see ``normal_policy_lab``). Per lab: exit status, every expectation's verdict, and
   the RST's lateness = RST time - FIN time - T on win's own capture (what ``win-rst-after-fin-wait2``
   judges, within 50 ms).
2. *throughput*: N = 1, 5, 10, 20 labs at once (peer as shipped); labs per minute = N * 60 / (wall time
   until the last one exits). The baseline is N = 1 in the same invocation; "stops scaling" is the first N
   whose labs per minute is less than 10 % above the previous N's.

The load average is printed beside every figure (the machine is shared). Rows for bench/README.md at the
end. Usage: .venv/bin/python bench/concurrency.py [--rounds 10] [--labs 10] [--baseline-rounds 2]
[--throughput 1,5,10,20] [--json FILE] [--keep]
"""
from __future__ import annotations

import argparse
import copy
import datetime
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcplab.analysis.packets import load_traffic  # noqa: E402 - after the sys.path line above
from tcplab.rundir import RunDir  # noqa: E402 - after the sys.path line above
from tcplab.runfiles import peer_events  # noqa: E402 - after the sys.path line above
from tcplab.wire import FIN, RST  # noqa: E402 - after the sys.path line above

TIMER = 2.0
TOLERANCE_MS = 50.0
TARGET_MS = 5.0
SUBNETS = [str(n) for block in ("10.94.0.0/16", "10.95.0.0/16")
           for n in ipaddress.ip_network(block).subnets(new_prefix=24)]

# `lab` with the Windows peer as it was before its timer had a real-time class: the baseline of the rounds
NORMAL_POLICY = """
import sys
sys.path.insert(0, {root!r})
import tcplab.peers.windows as w
w.REALTIME_PRIORITY = 0
w.REALTIME_BUDGET_US = None
sys.argv[0] = {lab!r}
import runpy
runpy.run_path({lab!r}, run_name="__main__")
"""


def free_subnets() -> list[str]:
    """This benchmark's /24s that no network on the engine holds (an engine may keep a network it could not
    remove)."""
    from tcplab.backend.docker import DockerBackend

    held = [ipaddress.ip_network(c["Subnet"]) for n in DockerBackend().api.networks()
            for c in ((n.get("IPAM") or {}).get("Config") or []) if "." in str(c.get("Subnet", ""))]
    return [s for s in SUBNETS if not any(ipaddress.ip_network(s).overlaps(h) for h in held)]


def load() -> float:
    return os.getloadavg()[0]


def cpu_ticks() -> tuple[int, int]:
    """(all, steal) ticks of the machine's CPUs so far (/proc/stat): steal is the time a virtual machine's CPUs
    were runnable but not run by its host, which no scheduling class inside it can win back."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


@dataclass
class LabResult:
    name: str
    code: int
    seconds: float
    verdicts: dict[str, str] = field(default_factory=dict)
    late_ms: float | None = None
    peer_said: str = ""  # the peer's own account of its RST (rst_sent), kept when it missed the target
    timers: str = ""
    error: str = ""

    left: bool = False  # judged, but the engine kept an object of it (exit 3 after the verdicts)

    @property
    def all_hold(self) -> bool:
        judged = self.code == 0 or self.left
        return judged and bool(self.verdicts) and all(v == "held" for v in self.verdicts.values())


@dataclass
class Batch:
    what: str
    n: int
    wall: float
    load_start: float
    load_end: float
    labs: list[LabResult]
    steal: float = 0.0  # share of the machine's CPU time stolen by its host during the batch

    @property
    def per_minute(self) -> float:
        return self.n * 60.0 / self.wall


class Bench:
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        out = ROOT / "bench" / "out"  # a lab file names its program's source by a path relative to itself
        out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="conc-", dir=out))
        self.count = 0
        self.subnets = free_subnets()
        self.source = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())

    def lab_file(self) -> tuple[str, Path]:
        k = self.count
        self.count += 1
        name = f"conc{os.getpid() % 10000}x{k}"
        data = dict(copy.deepcopy(self.source), name=name, network={"subnet": self.subnets[k % len(self.subnets)]})
        server = data["hosts"]["server"]["program"]  # its source, relative to labs/ in the shipped file
        source = (ROOT / "labs" / server["build"]).resolve()
        data["hosts"]["server"]["program"] = dict(server, build=os.path.relpath(source, self.tmp))
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return name, path

    def batch(self, what: str, n: int, normal_policy: bool = False) -> Batch:
        runs = []
        ticks = cpu_ticks()
        load_start = load()
        t0 = time.monotonic()
        for _ in range(n):
            name, path = self.lab_file()
            out = self.tmp / f"{name}-run"
            lab = str(ROOT / "lab.py")
            argv = ([sys.executable, "-c", NORMAL_POLICY.format(lab=lab, root=str(ROOT))] if normal_policy
                    else [sys.executable, lab])
            argv += ["run", str(path), "--set", f"peers.win.fin_wait2_timeout={TIMER:g}s", "--out", str(out)]
            proc = subprocess.Popen(argv, cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            runs.append((name, out, proc, time.monotonic()))
        results = []
        for name, out, proc, started in runs:
            text, _ = proc.communicate(timeout=900)
            results.append(self.judge(name, out, proc.returncode, time.monotonic() - started, text))
        wall = time.monotonic() - t0
        total, steal = (b - a for a, b in zip(ticks, cpu_ticks()))
        batch = Batch(what, n, wall, load_start, load(), results, steal / total if total else 0.0)
        self.say(batch)
        if not self.keep:
            for r in results:
                shutil.rmtree(self.tmp / f"{r.name}-run", ignore_errors=True)
        return batch

    def judge(self, name: str, out: Path, code: int, seconds: float, text: str) -> LabResult:
        res = LabResult(name, code, seconds, left=code == 3 and "the engine kept that object" in text)
        try:
            result = json.loads((out / "result.json").read_text())
            res.verdicts = {e["name"]: e.get("status") or ("held" if e.get("held") else "failed")
                            for e in result.get("expectations") or []}
            info = json.loads((out / "run.json").read_text())
            res.timers = (info.get("peer_timers") or {}).get("win", "")
            traffic = load_traffic(out)
            for conn in traffic.connections:
                fin = next((p for p in conn.packets if p.src_host == "win" and p.tcp.flags & FIN), None)
                rst = next((p for p in conn.packets if p.src_host == "win" and p.tcp.flags & RST), None)
                if fin is not None and rst is not None:
                    res.late_ms = (rst.ts - fin.ts - TIMER) * 1000
            if res.late_ms is not None and abs(res.late_ms) > TARGET_MS:
                res.peer_said = next((str(e.get("detail")) for e in peer_events.read(RunDir(out)).get("win", [])
                                      if e.get("event") == "rst_sent"), "no rst_sent event")
        except (OSError, ValueError, KeyError) as e:
            res.error = f"{type(e).__name__}: {e}; {text.strip().splitlines()[-1:] }"
        if res.left:
            res.error = f"judged, but the engine kept an object: {text.strip().splitlines()[-1:]}"
        if not res.all_hold:
            bad = {k: v for k, v in res.verdicts.items() if v != "held"}
            res.error = res.error or f"exit {code}; not held: {bad}; {text.strip().splitlines()[-3:]}"
        return res

    def say(self, b: Batch) -> None:
        held = sum(r.all_hold for r in b.labs)
        late = [r.late_ms for r in b.labs if r.late_ms is not None]
        lates = " ".join(f"{x:+.1f}" for x in sorted(late))
        print(f"· {b.what}: {b.n} labs in {b.wall:.1f} s ({b.per_minute:.1f}/min), {held}/{b.n} hold every "
              f"expectation, RST lateness ms [{lates}], load {b.load_start:.1f} -> {b.load_end:.1f}, "
              f"steal {100 * b.steal:.1f} %",
              file=sys.stderr, flush=True)
        for r in b.labs:
            if r.error:
                print(f"    {r.name}: {r.error}", file=sys.stderr, flush=True)
            if r.peer_said:
                print(f"    {r.name}: RST {r.late_ms:+.1f} ms; the peer says: {r.peer_said}", file=sys.stderr,
                      flush=True)

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"n={len(values)} min {min(values):+.2f} median {statistics.median(values):+.2f} "
            f"max {max(values):+.2f} ms, |late| <= {TARGET_MS:g} ms: {sum(abs(v) <= TARGET_MS for v in values)}, "
            f"<= {TOLERANCE_MS:g} ms: {sum(abs(v) <= TOLERANCE_MS for v in values)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--labs", type=int, default=10)
    ap.add_argument("--baseline-rounds", type=int, default=2)
    ap.add_argument("--throughput", default="1,5,10,20")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the lab files and run directories")
    args = ap.parse_args()
    levels = [int(x) for x in args.throughput.split(",") if x]
    bench = Bench(args.keep)
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        # one lab first: images built and warm before anything is timed
        bench.batch("warm-up", 1)
        rounds = [bench.batch(f"round {i + 1} (as shipped)", args.labs) for i in range(args.rounds)]
        base = [bench.batch(f"baseline round {i + 1} (normal policy)", args.labs, normal_policy=True)
                for i in range(args.baseline_rounds)]
        tput = {n: [bench.batch(f"throughput N={n}", n)] for n in levels if not (n == args.labs and rounds)}
        if args.labs in levels and rounds:
            tput[args.labs] = rounds
        if 1 in tput:
            tput[1].append(bench.batch("throughput N=1 (again)", 1))
    finally:
        bench.cleanup()

    def lates(batches: list[Batch]) -> list[float]:
        return [r.late_ms for b in batches for r in b.labs if r.late_ms is not None]

    def loads(batches: list[Batch]) -> str:
        return f"{min(b.load_start for b in batches):.1f}-{max(b.load_end for b in batches):.1f}"

    shipped, normal = lates(rounds), lates(base)
    rounds_ok = sum(all(r.all_hold for r in b.labs) for b in rounds)
    kept = [r.name for b in rounds + base + [x for bs in tput.values() for x in bs] for r in b.labs if r.left]
    timers = sorted({r.timers for b in rounds for r in b.labs if r.timers})
    print(f"\nconcurrency benchmark, {date}: closewait, T = {TIMER:g} s, {args.labs} labs at once; "
          f"{time.monotonic() - started:.0f} s in all, load average now {load():.2f}")
    print(f"peer timers (as shipped): {'; '.join(timers)}")
    base_ok = sum(all(r.all_hold for r in b.labs) for b in base)
    print(f"rounds where all {args.labs} labs hold every expectation: {rounds_ok}/{len(rounds)} as shipped"
          + (f", {base_ok}/{len(base)} at the normal policy" if base else ""))
    if kept:
        print(f"judged, but the engine kept an object (a network 'with active endpoints'): {len(kept)} runs "
              f"({', '.join(sorted(set(kept)))})")
    print(f"RST lateness (RST - FIN - T, win's capture), as shipped:   {spread(shipped)}  load {loads(rounds)}")
    if base:
        print(f"RST lateness, baseline (peer at the normal policy):  {spread(normal)}  load {loads(base)}")
    one = statistics.median(b.per_minute for b in tput.get(1, [])) if 1 in tput else None
    print("throughput (labs per minute; N labs started at once, until the last exits):")
    stop_at = None
    prev = None
    rows = []
    for n in sorted(tput):
        per_min = statistics.median(b.per_minute for b in tput[n])
        held = sum(r.all_hold for b in tput[n] for r in b.labs)
        total = sum(len(b.labs) for b in tput[n])
        ratio = per_min / one if one else float("nan")
        wall = statistics.median(b.wall for b in tput[n])
        print(f"  N={n:<3} {per_min:6.1f}/min  x{ratio:4.2f} of N=1  wall {wall:6.1f} s"
              f"  {held}/{total} hold  load {loads(tput[n])}")
        if prev is not None and stop_at is None and per_min < prev * 1.10:
            stop_at = n
        prev = per_min
        rows.append((n, per_min, ratio, loads(tput[n])))
    print(f"stops scaling at N={stop_at}" if stop_at else "still scaling at the largest N measured")

    print("\nbench/README.md rows (figure | baseline | ratio | load average | date):")
    med_s = statistics.median([abs(x) for x in shipped]) if shipped else float("nan")
    max_s = max([abs(x) for x in shipped]) if shipped else float("nan")
    if base and normal and shipped:
        med_b = statistics.median([abs(x) for x in normal])
        max_b = max([abs(x) for x in normal])
        print(f"| RST lateness, median of abs, {len(shipped)} labs ({len(rounds)} rounds of {args.labs}) | "
              f"{med_s:.2f} ms | {med_b:.2f} ms (normal policy) | {med_s / med_b if med_b else float('nan'):.2f} | "
              f"{loads(rounds)} / {loads(base)} | {date} |")
        print(f"| RST lateness, worst | {max_s:.2f} ms | {max_b:.2f} ms (normal policy) | "
              f"{max_s / max_b if max_b else float('nan'):.2f} | {loads(rounds)} / {loads(base)} | {date} |")
    within = f"{sum(abs(x) <= TARGET_MS for x in shipped)}/{len(shipped)}"
    within_b = f"{sum(abs(x) <= TARGET_MS for x in normal)}/{len(normal)}"
    print(f"| RSTs within +-{TARGET_MS:g} ms of FIN + T | {within} | {within_b} (normal policy) | - | {loads(rounds)} "
          f"| {date} |")
    print(f"| rounds of {args.labs} with every expectation held | {rounds_ok}/{len(rounds)} | "
          + (f"{base_ok}/{len(base)} (normal policy)" if base else "-")
          + f" | - | {loads(rounds)} | {date} |")
    for n, per_min, ratio, ld in rows:
        print(f"| labs per minute at N={n} | {per_min:.1f} | {one or float('nan'):.1f} (N=1) | {ratio:.2f} | {ld} "
              f"| {date} |")
    print(f"| stops scaling at | N={stop_at or '-'} | - | - | - | {date} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": date, "rounds": [b.__dict__ | {"labs": [r.__dict__ for r in b.labs]} for b in rounds],
            "baseline": [b.__dict__ | {"labs": [r.__dict__ for r in b.labs]} for b in base],
            "throughput": {n: [b.__dict__ | {"labs": [r.__dict__ for r in b.labs]} for b in bs]
                           for n, bs in tput.items()}}, indent=1, default=str))
    return 0 if rounds_ok == len(rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
