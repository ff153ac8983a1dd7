"""The SVG builders: ladder (arrows, folding, gaps, steps, escaping) and socket timeline bars."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tcplab.analysis.packets import load_traffic
from tcplab.analysis.timeline import build_timelines
from tcplab.report.ladder import (FoldRow, GapRow, LadderOptions, PacketRow, StepRow, build_ladder, host_order,
                                  plan_rows, select_packets)
from tcplab.report.timechart import timeline_svg

from .test_report_synth import HOSTS, T0, A, P, S, Wire, write_closewait_run

NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # well-formed XML, or this raises


def _pkts(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter("{http://www.w3.org/2000/svg}g") if "pkt" in (g.get("class") or "").split()]


def _steps(rd: Path) -> list[dict]:
    return [json.loads(x) for x in (rd / "steps.jsonl").read_text().splitlines()]


def test_one_arrow_per_packet_with_tcpdump_labels_and_tooltips(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path)
    traffic = load_traffic(rd)
    ladder = build_ladder(traffic, _steps(rd))
    root = _parse(ladder.svg)
    pkts = _pkts(root)
    assert len(pkts) == len(traffic.packets) == 11
    labels = [g.find("s:a/s:text", NS).text for g in pkts]
    assert "[F.] seq 1, ack 1, win 256" in labels and "[R.] seq 2, ack 1, win 0" in labels
    tips = [g.find("s:title", NS).text for g in pkts]
    assert all("Flags [" in t for t in tips)
    fin = next(g for g in pkts if "fin" in g.get("class"))
    assert fin.find("s:a", NS).get("href") == f"#pkt-{fin.get('data-n')}"
    # arrows go from the sender's lifeline to the receiver's: win -> server for the FIN
    xs = {h: None for h in HOSTS}
    for t in root.findall("s:text", NS):
        if t.get("class") == "host":
            xs[t.text] = float(t.get("x"))
    line = fin.find("s:a/s:line[@class='arrow']", NS)
    assert (float(line.get("x1")), float(line.get("x2"))) == (xs["win"], xs["server"])


def test_idle_gap_is_folded_with_its_length(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, windows=True)
    ladder = build_ladder(load_traffic(rd), _steps(rd))
    assert len(ladder.gaps) == 1  # from the kernel's ack of the FIN to the RST
    assert ladder.gaps[0].seconds == pytest.approx(120.002 - 0.0003, abs=1e-5)
    texts = [t.text for t in _parse(ladder.svg).iter("{http://www.w3.org/2000/svg}text")]
    assert "120.002 s" in texts
    # steps sit in time order among the packets, the gap right before the RST
    kinds = [type(r).__name__ for r in ladder.rows]
    assert kinds.index("GapRow") == len(kinds) - 3 and kinds[-2] == "PacketRow" and kinds[-1] == "StepRow"


def test_many_packets_fold_the_middle_of_each_connection(tmp_path: Path) -> None:
    w = Wire(HOSTS)
    w.send(T0, "linux", "server", 40000, 8000, 0, 0, S, 64240)
    w.send(T0 + 1e-5, "server", "linux", 8000, 40000, 0, 1, S | A, 65160)
    for i in range(10_000):
        w.send(T0 + 1e-3 + i * 1e-5, "linux", "server", 40000, 8000, 1 + i * 10, 1, P | A, 63, payload=b"x" * 10)
    rd = tmp_path / "run"
    w.write(rd / "capture")
    (rd / "run.json").write_text(json.dumps({"hosts": HOSTS}))
    traffic = load_traffic(rd)
    opts = LadderOptions(head=30, tail=5, budget=1000, gap=1.0)
    ladder = build_ladder(traffic, [], opts)
    assert len(ladder.drawn) == 35 and len(_pkts(_parse(ladder.svg))) == 35
    folds = [r for r in ladder.rows if isinstance(r, FoldRow)]
    assert len(folds) == 1 and folds[0].count == 10_002 - 35 == ladder.folded
    assert folds[0].first == 31 and folds[0].last == 10_002 - 5
    fold_text = [t.text for t in _parse(ladder.svg).iter("{http://www.w3.org/2000/svg}text")
                 if t.get("class") == "foldtext"]
    assert fold_text and "9,967 packets not drawn" in fold_text[0]


def test_budget_caps_arrows_across_connections(tmp_path: Path) -> None:
    w = Wire(HOSTS)
    for c in range(50):
        for i in range(10):
            w.send(T0 + c * 0.01 + i * 1e-4, "linux", "server", 30000 + c, 8000, i, 0, S if i == 0 else A, 100)
    rd = tmp_path / "run"
    w.write(rd / "capture")
    (rd / "run.json").write_text(json.dumps({"hosts": HOSTS}))
    traffic = load_traffic(rd)
    keep = select_packets(traffic, LadderOptions(head=40, tail=10, budget=120))
    assert len(keep) == 120
    # the earliest connections are drawn whole, the rest folded
    assert keep == {p.n for c in traffic.connections[:12] for p in c.packets}


def test_plan_rows_puts_steps_before_later_packets_and_splits_folds() -> None:
    class Pk:  # the few attributes plan_rows reads
        def __init__(self, n: int, ts: float) -> None:
            self.n, self.ts, self.conn = n, ts, None

    pk = [Pk(i, float(i)) for i in range(1, 7)]
    rows = plan_rows(pk, keep={1, 6}, steps=[{"start": 3.5, "index": 0, "title": "x"}], gap=10.0)
    assert [type(r).__name__ for r in rows] == ["PacketRow", "FoldRow", "StepRow", "FoldRow", "PacketRow"]
    assert [r.count for r in rows if isinstance(r, FoldRow)] == [2, 2]
    rows = plan_rows(pk[:2], keep={1, 2}, steps=[{"start": 9.0, "index": 1, "title": "late"}], gap=0.5)
    assert [type(r) for r in rows] == [PacketRow, GapRow, PacketRow, StepRow]


def test_everything_from_the_run_is_escaped_in_the_svg(tmp_path: Path) -> None:
    evil = {"<b>srv</b>": "10.77.0.2", "l\"inux": "10.77.0.3", "<script>x</script>": "10.77.0.4"}
    rd = write_closewait_run(tmp_path, hosts=evil)
    steps = [{"start": T0 + 0.01, "index": 0, "title": "<img src=x onerror=alert(1)>"}]
    traffic = load_traffic(rd)
    markup = str(build_ladder(traffic, steps).svg)
    assert "<script>" not in markup and "<img" not in markup and "<b>" not in markup
    root = _parse(markup)  # still well-formed: the quote in a name did not break an attribute
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "<script>x</script>" in texts and "step 0: <img src=x onerror=alert(1)>" in texts
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    trans = [json.loads(x) for x in (rd / "sockets" / "transitions.jsonl").read_text().splitlines()]
    tl = build_timelines(trans, snaps, traffic.hosts)
    names = {ip: h for h, ip in evil.items()}
    chart, _ = timeline_svg(tl, T0, [("<i>snap</i>", T0 + 1)], names)
    assert "<i>" not in str(chart) and "<script>" not in str(chart)
    _parse(chart)


def test_timeline_has_a_bar_per_interval_and_marks_open_ones(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path, windows=False)
    traffic = load_traffic(rd)
    snaps = json.loads((rd / "sockets" / "snapshots.json").read_text())
    trans = [json.loads(x) for x in (rd / "sockets" / "transitions.jsonl").read_text().splitlines()]
    tl = build_timelines(trans, snaps, traffic.hosts, T0 + 10)
    chart, left_out = timeline_svg(tl, T0, [(n, s["time"]) for n, s in snaps.items()],
                                   {ip: h for h, ip in HOSTS.items()})
    root = _parse(chart)
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if "bar" in (r.get("class") or "").split()]
    assert len(bars) == sum(len(s.intervals) for s in tl.sockets) and left_out == 0
    cw = [b for b in bars if "s-close-wait" in b.get("class")]
    assert len(cw) == 1 and "open" in cw[0].get("class")
    assert all(float(b.get("width")) >= 2 for b in bars)
    # limited number of sockets: the rest are counted, not drawn
    _, left_out = timeline_svg(tl, T0, [], {}, max_sockets=2)
    assert left_out == len(tl.sockets) - 2


def test_busiest_host_is_the_middle_column(tmp_path: Path) -> None:
    traffic = load_traffic(write_closewait_run(tmp_path))
    assert host_order(traffic) == ["linux", "server", "win"]
