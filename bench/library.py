#!/usr/bin/env python3
"""Benchmark of the war-story library: how long `lab run NAME` of each shipped lab takes, and tcplab's own part.

Run from the checkout with the project's venv::

    .venv/bin/python bench/library.py [-n 3] [--only timewait,backlog]

Each shipped lab (labs/NAME.yaml, labs/NAME/lab.yaml) runs N times as shipped
(`lab run NAME`, under a name and a /24 of its own; a lab whose story takes
minutes as shipped gets the ``sets`` tests/data/library_faults.yaml gives it,
as CI does), one after the other. For each run:

wall      the `lab run` process, start to exit (up, play, down, judge, report)
waits     the story's own waits: the `wait` steps of steps.jsonl (a timer the
          story waits out, a FIN or RST it waits for)
overhead  wall - waits: what tcplab itself costs (containers, sidecars,
          snapshots, collection, teardown, judging, the report)
phases    run.json's phases (network, hosts and sidecars, programs, steps,
          collection, teardown)

min/median/max over the N runs are printed with whether the library's target
(each lab's `lab run` in at most 30 s) is met. Every run must hold every
expectation (exit 0); one that does not is printed and counts as a miss.

With ``--parallel K`` the whole library is also run N times with K labs at once
(K = 0: all at once), as a CI job running the library would. Both ways print
tcplab's own time per lab, the figure of the target "the sum of tcplab's own
time (run minus story waits) <= 1.5 s per lab":

serial    sum over the labs of (wall - waits), / number of labs
parallel  (the library's wall - the longest lab's waits), / number of labs:
          the time the library took beyond the one story nothing can shorten

Both ways also print the machine's CPU time per lab (every process: tcplab's,
the engine's, the containers' programs; from /proc/stat) and tcplab's own
processes' share, and the engine's floor measured in the same invocation: the
machine CPU to create, start and remove one sleeping container with the Docker
SDK (``--floor-rounds`` rounds of 8 at once). The library's containers (each
run's run.json ``capabilities``, one entry per container) times that floor,
divided by the cores, is the least time per lab any schedule can take on this
machine before tcplab does anything: the bound the target is compared with.
Results also go to bench/out/library-<UTC time>.json.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
LAB_PY = ROOT / "lab.py"
FAULTS = ROOT / "tests" / "data" / "library_faults.yaml"
TARGET = 30.0  # seconds: a shipped lab's `lab run`
OWN_TARGET = 1.5  # seconds of tcplab's own time per lab, the whole library
_TAKEN: set[str] = set()  # subnets this process handed out (labs started at once cannot see each other's yet)
_TAKEN_LOCK = threading.Lock()


def shipped_labs() -> dict[str, Path]:
    labs = {f.stem: f for f in sorted((ROOT / "labs").glob("*.yaml"))}
    labs.update({f.parent.name: f for f in sorted((ROOT / "labs").glob("*/lab.yaml"))})
    return dict(sorted(labs.items()))


def ci_sets(name: str) -> list[str]:
    entry = (yaml.safe_load(FAULTS.read_text()) or {}).get(name) or {}
    return list(entry.get("sets") or [])


def free_subnet() -> str:
    """A /24 in 10.240.0.0/12 that no network on the engine overlaps (colleagues' labs included)."""
    import docker

    used = []
    for n in docker.from_env(timeout=60).api.networks():
        for cfg in (n.get("IPAM") or {}).get("Config") or []:
            try:
                used.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                pass
    with _TAKEN_LOCK:
        used += [ipaddress.ip_network(t) for t in _TAKEN]
        for _ in range(200):
            cand = ipaddress.ip_network(f"10.{random.randint(240, 254)}.{random.randint(0, 255)}.0/24")
            if not any(cand.overlaps(u) for u in used if u.version == 4):
                _TAKEN.add(str(cand))
                return str(cand)
    raise SystemExit("no free /24 for the benchmark's lab")


def subnet_sets(name: str) -> list[str]:
    """The lab moved to free /24s: its network, or each of its networks with what lives on them."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tcplab.model import load_lab
    from tcplab.model.topology import relocation

    lab, _ = load_lab(shipped_labs()[name])
    if not lab.networks:
        return [f"network.subnet={free_subnet()}"]
    return relocation(lab, {key: ipaddress.IPv4Network(free_subnet()) for key in lab.networks})


def one_run(name: str, work: Path) -> dict[str, Any]:
    run_name = f"benchlib-{uuid.uuid4().hex[:6]}"
    out = work / run_name
    sets = [f"name={run_name}", *subnet_sets(name), *ci_sets(name)]
    argv = [sys.executable, str(LAB_PY), "run", name, *(a for s in sets for a in ("--set", s)), "--out", str(out)]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TCPLAB_HOME": str(ROOT)})
    wall = time.monotonic() - t0
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "steps.jsonl").is_file() else []
    waits = sum(s["end"] - s["start"] for s in steps if s.get("kind") == "wait" and s.get("end"))
    info = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    return {"lab": name, "sets": ci_sets(name), "exit": proc.returncode, "wall": round(wall, 3),
            "waits": round(waits, 3), "overhead": round(wall - waits, 3), "phases": info.get("phases") or {},
            "containers": len(info.get("capabilities") or {}),
            "kernel": next((v.get("kernel.osrelease", "") for v in (info.get("sysctls") or {}).values()), ""),
            "said": "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-2000:]}


def library_at_once(names: list[str], work: Path, jobs: int) -> dict[str, Any]:
    """One round of the whole library with ``jobs`` labs at a time (0: all at once)."""
    from concurrent.futures import ThreadPoolExecutor

    t0, cpu0, own0 = time.monotonic(), machine_cpu(), own_cpu()
    with ThreadPoolExecutor(max_workers=jobs or len(names)) as pool:
        runs = list(pool.map(lambda n: one_run(n, work), names))
    wall = time.monotonic() - t0
    return {"wall": round(wall, 3), "runs": runs, "longest_waits": max(r["waits"] for r in runs),
            "own_per_lab": round((wall - max(r["waits"] for r in runs)) / len(names), 3),
            "machine_cpu_per_lab": round((machine_cpu() - cpu0) / len(names), 3),
            "tcplab_cpu_per_lab": round((own_cpu() - own0) / len(names), 3),
            "load": os.getloadavg()[0]}


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used so far (all cores: user, nice, system, irq, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system | idle iowait | irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process's children that have ended (the `lab run` processes)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def engine_floor_per_container(rounds: int, per_round: int = 8) -> float:
    """Median machine CPU seconds per container to create, start and remove sleeping containers (tcplab/tools,
    on a network of their own, ``per_round`` at once) with the Docker SDK."""
    from concurrent.futures import ThreadPoolExecutor

    import docker

    client = docker.from_env(timeout=120)
    label = {"tcplab.bench": "library-floor"}
    per: list[float] = []
    for _ in range(rounds):
        pool_config = docker.types.IPAMPool(subnet=free_subnet())
        net = client.networks.create(f"benchlib-floor-{uuid.uuid4().hex[:6]}", labels=label,
                                     ipam=docker.types.IPAMConfig(pool_configs=[pool_config]))
        names = [f"benchlib-floor-{uuid.uuid4().hex[:6]}" for _ in range(per_round)]
        run = partial(client.containers.run, "tcplab/tools", ["sleep", "infinity"], detach=True, network=net.name,
                      labels=label)
        cpu0 = machine_cpu()
        try:
            with ThreadPoolExecutor(per_round) as pool:
                list(pool.map(lambda n, start=run: start(name=n), names))
                list(pool.map(lambda n: client.api.remove_container(n, force=True), names))
            net.remove()
        finally:
            for n in names:
                try:
                    client.api.remove_container(n, force=True)
                except docker.errors.NotFound:
                    pass
            try:
                net.remove()
            except docker.errors.NotFound:
                pass
        per.append((machine_cpu() - cpu0) / per_round)
    return statistics.median(per)


def stats(values: list[float]) -> str:
    return f"{min(values):6.1f} {statistics.median(values):6.1f} {max(values):6.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=3, help="runs of each lab (default 3)")
    ap.add_argument("--only", default="", help="comma-separated lab names (default: every shipped lab)")
    ap.add_argument("--parallel", type=int, default=None, metavar="K",
                    help="also run the whole library N times with K labs at once (0: all at once)")
    ap.add_argument("--no-serial", action="store_true", help="only the parallel rounds")
    ap.add_argument("--floor-rounds", type=int, default=3, help="rounds of the engine's floor per container "
                                                                "(default 3; 0: not measured)")
    args = ap.parse_args()
    labs = shipped_labs()
    chosen = [x for x in args.only.split(",") if x] or list(labs)
    unknown = [x for x in chosen if x not in labs]
    if unknown:
        raise SystemExit(f"no shipped lab {', '.join(unknown)} (labs: {', '.join(labs)})")
    work = Path(tempfile.mkdtemp(prefix="bench-library-"))
    results: dict[str, list[dict[str, Any]]] = {}
    rounds: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    serial_cpu = {"machine": 0.0, "tcplab": 0.0, "runs": 0}
    floor = engine_floor_per_container(args.floor_rounds) if args.floor_rounds else None
    if floor is not None:
        print(f"engine floor: {floor:.3f} s of machine CPU per container (create, start, remove; 8 at once)",
              flush=True)
    try:
        for name in ([] if args.no_serial else chosen):
            results[name] = []
            for i in range(args.n):
                cpu0, own0 = machine_cpu(), own_cpu()
                r = one_run(name, work)
                serial_cpu["machine"] += machine_cpu() - cpu0
                serial_cpu["tcplab"] += own_cpu() - own0
                serial_cpu["runs"] += 1
                results[name].append(r)
                held = "held" if r["exit"] == 0 else f"EXIT {r['exit']}"
                print(f"{name:<16} run {i + 1}: wall {r['wall']:.1f} s, waits {r['waits']:.1f} s, "
                      f"overhead {r['overhead']:.1f} s ({held})", flush=True)
                if r["exit"] != 0:
                    print(r["said"], flush=True)
        for i in range(args.n if args.parallel is not None else 0):
            rd = library_at_once(chosen, work, args.parallel or 0)
            rounds.append(rd)
            failed = [f"{r['lab']} (exit {r['exit']})" for r in rd["runs"] if r["exit"] != 0]
            print(f"library at once, round {i + 1}: wall {rd['wall']:.1f} s, longest story waits "
                  f"{rd['longest_waits']:.1f} s, own per lab {rd['own_per_lab']:.2f} s, load {rd['load']:.1f}"
                  + (f"; FAILED: {', '.join(failed)}" if failed else "; every lab held")
                  + f"; machine CPU per lab {rd['machine_cpu_per_lab']:.2f} s (tcplab's processes "
                  f"{rd['tcplab_cpu_per_lab']:.2f} s)", flush=True)
            for r in rd["runs"]:
                if r["exit"] != 0:
                    print(r["said"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    every = [r for rs in results.values() for r in rs] + [r for rd in rounds for r in rd["runs"]]
    kernel = next((r["kernel"] for r in every if r["kernel"]), "unknown")
    print(f"\n`lab run` of each shipped lab, {args.n} run(s) each, kernel {kernel}; seconds, min median max")
    print(f"{'lab':<16} {'wall':>20} {'waits':>20} {'overhead':>20}  target <= {TARGET:g} s")
    met_all = True
    for name, rs in results.items():
        walls = [r["wall"] for r in rs]
        ok = all(r["exit"] == 0 for r in rs) and max(walls) <= TARGET
        met_all &= ok
        extra = f"  (with {' '.join(rs[0]['sets'])})" if rs[0]["sets"] else ""
        print(f"{name:<16} {stats(walls):>20} {stats([r['waits'] for r in rs]):>20} "
              f"{stats([r['overhead'] for r in rs]):>20}  {'met' if ok else 'MISSED'}{extra}")
    own: dict[str, float] = {}
    if results:
        per_round = [sum(rs[i]["overhead"] for rs in results.values()) / len(results) for i in range(args.n)]
        own["serial"] = statistics.median(per_round)
        print(f"\ntcplab's own time per lab, one lab after another: {stats(per_round)} s (min median max; "
              f"sum of wall - waits / {len(results)} labs)")
    if rounds:
        walls = [rd["wall"] for rd in rounds]
        per_lab = [rd["own_per_lab"] for rd in rounds]
        own["parallel"] = statistics.median(per_lab)
        held = sum(all(r["exit"] == 0 for r in rd["runs"]) for rd in rounds)
        print(f"the library at once ({args.parallel or 'all'} at a time), {len(rounds)} round(s): "
              f"wall {stats(walls)} s; own per lab {stats(per_lab)} s; "
              f"{held}/{len(rounds)} rounds held every expectation")
    if serial_cpu["runs"]:
        print(f"machine CPU per lab, one after another: {serial_cpu['machine'] / serial_cpu['runs']:.2f} s "
              f"(tcplab's processes {serial_cpu['tcplab'] / serial_cpu['runs']:.2f} s)")
    bound = None
    containers = [r["containers"] for r in every if r["containers"]]
    if floor is not None and containers:
        per_lab = statistics.mean(containers)
        cores = os.cpu_count() or 1
        bound = floor * per_lab / cores
        print(f"engine bound: {per_lab:.1f} containers per lab x {floor:.3f} s of CPU each / {cores} cores = "
              f"{bound:.2f} s per lab: no schedule of the library takes less on this machine, whatever tcplab does")
    for mode, value in own.items():
        print(f"target: tcplab's own time <= {OWN_TARGET:g} s per lab ({mode}): {value:.2f} s, "
              f"ratio {value / OWN_TARGET:.2f}: {'met' if value <= OWN_TARGET else 'MISSED'}"
              + (f"; the engine's bound alone is {bound:.2f} s" if bound is not None else ""))
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"library-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"kernel": kernel, "n": args.n, "target": TARGET, "runs": results,
                                "parallel": args.parallel, "rounds": rounds, "own_per_lab": own,
                                "engine_floor_per_container": floor, "engine_bound_per_lab": bound,
                                "serial_cpu": serial_cpu}, indent=1))
    print(f"\n{path.relative_to(ROOT)}")
    return 0 if met_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
