"""Captures written a block at a time (``capture: {blocks: true}``) lose nothing at the stop. The main
tcpdump writes a block at a time: the kernel hands it a block within a second of the block's first packet,
and stdio writes its file when its buffer fills or it exits; so collection drains each capture (its counts,
until it has read every packet the kernel took for it) before it stops it.

The run here ends on a packet: win's FIN, which the last step (a wait) sees in the live capture as it
crosses; collection starts at once, well within the second the FIN's block may wait in the kernel. Without
the drain the FIN (and the server's ACK of it) are missing from the main captures most of the time."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.wire import FIN, RST, TcpPacket, read_tcp

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

ENDS_ON_A_FIN: dict[str, Any] = {"steps": [
    {"host": "linux", "start": ["telnet", "server", "8000"], "as": "telnet1", "ready": {"log": "Connected to"}},
    {"host": "win", "start": ["telnet", "server", "8000"], "as": "telnet2", "ready": {"log": "Connected to"}},
    {"host": "win", "stop": "telnet2", "title": "win closes telnet"},
    {"wait": {"fin_from": "win"}, "timeout": "5s"},
], "expect": [], "capture": {"blocks": True}}

Key = tuple[object, ...]


def packets(path: Path) -> list[TcpPacket]:
    with open(path, "rb") as f:
        return list(read_tcp(f))


def key(p: TcpPacket) -> Key:
    return (p.src, p.dst, p.sport, p.dport, p.seq, p.ack, p.flags, p.ip_id)


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """closewait-linux cut short: it ends as win's FIN crosses."""
    tmp = tmp_path_factory.mktemp("capture-stop")
    path, name = make_lab(tmp, "closewait-linux", changes=ENDS_ON_A_FIN)
    try:
        res = lab_cmd("run", str(path), "--out", str(tmp / "run"), cwd=tmp, timeout=300)
        assert res.returncode == 0, res.stderr
        return tmp / "run"
    finally:
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp, timeout=120)


def test_the_fin_the_run_ended_on_is_in_both_captures(ended: Path) -> None:
    hosts = json.loads((ended / "run.json").read_text())["hosts"]
    for host in ("win", "server"):
        fins = [p for p in packets(ended / "capture" / f"{host}.pcap") if p.flags & FIN and p.src == hosts["win"]]
        assert fins, f"{host}.pcap lacks win's FIN, the last step's"
        acks = [p for p in packets(ended / "capture" / f"{host}.pcap")
                if p.src == hosts["server"] and p.dst == hosts["win"] and p.ack == (fins[0].seq + 1) % 2**32]
        assert acks, f"{host}.pcap lacks the server's ACK of win's FIN"


def test_every_fin_and_rst_seen_live_is_in_the_hosts_capture(ended: Path) -> None:
    hosts = json.loads((ended / "run.json").read_text())["hosts"]
    seen = 0
    for host in hosts:
        live = packets(ended / "capture" / f"{host}.live")  # linux sends and gets none: an empty capture
        assert all(p.flags & (FIN | RST) for p in live), f"{host}.live: {live}"
        seen += len(live)
        main = {key(p) for p in packets(ended / "capture" / f"{host}.pcap")}
        lost = [p for p in live if key(p) not in main]
        assert lost == [], f"{host}.pcap lacks what {host}.live saw cross: {lost}"
    assert seen >= 2, "win's FIN, on win and on server"


def test_each_capture_holds_what_its_tcpdump_counted_and_lost_none(ended: Path) -> None:
    run = json.loads((ended / "run.json").read_text())
    for host in run["hosts"]:
        stats = run["capture_stats"][host]
        with open(ended / "capture" / f"{host}.pcap", "rb") as f:
            held = sum(1 for _ in read_tcp(f))
        assert stats["dropped"] == 0 and stats["captured"] == stats["received"] == held, (host, stats, held)
