"""The scripted play of a draft: tcpctl on both sides, each side's socket calls typed ahead of time.

The step-by-step plays (telnet, or tcpctl one call a step) cannot say what happens within milliseconds: a
server that answers a request before its kernel's ACK timer fires, a write Nagle's algorithm holds back, a
burst of connections into a listener that never accepts. Here each side's calls are read off the capture and
typed into its program at once, a phase at a time; a read blocks until the bytes the capture shows had
arrived, so the kernels see the same order and the same pace as the capture's programs made:

* a side reads, before each write or close, what its kernel had received by then (the segment's ACK field);
  a write is one segment of the capture (one of more than ``MAX_WRITE`` bytes: as much filler); a segment
  that left right after the ACK of a small one of its own was held by Nagle's algorithm and is written with
  it; a small segment that left while a small one was unacknowledged says TCP_NODELAY (Nagle never sends it);
* probes one byte behind what the client sent are keepalive: SO_KEEPALIVE on its socket (set with its last call
  before them), the timers their gaps show as the client's sysctls; unanswered, the server's firewall drops
  what the client sends;
* a server whose window closed (it advertised 0, then opened it again) stopped reading: its listener gets the small
  SO_RCVBUF its windows show (tcpctl's ``rcvbuf``), it reads nothing until the window opened again, and the
  client's writes in between are one bulk write (the persist timer's probes are the kernel's);
* a client's data the server never acknowledged, sent again and again, was lost on its way in: the client connects
  from the capture's port and the server's link drops every data segment from that port, from the first write on;
  its kernel gives up after as many retransmissions as the capture shows (``tcp_retries2``); the draft lasts until
  the last one, and half the next timer's wait;
* a listener whose queue overflowed (a SYN-ACK retransmitted after the client's ACK, an RST answering that
  ACK, SYNs dropped while others were answered) never accepts, with the backlog its completed connections
  show (the queue holds backlog + 1); its clients open their connections at once from the capture's ports
  (tcpctl's ``burst``), a late handshake ACK a delayed one (``delayack``); an RST is
  ``tcp_abort_on_overflow = 1``.

Phases are split where the capture's programs paused (a gap of ``SPLIT`` or more), or where a connection
starts after another one's client closed (its program ends first); a gap of ``SILENCE`` or more is a wait.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.packets import Packet
from ..wire import ACK, FIN, RST, SYN
from .parts import PROGRAMS, SILENCE, TCPCTL, Conn, Item, Value, seconds

SPLIT = 0.15  # seconds: a pause of a side's program this long is a step's pace, not the program's own
HELD = 0.002  # seconds: a segment this soon after the ACK it waited for was held by the kernel, not the program
LATE_ACK = 0.03  # seconds: a handshake's last ACK this late was delayed (TCP_QUICKACK off), not the network's
FIREWALL_LEAD = 0.3  # seconds: the last exchange before a peer falls silent is done by then
MAX_WRITE = 512  # bytes: a longer segment is written as filler of its size (tcpctl's command line is 4 KiB)


@dataclass
class _Act:
    t: float
    order: int  # ties: the order the capture shows
    kind: str  # "connect", "burst", "cmd", "firewall", "rst"
    host: str = ""
    prog: str = ""
    cmds: list[str] = field(default_factory=list)
    k: Conn | None = None


@dataclass
class _Listener:
    server: str
    port: int
    prog: str
    quiet: bool = False  # never accepts: its queue overflowed
    rcvbuf: int = 0  # SO_RCVBUF of its sockets (0: the kernel's)
    backlog: int = 5
    accepted: list[int] = field(default_factory=list)  # connection numbers, in accept order


def _escape(data: bytes) -> str:
    """tcpctl's ``write`` text for these bytes: printable ASCII as is, the rest as C escapes."""
    out = []
    for b in data:
        ch = chr(b)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= b < 0x7F and not (ch == " " and not out):
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def _handshake_ack(k: Conn) -> Packet | None:
    """The client's ACK that completes the handshake (None: never completed)."""
    seen_synack = False
    for p in k.conn.packets:
        t = p.tcp
        if t.src == k.sip and t.flags & SYN and t.flags & ACK:
            seen_synack = True
        elif seen_synack and t.src == k.cip and t.flags & ACK and not t.flags & (SYN | RST):
            return p
    return None


def _synack(k: Conn) -> Packet | None:
    return next((p for p in k.conn.packets if p.tcp.src == k.sip and p.tcp.flags & SYN and p.tcp.flags & ACK), None)


def _overflow(k: Conn) -> str:
    """How connection ``k`` overflowed its listener's accept queue: "drop" (its handshake ACK dropped: the SYN-ACK
    again after it), "reset" (answered with a bare RST), "" (not at all)."""
    ack = _handshake_ack(k)
    if ack is None or any(p.tcp.payload or p.tcp.flags & FIN for p in k.conn.packets):
        return ""
    after = [p for p in k.conn.packets if p.ts > ack.ts and p.tcp.src == k.sip]
    if any(p.tcp.flags & SYN for p in after):
        return "drop"
    if after and after[0].tcp.flags & RST and not after[0].tcp.flags & ACK:
        return "reset"
    return ""


