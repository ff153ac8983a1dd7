"""What differs between two runs, computed from their evidence and said in plain words.

Two runs of one story (closewait and its Linux control, a program with and
without TCP_NODELAY) use the same host names for the same roles, so the
comparison aligns by name: a connection by its client, its server and the
server's port; a socket by its host, its peer and that port; a step by its
stable name; an expectation by its name. Each difference is one sentence
naming both runs (A and B); nothing here is escaped, the template does it.
"""
from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Iterable

from ..analysis.explain import fmt_span
from ..analysis.machine import cpu_pressure
from ..analysis.packets import Packet, Traffic
from ..analysis.timeline import SocketTimeline, Timelines
from ..runfiles.result import ResultDocument
from ..runfiles.steps import StepRecord
from ..wire import FIN, RST, SYN

# Timings differ when both the ratio and the absolute difference are at least these.
TIMING_RATIO = 2.0
TIMING_ABS = 0.005  # seconds

FLAG_WORDS = ((RST, "RST"), (FIN, "FIN"), (SYN, "SYN"))

AUTO_NAME = re.compile(r"wait-\d+")  # the name a wait step gets from its position

# Steps whose time is the tool's (a container's exec, reading socket tables), not the story's: not compared.
MACHINERY = {"start", "stop", "snapshot"}


@dataclass(frozen=True)
class Difference:
    kind: str  # packets, timing, machine, verdict, state, steps
    text: str


@dataclass
class Side:
    """One run, as the comparison reads it."""
    label: str  # "A" or "B"
    traffic: Traffic
    timelines: Timelines
    steps: list[StepRecord]
    result: ResultDocument | None


def _host(p: Packet, src: bool) -> str:
    return (p.src_host or p.tcp.src) if src else (p.dst_host or p.tcp.dst)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _secs(x: float) -> str:
    return fmt_span(x) if x >= 1 else f"{x * 1000:.1f} ms"


# --- packets: which host sends an RST/FIN/SYN to which, in one run and not the other -------------------

def flag_packets(traffic: Traffic) -> dict[tuple[str, str, str], list[Packet]]:
    """(sender, receiver, flag word) -> the packets carrying that flag, in time order."""
    out: dict[tuple[str, str, str], list[Packet]] = defaultdict(list)
    for p in traffic.packets:
        for bit, word in FLAG_WORDS:
            if p.tcp.flags & bit:
                out[(_host(p, True), _host(p, False), word)].append(p)
    return out


def _after_fin(p: Packet) -> str:
    """", 2.002 s after its FIN" when the sender had sent a FIN on that connection before."""
    if p.conn is None:
        return ""
    fins = [q for q in p.conn.packets if q.tcp.flags & FIN and q.tcp.src == p.tcp.src and q.ts <= p.ts]
    return f", {_secs(p.ts - fins[-1].ts)} after its own FIN" if fins and not p.tcp.flags & FIN else ""


def _when(p: Packet, t0: float) -> str:
    return f"at t = {p.ts - t0:.3f} s{_after_fin(p)}"


def packet_differences(a: Side, b: Side) -> list[Difference]:
    fa, fb = flag_packets(a.traffic), flag_packets(b.traffic)
    out = []
    for key in sorted(set(fa) | set(fb), key=lambda k: ([w for _, w in FLAG_WORDS].index(k[2]), k)):
        src, dst, word = key
        pa, pb = fa.get(key, []), fb.get(key, [])
        if len(pa) == len(pb):
            continue
        if not pa or not pb:
            side, ps, hasnt = (a, pa, b) if pa else (b, pb, a)
            out.append(Difference("packets", f"{src} sends {'an' if word in ('RST', 'FIN') else 'a'} {word} to {dst} "
                                             f"in {side.label} ({_plural(len(ps), 'packet')}, the first "
                                             f"{_when(ps[0], side.traffic.start)}); in {hasnt.label} {src} never "
                                             f"sends one."))
        else:
            out.append(Difference("packets", f"{src} sends {_plural(len(pa), word)} to {dst} in {a.label}, "
                                             f"{len(pb)} in {b.label}."))
    return out


# --- timing: per request, per step ----------------------------------------------------------------------

