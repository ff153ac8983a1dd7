"""Out of local ports: connect() fails with EADDRNOTAVAIL because TIME_WAIT holds every port toward one server.

Speaks for a client host whose program reported EADDRNOTAVAIL ("Cannot assign requested address"), or
whose snapshot shows as many sockets toward one destination as its port range has ports. Which sockets
hold the ports (the snapshot's TIME_WAIT rows, with ss's timers), since when (the moment the last port
entered TIME_WAIT), what the failing connect() put on the wire (nothing: the SYNs stop), how the host's
tcp_tw_reuse decides whether a TIME_WAIT port may be taken over, and whether one was.
"""
from __future__ import annotations

import re
from collections import defaultdict

from ...observe.snapshots import SnapshotSocket, timer_left
from ..packets import Connection
from ..timeline import SocketId
from .base import Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t, is_fin, is_syn, register

TIMEWAIT_LEN = 60.0  # TCP_TIMEWAIT_LEN
_EADDRNOTAVAIL = re.compile(r"Cannot assign requested address|EADDRNOTAVAIL|\[Errno 99\]")
_TW_REUSE = {
    "0": "off: connect() never takes over a port in TIME_WAIT",
    "1": ("on: connect() may take over a port in TIME_WAIT for a new connection to the same destination, once "
          "the old connection's last timestamp is older than net.ipv4.tcp_tw_reuse_delay (1 s by default; "
          "TCP timestamps must be on)"),
    "2": ("on for loopback traffic only (the default of current kernels): the lab's connections cross a "
          "bridge, so no port in TIME_WAIT is taken over"),
}


def port_range(text: str | None) -> tuple[int, int] | None:
    try:
        lo, hi = (int(v) for v in (text or "").split())
    except ValueError:
        return None
    return (lo, hi) if hi >= lo else None


@register
class PortExhaustion(Explainer):
    kind = "port_exhaustion"
    what = "hosts out of local ports"

    def explain(self, run: RunEvidence) -> Result:
        out = Result()
        for host in _hosts(run):
            f = exhaustion_finding(run, host)
            if f is not None:
                out.findings.append(f)
        return out


def _hosts(run: RunEvidence) -> list[str]:
    hosts = list(run.lab.hosts) if run.lab is not None else []
    hosts += [h for h in (run.info.get("hosts") or {}) if h not in hosts]
    return hosts


def _failures(run: RunEvidence, host: str) -> list[str]:
    """Lines of the host's program output that report EADDRNOTAVAIL."""
    return [ln.strip() for ln in run.logs.get(host, "").splitlines() if _EADDRNOTAVAIL.search(ln)]


def _crowds(rows: list[SnapshotSocket], host: str) -> dict[tuple[str, int], list[SnapshotSocket]]:
    """(peer address, peer port) -> the host's sockets toward it in the snapshot that lists the most of them."""
    per_snap: dict[tuple[str, str, int], list[SnapshotSocket]] = defaultdict(list)
    for r in rows:
        if r.host == host:
            per_snap[(r.snapshot, r.peer_ip, r.peer_port)].append(r)
    best: dict[tuple[str, int], list[SnapshotSocket]] = {}
    for (_, ip, port), socks in per_snap.items():
        if len(socks) > len(best.get((ip, port), [])):
            best[(ip, port)] = socks
    return best


