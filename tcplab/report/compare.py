"""Two runs side by side in one self-contained HTML page: ``lab compare RUN_A RUN_B``.

The ladders line up on the steps both runs played (room is added above a
step in the ladder that reaches it sooner), the socket timelines share one
time axis (seconds from each run's first packet), both runs' expectations are
listed, and :mod:`tcplab.report.differences` says what differs. Like the
run's report, the page fetches nothing and runs no script (its CSP says so),
and everything from the runs is escaped (Jinja2's autoescape, :mod:`.svg`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..analysis.timeline import Timelines, build_timelines, snapshot_order
from ..rundir import RunDir
from ..wire import RST
from . import _asset, _env, _hash
from .differences import Difference, Side, differences, matched_steps
from .gather import RunData, gather
from .ladder import LadderOptions, PacketRow, Row, StepRow, host_order, ladder_svg, plan_rows, row_height, \
    select_packets
from .page import run_end, summary, utc
from .timechart import timeline_svg


LADDER_COL = 200  # narrower than a report's: two ladders share the page's width


@dataclass
class Column:
    """One run's half of the page."""
    data: RunData
    side: Side
    t0: float
    rows: list[Row]
    snaps: list[tuple[str, float]]

    @property
    def window(self) -> tuple[float, float]:
        """The run's observed time, in seconds from its first packet."""
        tl = self.side.timelines
        if not tl.sockets:  # no chart: nothing to stretch the other's axis to
            return 0.0, 0.0
        starts = [iv.start for s in tl.sockets for iv in s.intervals] + [t for _, t in self.snaps]
        return min([tl.start, *starts]) - self.t0, tl.end - self.t0


def column(data: RunData, label: str, opts: LadderOptions) -> Column:
    traffic = data.traffic
    end = run_end(data)
    resets = [(p.ts, p.tcp.src, p.tcp.sport, p.tcp.dst, p.tcp.dport) for p in traffic.packets if p.tcp.flags & RST]
    timelines: Timelines = build_timelines(data.transitions, data.snapshots,
                                           traffic.hosts or dict(data.info.get("hosts") or {}), end, resets)
    t0 = traffic.start if traffic.packets else (timelines.start if timelines.sockets else end)
    rows = plan_rows(traffic.packets, select_packets(traffic, opts), data.steps, opts.gap)
    snaps = [(n, float(s.get("time") or 0.0)) for n, s in snapshot_order(data.snapshots)]
    return Column(data, Side(label, traffic, timelines, data.steps, data.result), t0, rows, snaps)


def align(a: Column, b: Column) -> tuple[dict[int, float], dict[int, float]]:
    """Room to add above rows of each ladder (by row index) so that the steps both played start level."""
    def step_rows(c: Column) -> dict[int, int]:
        return {r.index: i for i, r in enumerate(c.rows) if isinstance(r, StepRow)}

    ra, rb = step_rows(a), step_rows(b)
    pad_a: dict[int, float] = {}
    pad_b: dict[int, float] = {}
    ya = yb = 0.0  # the top of row ia / ib, pads included
    ia = ib = 0
    for sa, sb in matched_steps(a.side.steps, b.side.steps):
        ja, jb = ra.get(int(sa["index"])), rb.get(int(sb["index"]))
        if ja is None or jb is None or ja < ia or jb < ib:
            continue
        ya += sum(row_height(r) for r in a.rows[ia:ja])
        yb += sum(row_height(r) for r in b.rows[ib:jb])
        ia, ib = ja, jb
        if ya < yb:
            pad_a[ja] = yb - ya
        elif yb < ya:
            pad_b[jb] = ya - yb
        ya = yb = max(ya, yb)
    return pad_a, pad_b


def _held_notes(c: Column, kind: str, where: dict[str, int]) -> dict[int, str]:
    """Key -> the ``about`` of each expectation of ``kind`` that held where ``where`` says (its place in the
    run: a packet's file and frame, a snapshot's table) is that key."""
    notes: dict[int, list[str]] = {}
    for v in (c.data.result or {}).get("expectations") or []:
        if not isinstance(v, dict) or v.get("kind") != kind:
            continue
        if (v.get("status") or ("held" if v.get("held") else "")) != "held":
            continue
        key = where.get(str(v.get("where") or ""))
        if key is not None:
            notes.setdefault(key, []).append(f"✓ {v.get('about') or v.get('name')}")
    return {k: "; ".join(words) for k, words in notes.items()}


