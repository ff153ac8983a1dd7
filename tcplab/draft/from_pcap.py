"""A draft lab file from a capture (pcap or pcapng) of one or more TCP connections.

What each side did is read off the wire and said again in the project's own parts: the side a SYN goes
to is a server running ``tcplab/server`` (``/opt/lab/server PORT 5``: single-threaded, it closes a
connection when the peer does, one at a time), each other side a ``tcplab/client`` whose telnet connects,
types the bytes it sent and closes when it sent its FIN; a silence between two of its actions is a wait
of that length. A SYN with Windows' fingerprint (TTL above 64, window 8192, wscale 8) and an RST a while
after the side's own FIN (its FIN_WAIT_2 timer) make that host an emulated Windows peer. The flags,
seq/ack and timings the capture shows become packet expectations.

When the server does what tcplab/server cannot (writes, closes first, resets an accepted connection), tcpctl (the
project's labs/programs, copied by ``lab new`` into ``programs/`` beside the draft, as ``build:`` paths are the lab
file's own) plays both sides, one socket call a step: the server accepts each connection, reads what it will close
cleanly, writes its lines, closes; an RST+ACK is a close() with the data unread (or SO_LINGER 0 when nothing came:
the wire does not tell them apart); a bare RST answering the client's data is a server that forgot the connection,
its own reset dropped by a firewall. A client's source ports packed into a narrow range say its port range was that
narrow, a sysctl no packet shows (nor a connect() that failed for want of a port: it sends nothing). When what
matters happens within milliseconds (an answer before the ACK timer fires, TCP_NODELAY, keepalive probes, an accept
queue overflowing), tcpctl plays both sides with their calls typed ahead (tcplab/draft/script.py). Whatever the
draft cannot reproduce gets a ``# could not infer: ...`` comment on its line.

The YAML is written here from a small structure (every string double-quoted, ASCII only) and validated
with the model before anybody writes it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..analysis.packets import Connection, Packet, group_connections
from ..model import LabError, parse_yaml, validate
from ..wire import ACK, FIN, RST, SYN, decode_tcp, read_capture
from .parts import PROGRAMS, SILENCE, TCPCTL, Conn, Item, Value, seconds

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
ACK_AT_ONCE = 0.05  # seconds: an ACK this soon after a FIN is the kernel's own
SERVER_PROGRAM = "/opt/lab/server"
MAX_HOSTS = 16  # the model's limit
SUMMARY_MAX = 300  # the model's limits of a summary and a story
STORY_MAX = 5000
WINDOWS_SYNS = {(8192, 8): "windows-7", (64240, 8): "windows-10", (65535, 8): "windows-10"}


class CaptureError(ValueError):
    """The file is no capture, or holds no TCP connection."""


@dataclass
class Capture:
    connections: list[Connection]
    names: dict[str, str]  # ip -> the interface name every packet it sent was captured on (pcapng)


def read_capture_file(path: str | Path) -> Capture:
    """The TCP connections of a pcap or pcapng file; CaptureError for anything else."""
    packets: list[Packet] = []
    seen: dict[str, set[str]] = {}
    try:
        with open(path, "rb") as f:
            for frame in read_capture(f):
                t = decode_tcp(frame.raw)
                if t is None:
                    continue
                packets.append(Packet(0, t, None, None, frame.interface, frame.raw.index))
                seen.setdefault(t.src, set()).add(frame.interface)
    except ValueError as e:
        raise CaptureError(str(e)) from None
    except OSError as e:
        raise CaptureError(f"cannot read: {e.strerror}") from None
    if not packets:
        raise CaptureError("no TCP/IPv4 packet in the capture")
    packets.sort(key=lambda p: p.ts)
    names = {ip: next(iter(ifs)) for ip, ifs in seen.items() if len(ifs) == 1 and _NAME.match(next(iter(ifs)))}
    if len(set(names.values())) != len(names):
        names = {}
    return Capture(group_connections(packets), names)


def list_connections(capture: Capture) -> list[str]:
    """One line per connection, numbered as ``--connection`` takes them."""
    lines = []
    for i, c in enumerate(capture.connections, 1):
        flags = " ".join(p.flags for p in c.packets[:12]) + (" ..." if len(c.packets) > 12 else "")
        lines.append(f"{i}: {c.key[0]}:{c.key[1]} -> {c.key[2]}:{c.key[3]}, {len(c.packets)} packets: {flags}")
    return lines


# --- what each connection shows -----------------------------------------------------------------

def _read(n: int, c: Connection) -> Conn:
    k = Conn(n, c)
    cip = c.key[0]
    for p in c.packets:
        t = p.tcp
        mine = t.src == cip
        if t.flags & SYN and not t.flags & ACK and mine and k.syn is None:
            k.syn = p
        if t.payload:
            if mine and k.client_fin is None:
                k.sends.append(p)
            elif not mine:
                k.server_sends.append(p)
                k.other.append(f"the server sent {len(t.payload)} bytes at seq {p.rel_seq} "
                               f"(tcplab/server never writes; no step makes it)")
        if t.flags & FIN:
            if mine and k.client_fin is None:
                k.client_fin = p
            elif not mine and k.server_fin is None:
                k.server_fin = p
        if (not mine and k.client_fin is not None and k.fin_ack is None and t.flags & ACK and not t.flags & FIN
                and p.rel_ack == k.client_fin.rel_seq + len(k.client_fin.tcp.payload) + 1):
            k.fin_ack = p
        if t.flags & RST:
            if not mine and k.syn is not None and k.refused is None and not any(
                    q.tcp.src != cip for q in c.packets if q.ts < p.ts):
                k.refused = p
            elif mine and k.client_fin is not None and k.server_fin is None and k.timer_rst is None:
                k.timer_rst = p
            else:
                if not mine and k.server_rst is None and k.client_fin is None:
                    k.server_rst = p
                who = "client" if mine else "server"
                k.other.append(f"the {who}'s RST [{p.flags}] at seq {p.rel_seq}, "
                               f"{p.rel_time:.3f} s into the capture (no step makes it)")
    if k.syn is not None and all(q.tcp.src == cip and q.tcp.flags & SYN for q in c.packets):
        k.unanswered = list(c.packets)
    if k.syn is None:
        k.other.append("the handshake (the capture starts inside the connection): the draft connects anew")
    if k.server_fin is not None and (k.client_fin is None or k.server_fin.ts < k.client_fin.ts):
        k.other.append("the server closes first (tcplab/server only closes after its peer); no step makes it")
        k.server_closes_first = k.server_fin
        k.server_fin = None
    return k


def _windows_syn(k: Conn) -> tuple[str | None, str]:
    """The peer's ``syn`` for a SYN with Windows' fingerprint (None: not Windows), and a comment."""
    if k.syn is None:
        return None, ""
    t = k.syn.tcp
    wscale = t.option("wscale")
    if not 64 < t.ttl <= 128:
        return None, ""
    profile = WINDOWS_SYNS.get((t.win, wscale if isinstance(wscale, int) else -1))
    if profile is None:
        return "windows-10", (f"could not infer the SYN's profile (ttl {t.ttl}, win {t.win}, wscale {wscale}): "
                              "windows-10 is the closest")
    return profile, f"the SYN's fingerprint (ttl {t.ttl}, win {t.win}, wscale {wscale}) is {profile}'s"


# --- YAML text --------------------------------------------------------------------------------------

def _q(s: str) -> str:
    """A double-quoted YAML scalar, ASCII only."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def _flow(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _q(v)
    if isinstance(v, list):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"


