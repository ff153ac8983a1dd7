"""The syn-flood story on this kernel, run for real: 400 raw SYNs (the attacker alone has NET_RAW) to each of two
listeners with a backlog of 4; the one with SYN cookies answers the flood with cookies whose SYN-ACKs carry the
MSS alone and still lets the legitimate client in; the one without drops its SYNs. One `lab run syn-flood` (under a
name and subnet of its own) is shared by the tests; its deliberate faults are in tests/data/library_faults.yaml
(tests/integration/test_library.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tcplab.report.gather import gather
from tcplab.report.page import build_context
from tcplab.wire import ACK, SYN, TcpPacket, decode_tcp, read_pcap_file

from .stories import StoryRun, story_run

pytestmark = pytest.mark.integration


@pytest.fixture
def story(shipped_run: Any) -> StoryRun:
    return story_run(shipped_run, "syn-flood")


def tcp(story: StoryRun, host: str) -> list[TcpPacket]:
    packets = [decode_tcp(raw) for raw in read_pcap_file(str(story.run_dir / "capture" / f"{host}.pcap"))]
    return [p for p in packets if p is not None]


def test_every_expectation_holds(story: StoryRun) -> None:
    assert story.proc.returncode == 0, story.said()
    result = json.loads((story.run_dir / "result.json").read_text())
    assert result["counts"]["failed"] == 0 and result["counts"]["error"] == 0, story.said()


def test_the_flood_is_bounded_stays_in_the_lab_and_only_the_attacker_has_raw_sockets(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    subnet_prefix = info["hosts"]["attacker"].rsplit(".", 1)[0] + "."
    sent = tcp(story, "attacker")
    syns = [p for p in sent if p.src == info["hosts"]["attacker"] and p.flags == SYN]
    assert len(syns) == 800  # 400 to each server, and nothing else from the attacker: its kernel sent no RST
    assert all(p.dst.startswith(subnet_prefix) for p in sent)
    assert not [p for p in sent if p.src == info["hosts"]["attacker"] and p.flags != SYN]
    caps = {name.removeprefix(f"tcplab-{story.name}-"): c for name, c in info["capabilities"].items()}
    assert caps["attacker"] == ["NET_RAW"] and caps["attacker-firewall"] == ["NET_ADMIN"]
    assert caps["server"] == caps["nocookie"] == caps["client"] == []


def test_a_cookie_synack_has_the_mss_alone_and_the_legitimate_client_completes_it(story: StoryRun) -> None:
    info = json.loads((story.run_dir / "run.json").read_text())
    server, attacker, client = (info["hosts"][h] for h in ("server", "attacker", "client"))
    synacks = [p for p in tcp(story, "server") if p.src == server and p.flags == SYN | ACK]
    to_attacker = [p for p in synacks if p.dst == attacker]
    bare = [p for p in to_attacker if [name for name, _ in p.options] == ["mss"]]
    assert len(bare) >= 380 and {p.option("mss") for p in bare} <= {536, 1300, 1440, 1460}
    full = {p.dport for p in to_attacker if "wscale" in [name for name, _ in p.options]}
    assert 1 <= len(full) <= 8  # the few the queue took (their first SYN-ACKs and retransmissions: one port each)
    (legit,) = [p for p in synacks if p.dst == client]
    assert {"TS", "wscale", "sackOK"} <= {name for name, _ in legit.options}
    nocookie = [p for p in tcp(story, "nocookie") if p.flags == SYN | ACK]
    assert {p.dst for p in nocookie} == {attacker}  # the control never answered the client


def test_the_explanation_tells_each_flood_and_only_the_clients_failed_connect(story: StoryRun) -> None:
    ex = build_context(gather(story.run_dir))["ex"]
    floods = {f.socket.host: f for f in ex.of("syn_flood")}
    assert set(floods) == {"server", "nocookie"}
    assert "answered with SYN cookies" in floods["server"].title and "dropped" in floods["nocookie"].title
    assert "through a cookie" in " ".join(x.text for x in floods["server"].facts)
    (failed,) = ex.of("connect_failed")
    assert failed.socket.host == "client" and "SYN flood" in failed.conclusion
