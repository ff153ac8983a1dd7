"""Impairment through NFQUEUE on real containers: the server's impairment sidecar drops exactly the 3rd data
segment the client sends, and the client's kernel retransmits it once, one RTO (as ss reports it) later; then
a second impairment delays the next one by 100 ms, which the server's ACK of it shows; a third, on the
client, sends the next one twice.

Tail loss probes are off on the client (net.ipv4.tcp_early_retrans=0), so the one retransmission is the RTO
timer's. The drop is on the server's INPUT, so both captures see the original and its retransmission.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tcplab.rundir import RunDir
from tcplab.runfiles import impaired, retransmits
from tcplab.wire import decode_tcp, read_pcap_file

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

HOSTS = {
    "server": {"image": "tcplab/server",
               "program": {"run": ["/opt/lab/server", "8000", "5"], "name": "server", "ready": {"listen": 8000}}},
    "client": {"image": "tcplab/client", "sysctls": {"net.ipv4.tcp_early_retrans": 0}},
}
STEPS: list[dict[str, Any]] = [
    {"host": "client", "start": ["telnet", "server", "8000"], "as": "telnet", "ready": {"log": r"^Connected to"}},
    {"host": "server", "impair": "drop", "nth": 3,
     "match": {"from": "client", "port": 8000, "flags": "P.", "data": True},
     "as": "loss"},
    {"host": "client", "send": "telnet", "text": "one\n"},
    {"wait": {"seconds": 0.2}, "timeout": "2s"},
    {"host": "client", "send": "telnet", "text": "two\n"},
    {"wait": {"seconds": 0.2}, "timeout": "2s"},
    {"snapshot": "before-loss"},
    {"host": "client", "send": "telnet", "text": "three\n"},
    {"wait": {"seconds": 1}, "timeout": "3s"},
    {"host": "server", "lift": "loss"},
    {"host": "server", "impair": "delay", "delay": "100ms", "match": {"from": "client", "port": 8000, "data": True},
     "as": "slow"},
    {"host": "client", "send": "telnet", "text": "four\n"},
    {"wait": {"seconds": 0.4}, "timeout": "2s"},
    {"host": "server", "lift": "slow"},
    {"host": "client", "impair": "duplicate", "nth": 1, "match": {"to": "server", "port": 8000, "data": True},
     "as": "twice"},
    {"host": "client", "send": "telnet", "text": "five\n"},
    {"wait": {"seconds": 0.2}, "timeout": "2s"},
    {"host": "client", "lift": "twice"},
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, str]:
    tmp = tmp_path_factory.mktemp("impair")
    lab, name = make_lab(tmp, "closewait-linux", changes={
        "summary": "The server's link drops the client's 3rd data segment.", "story": "", "reference": None,
        "hosts": HOSTS, "steps": STEPS, "expect": []})
    out = tmp / "run"
    res = lab_cmd("run", str(lab), "--out", str(out), cwd=tmp, timeout=300)
    assert labeled_objects(name) == []
    return res, out, name


def test_exactly_the_third_data_segment_is_dropped_and_retransmitted_once_after_one_rto(
        run: tuple[Any, Path, str]) -> None:
    res, out, _ = run
    assert res.returncode == 0, res.stdout + res.stderr
    drop, _, _ = impaired.read(RunDir(out))
    assert (drop.host, drop.rule, drop.action, drop.flags, drop.length) == ("server", "loss", "drop", "P.", 7)
    client_ip = json.loads((out / "run.json").read_text())["hosts"]["client"]
    data = [t for raw in read_pcap_file(str(out / "capture" / "client.pcap"))
            if (t := decode_tcp(raw)) is not None and t.src == client_ip and t.dport == 8000 and t.payload]
    assert [t.payload for t in data] == [b"one\r\n", b"two\r\n", b"three\r\n", b"three\r\n", b"four\r\n",
                                         b"five\r\n", b"five\r\n"]
    original, again = data[2], data[3]
    assert original.seq == again.seq == drop.seq
    assert abs(original.ts - drop.ts) < 0.05  # the log's time is the dropped packet's
    # the RTO the client's kernel reported (ss -ti) just before the loss
    snaps = json.loads((out / "sockets" / "snapshots.json").read_text())
    rtos = [int(m) for m in re.findall(r"rto:(\d+)", json.dumps(snaps["before-loss"]["hosts"]["client"]))]
    assert rtos, snaps["before-loss"]["hosts"]["client"]
    rto = rtos[0] / 1000
    assert rto * 0.95 <= again.ts - original.ts <= rto * 1.5, (again.ts - original.ts, rto)
    # the client's kernel says so too: one tcp:tcp_retransmit_skb, as the retransmission leaves (the tracepoint
    # fires once the segment is handed down, µs after the capture stamps it; the duplicate of "five" is the
    # impairment's, not the kernel's)
    (rtx,) = retransmits.read(RunDir(out))
    assert (rtx["host"], rtx["peer"], rtx["sport"], rtx["state"], rtx["err"]) == (
        "client", "server", original.sport, "ESTABLISHED", 0)
    assert abs(again.ts - rtx["ts"]) < 0.005, (again.ts, rtx["ts"])


def test_a_delayed_segment_reaches_the_servers_stack_one_delay_later(run: tuple[Any, Path, str]) -> None:
    _, out, _ = run
    _, held, _ = impaired.read(RunDir(out))
    assert (held.rule, held.action, held.length) == ("slow", "delay", 6)
    info = json.loads((out / "run.json").read_text())
    client_ip, server_ip = info["hosts"]["client"], info["hosts"]["server"]
    seen = [t for raw in read_pcap_file(str(out / "capture" / "server.pcap")) if (t := decode_tcp(raw)) is not None]
    (four,) = [t for t in seen if t.src == client_ip and t.payload == b"four\r\n"]  # arrives once: not retransmitted
    assert four.seq == held.seq
    acked = next(t for t in seen if t.src == server_ip and t.ts > four.ts and t.ack >= four.seq + len(four.payload))
    # the capture sees the segment arrive; the stack, 100 ms later (its ACK may wait for a delayed-ACK timer)
    assert 0.1 <= acked.ts - four.ts <= 0.1 + 0.1, acked.ts - four.ts


def test_a_duplicated_segment_reaches_the_server_twice(run: tuple[Any, Path, str]) -> None:
    _, out, _ = run
    _, _, twice = impaired.read(RunDir(out))
    assert (twice.host, twice.rule, twice.action, twice.length) == ("client", "twice", "duplicate", 6)
    client_ip = json.loads((out / "run.json").read_text())["hosts"]["client"]
    seen = [t for raw in read_pcap_file(str(out / "capture" / "server.pcap")) if (t := decode_tcp(raw)) is not None]
    copies = [t for t in seen if t.src == client_ip and t.payload == b"five\r\n"]
    assert [t.seq for t in copies] == [twice.seq, twice.seq] and copies[1].ts - copies[0].ts < 0.05


def test_the_impairment_sidecars_hold_net_admin_and_the_hosts_nothing(run: tuple[Any, Path, str]) -> None:
    _, out, name = run
    info = json.loads((out / "run.json").read_text())
    caps = {c.removeprefix(f"tcplab-{name}-"): v for c, v in info["capabilities"].items()}
    assert caps["server-impair"] == ["NET_ADMIN"] and sorted(caps["client-impair"]) == ["NET_ADMIN", "NET_RAW"]
    assert caps["server"] == [] and caps["client"] == []
    # which mechanism impaired the link, and whether this kernel has netem (this one does not)
    assert info["impairment"]["mechanism"] == "nfqueue"
    assert info["impairment"]["netem"].startswith(("absent: ", "available")), info["impairment"]


def test_the_report_marks_the_impaired_segments_on_the_ladder_and_lists_them(run: tuple[Any, Path, str]) -> None:
    _, out, _ = run
    html = (out / "report.html").read_text()
    marked = re.findall(r'<g class="pkt data impaired" id="a-(\d+)"', html)
    assert len(marked) == 3, marked  # the dropped segment, the delayed one and the duplicated one
    (row,) = re.findall(r"<tr><td class=\"mono\">[\d.]+</td><td>server</td><td>loss</td><td>drop</td>"
                        r"<td class=\"mono\">(\d+)</td><td class=\"mono\">P\.</td><td>7</td>"
                        r"<td><a href=\"#pkt-(\d+)\">", html)
    assert row[1] == marked[0] and int(row[0]) == impaired.read(RunDir(out))[0].seq
    assert re.search(r"<td>server</td><td>slow</td><td>delay</td>.*?<a href=\"#pkt-" + marked[1], html)
    assert "mechanism: nfqueue" in html
