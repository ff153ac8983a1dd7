"""A packet that crosses a router: one packet with its copies in every capture it passed (the router's two
interfaces), attributed to a host by any of its addresses, judged as one host's capture holds it (``seen_at``),
and drawn as one arrow through the router, or ending there when it never arrived."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tcplab.analysis.expectations import evaluate
from tcplab.analysis.packets import load_traffic
from tcplab.model import load_lab
from tcplab.report.ladder import build_ladder, host_order

from .test_report_synth import A, P, S, T0, pcap_bytes, tcp_frame

CLIENT, ROUTER_L, ROUTER_R, SERVER = "10.92.1.3", "10.92.1.2", "10.92.2.3", "10.92.2.2"
MSS_1460 = bytes.fromhex("020405b4")
MSS_1360 = bytes.fromhex("02040550")
LAB = """
name: hops
networks:
  left: {subnet: 10.92.1.0/24}
  right: {subnet: 10.92.2.0/24}
hosts:
  server: {image: tcplab/server, networks: {right: {}}, routes: [{to: 10.92.1.0/24, via: router}]}
  router: {image: tcplab/client, router: true, networks: {left: {}, right: {mtu: 1400}}}
  client: {image: tcplab/client, networks: {left: {}}, routes: [{to: 10.92.2.0/24, via: router}]}