def packet_notes(c: Column) -> dict[int, str]:
    """Packet number -> what the expectations that held on that packet say."""
    return _held_notes(c, "packet", {p.where(): p.n for r in c.rows if isinstance(r, PacketRow) for p in [r.packet]})


def step_notes(c: Column) -> dict[int, str]:
    """Snapshot step index -> what the state expectations that held on that snapshot's tables say."""
    rd, hosts = c.data.rd, list(c.data.traffic.hosts)
    where = {rd.table(h, str(s.get("name")), tool).relative_to(rd.path).as_posix(): int(s["index"])
             for s in c.data.steps if s.get("kind") == "snapshot" and s.get("name")
             for h in hosts for tool in ("netstat", "ss")}
    return _held_notes(c, "state", where)


def labels(a: RunData, b: RunData) -> tuple[str, str]:
    """What the page and the differences call the runs: their labs' names, or A and B for two runs of one lab."""
    if a.name != b.name:
        return a.name, b.name
    return "A", "B"


def compare_context(a: RunData, b: RunData, opts: LadderOptions | None = None) -> dict[str, Any]:
    opts = opts or LadderOptions()
    la, lb = labels(a, b)
    ca, cb = column(a, la, opts), column(b, lb, opts)
    hosts = host_order(a.traffic)
    hosts += [h for h in host_order(b.traffic) if h not in hosts]
    pads = align(ca, cb)
    wa, wb = ca.window, cb.window
    window = (min(wa[0], wb[0], 0.0), max(wa[1], wb[1]))
    notes = [packet_notes(ca), packet_notes(cb)]
    at_steps = [step_notes(ca), step_notes(cb)]
    room = any(notes) or any(at_steps)  # both ladders keep room for notes, or neither: one width, one scale
    cols = []
    for c, pad, prefix, note, at_step in ((ca, pads[0], "a-", notes[0], at_steps[0]),
                                          (cb, pads[1], "b-", notes[1], at_steps[1])):
        traffic = c.data.traffic
        names = {ip: h for h, ip in (traffic.hosts or {}).items() if ip}
        chart = (timeline_svg(c.side.timelines, c.t0, c.snaps, names, window=window)[0]
                 if c.side.timelines.sockets else Markup(""))
        drawn = sum(1 for r in c.rows if isinstance(r, PacketRow))
        title = (c.side.label if c.side.label == c.data.name
                 else f"{c.side.label}: {c.data.name} ({c.data.rd.path.name})")
        cols.append({"id": prefix.rstrip("-"), "label": c.side.label, "title": title, "s": summary(c.data),
                     "path": _shown(c.data.rd.path), "t0_utc": utc(c.t0) if traffic.packets else "",
                     "ladder": ladder_svg(c.rows, hosts, c.t0, traffic.hosts, pad, prefix, note if room else None,
                                          col=LADDER_COL, step_notes=at_step)
                     if traffic.packets else Markup(""),
                     "drawn": drawn, "total": len(traffic.packets), "timeline": chart,
                     "steps": [{"index": s.get("index"), "title": str(s.get("title") or s.get("name") or ""),
                                "outcome": str(s.get("outcome") or "")} for s in c.data.steps]})
    diffs: list[Difference] = differences(ca.side, cb.side)
    return {"a": cols[0], "b": cols[1], "cols": cols, "differences": diffs, "written": utc(time.time()),
            "window": tuple(f"{round(w, 3) + 0.0:g}" for w in window)}  # + 0.0: no "-0"


def _shown(path: Path) -> str:
    rel = os.path.relpath(path)
    return str(path.resolve()) if rel.startswith("..") else rel


def content_security_policy(css: str) -> str:
    """Nothing from the network, no script at all; only the page's own style."""
    return (f"default-src 'none'; style-src {_hash(css)}; script-src 'none'; img-src data:; base-uri 'none'; "
            "form-action 'none'")


def render_compare(a: RunData, b: RunData, opts: LadderOptions | None = None) -> str:
    return _render(compare_context(a, b, opts))


def _render(ctx: dict[str, Any]) -> str:
    css = _asset("report.css") + _asset("compare.css")
    ctx.update(css=Markup(css), csp=content_security_policy(css))
    return _env().get_template("compare.html.j2").render(**ctx)


def write_compare(run_a: str | Path, run_b: str | Path, out: str | Path) -> tuple[Path, list[Difference]]:
    """Write the page comparing two run directories to ``out``; returns its path and what differs. Needs no
    Docker engine."""
    ctx = compare_context(gather(RunDir(run_a)), gather(RunDir(run_b)))
    html = _render(ctx)
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path, list(ctx["differences"])
