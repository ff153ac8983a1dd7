"""Issue 4: every packet, every socket table, every TCP state change, per host.

One shared run of the closewait story (``lab up`` then ``lab down``) is read
by most tests; two more runs are cut short on purpose: Ctrl-C during a step,
and the server container killed from outside during a step. Until the
Windows peer lands the story runs as ``closewait-linux``; set
``TCPLAB_OBSERVE_LAB=closewait`` to run it with the Windows peer (its
FIN_WAIT_2 timer shortened to 2 s): every assertion holds for both.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from tcplab.observe.sockets import SocketRecord
from tcplab.observe.tracer import instance_name
from tcplab.runfiles.transitions import read_path as read_transitions
from tcplab.wire import ACK, FIN, SYN, RawPacket, TcpPacket, decode_tcp, read_pcap

from ..conftest import LAB_PY, ROOT, lab_cmd, labeled_objects, make_lab, wait_for

pytestmark = pytest.mark.integration

BASE = os.environ.get("TCPLAB_OBSERVE_LAB", "closewait-linux")
BASE_CHANGES: dict[str, Any] = {"hosts.win.peer.fin_wait2_timeout": "2s"} if BASE == "closewait" else {}
SNAPLEN_FRAME = 1518  # tcpdump -s: a whole frame of the lab's 1500-byte links (observe/capture.frame_snaplen)
INTERRUPT_STEP = 5  # index of the long wait in LONG_WAIT
LONG_WAIT: dict[str, Any] = {"steps": [
    {"host": "linux", "start": ["telnet", "server", "8000"], "as": "telnet1", "ready": {"log": "Connected to"}},
    {"host": "win", "start": ["telnet", "server", "8000"], "as": "telnet2", "ready": {"log": "Connected to"}},
    {"snapshot": "established"},
    {"host": "win", "stop": "telnet2", "title": "win closes telnet"},
    {"wait": {"fin_from": "win"}, "timeout": "5s"},
    {"wait": {"seconds": "60s"}, "timeout": "70s", "title": "a long wait"},
    {"snapshot": "after_wait"},
], "expect": []}


# --- helpers -----------------------------------------------------------------

def tshark(*args: str) -> tuple[str, list[str]]:
    """tshark's output and its stderr lines, less the notice it prints whenever it runs as root."""
    exe = shutil.which("tshark")
    assert exe, "tshark is not installed (scripts/setup installs it)"
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"tshark {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    noise = [line for line in proc.stderr.splitlines() if line.strip() and "Running as user" not in line]
    return proc.stdout, noise


def complete_pcap(path: Path) -> list[RawPacket]:
    """The packets of a capture, asserting tcpdump wrote it whole: a frame's snaplen, no packet cut (these
    stories send no bulk data: no GSO super-packet), no cut last record."""
    data = path.read_bytes()
    assert len(data) >= 24, f"{path.name}: no pcap header"
    magic, _, _, _, _, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4, f"{path.name}: not a little-endian µs pcap"
    assert snaplen == SNAPLEN_FRAME and linktype == 1, (snaplen, linktype)
    off = 24
    while off < len(data):
        assert off + 16 <= len(data), f"{path.name}: a record header is cut at byte {off}"
        incl, orig = struct.unpack_from("<II", data, off + 8)
        assert incl == orig, f"{path.name}: a packet was cut ({incl} of {orig} bytes)"
        off += 16 + incl
        assert off <= len(data), f"{path.name}: the last packet is cut"
    with open(path, "rb") as f:
        return list(read_pcap(f))


def tcp_packets(path: Path) -> list[TcpPacket]:
    return [p for p in (decode_tcp(r) for r in complete_pcap(path)) if p is not None]


def steps_played(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines() if line.strip()]


def handshake(packets: list[TcpPacket], client_ip: str, server_ip: str, port: int = 8000) -> tuple[int, ...]:
    """(client port, SYN index, SYN-ACK index, ACK index) of the client's three-way handshake."""
    for i, syn in enumerate(packets):
        if syn.src == client_ip and syn.dst == server_ip and syn.dport == port and syn.flags & (SYN | ACK) == SYN:
            synack = next(j for j, p in enumerate(packets) if j > i and p.src == server_ip and p.dport == syn.sport
                          and p.flags & (SYN | ACK) == SYN | ACK and p.ack == (syn.seq + 1) % 2**32)
            final = next(j for j, p in enumerate(packets) if j > synack and p.src == client_ip
                         and p.sport == syn.sport and p.flags & (SYN | ACK) == ACK
                         and p.ack == (packets[synack].seq + 1) % 2**32)
            return syn.sport, i, synack, final
    raise AssertionError(f"no SYN from {client_ip} to {server_ip}:{port}")


