"""The capture sidecar's argv: the main tcpdump a block at a time, the live FIN/RST one beside it, the lab's
filter an argument and never part of the script; and the salvage of a capture that ended with its host."""
from __future__ import annotations

import struct
from pathlib import Path

from tcplab.model import load_lab
from tcplab.observe.capture import CAPTURE_SCRIPT, CaptureSidecar, drained, live_filter, salvage
from tcplab.plan import RunNames, plan_lab
from tcplab.rundir import RunDir
from tcplab.wire import ACK, FIN, RST, read_tcp

from .test_wire import tcp_frame

ROOT = Path(__file__).resolve().parents[2]
HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 1518, 1)


def pcap(path: Path, frames: list[bytes], head: bool = True) -> Path:
    with open(path, "wb") as f:
        if head:
            f.write(HEADER)
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 100 + i, 0, len(fr), len(fr)) + fr)
    return path


def test_the_lab_filter_is_an_argument_and_the_live_capture_keeps_fins_and_rsts() -> None:
    filt = "tcp and host 10.0.0.1; rm -rf /"
    argv = CaptureSidecar("a", filt).command("a.pcap", "a.live")
    assert argv[:4] == ["sh", "-c", CAPTURE_SCRIPT, "sh"] and filt not in CAPTURE_SCRIPT
    assert argv[4:8] == ["eth0", "", "/capture/a.live", f"({filt}) and (tcp[tcpflags] & (tcp-fin|tcp-rst) != 0)"]
    assert argv[-1] == filt and argv[argv.index("-w") + 1] == "/capture/a.pcap"
    assert "-U" not in argv and "--immediate-mode" not in argv  # the main one: a block at a time
    assert "-U --immediate-mode" in CAPTURE_SCRIPT  # the live one: each packet as it crosses
    assert live_filter("  ") == "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0"
    each = CaptureSidecar("a", "tcp").command("a.pcap", packet_by_packet=True)
    assert each[:3] == ["tcpdump", "-i", "eth0"] and {"-U", "--immediate-mode"} <= set(each)


def test_lab_up_captures_each_packet_unless_the_lab_asks_for_blocks_and_an_own_program_host_always(
        tmp_path: Path) -> None:
    lab, _ = load_lab(ROOT / "labs" / "closewait.yaml")
    plan = plan_lab(lab, RunNames(lab.name, "r", str(tmp_path)), RunDir(tmp_path).create())
    cap = next(s for s in plan.host("server").sidecars if s.role == "capture")
    assert cap.spec.command is not None and "-U" in cap.spec.command and not any(
        a.endswith(".live") for a in cap.spec.command)
    assert [f.path for f in cap.follow] == ["/capture/server.pcap"]
    assert cap.spec.labels["tcplab.role"] == "capture"  # nothing to stop before it is removed
    blocks = lab.model_copy(update={"capture": lab.capture.model_copy(update={"blocks": True})})
    plan = plan_lab(blocks, RunNames(lab.name, "r", str(tmp_path)), RunDir(tmp_path).create())
    cap = next(s for s in plan.host("server").sidecars if s.role == "capture")
    assert cap.spec.command is not None and "/capture/server.live" in cap.spec.command
    assert cap.spec.command[:2] == ["sh", "-c"] and "-U" not in cap.spec.command[8:]  # the main tcpdump's
    assert [f.path for f in cap.follow] == ["/capture/server.live"]
    assert cap.spec.labels["tcplab.role"] == "capture-blocks"  # stopped (its buffer written out) before removal
    own, _ = load_lab(ROOT / "examples" / "own-service" / "lab.yaml")
    own = own.model_copy(update={"capture": own.capture.model_copy(update={"blocks": True})})
    host = next(h for h, spec in own.hosts.items() if spec.own_program)
    plan = plan_lab(own, RunNames(own.name, "r", str(tmp_path)), RunDir(tmp_path).create())
    cap = next(s for s in plan.host(host).sidecars if s.role == "capture")
    assert cap.spec.command is not None and "-U" in cap.spec.command and not any(
        a.endswith(".live") for a in cap.spec.command)
    assert [f.path for f in cap.follow] == [f"/capture/{host}.pcap"]


def test_drained_once_tcpdump_has_read_or_lost_what_the_kernel_took() -> None:
    assert not drained({"captured": 8, "received": 10, "dropped": 0}, 10)
    assert drained({"captured": 8, "received": 12, "dropped": 2}, 10)
    assert drained({"captured": 10, "received": 11, "dropped": 0}, 10)


def test_salvage_appends_what_the_live_capture_saw_and_the_capture_lost(tmp_path: Path) -> None:
    syn = tcp_frame("10.0.0.2", "10.0.0.3", 1000, 80, flags=ACK, payload=b"x" * 10)
    fin = tcp_frame("10.0.0.2", "10.0.0.3", 1000, 80, flags=FIN | ACK)
    rst = tcp_frame("10.0.0.3", "10.0.0.2", 80, 1000, flags=RST)
    main = pcap(tmp_path / "a.pcap", [syn, fin])
    live = pcap(tmp_path / "a.live", [fin, rst])
    assert salvage(main, live) == 1
    with open(main, "rb") as f:
        assert [p.flags for p in read_tcp(f)] == [ACK, FIN | ACK, RST]
    assert salvage(main, live) == 0
    empty = pcap(tmp_path / "b.pcap", [], head=False)  # tcpdump had not written even its header
    assert salvage(empty, live) == 2
    with open(empty, "rb") as f:
        assert [p.flags for p in read_tcp(f)] == [FIN | ACK, RST]
    assert salvage(tmp_path / "c.pcap", tmp_path / "none.live") == 0