@dataclass
class Draft:
    """The lab file's text, the connections it reproduces and what it could not infer."""
    text: str
    name: str
    connections: list[int]
    not_inferred: list[str]
    programs: bool = False  # the draft builds its hosts from PROGRAMS, a folder beside it (a copy of labs/programs)


def _name_for(stem: str) -> str:
    base = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_") or "capture"
    if not base[0].isalpha():
        base = "c" + base
    return ("from-" + base)[:31].rstrip("-_")


def draft_lab(capture: Capture, chosen: list[int], source: str) -> Draft:
    """The draft of a lab that replays connections ``chosen`` (1-based numbers) of ``capture``.

    ``source`` is how the file is named in the draft's comments. The text is validated with the model;
    a LabError here is a bug of the draft, not of the capture."""
    conns = [_read(n, capture.connections[n - 1]) for n in chosen]
    conns.sort(key=lambda k: k.start)
    unsure: list[str] = []

    # hosts: one per address, servers first (they get the first addresses, as the capture's order does not say)
    names: dict[str, str] = {}
    used: set[str] = set()

    def name(ip: str, base: str) -> str:
        if ip not in names:
            wanted = capture.names.get(ip)
            candidate = wanted if wanted and wanted not in used and wanted != "holder" else base
            i = 1
            while candidate in used:
                i += 1
                candidate = f"{base}{i}"
            names[ip] = candidate
            used.add(candidate)
        return names[ip]

    windows: dict[str, tuple[str | None, str]] = {}
    for k in conns:
        k.server = name(k.sip, "server")
    for k in conns:
        syn, why = _windows_syn(k)
        base = "win" if syn is not None or k.timer_rst is not None else "client"
        k.client = name(k.cip, base)
        if k.cip in {c.sip for c in conns}:
            unsure.append(f"{k.client} both serves and connects; it runs the server image and telnet")
        if syn is not None or k.timer_rst is not None:
            prev = windows.get(k.client)
            if prev is None or prev[0] is None:
                windows[k.client] = (syn, why)
    if len(names) > MAX_HOSTS - 1:  # one more for a holder
        raise CaptureError(f"the chosen connections have {len(names)} addresses; a lab holds at most {MAX_HOSTS} "
                           "hosts: choose fewer with --connection")
    from .script import script_play, scripted
    unsure.extend(_port_ranges(conns))
    programs = True
    if scripted(conns):
        hosts, steps, expect = script_play(conns, names, unsure)
    elif any(_needs_sockets(k) for k in conns):
        hosts, steps, expect = _socket_play(conns, names, unsure)
    else:
        hosts, steps, expect = _telnet_play(conns, names, windows, unsure)
        programs = False

    lines = [f"# A draft lab from {source}, connection{'s' if len(chosen) > 1 else ''} "
             f"{', '.join(str(n) for n in chosen)} (lab new --from-pcap). Read every comment:",
             "# '# could not infer' marks what the capture does not say; the rest is what it shows."]
    lab_name = _name_for(Path(source).stem)
    lines.append(f"name: {lab_name}")
    summary = "Replays " + ", ".join(k.conn.name for k in conns) + " from " + Path(source).name
    if len(summary) > SUMMARY_MAX:
        summary = f"Replays {len(conns)} connections from {Path(source).name}"[:SUMMARY_MAX]
    lines.append(f"summary: {_q(summary)}")
    lines.append(f"story: {_q(_story(conns)[:STORY_MAX])}")
    addresses = ", ".join(f"{ip} ({h})" for ip, h in names.items())
    lines.append("network: {subnet: 10.77.0.0/24}  # the capture's addresses: " + addresses)
    lines.append("hosts:")
    for h, spec, notes in hosts:
        for n in notes:
            lines.append(f"  # {n}")
        lines.append(f"  {h}: {_flow(spec)}")
    lines.append("steps:")
    for it in steps:
        lines.extend(f"  # {c}" for c in it.comments)
        lines.append(f"  - {_flow(it.value)}" + (f"  # {it.note}" if it.note else ""))
    if unsure:
        for u in unsure:
            lines.append(f"# could not infer: {u}")
    lines.append("expect:")
    for it in expect:
        lines.extend(f"  # {c}" for c in it.comments)
        first = True
        for key, v in it.value.items():
            lines.append(f"  {'- ' if first else '  '}{key}: {_flow(v)}")
            first = False
    text = "\n".join(lines) + "\n"
    validate(parse_yaml(text, f"{lab_name}.yaml"), f"{lab_name}.yaml")
    return Draft(text, lab_name, list(chosen), unsure, programs)