def request_times(traffic: Traffic) -> dict[tuple[str, str], list[float]]:
    """(client, server) -> for each request (the client's data after the server's last), the time until the
    server's first data in answer."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in traffic.connections:
        client, server = c.client or c.key[0], c.server or c.key[2]
        asked: float | None = None
        for p in c.packets:
            if not p.tcp.payload:
                continue
            if p.tcp.src == c.key[0]:
                if asked is None:
                    asked = p.ts
            elif asked is not None:
                out[(client, server)].append(p.ts - asked)
                asked = None
    return out


def _differs(x: float, y: float) -> bool:
    lo, hi = sorted((x, y))
    return hi - lo >= TIMING_ABS and (lo <= 0 or hi / lo >= TIMING_RATIO)


def timing_differences(a: Side, b: Side) -> list[Difference]:
    out = []
    ra, rb = request_times(a.traffic), request_times(b.traffic)
    for key in sorted(set(ra) & set(rb)):
        ma, mb = statistics.median(ra[key]), statistics.median(rb[key])
        if _differs(ma, mb):
            client, server = key
            out.append(Difference("timing", f"{server} answers {client}'s requests in {_secs(ma)} in {a.label} "
                                            f"(median of {len(ra[key])}), in {_secs(mb)} in {b.label} "
                                            f"(median of {len(rb[key])})."))
    for sa, sb in matched_steps(a.steps, b.steps):
        if MACHINERY & {sa.get("kind"), sb.get("kind")}:
            continue
        da, db = _duration(sa), _duration(sb)
        if da is not None and db is not None and _differs(da, db):
            ta, tb = _title(sa), _title(sb)
            same = ta == tb
            out.append(Difference("timing", f"step “{ta}” takes {_secs(da)} in {a.label}, {_secs(db)} in {b.label}"
                                            + ("." if same else f" (there: “{tb}”).")))
    return out


def _duration(s: StepRecord) -> float | None:
    start, end = s.get("start"), s.get("end")
    return float(end) - float(start) if start is not None and end is not None else None


def _title(s: StepRecord) -> str:
    return str(s.get("title") or s.get("name") or f"step {s.get('index')}")


def step_key(s: StepRecord) -> str:
    """A step's identity across two runs: its stable name, but a wait's title (a wait's name is its position,
    ``wait-6``: two labs' sixth steps may wait for different things)."""
    name = str(s.get("name") or "")
    if not name or AUTO_NAME.fullmatch(name):
        return "title: " + str(s.get("title") or s.get("index"))
    return name


def matched_steps(a: list[StepRecord], b: list[StepRecord]) -> list[tuple[StepRecord, StepRecord]]:
    """The steps both runs played, paired in order by their stable names."""
    ka, kb = [step_key(s) for s in a], [step_key(s) for s in b]
    pairs = []
    for block in SequenceMatcher(a=ka, b=kb, autojunk=False).get_matching_blocks():
        pairs += [(a[block.a + i], b[block.b + i]) for i in range(block.size)]
    return pairs


def step_differences(a: Side, b: Side) -> list[Difference]:
    matched = {step_key(x) for x, _ in matched_steps(a.steps, b.steps)}
    out = []
    for side, other in ((a, b), (b, a)):
        only = [_title(s) for s in side.steps if step_key(s) not in matched]
        if only:
            out.append(Difference("steps", f"only {side.label} plays " + ", ".join(f"“{t}”" for t in only)
                                  + f" (not in {other.label})."))
    for side, other in ((a, b), (b, a)):
        failed = {step_key(s): s for s in side.steps if s.get("outcome", "ok") != "ok"}
        for s in other.steps:
            if step_key(s) in failed and s.get("outcome", "ok") == "ok":
                bad = failed[step_key(s)]
                out.append(Difference("steps", f"step “{_title(bad)}” is {bad.get('outcome')} in {side.label}"
                                               f"{': ' + str(bad.get('detail')) if bad.get('detail') else ''}; "
                                               f"ok in {other.label}."))
    return out


# --- expectations --------------------------------------------------------------------------------------

def _verdicts(side: Side) -> dict[str, tuple[str, str]]:
    """name -> (status, about)."""
    out = {}
    for v in (side.result or {}).get("expectations") or []:
        if isinstance(v, dict) and v.get("name"):
            status = v.get("status") or ("held" if v.get("held") else "failed")
            out[str(v["name"])] = (str(status), str(v.get("about") or ""))
    return out


def verdict_differences(a: Side, b: Side) -> list[Difference]:
    out = []
    if (a.result is None) != (b.result is None):
        checked, unchecked = (a, b) if a.result is not None else (b, a)
        return [Difference("verdict", f"{checked.label}'s expectations were checked; {unchecked.label}'s were not "
                                      f"(it has no result.json: `lab up` does not judge).")]
    va, vb = _verdicts(a), _verdicts(b)
    for name in [n for n in va if n in vb]:
        (sa, about), (sb, _) = va[name], vb[name]
        if sa != sb:
            out.append(Difference("verdict", f"expectation {name} {sa} in {a.label}, {sb} in {b.label}"
                                             + (f": {about}" if about else "") + "."))
    for side, mine, theirs, other in ((a, va, vb, b), (b, vb, va, a)):
        only = [f"{n} ({mine[n][0]})" for n in mine if n not in theirs]
        if only:
            out.append(Difference("verdict", f"only {side.label} checks " + ", ".join(only)
                                  + f"; {other.label} has no such expectation."))
    return out


# --- socket states -------------------------------------------------------------------------------------

SockRole = tuple[str, str, int]  # host, peer, the server's port of the connection (or the socket's own port)


def _roles(side: Side) -> dict[SockRole, list[SocketTimeline]]:
    names = {ip: h for h, ip in side.traffic.hosts.items() if ip}
    server_port: dict[frozenset[tuple[str, int]], int] = {}
    for c in side.traffic.connections:
        server_port[frozenset({(c.key[0], c.key[1]), (c.key[2], c.key[3])})] = c.key[3]
    out: dict[SockRole, list[SocketTimeline]] = defaultdict(list)
    for s in side.timelines.sockets:
        sid = s.sock
        port = server_port.get(sid.conn_key(), sid.local_port)
        out[(sid.host, names.get(sid.peer_ip, sid.peer_ip), port)].append(s)
    return out


def _who(role: SockRole) -> str:
    host, peer, port = role
    if peer in ("0.0.0.0", "::", "*", ""):
        return f"{host}'s listening socket on port {port}"
    return f"{host}'s socket to {peer} (port {port})"


def _reached(socks: Iterable[SocketTimeline]) -> list[str]:
    seen: list[str] = []
    for s in socks:
        for iv in s.intervals:
            if iv.state not in seen:
                seen.append(iv.state)
    return seen


def _at_end(socks: Iterable[SocketTimeline]) -> list[str]:
    return sorted({s.intervals[-1].state for s in socks if s.intervals and s.intervals[-1].end is None})


def _end_words(states: list[str]) -> str:
    return f"still in {', '.join(states)}" if states else "gone"


def state_differences(a: Side, b: Side) -> list[Difference]:
    ra, rb = _roles(a), _roles(b)
    out = []
    for role in sorted(set(ra) | set(rb)):
        sa, sb = ra.get(role, []), rb.get(role, [])
        if not sa or not sb:
            has = a if sa else b
            other = b if sa else a
            out.append(Difference("state", f"{_who(role)} exists only in {has.label} (states "
                                           f"{' → '.join(_reached(sa or sb))}); {other.label} has none."))
            continue
        xa, xb = _reached(sa), _reached(sb)
        for side, mine, theirs, other in ((a, xa, xb, b), (b, xb, xa, a)):
            extra = [s for s in mine if s not in theirs]
            if extra:
                out.append(Difference("state", f"{_who(role)} reaches {', '.join(extra)} in {side.label}; in "
                                               f"{other.label} it never does."))
        ea, eb = _at_end(sa), _at_end(sb)
        if ea != eb:
            out.append(Difference("state", f"at the end of the run {_who(role)} is {_end_words(ea)} in {a.label}, "
                                           f"{_end_words(eb)} in {b.label}."))
    return out


def machine_differences(a: Side, b: Side) -> list[Difference]:
    """The machine was short of CPU during one run's story and not the other's: that run's timings may be the
    machine's. Said only when both runs recorded it."""
    pa, pb = cpu_pressure(a.steps), cpu_pressure(b.steps)
    if pa is None or pb is None or pa.short == pb.short:
        return []
    short, other, ps, po = (a, b, pa, pb) if pa.short else (b, a, pb, pa)
    return [Difference("machine", f"the machine was short of CPU during {short.label}'s story ({ps.describe()}), "
                                  f"not during {other.label}'s ({po.share:.0%}): {short.label}'s timings may be the "
                                  "machine's, not TCP's.")]


def differences(a: Side, b: Side) -> list[Difference]:
    """Everything that differs, the wire first (what a person sees in the ladders), then states, timings, the
    machine they were measured on, steps and verdicts."""
    return (packet_differences(a, b) + state_differences(a, b) + timing_differences(a, b)
            + machine_differences(a, b) + step_differences(a, b) + verdict_differences(a, b))
