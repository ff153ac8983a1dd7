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
    return [[p.capture, p.frame, repr(p.ts), p.tcp, p.src_host, p.dst_host,
             [(c.capture, c.host, c.frame, c.tcp) for c in p.copies]] for p in packets]


def plainly(run: Path) -> list[Any]:
    """The packets with their copies as the rule says, read the plain way: every frame of every capture
    decoded, each copy kept or not by observe.merge.keeps_copy (with the signatures each host sent), then
    each copy not kept joined to the kept packet of its signature seen nearest in time (within
    COPY_WINDOW) that has no copy from its capture yet, the captures in turn."""
    from tcplab.analysis import packets as pk
    from tcplab.observe.merge import keeps_copy
    from tcplab.rundir import RunDir
    from tcplab.runfiles import run_info
    from tcplab.wire import decode_tcp, frame_signature, read_pcap_file

    rd = RunDir(run)
    info = run_info.read(rd)
    hosts = dict(info.get("hosts") or {})
    ip_host = {ip: h for h, ip in hosts.items() if ip}
    for h, by_net in (info.get("addresses") or {}).items():
        for ip in by_net.values():
            ip_host.setdefault(ip, h)
    captures = {h: pk.host_captures(rd, h) for h in hosts}
    captured = {h for h, files in captures.items() if files}
    copies = [(host, name, t, frame_signature(raw.data)) for host, files in captures.items() for name, path in files
              for raw in read_pcap_file(str(path)) if (t := decode_tcp(raw)) is not None]
    sent: dict[str, set[bytes | None]] = {}
    for host, _, t, sig in copies:
        if ip_host.get(t.src) == host:
            sent.setdefault(host, set()).add(sig)
    kept: list[tuple[Any, bytes | None]] = []
    others = []
    for host, name, t, sig in copies:
        if keeps_copy(host, ip_host.get(t.src), ip_host.get(t.dst), captured, sent, sig):  # type: ignore[arg-type]
            kept.append((pk.Packet(0, t, ip_host.get(t.src), ip_host.get(t.dst), name, t.index,
                                   copies=[pk.Copy(name, host, t.index, t)]), sig))
        else:
            others.append((host, name, t, sig))
    kept.sort(key=lambda k: k[0].ts)
    for host, name, t, sig in others:
        near = [p for p, s in kept if s == sig and abs(p.ts - t.ts) <= pk.COPY_WINDOW
                and name not in {c.capture for c in p.copies}]
        if near:
            best = min(near, key=lambda p: abs(p.ts - t.ts))
            best.copies = sorted([*best.copies, pk.Copy(name, host, t.index, t)], key=lambda c: c.tcp.ts)
    return [p for p, _ in kept]


def test_the_packets_and_their_copies_are_the_rules_read_the_plain_way(tmp_path: Path) -> None:
    """load_traffic (each capture read twice, copies joined as they are read, a copy like its packet but for
    its time kept as its time) against :func:`plainly`: the fixed run; runs through a router (its TTL, an MSS
    it clamped, copies that never left it); a run through a NAT box whose RST was made on the way, so its
    receiver's copy is kept although the sender has a capture, and the copies of it join it after."""
    from tcplab.analysis.packets import load_traffic

    from .test_explainers_flood_nat import nat_run
    from .test_router_hops import write_run

    (tmp_path / "hops").mkdir()
    (tmp_path / "nat").mkdir()
    runs = [copy_run(tmp_path), write_run(tmp_path / "hops", resent=2), nat_run(tmp_path / "nat")]
    for run in runs:
        got = load_traffic(run).packets
        assert copies_of(got) == copies_of(plainly(run)), run
    hops, nat = load_traffic(runs[1]).packets, load_traffic(runs[2]).packets
    assert any(c.tcp.ttl != p.tcp.ttl for p in hops for c in p.copies)  # a router's copies differ from the packet
    assert any(p.lost_at == "router" for p in hops)
    rewritten = [p for p in nat if p.capture == "client" and p.src_host == "server"]  # kept from the receiver
    assert [p.flags for p in rewritten] == ["S.", "P.", "R"]
    assert [c.capture for c in rewritten[-1].copies] == ["nat", "client"]  # the box's RST, seen where it was made


def test_a_run_on_one_network_joins_the_copies_when_a_reader_first_asks(tmp_path: Path) -> None:
    """No capture of the fixed run holds a packet neither from nor to its host: its packets have no hops and
    none was lost on the way without their copies read, and the first ask for one's copies joins them all,
    as the rule says."""
    from tcplab.analysis.packets import load_traffic

    run = copy_run(tmp_path)
    packets = load_traffic(run).packets
    joiner = packets[0].joiner
    assert joiner is not None and joiner.made is not None
    assert not any(p._copies or p.hops() or p.lost_at for p in packets)
    assert copies_of(packets) == copies_of(plainly(run))
    assert joiner.made is None and sum(len(p._copies) for p in packets) > len(packets)


def test_released_packets_are_freed_with_no_collection(tmp_path: Path) -> None:
    """Traffic.release leaves no cycle among a run's packets, connections and the joiner of their copies."""
    import gc
    import weakref

    from tcplab.analysis.packets import load_traffic

    traffic = load_traffic(copy_run(tmp_path))
    assert traffic.packets[0].joiner is not None
    gone = weakref.ref(traffic.packets[0].joiner)
    was = gc.isenabled()
    gc.disable()
    try:
        traffic.release()
        del traffic
        assert gone() is None
    finally:
        if was:
            gc.enable()


def test_time_waits_derivation_reads_the_segments_the_packets_reading_kept(tmp_path: Path) -> None:
    """A run without derived TIME_WAIT records: the report's reading of the packets keeps each capture's SYN,
    FIN and RST segments, the same as reading them again, and the derivation from them is the same."""
    from tcplab.analysis.packets import load_traffic
    from tcplab.observe import timewait
    from tcplab.rundir import RunDir
    from tcplab.wire import FIN, RST, SYN, read_tcp

    run = copy_run(tmp_path)
    rd = RunDir(run)
    assert timewait.derives(timewait.read_records(rd))
    kept = load_traffic(run, syn_fin_rst=True).syn_fin_rst
    assert kept is not None and sorted(kept) == ["linux", "server", "win"]
    for name, segments in kept.items():
        with open(rd.pcap(name), "rb") as f:
            assert segments == list(read_tcp(f, flags=SYN | FIN | RST)) != []
    derived = timewait.run_records(rd, kept)
    assert derived == timewait.run_records(rd) and any(timewait.is_derived(r) for r in derived)
    assert load_traffic(run).syn_fin_rst is None
