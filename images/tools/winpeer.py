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
  the wire (an AF_PACKET socket on the interface, a classic BPF filter for
  IPv4/TCP), keeps one timer per connection, sends that RST at layer 2 through
  the same socket (so this namespace's netfilter never sees it) and then
  removes the host's own FIN_WAIT_2 socket with ``ss -K``, guarded by a
  temporary iptables rule that drops the RST the kernel would send if the
  socket were still a full one.

Standard library only: the sidecar is ready in milliseconds (importing scapy
alone took about 300 ms in the container, and the lab waits for ``peer ready``
before it plays). Frames are parsed and built here with ``struct``.

Usage:
  winpeer.py --iface eth0 --fin-wait2-timeout SECONDS --syn linux|windows-7|windows-10
             [--events FILE.jsonl] [--queue-num N] [--synrewrite PATH] [--realtime PRIORITY]

Prints ``peer ready`` once the capture socket is bound and its reader runs, then one JSON line per action
(also appended to --events): {"ts", "event", "conn": {"src","sport","dst","dport"}, "detail"}
with event one of timer_priority (first, no connection: how the timers are
scheduled), fin_sent, fin_acked, peer_fin, timer_cancelled, rst_sent,
socket_killed, syn_rewritten (and error). SIGTERM removes the iptables rule,
stops synrewrite and exits 0.

Needs CAP_NET_RAW (sniff, send) and CAP_NET_ADMIN (iptables, NFQUEUE, ss -K).
The timers live in a process of their own (``--timer-child``, started by this one):
a thread would need the interpreter lock to send its RST, and on a loaded machine the
capture thread holding it can wait hundreds of milliseconds for a CPU.
With ``--realtime PRIORITY`` (> 0) that process alone runs at SCHED_FIFO,
which needs CAP_SYS_NICE and, where the kernel schedules real-time tasks by
cgroup (cgroup v1 with RT group scheduling), a real-time budget for the
container (``--cpu-rt-runtime``). Only that process: a group that spends its
budget is throttled until the kernel has paid the excess back, a period (1 s)
or more, and every real-time task in it waits that long; the timer process
spends about a millisecond per timer. Where SCHED_FIFO is
refused the program runs as without the option and says why.
"""
from __future__ import annotations

import argparse
import array
import errno
import fcntl
import heapq
import itertools
import json
import os
import queue
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Callable, NamedTuple

SYN_PROFILES = {
    # profile: (window, wscale, ttl)
    "windows-7": (8192, 8, 128),
    "windows-10": (64240, 8, 128),
}
WINDOWS_TTL = 128
SEQ_MOD = 1 << 32
GUARD_COMMENT = "tcplab-winpeer-guard"
SYNREWRITE_LINE = re.compile(r"^rewrote SYN (?P<src>[\d.]+):(?P<sport>\d+) > (?P<dst>[\d.]+):(?P<dport>\d+)")

# --- frames: Ethernet II / IPv4 / TCP, parsed and built with struct ---------------------------------
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
IPPROTO_TCP = 6
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
IP_DF = 0x4000
ETH = struct.Struct("!6s6sH")                # dst, src, ethertype
IPV4 = struct.Struct("!BBHHHBBH4s4s")        # ver/ihl, tos, total length, id, flags/frag, ttl, proto, sum, src, dst
TCP_HDR = struct.Struct("!HHIIBBHHH")        # sport, dport, seq, ack, data offset, flags, window, sum, urgent
PSEUDO = struct.Struct("!4s4sBBH")           # the TCP checksum's pseudo-header: src, dst, 0, proto, TCP length
MIN_FRAME = ETH.size + IPV4.size + TCP_HDR.size


class Segment(NamedTuple):
    """The fields of one captured IPv4/TCP frame this program looks at."""

    eth_dst: bytes
    eth_src: bytes
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int      # 9 bits, as tcpdump and scapy count them (NS is 0x100)
    window: int
    paylen: int     # TCP payload bytes, from the IPv4 total length (the capture may be truncated)


def parse_frame(frame: bytes) -> Segment | None:
    """An Ethernet II frame carrying IPv4/TCP (the first fragment or an unfragmented packet), else None."""
    if len(frame) < MIN_FRAME:
        return None
    eth_dst, eth_src, ethertype = ETH.unpack_from(frame, 0)
    if ethertype != ETH_P_IP:
        return None
    vihl, _tos, total, _id, frag, _ttl, proto, _sum, src, dst = IPV4.unpack_from(frame, ETH.size)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or proto != IPPROTO_TCP or frag & 0x1FFF or ihl < IPV4.size:
        return None
    if len(frame) < ETH.size + ihl + TCP_HDR.size:
        return None
    sport, dport, seq, ack, off, flags, window, _sum, _urg = TCP_HDR.unpack_from(frame, ETH.size + ihl)
    return Segment(eth_dst, eth_src, socket.inet_ntoa(src), socket.inet_ntoa(dst), sport, dport, seq, ack,
                   ((off & 0x01) << 8) | flags, window, max(0, total - ihl - (off >> 4) * 4))


def inet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of the 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rst_frame(eth_src: bytes, eth_dst: bytes, src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
              ip_id: int, ttl: int = WINDOWS_TTL) -> bytes:
    """Windows' FIN_WAIT_2 reset as one Ethernet frame: ``[R.] seq ack win 0``, no options, TTL 128, DF,
    both checksums filled in (nothing below this program computes them: the frame leaves at layer 2)."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = TCP_HDR.pack(sport, dport, seq % SEQ_MOD, ack % SEQ_MOD, 5 << 4, RST | ACK, 0, 0, 0)
    tcp_sum = inet_checksum(PSEUDO.pack(s, d, 0, IPPROTO_TCP, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", tcp_sum) + tcp[18:]
    ip = IPV4.pack(0x45, 0, IPV4.size + len(tcp), ip_id & 0xFFFF, IP_DF, ttl, IPPROTO_TCP, 0, s, d)
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    return ETH.pack(eth_dst, eth_src, ETH_P_IP) + ip + tcp


SIOCGIFADDR = 0x8915
IFREQ = struct.Struct("16s24x")  # struct ifreq: the name, then a union as large as a struct ifmap


def iface_ipv4(iface: str) -> str | None:
    """The interface's (primary) IPv4 address, or None if it has none or does not exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, IFREQ.pack(iface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(res[20:24])  # ifr_addr: a sockaddr_in after the 16-byte name (family, port, address)


# --- the capture: an AF_PACKET socket, its BPF filter, a reader thread ---------------------------------
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # SCM_TIMESTAMPNS has the same value
TIMESPEC = struct.Struct("@ll")  # struct timespec of SO_TIMESTAMPNS(_OLD): native longs
SNAPLEN = 256  # Ethernet (14) + IPv4 (up to 60) + TCP (up to 60): headers are all this program reads
SOCK_FILTER = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k
SOCK_FPROG = struct.Struct("HP")     # struct sock_fprog: len, *filter
# classic BPF, "ip and tcp" on Ethernet: IPv4 ethertype, protocol 6, keep the first SNAPLEN bytes; drop the rest
TCP4_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 12),          # ldh [12]        ethertype
    (0x15, 0, 3, ETH_P_IP),    # jeq #0x800      else drop
    (0x30, 0, 0, 23),          # ldb [23]        IPv4 protocol
    (0x15, 0, 1, IPPROTO_TCP),  # jeq #6         else drop
    (0x06, 0, 0, SNAPLEN),     # ret #SNAPLEN
    (0x06, 0, 0, 0),           # ret #0
)


def attach_filter(sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
    """SO_ATTACH_FILTER with a classic BPF program (the kernel copies it: the buffer need not outlive the call)."""
    code = array.array("B", b"".join(SOCK_FILTER.pack(*ins) for ins in program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, SOCK_FPROG.pack(len(program), code.buffer_info()[0]))


class Capture:
    """The interface's IPv4/TCP frames, both directions, with their kernel timestamps; also the way out.

    The socket is opened with protocol 0 (it receives nothing), gets its filter, then is bound
    with ETH_P_ALL (the protocol that sees outgoing frames too): no unfiltered frame is ever
    queued. From the bind on, frames queue in the socket until the reader thread reads them.
    The reader sleeps in poll() on the socket and a pipe; ``stop`` writes to the pipe.
    Frames sent through this socket do not come back to it (the kernel skips the sender).
    """

    def __init__(self, iface: str, on_segment: Callable[[Segment, float], None],
                 on_error: Callable[[str], None]) -> None:
        self.on_segment = on_segment
        self.on_error = on_error
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            attach_filter(self.sock, TCP4_FILTER)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.sock.bind((iface, ETH_P_ALL))
        except BaseException:
            self.sock.close()
            raise
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        self.reading = threading.Event()
        self.thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self, timeout: float) -> None:
        self.thread.start()
        if not self.reading.wait(timeout):
            raise RuntimeError("the capture did not start")

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        os.write(self.wake_w, b"x")
        if self.thread.is_alive():
            self.thread.join(timeout=2)
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        ancsize = socket.CMSG_SPACE(TIMESPEC.size)
        recvmsg = self.sock.recvmsg
        self.reading.set()
        while not self.stopping:
            try:
                frame, anc, _flags, _addr = recvmsg(SNAPLEN, ancsize, socket.MSG_DONTWAIT)
            except BlockingIOError:
                poller.poll()
                continue
            except OSError as e:
                if not self.stopping:
                    self.on_error(f"capture failed: {type(e).__name__}: {e}")
                return
            ts = None
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
                    sec, nsec = TIMESPEC.unpack_from(data)
                    ts = sec + nsec / 1e9
            seg = parse_frame(frame)
            if seg is None:
                continue
            try:
                self.on_segment(seg, time.time() if ts is None else ts)
            except Exception as e:  # noqa: BLE001 - one odd frame must not end the capture
                self.on_error(f"frame handling failed: {type(e).__name__}: {e}")


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


def enter_realtime(priority: int) -> str | None:
    """Put the calling thread at SCHED_FIFO ``priority``, what it forks (ss, iptables, new threads) back at
    the normal policy; None, or why the kernel refused."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as e:
        return f"{errno.errorcode.get(e.errno or 0, e.errno)}: {e.strerror}"
    return None


CAP_SYS_NICE = 23


def realtime_context() -> str:
    """What decides whether SCHED_FIFO is allowed here: CAP_SYS_NICE, and the cgroup's real-time budget."""
    parts = []
    try:
        with open("/proc/self/status") as f:
            caps = next((line.split()[1] for line in f if line.startswith("CapEff:")), "0")
        parts.append("CAP_SYS_NICE" if int(caps, 16) >> CAP_SYS_NICE & 1 else "no CAP_SYS_NICE")
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.rt_runtime_us") as f:
            runtime = f.read().strip()
        with open("/sys/fs/cgroup/cpu/cpu.rt_period_us") as f:
            period = f.read().strip()
        parts.append(f"real-time budget {runtime} us per {period} us")
    except OSError:
        parts.append("no real-time budget by cgroup")
    return ", ".join(parts)


class TimerProcess:
    """The FIN_WAIT_2 deadlines, kept and met by a process of their own (``winpeer.py --timer-child``).

    Not a thread: a thread woken at its deadline must take the interpreter lock before it can send,
    and on a loaded machine the thread holding it (the capture, at the normal policy) may wait for a
    CPU for a few hundred milliseconds: a real-time thread then waits as long. The child has its own
    interpreter and nothing else to do. It alone runs at SCHED_FIFO (``realtime`` > 0), so it alone
    spends the group's real-time budget; at the normal policy it wakes ``spin`` seconds early and
    spins the rest on the clock.

    The child sends each RST through the capture's own AF_PACKET socket (its descriptor is passed
    on): frames sent through a packet socket do not come back to it, so the capture never reads the
    emulated RST as one of the host's. Lines on the child's stdin: ``arm TOKEN DEADLINE FRAME-HEX``
    (the deadline on the monotonic clock, which every process shares), ``cancel TOKEN``; on its
    stdout: first ``priority fifo|normal DETAIL``, then for each armed timer one line as it ends:
    ``fired TOKEN SENT-WALL WOKE`` (``WOKE``: how far from its deadline the child woke, in seconds), or
    ``dropped TOKEN`` for one cancelled before it fired (a cancel that comes after its RST is too late and
    changes nothing). So the parent forgets each timer once, when the child has done with it.
    """

    def __init__(self, sock_fd: int, realtime: int, on_fired: Callable[[int, float, float], None],
                 on_dropped: Callable[[int], None]) -> None:
        self.on_fired = on_fired
        self.on_dropped = on_dropped
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--timer-child", str(sock_fd),
                                      str(realtime)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, pass_fds=(sock_fd,))
        assert self.proc.stdout is not None and self.proc.stdin is not None
        first = self.proc.stdout.readline().rstrip("\n").split(" ", 2)
        if len(first) < 3 or first[0] != "priority":
            raise RuntimeError(f"the timer process did not start ({' '.join(first) or 'no output'})")
        self.realtime = first[1] == "fifo"
        self.said = first[2]
        self.reader = threading.Thread(target=self._read, name="timer-reports", daemon=True)
        self.reader.start()

    def schedule(self, deadline: float, frame: bytes) -> int:
        with self.lock:
            token = next(self.counter)
            self._write(f"arm {token} {deadline!r} {frame.hex()}")
            return token

    def cancel(self, token: int) -> None:
        with self.lock:
            self._write(f"cancel {token}")

    def stop(self) -> None:
        with self.lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # EOF: the child exits
            except OSError:
                pass
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=2)

    def _write(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as e:  # the child is gone: said once, by the reader
            log(f"winpeer: timer process unreachable: {e}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "fired":
                self.on_fired(int(parts[1]), float(parts[2]), float(parts[3]))
            elif len(parts) == 2 and parts[0] == "dropped":
                self.on_dropped(int(parts[1]))
            elif line.strip():
                log(f"winpeer timer: {line.rstrip()}")


def timer_child(sock_fd: int, priority: int) -> int:
    """The timer process (see :class:`TimerProcess`): a heap of deadlines, one select() on stdin."""
    sock = socket.socket(fileno=sock_fd)
    if priority > 0:
        refused = enter_realtime(priority)
        said = f"SCHED_FIFO refused, {refused}" if refused else f"SCHED_FIFO priority {priority}"
    else:
        refused, said = "not asked", "not asked for real time"
    print(f"priority {'normal' if refused else 'fifo'} {said} ({realtime_context()})", flush=True)
    spin = 0.0 if refused is None else 0.010
    heap: list[tuple[float, int, bytes]] = []
    waiting: set[int] = set()  # the tokens in the heap
    cancelled: set[int] = set()  # those of them cancelled
    pending = b""
    stdin = sys.stdin.fileno()

    def take(timeout: float | None) -> bool:
        """Read what the parent wrote within ``timeout``; False once it has closed the pipe."""
        nonlocal pending
        ready, _, _ = select.select([stdin], [], [], timeout)
        if not ready:
            return True
        data = os.read(stdin, 65536)
        if not data:
            return False
        pending += data
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            parts = raw.decode("ascii", "replace").split()
            if len(parts) == 4 and parts[0] == "arm":
                heapq.heappush(heap, (float(parts[2]), int(parts[1]), bytes.fromhex(parts[3])))
                waiting.add(int(parts[1]))
            elif len(parts) == 2 and parts[0] == "cancel" and int(parts[1]) in waiting:
                cancelled.add(int(parts[1]))
        return True

    def drop(token: int) -> None:
        waiting.discard(token)
        cancelled.discard(token)
        print(f"dropped {token}", flush=True)

    while True:
        while heap and heap[0][1] in cancelled:
            drop(heapq.heappop(heap)[1])
        if not heap:
            if not take(None):
                return 0
            continue
        remaining = heap[0][0] - time.monotonic()
        if remaining > spin:
            if not take(remaining - spin):
                return 0
            continue  # woken by the parent, or early by the spin: look again
        deadline, token, frame = heapq.heappop(heap)
        woke = -remaining
        while time.monotonic() < deadline:
            pass  # the last `spin` seconds at the normal policy; none at SCHED_FIFO
        if not take(0):  # a cancel written just before the deadline still counts
            return 0
        if token in cancelled:
            drop(token)
            continue
        waiting.discard(token)
        sock.send(frame)
        sent = time.time()
        print(f"fired {token} {sent!r} {woke!r}", flush=True)


class Conn:
    """What we know of one connection of this host, keyed (local ip, local port, peer ip, peer port)."""

    __slots__ = ("key", "fin_seq", "fin_ack", "fin_ts", "eth_src", "eth_dst", "acked", "peer_fin", "token",
                 "rst_sent", "frame", "deadline_wall", "armed_wall")

    def __init__(self, key: tuple[str, int, str, int]) -> None:
        self.key = key
        self.fin_seq: int | None = None   # sequence number the FIN occupies
        self.fin_ack: int | None = None   # the FIN's ack field
        self.fin_ts: float | None = None  # wall time the FIN left (AF_PACKET timestamp)
        self.eth_src: bytes | None = None  # the FIN's MAC addresses, reused for the RST
        self.eth_dst: bytes | None = None
        self.acked = False
        self.peer_fin = False
        self.token: int | None = None
        self.rst_sent = False
        self.frame: bytes | None = None
        self.deadline_wall: float | None = None
        self.armed_wall: float | None = None  # when the timer was set (the FIN's ack read off the wire)


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
        self.args = args
        self.iface = args.iface
        self.timeout = float(args.fin_wait2_timeout)
        me = iface_ipv4(self.iface)
        if not me or me == "0.0.0.0":
            raise RuntimeError(f"no IPv4 address on {self.iface}")
        self.me: str = me
        self.events = Events(args.events)
        self.lock = threading.Lock()
        self.conns: dict[tuple[str, int, str, int], Conn] = {}
        self.kills: queue.Queue = queue.Queue()
        self.ipt = Iptables()
        self.queue_rule: list[str] | None = None
        self.synrewrite: subprocess.Popen | None = None
        self.synrewrite_reader: threading.Thread | None = None
        self.stop_event = stop  # set by SIGTERM, or by a fatal failure (synrewrite gone)
        self.failed = False
        # opened (and bound) first: without CAP_NET_RAW nothing else starts; the RSTs go out through it too
        self.capture = Capture(self.iface, self._on_packet, lambda msg: log(f"winpeer: {msg}"))
        self.armed: dict[int, Conn] = {}  # timer token -> its connection, until fired or dropped
        self.timers = TimerProcess(self.capture.sock.fileno(), int(args.realtime), self._fired, self._dropped)
        policy = self.timers.said if self.timers.realtime else f"the normal policy (SCHED_OTHER): {self.timers.said}"
        self.events.emit("timer_priority", None, f"FIN_WAIT_2 timers at {policy}, in a process of their own")
        self.ip_id = itertools.count(0x4000)
        threading.Thread(target=self._kill_worker, name="socket-killer", daemon=True).start()

    # --- start and stop -------------------------------------------------------
    def start(self) -> None:
        profile = self.args.syn
        if profile != "linux":
            self._start_synrewrite(*SYN_PROFILES[profile])
        self._start_capture()
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

    def _start_capture(self) -> None:
        self.capture.start(timeout=15)

    def shutdown(self) -> None:
        self.stop_event.set()
        self.timers.stop()
        try:
            self.capture.stop()
        except OSError:  # it may have died with the interface
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

    # --- the wire (the capture thread) ---------------------------------------------
    def _on_packet(self, tcp: Segment, ts: float) -> None:
        flags = tcp.flags
        fin, syn, rst, ack = flags & FIN, flags & SYN, flags & RST, flags & ACK
        if tcp.src == self.me:
            key = (tcp.src, tcp.sport, tcp.dst, tcp.dport)
            outgoing = True
        elif tcp.dst == self.me:
            key = (tcp.dst, tcp.dport, tcp.src, tcp.sport)
            outgoing = False
        else:
            return
        with self.lock:
            conn = self.conns.get(key)
            if syn and not ack and outgoing:
                # a new connection on this 4-tuple: forget the old one
                if conn is not None and conn.token is not None:
                    self.timers.cancel(conn.token)
                    conn.token = None
                conn = self.conns[key] = Conn(key)
            if conn is None:
                conn = self.conns[key] = Conn(key)
            if outgoing:
                self._outgoing(conn, ts, tcp, fin, rst, tcp.paylen)
            else:
                self._incoming(conn, ts, tcp, fin, rst, ack)

    def _outgoing(self, conn: Conn, ts: float, tcp: Segment, fin: int, rst: int, paylen: int) -> None:
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
        conn.eth_src, conn.eth_dst = tcp.eth_src, tcp.eth_dst
        if conn.peer_fin:
            self.events.emit("fin_sent", conn.key, f"[F.] seq {conn.fin_seq} ack {conn.fin_ack} after the peer's FIN "
                             "(passive close, LAST_ACK): no FIN_WAIT_2 timer", ts)
        else:
            self.events.emit("fin_sent", conn.key, f"[F.] seq {conn.fin_seq} ack {conn.fin_ack}: FIN_WAIT_1", ts)

    def _incoming(self, conn: Conn, ts: float, tcp: Segment, fin: int, rst: int, ack: int) -> None:
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
        assert conn.fin_ts is not None and conn.fin_seq is not None and conn.fin_ack is not None
        assert conn.eth_src is not None and conn.eth_dst is not None
        local, lport, peer, pport = conn.key
        rst_seq = (conn.fin_seq + 1) % SEQ_MOD
        conn.frame = rst_frame(conn.eth_src, conn.eth_dst, local, peer, lport, pport, rst_seq, conn.fin_ack,
                               next(self.ip_id) & 0xFFFF)
        conn.deadline_wall = conn.fin_ts + self.timeout
        conn.armed_wall = time.time()
        # the deadline on the monotonic clock, counted from the FIN's wire timestamp
        deadline = time.monotonic() + (conn.deadline_wall - time.time())
        conn.token = self.timers.schedule(deadline, conn.frame)
        self.armed[conn.token] = conn
        took = 1000 * (ack_ts - conn.fin_ts)
        self.events.emit("fin_acked", conn.key,
                         f"the peer acked our FIN (ack {(conn.fin_seq + 1) % SEQ_MOD}) after {took:.3f} ms: "
                         f"FIN_WAIT_2, RST due in {self.timeout:.3f} s from the FIN", ack_ts)

    def _cancel(self, conn: Conn, why: str) -> None:
        self.timers.cancel(conn.token)
        conn.token = None
        self.events.emit("timer_cancelled", conn.key, f"FIN_WAIT_2 timer cancelled: {why}")

    def _dropped(self, token: int) -> None:
        """The timer process let go of ``token``, cancelled before it fired."""
        with self.lock:
            self.armed.pop(token, None)

    def _fired(self, token: int, sent: float, woke: float) -> None:
        """The timer process sent the RST of ``token`` at ``sent`` (wall clock)."""
        with self.lock:
            conn = self.armed.pop(token, None)
            if conn is None:
                return
            crossed = conn.token != token  # cancelled while the RST was already on its way
            conn.token = None
            conn.rst_sent = True
        late = sent - (conn.deadline_wall or sent)
        detail = (f"FIN_WAIT_2 timer ({self.timeout:.3f} s) expired: "
                  f"sent [R.] seq {((conn.fin_seq or 0) + 1) % SEQ_MOD} "
                  f"ack {conn.fin_ack} win 0 ttl {WINDOWS_TTL} at FIN + {sent - (conn.fin_ts or sent):.6f} s "
                  f"({1000 * late:+.3f} ms; armed at FIN + {(conn.armed_wall or sent) - (conn.fin_ts or sent):.3f} s, "
                  f"the timer process woke {1000 * woke:+.3f} ms from the deadline)")
        if crossed:
            self.events.emit("rst_sent", conn.key, detail + "; the timer was cancelled as it fired: the host's "
                             "socket is left as it is", sent)
            return
        self.events.emit("rst_sent", conn.key, detail, sent)
        self.kills.put(conn.key)

    # --- the host's own socket -------------------------------------------------
    def _kill_worker(self) -> None:
        while True:
            key = self.kills.get()
            try:
                self._kill_socket(key)
            except Exception as e:  # noqa: BLE001 - one failed removal must not stop the timers
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
    ap.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                    help="SCHED_FIFO priority (1-99) for the timers where allowed; 0: the normal policy")
    ap.add_argument("--timer-child", type=int, nargs=2, default=None, metavar=("FD", "PRIORITY"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.fin_wait2_timeout > 0:
        ap.error("--fin-wait2-timeout must be positive")
    if args.timer_child is not None:
        return timer_child(*args.timer_child)

    peer = None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        peer = WinPeer(args, stop)
        peer.start()
        stop.wait()  # no timeout: a thread that wakes now and then may hold the interpreter lock when a timer fires
    except Exception as e:  # noqa: BLE001 - the sidecar says why it stops, then stops
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
