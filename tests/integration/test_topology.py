"""A lab of two networks: client - router - server. One real run serves every assertion."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Iterator

import docker
import pytest
import yaml

from tcplab.wire import TcpPacket, decode_tcp, read_pcap_file

from ..conftest import ROOT, _subnets, lab_cmd, unique_name

pytestmark = pytest.mark.integration

LAB = ROOT / "tests" / "data" / "topology" / "routed.yaml"


def routed_lab(tmp: Path) -> tuple[Path, str, dict[str, str]]:
    """The routed lab under a name and two /24s of its own; (file, name, old prefix -> new prefix)."""
    text = LAB.read_text()
    name = unique_name("routed")[:31]
    moved = {}
    for old in ("10.231.1.", "10.231.2."):
        moved[old] = f"10.{next(_subnets) % 156 + 100}.{os.getpid() % 250}."
        text = text.replace(old, moved[old])
    data = yaml.safe_load(text)
    data["name"] = name
    path = tmp / "routed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, name, moved


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str], float]]:
    tmp = tmp_path_factory.mktemp("topology")
    path, name, moved = routed_lab(tmp)
    started = time.monotonic()
    proc = lab_cmd("run", str(path), cwd=tmp, timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"run directory: (\S+)", proc.stdout)
    assert found, proc.stdout
    yield name, tmp / found.group(1), moved, took


def syns(pcap: Path) -> list[TcpPacket]:
    packets = [decode_tcp(raw) for raw in read_pcap_file(str(pcap))]
    return [p for p in packets if p is not None and p.flag_string() in ("S", "S.") and 8000 in (p.sport, p.dport)]


def test_the_connection_is_established_through_the_router(run: tuple[str, Path, dict[str, str], float]) -> None:
    _, rd, _, took = run
    result = json.loads((rd / "result.json").read_text())
    verdicts = {e["name"]: e["status"] for e in result["expectations"]}
    assert verdicts == {"client-established": "held", "server-established": "held"}
    assert took < 40, f"the run took {took:.1f} s"


def test_client_and_server_captures_hold_the_handshake_and_the_router_forwards_it_once_per_interface(
        run: tuple[str, Path, dict[str, str], float]) -> None:
    _, rd, moved, _ = run
    client = syns(rd / "capture" / "client.pcap")
    server = syns(rd / "capture" / "server.pcap")
    left = syns(rd / "capture" / "router.pcap")  # the router's interface on its first network
    right = syns(rd / "capture" / "router.right.pcap")
    assert [p.flag_string() for p in client] == ["S", "S."]
    assert [p.flag_string() for p in server] == ["S", "S."]
    assert [p.flag_string() for p in left] == ["S", "S."]
    assert [p.flag_string() for p in right] == ["S", "S."]
    syn = client[0]
    assert syn.src == moved["10.231.1."] + "10" and syn.dst == moved["10.231.2."] + "2"
    # the same SYN on each hop, one TTL less past the router; so is the SYN-ACK the other way
    assert (left[0].seq, right[0].seq, server[0].seq) == (syn.seq,) * 3
    assert (left[0].ttl, right[0].ttl, server[0].ttl) == (syn.ttl, syn.ttl - 1, syn.ttl - 1)
    assert (right[1].ttl, left[1].ttl, client[1].ttl) == (server[1].ttl, server[1].ttl - 1, server[1].ttl - 1)
    # the right network's MTU (1400) shows in the server's MSS, the client's interface's own (1300) in the client's
    assert server[1].option("mss") == 1360
    assert syn.option("mss") == 1260


def test_nothing_is_left_on_the_engine(run: tuple[str, Path, dict[str, str], float]) -> None:
    name = run[0]
    client = docker.from_env()
    selector = {"label": [f"tcplab.lab={name}"]}
    assert client.containers.list(all=True, filters=selector) == []
    assert client.networks.list(filters=selector) == []


def test_the_report_shows_each_network_with_its_hosts_and_the_routes(
        run: tuple[str, Path, dict[str, str], float]) -> None:
    _, rd, moved, _ = run
    row = re.search(r"<tr><th>networks</th>(.*?)</tr>", (rd / "report.html").read_text())
    assert row, "no networks row in the report"
    left, right = moved["10.231.1."], moved["10.231.2."]
    for address in (f"router {left}2", f"client {left}10 (MTU 1300)", f"server {right}2", f"router {right}3",
                    f"via router ({right}3)", f"via router ({left}2)", "MTU 1400"):
        assert address in row.group(1)
