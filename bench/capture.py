#!/usr/bin/env python3
"""Benchmark: the packet rate a lab's capture path holds with no kernel drops.

Two lab hosts (``a`` sends to ``b``) on one internal bridge network, made by
tcplab's own plan (tcplab/plan: the hosts and their capture sidecars). The traffic comes
from small Python generators (this file, ``gen`` mode) in tcplab/tools
sidecars that share each host's network namespace, so the packets cross the
same veth/bridge path as a lab's programs. In one invocation:

1. without capture: a UDP flood (64-byte datagrams, as fast as the sender
   goes) and a TCP bulk transfer (iperf-like), a -> b;
2. with the lab's capture sidecars on both hosts (tcpdump into the run
   directory and the live FIN/RST capture beside it, exactly as ``lab up``
   starts them): the same flood, then
   UDP at paced rates, doubling until tcpdump reports kernel drops (its own
   "dropped by kernel" count, read with observe.capture.parse_tcpdump_stats
   from the sidecar's log after a SIGUSR1) or the sender cannot go faster,
   then bisecting; then the same TCP bulk transfer.

Prints each figure beside the no-capture one and their ratio; ``--json``
writes them too. Bounded: about 30 s on 2 cores (``--seconds`` per run; the
ramps stop at 80 s whatever happens). The figures are those of the machine
at that moment: the load average is printed with them, and a loaded
2-core machine gives the senders and tcpdump less CPU than an idle one.

What limits what: small packets cost the capture CPU per packet only when
tcpdump is woken and writes per packet (``--immediate-mode -U``, as before:
``--variants`` measures it); bulk TCP costs it disk bandwidth (each host's
capture writes every frame whole), and the sidecar's 128 MB memory limit
keeps little of that in the page cache. ``--variants`` also gives each
capture's and generator's CPU (cgroup cpuacct) and the machine's.

Usage:  .venv/bin/python bench/capture.py [--seconds 2] [--json FILE] [--keep]
In a container (stdlib only):  python3 capture.py gen MODE ARG...
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
import sys
import time
from typing import Any, Callable

# --- the traffic generator: runs inside tcplab/tools, stdlib only -------------------------------


def _sendmmsg(sock: socket.socket, payload: bytes, batch: int):  # noqa: ANN202 - a closure over ctypes
    """A function sending ``n`` (<= batch) copies of ``payload`` with one sendmmsg(2) call: one Python
    call per 256 datagrams instead of one each, so the generator outruns the capture it loads."""
    import ctypes

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    class MsgHdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IoVec)),
                    ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]

    class MMsgHdr(ctypes.Structure):
        _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(payload, len(payload))
    iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(payload))
    msgs = (MMsgHdr * batch)()
    for m in msgs:
        m.hdr.iov = ctypes.pointer(iov)
        m.hdr.iovlen = 1
    fd = sock.fileno()
    call = libc.sendmmsg

    def send(n: int) -> int:
        got = call(fd, msgs, n, 0)
        return got if got > 0 else 0

    send.keep = (buf, iov, msgs)  # type: ignore[attr-defined]
    return send


def _udp_sender(dst: str, port: int, rate: float, seconds: float, size: int) -> tuple[int, int, float]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect((dst, port))
    batch = 256
    send = _sendmmsg(s, b"\0" * size, batch)
    sent = short = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * rate) if rate > 0 else sent + batch
        if sent >= due:
            time.sleep(0.0002)
            continue
        want = min(due - sent, batch)
        n = send(want)
        sent += n
        short += want - n  # ENOBUFS: the qdisc was full; what was not sent is not counted as sent
    return sent, short, time.monotonic() - t0


def gen_udp_send(dst: str, port: int, rate: float, seconds: float, size: int, procs: int) -> dict[str, Any]:
    """Datagrams of ``size`` bytes for ``seconds`` from ``procs`` processes: at ``rate`` per second in all,
    or as fast as they go (0). One Python process sends some 70 000 a second: more are needed to load a capture."""
    pipes = []
    for _ in range(procs):
        r, w = os.pipe()
        if os.fork() == 0:
            os.close(r)
            got = _udp_sender(dst, port, rate / procs, seconds, size)
            os.write(w, json.dumps(got).encode())
            os._exit(0)
        os.close(w)
        pipes.append(r)
    sent = errors = 0
    longest = 0.0
    for r in pipes:
        with os.fdopen(r, "rb") as f:
            n, e, dt = json.loads(f.read())
        sent, errors, longest = sent + n, errors + e, max(longest, dt)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    return {"sent": sent, "errors": errors, "seconds": longest}


def gen_udp_sink(port: int, seconds: float) -> dict[str, Any]:
    """Hold the port open and read nothing: the kernel counts what arrives (Udp InDatagrams, RcvbufErrors)
    without a receiving process taking a core from the capture."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    time.sleep(seconds)
    s.close()
    return {"held": seconds}