def fin_from(packets: list[TcpPacket], src: str, dst: str) -> TcpPacket:
    fins = [p for p in packets if p.src == src and p.dst == dst and p.flags & FIN]
    assert fins, f"no FIN from {src} to {dst}"
    return fins[0]


def records(snapshot: dict[str, Any], host: str, tool: str) -> list[SocketRecord]:
    return [SocketRecord.from_dict(r) for r in snapshot["hosts"][host][tool]["records"]]



# --- the shared run ------------------------------------------------------------

@dataclass
class Observed:
    name: str
    run_dir: Path
    ips: dict[str, str]
    run_id: str
    up_seconds: float
    transitions_while_up: list[dict[str, Any]]
    files_while_up: set[str]
    execs_while_up: list[str]
    host_commands: dict[str, list[str]]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory):
    """closewait played to its end by `lab up`, then `lab down`: the run directory both leave."""
    tmp = tmp_path_factory.mktemp("observe")
    path, name = make_lab(tmp, BASE, changes=BASE_CHANGES)
    run_dir = tmp / "run"
    try:
        t, since = time.monotonic(), int(time.time())
        up = lab_cmd("up", str(path), "--out", str(run_dir), cwd=tmp, timeout=400)
        up_seconds = time.monotonic() - t
        assert up.returncode == 0, up.stderr
        client = docker.from_env()
        execs = [e["Actor"]["Attributes"].get("name", "?") + ": " + e.get("status", "") for e in client.events(
            since=since, until=int(time.time()) + 1, decode=True,
            filters={"label": [f"tcplab.lab={name}"], "event": ["exec_create", "exec_start"]})]
        commands = {c.labels["tcplab.host"]: c.attrs["Config"]["Cmd"]
                    for c in client.containers.list(filters={"label": [f"tcplab.lab={name}", "tcplab.role=host"]})}
        run = json.loads((run_dir / "run.json").read_text())
        ips = run["hosts"]
        while_up = list(read_transitions(run_dir / "sockets" / "transitions.jsonl"))
        files = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}
        down = lab_cmd("down", name, cwd=tmp, timeout=120)
        assert down.returncode == 0, down.stderr
        yield Observed(name, run_dir, ips, run["run"], up_seconds, while_up, files, execs, commands)
    finally:
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp, timeout=120)


def test_every_host_has_a_complete_whole_frame_capture(observed: Observed) -> None:
    run = json.loads((observed.run_dir / "run.json").read_text())
    for host in observed.ips:
        pcap = observed.run_dir / "capture" / f"{host}.pcap"
        packets = complete_pcap(pcap)
        assert packets, f"{host}.pcap is empty"
        stats = run["capture_stats"][host]
        assert stats["captured"] == len(packets), (host, stats)
        assert stats["dropped"] == 0, (host, stats)
    assert {f"capture/{h}.pcap" for h in observed.ips} <= observed.files_while_up, "captures are written during the run"


def test_both_ends_captured_every_packet_to_the_last(observed: Observed) -> None:
    """Each packet between two hosts is in the sender's and in the receiver's capture: no capture lost its tail."""
    ip_host = {ip: h for h, ip in observed.ips.items()}
    held: dict[str, set[tuple[object, ...]]] = {}
    for host in observed.ips:
        held[host] = {(p.src, p.dst, p.sport, p.dport, p.seq, p.ack, p.flags, p.ip_id)
                      for p in tcp_packets(observed.run_dir / "capture" / f"{host}.pcap")}
    every = set().union(*held.values())
    assert every
    for key in every:
        for host in (ip_host[str(key[0])], ip_host[str(key[1])]):
            assert key in held[host], f"{host}.pcap lacks {key}"


