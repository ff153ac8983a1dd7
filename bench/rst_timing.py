#!/usr/bin/env python3
"""How exactly does the emulated Windows FIN_WAIT_2 timer fire?

One lab, 20 connections from the Windows peer to the single-threaded server
(backlog 64, so all but the first wait unaccepted in the accept queue), each
closed in turn; T = 1 s. For each, (RST time - FIN time - T) from the win
host's own capture. Printed beside the same figure for a plain `time.sleep(T)`
timer measured in this process in the same invocation (the baseline).

Usage: .venv/bin/python bench/rst_timing.py [--runs 20] [--timer 1.0]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcplab.analysis.packets import load_traffic  # noqa: E402 - after the sys.path line above
from tcplab.wire import FIN, RST  # noqa: E402 - after the sys.path line above


def lab_file(tmp: Path, runs: int, timer: float) -> Path:
    steps: list[dict] = [{"host": "linux", "start": ["telnet", "server", "8000"], "as": "first",
                          "ready": {"log": "Connected to"}}]
    for i in range(runs):
        steps += [
            {"host": "win", "start": ["telnet", "server", "8000"], "as": f"t{i}", "ready": {"log": "Connected to"}},
            {"host": "win", "stop": f"t{i}"},
            {"wait": {"rst_from": "win"}, "timeout": f"{timer + 10}s"},
        ]
    lab = {
        "name": "bench-rst", "summary": "RST timing benchmark", "network": {"subnet": "10.79.0.0/24"},
        "hosts": {
            "server": {"image": "tcplab/server", "program": {"run": ["/opt/lab/server", "8000", "64"], "name": "server",
                                                             "ready": {"listen": 8000}}},
            "linux": {"image": "tcplab/client"},
            "win": {"image": "tcplab/client", "peer": {"os": "windows", "fin_wait2_timeout": f"{timer}s",
                                                        "syn": "windows-7"}},
        },
        "steps": steps,
    }
    path = tmp / "bench-rst.yaml"
    path.write_text(yaml.safe_dump(lab, sort_keys=False))
    return path


def lab(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "lab.py"), *args], cwd=cwd, check=True, capture_output=True)


def summary(name: str, errors_ms: list[float]) -> str:
    median = statistics.median(errors_ms)
    return (f"{name:<34} n={len(errors_ms):<3} min {min(errors_ms):7.3f} ms  median {median:7.3f} ms"
            f"  max {max(errors_ms):7.3f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--timer", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tcplab-bench-") as t:
        tmp = Path(t)
        path = lab_file(tmp, args.runs, args.timer)
        try:
            lab("up", str(path), "--out", str(tmp / "run"), cwd=tmp)
        finally:
            lab("down", "bench-rst", cwd=tmp)
        traffic = load_traffic(tmp / "run")
        errors = []
        for conn in traffic.connections:
            if conn.client != "win":
                continue
            fin = next((p for p in conn.packets if p.src_host == "win" and p.tcp.flags & FIN), None)
            rst = next((p for p in conn.packets if p.src_host == "win" and p.tcp.flags & RST), None)
            if fin and rst:
                errors.append((rst.ts - fin.ts - args.timer) * 1000)
    baseline = []
    for _ in range(args.runs):
        t0 = time.time()
        time.sleep(args.timer)
        baseline.append((time.time() - t0 - args.timer) * 1000)
    print(f"RST time - FIN time - T, T = {args.timer:g} s, load {open('/proc/loadavg').read().split()[0]}")
    print(summary("emulated Windows FIN_WAIT_2 timer", errors))
    print(summary("baseline: time.sleep(T) here", baseline))
    if len(errors) != args.runs:
        print(f"only {len(errors)} of {args.runs} connections had both FIN and RST")
        return 1
    ratio = statistics.median(errors) / statistics.median(baseline) if statistics.median(baseline) else float("nan")
    print(f"median ratio emulated/baseline: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
