"""The ladder diagram: one vertical line per host, one arrow per packet, in time order.

Planning and drawing are separate so both can be tested: :func:`plan_rows`
decides what is drawn (which packets, where steps fall, which stretches are
folded), :func:`ladder_svg` draws the rows.

Readable at any size: each connection keeps its first ``head`` and last
``tail`` packets (the handshake and the close are what a person looks for),
at most ``budget`` arrows in all; the packets in between become one fold row
with their count. A stretch with no packets longer than ``gap`` seconds is
folded too, its length written on it ("120.002 s"), so two minutes of silence
do not push the RST off the page.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

from markupsafe import Markup

from ..analysis.packets import Packet, Traffic
from ..runfiles.impaired import Impaired
from ..runfiles.retransmits import RetransmitRecord
from ..runfiles.steps import StepRecord
from ..wire import ACK, FIN, RST, SYN
from .svg import el, svg, text, title


@dataclass(frozen=True)
class LadderOptions:
    head: int = 40  # first packets of each connection drawn
    tail: int = 12  # last packets of each connection drawn
    budget: int = 1500  # most arrows in one diagram
    gap: float = 1.0  # seconds without packets folded into one row


@dataclass
class PacketRow:
    packet: Packet


@dataclass
class StepRow:
    ts: float
    index: int
    title: str
    outcome: str = "ok"


@dataclass
class FoldRow:
    """Packets not drawn: how many, over which time, of which connections."""
    count: int = 0
    start: float = 0.0
    end: float = 0.0
    conns: Counter[str] = field(default_factory=Counter)
    first: int = 0  # packet numbers
    last: int = 0


@dataclass
class GapRow:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


Row = Union[PacketRow, StepRow, FoldRow, GapRow]


def select_packets(traffic: Traffic, opts: LadderOptions) -> set[int]:
    """Numbers of the packets to draw: head and tail of each connection, earliest connections first."""
    keep: set[int] = set()
    for conn in traffic.connections:
        ps = conn.packets
        chosen = ps if len(ps) <= opts.head + opts.tail else ps[:opts.head] + ps[len(ps) - opts.tail:]
        room = opts.budget - len(keep)
        if room <= 0:
            break
        keep.update(p.n for p in chosen[:room])
    return keep


def plan_rows(packets: list[Packet], keep: set[int], steps: Iterable[Mapping[str, Any]], gap: float) -> list[Row]:
    """Rows in time order: packets drawn, folds of packets not drawn, steps, and idle gaps between packets."""
    step_rows = sorted((StepRow(float(s["start"]), int(s.get("index", 0)), str(s.get("title") or s.get("name") or ""),
                                str(s.get("outcome") or "ok")) for s in steps if "start" in s),
                       key=lambda r: (r.ts, r.index))
    rows: list[Row] = []
    fold: FoldRow | None = None
    si = 0
    prev_ts: float | None = None

    def flush() -> None:
        nonlocal fold
        if fold is not None:
            rows.append(fold)
            fold = None

    next_step = step_rows[0].ts if step_rows else math.inf
    for p in packets:  # once per packet of the run: the common case (folded, no step, no gap) comes first
        ts = p.ts
        if ts >= next_step:
            while si < len(step_rows) and step_rows[si].ts <= ts:
                flush()
                rows.append(step_rows[si])
                si += 1
            next_step = step_rows[si].ts if si < len(step_rows) else math.inf
        if prev_ts is not None and ts - prev_ts > gap:
            flush()
            rows.append(GapRow(prev_ts, ts))
        prev_ts = ts
        if p.n in keep:
            flush()
            rows.append(PacketRow(p))
            continue
        if fold is None:
            fold = FoldRow(start=ts, first=p.n)
        fold.count += 1
        fold.end = ts
        fold.last = p.n
        fold.conns[p.conn.name if p.conn else "?"] += 1
    flush()
    rows.extend(step_rows[si:])
    return rows


def host_order(traffic: Traffic) -> list[str]:
    """Columns: the lab's hosts (then any other address), the busiest host in the middle; when packets cross
    routers, the longest such path left to right (a router between the hosts it forwards for), the rest after."""
    names = list(traffic.hosts)
    # a name appears first with the first packet of a connection (all of its packets join the same two ends)
    firsts = [c.packets[0] for c in traffic.connections if c.packets]
    grouped = sum(len(c.packets) for c in traffic.connections) == len(traffic.packets)
    for p in (sorted(firsts, key=lambda p: p.n) if grouped else traffic.packets):
        for h in (p.src_host or p.tcp.src, p.dst_host or p.tcp.dst):
            if h not in names:
                names.append(h)
    paths = [[p.src_host, *p.hops(), p.dst_host] for p in traffic.packets if p.hops()]
    if paths:
        longest = max(paths, key=len)
        path = [h for h in longest if h is not None]
        return path + [h for h in names if h not in path]
    degree: Counter[str] = Counter()
    for c in traffic.connections:
        for h in {c.client or c.key[0], c.server or c.key[2]}:
            degree[h] += 1
    if len(names) < 3 or not degree:
        return names
    center = max(names, key=lambda h: (degree[h], -names.index(h)))
    others = [h for h in names if h != center]
    half = len(others) // 2
    return others[:half] + [center] + others[half:]


def packet_class(p: Packet) -> str:
    f = p.tcp.flags
    if f & RST:
        return "rst"
    if f & SYN:
        return "syn"
    if f & FIN:
        return "fin"
    if p.tcp.payload:
        return "data"
    return "ack" if f & ACK else "other"


# --- drawing ----------------------------------------------------------------

GUTTER = 120
COL = 300
MARGIN = 80
HEAD = 54
ROW_H = {PacketRow: 28, StepRow: 24, FoldRow: 34, GapRow: 34}
SLOPE = 9
NOTE_W = 380  # room right of the hosts for notes beside packets
NOTE_CHARS = 50


def row_height(row: Row) -> int:
    return ROW_H[type(row)]


def ladder_svg(rows: list[Row], hosts: list[str], t0: float, addresses: dict[str, str] | None = None,
               pad: Mapping[int, float] | None = None, prefix: str = "", notes: Mapping[int, str] | None = None,
               col: int = COL, step_notes: Mapping[int, str] | None = None,
               marks: Mapping[int, str] | None = None, resent: Mapping[int, str] | None = None) -> Markup:
    """The diagram as an inline SVG. Every packet is a ``<g class="pkt ...">`` with a tooltip (its tcpdump
    line) and a link to its row in the packet table (``#pkt-N``). ``pad`` adds room above rows (by their
    index: two ladders side by side line up on their shared steps); ``prefix`` starts every id and link,
    so that two ladders can share a page. ``notes``: words beside packets (by number), to the right of the
    hosts: what an expectation says about that packet (given, even empty, the room for them is kept: two
    ladders of one width); ``step_notes`` the same beside steps (by step index). ``col``: the room between two
    hosts. ``marks``: packets an impairment sidecar impaired (by number): what it did, drawn as a cross on the
    arrow. ``resent``: packets the sender's kernel retransmitted (by number, the tracer's words for it), drawn
    with a ↻ at their start."""
    addresses = addresses or {}
    pad = pad or {}
    xs = {h: GUTTER + MARGIN + i * col for i, h in enumerate(hosts)}
    width = GUTTER + 2 * MARGIN + max(0, len(hosts) - 1) * col
    right = width - 10
    if notes is not None:
        width += NOTE_W
    notes = notes or {}
    step_notes = step_notes or {}
    body: list[str] = [
        f'<defs><marker id="{prefix}ah" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="ahead"/></marker></defs>']
    for h, x in xs.items():
        body.append(text(x, 20, h, class_="host", text_anchor="middle"))
        if addresses.get(h):
            body.append(text(x, 36, addresses[h], class_="addr", text_anchor="middle"))
    y: float = HEAD
    items: list[str] = []
    for i, row in enumerate(rows):
        y += pad.get(i, 0.0)
        rh = ROW_H[type(row)]
        if isinstance(row, PacketRow):
            items.append(_arrow(row.packet, xs, y + 10, t0, prefix, (marks or {}).get(row.packet.n),
                                (resent or {}).get(row.packet.n)))
            if row.packet.n in notes:
                items.append(_note(notes[row.packet.n], right + 6, y + 14))
        elif isinstance(row, StepRow):
            items.append(el("g", el("line", x1=GUTTER - 6, y1=y + 12, x2=right, y2=y + 12, class_="stepline"),
                            text(GUTTER - 10, y + 16, f"{row.ts - t0:.6f}", class_="t", text_anchor="end"),
                            text(GUTTER + 4, y + 9, f"step {row.index}: {row.title}"
                                 + ("" if row.outcome == "ok" else f" ({row.outcome})"), class_="steptext"),
                            class_="step" + ("" if row.outcome == "ok" else " failed")))
            if row.index in step_notes:
                items.append(_note(step_notes[row.index], right + 6, y + 16))
        elif isinstance(row, FoldRow):
            top = ", ".join(f"{name}: {n}" for name, n in row.conns.most_common(3))
            more = f" and {len(row.conns) - 3} more connections" if len(row.conns) > 3 else ""
            label = (f"⋯ {row.count:,} packets not drawn (#{row.first}–#{row.last}, "
                     f"{row.end - row.start:.3f} s) — {top}{more}")
            items.append(el("g", title(label + ". Open the capture to see them."),
                            el("rect", x=GUTTER - 6, y=y + 4, width=right - GUTTER + 6, height=rh - 8, class_="foldbg"),
                            text(GUTTER + 4, y + rh / 2 + 4, label, class_="foldtext"), class_="fold"))
        else:
            zig = _zigzag(GUTTER - 6, right, y + 10) + _zigzag(GUTTER - 6, right, y + rh - 10)
            label = f"{row.seconds:.3f} s"
            items.append(el("g", title(f"{label} without packets"),
                            el("rect", x=GUTTER - 6, y=y + 10, width=right - GUTTER + 6, height=rh - 20,
                               class_="gapbg"),
                            zig, text((GUTTER + right) / 2, y + rh / 2 + 4, label, class_="gaptext",
                                      text_anchor="middle"),
                            class_="gap"))
        y += rh
    height = y + 20
    for x in xs.values():
        body.append(el("line", x1=x, y1=HEAD - 8, x2=x, y2=height - 10, class_="lifeline"))
    body.extend(items)
    return svg(width, height, body, class_="ladder", role="img", aria_label="ladder diagram")


def _note(words: str, x: float, y: float) -> str:
    shown = words if len(words) <= NOTE_CHARS else words[:NOTE_CHARS - 1] + "…"
    return el("g", title(words), text(x, y, shown, class_="enote"), class_="note")


def _arrow(p: Packet, xs: dict[str, int], y: float, t0: float, prefix: str = "", mark: str | None = None,
           again: str | None = None) -> str:
    """One packet: an arrow from its sender to its receiver, a dot on each router it crossed; one that never
    arrived ends at the last host it was seen on, with a cross; one its sender's kernel retransmitted (``again``:
    the tracer's words for it) has a ↻ at its start."""
    src = p.src_host or p.tcp.src
    dst = p.dst_host or p.tcp.dst
    lost = p.lost_at if p.lost_at in xs else None
    x1, x2 = xs[src], xs[lost or dst]
    cls = packet_class(p) + (" impaired" if mark else "") + (" lost" if lost else "") + (" resent" if again else "")
    mid = (x1 + x2) / 2
    journey = p.journey()
    tip = (f"#{p.n}  {p.rel_time:.6f} s  {p.tcpdump_line()}  ({p.where()})" + (f"  {journey}" if journey else "")
           + (f"  ✕ {mark}" if mark else "") + (f"  ↻ {again}" if again else ""))
    cross = text(x2 - (12 if x2 > x1 else -12), y + SLOPE + 4, "✕", class_="impair", text_anchor="middle") \
        if mark or lost else ""
    cycle = text(x1 + (12 if x2 > x1 else -12), y - 2, "↻", class_="resent", text_anchor="middle") if again else ""
    span = x2 - x1
    dots = "".join(el("circle", cx=xs[h], cy=y + SLOPE * (xs[h] - x1) / span, r=3, class_="hop")
                   for h in p.hops() if h in xs and span and h != lost)
    return el("g", title(tip), cross, cycle, dots,
              el("a", el("line", x1=x1, y1=y, x2=x2, y2=y + SLOPE, class_="hit"),
                 el("line", x1=x1, y1=y, x2=x2, y2=y + SLOPE, class_="arrow", marker_end=f"url(#{prefix}ah)"),
                 text(mid, y - 4, p.label(), class_="lbl", text_anchor="middle"),
                 href=f"#{prefix}pkt-{p.n}"),
              text(GUTTER - 10, y + 4, f"{p.ts - t0:.6f}", class_="t", text_anchor="end"),
              text(8, y + 4, f"#{p.n}", class_="n"),
              class_=f"pkt {cls}", id=f"{prefix}a-{p.n}", data_n=p.n)