def test_server_capture_holds_both_handshakes(observed: Observed) -> None:
    packets = tcp_packets(observed.run_dir / "capture" / "server.pcap")
    server = observed.ips["server"]
    linux = handshake(packets, observed.ips["linux"], server)
    win = handshake(packets, observed.ips["win"], server)
    assert linux[3] < win[1], "linux connects first, as the steps say"


def test_merged_pcapng_opens_in_tshark_without_warnings(observed: Observed) -> None:
    merged = observed.run_dir / "capture" / "all.pcapng"
    out, noise = tshark("-r", str(merged))
    assert noise == [], noise
    assert len(out.splitlines()) > 0
    _, noise = tshark("-r", str(merged), "-z", "expert,warn", "-q")
    assert noise == [], noise


def test_merged_pcapng_has_every_packet_once_from_its_sender(observed: Observed) -> None:
    merged = observed.run_dir / "capture" / "all.pcapng"
    out, _ = tshark("-r", str(merged), "-T", "fields", "-E", "separator=,", "-e", "frame.interface_name",
                    "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq_raw",
                    "-e", "tcp.ack_raw", "-e", "ip.id", "-e", "tcp.flags", "-e", "frame.time_epoch")
    rows = [line.split(",") for line in out.splitlines()]
    keys = [tuple(r[1:9]) for r in rows]
    assert len(keys) == len(set(keys)), "a packet appears twice in all.pcapng"
    ip_host = {ip: h for h, ip in observed.ips.items()}
    for r in rows:
        assert r[0] == ip_host[r[1]], f"packet {r[1:5]} is the copy of {r[0]}, not of its sender"
    times = [float(r[9]) for r in rows]
    assert times == sorted(times), "all.pcapng is not in time order"
    wanted = set()
    for host in observed.ips:
        for p in tcp_packets(observed.run_dir / "capture" / f"{host}.pcap"):
            wanted.add((p.src, p.dst, str(p.sport), str(p.dport), str(p.seq), str(p.ack), hex(p.ip_id)))
    seen = {(k[0], k[1], k[2], k[3], k[4], k[5], hex(int(k[6], 16))) for k in keys}
    assert seen == wanted, f"lost {wanted - seen}, extra {seen - wanted}"


def test_step_comments_sit_on_the_packets_they_caused(observed: Observed) -> None:
    merged = observed.run_dir / "capture" / "all.pcapng"
    out, noise = tshark("-r", str(merged), "-Y", "frame.comment", "-T", "fields", "-E", "separator=|",
                        "-e", "frame.number", "-e", "ip.src", "-e", "tcp.flags", "-e", "frame.comment")
    assert noise == []
    by_comment: dict[str, tuple[str, int]] = {}
    for line in out.splitlines():
        number, src, flags, comments = line.split("|", 3)
        for c in comments.split(","):
            by_comment[c] = (src, int(flags, 16))
    assert set(by_comment) >= {f"step: {s['title']}" for s in steps_played(observed.run_dir)
                               if not s["title"].startswith("snapshot") and not s["title"].startswith("wait")}
    src, flags = by_comment["step: win closes telnet"]
    assert src == observed.ips["win"] and flags & FIN, "the close step's comment is not on win's FIN"
    src, flags = by_comment["step: win connects with telnet"]
    assert src == observed.ips["win"] and flags & (SYN | ACK) == SYN


def test_snapshot_after_the_close_shows_close_wait_and_fin_wait2(observed: Observed) -> None:
    snaps = json.loads((observed.run_dir / "sockets" / "snapshots.json").read_text())
    snap = snaps["close_wait"]
    server, win = observed.ips["server"], observed.ips["win"]
    for tool in ("netstat", "ss"):
        mine = [r for r in records(snap, "server", tool) if r.local_port == 8000 and r.peer_addr == win]
        assert [(r.state, r.pid, r.program) for r in mine] == [("CLOSE_WAIT", None, None)], (tool, mine)
        assert mine[0].recv_q == 1, "the FIN counts as one byte not read"
        theirs = [r for r in records(snap, "win", tool) if r.peer_addr == server and r.peer_port == 8000]
        assert [r.state for r in theirs] == ["FIN_WAIT2"], (tool, theirs)
    linux = [r for r in records(snap, "server", "netstat") if r.peer_addr == observed.ips["linux"]]
    assert linux and linux[0].state == "ESTABLISHED" and linux[0].program == "server" and linux[0].pid
    raw = (observed.run_dir / "sockets" / "server-close_wait.txt").read_text()
    assert raw == snap["hosts"]["server"]["netstat"]["raw"] and "CLOSE_WAIT" in raw
    assert snap["hosts"]["server"]["ss"]["argv"] == ["ss", "-tanpoei"]