def gen_tcp_send(dst: str, port: int, seconds: float, rate: float = 0) -> dict[str, Any]:
    """A bulk transfer for ``seconds``; paced by the kernel at ``rate`` bytes per second unless 0."""
    s = socket.create_connection((dst, port))
    if rate > 0:
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_MAX_PACING_RATE", 47), int(rate))
    chunk = b"\0" * 65536
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    return {"bytes": sent, "seconds": time.monotonic() - t0}


def gen_tcp_recv(port: int, seconds: float) -> dict[str, Any]:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    ls.settimeout(seconds)
    c, _ = ls.accept()
    buf = bytearray(1 << 20)
    n = 0
    t0 = time.monotonic()
    while True:
        got = c.recv_into(buf)
        if not got:
            break
        n += got
    dt = time.monotonic() - t0
    c.close()
    return {"bytes": n, "seconds": dt}


def gen_main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "udp-send":
        out = gen_udp_send(args[0], int(args[1]), float(args[2]), float(args[3]), int(args[4]), int(args[5]))
    elif mode == "udp-sink":
        out = gen_udp_sink(int(args[0]), float(args[1]))
    elif mode == "tcp-send":
        out = gen_tcp_send(args[0], int(args[1]), float(args[2]), float(args[3]))
    elif mode == "tcp-recv":
        out = gen_tcp_recv(int(args[0]), float(args[1]))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


# --- the benchmark: runs on the machine, drives the engine through tcplab ----------------------

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
UDP_SIZE = 64  # payload bytes: 106-byte frames, the packet-rate worst case
SENDERS = 2  # sender processes: one per core of the machine the project runs on
TIME_BUDGET = 100.0  # seconds: the ramp stops early rather than overrun


@dataclass(frozen=True)
class Variant:
    """tcpdump options against the lab's (``-B`` ring KiB, ``-s`` snaplen: None keeps the lab's,
    ``--immediate-mode``, ``-U``, the live FIN/RST capture beside it), or one capture on the bridge instead of
    one per host."""
    key: str
    label: str
    buffer_kib: int = 32768
    snaplen: int | None = None
    immediate: bool = False
    packet_buffered: bool = False
    live: bool = True
    bridge: bool = False

    def apply(self, command: list[str]) -> list[str]:
        out = list(command)
        if self.snaplen is not None:
            out[out.index("-s") + 1] = str(self.snaplen)
        at = out.index("-n") + 1
        out[at:at] = (["--immediate-mode"] if self.immediate else []) + (["-U"] if self.packet_buffered else [])
        if self.bridge:  # a bridge hands its local tap the frames it forwards between ports only when promiscuous
            out.remove("-p")
        return out