def _probes(k: Conn) -> tuple[list[Packet], Packet | None, bool]:
    """The client's keepalive probes, the last packet before them, and whether the client reset after the last. A
    probe sent while the server's window was closed (its last packet said window 0) is a zero-window probe."""
    found, window = [], -1
    for p in k.conn.packets:
        if p.tcp.src == k.sip:
            window = p.tcp.win
        elif p.probe and not p.tcp.payload and window != 0:
            found.append(p)
    if not found:
        return [], None, False
    before = [p for p in k.conn.packets if p.ts < found[0].ts and not p.probe]
    end = k.conn.packets[-1]
    gave_up = end.tcp.src == k.cip and bool(end.tcp.flags & RST) and end.ts > found[-1].ts
    return found, (before[-1] if before else None), gave_up


def _closed_window(k: Conn) -> tuple[Packet, Packet] | None:
    """The server's first zero window and the first open one after it: its program stopped reading, then read again
    (None: its window never closed, or never opened again)."""
    closed = None
    for p in k.conn.packets:
        if p.tcp.src != k.sip or p.tcp.flags & (SYN | RST):
            continue
        if closed is None and p.tcp.win == 0:
            closed = p
        elif closed is not None and p.tcp.win > 0:
            return closed, p
    return None


def _window_probes(k: Conn) -> list[Packet]:
    """The client's zero-window probes: sent while the server's window was closed."""
    found, window = [], -1
    for p in k.conn.packets:
        if p.tcp.src == k.sip:
            window = p.tcp.win
        elif p.probe and not p.tcp.payload and window == 0:
            found.append(p)
    return found


def _scale(k: Conn, side: str) -> int:
    """The window scale of ``side``'s windows (0 unless both SYNs offered it)."""
    shifts = {p.tcp.src: p.tcp.option("wscale") for p in k.conn.packets if p.tcp.flags & SYN}
    mine = shifts.get(side)
    return mine if isinstance(mine, int) and all(isinstance(v, int) for v in shifts.values()) and len(shifts) == 2 \
        else 0


SMALL_WINDOW = 10  # segments: a receive window that never grows past this many is a small receive buffer's


def _rcvbuf(k: Conn) -> int:
    """The SO_RCVBUF the server's windows show (0: the kernel's own): where its largest window stays small, that
    window rounded up to a power of two (the kernel doubles SO_RCVBUF, about half of which is window)."""
    if _synack(k) is None:
        return 0
    shift = _scale(k, k.sip)
    largest = max(p.tcp.win << (0 if p.tcp.flags & SYN else shift) for p in k.conn.packets if p.tcp.src == k.sip)
    if largest >= SMALL_WINDOW * _mss(k, k.sip):
        return 0
    size = 1024
    while size < largest:
        size *= 2
    return size


def _lost(k: Conn) -> bool:
    """Whether the client's data never reached the server's program: sent again and again, never acknowledged."""
    data = [p for p in k.conn.packets if p.tcp.src == k.cip and p.tcp.payload]
    acked = any(p.tcp.src == k.sip and p.tcp.flags & ACK and p.rel_ack > 1 for p in k.conn.packets)
    return (k.refused is None and not acked and len({p.rel_seq for p in data}) < len(data)
            and not any(p.tcp.flags & (FIN | RST) for p in k.conn.packets))


def _mss(k: Conn, side: str) -> int:
    """The MSS the side's segments are cut to: the peer's SYN's option."""
    for p in k.conn.packets:
        if p.tcp.flags & SYN and p.tcp.src != side:
            v = p.tcp.option("mss")
            if isinstance(v, int):
                return v
    return 1460


def _segments(k: Conn, side: str) -> list[Packet]:
    """The side's data segments, each once (a retransmission is the kernel's)."""
    out, seen = [], set()
    for p in k.conn.packets:
        if p.tcp.src == side and p.tcp.payload and p.rel_seq not in seen:
            seen.add(p.rel_seq)
            out.append(p)
    return out


def _behind_unacked(k: Conn, a: Packet, b: Packet) -> bool:
    """Whether small segment ``b`` left while small segment ``a`` before it (same side) was unacknowledged: the ACK
    that first covered ``a`` covered ``b`` too."""
    side = a.tcp.src
    mss = _mss(k, side)
    if len(a.tcp.payload) >= mss or len(b.tcp.payload) >= mss:
        return False
    a_end = a.rel_seq + len(a.tcp.payload)
    first = next((q for q in k.conn.packets if q.tcp.src != side and q.tcp.flags & ACK and q.rel_ack >= a_end), None)
    if first is None:  # never acknowledged: ``b`` left before ``a`` went again (an RTO sends them as one)
        again = next((q for q in k.conn.packets if q.tcp.src == side and q.rel_seq == a.rel_seq and q.ts > a.ts), None)
        return b.rel_seq == a_end and (again is None or b.ts < again.ts)
    return first.rel_ack >= b.rel_seq + len(b.tcp.payload)


def _bulk(k: Conn, side: str) -> bool:
    """Whether the client wrote in bulk: into a window that closed, or more than ``MAX_WRITE`` bytes in segments with
    no pause of ``SPLIT`` between them, never answered with data. What its kernel sent, as the window and the ACKs let
    it, is then one write: how the segments were cut is the kernel's."""
    if side != k.cip:
        return False
    if _closed_window(k) is not None:
        return True
    segs = _segments(k, side)
    return (not _segments(k, k.sip) and len(segs) > 1 and sum(len(p.tcp.payload) for p in segs) > MAX_WRITE
            and all(b.ts - a.ts < SPLIT for a, b in zip(segs, segs[1:])))


