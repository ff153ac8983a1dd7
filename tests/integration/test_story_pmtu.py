"""The pmtu-blackhole story on this kernel, run for real: a router whose link to the server has MTU 1400 drops the
ICMP "fragmentation needed" it should send, so the client's full-size segments are retransmitted and never cross
it; once the ICMP goes through the client cuts the segment to the path's MTU; a clamped connection never sends one
too big. One `lab run pmtu-blackhole` of the session (``shipped_run``, under a name and /24s of its own) serves
every test; its deliberate faults are in tests/data/library_faults.yaml (tests/integration/test_library.py)."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tcplab.analysis.packets import Packet, load_traffic
from tcplab.rundir import RunDir
from tcplab.runfiles import retransmits, steps
from tcplab.wire import read_pcap

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration

FULL = 1448  # a 1500-byte packet's data with the timestamp option
FITS = 1348  # what a 1400-byte packet carries


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "pmtu-blackhole")


def lift_time(story: StoryRun) -> float:
    (lift,) = [s for s in steps.read(RunDir(story.run_dir)) if s.get("name") == "lift-blackhole"]
    return float(lift["start"])


def to_server(story: StoryRun, port: int) -> list[Packet]:
    return [p for p in load_traffic(story.run_dir).packets
            if p.src_host == "client" and p.dst_host == "server" and p.tcp.dport == port]


def frag_needed(pcap: Any) -> list[tuple[float, int]]:
    """The ICMP 'fragmentation needed' messages of a capture: (time, the next-hop MTU they name)."""
    out = []
    with open(pcap, "rb") as f:
        for raw in read_pcap(f):
            d = raw.data
            if len(d) >= 14 + 28 and d[12:14] == b"\x08\x00" and d[14 + 9] == 1:
                icmp = 14 + (d[14] & 0x0F) * 4
                if d[icmp] == 3 and d[icmp + 1] == 4:
                    out.append((raw.ts, int.from_bytes(d[icmp + 6:icmp + 8], "big")))
    return out


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()


def test_the_full_size_segments_reach_the_router_and_never_leave_it_until_the_icmp_goes_through(
        story: StoryRun) -> None:
    lift = lift_time(story)
    before = [p for p in to_server(story, 8000) if p.ts < lift]
    big = [p for p in before if len(p.tcp.payload) > FITS]
    assert len(big) >= 4, [len(p.tcp.payload) for p in before]  # the first send and its retransmissions
    for p in big:  # each on the client's and the router's way in, on neither the router's way out nor the server
        assert [c.capture for c in p.copies] == ["client", "router"], (p.n, p.copies)
        assert p.lost_at == "router" and p.journey() == "never reached server: last seen on router"
    small = [p for p in before if 0 < len(p.tcp.payload) <= FITS]
    assert small and all(p.hops() == ["router"] and p.lost_at is None for p in small)  # the request that fits
    after = [p for p in to_server(story, 8000) if p.ts > lift and 0 < len(p.tcp.payload) <= FITS]
    assert after and after[0].rel_seq == 8 and len(after[0].tcp.payload) == FITS
    assert after[0].at("server") is not None


def test_the_router_sends_no_icmp_until_the_lift_then_names_the_mtu_of_its_link(story: StoryRun) -> None:
    lift = lift_time(story)
    capture = story.run_dir / "capture"
    seen = frag_needed(capture / "client.pcap")
    assert seen and all(ts > lift for ts, _ in seen), seen
    assert {mtu for _, mtu in seen} == {1400}
    assert all(ts > lift for ts, _ in frag_needed(capture / "router.pcap"))


def test_the_kernel_records_each_retransmission_of_the_lost_segment(story: StoryRun) -> None:
    rd = RunDir(story.run_dir)
    if not retransmits.exists(rd):
        pytest.fail("no sockets/retransmits.jsonl: the tracer did not watch retransmissions on this kernel")
    lift = lift_time(story)
    records = [r for r in retransmits.read(rd) if r.get("host") == "client" and r.get("dport") == 8000
               and r["ts"] < lift]
    lost = [p for p in to_server(story, 8000) if p.ts < lift and len(p.tcp.payload) == FULL]
    assert len(records) >= len(lost) >= 3, (records, [p.ts for p in lost])
    assert not [r for r in retransmits.read(rd) if r.get("dport") == 8001]  # the clamped connection: none


def test_the_clamp_rewrites_the_mss_on_the_router_and_its_request_crosses_at_once(story: StoryRun) -> None:
    (syn,) = [p for p in to_server(story, 8001) if p.flags == "S"]
    seen = {c.capture: c.tcp.option("mss") for c in syn.copies}
    assert seen == {"client": 1460, "router": 1460, "router.right": 1360, "server": 1360}
    data = [p for p in to_server(story, 8001) if p.tcp.payload]
    assert data and all(p.lost_at is None and p.at("server") is not None for p in data)


def test_the_report_draws_the_router_between_and_the_lost_segments_ending_there(story: StoryRun) -> None:
    html = (story.run_dir / "report.html").read_text()
    hosts = [html.index(f'class="host" text-anchor="middle">{h}<') for h in ("client", "router", "server")]
    assert hosts == sorted(hosts)
    # each lost full-size segment ends at the router (a retransmitted one is also marked resent)
    assert len(re.findall(r'class="pkt data lost( resent)?"', html)) >= 5 and 'class="hop"' in html
    assert "never reached server: last seen on router" in html


def test_the_report_explains_the_black_hole_with_this_runs_numbers_and_the_fixes(story: StoryRun) -> None:
    from tcplab.report.gather import gather
    from tcplab.report.page import build_context

    (f,) = build_context(gather(story.run_dir))["ex"].of("pmtu_blackhole")  # the clamped connection: none
    assert f.socket.host == "client" and f.socket.peer_port == 8000 and f.side == "client"
    facts = " ".join(x.text for x in f.facts)
    assert f"({FULL} bytes of data)" in facts and "none left it toward server" in facts
    assert "MTU 1400 (hosts.router.networks.right.mtu)" in facts and f"cut to {FITS} bytes" in facts
    assert "router lowered the MSS of its SYN from 1460 to 1360" in facts
    assert "steps.0, the lab's rule 'blackhole'" in f.conclusion