def _zigzag(x1: float, x2: float, y: float, step: float = 12.0, amp: float = 3.0) -> str:
    pts = []
    x, up = x1, True
    while x < x2:
        pts.append(f"{x:.0f},{y - amp if up else y + amp:.0f}")
        x += step
        up = not up
    pts.append(f"{x2:.0f},{y:.0f}")
    return el("polyline", points=" ".join(pts), class_="zig")


@dataclass
class Ladder:
    svg: Markup
    rows: list[Row]
    drawn: list[Packet]
    total: int
    folded: int
    gaps: list[GapRow]


def impaired_packets(traffic: Traffic, drops: Iterable[Impaired]) -> dict[Impaired, int]:
    """The captured packet each impaired one is (its number): the same sequence number and flags, to or from
    the impairing host, closest in time (within 50 ms). A packet dropped on its way out of the host is in no
    capture: it is left out."""
    out: dict[Impaired, int] = {}
    for d in drops:
        near = [p for p in traffic.packets if p.tcp.seq == d.seq and p.flags == d.flags and abs(p.ts - d.ts) < 0.05
                and d.host in (p.src_host, p.dst_host)]
        if near:
            out[d] = min(near, key=lambda p: abs(p.ts - d.ts)).n
    return out


def retransmitted_packets(traffic: Traffic, records: Iterable[RetransmitRecord]) -> dict[int, str]:
    """The captured packet each of the tracer's retransmissions is (by number), with what to say of it: the
    sender's packet of that connection carrying data or a SYN, stamped by the capture at most 5 ms before the
    tracepoint fired (it fires once the copy is handed down)."""
    out: dict[int, str] = {}
    records = list(records)
    if not records:
        return out
    sent: dict[tuple[str, int, str, int], list[Packet]] = {}
    for p in traffic.packets:
        if p.tcp.payload or p.flags.startswith("S"):
            sent.setdefault((p.tcp.src, p.tcp.sport, p.tcp.dst, p.tcp.dport), []).append(p)
    for r in records:
        key = (str(r.get("saddr", "")), int(r.get("sport", 0)), str(r.get("daddr", "")), int(r.get("dport", 0)))
        near = [p for p in sent.get(key, []) if 0 <= r["ts"] - p.ts < 0.005 and p.n not in out]
        if near:
            out[max(near, key=lambda p: p.ts).n] = f"retransmitted by {r.get('host') or r.get('saddr')}'s kernel " \
                                                     f"({r.get('event', 'tcp_retransmit_skb')})"
    return out


def impair_marks(found: Mapping[Impaired, int]) -> dict[int, str]:
    """What the ladder says beside each impaired packet (by number)."""
    return {n: f"{d.action} by {d.host}'s impairment {d.rule}" for d, n in found.items()}


def build_ladder(traffic: Traffic, steps: list[StepRecord], opts: LadderOptions | None = None,
                 marks: Mapping[int, str] | None = None, resent: Mapping[int, str] | None = None) -> Ladder:
    opts = opts or LadderOptions()
    keep = select_packets(traffic, opts)
    rows = plan_rows(traffic.packets, keep, steps, opts.gap)
    hosts = host_order(traffic)
    drawn = [r.packet for r in rows if isinstance(r, PacketRow)]
    folded = sum(r.count for r in rows if isinstance(r, FoldRow))
    gaps = [r for r in rows if isinstance(r, GapRow)]
    return Ladder(ladder_svg(rows, hosts, traffic.start, traffic.hosts, marks=marks, resent=resent), rows, drawn,
                  len(traffic.packets), folded, gaps)
