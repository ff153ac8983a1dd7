#!/usr/bin/env python3
"""Benchmark: the packet rate the impairment sidecar (images/impair) holds through NFQUEUE with no loss it
did not choose.

Two containers on their own bridge network: ``a`` (tcplab/tools) sends paced UDP datagrams (64 bytes) to
``b`` (tcplab/tools), which counts what it receives; the impairment sidecar (tcplab/impair, NET_ADMIN, in b's
network namespace, as a lab's impair step runs it) holds one queue with a pass-through rule (a seeded
probability of 0: it counts every packet and drops none) and iptables sends b's incoming UDP to it. In one
invocation, at each rate: the baseline (no iptables rule: the same path without the queue), then through the
queue. Loss the program did not choose is what ``b`` did not receive, and the kernel's own counts of the queue
(``/proc/net/netfilter/nfnetlink_queue``: dropped because the queue was full, or because the program's
netlink socket overran). The program logs nothing here (it drops nothing).

Usage:  .venv/bin/python bench/impair.py [--seconds 3] [--rates 10000,20000,40000,80000] [--json FILE]
In a container (stdlib only):  python3 impair.py send IP PORT RATE SECONDS | recv PORT SECONDS
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from typing import Any

PORT = 9999
QUEUE = 100


def send(ip: str, port: int, rate: int, seconds: float) -> None:
    """Paced: every millisecond, as many datagrams as the rate owes by then; prints how many went."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    payload, sent, start = b"x" * 64, 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        owed = int(elapsed * rate) - sent
        for _ in range(owed):
            try:
                s.sendto(payload, (ip, port))
                sent += 1
            except OSError:  # a full send buffer: the sender's limit, counted as not sent
                break
        if owed <= 0:
            time.sleep(0.0005)
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start}), flush=True)


def recv(port: int, seconds: float) -> None:
    """Counts datagrams until ``seconds`` pass with nothing more after the first (or in all)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    s.settimeout(seconds)
    got = 0
    try:
        while True:
            s.recv(2048)
            got += 1
            s.settimeout(1.0)
    except socket.timeout:
        pass
    print(json.dumps({"received": got}), flush=True)


# --- the driver: docker CLI, argv lists only ----------------------------------------------------------------

def docker(*args: str, check: bool = True) -> str:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def wait_for(container: str, line: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if line in docker("logs", container, check=False):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{container} never said '{line}': {docker('logs', container, check=False)[-300:]}")


def queue_counts(side: str) -> dict[str, int]:
    """The kernel's counters of our queue: waiting, dropped (queue full), user_dropped (netlink overrun)."""
    for row in docker("exec", side, "cat", "/proc/net/netfilter/nfnetlink_queue").splitlines():
        f = row.split()
        if f and int(f[0]) == QUEUE:
            return {"waiting": int(f[2]), "queue_dropped": int(f[5]), "user_dropped": int(f[6]), "id": int(f[7])}
    return {}


def one(tag: str, b_ip: str, rate: int, seconds: float, script: str) -> dict[str, Any]:
    rx = subprocess.Popen(["docker", "exec", f"{tag}-b", "python3", script, "recv", str(PORT), str(seconds + 5)],
                          stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None
    assert rx.stdout.readline().strip() == "ready"
    tx = json.loads(docker("exec", f"{tag}-a", "python3", script, "send", b_ip, str(PORT), str(rate), str(seconds)))
    got = json.loads(rx.stdout.readline())
    rx.wait(timeout=30)
    return {"rate": rate, "sent": tx["sent"], "received": got["received"], "lost": tx["sent"] - got["received"],
            "pps": round(got["received"] / tx["seconds"])}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rates", default="10000,20000,40000,80000")
    ap.add_argument("--json")
    opts = ap.parse_args()
    tag = f"tcplab-bench-impair-{os.getpid()}"
    here = os.path.abspath(__file__)
    script = "/bench/impair.py"
    mount = ["-v", f"{here}:{script}:ro"]
    made: list[str] = []
    net = ""
    try:
        for _ in range(10):
            third = random.randint(1, 250)
            net = f"10.241.{third}.0/24"
            if subprocess.run(["docker", "network", "create", "--internal", "--subnet", net, tag],
                              capture_output=True).returncode == 0:
                break
        else:
            raise RuntimeError("no free subnet")
        b_ip = net.replace(".0/24", ".3")
        for name, ip in (("a", net.replace(".0/24", ".2")), ("b", b_ip)):
            docker("run", "-d", "--name", f"{tag}-{name}", "--network", tag, "--ip", ip, *mount, "tcplab/tools",
                   "sleep", "infinity")
            made.append(f"{tag}-{name}")
        side = f"{tag}-impair"
        docker("run", "-d", "--name", side, "--network", f"container:{tag}-b", "--cap-add", "NET_ADMIN",
               "tcplab/impair", "/opt/lab/impair", "/tmp/impair.log", f"{QUEUE}:bench:prob:0:1:0")
        made.append(side)
        wait_for(side, "impair ready")
        load = os.getloadavg()
        rows: list[dict[str, Any]] = []
        rule = ["INPUT", "-p", "udp", "--dport", str(PORT), "-j", "NFQUEUE", "--queue-num", str(QUEUE)]
        for rate in map(int, opts.rates.split(",")):
            base = one(tag, b_ip, rate, opts.seconds, script)
            docker("exec", side, "iptables", "-w", "5", "-I", *rule)
            before = queue_counts(side)
            queued = one(tag, b_ip, rate, opts.seconds, script)
            after = queue_counts(side)
            docker("exec", side, "iptables", "-w", "5", "-D", *rule)
            queued["queue_dropped"] = after["queue_dropped"] - before["queue_dropped"]
            queued["user_dropped"] = after["user_dropped"] - before["user_dropped"]
            queued["through_queue"] = after["id"] - before["id"]
            rows.append({"rate": rate, "baseline": base, "nfqueue": queued})
            print(f"{rate:>7} pps offered | baseline: {base['sent']:>7} sent {base['received']:>7} received "
                  f"({base['pps']:>6} pps, lost {base['lost']}) | nfqueue: {queued['sent']:>7} sent "
                  f"{queued['through_queue']:>7} queued {queued['received']:>7} received ({queued['pps']:>6} pps, "
                  f"lost {queued['lost']}; queue full {queued['queue_dropped']}, netlink overrun "
                  f"{queued['user_dropped']}) | ratio {queued['pps'] / max(base['pps'], 1):.2f}", flush=True)
        log = docker("exec", side, "sh", "-c", "wc -l < /tmp/impair.log").strip()
        print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; packets the program logged "
              f"(dropped by choice): {log}")
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump({"load": load, "seconds": opts.seconds, "rows": rows}, f, indent=2)
        return 0
    finally:
        for c in reversed(made):
            subprocess.run(["docker", "rm", "-f", c], capture_output=True)
        subprocess.run(["docker", "network", "rm", tag], capture_output=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "recv":
        recv(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit(main())
