"""Labs of several networks: the model's addresses and routes, the plan's networks and sidecars, the export."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.export import export_compose
from tcplab.model import Lab, LabError, load_lab
from tcplab.model.topology import reaches
from tcplab.plan import LabPlan, RunNames, plan_lab
from tcplab.plan.lab_plan import ROUTES_SCRIPT
from tcplab.rundir import RunDir

from ..conftest import ROOT

ROUTED = ROOT / "tests" / "data" / "topology" / "routed.yaml"


def routed(*sets: str) -> Lab:
    return load_lab(ROUTED, sets)[0]


def plan_of(lab: Lab, run_dir: Path) -> LabPlan:
    return plan_lab(lab, RunNames(lab.name, "r1", str(run_dir)), RunDir(run_dir))


def lab_of(tmp_path: Path, data: dict[str, Any]) -> Lab:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"name": "t", **data}))
    return load_lab(path)[0]


def test_addresses_per_network_in_the_order_of_the_hosts() -> None:
    lab = routed()
    assert {h: {n: str(ip) for n, ip in lab.host_addresses(h).items()} for h in lab.hosts} == {
        "server": {"right": "10.231.2.2"},
        "router": {"left": "10.231.1.2", "right": "10.231.2.3"},
        "client": {"left": "10.231.1.10"}}
    assert lab.host_ip("router") == ipaddress.IPv4Address("10.231.1.2")  # its first network's
    assert str(lab.route_gateway("server", lab.hosts["server"].routes[0])) == "10.231.2.3"
    assert str(lab.route_gateway("client", lab.hosts["client"].routes[0])) == "10.231.1.2"


def test_a_lab_of_one_network_is_unchanged() -> None:
    lab = load_lab(ROOT / "labs" / "closewait.yaml")[0]
    assert list(lab.lab_networks()) == ["lab"]
    assert lab.host_addresses("win") == {"lab": lab.host_ip("win")}


def test_reach_follows_routes_through_routers_only() -> None:
    lab = routed()
    assert reaches(lab, "client", "right") and reaches(lab, "server", "left")
    assert reaches(lab, "router", "right")
    with pytest.raises(LabError, match=r"hosts\.client\.routes: host 'client' has no path to host 'server'"):
        routed("hosts.client.routes=[]")
    with pytest.raises(LabError, match=r"hosts\.server\.routes\.0\.via: host 'router' does not forward"):
        routed("hosts.router.router=false")


def test_the_plan_makes_each_network_and_connects_a_host_to_each_of_its(tmp_path: Path) -> None:
    lab = routed()
    plan = plan_of(lab, tmp_path)
    assert [(n.name, n.subnet, n.mtu, n.routed) for n in plan.networks] == [
        ("tcplab-routed-left", "10.231.1.0/24", None, True), ("tcplab-routed-right", "10.231.2.0/24", 1400, True)]
    router = plan.host("router").spec
    assert (router.network, router.ip) == ("tcplab-routed-left", "10.231.1.2")
    assert router.more_networks == (("tcplab-routed-right", "10.231.2.3"),)
    assert router.sysctls["net.ipv4.ip_forward"] == "1"
    assert "net.ipv4.ip_forward" not in plan.host("client").spec.sysctls


def test_routes_come_from_a_sidecar_and_no_host_gets_a_capability(tmp_path: Path) -> None:
    plan = plan_of(routed(), tmp_path)
    for host in plan.hosts:
        assert host.spec.cap_add == () and host.spec.cap_drop == ("NET_RAW",)
    client = {s.role: s.spec for s in plan.host("client").sidecars}
    assert client["routes"].cap_add == ("NET_ADMIN",) and client["routes"].joins == plan.host("client").spec.name
    assert client["routes"].command == ["sh", "-c", ROUTES_SCRIPT, "sh", "mtu", "10.231.1.10", "1300",
                                       "route", "10.231.2.0/24", "10.231.1.2"]
    router = {s.role: s.spec for s in plan.host("router").sidecars}
    assert router["routes"].command == ["sh", "-c", ROUTES_SCRIPT, "sh"]  # only its default route goes


def test_one_capture_per_interface_found_by_its_address(tmp_path: Path) -> None:
    plan = plan_of(routed(), tmp_path)
    caps = [s for s in plan.host("router").sidecars if s.role == "capture"]
    assert [c.spec.name.removeprefix("tcplab-routed-") for c in caps] == ["router-capture", "router-capture-right"]
    assert [c.spec.command[4:7] for c in caps] == [["", "10.231.1.2", ""], ["", "10.231.2.3", ""]]  # no live one
    assert [c.spec.command[c.spec.command.index("-w") + 1] for c in caps] == ["/capture/router.pcap",
                                                                              "/capture/router.right.pcap"]
    assert [[f.path for f in c.follow] for c in caps] == [["/capture/router.pcap"], ["/capture/router.right.pcap"]]
    assert all(c.spec.cap_add == ("NET_RAW",) for c in caps)


def test_a_lab_of_one_network_has_no_routes_sidecar(tmp_path: Path) -> None:
    plan = plan_of(load_lab(ROOT / "labs" / "closewait.yaml")[0], tmp_path)
    assert [n.routed for n in plan.networks] == [False]
    assert all(s.role != "routes" for h in plan.hosts for s in h.sidecars)


def test_a_router_between_three_networks_reaches_both_ways(tmp_path: Path) -> None:
    lab = lab_of(tmp_path, {
        "networks": {"a": {"subnet": "10.5.1.0/24"}, "b": {"subnet": "10.5.2.0/24"}, "c": {"subnet": "10.5.3.0/24"}},
        "hosts": {
            "x": {"image": "tcplab/client", "networks": {"a": {}},
                  "routes": [{"to": "10.5.0.0/16", "via": "r1"}]},
            "r1": {"image": "tcplab/client", "router": True, "networks": {"a": {}, "b": {}},
                   "routes": [{"to": "10.5.3.0/24", "via": "r2"}]},
            "r2": {"image": "tcplab/client", "router": True, "networks": {"b": {}, "c": {}},
                   "routes": [{"to": "10.5.1.0/24", "via": "r1"}]},
            "y": {"image": "tcplab/client", "networks": {"c": {}},
                  "routes": [{"to": "10.5.0.0/16", "via": "r2"}]}}})
    assert reaches(lab, "x", "c") and reaches(lab, "y", "a")


def test_export_gives_a_compose_network_per_lab_network() -> None:
    lab, resolved = load_lab(ROUTED)
    text = export_compose(lab, resolved, source="routed.yaml").text
    doc = yaml.safe_load(text)
    assert "The subnets 10.231.1.0/24, 10.231.2.0/24 are the lab's own" in text
    assert set(doc["networks"]) == {"left", "right"}
    right = doc["networks"]["right"]
    assert right["internal"] is False and right["ipam"]["config"] == [{"subnet": "10.231.2.0/24"}]
    assert right["driver_opts"] == {"com.docker.network.driver.mtu": "1400",
                                    "com.docker.network.bridge.enable_ip_masquerade": "false"}
    assert doc["services"]["router"]["networks"] == {
        "left": {"ipv4_address": "10.231.1.2", "aliases": ["router"]},
        "right": {"ipv4_address": "10.231.2.3", "aliases": ["router"]}}
    assert doc["services"]["client-routes"]["cap_add"] == ["NET_ADMIN"]
    assert "cap_add" not in doc["services"]["client"]
    assert doc["services"]["router"]["sysctls"]["net.ipv4.ip_forward"] == "1"


def test_relocation_moves_each_network_with_its_addresses_routes_and_the_addresses_steps_name() -> None:
    from tcplab.model.topology import relocation

    lab = routed()
    new = {"left": ipaddress.IPv4Network("10.92.61.0/24"), "right": ipaddress.IPv4Network("10.92.62.0/24")}
    sets = relocation(lab, new)
    assert sets == ["networks.left.subnet=10.92.61.0/24", "networks.right.subnet=10.92.62.0/24",
                    "hosts.server.routes.0.to=10.92.61.0/24", "hosts.client.networks.left.ip=10.92.61.10",
                    "hosts.client.routes.0.to=10.92.62.0/24", "steps.0.start.1=10.92.62.2"]
    moved = routed(*sets)
    assert moved.route_gateway("client", moved.hosts["client"].routes[0]) == ipaddress.IPv4Address("10.92.61.2")
    assert str(moved.host_addresses("server")["right"]) == "10.92.62.2"
IDLE = ROOT / "labs" / "idle-timeout" / "lab.yaml"


def test_a_nat_box_is_a_router_with_a_short_flow_table_memory_set_from_its_routes_sidecar(tmp_path: Path) -> None:
    lab = load_lab(IDLE)[0]
    plan = plan_of(lab, tmp_path)
    box = plan.host("nat").spec
    assert box.sysctls["net.ipv4.ip_forward"] == "1"
    assert box.sysctls["net.netfilter.nf_conntrack_tcp_timeout_established"] == "3"
    assert box.sysctls["net.netfilter.nf_conntrack_tcp_loose"] == "0"
    assert "net.netfilter.nf_conntrack_tcp_loose" not in plan.host("client").spec.sysctls
    for host in plan.hosts:
        assert host.spec.cap_add == ()
    routes = {s.role: s for s in plan.host("nat").sidecars}["routes"]
    assert routes.spec.command == ["sh", "-c", ROUTES_SCRIPT, "sh", "nat", "10.93.2.2", "rst"]
    assert routes.spec.cap_add == ("NET_ADMIN",)
    assert "NAT onto outside" in routes.about and "an RST" in routes.about
    # the run reads the box's settings back, in every host
    assert {"net.netfilter.nf_conntrack_tcp_timeout_established", "net.netfilter.nf_conntrack_tcp_loose"} <= set(
        lab.sysctls_read())
    dropping = load_lab(IDLE, ["hosts.nat.nat.expired=drop", "hosts.nat.nat.idle_timeout=350"])[0]
    routes = {s.role: s for s in plan_of(dropping, tmp_path).host("nat").sidecars}["routes"]
    assert routes.spec.command[-3:] == ["nat", "10.93.2.2", "drop"] and "dropped" in routes.about
    assert plan_of(dropping, tmp_path).host("nat").spec.sysctls[
        "net.netfilter.nf_conntrack_tcp_timeout_established"] == "350"


def test_a_host_outside_a_nat_box_needs_no_way_back_to_the_hosts_behind_it(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "networks": {"inside": {"subnet": "10.93.101.0/24"}, "outside": {"subnet": "10.93.102.0/24"}},
        "hosts": {
            "client": {"image": "tcplab/client", "networks": {"inside": {}},
                       "routes": [{"to": "10.93.102.0/24", "via": "box"}]},
            "box": {"image": "tcplab/client", "router": True, "nat": {"out": "outside"},
                    "networks": {"inside": {}, "outside": {}}},
            "server": {"image": "tcplab/server", "networks": {"outside": {}}}}}
    lab = lab_of(tmp_path, data)
    assert lab.hosts["box"].nat is not None and lab.hosts["box"].nat.idle_timeout == 350
    del data["hosts"]["box"]["nat"]  # a plain router: the server cannot answer the client
    with pytest.raises(LabError, match=r"hosts.server.routes: host 'server' has no path to host 'client'"):
        lab_of(tmp_path, data)


def test_the_export_carries_the_nat_box_settings() -> None:
    lab, resolved = load_lab(IDLE)
    compose = yaml.safe_load(export_compose(lab, resolved, source="lab.yaml").text)
    box = compose["services"]["nat"]
    assert box["sysctls"]["net.netfilter.nf_conntrack_tcp_timeout_established"] == "3"
    routes = compose["services"]["nat-routes"]
    assert routes["command"][-3:] == ["nat", "10.93.2.2", "rst"] and routes["cap_add"] == ["NET_ADMIN"]