def exhaustion_finding(run: RunEvidence, host: str) -> Finding | None:
    failures = _failures(run, host)
    rng_text = run.sysctl(host, "net.ipv4.ip_local_port_range")
    rng = port_range(rng_text)
    crowds = _crowds(run.rows, host)
    if not crowds:
        return None
    dest, socks = max(crowds.items(), key=lambda kv: len(kv[1]))
    ports = rng[1] - rng[0] + 1 if rng else None
    if not failures and (ports is None or len(socks) < ports):
        return None
    t0 = run.t0
    peer = run.name(dest[0])
    facts: list[Fact] = []
    if rng is not None and ports is not None:
        src = run.sysctl_source(host, "net.ipv4.ip_local_port_range")
        text = (f"net.ipv4.ip_local_port_range on {host} is {rng_text} ({src}): "
                f"{ports} local port{'s' if ports != 1 else ''}")
        if ports % 2 and ports > 1:
            text += (f". Linux's connect() looks at an even number of them from a start that moves ({ports - 1} at "
                     f"a time here), so an odd range gives out its {ports}th port only sometimes")
        facts.append(Fact(text + ".", None))
    tw = [r for r in socks if r.state == "TIME_WAIT"]
    snap = socks[0].snapshot
    if socks:
        lefts = [x[1] for r in tw if (x := timer_left(r.timer)) is not None]
        text = (f"Snapshot {snap} lists {len(socks)} socket{'s' if len(socks) != 1 else ''} of {host} to "
                f"{peer}:{dest[1]}, {len(tw)} of them in TIME_WAIT, on local port{'s' if len(socks) != 1 else ''} "
                f"{', '.join(str(p) for p in sorted(r.local_port for r in socks))}")
        if ports is not None:
            text += ": every port of the range" if len(socks) >= ports else f": {len(socks)} of its {ports} ports"
        if lefts:
            shown = f"{min(lefts):g}" if min(lefts) == max(lefts) else f"{min(lefts):g} to {max(lefts):g}"
            text += f"; ss shows {shown} s left of the kernel's 60 s on their timers"
        facts.append(Fact(text + ".", socks[0].time, f"snap-{snap}"))
    conns = [c for c in run.traffic.connections if c.client == host and (c.key[2], c.key[3]) == dest]
    closed_first = [c for c in conns if _closed_first(c, c.key[0])]
    since, oldest = _tw_starts(run, host, dest, ports or len(socks))
    if conns:
        syns = [next(p for p in c.packets if is_syn(p)) for c in conns if any(is_syn(p) for p in c.packets)]
        text = (f"{host} opened {len(conns)} connection{'s' if len(conns) != 1 else ''} to {peer}:{dest[1]} and "
                f"closed {len(closed_first)} of them first (its FIN before {peer}'s)")
        if syns:
            text += f"; its last SYN to {peer} left at {fmt_t(syns[-1].ts, t0)} (packet #{syns[-1].n})"
        facts.append(Fact(text + ".", syns[-1].ts if syns else None, f"pkt-{syns[-1].n}" if syns else None))
    if failures:
        facts.append(Fact(f"logs/{host}.log: “{failures[0]}”" + (f" (and {len(failures) - 1} more such line"
                          f"{'s' if len(failures) != 2 else ''})" if len(failures) > 1 else "")
                          + ": connect() failed at once, in the kernel, and sent no SYN.", None, f"log-{host}"))
    reuse = run.sysctl(host, "net.ipv4.tcp_tw_reuse")
    if reuse is not None:
        src = run.sysctl_source(host, "net.ipv4.tcp_tw_reuse")
        text = (f"net.ipv4.tcp_tw_reuse on {host} is {reuse} ({src}): "
                f"{_TW_REUSE.get(reuse.strip(), 'a value this tcplab does not know')}")
        delay = run.sysctl(host, "net.ipv4.tcp_tw_reuse_delay")
        if reuse.strip() == "1" and delay is not None:
            text += (f"; net.ipv4.tcp_tw_reuse_delay on {host} is {delay} ms "
                     f"({run.sysctl_source(host, 'net.ipv4.tcp_tw_reuse_delay')})")
        facts.append(Fact(text + ".", None))
    taken = _taken_over(conns)
    for old, new in taken[:3]:
        syn = next(p for p in new.packets if is_syn(p))
        facts.append(Fact(f"{host} took over local port {new.key[1]} from its TIME_WAIT: a new SYN at "
                          f"{fmt_t(syn.ts, t0)} (packet #{syn.n}) on the four-tuple of a connection it had closed "
                          f"{fmt_span(syn.ts - _end(old))} before, well inside the 60 s.", syn.ts, f"pkt-{syn.n}"))
    recycled = run.counter_change(host, "TcpExtTWRecycled")
    if recycled is not None and (taken or reuse is not None):
        n, first_snap, last_snap = recycled
        facts.append(Fact(f"{host}'s kernel counted {n} TIME_WAIT take-over{'s' if n != 1 else ''} (TcpExtTWRecycled, "
                          f"snapshot {first_snap} to {last_snap}).", None, f"snap-{last_snap}"))
    s = SocketId(host, oldest.local_ip, oldest.local_port, dest[0], dest[1]) if oldest is not None else \
        SocketId(host, socks[0].local_ip, socks[0].local_port, dest[0], dest[1])
    title = (f"{host}: {len(socks)} local port{'s' if len(socks) != 1 else ''} toward {peer}:{dest[1]} held by "
             "TIME_WAIT" + (", connect() fails with EADDRNOTAVAIL" if failures else ""))
    if taken:
        title += f", then {len(taken)} taken over (tcp_tw_reuse = {reuse})" if reuse else ", then taken over"
    why = ("A connection is named by its four-tuple; toward one destination address and port only the local port "
           f"varies, so {host} can have at most as many connections to {peer}:{dest[1]} (open or in TIME_WAIT) as "
           f"it has local ports. {host} closed each connection first, so each one's port stays in TIME_WAIT for "
           f"{TIMEWAIT_LEN:.0f} s (TCP_TIMEWAIT_LEN, compiled into Linux), whatever the program does. Once every "
           "port of net.ipv4.ip_local_port_range is held, connect() finds no free four-tuple and fails at once with "
           "EADDRNOTAVAIL (\"Cannot assign requested address\") without sending a SYN; waiting helps only when the "
           "oldest TIME_WAIT ends, 60 s after it began")
    if reuse is not None and reuse.strip() == "1":
        why += (f", or, with tcp_tw_reuse = 1 as on {host}, once the old connection's last timestamp is "
                "tcp_tw_reuse_delay old: then connect() takes the port over.")
    else:
        why += "."
    fix = ("Reuse connections (keep-alive, a connection pool) instead of one per request; or let the server close "
           "first, so the TIME_WAIT sits on the server, which needs no port of its own per connection. Widen "
           "net.ipv4.ip_local_port_range, or spread the connections over more destination addresses or ports. "
           "net.ipv4.tcp_tw_reuse = 1 lets connect() take over a TIME_WAIT port a second after its last segment "
           "(timestamps on). Not SO_LINGER {on, 0}: close() then sends an RST instead of a FIN. tcp_tw_recycle was "
           "removed in Linux 4.12 (it broke clients behind NAT).")
    first = _first_start(run, host, dest)
    until, ended = None, ""
    if first is not None and first + TIMEWAIT_LEN <= run.timelines.end:
        until, ended = first + TIMEWAIT_LEN, "the oldest TIME_WAIT ended (its 60 s timer)"
    return Finding("port_exhaustion", title, s, "client", since, until, ended, facts, why, fix)


