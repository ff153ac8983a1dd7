#!/usr/bin/env python3
"""Windows TCP peer emulation for one lab host (sidecar in the host's network namespace).

A Linux kernel is the host's real TCP stack; this program makes the host look
like a Windows client on the wire where the two differ in the reference story:

* SYN fingerprint (``--syn windows-7|windows-10``): the host's outgoing SYNs go
  through an NFQUEUE rule to ``synrewrite``, which sets TTL 128, the Windows
  window and the options ``[mss,nop,wscale 8,nop,nop,sackOK]``.
* FIN_WAIT_2 timer: Windows resets a connection whose peer never sends its
  FIN, ``--fin-wait2-timeout`` seconds (120 by default in Windows) after the
  host sent its own FIN, with ``[R.] seq <fin+1>, ack <same>, win 0``. A Linux
  kernel would drop the orphaned socket silently instead. The program watches
  the wire (AF_PACKET, filter ``tcp``), keeps one timer per connection, sends
  that RST at layer 2 (so this namespace's netfilter never sees it) and then
  removes the host's own FIN_WAIT_2 socket with ``ss -K``, guarded by a
  temporary iptables rule that drops the RST the kernel would send if the
  socket were still a full one.

Usage:
  winpeer.py --iface eth0 --fin-wait2-timeout SECONDS --syn linux|windows-7|windows-10
             [--events FILE.jsonl] [--queue-num N] [--synrewrite PATH]

Prints ``peer ready`` once the sniffer captures, then one JSON line per action
(also appended to --events): {"ts", "event", "conn": {"src","sport","dst","dport"}, "detail"}
with event one of fin_sent, fin_acked, peer_fin, timer_cancelled, rst_sent,
socket_killed, syn_rewritten (and error). SIGTERM removes the iptables rule,
stops synrewrite and exits 0.

Needs CAP_NET_RAW (sniff, send) and CAP_NET_ADMIN (iptables, NFQUEUE, ss -K).
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

SYN_PROFILES = {
    # profile: (window, wscale, ttl)
    "windows-7": (8192, 8, 128),
    "windows-10": (64240, 8, 128),
}
WINDOWS_TTL = 128
SEQ_MOD = 1 << 32
GUARD_COMMENT = "tcplab-winpeer-guard"
SYNREWRITE_LINE = re.compile(r"^rewrote SYN (?P<src>[\d.]+):(?P<sport>\d+) > (?P<dst>[\d.]+):(?P<dport>\d+)")


def log(msg: str) -> None:
    print(msg, flush=True)


class Events:
    """JSON lines to stdout and to the events file, one writer at a time."""

    def __init__(self, path: str | None) -> None:
        self.lock = threading.Lock()
        self.f = None
        if path:
            d = os.path.dirname(path)
            if d:
                os.makedirs(d, exist_ok=True)
            self.f = open(path, "a", buffering=1)

    def emit(self, event: str, conn: tuple[str, int, str, int] | None, detail: str, ts: float | None = None) -> None:
        rec = {"ts": round(time.time() if ts is None else ts, 6), "event": event,
               "conn": None if conn is None else {"src": conn[0], "sport": conn[1], "dst": conn[2], "dport": conn[3]},
               "detail": detail}
        line = json.dumps(rec)
        with self.lock:
            print(line, flush=True)
            if self.f is not None:
                self.f.write(line + "\n")
                self.f.flush()

    def close(self) -> None:
        with self.lock:
            if self.f is not None:
                self.f.close()
                self.f = None


class Scheduler:
    """One thread, a heap of deadlines (monotonic clock), Condition.wait(timeout): no polling.

    The thread wakes SPIN seconds early and spins the rest on the clock: a wakeup
    on a busy machine can take milliseconds, a running thread reads the clock in
    microseconds. Actions check themselves whether they were cancelled meanwhile.
    """

    SPIN = 0.010

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.heap: list[tuple[float, int, object]] = []
        self.counter = itertools.count()
        self.cancelled: set[int] = set()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="fin-wait2-timers", daemon=True)
        self.thread.start()

    def schedule(self, deadline: float, fn) -> int:
        with self.cond:
            token = next(self.counter)
            heapq.heappush(self.heap, (deadline, token, fn))
            self.cond.notify()
            return token

    def cancel(self, token: int) -> None:
        with self.cond:
            self.cancelled.add(token)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    if self.stopping:
                        return
                    while self.heap and self.heap[0][1] in self.cancelled:
                        self.cancelled.discard(heapq.heappop(self.heap)[1])
                    if not self.heap:
                        self.cond.wait()
                        continue
                    remaining = self.heap[0][0] - time.monotonic()
                    if remaining <= self.SPIN:
                        deadline, token, fn = heapq.heappop(self.heap)
                        break
                    self.cond.wait(remaining - self.SPIN)
            spins = 0
            while time.monotonic() < deadline:
                spins += 1
                if spins % 64 == 0:
                    time.sleep(0)  # let the sniffer thread have the GIL now and then
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a timer must never kill the scheduler
                log(f"winpeer: timer action failed: {type(e).__name__}: {e}")


class Conn:
    """What we know of one connection of this host, keyed (local ip, local port, peer ip, peer port)."""

    __slots__ = ("key", "fin_seq", "fin_ack", "fin_ts", "eth_src", "eth_dst", "acked", "peer_fin", "token",
                 "rst_sent", "frame", "deadline_wall")

    def __init__(self, key: tuple[str, int, str, int]) -> None:
        self.key = key
        self.fin_seq: int | None = None   # sequence number the FIN occupies
        self.fin_ack: int | None = None   # the FIN's ack field
        self.fin_ts: float | None = None  # wall time the FIN left (AF_PACKET timestamp)
        self.eth_src: str | None = None
        self.eth_dst: str | None = None
        self.acked = False
        self.peer_fin = False
        self.token: int | None = None
        self.rst_sent = False
        self.frame: bytes | None = None
        self.deadline_wall: float | None = None


class Iptables:
    """The iptables flavour that works in this namespace (nft-backed first, then legacy)."""

    def __init__(self) -> None:
        self.cmd: str | None = None

    def run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        assert self.cmd is not None
        p = subprocess.run([self.cmd, "-w", *args], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"{self.cmd} {' '.join(args)}: {p.stderr.strip() or p.returncode}")
        return p

    def add_first_working(self, args: list[str]) -> None:
        errors = []
        for cmd in ("iptables", "iptables-nft", "iptables-legacy"):
            try:
                p = subprocess.run([cmd, "-w", *args], capture_output=True, text=True)
            except FileNotFoundError:
                continue
            if p.returncode == 0:
                self.cmd = cmd
                return
            errors.append(f"{cmd}: {p.stderr.strip()}")
        raise RuntimeError("cannot install the iptables rule: " + "; ".join(errors))


class WinPeer:
    def __init__(self, args: argparse.Namespace, stop: threading.Event) -> None:
        from scapy.all import get_if_addr

        self.args = args
        self.iface = args.iface
        self.timeout = float(args.fin_wait2_timeout)
        self.me = get_if_addr(self.iface)
        if not self.me or self.me == "0.0.0.0":
            raise RuntimeError(f"no IPv4 address on {self.iface}")
        self.events = Events(args.events)
        self.lock = threading.Lock()
        self.conns: dict[tuple[str, int, str, int], Conn] = {}
        self.scheduler = Scheduler()
        self.kills: queue.Queue = queue.Queue()
        self.ipt = Iptables()
        self.queue_rule: list[str] | None = None
        self.synrewrite: subprocess.Popen | None = None
        self.synrewrite_reader: threading.Thread | None = None
        self.sniffer = None
        self.stop_event = stop  # set by SIGTERM, or by a fatal failure (synrewrite gone)
        self.failed = False
        # the RST goes out through this packet socket, opened once (what sendp does, minus the per-call setup)
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.tx.bind((self.iface, 0))
        self.ip_id = itertools.count(0x4000)
        threading.Thread(target=self._kill_worker, name="socket-killer", daemon=True).start()

    # --- start and stop -------------------------------------------------------
    def start(self) -> None:
        profile = self.args.syn
        if profile != "linux":
            self._start_synrewrite(*SYN_PROFILES[profile])
        self._start_sniffer()
        log(f"winpeer: {self.me} on {self.iface}, FIN_WAIT_2 timeout {self.timeout:g} s, SYN profile {profile}")
        log("peer ready")

    def _start_synrewrite(self, window: int, wscale: int, ttl: int) -> None:
        q = str(self.args.queue_num)
        self.synrewrite = subprocess.Popen([self.args.synrewrite, q, str(window), str(wscale), str(ttl)],
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        ready = threading.Event()

        def reader() -> None:
            assert self.synrewrite is not None and self.synrewrite.stdout is not None
            for line in self.synrewrite.stdout:
                line = line.rstrip("\n")
                if line.startswith("synrewrite ready"):
                    log(line)
                    ready.set()
                    continue
                m = SYNREWRITE_LINE.match(line)
                if m:
                    conn = (m["src"], int(m["sport"]), m["dst"], int(m["dport"]))
                    self.events.emit("syn_rewritten", conn, line.removeprefix("rewrote ").strip())
                else:
                    log(line)
            ready.set()  # EOF: exited
            if not self.stop_event.is_set():
                code = self.synrewrite.wait()
                self.events.emit("error", None,
                                 f"synrewrite exited unexpectedly (status {code}); SYNs would be dropped")
                self.failed = True
                self.stop_event.set()

        self.synrewrite_reader = threading.Thread(target=reader, name="synrewrite-out", daemon=True)
        self.synrewrite_reader.start()
        if not ready.wait(10) or self.synrewrite.poll() is not None:
            raise RuntimeError("synrewrite did not become ready")
        # the rule comes after the queue is bound: no SYN ever waits on an empty queue
        rule = ["-t", "mangle", "-A", "OUTPUT", "-o", self.iface, "-p", "tcp", "--tcp-flags", "SYN,ACK,RST", "SYN",
                "-j", "NFQUEUE", "--queue-num", q]
        self.ipt.add_first_working(rule)
        self.queue_rule = rule
        log(f"winpeer: {self.ipt.cmd} {' '.join(rule)}")

    def _start_sniffer(self) -> None:
        from scapy.all import AsyncSniffer

        started = threading.Event()
        self.sniffer = AsyncSniffer(iface=self.iface, filter="tcp", prn=self._on_packet, store=False,
                                    started_callback=started.set)
        self.sniffer.start()
        if not started.wait(15):
            raise RuntimeError("the sniffer did not start")

    def shutdown(self) -> None:
        self.stop_event.set()
        self.scheduler.stop()
        if self.sniffer is not None:
            try:
                self.sniffer.stop(join=True)
            except Exception:  # noqa: BLE001 - it may have died with the interface
                pass
        if self.queue_rule is not None:
            delete = list(self.queue_rule)
            delete[delete.index("-A")] = "-D"
            self.ipt.run(delete, check=False)
            self.queue_rule = None
        if self.synrewrite is not None and self.synrewrite.poll() is None:
            self.synrewrite.terminate()
            try:
                self.synrewrite.wait(3)
            except subprocess.TimeoutExpired:
                self.synrewrite.kill()
                self.synrewrite.wait()
        if self.synrewrite_reader is not None:
            self.synrewrite_reader.join(timeout=2)  # its last lines ("synrewrite stopped") first
        self.events.close()

    # --- the wire ------------------------------------------------------------
    def _on_packet(self, pkt) -> None:
        from scapy.all import IP, TCP, Ether

        if IP not in pkt or TCP not in pkt or Ether not in pkt:
            return
        ip, tcp = pkt[IP], pkt[TCP]
        ts = float(pkt.time)
        flags = int(tcp.flags)
        fin, syn, rst, ack = flags & 0x01, flags & 0x02, flags & 0x04, flags & 0x10
        paylen = max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)
        if ip.src == self.me:
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            outgoing = True
        elif ip.dst == self.me:
            key = (ip.dst, tcp.dport, ip.src, tcp.sport)
            outgoing = False
        else:
            return
        with self.lock:
            conn = self.conns.get(key)
            if syn and not ack and outgoing:
                # a new connection on this 4-tuple: forget the old one
                if conn is not None and conn.token is not None:
                    self.scheduler.cancel(conn.token)
                    conn.token = None
                conn = self.conns[key] = Conn(key)
            if conn is None:
                conn = self.conns[key] = Conn(key)
            if outgoing:
                self._outgoing(conn, pkt, ts, tcp, fin, rst, paylen)
            else:
                self._incoming(conn, ts, tcp, fin, rst, ack)

    def _outgoing(self, conn: Conn, pkt, ts: float, tcp, fin: int, rst: int, paylen: int) -> None:
        if rst:
            if conn.rst_sent and tcp.window == 0:
                return  # our own emulated RST, seen on the way out
            if conn.token is not None:
                self._cancel(conn, f"the host's kernel reset the connection (seq {tcp.seq})")
            conn.rst_sent = True
            return
        if not fin or conn.fin_seq is not None:
            return  # not a FIN, or a retransmitted one: the timer counts from the first
        conn.fin_seq = (tcp.seq + paylen) % SEQ_MOD
        conn.fin_ack = tcp.ack
        conn.fin_ts = ts
        conn.eth_src, conn.eth_dst = pkt.src, pkt.dst
        if conn.peer_fin:
            self.events.emit("fin_sent", conn.key, f"[F.] seq {conn.fin_seq} ack {conn.fin_ack} after the peer's FIN "
                             "(passive close, LAST_ACK): no FIN_WAIT_2 timer", ts)
        else:
            self.events.emit("fin_sent", conn.key, f"[F.] seq {conn.fin_seq} ack {conn.fin_ack}: FIN_WAIT_1", ts)

    def _incoming(self, conn: Conn, ts: float, tcp, fin: int, rst: int, ack: int) -> None:
        if rst:
            if conn.token is not None:
                self._cancel(conn, f"the peer reset the connection (seq {tcp.seq})")
            conn.rst_sent = True  # nothing left to reset
            return
        if fin and not conn.peer_fin:
            conn.peer_fin = True
            if conn.fin_seq is None:
                self.events.emit("peer_fin", conn.key, "the peer closed first (this host is the passive closer)", ts)
                return
            self.events.emit("peer_fin", conn.key, f"the peer sent its FIN (seq {tcp.seq}) "
                             f"{ts - conn.fin_ts:.3f} s after ours: FIN_WAIT_2 -> TIME_WAIT", ts)
            if conn.token is not None:
                self._cancel(conn, f"the peer's FIN arrived {conn.deadline_wall - ts:.3f} s before the deadline")
            return
        if (ack and conn.fin_seq is not None and not conn.acked and not conn.peer_fin and not conn.rst_sent
                and tcp.ack == (conn.fin_seq + 1) % SEQ_MOD):
            conn.acked = True
            self._arm(conn, ts)

    def _arm(self, conn: Conn, ack_ts: float) -> None:
        from scapy.all import IP, TCP, Ether

        assert conn.fin_ts is not None and conn.fin_seq is not None and conn.fin_ack is not None
        local, lport, peer, pport = conn.key
        rst_seq = (conn.fin_seq + 1) % SEQ_MOD
        conn.frame = bytes(Ether(src=conn.eth_src, dst=conn.eth_dst)
                           / IP(src=local, dst=peer, ttl=WINDOWS_TTL, flags="DF", id=next(self.ip_id) & 0xFFFF)
                           / TCP(sport=lport, dport=pport, flags="RA", seq=rst_seq, ack=conn.fin_ack, window=0))
        conn.deadline_wall = conn.fin_ts + self.timeout
        # the deadline on the monotonic clock, counted from the FIN's wire timestamp
        deadline = time.monotonic() + (conn.deadline_wall - time.time())
        conn.token = self.scheduler.schedule(deadline, lambda c=conn: self._expire(c))
        took = 1000 * (ack_ts - conn.fin_ts)
        self.events.emit("fin_acked", conn.key,
                         f"the peer acked our FIN (ack {(conn.fin_seq + 1) % SEQ_MOD}) after {took:.3f} ms: "
                         f"FIN_WAIT_2, RST due in {self.timeout:.3f} s from the FIN", ack_ts)

    def _cancel(self, conn: Conn, why: str) -> None:
        self.scheduler.cancel(conn.token)
        conn.token = None
        self.events.emit("timer_cancelled", conn.key, f"FIN_WAIT_2 timer cancelled: {why}")

    def _expire(self, conn: Conn) -> None:
        with self.lock:
            if conn.token is None or conn.rst_sent or conn.peer_fin or conn.frame is None:
                return
            conn.token = None
            conn.rst_sent = True
            frame = conn.frame
        sent = time.time()
        self.tx.send(frame)
        late = sent - (conn.deadline_wall or sent)
        self.events.emit("rst_sent", conn.key,
                         f"FIN_WAIT_2 timer ({self.timeout:.3f} s) expired: "
                         f"sent [R.] seq {(conn.fin_seq + 1) % SEQ_MOD} "
                         f"ack {conn.fin_ack} win 0 ttl {WINDOWS_TTL} at FIN + {sent - conn.fin_ts:.6f} s "
                         f"({1000 * late:+.3f} ms)", sent)
        self.kills.put(conn.key)

    # --- the host's own socket -------------------------------------------------
    def _kill_worker(self) -> None:
        while True:
            key = self.kills.get()
            try:
                self._kill_socket(key)
            except Exception as e:  # noqa: BLE001
                self.events.emit("error", key, f"could not remove the host's socket: {type(e).__name__}: {e}")

    def _ss_filter(self, key: tuple[str, int, str, int]) -> list[str]:
        local, lport, peer, pport = key
        return ["src", local, "sport", "=", f":{lport}", "dst", peer, "dport", "=", f":{pport}"]

    def _kill_socket(self, key: tuple[str, int, str, int]) -> None:
        local, lport, peer, pport = key
        before = subprocess.run(["ss", "-tanoH", *self._ss_filter(key)], capture_output=True, text=True).stdout.strip()
        if not before:
            self.events.emit("socket_killed", key, "no kernel socket left for this connection (already gone)")
            return
        state = before.split()[0]
        kind = "timewait" if "timewait" in before else "full"
        # A full socket (not a timewait one) makes the kernel send its own RST when destroyed:
        # drop exactly that one while ss -K runs. The emulated RST left at layer 2, below netfilter.
        guard = ["-t", "filter", "-I", "OUTPUT", "1", "-p", "tcp", "-s", local, "--sport", str(lport), "-d", peer,
                 "--dport", str(pport), "--tcp-flags", "RST", "RST", "-m", "comment", "--comment", GUARD_COMMENT,
                 "-j", "DROP"]
        guarded = False
        if self.ipt.cmd is None:
            try:
                self.ipt.add_first_working(guard)
                guarded = True
            except RuntimeError as e:
                self.events.emit("error", key, f"no RST guard: {e}")
        else:
            guarded = self.ipt.run(guard, check=False).returncode == 0
        try:
            p = subprocess.run(["ss", "-tanK", *self._ss_filter(key)], capture_output=True, text=True)
        finally:
            dropped = 0
            if guarded:
                listing = self.ipt.run(["-t", "filter", "-L", "OUTPUT", "1", "-n", "-v", "-x"], check=False).stdout
                fields = listing.split()
                if fields and fields[0].isdigit():
                    dropped = int(fields[0])
                delete = list(guard)
                delete[2:4] = ["-D", "OUTPUT"]
                self.ipt.run(delete, check=False)
        after = subprocess.run(["ss", "-tanH", *self._ss_filter(key)], capture_output=True, text=True).stdout.strip()
        if p.returncode != 0:
            raise RuntimeError(f"ss -K: {p.stderr.strip() or p.returncode}")
        detail = f"ss -K removed the host's {state} socket ({kind})"
        if dropped:
            detail += f"; the kernel's own RST was dropped ({dropped} packet(s))"
        elif guarded:
            detail += "; the kernel sent no RST of its own"
        if after:
            detail = f"ss -K left the socket in place: {after}"
            self.events.emit("error", key, detail)
            return
        self.events.emit("socket_killed", key, detail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--fin-wait2-timeout", type=float, default=120.0)
    ap.add_argument("--syn", choices=["linux", *SYN_PROFILES], default="linux")
    ap.add_argument("--events", default=None)
    ap.add_argument("--queue-num", type=int, default=0)
    ap.add_argument("--synrewrite", default="/opt/lab/synrewrite")
    args = ap.parse_args()
    if not args.fin_wait2_timeout > 0:
        ap.error("--fin-wait2-timeout must be positive")
    sys.setswitchinterval(0.0005)  # a timer thread waiting for the GIL must not wait 5 ms

    peer = None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        peer = WinPeer(args, stop)
        peer.start()
        while not stop.wait(1.0):
            pass
    except Exception as e:  # noqa: BLE001
        log(f"winpeer: {type(e).__name__}: {e}")
        if peer is not None:
            peer.shutdown()
        return 1
    failed = peer.failed
    peer.shutdown()
    log("winpeer stopped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
