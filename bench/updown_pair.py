#!/usr/bin/env python3
"""`lab up` + `lab down` of closewait (Windows timer 2 s) by this checkout and by another one, interleaved.

    .venv/bin/python bench/updown_pair.py --baseline DIR [-n 5]

DIR is another checkout of tcplab (e.g. `git archive REV | tar -x -C DIR`); its own lab.py and labs/closewait.yaml
are used, with this venv's Python. Each round runs the baseline's up+down and this checkout's up+down, in turn,
so both see the same machine; the story's own waits (steps.jsonl wait steps) are taken out of each. Prints
min/median/max of each and the ratio of the medians. Labs run under names of their own (benchpair-XXXX) on a
free /24; nothing else is touched.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TIMER = "peers.win.fin_wait2_timeout=2s"


def lab_copy(checkout: Path, subnet: str) -> tuple[Path, str]:
    """The checkout's closewait under a name and subnet of its own; its program.build as that checkout reads it."""
    data = yaml.safe_load((checkout / "labs" / "closewait.yaml").read_text())
    name = f"benchpair-{uuid.uuid4().hex[:6]}"
    data["name"], data["network"] = name, {"subnet": subnet}
    path = checkout / "labs" / f"{name}.yaml"  # beside the shipped one: its relative paths stay right
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, name


def one(checkout: Path, lab: Path, name: str, tmp: Path) -> dict[str, float]:
    out = tmp / f"run-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, TCPLAB_HOME=str(checkout))
    t0 = time.perf_counter()
    up = subprocess.run([sys.executable, str(checkout / "lab.py"), "up", str(lab), "--set", TIMER, "--out", str(out)],
                        capture_output=True, text=True, env=env, cwd=tmp)
    t1 = time.perf_counter()
    down = subprocess.run([sys.executable, str(checkout / "lab.py"), "down", name], capture_output=True, text=True,
                          env=env, cwd=tmp)
    t2 = time.perf_counter()
    if up.returncode or down.returncode:
        raise SystemExit(f"{checkout}: up {up.returncode} down {down.returncode}: "
                         f"{up.stderr[-400:]}{down.stderr[-400:]}")
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines() if line.strip()]
    waits = sum(s["end"] - s["start"] for s in steps if s.get("kind") == "wait")  # as bench/lifecycle.py counts
    return {"up": t1 - t0, "down": t2 - t1, "less_waits": t2 - t0 - waits}


def stats(xs: list[float]) -> str:
    return f"{min(xs):6.2f} {statistics.median(xs):6.2f} {max(xs):6.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--subnet", default="10.233.41.0/24")
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        labs = {"baseline": lab_copy(args.baseline.resolve(), args.subnet),
                "this": lab_copy(ROOT, args.subnet)}
        try:
            for i in range(args.n + 1):  # the first round warms both up and is not counted
                for which, checkout in (("baseline", args.baseline.resolve()), ("this", ROOT)):
                    r = one(checkout, *labs[which], tmp)
                    if i:
                        runs[which].append(r)
                print(f"round {i}/{args.n}: " + ", ".join(f"{w} {runs[w][-1]['less_waits']:.2f} s" for w in runs
                                                          if i and runs[w]), flush=True)
        finally:
            for path, _ in labs.values():
                path.unlink(missing_ok=True)
    load = os.getloadavg()
    print(f"\n== lab up + lab down, closewait ({TIMER}), n={args.n}, load {load[0]:.2f}   min median max (s)")
    for which in runs:
        for k in ("up", "down", "less_waits"):
            print(f"{which:9} {k:11} {stats([r[k] for r in runs[which]])}")
    med: dict[str, float] = {w: statistics.median(r["less_waits"] for r in runs[w]) for w in runs}
    print(f"ratio this / baseline (up + down - story waits, medians): {med['this'] / med['baseline']:.2f}")


if __name__ == "__main__":
    main()