def _nodelay(k: Conn, side: str) -> bool:
    """A small segment sent while a small one of the side's was still unacknowledged: Nagle's algorithm was off (a
    bulk write's last piece says nothing of it)."""
    if _bulk(k, side):
        return False
    segs = _segments(k, side)
    return any(_behind_unacked(k, a, b) for a, b in zip(segs, segs[1:]))


def _held(k: Conn, prev: Packet, p: Packet) -> bool:
    """Whether segment ``p`` was held by Nagle's algorithm: it left right after the ACK of ``prev``, a small segment
    of the same side before it, and the peer sent no data meanwhile (so nothing else made the program write)."""
    if len(prev.tcp.payload) >= _mss(k, prev.tcp.src):
        return False
    prev_end = prev.rel_seq + len(prev.tcp.payload)
    between = [q for q in k.conn.packets if prev.ts < q.ts <= p.ts and q.tcp.src != prev.tcp.src]
    ack = next((q for q in between if q.rel_ack >= prev_end), None)
    return (ack is not None and not any(q.tcp.payload for q in between) and p.ts - ack.ts < HELD
            and p.ts - prev.ts >= HELD)


def _side_acts(k: Conn, side: str, host: str, prog: str, start: int) -> list[_Act]:
    """The socket calls of one side of ``k`` after its connect or accept: reads, writes, close."""
    peer = k.sip if side == k.cip else k.cip
    peer_data = max((p.rel_seq + len(p.tcp.payload) - 1 for p in _segments(k, peer)), default=0)
    peer_fin = any(p.tcp.src == peer and p.tcp.flags & FIN for p in k.conn.packets)
    acts: list[_Act] = []
    read = 0
    last_eff = 0.0
    prev: Packet | None = None
    order = start
    window = _closed_window(k)
    bulk = _bulk(k, side)
    written: tuple[int, ...] = ()  # where the bulk write being typed starts

    def reads(ack: int, eof: bool) -> list[str]:
        nonlocal read
        got = min(max(ack - 1, 0), peer_data)
        cmds = [f"read {got - read}"] if got > read else []
        read = max(read, got)
        if eof and peer_fin and ack - 1 > peer_data:
            cmds.append("recv")
        return cmds

    for p in k.conn.packets:
        t = p.tcp
        if t.src != side or t.flags & (SYN | RST):
            continue
        new_data = bool(t.payload) and (prev is None or p.rel_seq + len(t.payload)
                                        > prev.rel_seq + len(prev.tcp.payload))
        if new_data:
            eff = last_eff if prev is not None and _held(k, prev, p) else p.ts
            cmds = reads(p.rel_ack, False)
            end = p.rel_seq + len(t.payload) - 1
            if bulk and not cmds and acts and written:  # more of the same write
                acts[-1].cmds[-1] = f"fill {end - written[0] + 1}"
                prev = p
            else:
                written = (p.rel_seq,) if bulk else ()
                cmds.append(f"fill {len(t.payload)}" if len(t.payload) > MAX_WRITE or bulk
                            else "write " + _escape(t.payload))
                acts.append(_Act(eff, order, "cmd", host, prog, cmds, k))
                prev, last_eff, order = p, eff, order + 1
        if t.flags & FIN:  # alone, or on the last data (written, then closed at once)
            cmds = reads(p.rel_ack, True) + ["close"]
            if new_data:
                acts[-1].cmds.extend(cmds)
            else:
                acts.append(_Act(p.ts, order, "cmd", host, prog, cmds, k))
            break
    if window is not None and side == k.sip:
        # the reader's first call after its window opened again opened it: it read then
        opened = window[1].ts
        later = [a for a in acts if a.t >= opened]
        if later:
            later[0].t = opened
    return acts


def scripted(conns: list[Conn]) -> bool:
    """Whether the capture shows what only the scripted play reproduces: an answer faster than a step, TCP_NODELAY
    at work, keepalive probes, a window closed by a reader that stopped reading, an overflowing accept queue."""
    for k in conns:
        if _probes(k)[0] or _closed_window(k) or _lost(k) or _overflow(k) or _nodelay(k, k.cip) or _nodelay(k, k.sip):
            return True
        if k.unanswered and any(_overflow(j) for j in conns if (j.sip, j.port) == (k.sip, k.port)):
            return True
        data = [p for p in k.conn.packets if p.tcp.payload]
        if any(a.tcp.src != b.tcp.src and b.ts - a.ts < SPLIT for a, b in zip(data, data[1:])):
            return True
    return False


Probes = dict[int, tuple[list[Packet], Packet, bool]]  # connection -> its keepalive probes, the packet before, reset


