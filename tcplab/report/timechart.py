"""Socket timelines as bars: for each connection, each end's TCP states over time.

The time axis is linear, on purpose: the point of the chart is that a
CLOSE_WAIT of two minutes *looks* two minutes long next to a handshake of
a millisecond (the ladder diagram is where short things get room). Every
bar carries its state, its bounds and its duration in a tooltip and, when
it fits, as text; the table under the chart lists them all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup

from ..analysis.explain import fmt_span
from ..analysis.timeline import Interval, SocketTimeline, Timelines
from .svg import el, svg, text, title


class TimeAxis:
    """Maps times in [start, end] linearly onto [x0, x0 + width]."""

    def __init__(self, start: float, end: float, x0: float, width: float) -> None:
        self.start, self.end, self.x0, self.width = start, max(end, start), x0, width
        span = self.end - start
        self.scale = width / span if span > 0 else 0.0

    def x(self, t: float) -> float:
        return self.x0 + (min(max(t, self.start), self.end) - self.start) * self.scale

    def ticks(self, t0: float, most: int = 8) -> list[float]:
        """Round times (relative to ``t0``: 0, 0.5, 1, 1.5 s...) inside the axis, at most ``most`` of them."""
        span = self.end - self.start
        if span <= 0:
            return [self.start]
        raw = span / most
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        first = math.ceil((self.start - t0) / step) * step
        out = []
        k = 0
        while first + k * step <= self.end - t0 + 1e-12:
            out.append(t0 + first + k * step)
            k += 1
        return out


LABEL_W = 250
CHART_W = 820
ROW = 22
GROUP_HEAD = 20
CHAR_W = 6.4


@dataclass
class Group:
    name: str
    sockets: list[SocketTimeline]


def group_by_connection(timelines: Timelines, names: dict[str, str]) -> list[Group]:
    groups: dict[frozenset[tuple[str, int]], Group] = {}
    for s in timelines.sockets:
        k = s.sock.conn_key()
        if k not in groups:
            a = f"{names.get(s.sock.local_ip, s.sock.local_ip)}:{s.sock.local_port}"
            b = f"{names.get(s.sock.peer_ip, s.sock.peer_ip)}:{s.sock.peer_port}"
            groups[k] = Group(f"{a} ↔ {b}", [])
        groups[k].sockets.append(s)
    return list(groups.values())


def timeline_svg(timelines: Timelines, t0: float, snapshots: list[tuple[str, float]], names: dict[str, str],
                 max_sockets: int = 200, window: tuple[float, float] | None = None) -> tuple[Markup, int]:
    """The chart and the number of sockets left out (beyond ``max_sockets``). ``window``: the axis's bounds,
    in seconds from ``t0`` (two runs' charts on one time axis), else what this run observed."""
    groups = group_by_connection(timelines, names)
    shown: list[Group] = []
    count = 0
    for g in groups:
        if count + len(g.sockets) > max_sockets:
            break
        shown.append(g)
        count += len(g.sockets)
    left_out = len(timelines.sockets) - count
    starts = [iv.start for g in shown for s in g.sockets for iv in s.intervals] + [t for _, t in snapshots]
    axis = (TimeAxis(t0 + window[0], t0 + window[1], LABEL_W, CHART_W) if window is not None
            else TimeAxis(min([timelines.start, *starts]), timelines.end, LABEL_W, CHART_W))
    width = LABEL_W + CHART_W + 30
    top = 44
    body: list[str] = []
    y = top
    rows: list[str] = []
    for g in shown:
        rows.append(text(6, y + 14, g.name, class_="conn"))
        y += GROUP_HEAD
        for s in g.sockets:
            who = f"{s.sock.host} {s.sock.local_ip}:{s.sock.local_port}"
            rows.append(text(14, y + 15, who, class_="sock"))
            for iv in s.intervals:
                rows.append(_bar(iv, axis, y, t0, timelines.end))
            y += ROW
        y += 6
    height = y + 28
    body.append(_axis(axis, t0, top, height))
    for i, (name, t) in enumerate(snapshots):
        x = axis.x(t)
        body.append(el("g", title(f"snapshot {name} at t = {t - t0:.6f} s"),
                       el("line", x1=x, y1=top - 4, x2=x, y2=height - 8, class_="snapline"),
                       _snap_label(x, 12 + 12 * (i % 2), name, width),
                       class_="snap"))
    body.extend(rows)
    return svg(width, height, body, class_="timeline", role="img", aria_label="socket timelines"), left_out


def _snap_label(x: float, y: float, name: str, width: float) -> str:
    """Right of its line, or left of it where it would run off the chart."""
    if x + 3 + len(name) * CHAR_W > width:
        return text(x - 3, y, name, class_="snaptext", text_anchor="end")
    return text(x + 3, y, name, class_="snaptext")


def _axis(axis: TimeAxis, t0: float, top: float, height: float) -> str:
    parts = [el("line", x1=axis.x0, y1=top - 6, x2=axis.x0 + axis.width, y2=top - 6, class_="axis")]
    for t in axis.ticks(t0):
        x = axis.x(t)
        rel = 0.0 if abs(t - t0) < 1e-9 else t - t0  # no "-0 s"
        parts.append(el("line", x1=x, y1=top - 9, x2=x, y2=height - 8, class_="gridline"))
        parts.append(text(x, height - 2, f"{rel:g} s", class_="tick", text_anchor="middle"))
    return "".join(parts)


def _bar(iv: Interval, axis: TimeAxis, y: float, t0: float, end: float) -> str:
    x1 = axis.x(iv.start)
    x2 = axis.x(iv.end if iv.end is not None else end)
    w = max(2.0, x2 - x1)
    dur = iv.duration(end)
    label = iv.state + (" (orphaned, timewait)" if "orphaned" in iv.note else "")
    until = (f"to t = {iv.end - t0:.6f} s" if iv.end is not None else "still at the end of the run")
    tip = f"{label}: from t = {iv.start - t0:.6f} s {until} ({fmt_span(dur)}); {iv.source}"
    if iv.ended_by:
        tip += f"; ended by {iv.ended_by}"
    if iv.note:
        tip += f"; {iv.note}"
    shown = f"{label} {fmt_span(dur)}" + ("" if iv.end is not None else " →")
    parts = [title(tip), el("rect", x=x1, y=y + 3, width=w, height=ROW - 6, rx=3,
                            class_=f"bar s-{iv.state.lower().replace('_', '-')}" + ("" if iv.end is not None
                                                                                    else " open"))]
    if len(shown) * CHAR_W + 6 < w:
        parts.append(text(x1 + 4, y + 15, shown, class_="bartext"))
    elif len(iv.state) * CHAR_W + 6 < w:
        parts.append(text(x1 + 4, y + 15, iv.state, class_="bartext"))
    return el("g", *parts, class_="iv")