def test_every_snapshot_and_the_final_one_for_every_host(observed: Observed) -> None:
    snaps = json.loads((observed.run_dir / "sockets" / "snapshots.json").read_text())
    labels = [s["name"] for s in steps_played(observed.run_dir) if s["kind"] == "snapshot"]
    assert labels and set(snaps) == set(labels) | {"end"}
    for label in [*labels, "end"]:
        assert set(snaps[label]["hosts"]) == set(observed.ips), label
        for host in observed.ips:
            for suffix, tool in (("", "netstat"), (".ss", "ss")):
                text = (observed.run_dir / "sockets" / f"{host}-{label}{suffix}.txt").read_text()
                assert text == snaps[label]["hosts"][host][tool]["raw"] != ""
    listen = [r for r in records(snaps["end"], "server", "ss") if r.state == "LISTEN" and r.local_port == 8000]
    assert len(listen) == 1 and listen[0].program == "server"


def test_transitions_put_close_wait_at_the_fin(observed: Observed) -> None:
    server, win = observed.ips["server"], observed.ips["win"]
    trans = list(read_transitions(observed.run_dir / "sockets" / "transitions.jsonl"))
    packets = tcp_packets(observed.run_dir / "capture" / "server.pcap")
    fin = fin_from(packets, win, server)
    cw = [t for t in trans if t["event"] == "inet_sock_set_state" and t["host"] == "server" and t["peer"] == "win"
          and t["sport"] == 8000 and t["dport"] == fin.sport and (t["old"], t["new"]) == ("ESTABLISHED", "CLOSE_WAIT")]
    assert len(cw) == 1, trans
    assert abs(cw[0]["ts"] - fin.ts) < 0.005, f"CLOSE_WAIT {cw[0]['ts']:.6f} vs FIN {fin.ts:.6f}"
    fw = [t for t in trans if t["host"] == "win" and t["sport"] == fin.sport and t.get("new") == "FIN_WAIT1"]
    assert fw and fw[0]["ts"] <= cw[0]["ts"]
    assert any(t == cw[0] for t in observed.transitions_while_up), "transitions are written while the lab runs"


def test_transitions_are_the_labs_own_and_attributed(observed: Observed) -> None:
    ip_host = {ip: h for h, ip in observed.ips.items()}
    trans = list(read_transitions(observed.run_dir / "sockets" / "transitions.jsonl"))
    assert trans
    for t in trans:
        assert t["saddr"] in ip_host or t["daddr"] in ip_host, t
        assert t["host"] == ip_host.get(t["saddr"]) and t["peer"] == ip_host.get(t["daddr"]), t
    handshakes = {(t["host"], t["new"]) for t in trans if t["event"] == "inet_sock_set_state"}
    assert {("linux", "ESTABLISHED"), ("win", "ESTABLISHED"), ("server", "SYN_RECV")} <= handshakes


def test_logs_steps_and_nothing_left(observed: Observed) -> None:
    logs = observed.run_dir / "logs"
    packets = tcp_packets(observed.run_dir / "capture" / "server.pcap")
    linux_port = handshake(packets, observed.ips["linux"], observed.ips["server"])[0]
    server_log = (logs / "server.log").read_text()
    assert f"Accept client {observed.ips['linux']}:{linux_port}" in server_log
    assert f"Accept client {observed.ips['win']}" not in server_log, "the server never accepts win"
    assert "Connected to" in (logs / "linux.log").read_text()
    played = steps_played(observed.run_dir)
    lab_steps = len(yaml.safe_load((observed.run_dir / "lab.yaml").read_text())["steps"])
    assert [s["index"] for s in played] == list(range(lab_steps))
    assert all(s["outcome"] == "ok" and s["end"] >= s["start"] for s in played)
    assert labeled_objects(observed.name) == []
    assert not Path("/sys/kernel/tracing/instances", instance_name(observed.run_id)).exists()
    assert not (observed.run_dir / ".agents").exists()


