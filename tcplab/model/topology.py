"""The checks of a lab's networks: addresses, subnets, routes and whether every host reaches every other.

Each problem is (field path, message); the loader turns the first into a one-line error (exit 2).
"""
from __future__ import annotations

import ipaddress
from itertools import combinations
from typing import Mapping

from .lab import Lab, StartStep


def address_problems(lab: Lab) -> list[tuple[str, str]]:
    """Each host's address on each of its networks: usable, and nobody else's."""
    nets = lab.lab_networks()
    seen: dict[str, str] = {}
    for name in lab.hosts:
        for net, ip in lab.host_addresses(name).items():
            field = f"hosts.{name}.networks.{net}.ip" if lab.networks else f"hosts.{name}.ip"
            subnet = nets[net].subnet
            if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address,
                                          subnet.network_address + 1):
                return [(field, f"{ip} is not a usable host address of {subnet}")]
            if str(ip) in seen:
                return [(field, f"{ip} is also the address of host '{seen[str(ip)]}'")]
            seen[str(ip)] = name
    return []


def topology_problems(lab: Lab) -> list[tuple[str, str]]:
    """The first problem of the lab's networks, hosts' places on them and routes (empty: none)."""
    if lab.networks and "network" in lab.model_fields_set:
        return [("network", "give either network (one) or networks (several), not both")]
    names = list(lab.networks)
    for a, b in combinations(names, 2):
        if lab.networks[a].subnet.overlaps(lab.networks[b].subnet):
            return [(f"networks.{b}.subnet", f"{lab.networks[b].subnet} overlaps network '{a}' "
                                             f"({lab.networks[a].subnet})")]
    for name, host in lab.hosts.items():
        if not lab.networks:
            if host.nat is not None:
                return [(f"hosts.{name}.nat", "a NAT box stands between networks: name several under the lab's "
                                              "networks first")]
            if host.networks:
                return [(f"hosts.{name}.networks", "the lab has one network: name several under the lab's "
                                                   "networks first")]
            continue
        if host.cap_add:
            return [(f"hosts.{name}.cap_add", "not in a lab of several networks: their bridges are not the engine's "
                                              "internal kind, and only the lab's own sidecar sets routes")]
        if host.own_program:
            return [(f"hosts.{name}.image", "a lab of several networks runs the project's images only: an image's "
                                            "own program would start before the host's default route is taken away")]
        if host.ip is not None:
            return [(f"hosts.{name}.ip", "with the lab's networks, give the address per network "
                                         f"(hosts.{name}.networks.NET.ip)")]
        if not host.networks:
            return [(f"hosts.{name}.networks", f"host '{name}' is on no network (known: {', '.join(names)})")]
        for net in host.networks:
            if net not in lab.networks:
                return [(f"hosts.{name}.networks.{net}", f"no network '{net}' (known: {', '.join(names)})")]
        if host.nat is not None:
            problems = nat_problems(lab, name)
            if problems:
                return problems
    problems = address_problems(lab)
    if problems:
        return problems
    return route_problems(lab) or reach_problems(lab)


def nat_problems(lab: Lab, name: str) -> list[tuple[str, str]]:
    """A NAT box forwards (``router: true``) between two networks or more, one of them its ``out``."""
    host = lab.hosts[name]
    assert host.nat is not None
    if not host.router:
        return [(f"hosts.{name}.nat", "a NAT box forwards packets: give the host router: true")]
    if len(host.networks) < 2:
        return [(f"hosts.{name}.nat", f"a NAT box stands between networks: host '{name}' is on one only")]
    if host.nat.out not in host.networks:
        return [(f"hosts.{name}.nat.out", f"'{host.nat.out}' is not a network of host '{name}' "
                                          f"(its: {', '.join(host.networks)})")]
    return []


def behind_nat(lab: Lab, inside: str, outside: str) -> bool:
    """Whether host ``inside`` reaches host ``outside`` through a NAT box that masquerades onto a network of
    ``outside``'s: ``outside`` then answers the box, and needs no way of its own to ``inside``."""
    for route in lab.hosts[inside].routes:
        box = lab.hosts.get(route.via)
        if box is None or box.nat is None or box.nat.out not in _places(lab, outside):
            continue
        if lab.networks[box.nat.out].subnet.subnet_of(route.to) and reaches(lab, inside, box.nat.out):
            return True
    return False