def _closed_first(conn: Connection, ip: str) -> bool:
    fins = [p for p in conn.packets if is_fin(p)]
    return bool(fins) and fins[0].tcp.src == ip


def _end(conn: Connection) -> float:
    return conn.packets[-1].ts


def _taken_over(conns: list[Connection]) -> list[tuple[Connection, Connection]]:
    """(old, new): a connection on the four-tuple of one the host closed first less than 60 s before."""
    out = []
    by_key: dict[tuple[str, int, str, int], Connection] = {}
    for c in sorted(conns, key=lambda c: c.packets[0].ts):
        old = by_key.get(c.key)
        if old is not None and _closed_first(old, c.key[0]) and any(is_syn(p) for p in c.packets) \
                and c.packets[0].ts - _end(old) < TIMEWAIT_LEN:
            out.append((old, c))
        by_key[c.key] = c
    return out


def _tw_intervals(run: RunEvidence, host: str, dest: tuple[str, int]) -> list[tuple[float, SocketId]]:
    return sorted((iv.start, tl.sock) for tl in run.timelines.of(host, peer_ip=dest[0], peer_port=dest[1])
                  for iv in tl.intervals if iv.state == "TIME_WAIT")


def _tw_starts(run: RunEvidence, host: str, dest: tuple[str, int],
               ports: int) -> tuple[float | None, SocketId | None]:
    """When the ``ports``-th socket entered TIME_WAIT (from then on every port was held, or the last one that
    did when fewer did), and the oldest one."""
    ivs = _tw_intervals(run, host, dest)
    if not ivs:
        return None, None
    return ivs[min(len(ivs), ports) - 1][0], ivs[0][1]


def _first_start(run: RunEvidence, host: str, dest: tuple[str, int]) -> float | None:
    ivs = _tw_intervals(run, host, dest)
    return ivs[0][0] if ivs else None