FRAME = "-s <a frame: MTU + 18>"
SHIPPED = f"-B 32768 {FRAME}"
LIVE = "a live FIN/RST tcpdump (--immediate-mode -U) beside it"
BEFORE = f"-B 32768 {FRAME} --immediate-mode -U"
VARIANTS = (
    Variant("shipped", f"**chosen, now shipped**: per host, {SHIPPED} (TPACKET_V3 blocks, a buffered file); {LIVE}"),
    Variant("before", f"before: per host, {BEFORE}", immediate=True, packet_buffered=True, live=False),
    Variant("nolive", f"per host, {SHIPPED}, no live capture (its cost)", live=False),
    Variant("v2", f"per host, {SHIPPED} --immediate-mode (TPACKET_V2), no -U; {LIVE}", immediate=True),
    Variant("v2-nolive", f"per host, {SHIPPED} --immediate-mode (TPACKET_V2), no -U, no live capture",
            immediate=True, live=False),
    Variant("v3-U", f"per host, {SHIPPED} -U (TPACKET_V3, a write per packet); {LIVE}", packet_buffered=True),
    Variant("b8m", f"as shipped, -B 8192; {LIVE}", buffer_kib=8192),
    Variant("b2m", f"as shipped, -B 2048 (tcpdump's default); {LIVE}", buffer_kib=2048),
    Variant("s0", "before, -s 0 (64 KB GSO slots)", snaplen=0, immediate=True, packet_buffered=True, live=False),
    Variant("s0-b128m", "before, -s 0 -B 131072 (4x ring)", snaplen=0, buffer_kib=131072, immediate=True,
            packet_buffered=True, live=False),
    Variant("s256", "before, -s 256 (headers)", snaplen=256, immediate=True, packet_buffered=True, live=False),
    Variant("bridge", f"one on the bridge (host netns, promiscuous), {BEFORE}", bridge=True, immediate=True,
            packet_buffered=True, live=False),
    Variant("bridge-v3", f"one on the bridge (host netns, promiscuous), {SHIPPED}", bridge=True, live=False),
)


