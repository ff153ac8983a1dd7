"""The facts a report shows of a fixed run (tests/data/report_run: three pcap formats, frames of every
kind the readers meet) are the ones it showed when that run was made: every packet with its flags,
seq/ack, times, options, payload and place, the connections, the derived socket states, every
expectation's verdict, and the packet rows and arrows of report.html; every capture's copy of each packet. ``facts.json`` was written by
the readers as they were before the bulk decoder (``python tests/unit/test_report_facts.py`` writes it
again, with whatever tcplab is on the path)."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

RUN = Path(__file__).resolve().parents[1] / "data" / "report_run"
GOLDEN = RUN / "facts.json"


def facts(run: Path) -> dict[str, Any]:
    from tcplab.analysis.expectations import evaluate
    from tcplab.analysis.packets import load_traffic
    from tcplab.observe.timewait import run_records
    from tcplab.report import write_report

    traffic = load_traffic(run)
    packets = [[p.n, p.capture, p.frame, repr(p.ts), p.tcp.src, p.tcp.dst, p.tcp.sport, p.tcp.dport, p.tcp.seq,
                p.tcp.ack, p.flags, p.tcp.win, p.tcp.ttl, p.tcp.ip_id, repr(p.tcp.options), p.tcp.payload.hex(),
                p.tcp.checksum, p.rel_seq, p.rel_ack, repr(p.rel_time), p.probe, p.conn.name if p.conn else None,
                p.label(), p.tcpdump_line(), p.where(), p.journey(), p.lost_at,
                [[c.capture, c.host, c.frame, repr(c.tcp.ts), c.tcp.ttl, c.tcp.payload == p.tcp.payload]
                 for c in p.copies]] for p in traffic.packets]
    conns = [[c.name, len(c.packets), sorted(c.isn.items())] for c in traffic.connections]
    verdicts = [[v.name, v.kind, v.status, v.expected, v.seen, v.where, v.message, repr(v.time), v.note]
                for v in evaluate(run).verdicts]
    transitions = [json.loads(json.dumps(r, sort_keys=True)) for r in run_records(run)]
    html = write_report(run).read_text()
    rows = re.findall(r'<tr id="pkt-\d+".*?</tr>', html, re.S)
    arrows = re.findall(r'<g class="pkt.*?</g>', html, re.S)
    return {"packets": packets, "connections": conns, "verdicts": verdicts, "transitions": transitions,
            "report_rows": rows, "report_arrows": arrows}


def copy_run(dest: Path) -> Path:
    run = dest / "report_run"
    shutil.copytree(RUN, run, ignore=shutil.ignore_patterns("facts.json", "make.py", "report.html"))
    return run


def test_the_report_of_the_fixed_run_shows_the_same_facts(tmp_path: Path) -> None:
    got = json.loads(json.dumps(facts(copy_run(tmp_path))))
    want = json.loads(GOLDEN.read_text())
    assert len(got["packets"]) == 20  # every lab host's packets once, the stranger's from the server's capture
    for key in want:
        assert got[key] == want[key], key


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(facts(copy_run(Path(tmp))), indent=1) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
