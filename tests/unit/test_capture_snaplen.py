"""The capture's snaplen: a frame of the lab's links, whole (tcpdump's ring then holds ~20 000 packets instead of
512: bench/capture.py --variants); a GSO super-packet longer than that is cut, and decode_tcp keeps its length."""
from __future__ import annotations

from pathlib import Path

from tcplab.model import load_lab
from tcplab.observe.capture import frame_snaplen
from tcplab.plan import RunNames, plan_lab
from tcplab.rundir import RunDir
from tcplab.wire import ACK, PSH, RawPacket, decode_tcp

from .test_wire import tcp_frame

ROOT = Path(__file__).resolve().parents[2]


def test_a_gso_packet_cut_by_the_snaplen_keeps_its_length() -> None:
    data = bytes(range(256)) * 40  # 10 240 bytes of data in one super-packet
    frame = tcp_frame("10.0.0.3", "10.0.0.2", 1, 2, flags=PSH | ACK, payload=data)
    cut = frame[:frame_snaplen(None)]
    t = decode_tcp(RawPacket(1.0, cut, len(frame), 1))
    assert t is not None and len(t.payload) == len(data)
    assert t.payload[:1400] == data[:1400] and t.payload[-100:] == bytes(100)
    whole = decode_tcp(RawPacket(1.0, frame, len(frame), 1))
    assert whole is not None and whole.payload == data


def test_each_host_captures_whole_frames_of_its_links(tmp_path: Path) -> None:
    lab, _ = load_lab(ROOT / "labs" / "closewait.yaml")
    plan = plan_lab(lab, RunNames(lab.name, "r", str(tmp_path)), RunDir(tmp_path).create())
    for host in lab.hosts:
        command = next(s.spec.command for s in plan.host(host).sidecars if s.role == "capture")
        assert command is not None and command[command.index("-s") + 1] == "1518"
    jumbo = lab.model_copy(update={"network": lab.network.model_copy(update={"mtu": 9000})})
    plan = plan_lab(jumbo, RunNames(lab.name, "r", str(tmp_path)), RunDir(tmp_path).create())
    command = next(s.spec.command for s in plan.host("win").sidecars if s.role == "capture")
    assert command is not None and command[command.index("-s") + 1] == "9018"