class CaptureBench:
    def __init__(self, seconds: float, keep: bool) -> None:
        sys.path.insert(0, ROOT)
        from tcplab.backend.docker import DockerBackend

        self.seconds = seconds
        self.keep = keep
        self.backend = DockerBackend()
        self.backend.ping()
        self.port = 5000
        self.round = 0
        self.captures: dict[str, str] = {}
        self.started = time.monotonic()
        self.log: list[str] = []

    # set-up and tear-down, through tcplab's own specs
    def setup(self) -> None:
        import random

        import yaml

        from tcplab.backend.base import ContainerSpec, EngineError, Mount
        from tcplab.backend.images import ImageBuilder
        from tcplab.model import load_lab
        from tcplab.paths import IMAGES_DIR
        from tcplab.plan import RunNames, plan_lab
        from tcplab.play.naming import new_run_id
        from tcplab.rundir import RunDir

        ImageBuilder(self.backend, IMAGES_DIR, lambda i, m: self.say(f"image {i}: {m}")).ensure(
            {"tcplab/client", "tcplab/tools"})
        name = f"capbench-{os.getpid() % 100000}"
        out = os.path.join(BENCH_DIR, "out")
        os.makedirs(out, exist_ok=True)
        for attempt in range(6):
            subnet = f"10.95.{random.randint(0, 255)}.0/24"  # this benchmark's own /16
            data = {"name": name, "summary": "capture benchmark", "network": {"subnet": subnet},
                    "capture": {"filter": "udp or tcp", "blocks": True},
                    "hosts": {"a": {"image": "tcplab/client"}, "b": {"image": "tcplab/client"}}}
            lab_file = os.path.join(out, f"{name}.yaml")
            with open(lab_file, "w") as f:
                yaml.safe_dump(data, f)
            lab, _ = load_lab(lab_file)
            run_id = new_run_id(name)
            self.rd = RunDir(os.path.join(out, run_id)).create()
            self.names = RunNames(lab.name, run_id, str(self.rd.path))
            self.lab = lab
            self.plan = plan_lab(lab, self.names, self.rd, volumes=not self.backend.shares_files)
            try:
                self.backend.create_network(self.names.network, subnet, self.names.labels("network"))
                break
            except EngineError as e:  # a subnet another lab holds: draw again
                if attempt == 5:
                    raise
                self.say(f"subnet {subnet}: {e}")
        self.ips = {h: str(lab.host_ip(h)) for h in lab.hosts}
        for h in ("a", "b"):
            self.backend.start_container(self.plan.host(h).spec)
            self.backend.start_container(ContainerSpec(
                name=self.names.sidecar(h, "gen"), image="tcplab/tools", labels=self.names.labels("bench", h),
                command=["sleep", "infinity"], joins=self.names.host(h),
                mounts=(Mount(BENCH_DIR, "/bench", read_only=True),), mem_limit="256m", pids_limit=64))

    def teardown(self) -> None:
        import shutil

        from tcplab.play.teardown import teardown

        if hasattr(self, "names"):
            teardown(self.backend, self.names.run)
        if hasattr(self, "rd") and not self.keep:
            shutil.rmtree(self.rd.path, ignore_errors=True)
            try:
                os.remove(os.path.join(BENCH_DIR, "out", f"{self.names.lab}.yaml"))
            except OSError:
                pass

    def say(self, msg: str) -> None:
        print(f"· {msg}", file=sys.stderr, flush=True)

    # captures
    def start_captures(self, buffer_kib: int | None = None, variant: Variant | None = None) -> None:
        """The lab's capture sidecars; ``buffer_kib`` tries another ring size than the lab's, ``variant``
        other tcpdump options, or one capture on the network's bridge instead of one per host."""
        import dataclasses

        from tcplab.observe.capture import READY_LINE, CaptureSidecar

        self.round += 1
        self.captures = {}
        if variant is not None and variant.bridge:
            self._start_bridge_capture(variant)
            return
        for h in ("a", "b"):
            spec = next(s.spec for s in self.plan.host(h).sidecars if s.role == "capture")
            if buffer_kib is not None or variant is not None:
                kib = variant.buffer_kib if variant is not None else buffer_kib
                lab_side = spec.command or []
                side = CaptureSidecar(h, self.lab.capture.filter, buffer_kib=kib or 32768,
                                      snaplen=int(lab_side[lab_side.index("-s") + 1]))
                if variant is None:
                    command = side.command(self.rd.pcap(h).name, f"{h}.live")
                else:
                    command = variant.apply(side.command(f"{h}-{self.round}.pcap",
                                                         f"{h}-{self.round}.live" if variant.live else None))
                spec = dataclasses.replace(spec, command=command,
                                           name=spec.name if variant is None else f"{spec.name}-{self.round}")
            self.backend.start_container(spec)
            self.captures[h] = spec.name
            if not self.backend.wait_log(spec.name, READY_LINE, timeout=20):
                raise RuntimeError(f"capture on {h} did not start: {self.backend.logs(spec.name)[-200:]}")

    def _start_bridge_capture(self, variant: Variant) -> None:
        """One tcpdump on the lab network's bridge, in the machine's own network namespace (which a lab's
        sidecar may not join: measured here only to compare), the same options as the hosts' captures."""
        from tcplab.observe.capture import READY_LINE, CaptureSidecar

        net_id = self.backend.api.inspect_network(self.names.network)["Id"]
        bridge = f"br-{net_id[:12]}"
        lab_side = next(s.spec.command for s in self.plan.host("a").sidecars if s.role == "capture") or []
        command = variant.apply(CaptureSidecar("bridge", self.lab.capture.filter, interface=bridge,
                                               buffer_kib=variant.buffer_kib,
                                               snaplen=int(lab_side[lab_side.index("-s") + 1]))
                                .command(f"bridge-{self.round}.pcap"))
        name = self.names.sidecar("a", f"bridge-{self.round}")
        api = self.backend.api
        api.create_container("tcplab/tools", command=command, name=name, labels=self.names.labels("capture", "a"),
                             host_config=api.create_host_config(network_mode="host", cap_add=["NET_RAW"],
                                                                binds=[f"{self.rd.capture_dir}:/capture:rw"],
                                                                mem_limit="128m", init=True))
        api.start(name)
        self.captures["bridge"] = name
        if not self.backend.wait_log(name, READY_LINE, timeout=20):
            raise RuntimeError(f"capture on {bridge} did not start: {self.backend.logs(name)[-200:]}")

    def capture_counts(self) -> dict[str, dict[str, int]]:
        """Each capture's counts now: SIGUSR1 makes tcpdump print them; wait for the new block."""
        from tcplab.observe.capture import parse_tcpdump_stats

        out = {}
        for h, c in self.captures.items():
            before = self.backend.logs(c).count("dropped by kernel")
            self.backend.api.kill(c, signal="SIGUSR1")
            deadline = time.monotonic() + 10
            while True:
                text = self.backend.logs(c)
                if text.count("dropped by kernel") > before:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tcpdump on {h} printed no counts after SIGUSR1")
                time.sleep(0.02)
            out[h] = parse_tcpdump_stats(text)
        return out

    def stop_captures(self, remove: bool = False) -> dict[str, dict[str, int]]:
        from tcplab.observe.capture import parse_tcpdump_stats

        names = list(self.captures.values())
        self.backend.stop(names, timeout=5)
        out = {h: parse_tcpdump_stats(self.backend.logs(n)) for h, n in self.captures.items()}
        if remove:
            for n in names:
                self.backend.api.remove_container(n, force=True)
            for f in self.rd.capture_dir.glob(f"*-{self.round}.*"):
                f.unlink()  # hundreds of MB at these rates: only the counts matter here
        return out

    # traffic
    def _gen(self, host: str, *args: object) -> dict[str, Any]:
        res = self.backend.exec(self.names.sidecar(host, "gen"),
                                ["python3", "/bench/capture.py", "gen", *map(str, args)])
        if res.exit_code != 0:
            raise RuntimeError(f"generator on {host} failed: {res.stderr.strip()[-300:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])

    def _listening(self, proto: str, port: int) -> None:
        flag = "-Hlun" if proto == "udp" else "-Hltn"
        deadline = time.monotonic() + 10
        while self.backend.exec(self.names.host("b"), ["ss", flag, f"sport = :{port}"]).stdout.strip() == "":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receiver on b is not listening on {proto} {port}")
            time.sleep(0.02)

    def udp_arrived(self) -> int:
        """Datagrams that reached b's UDP sockets (read or dropped for a full buffer), from b's /proc/net/snmp."""
        for _ in range(5):  # an exec on a loaded engine now and then returns nothing: ask again
            text = self.backend.exec(self.names.host("b"), ["cat", "/proc/net/snmp"]).stdout
            if "Udp:" in text:
                break
        head, values = [line.split()[1:] for line in text.splitlines() if line.startswith("Udp:")][:2]
        row = dict(zip(head, map(int, values)))
        return row["InDatagrams"] + row["RcvbufErrors"]

    def flow(self, proto: str, rate: float = 0) -> dict[str, Any]:  # rate: datagrams/s or bytes/s
        """One run a -> b; returns the sender's and receiver's figures."""
        import threading

        self.port += 1
        port = self.port
        got: dict[str, Any] = {}
        hold = self.seconds + 1.5

        def receive() -> None:
            try:
                if proto == "udp":
                    got["recv"] = self._gen("b", "udp-sink", port, hold)
                else:
                    got["recv"] = self._gen("b", "tcp-recv", port, self.seconds + 15)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                got["error"] = e

        arrived = self.udp_arrived() if proto == "udp" else 0
        t = threading.Thread(target=receive)
        t.start()
        self._listening(proto, port)
        if proto == "udp":
            sent = self._gen("a", "udp-send", self.ips["b"], port, rate, self.seconds, UDP_SIZE, SENDERS)
            sent["arrived"] = self.udp_arrived() - arrived
        else:
            sent = self._gen("a", "tcp-send", self.ips["b"], port, self.seconds, rate)
        t.join(timeout=self.seconds + 30)
        if "error" in got:
            raise got["error"]
        return {"send": sent, "recv": got["recv"]}

    def cpu_times(self) -> dict[str, float]:
        """CPU seconds so far of each capture and generator container (cgroup v1 cpuacct, where the engine
        runs on this machine; nothing elsewhere), and of the whole machine (busy, from /proc/stat)."""
        out: dict[str, float] = {}
        names = {**{f"capture {h}": c for h, c in self.captures.items()},
                 **{f"gen {h}": self.names.sidecar(h, "gen") for h in ("a", "b")}}
        for label, c in names.items():
            try:
                cid = self.backend.api.inspect_container(c)["Id"]
                with open(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage") as f:
                    out[label] = int(f.read()) / 1e9
            except (OSError, KeyError, ValueError):
                pass
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        out["machine busy"] = (sum(cpu) - cpu[3] - cpu[4]) / os.sysconf("SC_CLK_TCK")
        return out

    def udp(self, rate: float = 0, captured: bool = False) -> dict[str, Any]:  # rate: datagrams/s
        before = self.capture_counts() if captured else None
        cpu0, t0 = self.cpu_times(), time.monotonic()
        r = self.flow("udp", rate)
        cpu1, t1 = self.cpu_times(), time.monotonic()
        dt = max(r["send"]["seconds"], 1e-9)
        out = {"target_pps": rate, "sent_pps": r["send"]["sent"] / dt, "received_pps": r["send"]["arrived"] / dt,
               "sent": r["send"]["sent"], "received": r["send"]["arrived"], "send_errors": r["send"]["errors"],
               "cores": {k: round((cpu1[k] - cpu0[k]) / (t1 - t0), 2) for k in cpu1 if k in cpu0}}
        if before is not None:
            after = self.capture_counts()
            out["capture"] = {h: {k: after[h].get(k, 0) - before[h].get(k, 0) for k in after[h]} for h in after}
            out["dropped"] = sum(c.get("dropped", 0) for c in out["capture"].values())
        return out

    def tcp(self, rate_gbit: float = 0, captured: bool = False) -> dict[str, Any]:
        before = self.capture_counts() if captured else None
        size = self.rd.pcap("b").stat().st_size if captured else 0
        r = self.flow("tcp", rate_gbit * 1e9 / 8)
        dt = r["send"]["seconds"]
        out = {"target_gbit_s": rate_gbit, "gbit_s": r["recv"]["bytes"] * 8 / dt / 1e9, "bytes": r["recv"]["bytes"]}
        if before is not None:
            after = self.capture_counts()
            out["capture"] = {h: {k: after[h].get(k, 0) - before[h].get(k, 0) for k in after[h]} for h in after}
            out["dropped"] = sum(c.get("dropped", 0) for c in out["capture"].values())
            out["frames_per_s"] = out["capture"]["b"].get("received", 0) / dt
            out["written_mb_s"] = (self.rd.pcap("b").stat().st_size - size) / dt / 1e6
        return out

    def ramp(self, measure: Callable[[float], dict[str, Any]], achieved: str, start: float,
             top: float | None, unit: str) -> tuple[float, list[dict[str, Any]]]:
        """The highest paced rate with 0 kernel drops: doubling from ``start`` (below ``top``, a rate known
        to drop, if given) until drops or the sender falls short, then two bisections."""
        steps: list[dict[str, Any]] = []
        ok, bad = 0.0, top
        rate = start
        while bad is None or rate < bad:
            if time.monotonic() - self.started > TIME_BUDGET * 0.8:
                break
            r = measure(rate)
            steps.append(r)
            self.say(f"  paced {rate:,.2f} {unit}: reached {r[achieved]:,.2f}, dropped by kernel {r['dropped']}")
            if r["dropped"] > 0:
                bad = rate
                break
            ok = max(ok, r[achieved])
            if r[achieved] < 0.9 * rate:
                break
            rate *= 2
        for _ in range(2):
            if bad is None or ok == 0 or time.monotonic() - self.started > TIME_BUDGET * 0.8:
                break
            mid = (ok + bad) / 2
            r = measure(mid)
            steps.append(r)
            self.say(f"  paced {mid:,.2f} {unit}: reached {r[achieved]:,.2f}, dropped by kernel {r['dropped']}")
            if r["dropped"] == 0:
                ok = max(ok, r[achieved])
            else:
                bad = mid
        return ok, steps


def bench_main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each traffic run (default 2)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the captures (bench/out/<run>/capture)")
    ap.add_argument("--buffer-kib", type=int, help="tcpdump's ring (-B) instead of the lab's, to compare")
    ap.add_argument("--variants", action="store_true",
                    help="instead: each capture choice (ring, snaplen, immediate mode, per host or on the bridge) "
                         "at --rate, beside the same traffic without capture")
    ap.add_argument("--only", help="--variants: these choices only (keys, comma-separated: "
                    + ", ".join(v.key for v in VARIANTS) + ")")
    ap.add_argument("--rate", type=float, default=100000, help="packets/s for --variants (default 100000)")
    args = ap.parse_args(argv)
    b = CaptureBench(args.seconds, args.keep)
    if args.variants:
        return variants_main(b, args.rate, args.json, args.only.split(",") if args.only else None)
    result: dict[str, Any] = {"seconds_per_run": args.seconds, "udp_payload": UDP_SIZE}
    try:
        b.say(f"setting up two lab hosts a -> b (load average {os.getloadavg()[0]:.2f})")
        b.setup()
        b.say("without capture: UDP flood, TCP bulk")
        result["udp_flood_nocap"] = base_udp = b.udp()
        result["tcp_bulk_nocap"] = base_tcp = b.tcp()
        b.say("with the lab's capture sidecars on a and b: UDP flood")
        b.start_captures(args.buffer_kib)
        result["udp_flood_cap"] = cap_udp = b.udp(captured=True)
        if cap_udp["dropped"] == 0:  # the hosts sent all they could and the capture kept up
            udp_held, udp_steps = cap_udp["sent_pps"], []
        else:
            b.say("UDP at paced rates below the flood")
            udp_held, udp_steps = b.ramp(lambda r: b.udp(r, captured=True), "sent_pps",
                                         round(cap_udp["sent_pps"] / 8, -3), cap_udp["sent_pps"], "pps")
        b.say("TCP bulk with capture, then paced")
        result["tcp_bulk_cap"] = cap_tcp = b.tcp(captured=True)
        if cap_tcp["dropped"] == 0:
            tcp_held, tcp_steps = cap_tcp["gbit_s"], []
        else:
            tcp_held, tcp_steps = b.ramp(lambda r: b.tcp(r, captured=True), "gbit_s",
                                         max(0.25, round(cap_tcp["gbit_s"] / 8, 2)), cap_tcp["gbit_s"], "Gbit/s")
        result.update(udp_held_pps=udp_held, udp_ramp=udp_steps, tcp_held_gbit_s=tcp_held, tcp_ramp=tcp_steps)
        result["capture_totals"] = b.stop_captures()
    finally:
        b.teardown()
    result["elapsed_s"] = time.monotonic() - b.started
    result["load_average"] = os.getloadavg()

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y else "-"

    rows = [
        ("UDP flood a->b, pps sent", f"{base_udp['sent_pps']:,.0f}", f"{cap_udp['sent_pps']:,.0f}",
         ratio(cap_udp["sent_pps"], base_udp["sent_pps"])),
        ("UDP flood a->b, pps at b", f"{base_udp['received_pps']:,.0f}", f"{cap_udp['received_pps']:,.0f}",
         ratio(cap_udp["received_pps"], base_udp["received_pps"])),
        ("TCP bulk a->b, Gbit/s", f"{base_tcp['gbit_s']:.2f}", f"{cap_tcp['gbit_s']:.2f}",
         ratio(cap_tcp["gbit_s"], base_tcp["gbit_s"])),
    ]
    print(f"capture path benchmark: two lab hosts, {args.seconds:g} s runs, {UDP_SIZE}-byte UDP payloads from "
          f"{SENDERS} sendmmsg senders; {result['elapsed_s']:.0f} s in all, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':30}{'no capture':>12}{'capture':>12}{'ratio':>7}  kernel drops (a+b)")
    drops = [str(cap_udp["dropped"]), str(cap_udp["dropped"]), str(cap_tcp["dropped"])]
    for (label, x, y, r), d in zip(rows, drops):
        print(f"{label:30}{x:>12}{y:>12}{r:>7}  {d}")
    print(f"TCP bulk with capture: {cap_tcp['frames_per_s']:,.0f} frames/s (GSO, up to 64 KB each) seen on b, "
          f"b's pcap written at {cap_tcp['written_mb_s']:,.0f} MB/s")
    udp_note = ("the senders went no faster with the captures running; no drops seen" if not udp_steps else
                "ramp " + ", ".join(f"{s['target_pps']:,.0f}:{s['dropped']}" for s in udp_steps))
    tcp_note = ("the sender went no faster with the captures running; no drops seen" if not tcp_steps else
                "ramp " + ", ".join(f"{s['target_gbit_s']:.2f}:{s['dropped']}" for s in tcp_steps))
    print(f"held with 0 kernel drops: {udp_held:,.0f} pps of small UDP = {ratio(udp_held, base_udp['sent_pps'])} "
          f"of the no-capture flood ({udp_note})")
    print(f"held with 0 kernel drops: {tcp_held:.2f} Gbit/s of TCP = {ratio(tcp_held, base_tcp['gbit_s'])} of the "
          f"no-capture bulk rate ({tcp_note})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def variants_main(b: CaptureBench, rate: float, json_path: str | None, only: list[str] | None = None) -> int:
    """Each capture choice at ``rate`` packets/s of 64-byte UDP, a -> b, with its kernel drops, beside the same
    traffic without capture (and the flood without capture), in one invocation."""
    import datetime

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[dict[str, Any]] = []
    try:
        b.say(f"setting up two lab hosts a -> b (load average {os.getloadavg()[0]:.2f})")
        b.setup()
        flood = b.udp()
        paced = b.udp(rate)
        b.say(f"without capture: flood {flood['sent_pps']:,.0f} pps, paced {paced['sent_pps']:,.0f} pps "
              f"(load {os.getloadavg()[0]:.1f}); cores busy: flood {flood['cores']}, paced {paced['cores']}")
        for v in [v for v in VARIANTS if only is None or v.key in only]:
            b.start_captures(variant=v)
            r = b.udp(rate, captured=True)
            b.stop_captures(remove=True)
            r.update(variant=v.label, load=os.getloadavg()[0])
            rows.append(r)
            b.say(f"{v.label}: sent {r['sent_pps']:,.0f} pps, kernel drops {r['dropped']} "
                  f"(captured {sum(c.get('captured', 0) for c in r['capture'].values()):,}), load {r['load']:.1f}, "
                  f"cores busy {r['cores']}")
    finally:
        b.teardown()
    print(f"capture choices at {rate:,.0f} packets/s of {UDP_SIZE}-byte UDP between two lab hosts, {b.seconds:g} s "
          f"each, {date}; without capture: flood {flood['sent_pps']:,.0f} pps sent, paced {paced['sent_pps']:,.0f} "
          f"pps sent, {paced['received_pps']:,.0f} at b")
    print("| choice | pps sent with capture | uncaptured (paced) | ratio | kernel drops | captures' CPU (cores) "
          "| machine busy (cores) | load average | date |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cap_cpu = sum(v for k, v in r["cores"].items() if k.startswith("capture"))
        print(f"| {r['variant']} | {r['sent_pps']:,.0f} | {paced['sent_pps']:,.0f} | "
              f"{r['sent_pps'] / paced['sent_pps']:.2f} | {r['dropped']:,} | {cap_cpu:.2f} | "
              f"{r['cores'].get('machine busy', 0):.2f} | {r['load']:.1f} | {date} |")
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"date": date, "rate": rate, "flood_nocap": flood, "paced_nocap": paced, "variants": rows}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "gen":
        sys.exit(gen_main(sys.argv[2:]))
    sys.exit(bench_main(sys.argv[1:]))