def _listeners(conns: list[Conn], sysctls: dict[str, dict[str, Value]],
               notes: dict[str, list[str]]) -> dict[tuple[str, int], _Listener]:
    """Every (server, port) a connection reached; one whose queue overflowed never accepts, with the backlog its
    completed connections show."""
    listeners: dict[tuple[str, int], _Listener] = {}
    for k in conns:
        if k.refused is None and (k.server, k.port) not in listeners:
            listeners[(k.server, k.port)] = _Listener(k.server, k.port, f"{k.server}-{k.port}")
    for key, li in listeners.items():
        mine = [k for k in conns if (k.server, k.port) == key]
        li.rcvbuf = max((_rcvbuf(k) for k in mine), default=0)
        if li.rcvbuf:
            closed = [k.n for k in mine if _closed_window(k)]
            largest = max(p.tcp.win << (0 if p.tcp.flags & SYN else _scale(k, k.sip))
                          for k in mine for p in k.conn.packets if p.tcp.src == k.sip)
            notes.setdefault(li.server, []).append(
                f"port {li.port}: its windows are small (at most {largest} bytes): SO_RCVBUF {li.rcvbuf} on the "
                "listener (the kernel doubles it, about half is window; could not infer the exact size)"
                + (f"; connection(s) {', '.join(map(str, closed))}: its program stopped reading, the window "
                   "closed, then it read again" if closed else ""))
        over = [k for k in mine if _overflow(k)]
        dropped = [k for k in mine if k.unanswered] if any(_synack(k) for k in mine) else []
        if not over and not dropped:
            continue
        li.quiet = True
        acks = [a.ts for k in over if (a := _handshake_ack(k)) is not None]
        first = min(acks + [k.start for k in dropped])
        done = [k for k in mine if k not in over and (a := _handshake_ack(k)) is not None and a.ts <= first]
        li.backlog = max(len(done) - 1, 0)
        how = [w for w, seen in (("handshake ACKs dropped: the SYN-ACK sent again",
                                  any(_overflow(k) == "drop" for k in over)),
                                 ("an RST answering the handshake's ACK", any(_overflow(k) == "reset" for k in over)),
                                 ("SYNs dropped", bool(dropped))) if seen]
        notes.setdefault(li.server, []).append(
            f"port {li.port}: its accept queue overflowed ({', '.join(how)}) with {len(done)} connections "
            f"completed: a listener that never accepts, backlog {li.backlog} (the queue holds backlog + 1); could "
            "not infer the program or why it never accepted")
        if any(_overflow(k) == "reset" for k in over):
            sysctls.setdefault(li.server, {})["net.ipv4.tcp_abort_on_overflow"] = 1
    return listeners


def _keepalive_timers(conns: list[Conn], sysctls: dict[str, dict[str, Value]], notes: dict[str, list[str]],
                      unsure: list[str]) -> Probes:
    """The connections whose client probed: SO_KEEPALIVE on its socket, the timers the gaps show its sysctls."""
    out: Probes = {}
    for k in conns:
        found, last, gave_up = _probes(k)
        if not found or last is None:
            continue
        out[k.n] = (found, last, gave_up)
        gaps = [b.ts - a.ts for a, b in zip(found, found[1:])]
        timers: dict[str, Value] = {"net.ipv4.tcp_keepalive_time": max(1, round(found[0].ts - last.ts))}
        if gaps:
            timers["net.ipv4.tcp_keepalive_intvl"] = max(1, round(sum(gaps) / len(gaps)))
        if gave_up:
            timers["net.ipv4.tcp_keepalive_probes"] = len(found)
        had = sysctls.setdefault(k.client, {})
        if any(had.get(n, v) != v for n, v in timers.items()):
            unsure.append(f"connection {k.n}: its keepalive timers differ from another connection's of {k.client}; "
                          "the host's sysctls are the first one's")
        for n, v in timers.items():
            had.setdefault(n, v)
        apart = f", {', '.join(f'{g:.1f}' for g in gaps)} s apart" if gaps else ""
        notes.setdefault(k.client, []).append(
            f"connection {k.n}: {len(found)} keepalive probes, the first {found[0].ts - last.ts:.1f} s after the "
            f"last packet{apart}" + (", then an RST" if gave_up else "") + ": SO_KEEPALIVE on, with these timers")
    return out