def _telnet_play(conns: list[Conn], names: dict[str, str], windows: dict[str, tuple[str | None, str]],
                 unsure: list[str]) -> tuple[list[tuple[str, dict[str, Value], list[str]]], list[Item], list[Item]]:
    """Hosts, steps and expectations where telnet plays the clients and tcplab/server the servers."""
    timers: dict[str, float] = {}
    for k in conns:
        if k.timer_rst is not None and k.client_fin is not None and k.client not in timers:
            timers[k.client] = k.timer_rst.ts - k.client_fin.ts

    # the server program serves one connection at a time: one never closed keeps it busy, so later ones are
    # never closed by it; when the capture shows a server that never closes but nothing keeps it busy, a
    # holder's connection comes first
    holders: list[tuple[str, int]] = []
    for (sip, port) in dict.fromkeys((k.sip, k.port) for k in conns):
        busy = False
        needs_holder = False
        for k in (c for c in conns if (c.sip, c.port) == (sip, port)):
            if k.client_fin is not None and k.server_fin is None and not busy:
                needs_holder = True
            if k.client_fin is None:
                busy = True
        if needs_holder:
            holders.append((names[sip], port))
            for k in conns:
                if (k.sip, k.port) == (sip, port) and k.server_fin is not None:
                    k.other.append("the server's FIN after the client's: the holder keeps tcplab/server busy, so "
                                   "it will not close this one; no expectation")
                    k.server_fin = None

    # hosts
    hosts: list[tuple[str, dict[str, Value], list[str]]] = []
    spec: dict[str, Value]
    ports: dict[str, list[int]] = {}
    for k in conns:
        ports.setdefault(k.server, [])
        if k.port not in ports[k.server] and k.refused is None:
            ports[k.server].append(k.port)
    for ip, h in names.items():
        notes: list[str] = []
        if h in ports and not ports[h]:
            spec = {"image": "tcplab/server"}
            notes.append("nothing listens here: every SYN to it was answered with an RST")
        elif h in ports:
            lp = ports[h][0]
            spec = {"image": "tcplab/server", "program": {
                "run": [SERVER_PROGRAM, str(lp), "5"], "name": "server", "ready": {"listen": lp}}}
            notes.append(f"could not infer the server's program: tcplab/server stands in for it on port {lp} "
                         "(single-threaded: it closes a connection after its peer does)")
            ttl = next((q.tcp.ttl for k in conns if k.sip == ip for q in k.conn.packets if q.tcp.src == ip), 64)
            if ttl > 64:
                notes.append(f"could not infer: the server sent TTL {ttl} (not Linux?); here it runs Linux")
        else:
            spec = {"image": "tcplab/client"}
        if h in windows:
            syn, why = windows[h]
            peer: dict[str, Value] = {"os": "windows"}
            if h in timers:
                peer["fin_wait2_timeout"] = seconds(timers[h])
                notes.append(f"its RST {timers[h]:.3f} s after its own FIN is Windows' FIN_WAIT_2 timer; "
                             f"for CI: --set peers.{h}.fin_wait2_timeout=2s")
            peer["syn"] = syn if syn is not None else "linux"
            if why:
                notes.append(why)
            if syn is None:
                notes.append("could not infer a Windows SYN (TTL 64 or no SYN seen): it keeps Linux's")
            spec["peer"] = peer
        hosts.append((h, spec, notes))
    for (server, port) in holders:
        hosts.append(("holder", {"image": "tcplab/client"},
                      [f"could not infer what kept {server} busy: holder's connection to port {port} does "
                       "(tcplab/server serves one client at a time)"]))
        break  # one holder is enough for every port: its connection is to the first

    # steps
    steps: list[Item] = []
    for h, plist in ports.items():
        for lp in plist[1:]:
            steps.append(Item({"host": h, "start": [SERVER_PROGRAM, str(lp), "5"], "as": f"server-{lp}",
                               "ready": {"listen": lp}, "title": f"{h} listens on port {lp} too"}))
    for i, (server, port) in enumerate(holders):
        steps.append(Item({"host": "holder", "start": ["telnet", server, str(port)], "as": f"hold{i + 1}",
                           "ready": {"log": "Connected to"}, "title": f"holder keeps {server}'s server busy"}))
    events: list[tuple[float, int, str, Conn, Packet | None]] = []
    for k in conns:
        events.append((k.start, 0, "connect", k, k.syn))
        for sent in k.sends:
            events.append((sent.ts, 1, "send", k, sent))
        if k.client_fin is not None:
            events.append((k.client_fin.ts, 2, "close", k, k.client_fin))
        if k.timer_rst is not None:
            events.append((k.timer_rst.ts, 3, "rst", k, k.timer_rst))
        if k.refused is not None:
            events.append((k.refused.ts, 3, "exit", k, k.refused))
        if k.unanswered:
            events.append((k.unanswered[-1].ts, 3, "exit", k, k.unanswered[-1]))
    events.sort(key=lambda e: (e[0], e[1]))
    last = conns[0].start
    for ts, _, kind, k, p in events:
        gap = ts - last
        if kind not in ("rst", "exit") and gap >= SILENCE:
            steps.append(Item({"wait": {"seconds": seconds(gap)}, "timeout": seconds(gap + 10),
                               "title": f"silence of {seconds(gap)}"},
                              note=f"the capture's silence; for CI: --set steps.{len(steps)}.wait.seconds=0.5"))
        last = ts
        telnet = f"telnet{k.n}"
        if kind == "connect":
            if k.unanswered:
                steps.append(Item({"host": k.server, "firewall": "drop", "from": k.client, "port": k.port,
                                   "as": f"drop{k.n}", "title": f"{k.server} drops {k.client}'s packets to port "
                                                              f"{k.port}"},
                                  note=f"could not infer why nothing came back to {len(k.unanswered)} SYNs: "
                                       "a firewall that drops them stands in"))
            start: dict[str, Value] = {"host": k.client, "start": ["telnet", k.server, str(k.port)], "as": telnet,
                                       "ready": {"log": "Connected to"},
                                       "title": f"{k.client} connects to {k.server} port {k.port}"}
            if k.refused is not None or k.unanswered:
                del start["ready"]  # it never connects
            steps.append(Item(start,
                              note="could not infer the client's program: telnet stands in; its port is the "
                                   f"kernel's choice (the capture's: {k.conn.key[1]})"))
        elif kind == "send" and p is not None:
            text, why = _typed(p.tcp.payload)
            if text is None:
                k.other.append(f"{len(p.tcp.payload)} bytes at seq {p.rel_seq}: {why}")
                continue
            steps.append(Item({"host": k.client, "send": telnet, "text": text,
                               "title": f"{k.client} sends {len(p.tcp.payload)} bytes"},
                              note=why or ""))
        elif kind == "close":
            steps.append(Item({"host": k.client, "stop": telnet, "title": f"{k.client} closes its connection"}))
            steps.append(Item({"wait": {"fin_from": k.client}, "timeout": "5s"}))
        elif kind == "exit":
            note = ""
            timeout = "5s"
            if k.unanswered:
                span = k.unanswered[-1].ts - k.unanswered[0].ts
                timeout = "150s"
                note = (f"could not infer the client's tcp_syn_retries: the capture shows {len(k.unanswered)} SYNs "
                        f"over {span:.1f} s; Linux's default gives up after ~130 s (shorten with --set "
                        f"hosts.{k.client}.sysctls.net.ipv4.tcp_syn_retries=2)")
            steps.append(Item({"wait": {"exit": telnet}, "host": k.client, "timeout": timeout,
                               "title": f"{k.client}'s connect() fails"}, note=note))
        elif kind == "rst":
            timer = timers.get(k.client, ts - last)
            steps.append(Item({"wait": {"rst_from": k.client}, "timeout": seconds(timer + 10),
                               "title": f"{k.client} gives up on FIN_WAIT_2 and resets"}))

    # expectations
    expect: list[Item] = []
    for k in conns:
        expect.extend(_expectations(k, k.client in timers))
        for o in k.other:
            unsure.append(f"connection {k.n}: {o}")
    return hosts, steps, expect


