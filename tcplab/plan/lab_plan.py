"""What to create for a lab: its network, the run's volumes, each host with its sidecars, the tracer.

A plan is pure: it is made from the lab, the run's names, the run directory's
layout and where the sidecars' files go (that directory, on an engine that
shares this machine's files, or volumes of the run on an engine elsewhere),
and nothing here calls an engine or writes a file. ``lab up``/``lab run``
create what it says (:mod:`tcplab.play.session`), ``lab export`` writes it as
a compose file (:mod:`tcplab.export.compose`), and the benchmarks start the
same containers; so a sidecar added here is in all of them.

Who makes what: the host containers and the capture sidecars are the lab's
own, the observer of a host that runs its image's own program is the
observer's (:mod:`tcplab.observe.observer`), the tracer is the kernel
tracer's (:mod:`tcplab.observe.tracer`), and every other sidecar is its peer
kind's (:mod:`tcplab.peers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Mapping

from ..backend.agent import AGENT_COMMAND, AGENT_DIR
from ..backend.base import ContainerSpec, Mount
from ..model.lab import SINGLE_NETWORK, FirewallStep, ImpairStep, Lab
from ..observe.capture import READY_LINE as CAPTURE_READY
from ..observe.capture import CaptureSidecar, frame_snaplen
from ..observe import observer
from ..observe.tracer import READY_LINE as TRACER_READY
from ..observe.tracer import TRACEFS, StateTracer, instance_name
from ..peers import peer_kind
from ..peers.base import PeerSidecar
from ..rundir import RunDir
from .images import IMPAIR_IMAGE, TOOLS_IMAGE, host_image
from .names import RunNames

SIDECAR_PIDS = 64
CAPTURE_MEMORY = "128m"
TRACER_MEMORY = "128m"
FIREWALL_MEMORY = "64m"
ROUTES_ROLE = "routes"
ROUTES_READY = "routes ready"
# sets the interfaces' MTUs (mtu ADDRESS N), adds the routes (route SUBNET GATEWAY) and makes a NAT box (nat ADDRESS
# rst|drop: masquerade out of the interface holding ADDRESS; a packet conntrack finds INVALID, one of a forgotten
# connection, is answered with an RST or dropped) as its arguments say (values the model validated), then stays: a
# fixed script, the lab's data only in its argv
# The bridges of a lab of several networks are not internal: no host keeps a default route (through the engine's
# machine), so a host reaches the lab's networks alone.
ROUTES_SCRIPT = ('set -e; ip route del default 2>/dev/null || true; while [ $# -gt 2 ]; do case "$1" in '
                 'mtu) i=$(ip -o -4 addr show to "$2" | cut -d" " -f2 | cut -d@ -f1); ip link set dev "$i" mtu "$3";; '
                 'route) ip route replace "$2" via "$3";; '
                 'nat) i=$(ip -o -4 addr show to "$2" | cut -d" " -f2 | cut -d@ -f1); '
                 'iptables -w -t nat -A POSTROUTING -o "$i" -j MASQUERADE; '
                 'if [ "$3" = rst ]; then iptables -w -A FORWARD -p tcp -m conntrack --ctstate INVALID '
                 '-j REJECT --reject-with tcp-reset; else iptables -w -A FORWARD -m conntrack --ctstate INVALID '
                 '-j DROP; fi;; esac; shift 3; done; '
                 f"echo '{ROUTES_READY}'; exec sleep infinity")
# the engine role of a capture written a block at a time: stopped before it is removed (tcplab/play/teardown.py)
BLOCK_CAPTURE_ROLE = "capture-blocks"
FIREWALL_ROLE = "firewall"
FIREWALL_READY = "firewall ready"
# the firewall sidecar says it is ready only once iptables works in the host's namespace (a fixed script:
# no lab data in it); the rules themselves come later, one argv per step (tcplab/play/steps/firewall.py)
FIREWALL_COMMAND = ["sh", "-c", f"iptables -w -S OUTPUT >/dev/null && echo '{FIREWALL_READY}' && exec sleep infinity"]
IMPAIR_ROLE = "impair"
IMPAIR_READY = "impair ready"  # what images/impair/impair.c says once it holds every queue of the host's rules
IMPAIR_MEMORY = "64m"
IMPAIR_FOLDER = "logs/impair"  # the impairment sidecars' logs in the run directory: <host>.log
IMPAIR_QUEUE_BASE = 100  # an impair step's NFQUEUE number: this plus its index in the lab
IMPAIR_DUP_MARK = "0x7a1"  # the mark of the copies the program sends (DUP_MARK in impair.c): never queued again


@dataclass(frozen=True)
class ArtifactDir:
    """Files sidecars write while the lab runs: at ``/<kind>`` in them, at ``folder`` in the run directory."""
    kind: str
    folder: str  # relative to the run directory: "capture", "logs/peer"
    volume: str | None = None  # the run's volume holding them on an engine that does not share our files

    @property
    def target(self) -> str:
        return f"/{self.kind}"


@dataclass(frozen=True)
class FollowedFile:
    """A file a sidecar writes that the play reads while the lab runs (a wait step watches the pcap): on an
    engine elsewhere it is followed through the engine into ``local``."""
    path: str  # in the sidecar
    local: Path


@dataclass(frozen=True)
class SidecarPlan:
    spec: ContainerSpec
    role: str  # capture, observer, tracer, or the role its peer kind gives it (peer)
    host: str | None  # whose network namespace it shares; None for the tracer, which has no network
    ready: str  # the line its log prints once it works
    about: str = ""  # what it does, in a line (lab export writes it as the service's comment)
    follow: tuple[FollowedFile, ...] = ()
    optional: bool = False  # the lab plays without it, saying so (the tracer: no tracefs, no transitions)
    ends_with_host: bool = False  # it lives in its host's PID namespace (an observer): it ends when the host does


@dataclass(frozen=True)
class HostPlan:
    name: str
    spec: ContainerSpec
    sidecars: tuple[SidecarPlan, ...]  # the lab's capture first, then the peer kind's, then its observer

    @property
    def observer(self) -> SidecarPlan | None:
        """The sidecar that observes this host from beside it (its image has no tools), if it has one."""
        return next((s for s in self.sidecars if s.role == observer.ROLE), None)


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    subnet: str
    labels: dict[str, str]
    key: str = SINGLE_NETWORK  # the lab's name of it
    mtu: int | None = None
    routed: bool = False  # a lab of several networks: see Backend.create_network


@dataclass(frozen=True)
class LabPlan:
    networks: tuple[NetworkPlan, ...]  # the first is the one a lab of one network has
    hosts: tuple[HostPlan, ...]
    tracer: SidecarPlan
    artifacts: tuple[ArtifactDir, ...]
    volume_labels: dict[str, str]

    @property
    def network(self) -> NetworkPlan:
        return self.networks[0]

    def host(self, name: str) -> HostPlan:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def volumes(self) -> list[str]:
        """The volumes to create before any container (none where the engine shares our files)."""
        return [a.volume for a in self.artifacts if a.volume is not None]

    def sidecars(self) -> list[SidecarPlan]:
        """Every sidecar: each host's, in the lab's order of hosts, then the tracer."""
        return [s for h in self.hosts for s in h.sidecars] + [self.tracer]

    def containers(self) -> list[ContainerSpec]:
        """Every container: the hosts, then the sidecars."""
        return [h.spec for h in self.hosts] + [s.spec for s in self.sidecars()]

    def writers(self, kind: str) -> list[str]:
        """The containers that mount the artifacts of ``kind``: any of them can hand over its files."""
        target = f"/{kind}"
        return [s.spec.name for s in self.sidecars() if any(m.target == target for m in s.spec.mounts)]


# where a sidecar writes artifacts of a kind: (kind, folder in the run directory) -> its mount
ArtifactMount = Callable[[str, str], Mount]


def plan_lab(lab: Lab, names: RunNames, run_dir: RunDir, *, volumes: bool = False,
             agents: Collection[str] = (), images: Mapping[str, str] | None = None,
             packet_by_packet: bool = False) -> LabPlan:
    """The plan of one run of ``lab``. ``volumes``: the engine does not share this machine's files, so the
    sidecars write into volumes of the run; ``agents``: the hosts whose agent directory is ready in the run
    directory (they run the agent as their main process, see :mod:`tcplab.backend.agent`; a host running
    its image's own program never does); ``images``: the image each host runs by ID, once the engine made
    them (else by name); ``packet_by_packet``: the captures write each packet as it crosses, with no live
    capture beside them (a compose file's: nothing drains them before a stop, and whoever reads one reads it
    as it grows), instead of a block at a time (see :mod:`tcplab.observe.capture`)."""
    artifacts: dict[str, ArtifactDir] = {}

    def writes(kind: str, folder: str) -> Mount:
        art = artifacts.setdefault(kind, ArtifactDir(kind, folder, names.volume(kind) if volumes else None))
        if art.folder != folder:
            raise ValueError(f"artifacts '{kind}' go to {art.folder} and {folder}: one folder per kind")
        if art.volume is not None:
            return Mount(art.volume, art.target, kind="volume")
        return Mount(str(run_dir.path / art.folder), art.target)

    ips = {h: str(lab.host_ip(h)) for h in lab.hosts}
    hosts = []
    for name in lab.hosts:
        agent = run_dir.agent_dir(name) if name in agents and not lab.hosts[name].own_program else None
        peer = lab.hosts[name].peer
        sidecars = [capture_sidecar(lab, name, names, run_dir, writes, packet_by_packet=packet_by_packet)]
        further = list(lab.host_addresses(name))[1:]  # a host's further networks: a capture of each
        sidecars += [capture_sidecar(lab, name, names, run_dir, writes, net, packet_by_packet) for net in further]
        if lab.networks:
            sidecars.append(routes_sidecar(lab, name, names))
        sidecars += [peer_sidecar(name, need, names, writes) for need in peer_kind(peer.os).sidecars(name, peer)]
        if needs_firewall(lab, name):
            sidecars.append(firewall_sidecar(name, names))
        if impair_rules(lab, name):
            sidecars.append(impair_sidecar(lab, name, names, writes))
        if lab.hosts[name].own_program:  # its image's own program: no tool of tcplab's in it
            sidecars.append(observer_sidecar(name, names))
        image = (images or {}).get(name) or host_image(lab, name)
        hosts.append(HostPlan(name, host_spec(lab, name, names, ips[name], agent, image), tuple(sidecars)))
    tracer = tracer_sidecar(lab, names, ips, writes)
    return LabPlan(network_plans(lab, names), tuple(hosts), tracer, tuple(artifacts.values()),
                   names.labels("artifacts"))


def network_name(lab: Lab, names: RunNames, key: str) -> str:
    """The engine's name of the lab's network ``key``: the run's network name for a lab of one network."""
    return names.network if not lab.networks else f"{names.network}-{key}"


def network_plans(lab: Lab, names: RunNames) -> tuple[NetworkPlan, ...]:
    return tuple(NetworkPlan(network_name(lab, names, key), str(net.subnet), names.labels("network"), key, net.mtu,
                             routed=bool(lab.networks))
                 for key, net in lab.lab_networks().items())


def host_command(lab: Lab, name: str, agent_dir: Path | None) -> list[str] | None:
    """The host's main process: a project host's is the agent (or a sleep) and its program starts later; a
    host of the lab's own image runs that image's program (None: its entrypoint and command; ``program.run``
    replaces the command and keeps the entrypoint, as compose's ``command:``)."""
    host = lab.hosts[name]
    if host.own_program:
        return list(host.program.run) if host.program is not None and host.program.run is not None else None
    return list(AGENT_COMMAND) if agent_dir is not None else ["sleep", "infinity"]


def host_spec(lab: Lab, name: str, names: RunNames, ip: str, agent_dir: Path | None,
              image: str | None = None) -> ContainerSpec:
    """A lab host: its image on the lab's network, its peer kind's sysctls and the lab's own (which win)."""
    host = lab.hosts[name]
    sysctls = peer_kind(host.peer.os).sysctls(host.peer)
    if host.router:
        sysctls["net.ipv4.ip_forward"] = "1"
    if host.nat is not None:  # the flow table's idle timeout, and no entry for a packet in mid-connection
        sysctls.update(host.nat.sysctls())
    sysctls.update({k: str(v) for k, v in host.sysctls.items()})
    places = [(network_name(lab, names, net), str(addr)) for net, addr in lab.host_addresses(name).items()]
    return ContainerSpec(
        name=names.host(name), image=image or host_image(lab, name), labels=names.labels("host", name),
        command=host_command(lab, name, agent_dir), hostname=name,
        network=places[0][0], ip=ip, more_networks=tuple(places[1:]),
        aliases=(name,), sysctls=sysctls, mem_limit=host.limits.memory,
        nano_cpus=int(host.limits.cpus * 1e9), pids_limit=host.limits.pids,
        environment=dict(host.program.env) if host.program else {},
        # hosts need no raw sockets (the sidecars that do get them alone), unless the lab file adds them
        cap_drop=() if "NET_RAW" in host.cap_add else ("NET_RAW",), cap_add=tuple(host.cap_add),
        mounts=(Mount(str(agent_dir), AGENT_DIR),) if agent_dir is not None else (),
    )


def packet_by_packet_capture(lab: Lab, host: str) -> bool:
    """Whether the host's captures write each packet as it crosses rather than a block at a time: unless the
    lab asks for blocks (``capture.blocks``, for floods), and always on a host running its image's own program,
    whose container (and with it the capture's interface) may end at any moment with that program, where a
    tcpdump reading a block at a time loses the block it was not handed."""
    return not lab.capture.blocks or lab.hosts[host].own_program


def followed_capture(lab: Lab, host: str, run_dir: RunDir) -> Path:
    """The file of the host's capture the wait steps follow while it runs: its live FIN/RST capture, or the
    whole capture where it writes each packet as it crosses."""
    return run_dir.pcap(host) if packet_by_packet_capture(lab, host) else run_dir.live_pcap(host)


def capture_sidecar(lab: Lab, host: str, names: RunNames, run_dir: RunDir, writes: ArtifactMount,
                    network: str | None = None, packet_by_packet: bool = False) -> SidecarPlan:
    """tcpdump in the host's network namespace, writing ``capture/<host>.pcap``; on a host of several networks,
    on its interface on its first network, and ``network``'s (a further one) into ``capture/<host>.<network>.pcap``."""
    mtus = [net.mtu for key, net in lab.lab_networks().items() if key in lab.host_addresses(host)]
    mtus += [place.mtu for place in lab.hosts[host].networks.values() if place is not None and place.mtu is not None]
    side = CaptureSidecar(host, lab.capture.filter, snaplen=max(frame_snaplen(m) for m in mtus or [None]))
    pcap = run_dir.pcap(host) if network is None else run_dir.capture_dir / f"{run_dir.pcap(host).stem}.{network}.pcap"
    # a capture written packet by packet is followed whole; one written a block at a time has the first network's
    # live FIN/RST capture beside it for the wait steps
    packet_by_packet = packet_by_packet or packet_by_packet_capture(lab, host)
    live = run_dir.live_pcap(host) if network is None and not packet_by_packet else None
    followed = pcap if packet_by_packet else live
    address = None
    if lab.networks:  # which interface is which network's is the engine's choice: find it by the address
        address = str(lab.host_addresses(host)[network or next(iter(lab.host_addresses(host)))])
    command = side.command(pcap.name, live.name if live is not None else None, address, packet_by_packet)
    role = "capture" if network is None else f"capture-{network}"
    spec = ContainerSpec(
        name=names.sidecar(host, role), image=TOOLS_IMAGE,
        labels=names.labels("capture" if packet_by_packet else BLOCK_CAPTURE_ROLE, host),
        command=command, joins=names.host(host),
        cap_add=side.capabilities, mounts=(writes("capture", "capture"),),
        mem_limit=CAPTURE_MEMORY, pids_limit=SIDECAR_PIDS)
    return SidecarPlan(spec, "capture", host, CAPTURE_READY,
                       about=f"tcpdump in {host}'s network namespace (NET_RAW only, no promiscuous mode)",
                       follow=(FollowedFile(f"/capture/{followed.name}", followed),) if followed is not None else ())


def peer_sidecar(host: str, need: PeerSidecar, names: RunNames, writes: ArtifactMount) -> SidecarPlan:
    """A sidecar the host's peer kind needs, in the host's network namespace."""
    spec = ContainerSpec(
        name=names.sidecar(host, need.role), image=need.image, labels=names.labels(need.role, host),
        command=list(need.command), joins=names.host(host), cap_add=need.capabilities,
        mounts=(writes(need.artifacts, need.folder),), mem_limit=need.mem_limit, pids_limit=SIDECAR_PIDS,
        realtime_us=need.realtime_us)
    return SidecarPlan(spec, need.role, host, need.ready_line, about=need.about)


def routes_sidecar(lab: Lab, host: str, names: RunNames) -> SidecarPlan:
    """ip route in the host's network namespace, taking its default route away and adding the lab's routes (and
    a NAT box's iptables rules): NET_ADMIN for this sidecar, never for the host."""
    argv: list[str] = []
    addresses = lab.host_addresses(host)
    for net, place in lab.hosts[host].networks.items():
        if place is not None and place.mtu is not None:
            argv += ["mtu", str(addresses[net]), str(place.mtu)]
    for route in lab.hosts[host].routes:
        argv += ["route", str(route.to), str(lab.route_gateway(host, route))]
    nat = lab.hosts[host].nat
    if nat is not None:
        argv += ["nat", str(addresses[nat.out]), nat.expired]
    spec = ContainerSpec(
        name=names.sidecar(host, ROUTES_ROLE), image=TOOLS_IMAGE, labels=names.labels(ROUTES_ROLE, host),
        command=["sh", "-c", ROUTES_SCRIPT, "sh", *argv], joins=names.host(host), cap_add=("NET_ADMIN",),
        mem_limit=FIREWALL_MEMORY, pids_limit=SIDECAR_PIDS)
    return SidecarPlan(spec, ROUTES_ROLE, host, ROUTES_READY,
                       about=f"ip route in {host}'s network namespace: no default route, the lab's routes"
                             + (f", NAT onto {nat.out} (iptables MASQUERADE; a forgotten connection's packets: "
                                f"{'an RST' if nat.expired == 'rst' else 'dropped'})" if nat is not None else "")
                             + " (NET_ADMIN only)")


def needs_firewall(lab: Lab, host: str) -> bool:
    """Whether a step sets a firewall rule on ``host``: only then does it get a firewall sidecar."""
    return any(isinstance(s, FirewallStep) and s.host == host for s in lab.steps)


def firewall_sidecar(host: str, names: RunNames) -> SidecarPlan:
    """iptables in the host's network namespace, for the lab's firewall steps: NET_ADMIN for this sidecar,
    never for the host."""
    spec = ContainerSpec(
        name=names.sidecar(host, FIREWALL_ROLE), image=TOOLS_IMAGE, labels=names.labels(FIREWALL_ROLE, host),
        command=list(FIREWALL_COMMAND), joins=names.host(host), cap_add=("NET_ADMIN",),
        mem_limit=FIREWALL_MEMORY, pids_limit=SIDECAR_PIDS)
    return SidecarPlan(spec, FIREWALL_ROLE, host, FIREWALL_READY,
                       about=f"iptables in {host}'s network namespace for the lab's firewall steps (NET_ADMIN only)")


def impair_queue(index: int) -> int:
    """The NFQUEUE number of the lab's ``index``-th step, an impair step."""
    return IMPAIR_QUEUE_BASE + index


def impair_rules(lab: Lab, host: str) -> list[str]:
    """The impairment program's rule words for the host's impair steps (``QUEUE:NAME:CHOICE:VALUE:SEED:DATA``,
    and ``:DELAY_US:JITTER_US`` for a delay, ``:-2:0`` for a duplicate; see images/impair/impair.c): every
    queue is held from the start, packets reach one only while its step's iptables rule is in force."""
    out = []
    for i, s in enumerate(lab.steps):
        if isinstance(s, ImpairStep) and s.host == host:
            action, value = s.how()
            word = f"{impair_queue(i)}:{s.rule_name(i)}:{action}:{value}:{s.seed}:{int(s.match.data)}"
            if s.impair == "delay":
                word += f":{round((s.delay or 0) * 1e6)}:{round(s.jitter * 1e6)}"
            elif s.impair == "duplicate":
                word += ":-2:0"
            out.append(word)
    return out


def impair_sidecar(lab: Lab, host: str, names: RunNames, writes: ArtifactMount) -> SidecarPlan:
    """The impairment program in the host's network namespace (NET_ADMIN for it alone, never for the host, and
    NET_RAW when it sends duplicates), logging each packet it impairs to ``logs/impair/<host>.log``."""
    dup = any(isinstance(s, ImpairStep) and s.host == host and s.impair == "duplicate" for s in lab.steps)
    spec = ContainerSpec(
        name=names.sidecar(host, IMPAIR_ROLE), image=IMPAIR_IMAGE, labels=names.labels(IMPAIR_ROLE, host),
        command=["/opt/lab/impair", f"/{IMPAIR_ROLE}/{host}.log", *impair_rules(lab, host)],
        joins=names.host(host), cap_add=("NET_ADMIN", "NET_RAW") if dup else ("NET_ADMIN",),
        mounts=(writes(IMPAIR_ROLE, IMPAIR_FOLDER),),
        mem_limit=IMPAIR_MEMORY, pids_limit=SIDECAR_PIDS)
    return SidecarPlan(spec, IMPAIR_ROLE, host, IMPAIR_READY,
                       about=f"NFQUEUE impairment of {host}'s packets for the lab's impair steps "
                             f"({'NET_ADMIN and NET_RAW, for the duplicates' if dup else 'NET_ADMIN only'})")


def observer_sidecar(host: str, names: RunNames) -> SidecarPlan:
    """The tools in the host's network and PID namespaces, for a host whose image has none of them."""
    spec = ContainerSpec(
        name=names.sidecar(host, observer.ROLE), image=TOOLS_IMAGE, labels=names.labels(observer.ROLE, host),
        command=list(observer.COMMAND), joins=names.host(host), joins_pid=names.host(host),
        cap_add=observer.CAPABILITIES, cap_drop=observer.DROPPED, mem_limit=observer.MEMORY,
        pids_limit=SIDECAR_PIDS)
    return SidecarPlan(spec, observer.ROLE, host, observer.READY_LINE,
                       about=f"netstat, ss and ps in {host}'s network and PID namespaces (SYS_PTRACE only: "
                             "the owners of its sockets)", ends_with_host=True)


def tracer_sidecar(lab: Lab, names: RunNames, ips: dict[str, str], writes: ArtifactMount) -> SidecarPlan:
    """The kernel state tracer: no network, the engine machine's tracefs, writing ``sockets/transitions.jsonl``."""
    first = next(iter(lab.lab_networks().values()))  # records are the hosts' addresses'; the subnet is a fallback
    tracer = StateTracer(str(first.subnet), instance_name(names.run), hosts=ips)
    spec = ContainerSpec(
        name=names.tracer, image=TOOLS_IMAGE, labels=names.labels("tracer"),
        command=tracer.command(), isolated=True,
        mounts=(Mount(TRACEFS, "/tracefs", kind="engine"), writes("sockets", "sockets")),
        mem_limit=TRACER_MEMORY, pids_limit=SIDECAR_PIDS)
    return SidecarPlan(spec, "tracer", None, TRACER_READY,
                       about=f"kernel TCP state changes of the lab's sockets, from the tracefs at {TRACEFS}",
                       optional=True)