def _timeline(conns: list[Conn], listeners: dict[tuple[str, int], _Listener], keepalive: Probes,
              exits: dict[int, float], unsure: list[str]) -> list[_Act]:
    """Every side's calls and the draft's own events (a firewall, a wait for the kernel's RST), in time order;
    ``exits`` gets each connection whose client program ends with its close."""
    acts: list[_Act] = []
    for k in conns:
        li = listeners.get((k.server, k.port))
        app = f"app{k.n}"
        if li is not None and li.quiet:
            acts.append(_Act(k.start, len(acts), "burst", k.client, "", [], k))
            continue
        setup = ["nodelay"] if _nodelay(k, k.cip) else []
        connect = _Act(k.start, len(acts), "connect", k.client, app, setup, k)
        acts.append(connect)
        if k.refused is not None or k.unanswered:
            continue
        client = _side_acts(k, k.cip, k.client, app, len(acts))
        if k.n in keepalive:
            # on with the client's last call before the probes: the capture shows it on by then, and a step's pace
            # before it must not let an idle connection be probed earlier than the capture's was
            first_probe = keepalive[k.n][0][0].ts
            before = [a for a in client if a.t < first_probe]
            (before[-1] if before else connect).cmds.insert(0 if before else len(setup), "keepalive")
        if client and client[-1].cmds[-1] == "close":
            client[-1].cmds.append("exit")
            fin = next((p.ts for p in k.conn.packets if p.tcp.src == k.cip and p.tcp.flags & FIN), client[-1].t)
            exits[k.n] = max(fin, client[-1].t) if _closed_window(k) else client[-1].t  # a bulk write ends there
        acts.extend(client)
        if _lost(k) and client:
            acts.append(_Act(client[0].t, client[0].order, "impair", k.server, "", [], k))
            unsure.append(f"connection {k.n}: the server never acknowledged the client's data, sent again and again: "
                          "where it was lost (a dead link? a firewall?); the server's link drops it")
        if li is not None:
            li.accepted.append(k.n)
            done = _handshake_ack(k)
            acts.append(_Act(done.ts if done is not None else k.start, len(acts), "cmd", k.server, li.prog,
                             ["accept"], k))
            acts.extend(_side_acts(k, k.sip, k.server, li.prog, len(acts)))
        if _bulk(k, k.cip):
            unsure.append(f"connection {k.n}: the client's bytes are one write of filler (their count replayed, not "
                          "their content; how they were cut into segments is its kernel's)")
        elif any(c.startswith("fill ") for a in acts if a.k is k for c in a.cmds):
            unsure.append(f"connection {k.n}: its segments of more than {MAX_WRITE} bytes are written as that many "
                          "filler bytes (their sizes replayed, not their content)")
        if _nodelay(k, k.sip):
            unsure.append(f"connection {k.n}: the server's small segments left while one was unacknowledged "
                          "(TCP_NODELAY on its socket?); no step sets it on an accepted socket")
        if k.n in keepalive:
            found, last, gave_up = keepalive[k.n]
            if not any(q.tcp.src == k.sip and q.ts > found[0].ts for q in k.conn.packets):
                acts.append(_Act(last.ts + 1e-6, len(acts), "firewall", k.server, "", [], k))
            if gave_up:
                acts.append(_Act(k.conn.packets[-1].ts, len(acts), "rst", k.client, "", [], k))
    acts.sort(key=lambda a: (a.t, a.order))
    return acts


def _phases(acts: list[_Act], exits: dict[int, float]) -> list[list[_Act]]:
    """The acts cut where a program paused, where a connection starts after another's client program ended, and
    around the draft's own events."""
    phases: list[list[_Act]] = []
    waited: set[int] = set()
    for act in acts:
        ended = {n for n, t in exits.items() if t < act.t and n not in waited}
        must_wait = act.kind in ("connect", "burst") and bool(ended)
        if (not phases or act.kind in ("firewall", "rst") or phases[-1][-1].kind in ("firewall", "rst") or must_wait
                or act.t - phases[-1][-1].t >= SPLIT):
            phases.append([])
        phases[-1].append(act)
        if must_wait:
            waited |= ended
    return phases