def test_the_story_is_played_through_the_host_agents_not_docker_exec(observed: Observed) -> None:
    """Every program start, readiness check, stop and snapshot of `lab up` went through labagent."""
    assert observed.host_commands == {h: ["labagent", "/run/lab/agent"] for h in observed.ips}
    assert observed.execs_while_up == []


# --- runs cut short ----------------------------------------------------------------

def _start_up(tmp: Path, path: Path, run_dir: Path) -> tuple[subprocess.Popen[str], Any, Any]:
    env = dict(os.environ, TCPLAB_HOME=str(ROOT))
    out, err = open(tmp / "up.out", "w+"), open(tmp / "up.err", "w+")
    proc = subprocess.Popen([sys.executable, str(LAB_PY), "up", str(path), "--out", str(run_dir)], cwd=tmp,
                            stdout=out, stderr=err, text=True, env=env)
    return proc, out, err


def _wait_for_long_step(proc: subprocess.Popen[str], run_dir: Path, err_path: Path) -> None:
    def in_long_step() -> bool:
        assert proc.poll() is None, f"lab up ended early ({proc.returncode}): {err_path.read_text()}"
        done = steps_played(run_dir) if (run_dir / "steps.jsonl").exists() else []
        return len(done) == INTERRUPT_STEP and f"step {INTERRUPT_STEP}:" in err_path.read_text()
    wait_for(in_long_step, 300, f"step {INTERRUPT_STEP} to start")


def _assert_kept(run_dir: Path, name: str, outcome: str) -> None:
    played = steps_played(run_dir)
    assert [s["outcome"] for s in played] == ["ok"] * INTERRUPT_STEP + [outcome], played
    run = json.loads((run_dir / "run.json").read_text())
    ips = run["hosts"]
    for host in ips:
        complete_pcap(run_dir / "capture" / f"{host}.pcap")
    fin_from(tcp_packets(run_dir / "capture" / "server.pcap"), ips["win"], ips["server"])
    out, noise = tshark("-r", str(run_dir / "capture" / "all.pcapng"), "-Y", "frame.comment")
    assert noise == [] and out.strip()
    assert labeled_objects(name) == []
    assert not Path("/sys/kernel/tracing/instances", instance_name(run["run"])).exists()


def test_ctrl_c_during_a_step_keeps_what_was_captured(tmp_path: Path) -> None:
    """Also: the lab file's capture filter is the one tcpdump applies (here: none of the server's packets)."""
    path, name = make_lab(tmp_path, BASE, changes={**BASE_CHANGES, **LONG_WAIT,
                                                   "capture": {"filter": "tcp and not src port 8000"}})
    run_dir = tmp_path / "run"
    proc, out, err = _start_up(tmp_path, path, run_dir)
    try:
        _wait_for_long_step(proc, run_dir, Path(err.name))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 130, Path(err.name).read_text()
        _assert_kept(run_dir, name, "interrupted")
        assert json.loads((run_dir / "run.json").read_text())["state"] == "interrupted"
        for pcap in (run_dir / "capture").glob("*.pcap"):
            assert [p for p in tcp_packets(pcap) if p.sport == 8000] == [], f"{pcap.name}: the filter was not applied"
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close(), err.close()
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp_path, timeout=120)


def test_a_host_killed_from_outside_ends_the_run_with_status_3(tmp_path: Path) -> None:
    import docker

    path, name = make_lab(tmp_path, BASE, changes={**BASE_CHANGES, **LONG_WAIT})
    run_dir = tmp_path / "run"
    proc, out, err = _start_up(tmp_path, path, run_dir)
    try:
        _wait_for_long_step(proc, run_dir, Path(err.name))
        killed = time.monotonic()
        docker.from_env().containers.get(f"tcplab-{name}-server").kill()
        code = proc.wait(timeout=90)
        stderr = Path(err.name).read_text()
        assert code == 3, stderr
        assert time.monotonic() - killed < 20, "the crash was noticed only when the long wait ended"
        final = [line for line in stderr.splitlines() if line.startswith("lab:")]
        assert len(final) == 1 and "server" in final[0], stderr
        _assert_kept(run_dir, name, "failed")
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close(), err.close()
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp_path, timeout=120)