def route_problems(lab: Lab) -> list[tuple[str, str]]:
    nets = lab.lab_networks()
    for name, host in lab.hosts.items():
        for i, route in enumerate(host.routes):
            where = f"hosts.{name}.routes.{i}"
            if not any(route.to.overlaps(n.subnet) for n in nets.values()):
                return [(f"{where}.to", f"{route.to} is the subnet of no network of the lab (a route to nowhere)")]
            if route.via not in lab.hosts or route.via == name:
                return [(f"{where}.via", f"'{route.via}' is not another host of the lab")]
            if lab.route_gateway(name, route) is None:
                return [(f"{where}.via", f"host '{route.via}' shares no network with '{name}'")]
            if not lab.hosts[route.via].router:
                return [(f"{where}.via", f"host '{route.via}' does not forward packets (give it router: true)")]
    return []


def _places(lab: Lab, name: str) -> list[str]:
    return list(lab.hosts[name].networks) if lab.networks else list(lab.lab_networks())


def reaches(lab: Lab, name: str, net: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether packets from host ``name`` get onto network ``net``: it is on it, or a route covering the network's
    subnet leads to a router that gets them there."""
    if net in _places(lab, name):
        return True
    subnet = lab.lab_networks()[net].subnet
    for route in lab.hosts[name].routes:
        via = route.via
        if subnet.subnet_of(route.to) and via not in seen and via in lab.hosts and lab.hosts[via].router \
                and reaches(lab, via, net, seen | {name}):
            return True
    return False


def reach_problems(lab: Lab) -> list[tuple[str, str]]:
    """Every pair of hosts reaches each other (there and back) on some network of the other's; a host behind a
    NAT box need not be reachable from the box's outside."""
    if not lab.networks:
        return []
    for a, b in combinations(lab.hosts, 2):
        for src, dst in ((a, b), (b, a)):
            if behind_nat(lab, dst, src):
                continue  # dst's connections reach src masqueraded, and src's answers go back through the box
            if not any(reaches(lab, src, net) for net in _places(lab, dst)):
                return [(f"hosts.{src}.routes", f"host '{src}' has no path to host '{dst}' "
                                                f"({', '.join(str(ip) for ip in lab.host_addresses(dst).values())}): "
                                                "no shared network and no route through a router")]
    return []



def relocation(lab: Lab, subnets: Mapping[str, ipaddress.IPv4Network]) -> list[str]:
    """``--set`` assignments that move a lab of several networks to other subnets (network name -> its new
    subnet, of the same size), so that two runs of it can be up at once: each network's subnet, each host's
    fixed address on it, each route's destination and each address of a moved network in a step's argv
    (``telnet 10.92.2.2 8000``) keep their places in the new subnets."""
    moved = {lab.networks[key].subnet: new for key, new in subnets.items() if key in lab.networks}

    def move(ip: ipaddress.IPv4Address) -> ipaddress.IPv4Address | None:
        for old, new in moved.items():
            if ip in old:
                return new.network_address + (int(ip) - int(old.network_address))
        return None

    sets = [f"networks.{key}.subnet={new}" for key, new in subnets.items() if key in lab.networks]
    for name, host in lab.hosts.items():
        for key, place in host.networks.items():
            if place is not None and place.ip is not None and (ip := move(place.ip)) is not None:
                sets.append(f"hosts.{name}.networks.{key}.ip={ip}")
        for i, route in enumerate(host.routes):
            if (to := move(route.to.network_address)) is not None:
                sets.append(f"hosts.{name}.routes.{i}.to={to}/{route.to.prefixlen}")
    for i, step in enumerate(lab.steps):
        if not isinstance(step, StartStep):
            continue
        for j, arg in enumerate(step.start):
            try:
                addr = ipaddress.IPv4Address(arg)
            except ValueError:
                continue
            if (ip := move(addr)) is not None:
                sets.append(f"steps.{i}.start.{j}={ip}")
    return sets