def script_play(conns: list[Conn], names: dict[str, str],
                unsure: list[str]) -> tuple[list[tuple[str, dict[str, Value], list[str]]], list[Item], list[Item]]:
    """Hosts, steps and expectations where tcpctl plays both sides, each side's calls typed a phase at a time."""
    sysctls: dict[str, dict[str, Value]] = {}
    notes: dict[str, list[str]] = {}
    listeners = _listeners(conns, sysctls, notes)
    keepalive = _keepalive_timers(conns, sysctls, notes, unsure)
    for k in conns:
        if _lost(k):
            # the retransmissions stop where the capture's do: the kernel gives up at the timer after the last
            again = sum(1 for p in k.conn.packets if p.tcp.src == k.cip and p.tcp.payload and p.rel_seq == 1) - 1
            had = sysctls.setdefault(k.client, {})
            before = had.get("net.ipv4.tcp_retries2", 0)
            had["net.ipv4.tcp_retries2"] = max(again, before if isinstance(before, int) else 0)
            notes.setdefault(k.client, []).append(
                f"connection {k.n}: its first segment sent {again} more times, then nothing: tcp_retries2 "
                f"{again} stands in (could not infer whether tcp_retries2, TCP_USER_TIMEOUT or the capture's end "
                "stopped them)")
    hosts: list[tuple[str, dict[str, Value], list[str]]] = []
    servers = {k.server for k in conns}
    for h in names.values():
        role = "listens" if h in servers else "connects"
        spec: dict[str, Value] = {"build": PROGRAMS}
        if h in sysctls:
            spec["sysctls"] = dict(sorted(sysctls[h].items()))
        hosts.append((h, spec, [f"could not infer its program: tcpctl ({PROGRAMS}/, a copy of the project's "
                                f"labs/programs) {role}, its socket calls typed ahead a phase at a time"]
                      + notes.get(h, [])))
    exits: dict[int, float] = {}  # connection -> its client's close: its program ends there
    acts = _timeline(conns, listeners, keepalive, exits, unsure)
    steps: list[Item] = []
    for li in listeners.values():
        rcvbuf = ["rcvbuf", str(li.rcvbuf)] if li.rcvbuf else []
        steps.append(Item({"host": li.server, "start": [TCPCTL, *rcvbuf, "listen", str(li.port), str(li.backlog)],
                           "as": li.prog, "ready": {"listen": li.port},
                           "title": f"{li.server} listens on port {li.port}"
                                    + (f" with backlog {li.backlog} and never accepts" if li.quiet else "")
                                    + (f" (SO_RCVBUF {li.rcvbuf})" if li.rcvbuf else "")}))
    served = {li.prog: li for li in listeners.values()}
    current: dict[str, int] = {}  # a listener's program -> the connection its current socket is
    waited: set[int] = set()
    last_t = acts[0].t if acts else 0.0
    for phase in _phases(acts, exits):
        head = phase[0]
        gap = head.t - last_t
        last_t = phase[-1].t
        if head.kind == "rst" and head.k is not None:
            steps.append(Item({"wait": {"rst_from": head.host}, "timeout": seconds(gap + 10),
                               "title": f"{head.host}'s keepalive gives up: {len(keepalive[head.k.n][0])} probes "
                                        "unanswered, then an RST"}))
            continue
        if gap >= SILENCE:
            steps.append(Item({"wait": {"seconds": seconds(gap)}, "timeout": seconds(gap + 10),
                               "title": f"silence of {seconds(gap)}"},
                              note=f"the capture's silence; for CI: --set steps.{len(steps)}.wait.seconds=0.5"))
        if head.kind == "firewall" and head.k is not None:
            k = head.k
            steps.append(Item({"wait": {"seconds": seconds(FIREWALL_LEAD)}, "timeout": "5s",
                               "title": "the last exchange ends"}))
            steps.append(Item({"host": k.server, "firewall": "drop", "from": k.client, "as": f"vanish{k.n}",
                               "title": f"{k.server} falls silent: its firewall drops all {k.client} sends"},
                              note="could not infer why the keepalive probes went unanswered (a power cut? a "
                                   "dead link?): a firewall that drops them stands in"))
            continue
        if head.kind in ("connect", "burst"):
            for n, t in sorted(exits.items()):
                if n not in waited and t < head.t:
                    waited.add(n)
                    done = next(c for c in conns if c.n == n)
                    steps.append(Item({"wait": {"exit": f"app{n}"}, "host": done.client, "timeout": "10s",
                                       "title": f"{done.client} is done with connection {n}"}))
        # the servers' calls first: they block until the clients' packets come
        typed: dict[tuple[str, str], list[str]] = {}
        for act in phase:
            if act.kind == "cmd" and act.prog in served and act.k is not None:
                if act.cmds != ["accept"] and current.get(act.prog) != act.k.n:  # another one is current
                    act.cmds = [f"use {served[act.prog].accepted.index(act.k.n) + 1}", *act.cmds]
                current[act.prog] = act.k.n
                typed.setdefault((act.host, act.prog), []).extend(act.cmds)
        _flush(steps, typed)
        for act in phase:
            if act.kind == "impair" and act.k is not None:
                steps.append(_impair(act.k))
        bursts: dict[tuple[str, str, int], list[Conn]] = {}
        for act in phase:
            if act.kind == "burst" and act.k is not None:
                bursts.setdefault((act.host, act.k.server, act.k.port), []).append(act.k)
        for act in phase:
            k2 = act.k
            if k2 is None:
                continue
            if act.kind == "connect":
                _flush(steps, typed)
                steps.append(_connect(k2, act))
            elif act.kind == "burst" and (act.host, k2.server, k2.port) in bursts:
                _flush(steps, typed)
                steps.extend(_burst(bursts.pop((act.host, k2.server, k2.port))))
            elif act.kind == "cmd" and act.prog not in served:
                typed.setdefault((act.host, act.prog), []).extend(act.cmds)
        _flush(steps, typed)
    lost = [k for k in conns if _lost(k)]
    if lost:
        # the retransmissions go on after the programs' last calls: until the capture's last one, and half the next
        # timer's wait (twice the last gap) after it, so the draft's run shows as many
        end = max(k.conn.packets[-1].ts for k in lost)
        sent = [[p.ts for p in k.conn.packets if p.tcp.src == k.cip and p.tcp.payload] for k in lost]
        gap = max((b - a for ts in sent for a, b in zip(ts, ts[1:])), default=1.0)
        steps.append(Item({"wait": {"seconds": seconds(end - last_t + gap)},
                           "timeout": seconds(end - last_t + gap + 10),
                           "title": "the client's kernel retransmits what the server's link drops"},
                          note="the capture's last retransmission, and half the wait for the next"))
    for n in sorted(exits):
        done = next(c for c in conns if c.n == n)
        if n not in waited and _closed_window(done):  # the bulk write goes on after the reader read: its end
            steps.append(Item({"wait": {"exit": f"app{n}"}, "host": done.client, "timeout": "10s",
                               "title": f"{done.client} is done with connection {n}"}))
    for k in conns:
        explained = k.n in keepalive and keepalive[k.n][2] or _overflow(k) == "reset"
        for o in k.other:
            played = o.startswith(("the server sent ", "the server closes first", "the server's FIN after"))
            if played or explained and "RST" in o:
                continue
            unsure.append(f"connection {k.n}: {o}")
    return hosts, steps, _expectations(conns, listeners, keepalive)


def _impair(k: Conn) -> Item:
    return Item({"host": k.server, "impair": "drop", "every": 1,
                 "match": {"from": k.client, "port": k.conn.key[1], "data": True}, "as": f"lose{k.n}",
                 "title": f"{k.server}'s link loses every data segment of connection {k.n} from now on"})