def _port_ranges(conns: list[Conn]) -> list[str]:
    """What a client's source ports hint at: packed into a narrow range, or one reused, the capture suggests the
    kernel's port range was that narrow (a sysctl no packet shows); a connect() that failed for want of a port
    (EADDRNOTAVAIL) sent nothing, so the capture cannot show it either."""
    out = []
    by_client: dict[str, list[int]] = {}
    for k in conns:
        by_client.setdefault(k.client, []).append(k.conn.key[1])
    for client, ports in by_client.items():
        lo, hi = min(ports), max(ports)
        if len(ports) < 3 or hi - lo >= 2 * len(ports):
            continue
        reused = len(set(ports)) < len(ports)
        out.append(f"{client}'s {len(ports)} connections came from ports {lo} to {hi}"
                   + (", one port used again" if reused else "")
                   + f": a port range that narrow is a sysctl no packet shows (--set hosts.{client}.sysctls."
                   f"net.ipv4.ip_local_port_range=\"{lo} {hi}\"); a connect() that found no free port "
                   "(EADDRNOTAVAIL) sends nothing, so the capture cannot show it"
                   + (", nor whether net.ipv4.tcp_tw_reuse let a port in TIME_WAIT be used again" if reused else ""))
    return out


def _forgot(k: Conn) -> Packet | None:
    """The client's data that the server's RST answers when that RST has no ACK flag: a kernel with no socket for
    the connection (it forgot it, the reset that said so lost) answers a segment carrying an ACK with a bare RST."""
    r = k.server_rst
    if r is None or r.tcp.flags & ACK:
        return None
    before = [q for q in k.conn.packets if q.ts <= r.ts and q is not r]
    if before and before[-1].tcp.src == k.cip and before[-1].tcp.payload:
        return before[-1]
    return None


