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


def copies_of(packets: list[Any]) -> list[Any]:
    return [[p.n if p.n else None, p.capture, p.frame, repr(p.ts), p.tcp, p.src_host, p.dst_host,
             [(c.capture, c.host, c.frame, c.tcp) for c in p.copies]] for p in packets]


def test_reading_twice_and_reading_all_at_once_join_the_same_copies(tmp_path: Path) -> None:
    """load_traffic's usual path (two readings, copies joined as they are read) against the one it falls back
    to: the fixed run, and a run through a NAT box whose RST was made on the way (so its receiver's copy is
    kept, which only the second path does)."""
    from tcplab.analysis import packets as pk
    from tcplab.rundir import RunDir
    from tcplab.runfiles import run_info

    from .test_explainers_flood_nat import nat_run

    for run, two_passes in ((copy_run(tmp_path), True), (nat_run(tmp_path), False)):
        rd = RunDir(run)
        info = run_info.read(rd)
        hosts = dict(info.get("hosts") or {})
        ip_host = {ip: h for h, ip in hosts.items() if ip}
        for h, by_net in (info.get("addresses") or {}).items():
            for ip in by_net.values():
                ip_host.setdefault(ip, h)
        captures = {h: pk.host_captures(rd, h) for h in hosts}
        captured = {h for h, files in captures.items() if files}
        twice = pk._two_passes(captures, ip_host, captured)
        once = pk._all_at_once(hosts, captures, ip_host, captured)
        assert (twice is not None) == two_passes
        if twice is not None:
            assert copies_of(twice) == copies_of(once)
        pk.group_connections(once)  # numbered as load_traffic numbers them
        assert copies_of(pk.load_traffic(run).packets) == copies_of(once)