def _connect(k: Conn, act: _Act) -> Item:
    bind = ["bind", str(k.conn.key[1])] if _lost(k) else []
    start: dict[str, Value] = {"host": k.client, "start": [TCPCTL, *bind, "connect", k.server, str(k.port), *act.cmds],
                               "as": act.prog, "ready": {"log": "^connected"},
                               "title": f"{k.client} connects to {k.server} port {k.port}"
                                        + (f" ({', '.join(act.cmds)})" if act.cmds else "")}
    if k.refused is not None or k.unanswered:
        start["ready"] = {"log": "^connect failed"}
    return Item(start, note="the capture's port, bound: the impairment tells its packets by it" if bind
                else f"its port is the kernel's choice (the capture's: {k.conn.key[1]})")


def _text(cmds: list[str]) -> str:
    return "".join(c + "\n" for c in cmds)


def _title(host: str, cmds: list[str]) -> str:
    """``server: accept, reads, writes x10, close``: the calls, a run of the same one counted."""
    said: list[tuple[str, int]] = []
    for c in cmds:
        word = {"write": "writes", "read": "reads"}.get(c.split(" ", 1)[0], c.split(" ", 1)[0])
        if said and said[-1][0] == word:
            said[-1] = (word, said[-1][1] + 1)
        else:
            said.append((word, 1))
    return f"{host}: {', '.join(w + (f' x{n}' if n > 1 else '') for w, n in said)}"[:200]


def _flush(steps: list[Item], clients: dict[tuple[str, str], list[str]]) -> None:
    for (h, prog), cmds in clients.items():
        steps.append(Item({"host": h, "send": prog, "text": _text(cmds), "title": _title(h, cmds)}))
    clients.clear()


