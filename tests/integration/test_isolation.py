"""Issue 8.6/8.7: two labs at once see nothing of each other; networks internal; limits applied."""
from __future__ import annotations

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tcplab.analysis.packets import load_traffic

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration
QUICK = {"steps.6": {"wait": {"seconds": "0.2s"}, "timeout": "5s"}}


@pytest.fixture(scope="module")
def two_labs(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("isolation")
    a = make_lab(tmp, "closewait-linux", changes={**QUICK, "hosts.server.limits": {"memory": "64m", "cpus": 0.5,
                                                                                     "pids": 100}})
    b = make_lab(tmp, "closewait-linux", changes=QUICK)
    with ThreadPoolExecutor(2) as pool:  # both come up at the same time
        results = list(pool.map(lambda lab: lab_cmd("up", str(lab[0]), "--out", str(tmp / lab[1]), cwd=tmp),
                                [a, b]))
    try:
        for r in results:
            assert r.returncode == 0, r.stderr
        yield tmp, a[1], b[1]
    finally:
        for _, name in (a, b):
            lab_cmd("down", name, cwd=tmp)
            assert labeled_objects(name) == []


def test_each_lab_sees_only_its_own_traffic_and_sockets(two_labs) -> None:
    tmp, a, b = two_labs
    for me, other in ((a, b), (b, a)):
        run = tmp / me
        subnet = ipaddress.ip_network(json.loads((run / "run.json").read_text())["subnet"])
        other_subnet = json.loads((tmp / other / "run.json").read_text())["subnet"]
        assert str(subnet) != other_subnet
        traffic = load_traffic(run)
        assert len(traffic.packets) >= 8  # both handshakes, the FIN and its ACK
        for p in traffic.packets:
            assert ipaddress.ip_address(p.tcp.src) in subnet and ipaddress.ip_address(p.tcp.dst) in subnet
        for line in (run / "sockets" / "transitions.jsonl").read_text().splitlines():
            t = json.loads(line)
            assert ipaddress.ip_address(t["saddr"]) in subnet or ipaddress.ip_address(t["daddr"]) in subnet
        snaps = json.loads((run / "sockets" / "snapshots.json").read_text())
        for snap in snaps.values():
            for tables in snap["hosts"].values():
                for rec in tables["netstat"]["records"]:
                    if rec["peer_port"]:
                        assert ipaddress.ip_address(rec["peer_addr"]) in subnet


def test_networks_internal_hosts_unprivileged_limits_applied(two_labs) -> None:
    import docker

    _, a, b = two_labs
    client = docker.from_env()
    for name in (a, b):
        net = client.networks.get(f"tcplab-{name}")
        assert net.attrs["Internal"] is True  # no route out: checked on the configuration, no traffic sent
        for c in client.containers.list(filters={"label": [f"tcplab.lab={name}", "tcplab.role=host"]}):
            hc = c.attrs["HostConfig"]
            assert hc["Privileged"] is False
            assert "NET_RAW" in (hc.get("CapDrop") or [])
            assert not hc.get("CapAdd")
            assert hc["Memory"] > 0 and hc["NanoCpus"] > 0 and hc["PidsLimit"] > 0  # defaults keep runaways in
    server = client.containers.get(f"tcplab-{a}-server").attrs["HostConfig"]
    assert (server["Memory"], server["NanoCpus"], server["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 100)
    default = client.containers.get(f"tcplab-{b}-server").attrs["HostConfig"]
    assert default["Memory"] == 256 * 1024 * 1024


def test_lab_exec_cannot_reach_the_other_lab(two_labs) -> None:
    """A host of one lab cannot resolve or reach the other lab's hosts (separate internal bridges)."""
    tmp, a, b = two_labs
    other_server = json.loads((tmp / b / "run.json").read_text())["hosts"]["server"]
    res = lab_cmd("exec", a, "linux", "--", "timeout", "2", "bash", "-c",
                  f"exec 3<>/dev/tcp/{other_server}/8000", cwd=tmp)
    assert res.returncode != 0
