"""Issue 5: the Windows peer sidecar on a real engine, driven with the Docker SDK alone (no lab runner).

Cast (one internal bridge network of its own, labelled tcplab.lab=peertest):
  server  tcplab/server, /opt/lab/server on one port per test (labrun)
  lin     tcplab/client, the dummy first telnet the single-threaded server serves
  win     tcplab/client with host_sysctls(Peer(os="windows", fin_wait2_timeout=1.0, syn="windows-7"))
  peer    tcplab/tools winpeer.py in win's network namespace (NET_RAW, NET_ADMIN)
  capture tcplab/tools tcpdump in the server's network namespace, one per test (stopped to flush)

What the server's capture must show is SCENARIO.md steps 3-5 with T = 1 s:
Windows SYN fingerprint, [F.] seq 1 ack 1, the server's ack 2 and no FIN of its
own, then exactly one [R.] seq 2 ack 1 win 0 at FIN + 1.0 s.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from tcplab.model.lab import Peer
from tcplab.peers.windows import READY_LINE, WindowsPeerSidecar, host_sysctls
from tcplab.play.naming import process_start
from tcplab.wire import ACK, FIN, RST, SYN, TcpPacket, decode_tcp, read_pcap_file

pytestmark = pytest.mark.integration

T = 1.0  # the emulated FIN_WAIT_2 timeout
TOLERANCE = 0.050
WIN_PEER = Peer(os="windows", fin_wait2_timeout=T, syn="windows-7")
LAB = "peertest"
V = TypeVar("V")
TIMINGS: list[float] = []  # RST - FIN - T of every checked reset, printed at the end (pytest -s)


def wait_for(what: str, fn: Callable[[], V], timeout: float, interval: float = 0.02) -> V:
    """Poll ``fn`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Env:
    client: Any
    run: str
    labels: dict[str, str]
    network: Any
    server: Any
    lin: Any
    win: Any
    peer: Any
    ips: dict[str, str]
    tmp: Path

    def sh(self, container: Any, *argv: str) -> str:
        code, out = container.exec_run(list(argv))
        text = out.decode("utf-8", "replace")
        assert code == 0, f"{container.name}: {' '.join(argv)} exited {code}: {text}"
        return text

    def sockets(self, container: Any, port: int) -> list[tuple[str, str, int, str, int]]:
        """(state, local ip, local port, peer ip, peer port) of every TCP socket with ``port`` at either end."""
        rows = []
        for line in self.sh(container, "ss", "-tanH").splitlines():
            f = line.split()
            if len(f) < 5:
                continue
            (la, _, lp), (pa, _, pp) = f[3].rpartition(":"), f[4].rpartition(":")
            if not lp.isdigit():
                continue
            peer_port = int(pp) if pp.isdigit() else 0  # "*" for a listener
            if port in (int(lp), peer_port):
                rows.append((f[0], la, int(lp), pa, peer_port))
        return rows

    def sidecar(self, of: Any, name: str, command: list[str], caps: list[str], mount: tuple[Path, str]) -> Any:
        return self.client.containers.run(
            "tcplab/tools", command, detach=True, name=f"{self.run}-{name}",
            labels={**self.labels, "tcplab.role": name},
            network_mode=f"container:{of.id}", cap_add=caps, init=True, mem_limit="256m", pids_limit=64,
            volumes={str(mount[0]): {"bind": mount[1], "mode": "rw"}})

    def peer_events(self) -> list[dict[str, Any]]:
        path = self.tmp / "peer" / "win.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _logs(container: Any) -> str:
    return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")


def _remove_run(client: Any, run: str) -> None:
    """Every container and network of this run, sidecars first (they live in their hosts' namespaces)."""
    f = {"label": [f"tcplab.run={run}"]}
    containers = client.containers.list(all=True, filters=f)
    for c in sorted(containers, key=lambda c: c.labels.get("tcplab.role") == "host"):
        try:
            c.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
    for n in client.networks.list(filters=f):
        try:
            n.remove()
        except Exception:  # noqa: BLE001 - removed already
            pass


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure to reach the engine
        pytest.skip(f"no Docker engine: {e}")
    for image in ("tcplab/server", "tcplab/client", "tcplab/tools"):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.skip(f"image {image} is not built")
    run = f"peertest-{uuid.uuid4().hex[:8]}"
    # the owner labels tell a concurrent `lab gc` that this run's process is alive: hands off
    pid = os.getpid()
    labels = {"tcplab.lab": LAB, "tcplab.run": run, "tcplab.owner-pid": str(pid),
              "tcplab.owner-start": process_start(pid)}
    tmp = tmp_path_factory.mktemp("winpeer")
    (tmp / "peer").mkdir()
    e: Env | None = None
    try:
        network = client.networks.create(run, driver="bridge", internal=True, labels=labels)

        def host(name: str, image: str, sysctls: dict[str, str] | None = None) -> Any:
            return client.containers.run(
                image, ["sleep", "infinity"], detach=True, name=f"{run}-{name}", hostname=name,
                labels={**labels, "tcplab.role": "host"}, network=network.name, init=True,
                sysctls=sysctls or None, cap_drop=["NET_RAW"], mem_limit="256m", pids_limit=256)

        server = host("server", "tcplab/server")
        lin = host("lin", "tcplab/client")
        win = host("win", "tcplab/client", host_sysctls(WIN_PEER))
        ips = {}
        for c in (server, lin, win):
            c.reload()
            ips[c.name.rsplit("-", 1)[1]] = c.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        side = WindowsPeerSidecar.for_peer("win", WIN_PEER)
        assert side is not None and side.command()[side.command().index("--events") + 1] == "/peer/win.jsonl"
        e = Env(client, run, labels, network, server, lin, win, None, ips, tmp)
        e.peer = e.sidecar(win, "win-peer", side.command(), list(side.capabilities), (tmp / "peer", "/peer"))

        def peer_ready() -> bool:
            if READY_LINE in _logs(e.peer):
                return True
            e.peer.reload()
            if e.peer.status != "running":
                pytest.fail(f"winpeer exited: {_logs(e.peer)}")
            return False

        wait_for("the peer sidecar's ready line", peer_ready, timeout=30, interval=0.05)
        yield e
    finally:
        if TIMINGS and e is not None:
            print("\nRST - (FIN + %.1f s) on the server's capture, ms: %s"
                  % (T, ", ".join(f"{1000 * d:+.3f}" for d in TIMINGS)))
            print("\n".join(ev["detail"] for ev in e.peer_events() if ev["event"] == "rst_sent"))
        _remove_run(client, run)
        assert not client.containers.list(all=True, filters={"label": [f"tcplab.run={run}"]})
        assert not client.networks.list(filters={"label": [f"tcplab.run={run}"]})


@contextmanager
def capture(env: Env, name: str) -> Iterator[Path]:
    """tcpdump in the server's namespace for one test; stopped (flushed) when the block ends."""
    out = env.tmp / f"cap-{name}"
    out.mkdir()
    cmd = ["tcpdump", "-i", "eth0", "-n", "-p", "-U", "--immediate-mode", "-Z", "root", "-s", "0",
           "-w", "/cap/server.pcap", "tcp"]
    cap = env.sidecar(env.server, f"cap-{name}", cmd, ["NET_RAW"], (out, "/cap"))
    try:
        wait_for("tcpdump to listen", lambda: "listening on" in _logs(cap), timeout=15)
        yield out / "server.pcap"
    finally:
        cap.stop(timeout=10)


def packets(pcap: Path) -> list[TcpPacket]:
    if not pcap.exists():
        return []
    return [p for p in map(decode_tcp, read_pcap_file(str(pcap))) if p is not None]


def conn_packets(pkts: list[TcpPacket], a: tuple[str, int], b: tuple[str, int]) -> list[TcpPacket]:
    ends = {a, b}
    return [p for p in pkts if {(p.src, p.sport), (p.dst, p.dport)} == ends]


def start_server(env: Env, port: int, fixed: bool = False) -> None:
    argv = ["labrun", f"srv{port}"]
    if fixed:
        argv += ["env", "LAB_SERVER_CLOSE_ON_FIN=1"]
    env.sh(env.server, *argv, "/opt/lab/server", str(port), "5")
    wait_for(f"LISTEN on {port}", lambda: any(s[0] == "LISTEN" for s in env.sockets(env.server, port)), timeout=10)


def connect(env: Env, host: Any, name: str, port: int) -> int:
    """telnet from ``host`` to the server as lab program ``name``; returns the local port once ESTABLISHED."""
    server_ip = env.ips["server"]
    before = {s[2] for s in env.sockets(host, port)}
    env.sh(host, "labrun", name, "telnet", server_ip, str(port))

    def established() -> int | None:
        for state, _, lport, pip, pport in env.sockets(host, port):
            if state == "ESTAB" and pip == server_ip and pport == port and lport not in before:
                return lport
        return None

    return wait_for(f"{name} ESTABLISHED", established, timeout=10)


def first_client(env: Env, port: int) -> None:
    """The Linux client the server serves: the win connection then waits in the accept queue."""
    connect(env, env.lin, f"lin{port}", port)
    log = f"/var/log/lab/srv{port}.log"
    wait_for("the server to accept the first client",
             lambda: "Accept client" in env.server.exec_run(["cat", log])[1].decode(), timeout=10)


def rsts_from(pkts: list[TcpPacket], ip: str, sport: int) -> list[TcpPacket]:
    return [p for p in pkts if p.src == ip and p.sport == sport and p.flags & RST]


def wait_rst(pcap: Path, ip: str, sport: int, timeout: float) -> TcpPacket:
    return wait_for(f"an RST from {ip}:{sport}", lambda: (rsts_from(packets(pcap), ip, sport) or [None])[0],
                    timeout=timeout)


def wait_socket_gone(env: Env, sport: int, port: int) -> None:
    """Neither end keeps a socket of the connection: no FIN-WAIT-2 on win, no CLOSE-WAIT on the server."""
    win_ip = env.ips["win"]
    wait_for(f"win's socket :{sport} to go", lambda: not [s for s in env.sockets(env.win, port) if s[2] == sport],
             timeout=3)
    rows = env.sockets(env.win, port)
    assert not [s for s in rows if s[0] == "FIN-WAIT-2" and s[2] == sport], rows
    wait_for(f"the server's CLOSE-WAIT with :{sport} to go",
             lambda: not [s for s in env.sockets(env.server, port) if s[3] == win_ip and s[4] == sport], timeout=3)


def check_reset_connection(pkts: list[TcpPacket], win: tuple[str, int], server: tuple[str, int]) -> float:
    """SCENARIO steps 3-5 for one connection; returns RST time - FIN time."""
    c = conn_packets(pkts, win, server)
    from_win = [p for p in c if (p.src, p.sport) == win]
    from_srv = [p for p in c if (p.src, p.sport) == server]
    shown = "\n".join(f"{p.ts:.6f} {p.src}:{p.sport} > {p.dst}:{p.dport} [{p.flag_string()}] seq {p.seq} "
                      f"ack {p.ack} win {p.win} ttl {p.ttl} {p.option_names()}" for p in c)

    syns = [p for p in from_win if p.flags & SYN and not p.flags & ACK]
    assert len(syns) == 1, shown
    syn = syns[0]
    assert syn.ttl == 128, shown
    assert syn.win == 8192, shown
    assert "TS" not in syn.option_names(), shown
    assert syn.option_names() == ["mss", "nop", "wscale", "nop", "nop", "sackOK"], shown
    assert syn.option("wscale") == 8 and syn.option("mss") == 1460, shown
    isn = syn.seq

    synack = [p for p in from_srv if p.flags & SYN and p.flags & ACK]
    assert len(synack) == 1 and synack[0].ack == (isn + 1) % 2**32, shown
    irs = synack[0].seq
    after_synack = [p for p in from_win if p.ts >= synack[0].ts]
    assert after_synack and after_synack[0].flag_string() == "." and after_synack[0].ack == (irs + 1) % 2**32, shown

    def rel(p: TcpPacket) -> tuple[int, int]:
        return (p.seq - isn) % 2**32, (p.ack - irs) % 2**32

    fins = [p for p in from_win if p.flags & FIN]
    assert fins and fins[0].flag_string() == "F." and rel(fins[0]) == (1, 1), shown
    fin = fins[0]
    assert any(p.flag_string() == "." and (p.seq - irs) % 2**32 == 1 and (p.ack - isn) % 2**32 == 2
               and p.ts >= fin.ts for p in from_srv), "the server must ack the FIN (ack 2)\n" + shown
    assert not [p for p in from_srv if p.flags & FIN], "the server must never send its own FIN\n" + shown
    assert not [p for p in from_srv if p.flags & RST], shown

    rsts = [p for p in from_win if p.flags & RST]
    assert len(rsts) == 1, "exactly one RST from win\n" + shown
    rst = rsts[0]
    assert rst.flag_string() == "R." and rel(rst) == (2, 1) and rst.win == 0, shown
    assert rst.options == [] and rst.ttl == 128, shown
    delay = rst.ts - fin.ts
    TIMINGS.append(delay - T)
    assert abs(delay - T) <= TOLERANCE, f"RST at FIN + {delay:.6f} s, wanted {T} s ± {TOLERANCE}\n{shown}"
    assert rst is c[-1], "nothing after the RST\n" + shown
    return delay


def test_fin_wait2_timer_resets_once(env: Env) -> None:
    """The scenario: win closes telnet while queued; the server acks, never FINs; [R.] seq 2 ack 1 at FIN + T."""
    port = 8000
    with capture(env, "one") as pcap:
        start_server(env, port)
        first_client(env, port)
        sport = connect(env, env.win, "telnet2", port)
        assert [s[0] for s in env.sockets(env.server, port) if s[4] == sport] == ["ESTAB"]
        env.sh(env.win, "labstop", "telnet2")
        wait_for("the server's CLOSE-WAIT", lambda: any(s[0] == "CLOSE-WAIT" and s[4] == sport
                                                        for s in env.sockets(env.server, port)), timeout=3)
        assert [s[0] for s in env.sockets(env.win, port) if s[2] == sport] == ["FIN-WAIT-2"]
        wait_rst(pcap, env.ips["win"], sport, timeout=T + 5)
        wait_socket_gone(env, sport, port)
    delay = check_reset_connection(packets(pcap), (env.ips["win"], sport), (env.ips["server"], port))

    kinds = [e["event"] for e in env.peer_events() if e["conn"] and e["conn"]["sport"] == sport]
    assert kinds == ["syn_rewritten", "fin_sent", "fin_acked", "rst_sent", "socket_killed"], kinds
    killed = [e for e in env.peer_events() if e["event"] == "socket_killed" and e["conn"]["sport"] == sport][0]
    assert "removed" in killed["detail"], killed
    print(f"\nRST at FIN + {delay:.6f} s; {killed['detail']}")


def test_two_connections_have_their_own_timers(env: Env) -> None:
    port = 8002
    gap = 0.5
    with capture(env, "two") as pcap:
        start_server(env, port)
        first_client(env, port)
        a = connect(env, env.win, "wa", port)
        b = connect(env, env.win, "wb", port)
        win_ip = env.ips["win"]
        env.sh(env.win, "labstop", "wa")
        fin_a = wait_for("win's first FIN", lambda: [p for p in packets(pcap) if p.src == win_ip and p.sport == a
                                                     and p.flags & FIN], timeout=3)[0]
        # the story's own spacing: the second window is closed half a second after the first
        time.sleep(max(0.0, fin_a.ts + gap - time.time()))
        env.sh(env.win, "labstop", "wb")
        rst_a = wait_rst(pcap, win_ip, a, timeout=T + 5)
        rst_b = wait_rst(pcap, win_ip, b, timeout=T + 5)
        wait_socket_gone(env, a, port)
        wait_socket_gone(env, b, port)
    pkts = packets(pcap)
    server = (env.ips["server"], port)
    check_reset_connection(pkts, (win_ip, a), server)
    check_reset_connection(pkts, (win_ip, b), server)
    fin_b = [p for p in pkts if p.src == win_ip and p.sport == b and p.flags & FIN][0]
    assert fin_b.ts - fin_a.ts >= gap - 0.01
    # each at its own deadline: the first reset comes before the second connection's deadline
    assert rst_a.ts < fin_b.ts + T - 0.2 < rst_b.ts
    assert abs((rst_b.ts - rst_a.ts) - (fin_b.ts - fin_a.ts)) < 2 * TOLERANCE


def test_peer_fin_in_time_cancels_the_timer(env: Env) -> None:
    """The fixed server closes when its client closes: FIN_WAIT_2 ends normally, no RST ever."""
    port = 8004
    win_ip = env.ips["win"]
    with capture(env, "fixed") as pcap:
        start_server(env, port, fixed=True)
        first_client(env, port)
        sport = connect(env, env.win, "wfix", port)
        env.sh(env.win, "labstop", "wfix")
        fin = wait_for("win's FIN", lambda: [p for p in packets(pcap)
                                             if p.src == win_ip and p.sport == sport and p.flags & FIN], timeout=3)[0]
        wait_for("the server's FIN", lambda: [p for p in packets(pcap) if p.dst == win_ip and p.dport == sport
                                              and p.flags & FIN], timeout=3)
        wait_for("the peer to see the server's FIN",
                 lambda: [e for e in env.peer_events() if e["event"] == "peer_fin" and e["conn"]["sport"] == sport],
                 timeout=3)
        # the one deliberate wait: past the deadline the timer would have had, plus margin
        time.sleep(max(0.0, fin.ts + T + 0.3 - time.time()))
        states = [s[0] for s in env.sockets(env.win, port) if s[2] == sport]
        assert states in ([], ["TIME-WAIT"]), states
    pkts = conn_packets(packets(pcap), (win_ip, sport), (env.ips["server"], port))
    assert not [p for p in pkts if p.flags & RST], "no RST when the peer closes in time"
    kinds = [e["event"] for e in env.peer_events() if e["conn"] and e["conn"]["sport"] == sport]
    assert "rst_sent" not in kinds and "socket_killed" not in kinds, kinds
    assert "peer_fin" in kinds, kinds
    print(f"\npeer events of the connection closed in time: {kinds}")
    if "fin_acked" in kinds:  # the server's ack came alone: the timer ran and was cancelled
        assert kinds.index("timer_cancelled") > kinds.index("fin_acked"), kinds


def test_peer_fin_after_the_ack_cancels_the_running_timer(env: Env) -> None:
    """The story's server, but its first client leaves before the deadline: the server then accepts the
    queued connection, reads EOF and closes. Its FIN comes after its ACK, while the timer runs."""
    port = 8008
    win_ip = env.ips["win"]
    with capture(env, "late") as pcap:
        start_server(env, port)
        first_client(env, port)
        sport = connect(env, env.win, "wlate", port)
        env.sh(env.win, "labstop", "wlate")

        def events(kind: str) -> list[dict[str, Any]]:
            return [e for e in env.peer_events() if e["event"] == kind and e["conn"]["sport"] == sport]

        acked = wait_for("the timer to start (fin_acked)", lambda: events("fin_acked"), timeout=3)[0]
        fin = [p for p in packets(pcap) if p.src == win_ip and p.sport == sport and p.flags & FIN][0]
        assert time.time() < fin.ts + T - 0.3, "too slow to test a FIN before the deadline"
        env.sh(env.lin, "labstop", f"lin{port}")
        wait_for("the server's FIN", lambda: [p for p in packets(pcap) if p.dst == win_ip and p.dport == sport
                                              and p.flags & FIN], timeout=3)
        wait_for("the timer to be cancelled", lambda: events("timer_cancelled"), timeout=3)
        # the one deliberate wait: past the deadline the timer had, plus margin
        time.sleep(max(0.0, fin.ts + T + 0.3 - time.time()))
        states = [s[0] for s in env.sockets(env.win, port) if s[2] == sport]
        assert states in ([], ["TIME-WAIT"]), states
    pkts = conn_packets(packets(pcap), (win_ip, sport), (env.ips["server"], port))
    srv_fin = [p for p in pkts if p.src == env.ips["server"] and p.flags & FIN][0]
    assert acked["ts"] < srv_fin.ts < fin.ts + T
    assert not [p for p in pkts if p.flags & RST], "no RST when the peer closes in time"
    kinds = [e["event"] for e in env.peer_events() if e["conn"] and e["conn"]["sport"] == sport]
    assert kinds == ["syn_rewritten", "fin_sent", "fin_acked", "peer_fin", "timer_cancelled"], kinds


def test_sigterm_removes_the_rule_and_stops_synrewrite(env: Env) -> None:
    """Runs last: the sidecar ends on SIGTERM with status 0 and leaves the host's netfilter as it found it."""
    def mangle_rules() -> str:
        out = env.client.containers.run("tcplab/tools", ["iptables", "-w", "-t", "mangle", "-S", "OUTPUT"],
                                        remove=True, network_mode=f"container:{env.win.id}", cap_add=["NET_ADMIN"],
                                        labels={**env.labels, "tcplab.role": "check"})
        return out.decode()

    assert "NFQUEUE" in mangle_rules()
    env.peer.stop(timeout=10)
    env.peer.reload()
    logs = _logs(env.peer)
    assert env.peer.attrs["State"]["ExitCode"] == 0, logs
    assert "synrewrite stopped" in logs and "winpeer stopped" in logs, logs
    assert "NFQUEUE" not in mangle_rules()
    # SYNs are neither queued to nobody (dropped) nor rewritten any more
    port = 8006
    with capture(env, "after") as pcap:
        start_server(env, port)
        sport = connect(env, env.win, "wafter", port)
    syn = [p for p in packets(pcap) if p.sport == sport and p.flags & SYN][0]
    assert syn.win != 8192 and syn.option_names() != ["mss", "nop", "wscale", "nop", "nop", "sackOK"]