def _burst(group: list[Conn]) -> list[Item]:
    """One tcpctl that opens ``group``'s connections at once from their capture's ports (consecutive ports a
    ``burst``, a late handshake ACK a ``delayack`` before its own), then holds them (or exits when one was
    never answered: it gives up after 3 s)."""
    group = sorted(group, key=lambda k: k.conn.key[1])
    runs: list[list[Conn]] = []
    for k in group:
        ack, synack = _handshake_ack(k), _synack(k)
        late = ack is not None and synack is not None and ack.ts - synack.ts >= LATE_ACK
        if runs and not late and k.conn.key[1] == runs[-1][-1].conn.key[1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    args: list[Value] = [TCPCTL]
    for run in runs:
        ack, synack = _handshake_ack(run[0]), _synack(run[0])
        if ack is not None and synack is not None and ack.ts - synack.ts >= LATE_ACK:
            args.append("delayack")
        args.extend(["burst", run[0].server, str(run[0].port), str(len(run)), str(run[0].conn.key[1])])
    first, last = group[0], group[-1]
    ports = f"{first.conn.key[1]}-{last.conn.key[1]}" if len(group) > 1 else str(first.conn.key[1])
    prog = f"burst{first.n}"
    never = any(k.unanswered for k in group)
    out = []
    if never:
        args.append("exit")
        out.append(Item({"host": first.client, "start": args, "as": prog,
                         "title": f"{first.client} opens {len(group)} connection(s) to {first.server} port "
                                  f"{first.port} at once (ports {ports})"},
                        note="tcpctl gives up on a connection after 3 s; could not infer how long the capture's "
                             "program waited"))
        out.append(Item({"wait": {"exit": prog}, "host": first.client, "timeout": "10s",
                         "title": f"{first.client} gives up on the unanswered connection"}))
    else:
        out.append(Item({"host": first.client, "start": args, "as": prog,
                         "ready": {"log": f"from port {last.conn.key[1]}: "},
                         "title": f"{first.client} opens {len(group)} connection(s) to {first.server} port "
                                  f"{first.port} at once (ports {ports})"},
                        note="the capture's ports, bound; a late handshake ACK is tcpctl's delayack"))
    return out


def _expectations(conns: list[Conn], listeners: dict[tuple[str, int], _Listener],
                  keepalive: Probes) -> list[Item]:
    out: list[Item] = []
    for k in conns:
        c, s, port, pre = k.client, k.server, k.conn.key[1], f"c{k.n}-"
        li = listeners.get((k.server, k.port))
        quiet = li is not None and li.quiet
        out.append(Item({"name": pre + "syn", "about": f"{c} opens the connection to {s} port {k.port}",
                         "packet": {"from": c, "to": s, "port": port if quiet else k.port, "flags": "S"}}))
        if quiet:
            how = _overflow(k)
            if how == "drop":
                synacks = [p for p in k.conn.packets if p.tcp.src == k.sip and p.tcp.flags & SYN]
                gaps = [b.ts - a.ts for a, b in zip(synacks, synacks[1:])]
                out.append(Item({"name": pre + "synack-again", "about": f"{s}'s queue is full: it drops {c}'s "
                                                                       "handshake ACK and sends its SYN-ACK again",
                                 "packet": {"from": s, "to": c, "port": port, "flags": "S.",
                                            "intervals": [seconds(g) for g in gaps], "tolerance": "300ms"}}))
            elif how == "reset":
                out.append(Item({"name": pre + "overflow-reset", "about": f"{s}'s queue is full: it answers the "
                                                                         "handshake ACK with an RST",
                                 "packet": {"from": s, "to": c, "port": port, "flags": "R"}}))
            elif k.unanswered:
                out.append(Item({"name": pre + "dropped", "about": f"{s}'s queue is full: it answers none of "
                                                                  f"{c}'s SYNs",
                                 "packet": {"from": s, "to": c, "port": port, "count": 0}}))
            continue
        out.extend(_nagle_expectations(k))
        if k.n in keepalive:
            found, last, gave_up = keepalive[k.n]
            out.append(Item({"name": pre + "probes", "about": f"{c}'s kernel probes the idle connection on its "
                                                              "keepalive timers",
                             "packet": {"from": c, "to": s, "port": k.port, "flags": ".", "probe": True,
                                        "intervals": "keepalive", "tolerance": "200ms"}}))
            if gave_up:
                out.append(Item({"name": pre + "gives-up", "about": f"unanswered, {c} gives up and resets",
                                 "packet": {"from": c, "to": s, "port": k.port, "has_flags": "R"}}))
        if _lost(k):
            out.append(Item({"name": pre + "retransmits", "about": f"{s} never acknowledges: {c}'s kernel sends its "
                                                                   "data again, each timer twice the one before",
                             "packet": {"from": c, "to": s, "port": port, "seq": 1, "has_flags": "P",
                                        "intervals": "rto-backoff", "tolerance": "100ms"}}))
        window = _closed_window(k)
        if window is not None:
            out.append(Item({"name": pre + "window-closes", "about": f"{s}'s program stops reading: its buffer "
                                                                     "fills and its kernel advertises a zero window",
                             "packet": {"from": s, "to": c, "port": k.port, "win": 0}}))
            if len(_window_probes(k)) >= 2:
                out.append(Item({"name": pre + "window-probes", "about": f"{c}'s kernel probes the zero window on "
                                                                         "its persist timer, each gap twice the last",
                                 "packet": {"from": c, "to": s, "port": k.port, "probe": True,
                                            "after": pre + "window-closes", "intervals": "rto-backoff",
                                            "tolerance": "100ms"}}))
            out.append(Item({"name": pre + "window-opens", "about": f"{s} reads again: its window opens and "
                                                                    f"{c}'s data flows",
                             "packet": {"from": c, "to": s, "port": k.port, "has_flags": "P",
                                        "after": pre + "window-closes"}}))
        if k.client_fin is not None:
            out.append(Item({"name": pre + "fin", "about": f"{c} closes",
                             "packet": {"from": c, "to": s, "port": k.port, "has_flags": "F",
                                        "after": pre + "syn"}}))
        if (k.server_fin or k.server_closes_first) is not None:
            out.append(Item({"name": pre + "server-fin", "about": f"{s} closes",
                             "packet": {"from": s, "to": c, "port": k.port, "has_flags": "F",
                                        "after": pre + "syn"}}))
    return out


def _printable(payload: bytes) -> str | None:
    text = payload.decode("ascii", "replace").strip()
    return text if text and text.isprintable() and len(text) <= 200 and "\ufffd" not in text else None


def _nagle_expectations(k: Conn) -> list[Item]:
    """The wait Nagle's algorithm made (the middle held segment: it leaves when the ACK of the one before comes),
    or, with TCP_NODELAY, a small segment that left at once behind an unacknowledged one; none when the segments'
    bytes do not name them."""
    segs = _segments(k, k.cip)
    pairs = list(zip(segs, segs[1:]))
    nodelay = _nodelay(k, k.cip)
    chosen = [(a, b) for a, b in pairs if (not nodelay and _held(k, a, b))
              or (nodelay and _behind_unacked(k, a, b))]
    if not chosen:
        return []
    a, b = chosen[len(chosen) // 2]
    first, second = _printable(a.tcp.payload), _printable(b.tcp.payload)
    if first is None or second is None or any(second in (q.tcp.payload.decode("ascii", "replace"))
                                              for q in segs if q is not b):
        return []
    c, s, pre = k.client, k.server, f"c{k.n}-"
    wait = b.ts - a.ts
    base: dict[str, Value] = {"from": c, "to": s, "port": k.conn.key[1] if _lost(k) else k.port}  # bound: its own
    out = [Item({"name": pre + "small-write", "about": f"{c} writes {len(a.tcp.payload)} bytes",
                 "packet": {**base, "payload": first, "after": f"start-app{k.n}"}})]
    if nodelay:
        out.append(Item({"name": pre + "not-held", "about": "TCP_NODELAY: the next small write leaves at once, the "
                                                            "one before still unacknowledged",
                         "packet": {**base, "payload": second, "after": pre + "small-write", "delay": "0s",
                                    "tolerance": "5ms"}}))
    else:
        out.append(Item({"name": pre + "held", "about": f"Nagle's algorithm holds the next small write until the one "
                                                        f"before is acknowledged: {wait * 1000:.0f} ms (the peer's "
                                                        "delayed-ACK timer?)",
                         "packet": {**base, "payload": second, "after": pre + "small-write",
                                    "delay": seconds(wait), "tolerance": seconds(max(0.01, wait / 4))}}))
    return out