"""


def write_run(root: Path, expect: list[dict[str, object]] | None = None, resent: int = 0) -> Path:
    """A run through the router: the handshake (the router clamps the SYN's MSS on its way out), a small
    segment that arrives, a full-size one seen only on the router's way in (it never left), and a packet
    the router sends from its address on the right network."""
    caps: dict[str, list[tuple[float, bytes]]] = {"client": [], "router": [], "router.right": [], "server": []}

    def cross(ts: float, to_server: bool, sport: int, seq: int, ack: int, flags: int, options: bytes = b"",
              payload: bytes = b"", ip_id: int = 0, stop: str | None = None, clamped: bytes | None = None) -> None:
        src, dst = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
        way = ["client", "router", "router.right", "server"]
        if not to_server:
            way.reverse()
        for i, cap in enumerate(way):
            ttl = 64 if i < 2 else 63
            opts = clamped if clamped is not None and i >= 2 else options
            frame = tcp_frame(src, dst, sport, 8000, seq, ack, flags, 502, opts, payload, ttl=ttl, ip_id=ip_id) \
                if to_server else tcp_frame(src, dst, 8000, sport, seq, ack, flags, 502, opts, payload, ttl=ttl,
                                            ip_id=ip_id)
            caps[cap].append((ts + i * 0.00001, frame))
            if cap == stop:
                break

    cross(T0, True, 40000, 100, 0, S, MSS_1460, ip_id=1, clamped=MSS_1360)
    cross(T0 + 0.001, False, 40000, 500, 101, S | A, MSS_1460, ip_id=2, clamped=MSS_1360)
    cross(T0 + 0.002, True, 40000, 101, 501, A, ip_id=3)
    cross(T0 + 0.1, True, 40000, 101, 501, P | A, payload=b"hello\r\n", ip_id=4)
    cross(T0 + 0.2, True, 40000, 108, 501, A, payload=b"x" * 1448, ip_id=5, stop="router")
    for i in range(resent):  # the same segment again, lost the same way; then cut to fit, it crosses
        cross(T0 + 0.4 + 0.2 * 2 ** i, True, 40000, 108, 501, A, payload=b"x" * 1448, ip_id=10 + i, stop="router")
    if resent:
        cross(T0 + 2.0, True, 40000, 108, 501, A, payload=b"x" * 1348, ip_id=20)
    caps["router.right"].append((T0 + 0.3, tcp_frame(ROUTER_R, SERVER, 5000, 8000, 1, 0, S, 502, MSS_1360,
                                                     ip_id=6)))
    caps["server"].append((T0 + 0.30001, tcp_frame(ROUTER_R, SERVER, 5000, 8000, 1, 0, S, 502, MSS_1360, ip_id=6)))
    run = root / "run"
    (run / "capture").mkdir(parents=True)
    for name, records in caps.items():
        (run / "capture" / f"{name}.pcap").write_bytes(pcap_bytes(records))
    (run / "run.json").write_text(json.dumps({
        "lab": "hops", "run": "hops-1", "hosts": {"server": SERVER, "router": ROUTER_L, "client": CLIENT},
        "addresses": {"server": {"right": SERVER}, "router": {"left": ROUTER_L, "right": ROUTER_R},
                      "client": {"left": CLIENT}}}))
    lab = yaml.safe_load(LAB)
    lab["expect"] = expect or []
    (run / "lab.yaml").write_text(yaml.safe_dump(lab))
    (run / "steps.jsonl").write_text("")
    return run


def test_a_forwarded_packet_is_one_packet_with_a_copy_per_capture_and_the_router_as_its_hop(tmp_path: Path) -> None:
    traffic = load_traffic(write_run(tmp_path))
    syn, synack, ack, hello, big, own = traffic.packets
    assert [c.capture for c in syn.copies] == ["client", "router", "router.right", "server"]
    assert [c.capture for c in synack.copies] == ["server", "router.right", "router", "client"]
    assert (syn.capture, syn.hops(), syn.journey()) == ("client", ["router"], "via router")
    assert [c.tcp.ttl for c in syn.copies] == [64, 64, 63, 63]
    at_server = syn.at("server")
    assert at_server is not None and at_server.tcp.option("mss") == 1360 and syn.tcp.option("mss") == 1460
    assert at_server.where() == "capture/server.pcap #1" and at_server.n == syn.n
    assert hello.lost_at is None and hello.at("server") is not None


def test_a_packet_seen_on_the_router_but_never_by_its_receiver_stops_there(tmp_path: Path) -> None:
    big = load_traffic(write_run(tmp_path)).packets[4]
    assert len(big.tcp.payload) == 1448
    assert [c.capture for c in big.copies] == ["client", "router"]
    assert big.lost_at == "router" and big.at("server") is None
    assert big.journey() == "never reached server: last seen on router"


def test_a_packet_from_the_routers_second_address_is_the_routers(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    own = load_traffic(run).packets[5]
    assert (own.tcp.src, own.src_host, own.dst_host) == (ROUTER_R, "router", "server")
    assert own.capture == "router.right" and own.hops() == [] and own.journey() == ""
    from tcplab.analysis.runview import RunView
    from tcplab.rundir import RunDir

    view = RunView(RunDir(run), load_lab(run / "lab.yaml")[0])
    assert (view.name_of(ROUTER_R), view.name_of(ROUTER_L), view.name_of("10.92.9.9")) == ("router", "router",
                                                                                            "10.92.9.9")


def test_without_addresses_in_run_json_a_second_address_is_nobodys(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    info = json.loads((run / "run.json").read_text())
    del info["addresses"]
    (run / "run.json").write_text(json.dumps(info))
    assert load_traffic(run).packets[5].src_host is None


def test_expectations_judge_the_copy_a_host_captured_and_the_payload_length(tmp_path: Path) -> None:
    run = write_run(tmp_path, [
        {"name": "clamped", "packet": {"from": "client", "to": "server", "flags": "S", "mss": 1360,
                                       "seen_at": "server"}},
        {"name": "sent-unclamped", "packet": {"from": "client", "to": "server", "flags": "S", "mss": 1360}},
        {"name": "big-sent", "packet": {"from": "client", "to": "server", "length": {"min": 1349}}},
        {"name": "big-arrives", "packet": {"from": "client", "to": "server", "length": {"min": 1349},
                                           "seen_at": "server", "count": 0}},
        {"name": "hello-arrives", "packet": {"from": "client", "to": "server", "length": 7, "seen_at": "server"}},
        {"name": "nothing-small", "packet": {"from": "client", "to": "server", "length": {"min": 1, "max": 6}}},
    ])
    verdicts = {v.name: v for v in evaluate(run).verdicts}
    assert {n: v.status for n, v in verdicts.items()} == {
        "clamped": "held", "sent-unclamped": "failed", "big-sent": "held", "big-arrives": "held",
        "hello-arrives": "held", "nothing-small": "failed"}
    assert verdicts["clamped"].where == "capture/server.pcap #1"
    assert "as captured on server" in verdicts["clamped"].expected
    assert "mss 1460" in verdicts["sent-unclamped"].seen and "differs in mss" in verdicts["sent-unclamped"].seen
    assert verdicts["nothing-small"].expected == "client→server length 1-6"


def test_the_ladder_puts_the_router_between_and_draws_a_lost_packet_ending_there(tmp_path: Path) -> None:
    traffic = load_traffic(write_run(tmp_path))
    assert host_order(traffic) == ["client", "router", "server"]
    svg = str(build_ladder(traffic, []).svg)
    xs = {h: int(x) for x, h in re.findall(r'<text x="(\d+)" y="20" class="host"[^>]*>(\w+)<', svg)}
    arrows = {}
    for chunk in svg.split('<g class="pkt ')[1:]:
        n = int(re.search(r'id="a-(\d+)"', chunk).group(1))  # type: ignore[union-attr]
        line = re.search(r'<line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"[^>]*class="arrow"', chunk)
        assert line is not None, chunk
        hops = [int(float(x)) for x in re.findall(r'<circle cx="([\d.]+)"', chunk)]
        arrows[n] = (chunk.split('"')[0], int(float(line.group(1))), int(float(line.group(2))), hops)
    # the full-size segment: from the client to the router, where it was last seen, dotted and crossed
    assert arrows[5] == ("data lost", xs["client"], xs["router"], [])
    # the small one: client to server, a dot where it crossed the router
    assert arrows[4] == ("data", xs["client"], xs["server"], [xs["router"]])
    assert arrows[2] == ("syn", xs["server"], xs["client"], [xs["router"]])
    assert arrows[6] == ("syn", xs["router"], xs["server"], [])
    assert "never reached server: last seen on router" in svg


def test_a_lab_of_one_network_keeps_its_packets_as_before(tmp_path: Path) -> None:
    from .test_report_synth import write_closewait_run

    run = write_closewait_run(tmp_path)
    traffic = load_traffic(run)
    assert all(p.hops() == [] and p.lost_at is None and p.journey() == "" for p in traffic.packets)
    assert all(len(p.copies) == 2 for p in traffic.packets)  # the sender's and the receiver's capture


def test_the_shipped_lab_parses() -> None:
    from ..conftest import ROOT

    lab = load_lab(ROOT / "labs" / "pmtu-blackhole" / "lab.yaml")[0]
    assert lab.hosts["router"].router and lab.hosts["router"].networks["right"] is not None


def test_the_explainer_names_the_black_hole_its_router_the_mtu_and_the_fixes(tmp_path: Path) -> None:
    from tcplab.report.gather import gather
    from tcplab.report.page import build_context

    (f,) = build_context(gather(write_run(tmp_path, resent=2)))["ex"].of("pmtu_blackhole")
    assert f.title == ("client 10.92.1.3:40000 ↔ server 10.92.2.2:8000: full-size segments vanish at router "
                       "(a PMTU black hole)")
    assert f.side == "client" and f.ended_by == "client sent it cut to fit"
    facts = " ".join(x.text for x in f.facts)
    assert "(1448 bytes of data) 3 times" in facts and "none left it toward server" in facts
    assert "the biggest, 7 bytes of data" in facts
    assert "MTU 1400 (hosts.router.networks.right.mtu)" in facts
    assert "cut to 1348 bytes" in facts
    assert "tcp_mtu_probing" in f.fix and "clamp-mss-to-pmtu" in f.fix and "type 3 code 4" in f.fix


def test_the_explainer_is_silent_for_one_lost_copy_and_for_a_lab_of_one_network(tmp_path: Path) -> None:
    from tcplab.report.gather import gather
    from tcplab.report.page import build_context

    from .test_report_synth import write_closewait_run

    assert build_context(gather(write_run(tmp_path / "a")))["ex"].of("pmtu_blackhole") == []
    assert build_context(gather(write_closewait_run(tmp_path / "b")))["ex"].of("pmtu_blackhole") == []


def test_a_packet_the_router_cut_into_segments_arrived_with_its_first(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    cut = tcp_frame(CLIENT, SERVER, 40000, 8000, 108, 501, A, 502, payload=b"x" * 1348, ttl=63, ip_id=5)
    (run / "capture" / "router.right.pcap").write_bytes(pcap_bytes([(T0 + 0.20002, cut)]))
    (run / "capture" / "server.pcap").write_bytes(pcap_bytes([(T0 + 0.20003, cut)]))
    (big,) = [p for p in load_traffic(run).packets if len(p.tcp.payload) == 1448]
    assert [c.capture for c in big.copies] == ["client", "router", "router.right", "server"]
    assert big.lost_at is None and len(big.at("server").tcp.payload) == 1348  # type: ignore[union-attr]
