"""Why a socket is where it is: findings computed from one run's data.

Pure data in (packets, socket timelines, snapshots, program logs, the lab as
resolved, the engine's versions), structured findings out; the report renders
them. Every sentence is built from this run's numbers: nothing is pasted from
the field report except the field report's own observations, which are kept
in :data:`FIELD_REPORT` and compared with this run's.

The finding this project exists for is CLOSE_WAIT: which socket, which side,
since when, why (never accepted, never closed), and what ended it (the peer's
RST) or that nothing did.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..wire import FIN, RST, SYN
from .packets import Connection, Packet, Traffic
from .timeline import (Interval, SnapshotSocket, SocketId, SocketTimeline, Timelines, snapshot_order,
                       snapshot_sockets, timer_left)

# What the field report saw (../shared/SCENARIO.md): CentOS 7, kernel 3.10, a Windows 7 telnet client.
FIELD_REPORT: dict[str, Any] = {
    "kernel": "3.10 (CentOS 7)",
    "syn": {"win": 8192, "options": "[mss 1460,nop,wscale 8,nop,nop,sackOK]", "ttl": 128},
    "synack": {"win": 29200, "options": "[mss 1460,nop,nop,sackOK,nop,wscale 7]", "wscale": 7, "mss": 1460},
    "ack": {"ack": 1, "win": 256, "wscale": 8},
    "fin_ack": {"ack": 2, "win": 229, "delay": 0.0003},
    "rst": {"label": "[R.] seq 2, ack 1, win 0", "after_fin": 120.002},
}
_TS_BYTES = 12  # the timestamp option, padded, comes off every segment's payload
_ADDR = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})")


@dataclass
class Fact:
    text: str
    at: float | None = None  # absolute time (the pcaps' clock)
    ref: str | None = None  # what the report links to: "pkt-12", "snap-close_wait", "log-server"


@dataclass
class Finding:
    kind: str  # "close_wait"
    title: str
    socket: SocketId
    side: str  # "server" or "client" (who accepted / who connected), "" when unknown
    since: float | None
    until: float | None  # None: still so at the end of the run
    ended_by: str
    facts: list[Fact] = field(default_factory=list)
    conclusion: str = ""
    accepted: bool | None = None  # None: unknown
    closed_by_app: bool = False


@dataclass
class Difference:
    what: str
    field_report: str
    this_run: str
    why: str

    @property
    def same(self) -> bool:
        return self.field_report == self.this_run


@dataclass
class Explanation:
    t0: float
    findings: list[Finding]
    differences: list[Difference]
    normal_closes: int = 0  # sockets whose CLOSE_WAIT the application ended promptly (not findings)
    normal_longest: float = 0.0
    more_findings: int = 0  # CLOSE_WAITs beyond MAX_FINDINGS, not explained one by one
    reference: str = "the field report (CentOS 7, kernel 3.10, Windows 7 telnet)"


# --- formatting -------------------------------------------------------------

def fmt_span(seconds: float) -> str:
    """120.002 s, 2.221 ms, 63 µs."""
    a = abs(seconds)
    if a >= 1:
        return f"{seconds:.3f} s"
    if a >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_t(ts: float, t0: float) -> str:
    return f"t = {ts - t0:.6f} s"


def option_shape(options: list[tuple[str, object]]) -> str:
    """Options as tcpdump prints them, with timestamp values left out: ``[mss 1460,sackOK,TS,nop,wscale 10]``."""
    parts = []
    for name, val in options:
        parts.append(name if val is None or name in ("TS", "sack") else f"{name} {val}")
    return "[" + ",".join(parts) + "]"


# --- looking things up ------------------------------------------------------

def find_connection(traffic: Traffic, sock: SocketId) -> Connection | None:
    ends = sock.conn_key()
    for c in traffic.connections:
        if frozenset({(c.key[0], c.key[1]), (c.key[2], c.key[3])}) == ends:
            return c
    return None


def _from(conn: Connection | None, ip: str) -> list[Packet]:
    return [p for p in conn.packets if p.tcp.src == ip] if conn else []


def listener_records(snapshots: dict[str, Any], host: str, port: int) -> list[tuple[str, float, dict[str, Any]]]:
    """The LISTEN socket of ``host`` on ``port`` in each snapshot (netstat's record: owner, Recv-Q)."""
    out = []
    for name, snap in snapshot_order(snapshots):
        recs = ((((snap.get("hosts") or {}).get(host) or {}).get("netstat") or {}).get("records") or [])
        for r in recs:
            if r.get("state") == "LISTEN" and r.get("local_port") == port:
                out.append((name, float(snap.get("time") or 0.0), r))
                break
    return out


def log_mentions(text: str) -> dict[str, list[str]]:
    """``ip:port`` -> the log lines that mention it."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        for m in _ADDR.finditer(line):
            out.setdefault(f"{m.group(1)}:{m.group(2)}", []).append(line.strip())
    return out


def _peer_conf(lab: dict[str, Any], host: str) -> dict[str, Any]:
    h = ((lab.get("hosts") or {}).get(host) or {})
    return dict(h.get("peer") or {}) if isinstance(h, dict) else {}


def _seconds(value: Any) -> float | None:
    from ..model.duration import parse_duration

    try:
        return parse_duration(value) if value is not None else None
    except ValueError:
        return None


# --- the CLOSE_WAIT finding ---------------------------------------------------

LINGER = 1.0  # a CLOSE_WAIT the application ends within this many seconds is a normal passive close
MAX_FINDINGS = 20


def explain(traffic: Traffic, timelines: Timelines, snapshots: dict[str, Any], logs: dict[str, str],
            lab: dict[str, Any], engine: dict[str, Any] | None = None) -> Explanation:
    t0 = traffic.start if traffic.packets else timelines.start
    findings: list[Finding] = []
    normal: list[float] = []
    more = 0
    rows = snapshot_sockets(snapshots)  # once: every finding looks its socket up in them
    for tl in timelines.sockets:
        for iv in tl.intervals:
            if iv.state != "CLOSE_WAIT":
                continue
            nxt = _next_interval(tl, iv)
            if iv.end is not None and nxt is not None and nxt.state == "LAST_ACK" and iv.end - iv.start < LINGER:
                normal.append(iv.end - iv.start)  # the application closed it promptly: nothing to explain
                continue
            if len(findings) >= MAX_FINDINGS:
                more += 1
                continue
            f = _close_wait(tl, iv, traffic, timelines, snapshots, rows, logs, lab, t0)
            if f.closed_by_app and f.until is not None and f.until - f.since < LINGER:
                normal.append(f.until - f.since)
            else:
                findings.append(f)
    differences: list[Difference] = []
    if findings:
        conn = find_connection(traffic, findings[0].socket)
        if conn is not None:
            differences = compare_with_field_report(conn, findings[0], engine or {}, lab, traffic)
    return Explanation(t0, findings, differences, normal_closes=len(normal),
                       normal_longest=max(normal) if normal else 0.0, more_findings=more)


def _close_wait(tl: SocketTimeline, iv: Interval, traffic: Traffic, timelines: Timelines,
                snapshots: dict[str, Any], rows: list[SnapshotSocket], logs: dict[str, str], lab: dict[str, Any],
                t0: float) -> Finding:
    s = tl.sock
    names = {ip: h for h, ip in traffic.hosts.items() if ip}
    host, peer = s.host, names.get(s.peer_ip, s.peer_ip)
    conn = find_connection(traffic, s)
    side = ("server" if conn.server == host else "client" if conn.client == host else "") if conn else ""
    facts: list[Fact] = []
    end = timelines.end

    # how the connection came to be
    if conn is not None:
        syn = next((p for p in conn.packets if p.tcp.flags & SYN and p.tcp.src != s.local_ip), None)
        if side == "server" and syn is not None:
            ack = next((p for p in conn.packets
                        if p.n > syn.n and p.tcp.src == s.peer_ip and not p.tcp.flags & SYN), None)
            text = f"{peer} connected to {host}:{s.local_port} at {fmt_t(syn.ts, t0)} (SYN, packet #{syn.n})"
            if ack is not None:
                text += (f"; the kernel completed the handshake {fmt_span(ack.ts - syn.ts)} later "
                         f"(ACK, packet #{ack.n}), whether or not a program ever accepts the connection")
            facts.append(Fact(text + ".", syn.ts, f"pkt-{syn.n}"))

    # who owned it
    mine = [x for x in rows if x.host == host and
            (x.local_ip, x.local_port, x.peer_ip, x.peer_port) == s.key()]
    owners = sorted({f"{x.pid}/{x.program}" for x in mine if x.pid is not None})
    listeners = listener_records(snapshots, host, s.local_port)
    listener_owner = next((f"{r['pid']}/{r['program']}" for _, _, r in listeners if r.get("pid")), None)
    accepted: bool | None = None
    if mine:
        listed = ", ".join(dict.fromkeys(x.snapshot for x in mine))
        if owners:
            accepted = True
            facts.append(Fact(f"It belongs to {', '.join(owners)} in the snapshots ({listed}).",
                              mine[0].time, f"snap-{mine[0].snapshot}"))
        else:
            accepted = False if listener_owner else None
            text = (f"No process owns it: netstat's PID/Program column shows '-' for it in every snapshot that "
                    f"lists it ({listed})")
            if listener_owner:
                text += (f", while the listener on port {s.local_port} belongs to {listener_owner}. A connection "
                         "socket that no process owns, next to a listener that one does, was never accept()ed: it "
                         "waited in the listener's accept queue")
                queued = [(n, r) for n, _, r in listeners if int(r.get("recv_q") or 0) > 0]
                if queued:
                    n, r = queued[0]
                    text += f" (the listener's Recv-Q, its accept queue length, was {r.get('recv_q')} at snapshot {n})"
            facts.append(Fact(text + ".", mine[0].time, f"snap-{mine[0].snapshot}"))
        busy = _program_busy(rows, host, s, listener_owner, names)
        if busy and accepted is False:
            facts.append(Fact(busy[0], busy[1], f"snap-{busy[2]}"))

    # what the program's log says
    log = logs.get(host, "")
    if log:
        mentions = log_mentions(log)
        me = f"{s.peer_ip}:{s.peer_port}"
        accepts = [a for a, lines in mentions.items() if any("ccept" in ln for ln in lines)]
        if me in mentions:
            facts.append(Fact(f"logs/{host}.log mentions {me}: “{mentions[me][0]}”.", None, f"log-{host}"))
            if any("ccept" in ln for ln in mentions[me]):
                accepted = True
        elif accepts:
            facts.append(Fact(f"logs/{host}.log records accepting {', '.join(accepts)}, never {me}.", None,
                              f"log-{host}"))
        else:
            facts.append(Fact(f"logs/{host}.log never mentions {me}.", None, f"log-{host}"))

    # the peer's FIN: the moment CLOSE_WAIT began
    fin = next((p for p in _from(conn, s.peer_ip) if p.tcp.flags & FIN), None)
    if fin is not None:
        text = f"{peer} sent its FIN at {fmt_t(fin.ts, t0)} ({fin.label()}, packet #{fin.n})"
        if iv.source == "tracepoint":
            text += (f"; the kernel tracepoint shows {host}'s socket going ESTABLISHED → CLOSE_WAIT at "
                     f"{fmt_t(iv.start, t0)}")
        facts.append(Fact(text + ".", fin.ts, f"pkt-{fin.n}"))
        ack = next((p for p in _from(conn, s.local_ip) if p.n > fin.n and p.rel_ack >= fin.rel_seq + 1), None)
        if ack is not None:
            who = "kernel" if accepted is False else "TCP stack"
            facts.append(Fact(f"{host}'s {who} acknowledged it {fmt_span(ack.ts - fin.ts)} later "
                              f"({ack.label()}, packet #{ack.n}).", ack.ts, f"pkt-{ack.n}"))
    elif iv.source == "tracepoint":
        facts.append(Fact(f"The kernel tracepoint shows {host}'s socket going ESTABLISHED → CLOSE_WAIT at "
                          f"{fmt_t(iv.start, t0)} (the FIN itself is not in the captures).", iv.start))
    else:
        facts.append(Fact(f"It was first seen in CLOSE_WAIT at {fmt_t(iv.start, t0)} (a snapshot; "
                          "no tracer data and no FIN in the captures).", iv.start))

    # did the application close it?
    own_fin = next((p for p in _from(conn, s.local_ip) if p.tcp.flags & FIN and (fin is None or p.n > fin.n)), None)
    nxt = _next_interval(tl, iv)
    closed_by_app = own_fin is not None or (nxt is not None and nxt.state == "LAST_ACK")
    if conn is not None and own_fin is None:
        sent = len(_from(conn, s.local_ip))
        facts.append(Fact(f"{host} never sent a FIN on this connection ({sent} packets from {host}, none with F): "
                          "no program called close() on this socket.", None, None))
    elif own_fin is not None:
        facts.append(Fact(f"{host} sent its own FIN at {fmt_t(own_fin.ts, t0)} ({own_fin.label()}, packet "
                          f"#{own_fin.n}), {fmt_span(own_fin.ts - (fin.ts if fin else iv.start))} after the peer's: "
                          "the application closed the socket.", own_fin.ts, f"pkt-{own_fin.n}"))

    # how it ended, or that it did not
    since = fin.ts if fin is not None and iv.source != "tracepoint" else iv.start
    rst = next((p for p in _from(conn, s.peer_ip) if p.tcp.flags & RST and p.ts >= since - 0.001), None)
    ended_by = ""
    if iv.end is not None:
        if rst is not None and abs(rst.ts - iv.end) < 0.5:
            ended_by = f"RST from {peer}"
            after = f", {fmt_span(rst.ts - fin.ts)} after its FIN" if fin is not None else ""
            text = (f"It left CLOSE_WAIT when {peer}'s RST arrived at {fmt_t(rst.ts, t0)} "
                    f"({rst.label()}, packet #{rst.n}{after})")
            if iv.ended_by == "reset received":
                text += "; the tracepoint shows CLOSE_WAIT → CLOSE with tcp_receive_reset"
            facts.append(Fact(text + ".", rst.ts, f"pkt-{rst.n}"))
        elif iv.ended_by == "reset received":
            ended_by = f"RST from {peer}"
            facts.append(Fact(f"It left CLOSE_WAIT at {fmt_t(iv.end, t0)} when a reset arrived (tracepoint "
                              "tcp_receive_reset; the RST is not in the captures).", iv.end))
        elif closed_by_app:
            ended_by = "close() by the application"
            facts.append(Fact(f"It left CLOSE_WAIT at {fmt_t(iv.end, t0)} for {nxt.state if nxt else 'CLOSE'}.",
                              iv.end))
        else:
            ended_by = iv.ended_by or "gone"
            facts.append(Fact(f"It left CLOSE_WAIT at {fmt_t(iv.end, t0)}"
                              f"{'' if iv.end_exact else ' (or earlier: the next snapshot no longer lists it)'}.",
                              iv.end))
    else:
        last = mine[-1] if mine else None
        text = f"It is still in CLOSE_WAIT at the end of the run"
        if last is not None:
            text += f": the last snapshot ({last.snapshot}, {fmt_t(last.time, t0)}) lists it"
        if fin is not None:
            text += f", {fmt_span(end - fin.ts)} after {peer}'s FIN"
        facts.append(Fact(text + ".", end, f"snap-{last.snapshot}" if last else None))

    peer_fact = _peer_side(timelines, s, peer, lab, fin, rst, t0, rows, closed_by_app)
    if peer_fact is not None:
        facts.append(peer_fact)

    dur = (iv.end if iv.end is not None else end) - iv.start
    where = f"{host} {s.local_ip}:{s.local_port} ↔ {peer} {s.peer_ip}:{s.peer_port}"
    if iv.end is not None:
        title = f"{where}: CLOSE_WAIT for {fmt_span(dur)}" + (f", until the {ended_by}" if ended_by else "")
    else:
        title = f"{where}: in CLOSE_WAIT for {fmt_span(dur)}, still at the end of the run"
    conclusion = _conclusion(host, peer, side, accepted, closed_by_app, ended_by, iv.end is None, lab, rst, fin)
    return Finding("close_wait", title, s, side, iv.start, iv.end, ended_by, facts, conclusion, accepted, closed_by_app)


def _next_interval(tl: SocketTimeline, iv: Interval) -> Interval | None:
    i = tl.intervals.index(iv)
    return tl.intervals[i + 1] if i + 1 < len(tl.intervals) else None


def _program_busy(rows: list[SnapshotSocket], host: str, s: SocketId, owner: str | None,
                  names: dict[str, str]) -> tuple[str, float, str] | None:
    """What the listener's owner was doing meanwhile: the connections it owned on the same port."""
    if owner is None:
        return None
    for x in rows:
        if (x.host == host and x.local_port == s.local_port and x.pid is not None and
                f"{x.pid}/{x.program}" == owner and (x.peer_ip, x.peer_port) != (s.peer_ip, s.peer_port)):
            other = f"{names.get(x.peer_ip, x.peer_ip)} {x.peer_ip}:{x.peer_port}"
            return (f"Meanwhile {owner} owned one connection on the same port, to {other} ({x.state} at snapshot "
                    f"{x.snapshot}): a program serving one client at a time calls accept() again only when that "
                    "client leaves.", x.time, x.snapshot)
    return None


def _last_timer(rows: list[SnapshotSocket], sock: SocketId) -> tuple[str, str] | None:
    """The last (snapshot, ss timer) shown for ``sock``: the kernel's own countdown, e.g. ``timewait,51sec,0``."""
    found = None
    for x in rows:
        if x.host == sock.host and (x.local_ip, x.local_port, x.peer_ip, x.peer_port) == sock.key() and x.timer:
            found = (x.snapshot, x.timer)
    return found


def _peer_side(timelines: Timelines, s: SocketId, peer: str, lab: dict[str, Any], fin: Packet | None,
               rst: Packet | None, t0: float, rows: list[SnapshotSocket], closed_by_app: bool) -> Fact | None:
    other = next((x for x in timelines.sockets if x.sock.key() == (s.peer_ip, s.peer_port, s.local_ip, s.local_port)),
                 None)
    conf = _peer_conf(lab, peer)
    os_name = str(conf.get("os") or "linux")
    parts: list[str] = []
    at: float | None = None
    if other is not None:
        fw2 = other.first("FIN_WAIT2")
        if fw2 is not None:
            at = fw2.start
            if fw2.end is None:
                tail = "still so at the end of the run"
            elif fw2.ended_by == "reset sent":
                tail = f"until it sent its RST at {fmt_t(fw2.end, t0)}"
            else:
                tail = f"until {fmt_t(fw2.end, t0)}{'' if fw2.end_exact else ' or earlier'}"
            parts.append(f"{peer}'s end went to FIN_WAIT2 at {fmt_t(fw2.start, t0)}, {tail}")
            if "orphaned" in fw2.note:
                text = ("its application had closed it, so it is an orphaned FIN_WAIT2 kept by Linux as a "
                        "timewait socket (the tracepoint shows FIN_WAIT2 → CLOSE at once; ss lists it as "
                        "FIN-WAIT-2 with a timewait timer")
                timer = _last_timer(rows, other.sock)
                if timer:
                    left = timer_left(timer[1])
                    text += f": timer:({timer[1]}) at snapshot {timer[0]}" + (
                        f", {fmt_span(left[1])} left" if left else "")
                parts.append(text + ")")
    if os_name == "windows":
        timeout = _seconds(conf.get("fin_wait2_timeout"))
        timeout = 120.0 if timeout is None else timeout
        text = (f"{peer} emulates Windows, which resets a connection whose peer never sends its FIN "
                f"{fmt_span(timeout)} after its own FIN (peer.fin_wait2_timeout in this run's lab.yaml; "
                "Windows' default is 120 s)")
        if rst is not None and fin is not None:
            text += f"; measured here: {fmt_span(rst.ts - fin.ts)}"
        parts.append(text)
    elif fin is not None and rst is None and not closed_by_app:
        fto = conf.get("tcp_fin_timeout")
        when = f"net.ipv4.tcp_fin_timeout ({fto} s in this run's lab.yaml; 60 s by default)" if fto else \
            "net.ipv4.tcp_fin_timeout (60 s by default)"
        parts.append(f"{peer} is a Linux peer: Linux drops an orphaned FIN_WAIT2 socket silently after {when} "
                     "and sends no RST, so nothing from the peer will end the CLOSE_WAIT")
    if not parts:
        return None
    return Fact("; ".join(parts) + ".", at)


def _conclusion(host: str, peer: str, side: str, accepted: bool | None, closed_by_app: bool, ended_by: str,
                still: bool, lab: dict[str, Any], rst: Packet | None, fin: Packet | None) -> str:
    text = ("CLOSE_WAIT means the peer's FIN arrived and the local application has not closed the socket. "
            "Nothing in TCP times CLOSE_WAIT out: only close() by the application, or a reset from the peer, "
            "ends it.")
    if closed_by_app:
        return text + f" Here the application on {host} did close it."
    if accepted is False:
        text += (f" Here no application ever had the socket: {host}'s program never accept()ed the connection "
                 "from " + peer + ", so there was nothing to call close() on it.")
    elif accepted:
        text += f" Here {host}'s program accepted the connection but did not close it after the FIN."
    if ended_by.startswith("RST") and rst is not None and fin is not None:
        text += f" It ended only because {peer} gave up and sent an RST {rst.ts - fin.ts:.3f} s after its FIN."
    elif still:
        text += f" No RST came from {peer}, so it stays until {host}'s program exits or accepts and closes it."
    return text


# --- compared with the field report -------------------------------------------------

def window_reason(win: int, mss: int | None, ts: bool, role: str, rule: bool = True) -> str:
    """Why a SYN or SYN-ACK offers ``win``: which multiple of which MSS it is, and which kernel rule gives it
    (``rule``: say the rule in full, else refer to it)."""
    if not mss:
        return f"{win}: no MSS option to relate it to."
    eff = mss - _TS_BYTES if ts else mss
    n, rest = divmod(win, eff)
    less = f" ({mss} less the {_TS_BYTES} bytes of timestamps)" if ts else ""
    if rest == 0 and win == 65535 // eff * eff:
        text = f"{win} = {n} × {eff}{less}: the largest multiple of the MSS that fits 64 KB"
        if not rule:
            return text + ", as Linux 4.19 and later offer (see the SYN-ACK window)."
        return (text + ". Linux 4.19 and later offer about 64 KB in the first window (commit a337531b942b, “tcp: up "
                "initial rmem to 128KB and SYN rwin to around 64KB”); kernel 3.10 capped it at 20 segments "
                "(twice the initial cwnd of 10): 20 × 1460 = 29200.")
    if rest == 0:
        return f"{win} = {n} × {eff}{less}: the {role} offered a first window of {n} segments."
    return f"{win} is not a multiple of the MSS ({eff}{less}): the window comes from the {role}'s receive buffer."


def wscale_reason(ws: int) -> str:
    lo, hi = (1 << (ws + 15)), (1 << (ws + 16))
    return (f"wscale {ws} is the shift that fits the largest receive buffer (max of net.ipv4.tcp_rmem[2] and "
            f"net.core.rmem_max) into 16 bits: {ws} means {_mib(lo)}–{_mib(hi)}; CentOS 7's default 6 MiB gives 7.")


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def compare_with_field_report(conn: Connection, f: Finding, engine: dict[str, Any], lab: dict[str, Any],
                              traffic: Traffic) -> list[Difference]:
    """Where this run's packets differ from the field report's, and why (computed from the packets)."""
    ref = FIELD_REPORT
    client_ip = conn.key[0]
    rows: list[Difference] = []
    kernel = str(engine.get("kernel") or "unknown")
    rows.append(Difference("kernel", ref["kernel"], kernel,
                           "Containers share the Docker host's kernel: every lab host runs this kernel's TCP."))
    syn = next((p for p in conn.packets if p.tcp.flags & SYN and not p.tcp.flags & 0x10), None)
    synack = next((p for p in conn.packets if p.tcp.flags & SYN and p.tcp.flags & 0x10), None)
    client = conn.client or client_ip
    peer_os = str(_peer_conf(lab, client).get("os") or "linux")
    if syn is not None:
        mine = f"win {syn.tcp.win}, {option_shape(syn.tcp.options)}, ttl {syn.tcp.ttl}"
        r = ref["syn"]
        theirs = f"win {r['win']}, {r['options']}, ttl {r['ttl']}"
        if mine == theirs:
            why = "The same: this run's client SYN matches the Windows 7 fingerprint."
        elif peer_os == "windows":
            prof = _peer_conf(lab, client).get("syn") or "windows-10"
            why = (f"{client} emulates Windows with the SYN profile '{prof}'; "
                   + window_reason(syn.tcp.win, _mss(syn), False, "client", rule=False))
        else:
            why = (f"{client} is a Linux client in this lab: Linux offers timestamps and TTL 64. "
                   + window_reason(syn.tcp.win, _mss(syn), False, "client", rule=False))
        rows.append(Difference(f"{client}'s SYN", theirs, mine, why))
    if synack is not None:
        r = ref["synack"]
        ts = synack.tcp.option("TS") is not None
        rows.append(Difference(f"{conn.server}'s SYN-ACK window", f"win {r['win']}", f"win {synack.tcp.win}",
                               window_reason(synack.tcp.win, _mss(synack), ts, "server")))
        shape = option_shape(synack.tcp.options)
        whys = []
        if ts:
            whys.append(f"{client}'s SYN offered timestamps (the Windows 7 SYN did not), so the SYN-ACK carries TS "
                        "too, and Linux writes sackOK next to TS instead of padding it with nop,nop.")
        elif shape.replace(f"wscale {synack.tcp.option('wscale')}", "wscale 7") == r["options"]:
            whys.append("The same options in the same order: without timestamps Linux writes "
                        "mss, nop,nop,sackOK, nop,wscale.")
        ws = synack.tcp.option("wscale")
        if isinstance(ws, int) and ws != r["wscale"]:
            whys.append(wscale_reason(ws))
        rows.append(Difference(f"{conn.server}'s SYN-ACK options", r["options"], shape,
                               " ".join(whys) or "The same."))
    hs_ack = next((p for p in conn.packets if syn and p.tcp.src == client_ip and not p.tcp.flags & SYN
                   and p.n > (synack.n if synack else 0)), None)
    if hs_ack is not None:
        r = ref["ack"]
        cws = syn.tcp.option("wscale") if syn else None
        why = (f"The window field is scaled by the sender's wscale: {r['win']} × 2^{r['wscale']} = "
               f"{r['win'] << r['wscale']} bytes")
        if isinstance(cws, int):
            why += f"; here {hs_ack.tcp.win} × 2^{cws} = {hs_ack.tcp.win << cws} bytes."
        rows.append(Difference(f"{client}'s ACK", f"ack {r['ack']}, win {r['win']}",
                               f"ack {hs_ack.rel_ack}, win {hs_ack.tcp.win}", why))
    fin = next((p for p in conn.packets if p.tcp.src == client_ip and p.tcp.flags & FIN), None)
    if fin is not None:
        ack = next((p for p in conn.packets if p.n > fin.n and p.tcp.src != client_ip and p.rel_ack >= fin.rel_seq + 1),
                   None)
        r = ref["fin_ack"]
        if ack is not None:
            sws = synack.tcp.option("wscale") if synack else None
            why = f"The same ACK of the FIN by the server's kernel; {r['win']} × 2^7 = {r['win'] << 7} bytes"
            if isinstance(sws, int):
                why += f", here {ack.tcp.win} × 2^{sws} = {ack.tcp.win << sws} bytes (the larger first window)"
            rows.append(Difference(f"{conn.server}'s ACK of the FIN", f"[.] ack {r['ack']}, win {r['win']}, "
                                   f"{fmt_span(r['delay'])} after the FIN",
                                   f"[{ack.flags}] ack {ack.rel_ack}, win {ack.tcp.win}, "
                                   f"{fmt_span(ack.ts - fin.ts)} after the FIN",
                                   why + "."))
        rst = next((p for p in conn.packets if p.n > fin.n and p.tcp.src == client_ip and p.tcp.flags & RST), None)
        r = ref["rst"]
        theirs = f"{r['label']}, {r['after_fin']:.3f} s after the FIN"
        if rst is not None:
            mine = f"{rst.label()}, {rst.ts - fin.ts:.3f} s after the FIN"
            timeout = _seconds(_peer_conf(lab, client).get("fin_wait2_timeout"))
            why = ("Windows' FIN_WAIT_2 timer" + (f", set to {fmt_span(timeout)} in this run's lab.yaml "
                                                  "(120 s in Windows)" if timeout is not None else ""))
            rows.append(Difference(f"{client}'s RST", theirs, mine, why + "."))
        else:
            rows.append(Difference(f"{client}'s RST", theirs, "none",
                                   f"{client} is a Linux peer: its orphaned FIN_WAIT2 socket expires silently."
                                   if peer_os != "windows" else
                                   "The Windows peer's timer did not fire within the run."))
    return rows


def _mss(p: Packet) -> int | None:
    v = p.tcp.option("mss")
    return v if isinstance(v, int) else None