def _needs_sockets(k: Conn) -> bool:
    """Whether the server does what tcplab/server cannot: writes, closes first or resets an accepted connection."""
    return bool(k.server_sends) or k.server_closes_first is not None or k.server_rst is not None


def _line(payload: bytes) -> str | None:
    """The TEXT of tcpctl's ``send TEXT`` that writes these bytes (it adds one newline), or None."""
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\n") or "\n" in text[:-1] or not text[:-1].isprintable():
        return None
    return text[:-1]


_PLAYED = ("the server sent ", "the server closes first", "the server's RST", "the server's FIN after")


def _socket_play(conns: list[Conn], names: dict[str, str],
                 unsure: list[str]) -> tuple[list[tuple[str, dict[str, Value], list[str]]], list[Item], list[Item]]:
    """Hosts, steps and expectations where tcpctl plays both sides, one socket call a step: the server accepts each
    connection, reads what it will answer or close cleanly, writes its data, closes first, or resets (close() with
    the data unread, or with SO_LINGER 0 when nothing came); the client connects, writes, reads, closes."""
    hosts: list[tuple[str, dict[str, Value], list[str]]] = []
    servers = {k.server for k in conns}
    for h in names.values():
        role = "listens and accepts" if h in servers else "connects"
        hosts.append((h, {"build": PROGRAMS}, [f"could not infer its program: tcpctl ({PROGRAMS}/, a copy of the "
                                                f"project's labs/programs) {role}, one socket call a step"]))
    steps: list[Item] = []
    listeners: dict[tuple[str, int], str] = {}
    busy_until: dict[tuple[str, int], float] = {}
    events: list[tuple[float, float, str, Conn, Packet | None]] = []
    for k in conns:
        k.other = [o for o in k.other if not o.startswith(_PLAYED)]
        end = k.conn.packets[-1].ts
        key = (k.server, k.port)
        if k.refused is None and key in busy_until and k.start < busy_until[key]:
            unsure.append(f"connection {k.n}: it overlaps an earlier one to {k.server} port {k.port}; tcpctl acts on "
                          "the connection it accepted last")
        busy_until[key] = max(end, busy_until.get(key, 0.0))
        events.append((k.start, 0, "connect", k, k.syn))
        events.extend((p.ts, 1, "send", k, p) for p in k.sends)
        events.extend((p.ts, 1, "reply", k, p) for p in k.server_sends)
        if k.server_rst is not None and _forgot(k) is not None:
            answered = _forgot(k)
            assert answered is not None
            events.append((answered.ts, 0.5, "forget", k, k.server_rst))  # before the data its RST answers
        elif k.server_rst is not None:
            events.append((k.server_rst.ts, 2, "abort", k, k.server_rst))
        sfin = k.server_closes_first or k.server_fin
        if sfin is not None:
            events.append((sfin.ts, 2, "server-close", k, sfin))
        if k.client_fin is not None:
            events.append((k.client_fin.ts, 2, "close", k, k.client_fin))
    events.sort(key=lambda e: (e[0], e[1]))
    for k in conns:
        key = (k.server, k.port)
        if k.refused is None and key not in listeners:
            listeners[key] = f"{k.server}-{k.port}"
            steps.append(Item({"host": k.server, "start": [TCPCTL, "listen", str(k.port), "5"], "as": listeners[key],
                               "ready": {"listen": k.port}, "title": f"{k.server} listens on port {k.port}"}))
    last = events[0][0]
    for ts, _, kind, k, p in events:
        gap = ts - last
        last = ts
        if gap >= SILENCE:
            steps.append(Item({"wait": {"seconds": seconds(gap)}, "timeout": seconds(gap + 10),
                               "title": f"silence of {seconds(gap)}"},
                              note=f"the capture's silence; for CI: --set steps.{len(steps)}.wait.seconds=0.5"))
        app, srv = f"app{k.n}", listeners.get((k.server, k.port), "")
        clean = k.server_rst is None and (k.server_closes_first or k.server_fin) is not None
        if kind == "connect":
            start: dict[str, Value] = {"host": k.client, "start": [TCPCTL, "connect", k.server, str(k.port)],
                                       "as": app, "ready": {"log": "^connected"},
                                       "title": f"{k.client} connects to {k.server} port {k.port}"}
            if k.refused is not None:
                start["ready"] = {"log": "^connect failed"}
            steps.append(Item(start, note=f"its port is the kernel's choice (the capture's: {k.conn.key[1]})"))
            if k.refused is None and _needs_sockets(k) or k.server_sends:
                steps.append(Item({"host": k.server, "send": srv, "text": "accept\n",
                                   "title": f"{k.server} accepts it"}))
        elif kind in ("send", "reply") and p is not None:
            text = _line(p.tcp.payload)
            who, other, prog, peer_prog = ((k.client, k.server, app, srv) if kind == "send"
                                           else (k.server, k.client, srv, app))
            if text is None:
                unsure.append(f"connection {k.n}: {len(p.tcp.payload)} bytes at seq {p.rel_seq} from {who} are not "
                              "one line of text (tcpctl sends a line); no step sends them")
                continue
            steps.append(Item({"host": who, "send": prog, "text": f"send {text}\n",
                               "title": f"{who} sends {len(p.tcp.payload)} bytes"}))
            if kind == "reply" or clean:  # read, so that a later close() is a FIN, not a reset
                steps.append(Item({"host": other, "send": peer_prog, "text": "recv\n",
                                   "title": f"{other} reads them"}))
        elif kind == "abort":
            unread = any(q.ts < ts for q in k.sends)
            text = "pending\nclose\n" if unread else "linger 0\nclose\n"
            steps.append(Item({"host": k.server, "send": srv, "text": text,
                               "title": f"{k.server} resets the connection: close() with "
                                        + ("the request unread" if unread else "SO_LINGER {on, 0}")},
                              note="could not infer: close() with unread data and with SO_LINGER 0 look alike on "
                                   "the wire"))
            steps.append(Item({"wait": {"rst_from": k.server}, "timeout": "5s"}))
        elif kind == "forget":
            steps.append(Item({"host": k.server, "firewall": "drop", "to": k.client, "as": f"silence{k.n}",
                               "title": f"{k.server} falls silent: its firewall drops all it sends to {k.client}"},
                              note="could not infer how the server lost the connection (a crash? a reboot?): its "
                                   "RST answers data without an ACK, so it had no socket for it"))
            steps.append(Item({"host": k.server, "send": srv, "text": "linger 0\nclose\n",
                               "title": f"{k.server} forgets the connection: its reset is dropped"}))
            steps.append(Item({"wait": {"seconds": "500ms"}, "timeout": "5s",
                               "title": "the reset leaves and is dropped"}))
            steps.append(Item({"host": k.server, "lift": f"silence{k.n}",
                               "title": f"{k.server} speaks to {k.client} again"}))
        elif kind == "server-close":
            steps.append(Item({"host": k.server, "send": srv, "text": "close\n",
                               "title": f"{k.server} closes its connection"}))
            steps.append(Item({"wait": {"fin_from": k.server}, "timeout": "5s"}))
        elif kind == "close":
            steps.append(Item({"host": k.client, "send": app, "text": "close\n",
                               "title": f"{k.client} closes its connection"}))
            steps.append(Item({"wait": {"fin_from": k.client}, "timeout": "5s"}))
    expect: list[Item] = []
    for k in conns:
        c, s, port, pre = k.client, k.server, k.port, f"c{k.n}-"
        expect.append(Item({"name": pre + "syn", "about": f"{c} opens the connection to port {port}",
                            "packet": {"from": c, "to": s, "port": port, "flags": "S", "after": f"start-app{k.n}"}}))
        last_pkt = next((q for q in (k.server_rst, k.refused) if q is not None), None)
        if last_pkt is not None:
            expect.append(Item({"name": pre + "reset", "about": f"{s} resets the connection: [{last_pkt.flags}]",
                                "packet": {"from": s, "to": c, "port": port, "flags": last_pkt.flags,
                                           "after": pre + "syn"}}))
        sfin = k.server_closes_first or k.server_fin
        if sfin is not None:
            expect.append(Item({"name": pre + "server-fin", "about": f"{s} closes: [{sfin.flags}]",
                                "packet": {"from": s, "to": c, "port": port, "has_flags": "F",
                                           "after": pre + "syn"}}))
        if k.client_fin is not None:
            expect.append(Item({"name": pre + "fin", "about": f"{c} closes: [{k.client_fin.flags}]",
                                "packet": {"from": c, "to": s, "port": port, "has_flags": "F",
                                           "after": pre + "syn"}}))
    return hosts, steps, expect


