"""The idle-timeout story on this kernel, run for real: a NAT box (conntrack in the nat host's namespace, its
established timeout shortened to 3 s, iptables MASQUERADE and a REJECT of INVALID packets from its routes
sidecar) forgets an idle connection; the client's next segment is answered by the box with an RST in the
server's name, the server hears nothing and stays ESTABLISHED; the connection with keepalive survives. One
`lab run idle-timeout` (under a name and subnets of its own) is shared by the tests; its deliberate faults are
in tests/data/library_faults.yaml (tests/integration/test_library.py)."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tcplab.report.gather import gather
from tcplab.report.page import build_context
from tcplab.wire import RST, TcpPacket, decode_tcp, read_pcap_file

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "idle-timeout")


def tcp(story: StoryRun, capture: str) -> list[TcpPacket]:
    packets = [decode_tcp(raw) for raw in read_pcap_file(str(story.run_dir / "capture" / capture))]
    return [p for p in packets if p is not None]


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()


def test_the_reset_leaves_the_box_and_the_server_never_sends_one(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    server, client = info["hosts"]["server"], info["hosts"]["client"]
    box_inside, box_outside = info["addresses"]["nat"]["inside"], info["addresses"]["nat"]["outside"]
    # the box's inside interface: the RST leaves it in the server's name, made there (TTL 64, not forwarded)
    (rst,) = [p for p in tcp(story, "nat.pcap") if p.flags & RST]
    assert (rst.src, rst.dst, rst.sport, rst.dport, rst.ttl) == (server, client, 8000, 40001, 64)
    # the server's side: no RST at all, and the box's address (masquerade) as the peer of both connections
    at_server = tcp(story, "server.pcap")
    assert not [p for p in at_server if p.flags & RST]
    assert {p.src for p in at_server if p.dport in (8000, 8001)} == {box_outside}
    # the box's outside interface never carries the client's own address
    assert client not in {p.src for p in tcp(story, "nat.outside.pcap")}
    assert box_inside not in {p.src for p in at_server}


def test_the_box_alone_gets_the_short_timeout_and_its_rules_come_from_a_sidecar(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    timeouts = {h: s["net.netfilter.nf_conntrack_tcp_timeout_established"] for h, s in info["sysctls"].items()}
    assert timeouts["nat"] == "3" and timeouts["client"] != "3" and timeouts["server"] != "3"
    assert info["sysctls"]["nat"]["net.netfilter.nf_conntrack_tcp_loose"] == "0"
    caps = {name.removeprefix(f"tcplab-{story.name}-"): c for name, c in info["capabilities"].items()}
    assert caps["nat"] == caps["client"] == caps["server"] == []
    assert caps["nat-routes"] == ["NET_ADMIN"]


def test_the_report_names_the_nat_box(story: StoryRun) -> None:
    page = (story.run_dir / "report.html").read_text()
    row = re.search(r"<tr><th>networks</th>(.*?)</tr>", page, re.S)
    assert row and "nat is a NAT box: masquerades onto outside, forgets a connection idle for 3 s" in row.group(1)


def test_the_explanation_blames_the_box_not_the_server(story: StoryRun) -> None:
    ex = build_context(gather(story.run_dir))["ex"]
    (f,) = ex.of("middlebox_reset")
    assert (f.socket.host, f.socket.local_port, f.socket.peer_port) == ("client", 40001, 8000)
    facts = " ".join(x.text for x in f.facts)
    assert "it was made on the way" in facts and "nat is a NAT box that forgets a connection idle for 3 s" in facts
    assert "server's socket was still ESTABLISHED" in facts and "keepalive probes" in facts
    assert ex.of("half_open") == []  # nobody's socket is half-open by its own fault
    assert [(k.socket.host, k.socket.local_port) for k in ex.of("keepalive")] == [("client", 40002)]
