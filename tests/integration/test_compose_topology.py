"""The exported compose file of a lab of two networks runs under docker-compose: client - router - server."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tcplab.observe.watch import PcapTail
from tcplab.wire import ACK, SYN

from ..conftest import lab_cmd
from .test_compose import compose, compose_down, poll, service
from .test_topology import routed_lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("compose-topology")
    path, name, moved = routed_lab(tmp)
    file = tmp / "compose" / f"{name}.yml"
    lab_cmd("export", str(path), "--out", str(file), cwd=tmp, check=True)
    try:
        res = compose(file, name, "up", "-d")
        assert res.returncode == 0, res.stderr
        yield file, name, moved
    finally:
        compose_down(file, name)


def test_compose_networks_route_the_client_to_the_server(up: tuple[Path, str, dict[str, str]]) -> None:
    file, project, moved = up
    server_ip = moved["10.231.2."] + "2"
    networks = service(project, "router").attrs["NetworkSettings"]["Networks"]
    assert sorted(n["IPAddress"] for n in networks.values()) == [moved["10.231.1."] + "2", moved["10.231.2."] + "3"]
    for side in ("client-routes", "server-routes", "router-routes"):
        poll(f"{side} ready", lambda side=side: b"routes ready" in service(project, side).logs())
    poll("server listening", lambda: service(project, "server").exec_run(
        ["ss", "-Htln", "sport = :8000"]).output.strip())
    res = compose(file, project, "exec", "-T", "client", "labrun", "t", "telnet", server_ip, "8000")
    assert res.returncode == 0, res.stderr
    client = service(project, "client")
    poll("client ESTABLISHED to the server", lambda: f"{server_ip}:8000" in client.exec_run(
        ["ss", "-Htan", "state", "established"]).output.decode())
    # the router's capture of its interface on the right network holds the forwarded handshake
    tail = PcapTail(file.parent / "runs" / project / "capture" / "router.right.pcap")
    seen: list = []

    def handshake() -> bool:
        seen.extend(tail.new_packets())
        return {SYN, SYN | ACK} <= {p.flags & (SYN | ACK) for p in seen if server_ip in (p.src, p.dst)}

    assert poll("SYN and SYN-ACK on the router's right interface", handshake)