def _typed(payload: bytes) -> tuple[str | None, str]:
    """The text a telnet is typed to send these bytes (it sends a typed newline as CR LF), or None and why."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None, "could not infer: not text (telnet types text only); no step sends them"
    if "\x1d" in text or "\xff" in text:
        return None, "could not infer: telnet's escape or IAC byte in them; no step sends them"
    typed = text.replace("\r\n", "\n")
    why = "" if typed.endswith("\n") else "could not infer: no newline at the end; telnet sends a line at a time"
    if "\r" in typed:
        why = "could not infer: a CR without LF; telnet sends CR LF for a typed newline"
    return typed, why


def _story(conns: list[Conn]) -> str:
    parts = []
    for k in conns:
        did = [f"{k.client} connects to {k.server} port {k.port}"]
        if k.refused is not None:
            did.append("refused: nothing listens there")
        if k.unanswered:
            did.append(f"nothing comes back to its {len(k.unanswered)} SYNs")
        if k.sends:
            did.append(f"sends {max(p.rel_seq + len(p.tcp.payload) for p in k.sends) - 1} bytes")  # once each
        if k.server_rst is not None:
            did.append("the server resets it")
        if k.server_closes_first is not None:
            did.append("the server closes first")
        if k.client_fin is not None:
            did.append("closes")
            if k.server_closes_first is None:
                did.append("the server closes too" if k.server_fin is not None else "the server never closes")
        if k.timer_rst is not None and k.client_fin is not None:
            did.append(f"{k.client} resets {k.timer_rst.ts - k.client_fin.ts:.1f} s after its FIN")
        parts.append(", ".join(did) + ".")
    return " ".join(parts)


def _expectations(k: Conn, timer: bool) -> list[Item]:
    c, s, port, pre = k.client, k.server, k.port, f"c{k.n}-"
    out: list[Item] = []
    if k.syn is not None:
        t = k.syn.tcp
        rule: dict[str, Value] = {"from": c, "to": s, "port": port, "flags": "S"}
        if 64 < t.ttl <= 128:
            ws = t.option("wscale")
            rule.update({"ttl": t.ttl, "win": t.win})
            if isinstance(ws, int):
                rule["wscale"] = ws
            names = [n for n in t.option_names() if n in ("mss", "nop", "wscale", "sackOK", "TS", "eol", "sack")]
            rule["options"] = list[Value](names)
            if "TS" not in names:
                rule["without_options"] = ["TS"]
        out.append(Item({"name": pre + "syn", "about": f"{c} opens the connection to port {port}",
                         "packet": rule}))
        if k.refused is not None:
            r = k.refused
            delay = r.ts - k.syn.ts
            out.append(Item({"name": pre + "refused", "about": f"nothing listens on {s} port {port}: its kernel "
                                                           f"answers the SYN with [{r.flags}]",
                             "packet": {"from": s, "to": c, "port": port, "flags": r.flags, "after": pre + "syn",
                                        "delay": seconds(delay) if delay > ACK_AT_ONCE else "0s",
                                        "tolerance": seconds(max(0.05, delay / 10))}}))
            out.append(Item({"name": pre + "syn-once", "about": "a refused SYN is not retransmitted",
                             "packet": {"from": c, "to": s, "port": port, "flags": "S",
                                        "count": sum(1 for q in k.conn.packets if q.flags == "S")}}))
            return out
        if k.unanswered:
            out.append(Item({"name": pre + "syn-retransmits", "about": "unanswered, the SYN is retransmitted on the "
                                                                   "client kernel's timer",
                             "packet": {"from": c, "to": s, "port": port, "flags": "S", "after": f"start-telnet{k.n}",
                                        "intervals": "syn-backoff", "tolerance": "100ms"}},
                            comments=[f"the capture's {len(k.unanswered)} SYNs, {_gaps(k.unanswered)} apart; "
                                      "the draft expects the pattern of the sysctls the run reads"]))
            out.append(Item({"name": pre + "nothing-back", "about": f"{s} sends nothing back",
                             "packet": {"from": s, "to": c, "port": port, "count": 0}}))
            return out
        synack = next((p for p in k.conn.packets if p.tcp.src == k.sip and p.tcp.flags & SYN), None)
        if synack is not None:
            out.append(Item({"name": pre + "synack", "about": f"{s} accepts the handshake",
                             "packet": {"from": s, "to": c, "port": port, "flags": synack.flags,
                                        "after": pre + "syn"}}))
    crs = 0  # telnet sends CR LF for a typed newline: each bare LF sent so far is one byte more in the replay
    for i, p in enumerate(k.sends, 1):
        text, _ = _typed(p.tcp.payload)
        if text is None:
            continue
        piece = text.strip()[:200] or text[:200]
        out.append(Item({"name": f"{pre}data{i}", "about": f"{c} sends {len(p.tcp.payload)} bytes",
                         "packet": {"from": c, "to": s, "port": port, "has_flags": "P", "seq": p.rel_seq + crs,
                                    "payload": piece}}))
        crs += p.tcp.payload.count(b"\n") - p.tcp.payload.count(b"\r\n")
    fin = k.client_fin
    if fin is None:
        return out
    item = Item({"name": pre + "fin", "about": f"{c} closes: [{fin.flags}] seq {fin.rel_seq}, ack {fin.rel_ack}",
                 "packet": {"from": c, "to": s, "port": port, "flags": fin.flags, "seq": fin.rel_seq + crs,
                            "ack": fin.rel_ack, "after": f"stop-telnet{k.n}"}})
    if crs:
        item.comments.append(f"could not infer: the capture's {crs} bare LF (telnet types CR LF): seq {fin.rel_seq} "
                             f"there is {fin.rel_seq + crs} here")
    out.append(item)
    if k.fin_ack is not None:
        a = k.fin_ack
        delay = a.ts - fin.ts
        item = Item({"name": pre + "fin-acked", "about": f"{s}'s kernel acks the FIN (ack {a.rel_ack})",
                     "packet": {"from": s, "to": c, "port": port, "flags": a.flags, "ack": a.rel_ack,
                                "after": pre + "fin", "delay": "0s", "tolerance": "50ms"}})
        ack_rule = item.value["packet"]
        assert isinstance(ack_rule, dict)
        if k.server_fin is not None:
            del ack_rule["flags"]  # a server that closes at once may ack the FIN with its own FIN
        if delay > ACK_AT_ONCE:
            ack_rule["delay"] = seconds(delay)
            ack_rule["tolerance"] = seconds(max(0.05, delay / 10))
            item.comments.append(f"could not infer why the ACK came {delay:.3f} s after the FIN (the delayed-ACK "
                                 "timer? the program's data?); the draft expects the same delay")
        out.append(item)
    if k.server_fin is not None:
        out.append(Item({"name": pre + "server-fin", "about": f"{s} closes its side after {c}'s FIN",
                         "packet": {"from": s, "to": c, "port": port, "has_flags": "F", "after": pre + "fin"}}))
    else:
        out.append(Item({"name": pre + "server-never-fins", "about": f"{s} never sends its own FIN to {c}",
                         "packet": {"from": s, "to": c, "port": port, "has_flags": "F", "count": 0}}))
    if k.timer_rst is not None:
        r = k.timer_rst
        rule2: dict[str, Value] = {"from": c, "to": s, "port": port, "flags": r.flags, "seq": r.rel_seq}
        if r.tcp.flags & ACK:
            rule2["ack"] = r.rel_ack
        rule2.update({"win": r.tcp.win, "after": pre + "fin", "tolerance": "50ms"})
        rule2["delay"] = f"peers.{c}.fin_wait2_timeout" if timer else seconds(r.ts - fin.ts)
        out.append(Item({"name": pre + "rst", "about": f"{c} gives up on FIN_WAIT_2 and resets: [{r.flags}] "
                                                       f"seq {r.rel_seq}",
                         "packet": rule2}))
    return out


def _gaps(packets: list[Packet]) -> str:
    return ", ".join(f"{b.ts - a.ts:.1f}" for a, b in zip(packets, packets[1:])) + " s"


def flag_sequences(capture: Capture, numbers: list[int] | None = None) -> list[list[str]]:
    """The flags of each connection's packets in order (all connections, or those numbered)."""
    chosen = numbers or list(range(1, len(capture.connections) + 1))
    return [[p.flags for p in capture.connections[n - 1].packets] for n in chosen]


__all__ = ["Capture", "CaptureError", "Draft", "LabError", "draft_lab", "flag_sequences", "list_connections",
           "read_capture_file"]
