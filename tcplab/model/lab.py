"""The lab: hosts on one network, the steps of the story, the expectations.

Pure data, validated by pydantic. Nothing here knows how a lab is run.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import (AfterValidator, BeforeValidator, Discriminator, Field, StringConstraints, Tag, ValidationInfo,
                      field_validator)

from ..peers import PEER_KINDS, peer_kind
from .duration import format_duration, parse_duration
from .reference import LabReference, reference_form
from .strict import Name, Strict

Seconds = Annotated[float, BeforeValidator(parse_duration)]
Arg = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
TcpState = Literal[
    "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
    "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
]
Port = Annotated[int, Field(ge=1, le=65535)]
# a step's title goes into the report, steps.jsonl and Wireshark's packet comments
Title = Annotated[str, StringConstraints(max_length=200)]
# a step's explanation, one paragraph for the class: lab up --step, steps.jsonl, the report
Explain = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


def _state(value: object) -> object:
    """Accept the spellings of netstat (FIN_WAIT2), ss (FIN-WAIT-2) and the kernel (TCP_FIN_WAIT2)."""
    if isinstance(value, str):
        v = value.strip().upper().replace("-", "_")
        v = v.removeprefix("TCP_")
        return {"FIN_WAIT_1": "FIN_WAIT1", "FIN_WAIT_2": "FIN_WAIT2", "SYN_RECEIVED": "SYN_RECV",
                "ESTAB": "ESTABLISHED", "UNCONN": "CLOSE", "CLOSED": "CLOSE"}.get(v, v)
    return value


State = Annotated[TcpState, BeforeValidator(_state)]


_PRIVATE = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _private_subnet(net: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    # RFC 1918 only: is_private also admits loopback, link-local and 0.0.0.0/8, no place for a bridge
    if not any(net.subnet_of(p) for p in _PRIVATE):
        raise ValueError(f"{net} is not a private range: use one inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if not 16 <= net.prefixlen <= 29:
        raise ValueError(f"{net}: the prefix must be between /16 and /29 (e.g. /24)")
    return net


def _relative_path(value: str) -> str:
    """A file named relative to the lab file's directory (as compose names a build context): not absolute."""
    if value.startswith("/") or not re.match(r"^[A-Za-z0-9_./-]{1,200}$", value):
        raise ValueError(f"{value[:40]!r} is not a path relative to the lab file "
                         "(write e.g. ../images/server/server.c)")
    return value


SINGLE_NETWORK = "lab"  # the name of a lab's one network (`network:`) among its networks


class Network(Strict):
    subnet: Annotated[ipaddress.IPv4Network, AfterValidator(_private_subnet)] = ipaddress.IPv4Network("10.77.0.0/24")
    """The lab's private network (RFC 1918, /16 to /29). Hosts get addresses from .2 on, in the order `hosts` lists
    them; two labs up at once need different subnets."""
    mtu: Annotated[int, Field(ge=576, le=9000)] | None = None
    """The MTU of every host's interface on this network (default: the engine's, 1500)."""


class HostNetwork(Strict):
    """A host's place on one of the lab's `networks`."""
    ip: ipaddress.IPv4Address | None = Field(None, examples=["10.1.0.10"])
    """The host's address on this network; default: .2 on, in the order `hosts` lists the network's hosts."""
    mtu: Annotated[int, Field(ge=576, le=9000)] | None = None
    """The MTU of the host's interface on this network (default: the network's `mtu`); set by the host's routes
    sidecar."""


class Route(Strict):
    """A route in the host's routing table, set by a sidecar in its network namespace (NET_ADMIN for the
    sidecar, never for the host)."""
    to: ipaddress.IPv4Network = Field(examples=["10.2.0.0/24"])
    """The destination: a subnet of one of the lab's networks (or inside one)."""
    via: Name
    """The host packets go to: a `router: true` host on a network this host shares with it (its address there)."""


def _whole_seconds(value: float) -> float:
    """A timeout the kernel keeps in whole seconds (a conntrack timeout sysctl)."""
    if value < 1 or value != int(value):
        raise ValueError(f"{value:g} s is not a whole number of seconds of at least 1 (conntrack counts in seconds)")
    return value


# a timeout the kernel keeps in whole seconds
WholeSeconds = Annotated[Seconds, AfterValidator(_whole_seconds)]


class Nat(Strict):
    """The host is a NAT box between networks (a home router, a cloud load balancer, a firewall that tracks
    connections): what leaves it onto ``out`` carries its address there (iptables MASQUERADE), and each
    connection through it is an entry of its flow table (conntrack) that an idle connection loses after
    ``idle_timeout``, silently, as AWS NLB's does after 350 s. A packet of a forgotten connection is answered as
    ``expired`` says. Set from the host's routes sidecar (NET_ADMIN for it, never for the host); the timeout and
    ``nf_conntrack_tcp_loose=0`` (a packet in mid-connection starts no new entry) are sysctls of the host's
    network namespace."""
    out: Name = Field(examples=["outside"])
    """The network the box masquerades onto (one of the host's `networks`): connections from its other networks
    leave with its address there, and answers come back through it."""
    idle_timeout: WholeSeconds = Field(350.0, examples=["3s"])
    """How long an idle established connection keeps its entry in the box's flow table (conntrack's
    `net.netfilter.nf_conntrack_tcp_timeout_established` in its namespace; the kernel's default is 5 days, AWS
    NLB's 350 s). Whole seconds."""
    expired: Literal["rst", "drop"] = "rst"
    """What the box does with a packet of a connection it has forgotten (conntrack's INVALID): `rst` answers its
    sender with an RST in the other end's name (iptables REJECT --reject-with tcp-reset), `drop` loses it
    silently (the sender retransmits until it gives up)."""

    def sysctls(self) -> dict[str, str]:
        """The box's flow table settings, sysctls of its network namespace."""
        return {"net.netfilter.nf_conntrack_tcp_timeout_established": str(int(self.idle_timeout)),
                "net.netfilter.nf_conntrack_tcp_loose": "0"}


def _regex(value: str) -> str:
    """A regular expression (Python's re) to search a program's output with."""
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"{value[:40]!r} is not a regular expression: {e} (a backslash makes . * + ? ( ) [ ] "
                         "mean themselves)") from None
    return value


# searched in a program's output with Python's re: anywhere in it, ^ and $ at each line's ends
Regex = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_regex)]


class Ready(Strict):
    """When a started program counts as ready: a port it listens on, or a line of its output (a regex)."""
    listen: Port | None = None
    """Ready once the host listens on this TCP port."""
    log: Regex | None = None
    """Ready once the program's output matches this regex."""
    timeout: Seconds = 10.0
    """How long to wait for it; a program not ready by then fails the bring-up (exit 3)."""


class Program(Strict):
    """The host's own program, started before the first step (for the server: the server).

    On a host of one of the project's images (``tcplab/server``, ...) tcplab starts ``run`` under labrun.
    On a host of any other image (pulled, local or built) the program is the container's own main
    process: the image's ENTRYPOINT with its CMD, or with ``run`` in place of the CMD (as compose's
    ``command:``: the entrypoint stays); its output is the container's log, its exit the container's."""
    # the program's source, relative to the lab file; the loader checks that the host's image copies it
    # (tcplab builds no program itself: see model/build.py)
    build: Annotated[str, AfterValidator(_relative_path)] | None = None
    """The program's source file, relative to the lab file. Accepted only when the file exists and the Dockerfile of
    the host's image copies it (tcplab builds no lab program itself: the image does)."""
    run: Annotated[list[Arg], Field(min_length=1, max_length=64)] | None = None
    """The program's argv (never a shell string). On a project image (`tcplab/...`): required, the program tcplab
    starts. On any other image: replaces the image's CMD (its ENTRYPOINT stays); without it the image's own command
    runs."""
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")],
              Annotated[str, StringConstraints(max_length=4096)]] = Field({}, examples=[{"LOG_LEVEL": "debug"}])
    """Environment variables of the program."""
    ready: Ready | None = None
    """When the program counts as started; without it, as soon as it runs."""
    name: Name = "program"
    """The program's name: what `stop` steps, expectations (`owner`, `program.name`) and its log
    (`logs/programs/HOST.NAME.log`) call it."""


if TYPE_CHECKING:
    PeerOs = str
else:  # the kinds tcplab/peers registers, as a Literal: a wrong one is refused naming them all
    PeerOs = Literal[tuple(PEER_KINDS)]


class Peer(Strict):
    """The TCP stack a host shows on the wire: ``os`` names its kind (tcplab/peers), which checks the rest.
    ``linux`` leaves the kernel alone."""
    os: PeerOs = "linux"
    """The TCP stack the host shows on the wire: `linux` leaves the kernel alone; `windows` emulates a Windows peer
    (SYN fingerprint, FIN_WAIT_2 timer) with a sidecar."""
    fin_wait2_timeout: Seconds | None = None
    """How long the peer waits in FIN_WAIT_2 for the other side's FIN before it resets the connection (Windows: 120 s
    when not given). A Linux peer has no such timer: use `tcp_fin_timeout`."""
    syn: Literal["linux", "windows-7", "windows-10"] | None = None
    """The SYN fingerprint (window, options, their order, TTL) the peer's SYNs carry."""
    tcp_fin_timeout: Annotated[int, Field(ge=1, le=3600)] | None = None
    """Seconds a Linux orphaned FIN_WAIT_2 socket lives (the host's `net.ipv4.tcp_fin_timeout`)."""


class Limits(Strict):
    """Resource limits of a host; the defaults keep a runaway program from taking the machine."""
    memory: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5}[kmg]$")] = "256m"
    """Memory limit of the host's container (`k`, `m` or `g`)."""
    cpus: Annotated[float, Field(gt=0.01, le=64)] = 1.0
    """CPUs the host's container may use."""
    pids: Annotated[int, Field(ge=16, le=32768)] = 512
    """Most processes the host's container may hold."""


SysctlKey = Annotated[str, StringConstraints(pattern=r"^net\.(ipv4|ipv6|core)\.[a-z0-9_.]{1,80}$")]


PROJECT_IMAGES = "tcplab/"  # the project's own images: built from images/ by tcplab, never pulled
# A Docker image reference, as the engine's reference grammar has it: [registry[:port]/]path[:tag][@digest]; the
# first part is a registry only when it has a dot or a port, or is localhost (else it is part of the path).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*"
                   r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]{{1,5}})?")


def _image_reference(value: str) -> str:
    first, slash, rest = value.partition("/")
    registry = bool(slash) and ("." in first or ":" in first or first == "localhost")
    ok = (_REGISTRY.fullmatch(first) is not None and _PATH.fullmatch(rest) is not None) if registry \
        else _PATH.fullmatch(value) is not None
    if len(value) > 255 or not ok:
        raise ValueError(f"{value[:60]!r} is not an image reference (write e.g. myorg/svc:1.0, "
                         "registry.example.com:5000/team/svc:2 or postgres@sha256:<64 hex digits>)")
    if value.startswith(PROJECT_IMAGES) and not re.fullmatch(r"tcplab/[a-z0-9][a-z0-9_-]{0,40}", value):
        raise ValueError(f"'{value[:60]}': the names tcplab/... are the project's own images (tcplab/server, "
                         "tcplab/client, tcplab/tools), which take no tag")
    return value


ImageRef = Annotated[str, AfterValidator(_image_reference)]


def _lab_relative(value: str) -> str:
    """A path inside the lab file's directory, relative to it: no absolute path, no way out with '..'."""
    if (value.startswith("/") or value.startswith("~") or "\\" in value or ".." in value.split("/")
            or not re.fullmatch(r"[A-Za-z0-9_.@+/-]{1,200}", value)):
        raise ValueError(f"{value[:40]!r} is not a path inside the lab file's directory (write it relative to "
                         "that directory, without '..', e.g. svc or docker/svc)")
    return value


LabPath = Annotated[str, AfterValidator(_lab_relative)]
BuildArgName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class Build(Strict):
    """An image built from a Dockerfile beside the lab file (compose's ``build:``): ``context`` is a folder
    relative to the lab file's directory, ``dockerfile`` a file relative to the context, ``args`` the build
    arguments (plain strings), ``target`` a stage of a multi-stage Dockerfile."""
    context: LabPath = "."
    """The build context: a folder relative to the lab file's directory (no `..`)."""
    dockerfile: LabPath = "Dockerfile"
    """The Dockerfile, relative to the context."""
    args: dict[BuildArgName, Annotated[str, StringConstraints(max_length=4096)]] = Field({},
        examples=[{"VERSION": "1.2"}])
    """Build arguments (`ARG`s), as plain strings."""
    target: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = Field(None,
        examples=["runtime"])
    """The stage to build, of a multi-stage Dockerfile; default: the last."""


def _build(value: object) -> object:
    """``build: svc`` is short for ``build: {context: svc}``, as in compose."""
    return {"context": value} if isinstance(value, str) else value


Capability = Literal["NET_ADMIN", "NET_RAW"]  # all a lab file may add: a lab file may come from a stranger


class Host(Strict):
    """A container on the lab's network. ``image``: one of the project's images (``tcplab/server``, ...), or
    any image reference (local, or pulled as ``pull`` says with the engine's credentials); ``build``: an
    image built from a Dockerfile beside the lab file (with ``image`` too, the built image is also tagged
    so, as compose does). A host whose image is not the project's runs the image's own program."""
    image: ImageRef | None = None
    """The image the host runs: one of the project's (`tcplab/server`, `tcplab/client`, built from its images/), or
    any image reference (`example/svc:1`, `registry.example.com:5000/team/svc:2`), local or pulled as `pull` says.
    With `build`: the name the built image is also tagged with."""
    build: Annotated[Build, BeforeValidator(_build)] | None = None
    """An image built from a Dockerfile beside the lab file, as compose's `build:`: a folder (`build: .`) or a
    mapping."""
    pull: Literal["missing", "always", "never"] = "missing"
    """When to pull `image` (not a project image, not built): when it is missing here, always, or never."""
    cap_add: Annotated[list[Capability], Field(max_length=2)] = Field([], examples=[["NET_ADMIN"]])
    """Capabilities the host's container adds (NET_ADMIN, NET_RAW only: a lab file may come from a stranger)."""
    program: Program | None = None
    """The host's own program, started before the first step."""
    peer: Peer = Field(default_factory=Peer)
    """The TCP stack the host shows on the wire."""
    sysctls: dict[SysctlKey, Annotated[str, StringConstraints(pattern=r"^[0-9 ]{1,64}$")] | int] = Field({},
        examples=[{"net.ipv4.tcp_fin_timeout": 3}])
    """Kernel settings of the host's network namespace, e.g. `net.ipv4.tcp_fin_timeout: 3`."""
    limits: Limits = Field(default_factory=Limits)
    """Resource limits of the host's container."""
    ip: ipaddress.IPv4Address | None = Field(None, examples=["10.77.0.10"])
    """The host's address in the lab's subnet; default: the next free one. (With the lab's `networks`: each
    network's `ip` under the host's `networks`.)"""
    networks: dict[Name, HostNetwork | None] = Field({}, examples=[{"left": {"ip": "10.1.0.10"}, "right": {}}])
    """The lab's `networks` the host is on, each with its address there (default: the next free one); one
    interface per network. Only with the lab's `networks`. A host's name resolves only on the networks it is on:
    reach a host behind a router by its address."""
    routes: Annotated[list[Route], Field(max_length=16)] = []
    """Routes to other networks through a router host, e.g. `{to: 10.2.0.0/24, via: router}`."""
    router: bool = False
    """The host forwards packets between its networks (`net.ipv4.ip_forward=1` in its namespace; no privilege)."""
    nat: Nat | None = None
    """The host is a NAT box between its networks (with `router: true`): it masquerades onto one of them and
    forgets idle connections (see its section)."""

    @property
    def image_kind(self) -> Literal["project", "pulled", "built"]:
        """``project``: one of tcplab's images, built from images/; ``built``: from the lab's own Dockerfile;
        ``pulled``: any other image, local or pulled."""
        if self.build is not None:
            return "built"
        if self.image is not None and self.image.startswith(PROJECT_IMAGES):
            return "project"
        return "pulled"

    @property
    def own_program(self) -> bool:
        """The container's main process is the image's own program (not tcplab's agent or a sleep)."""
        return self.image_kind != "project"

    @property
    def program_name(self) -> str | None:
        """The name of the host's own program: ``program.name``; a host running its image's own program
        without a ``program:`` calls it ``program``; None for a project host without one."""
        if self.program is not None:
            return self.program.name
        return "program" if self.own_program else None


class Capture(Strict):
    # tcpdump filter: passed as one argv element, never through a shell; the
    # character set only keeps obvious garbage out early.
    filter: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 ._/:()!&|<>=\[\]-]{1,500}$")] = "tcp"
    """The tcpdump filter of every host's capture (one argument, never through a shell)."""
    blocks: bool = False
    """Write each capture a block at a time instead of each packet as it crosses: for floods. On 2 cores a capture
    written packet by packet holds about 50 000 small packets a second with no kernel drops, a block at a time
    100 000 and more (bench/capture.py). The costs: before it stops a capture, collection waits for the kernel to
    hand over its last block (up to a second after the run's last packet), the wait steps follow a second,
    FIN/RST-only capture, and a host killed from outside loses its capture's last second but for its FINs and RSTs.
    A host running its image's own program keeps the capture packet by packet (its container may end at any
    moment)."""


# --- steps ---------------------------------------------------------------
# Each kind of step is one class below and its line in STEP_KINDS: its fields (the YAML key that names
# the kind is one of them), its name and title, and how it is checked against the steps before it.
# How it plays is its player in tcplab/play/steps/.

class StepProblem(ValueError):
    """A step that does not fit the story so far: the field (under the step) and what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class StorySoFar:
    """What the steps before the one being checked did, as the loader walks the steps in order."""
    hosts: list[str]
    started: dict[tuple[str, str], int] = dataclass_field(default_factory=dict)  # (host, program): its step, -1: own
    stopped: dict[tuple[str, str], int] = dataclass_field(default_factory=dict)  # (host, program): the step
    snapshots: set[str] = dataclass_field(default_factory=set)
    rules: dict[tuple[str, str], int] = dataclass_field(default_factory=dict)  # (host, rule name): its step, in force
    routers: set[str] = dataclass_field(default_factory=set)  # the hosts that forward packets (router: true)

    def running(self, host: str, program: str, field: str) -> None:
        """StepProblem at ``field`` unless ``program`` was started on ``host`` and is not stopped yet."""
        if (host, program) in self.stopped:
            raise StepProblem(field, f"program '{program}' on {host} was already stopped "
                                     f"at steps.{self.stopped[(host, program)]}")
        if (host, program) not in self.started:
            elsewhere = sorted(h for h, p in self.started if p == program)
            hint = f" (it runs on {', '.join(elsewhere)})" if elsewhere else ""
            raise StepProblem(field, f"no program '{program}' was started on {host} before this step{hint}")


class BaseStep(Strict):
    """What every kind of step answers. Fields are each kind's own (``title`` and ``explain`` last in each, as
    users read them in an error's list of fields)."""

    if TYPE_CHECKING:
        title: str | None
        explain: str | None

    def name_at(self, index: int) -> str:
        """A stable name for the step at ``index``: what expectations anchor on (``after: stop-telnet2``)."""
        raise NotImplementedError

    def default_title(self) -> str:
        """What a person reads in the report and in Wireshark's packet comments when the lab gives no title."""
        raise NotImplementedError

    def check_story(self, index: int, story: StorySoFar) -> None:
        """StepProblem when the step does not fit the steps before it; records what it does to ``story``."""


class StartStep(BaseStep):
    host: Name
    """The host the program starts on."""
    start: Annotated[list[Arg], Field(min_length=1, max_length=64)]
    """The program's argv (never a shell string); its stdin stays open for `send` steps."""
    as_: Name = Field(alias="as")
    """The program's name: what `stop`, `send`, `wait: {exit}` and expectations call it."""
    ready: Ready | None = None
    """When the program counts as started (the step waits for it); without it, as soon as it runs."""
    title: Title | None = None
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def name_at(self, index: int) -> str:
        return f"start-{self.as_}"

    def default_title(self) -> str:
        return f"{self.host} starts {self.as_}: {' '.join(self.start)}"

    def check_story(self, index: int, story: StorySoFar) -> None:
        if (self.host, self.as_) in story.started:
            raise StepProblem("as", f"a program '{self.as_}' is already started on {self.host}")
        story.started[(self.host, self.as_)] = index
        story.stopped.pop((self.host, self.as_), None)


class StopStep(BaseStep):
    host: Name
    """The host the program runs on."""
    stop: Name
    """The program to end: a started program's `as`, or the host's program's `name`."""
    signal: Literal["TERM", "INT", "KILL", "HUP"] = "TERM"
    """The signal that ends it."""
    title: Title | None = None
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def name_at(self, index: int) -> str:
        return f"stop-{self.stop}"

    def default_title(self) -> str:
        return f"{self.host} closes {self.stop}"

    def check_story(self, index: int, story: StorySoFar) -> None:
        story.running(self.host, self.stop, "stop")
        del story.started[(self.host, self.stop)]
        story.stopped[(self.host, self.stop)] = index


class SendStep(BaseStep):
    host: Name = Field(examples=["client"])
    """The host the program runs on."""
    send: Name = Field(examples=["telnet1"])
    """The program to type into: a started program's `as`."""
    text: Annotated[str, StringConstraints(max_length=65536)] = Field(examples=["quit\n"])
    """The text written to the program's stdin, as is (end it with a newline to send a line)."""
    title: Title | None = Field(None, examples=["the client says quit"])
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def name_at(self, index: int) -> str:
        return f"send-{self.send}-{index}"

    def default_title(self) -> str:
        return f"{self.host} types into {self.send}"

    def check_story(self, index: int, story: StorySoFar) -> None:
        story.running(self.host, self.send, "send")


class SnapshotStep(BaseStep):
    snapshot: Name
    """The snapshot's name (what `state` expectations name in `at`): every host's socket table (netstat and ss) is
    taken now. `end` is taken after the last step."""
    title: Title | None = Field(None, examples=["sockets after the close"])
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def name_at(self, index: int) -> str:
        return self.snapshot

    def default_title(self) -> str:
        return f"snapshot {self.snapshot}"

    def check_story(self, index: int, story: StorySoFar) -> None:
        if self.snapshot == "end":
            raise StepProblem("snapshot", "'end' is the name of the snapshot taken when the steps are done: "
                                          "choose another name")
        if self.snapshot in story.snapshots:
            raise StepProblem("snapshot", f"a snapshot '{self.snapshot}' was taken before: snapshot names must "
                                          "be unique")
        story.snapshots.add(self.snapshot)


class WaitFor(Strict):
    """What a wait step waits for; exactly one of these."""
    rst_from: Name | None = None
    """Wait until this host sends an RST."""
    fin_from: Name | None = None
    """Wait until this host sends a FIN."""
    seconds: Seconds | None = None
    """Wait this long."""
    exit: Name | None = Field(None, examples=["telnet1"])
    """Wait until this program of the step's `host` ends (a started program's `as`, or the host's program's `name`)."""


class WaitStep(BaseStep):
    wait: WaitFor
    """What to wait for: exactly one of its fields."""
    host: Name | None = Field(None, examples=["client"])
    """With `wait: {exit}` only: the host the program runs on."""
    timeout: Seconds = 30.0
    """The longest the step waits; what it waits for not coming by then fails the run."""
    title: Title | None = None
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def name_at(self, index: int) -> str:
        return f"wait-{index}"

    def default_title(self) -> str:
        w = self.wait
        if w.rst_from:
            return f"wait for an RST from {w.rst_from}"
        if w.fin_from:
            return f"wait for a FIN from {w.fin_from}"
        if w.exit:
            return f"wait for {w.exit} on {self.host} to exit"
        return f"wait {w.seconds:g} s"

    def check_story(self, index: int, story: StorySoFar) -> None:
        w = self.wait
        given = [k for k in ("rst_from", "fin_from", "seconds", "exit") if getattr(w, k) is not None]
        if len(given) != 1:
            raise StepProblem("wait", "give exactly one of rst_from, fin_from, seconds, exit "
                                      f"({'this one has ' + ' and '.join(given) if given else 'none given'})")
        if w.exit is not None and self.host is None:
            raise StepProblem("host", f"a wait for '{w.exit}' to exit names the host it runs on")
        if w.exit is None and self.host is not None:
            raise StepProblem("host", "only a wait for a program's exit names a host")
        if w.exit is not None and self.host is not None and (self.host, w.exit) not in story.started \
                and (self.host, w.exit) not in story.stopped:
            raise StepProblem("wait.exit", f"no program '{w.exit}' was started on {self.host} before this step")
        for k in ("rst_from", "fin_from"):
            h = getattr(w, k)
            if h is not None and h not in story.hosts:
                raise StepProblem(f"wait.{k}", f"unknown host '{h}' (hosts: {', '.join(story.hosts)})")
        if w.seconds is not None and w.seconds > self.timeout:
            raise StepProblem("timeout", f"{format_duration(self.timeout)} is shorter than the wait itself "
                                         f"({format_duration(w.seconds)}): make the timeout longer")


class FirewallStep(BaseStep):
    """A rule of the host's own firewall: its packets to (``to``) or from (``from``) a peer, or every packet
    when neither is given, on ``port`` (either end of the connection) or any, are dropped silently or
    rejected (``with``: an RST, or an ICMP port unreachable); with ``icmp: frag-needed`` the ICMP
    "fragmentation needed" messages the host sends or forwards are dropped instead (a PMTU black hole);
    ``clamp-mss`` lowers the MSS of the SYNs a router forwards to fit the path's MTU. It stays in force until
    a ``lift`` step names it (``as``). Played by a sidecar in the host's network namespace: the host gets no
    privilege."""
    host: Name
    """The host whose firewall gets the rule (in its network namespace, set from its firewall sidecar)."""
    firewall: Literal["drop", "reject", "clamp-mss"]
    """`drop`: the packets vanish silently; `reject`: they are answered (see `with`); `clamp-mss`: the MSS option
    of each SYN the host forwards is lowered to fit the MTU of the path it takes, both ways (iptables' TCPMSS
    `--clamp-mss-to-pmtu`; on a `router: true` host, `port` only)."""
    icmp: Literal["frag-needed"] | None = None
    """With `drop`: the rule drops the ICMP "fragmentation needed" messages (type 3 code 4) the host sends or
    forwards instead of TCP packets: the sender never learns the path's MTU (a PMTU black hole). No `from`, `to`
    or `port`."""
    from_: Name | None = Field(None, alias="from")
    """Only the host's incoming packets from this peer (neither `from` nor `to`: both ways, every peer)."""
    to: Name | None = None
    """Only the host's outgoing packets to this peer."""
    port: Port | None = None
    """Only packets with this port at either end of the connection; default: any port."""
    with_: Literal["tcp-reset", "icmp-port-unreachable"] | None = Field(None, alias="with")
    """How a `reject` answers: an RST (default) or an ICMP port unreachable."""
    as_: Name | None = Field(None, alias="as")
    """The rule's name, for the `lift` step that ends it; default: `firewall-<step index>`."""
    title: Title | None = None
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def rule_name(self, index: int) -> str:
        """What a ``lift`` step names: its ``as``, else ``firewall-<index>``."""
        return self.as_ or f"firewall-{index}"

    def name_at(self, index: int) -> str:
        return f"firewall-{self.as_}" if self.as_ else f"firewall-{index}"

    def rejects_with(self) -> str | None:
        """How a reject answers: an RST unless ``with`` says otherwise; None for a drop or a clamp."""
        return (self.with_ or "tcp-reset") if self.firewall == "reject" else None

    def default_title(self) -> str:
        if self.firewall == "clamp-mss":
            return (f"{self.host} clamps the MSS of the SYNs it forwards to the path's MTU"
                    + (f" on port {self.port}" if self.port else ""))
        if self.icmp is not None:
            return f"{self.host}'s firewall drops the ICMP 'fragmentation needed' it sends or forwards"
        what = f"{self.firewall}s" + (f" (with {self.rejects_with()})" if self.firewall == "reject" else "")
        whose = (f"its packets to {self.to}" if self.to else f"packets from {self.from_}" if self.from_
                 else "all its packets")
        return f"{self.host}'s firewall {what} {whose}" + (f" on port {self.port}" if self.port else "")

    def check_story(self, index: int, story: StorySoFar) -> None:
        if self.from_ is not None and self.to is not None:
            raise StepProblem("to", "give from (the host's incoming packets) or to (its outgoing ones), not both; "
                                    "neither: both ways")
        for key, peer in (("from", self.from_), ("to", self.to)):
            if peer is None:
                continue
            if peer not in story.hosts:
                raise StepProblem(key, f"unknown host '{peer}' (hosts: {', '.join(story.hosts)})")
            if peer == self.host:
                raise StepProblem(key, f"{peer} is the host whose firewall this is: name its peer")
        if self.with_ is not None and self.firewall != "reject":
            raise StepProblem("with", f"only a reject answers with something: a {self.firewall} is silent")
        if self.icmp is not None or self.firewall == "clamp-mss":
            what = "an ICMP rule" if self.icmp is not None else "a clamp"
            if self.icmp is not None and self.firewall != "drop":
                raise StepProblem("icmp", "only a drop takes icmp: the ICMP messages are dropped, not answered")
            for key, given in (("from", self.from_), ("to", self.to)):
                if given is not None:
                    raise StepProblem(key, f"{what} is about every peer's packets: leave {key} out")
            if self.icmp is not None and self.port is not None:
                raise StepProblem("port", "an ICMP message has no port: leave port out")
            if self.firewall == "clamp-mss" and self.host not in story.routers:
                raise StepProblem("firewall", f"{self.host} forwards no packets: clamp the MSS on a router: true "
                                              "host")
        name = self.rule_name(index)
        if (self.host, name) in story.rules:
            raise StepProblem("as", f"a rule '{name}' is already in force on {self.host} "
                                    f"(steps.{story.rules[(self.host, name)]}): lift it first or choose another name")
        story.rules[(self.host, name)] = index


class ImpairMatch(Strict):
    """Which of the host's packets an impairment counts: a direction, a port, flags, data segments only."""
    from_: Name | None = Field(None, alias="from")
    """Only the host's incoming packets from this peer (neither `from` nor `to`: its outgoing packets to any peer)."""
    to: Name | None = None
    """Only the host's outgoing packets to this peer."""
    port: Port | None = None
    """Only packets with this port at either end of the connection; default: any port."""
    data: bool = False
    """Count only TCP segments that carry data (`true`: the 3rd is the 3rd data segment, not the 3rd packet)."""
    flags: Annotated[str, StringConstraints(pattern=r"^[SFRP.]{1,5}$")] | None = None
    """Only packets with exactly these TCP flags, as tcpdump prints them (`S`, `S.`, `P.`, `F.`, `R`, `.`: ack
    only); URG and ECN bits are not compared."""


class ImpairStep(BaseStep):
    """An impairment of the host's link: from this step on, the chosen matching packets (the `nth`, `every`
    n-th, or each with a `probability` drawn from a recorded `seed`; for a delay or a duplicate, every one
    without those) are dropped, delayed or duplicated until a ``lift`` step names it (``as``). Played through
    NFQUEUE by an impairment sidecar in the host's network namespace, which logs every packet it impairs; the
    host gets no privilege."""
    host: Name
    """The host whose packets are impaired (in its network namespace)."""
    impair: Literal["drop", "delay", "duplicate"]
    """What is done to the chosen packets: `drop`, `delay` (by `delay`, plus up to `jitter`), or `duplicate` (a
    copy follows each: the host's outgoing packets only)."""
    nth: int | None = Field(None, ge=1)
    """Drop only the n-th matching packet (counted from this step)."""
    every: int | None = Field(None, ge=1)
    """Drop every n-th matching packet."""
    probability: float | None = Field(None, gt=0, le=1)
    """Drop each matching packet with this probability (from `seed`)."""
    delay: Seconds | None = Field(None, ge=0, le=10)
    """With `impair: delay`: how long each chosen packet is held before it goes on."""
    jitter: Seconds = Field(0.0, ge=0, le=10)
    """With `impair: delay`: up to this much more, uniformly drawn from `seed` (packets may overtake each other)."""
    seed: int = Field(1, ge=0)
    """The random generator's seed for `probability`: the same seed drops the same packets of the same story."""
    match: ImpairMatch = Field(default_factory=lambda: ImpairMatch.model_validate({}))
    """Which packets count (direction, port, flags, data only)."""
    as_: Name | None = Field(None, alias="as")
    """The impairment's name, for the `lift` step that ends it and for the log; default: `impair-<step index>`."""
    title: Title | None = None
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def rule_name(self, index: int) -> str:
        """What a ``lift`` step names: its ``as``, else ``impair-<index>``."""
        return self.as_ or f"impair-{index}"

    def name_at(self, index: int) -> str:
        return f"impair-{self.as_}" if self.as_ else f"impair-{index}"

    def how(self) -> tuple[str, int]:
        """The program's choice and its value: ``nth``/``every`` and n, ``prob`` and parts per million, or
        ``all``."""
        if self.nth is not None:
            return "nth", self.nth
        if self.every is not None:
            return "every", self.every
        if self.probability is not None:
            return "prob", round(self.probability * 1_000_000)
        return "all", 0

    def default_title(self) -> str:
        m = self.match
        which = ("data segment" if m.data else "packet") + (f"s to {m.to}" if m.to else f"s from {m.from_}"
                                                            if m.from_ else "s")
        what = (f"#{self.nth} of its {which}" if self.nth else f"1 in {self.every} of its {which}" if self.every
                else f"its {which} with probability {self.probability} (seed {self.seed})" if self.probability
                else f"all its {which}")
        verb = {"drop": "drops", "duplicate": "duplicates"}.get(self.impair) or (
            f"delays ({format_duration(self.delay or 0)}"
            + (f" + up to {format_duration(self.jitter)})" if self.jitter else ")"))
        return f"{self.host}'s link {verb} {what}" + (f" on port {m.port}" if m.port else "")

    def check_story(self, index: int, story: StorySoFar) -> None:
        given = [k for k in ("nth", "every", "probability") if getattr(self, k) is not None]
        if self.impair == "drop" and len(given) != 1:
            raise StepProblem("nth", "give exactly one of nth, every, probability")
        if len(given) > 1:
            raise StepProblem(given[1], "give at most one of nth, every, probability (none: every matching packet)")
        if self.impair == "delay" and self.delay is None:
            raise StepProblem("delay", "is required with impair: delay (e.g. 100ms)")
        if self.impair == "duplicate" and self.match.from_ is not None:
            raise StepProblem("match.from", "a duplicate is sent again from the host: only its outgoing packets "
                                            "(match.to, or neither) can be duplicated")
        if self.impair != "delay" and (self.delay is not None or self.jitter):
            raise StepProblem("delay" if self.delay is not None else "jitter",
                              f"only a delay has one: a {self.impair} is not held")
        m = self.match
        if m.flags is not None and len(set(m.flags)) != len(m.flags):
            raise StepProblem("match.flags", f"'{m.flags}' names a flag twice (write e.g. S, S., P., F., R, .)")
        if m.from_ is not None and m.to is not None:
            raise StepProblem("match.to", "give from (the host's incoming packets) or to (its outgoing ones), not both")
        for key, peer in (("match.from", m.from_), ("match.to", m.to)):
            if peer is None:
                continue
            if peer not in story.hosts:
                raise StepProblem(key, f"unknown host '{peer}' (hosts: {', '.join(story.hosts)})")
            if peer == self.host:
                raise StepProblem(key, f"{peer} is the host whose link this is: name its peer")
        name = self.rule_name(index)
        if (self.host, name) in story.rules:
            raise StepProblem("as", f"a rule '{name}' is already in force on {self.host} "
                                    f"(steps.{story.rules[(self.host, name)]}): lift it first or choose another name")
        story.rules[(self.host, name)] = index


class LiftStep(BaseStep):
    """The end of a firewall rule or an impairment of the host (its ``as``): its packets flow again."""
    host: Name
    """The host whose firewall rule ends."""
    lift: Name
    """The rule: its `as` (or `firewall-<step index>`, `impair-<step index>`)."""
    title: Title | None = None
    """What the report and the capture's packet comments call the step; default: one made from the step."""
    explain: Explain | None = None
    """For teaching: one paragraph on what the step does and what to look for; `lab up --step` says it before the
    step, and the report's list of steps shows it."""

    def name_at(self, index: int) -> str:
        return f"lift-{self.lift}"

    def default_title(self) -> str:
        return f"{self.host} lifts {self.lift}"

    def check_story(self, index: int, story: StorySoFar) -> None:
        if (self.host, self.lift) not in story.rules:
            known = sorted(n for h, n in story.rules if h == self.host)
            raise StepProblem("lift", f"no firewall rule or impairment '{self.lift}' is in force on {self.host} "
                                      f"({'rules in force: ' + ', '.join(known) if known else 'none is'})")
        del story.rules[(self.host, self.lift)]


# The kinds of step, by the YAML key that names each: one line per kind.
STEP_KINDS: dict[str, type[BaseStep]] = {
    "start": StartStep, "stop": StopStep, "send": SendStep, "snapshot": SnapshotStep, "wait": WaitStep,
    "firewall": FirewallStep, "lift": LiftStep, "impair": ImpairStep,
}


def _step_tag(value: object) -> str | None:
    if isinstance(value, dict):
        found = [k for k in STEP_KINDS if k in value]
        return found[0] if len(found) == 1 else None
    for kind, cls in STEP_KINDS.items():
        if isinstance(value, cls):
            return kind
    return None


if TYPE_CHECKING:
    Step = BaseStep  # pydantic reads the tagged union below; code reads any kind of step
else:
    Step = Annotated[
        Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in STEP_KINDS.items())],
        Discriminator(_step_tag, custom_error_type="step_kind",
                      custom_error_message=f"a step needs exactly one of: {', '.join(STEP_KINDS)}"),
    ]


def step_kind(step: Step) -> str:
    return _step_tag(step) or "?"


def step_name(step: Step, index: int) -> str:
    """A stable name for a step: its snapshot or program name, else its position."""
    return step.name_at(index)


def step_explain(step: Step) -> str | None:
    """The lab's explanation of the step for the class (``explain``), if it gives one."""
    text = getattr(step, "explain", None)
    return text if isinstance(text, str) and text.strip() else None


def step_title(step: Step) -> str:
    """What a person reads in the report and in Wireshark's packet comments."""
    return step.title or step.default_title()


# --- expectations --------------------------------------------------------
# The language is packetdrill's idea (packets asserted with a timing
# tolerance) with netlab validate's manners (every check named and described).

FlagString = Annotated[str, StringConstraints(pattern=r"^[SFRPUEW.]{1,8}$|^none$")]
FlagBits = Annotated[str, StringConstraints(pattern=r"^[SFRPUEW]{1,7}$")]
OptionName = Literal["mss", "nop", "wscale", "sackOK", "TS", "eol", "sack"]
# What an expectation can be timed from: an earlier expectation, a snapshot, a
# step by name (start-telnet1, stop-telnet2, wait-4) or by position (steps.4).
Anchor = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$|^steps\.[0-9]{1,3}$")]
_FIELD_REF = re.compile(r"^(peers\.[a-z][a-z0-9_-]{0,30}|hosts\.[a-z][a-z0-9_-]{0,30}\.peer)\.[a-z][a-z0-9_]{0,40}$")
# a sysctl of a host's network namespace, as the run read it: hosts.client.sysctls.net.ipv4.tcp_keepalive_time
SYSCTL_REF = re.compile(r"^hosts\.(?P<host>[a-z][a-z0-9_-]{0,30})\.sysctls\."
                        r"(?P<name>net\.(ipv4|ipv6|core)\.[a-z0-9_.]{1,80})$")
# the sysctls whose value is a number of seconds, so a delay may be one of them
SECONDS_SYSCTLS = ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_fin_timeout")


def sysctl_ref(value: object) -> tuple[str, str] | None:
    """(host, sysctl) of a ``hosts.X.sysctls.NAME`` reference, else None."""
    m = SYSCTL_REF.match(value) if isinstance(value, str) else None
    return (m.group("host"), m.group("name")) if m else None


def _delay(value: object) -> object:
    """A duration, or the dotted path of a duration field of the lab (``peers.win.fin_wait2_timeout``), or of a
    host's sysctl as the run read it (``hosts.client.sysctls.net.ipv4.tcp_keepalive_time``), so an expectation
    follows ``--set`` and the kernel instead of repeating the timer."""
    if isinstance(value, str) and (_FIELD_REF.match(value.strip()) or SYSCTL_REF.match(value.strip())):
        return value.strip()
    try:
        return parse_duration(value)
    except ValueError as e:
        raise ValueError(f"{e}; or name a field of the lab, like peers.win.fin_wait2_timeout, or a sysctl the run "
                         "reads, like hosts.client.sysctls.net.ipv4.tcp_keepalive_time") from None


Delay = Annotated[Union[float, str], BeforeValidator(_delay)]

# Gaps between successive packets the kernel times itself, named by the timer: computed for the sending host
# (``from``) from the sysctls the run read there (tcplab/analysis/kernel_timers.py says how).
INTERVAL_PATTERNS: dict[str, tuple[str, ...]] = {
    "syn-backoff": ("net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syn_linear_timeouts"),
    "synack-backoff": ("net.ipv4.tcp_synack_retries",),
    "keepalive": ("net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"),
    # the retransmission timer's backoff: computed from the first gap the run shows, which needs no sysctl
    "rto-backoff": (),
}


def _intervals(value: object) -> object:
    if isinstance(value, str):
        v = value.strip()
        if v in INTERVAL_PATTERNS:
            return v
        raise ValueError(f"{v[:40]!r} is not a list of durations nor a kernel timer's pattern "
                         f"({', '.join(INTERVAL_PATTERNS)})")
    return value


Intervals = Annotated[Union[Annotated[list[Seconds], Field(min_length=1, max_length=64)], str],
                      BeforeValidator(_intervals)]


class Between(Strict):
    """A number within bounds (both included); either bound may be left out."""
    min: Annotated[int, Field(ge=0, strict=True)] | None = None
    """The least it may be."""
    max: Annotated[int, Field(ge=0, strict=True)] | None = None
    """The most it may be."""


class PacketMatch(Strict):
    """Packets that match every field given. Without ``count``: at least one, in the time window."""
    from_: Name | None = Field(None, alias="from")
    """The host that sent the packet."""
    to: Name | None = None
    """The host the packet went to."""
    seen_at: Name | None = None
    """Judge the packet's copy captured on this host (on any of its interfaces): what arrived there, or what a router
    passed on, with the fields as they were there (an MSS a router clamped, a TTL one lower per hop); a packet never
    seen there does not count. Default: the sender's copy."""
    port: Port | None = Field(None, examples=[8000])
    """A TCP port of the packet (source or destination)."""
    flags: FlagString | None = None
    """Exactly these flags, as tcpdump prints them: `F.`, `R.`, `S`, `.`."""
    has_flags: FlagBits | None = None
    """At least these flag bits, whatever else is set: `F`."""
    seq: Annotated[int, Field(ge=0)] | None = None
    """The sequence number, relative to the connection's first (as tcpdump prints it)."""
    ack: Annotated[int, Field(ge=0)] | None = None
    """The acknowledgment number, relative (as tcpdump prints it)."""
    win: Annotated[int, Field(ge=0, le=65535)] | None = None
    """The window field as sent (not scaled)."""
    ttl: Annotated[int, Field(ge=1, le=255)] | None = None
    """The IP TTL."""
    mss: Annotated[int, Field(ge=0, le=65535)] | None = Field(None, examples=[1460])
    """The MSS option's value."""
    wscale: Annotated[int, Field(ge=0, le=14)] | None = None
    """The window scale option's value."""
    options: list[OptionName] | None = None
    """Exactly these TCP options, in this order."""
    with_options: list[OptionName] | None = None
    """These TCP options are present, in any order."""
    without_options: list[OptionName] | None = None
    """These TCP options are absent."""
    payload: Annotated[str, StringConstraints(max_length=1024)] | None = Field(None, examples=["HELLO"])
    """A substring of the payload."""
    length: Annotated[int, Field(ge=0, le=65535, strict=True)] | Between | None = None
    """The TCP payload's length in bytes, or `{min, max}`. A capture on the sending host holds the kernel's
    segments before the interface cuts them to the MTU (GSO: a veth has it), so a sender's copy may carry several
    segments' worth; a retransmission is one segment."""
    count: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    """Exactly this many matching packets in the window (0: never). Without it: at least one."""
    after: Anchor | None = None
    """Only packets after this moment count."""
    delay: Delay | None = None
    """The packet that counts comes at `after` + `delay`, within `tolerance`. A duration, a peer's timer
    (`peers.win.fin_wait2_timeout`), or a sysctl in seconds as the run read it in a host
    (`hosts.client.sysctls.net.ipv4.tcp_keepalive_time`)."""
    tolerance: Seconds = 0.05
    """How far from `after` + `delay` the packet may come."""
    # After an anchor the rule is about one packet: the next matching one (nth: 1), or the n-th;
    # ``any: true`` lets any matching packet in the window count instead.
    nth: Annotated[int, Field(ge=1, le=1000)] | None = Field(None, examples=[2])
    """After an anchor the rule is about one packet: the next matching one (`nth: 1`), or the n-th."""
    any: bool = False
    """Let any matching packet in the window count, rather than the next one."""
    within: Seconds | None = Field(None, examples=["1s"])
    """Only packets within this long after `after` count."""
    before: Anchor | None = Field(None, examples=["stop-telnet2"])
    """Only packets before this moment count."""
    intervals: Intervals | None = None
    """Every matching packet of the window as a sequence: the gaps between successive ones from the first, each
    within `tolerance` (N gaps: exactly N+1 packets). A list of durations, or a kernel timer's pattern for the
    sysctls the run read on the sending host: `syn-backoff`, `synack-backoff`, `keepalive`; or `rto-backoff`: the
    first gap is the RTO the run shows, at least TCP_RTO_MIN (200 ms), and each next one twice the one before (up
    to TCP_RTO_MAX, 120 s), as many as the window holds (two at least)."""
    probe: bool | None = None
    """`true`: only zero-length probes (keepalive, zero window: a bare ACK with seq = snd_una - 1, which the peer
    answers with an ACK); `false`: no probe."""

    def delay_seconds(self, lab: "Lab") -> float | None:
        """The delay in seconds; a field reference is read from ``lab`` (None when that field is unset). A
        sysctl reference is read from the run (tcplab/analysis/checks/packet.py), not here: None."""
        if self.delay is None or isinstance(self.delay, float):
            return self.delay
        if sysctl_ref(self.delay):
            return None
        return lab.duration_field(self.delay)

    def sysctls_needed(self) -> list[tuple[str | None, str]]:
        """(host, sysctl) the rule reads from the run: a delay's reference, an interval pattern's (the sender's)."""
        out: list[tuple[str | None, str]] = []
        ref = sysctl_ref(self.delay)
        if ref:
            out.append(ref)
        if isinstance(self.intervals, str):
            out += [(self.from_, name) for name in INTERVAL_PATTERNS[self.intervals]]
        return out


class SecondsBetween(Strict):
    """A time within bounds (both included); either bound may be left out."""
    min: Seconds | None = None
    """The least it may be."""
    max: Seconds | None = None
    """The most it may be."""


QueueBytes = Union[Annotated[int, Field(ge=0, strict=True)], Between]
# ss's timers (-o): the TIME_WAIT countdown, keepalive, retransmission (``on``), zero-window probe, none
TimerName = Literal["timewait", "keepalive", "on", "persist", "off"]


class StateMatch(Strict):
    """Sockets of ``host`` (local ``port``, connected to ``peer``) in the snapshot ``at``.

    ``is``: one of them is in that state; ``not``: none of them is; ``absent``: there are none.
    ``owner``: a program name, ``none`` (no process holds it, as netstat's ``-``) or ``any``.
    With ``is``, the socket also shows ``recv_q``/``send_q`` (bytes, or on a listener: the accept queue and
    its limit, as ss prints them) and ss's ``timer`` with ``timer_left`` of it to run."""
    host: Name
    """The host whose sockets are looked at."""
    port: Port | None = None
    """The sockets' local port."""
    peer: Name | None = None
    """The host at the sockets' other end."""
    is_: State | None = Field(None, alias="is")
    """One of the sockets is in this state."""
    not_: State | None = Field(None, alias="not", examples=["CLOSE_WAIT"])
    """None of the sockets is in this state."""
    absent: bool = False
    """There are no such sockets."""
    at: Name
    """The snapshot to look in (a `snapshot` step's name, or `end`)."""
    owner: Literal["none", "any"] | Name | None = None
    """The program that holds the socket: its name, `none` (no process holds it, netstat's `-`) or `any`."""
    recv_q: QueueBytes | None = None
    """With `is`: the socket's Recv-Q (bytes not yet read; on a listener, ss's accept queue), or `{min, max}`."""
    send_q: QueueBytes | None = None
    """With `is`: the socket's Send-Q (bytes not yet acked; on a listener, ss's backlog limit), or `{min, max}`."""
    timer: TimerName | None = None
    """With `is`: ss's timer on the socket: `timewait`, `keepalive`, `on` (retransmission), `persist` (zero
    window) or `off` (none)."""
    timer_left: SecondsBetween | None = None
    """With `timer`: the time left on it, as ss shows it: `{min, max}`."""


def _traced(value: str) -> str:
    """A state a transition can name: the tracepoint never reports the request socket's."""
    if value == "NEW_SYN_RECV":
        raise ValueError("NEW_SYN_RECV is the request socket of a handshake in progress, which the kernel makes and "
                         "frees without a state-change tracepoint: write SYN_RECV (the socket the completed "
                         "handshake makes)")
    return value


TracedState = Annotated[State, AfterValidator(_traced)]


class TransitionMatch(Strict):
    """A state change of a socket of ``host`` (kernel tracepoint), within ``within`` of ``near``.

    TIME_WAIT and the end of TIME_WAIT have no tracepoint: they are derived (tcplab/observe/timewait.py),
    from FIN_WAIT2 or CLOSING only. A listener is recorded only when bound to the host's own address."""
    host: Name
    """The host whose socket changes state."""
    port: Port | None = None
    """The socket's local port."""
    peer: Name | None = None
    """The host at the socket's other end."""
    from_: TracedState | None = Field(None, alias="from")
    """The state it leaves."""
    to: TracedState
    """The state it enters."""
    near: Anchor | None = None
    """The moment the change is expected at."""
    within: Seconds = 0.05
    """How far from `near` the change may come."""

    @field_validator("to")
    @classmethod
    def _can_happen(cls, to: str, info: ValidationInfo) -> str:
        """Refuse what no run can show, so a lab never waits for a change that cannot come."""
        frm, peer = info.data.get("from_"), info.data.get("peer")
        if frm == to:
            raise ValueError(f"from and to are both {to}: a transition changes the state")
        if to == "TIME_WAIT" and frm not in (None, "FIN_WAIT2", "CLOSING"):
            raise ValueError(f"a socket enters TIME_WAIT from FIN_WAIT2 or CLOSING, never from {frm}")
        if frm == "TIME_WAIT" and to != "CLOSE":
            raise ValueError(f"TIME_WAIT ends only in CLOSE (its 60 s timer, or a reset), never in {to}")
        if to == "LISTEN" and peer is not None:
            raise ValueError("a listening socket has no peer: drop 'peer'")
        return to


# The errors a socket call reports that the stories are about: name -> (Linux errno, strerror's text).
ERRNOS: dict[str, tuple[int, str]] = {
    "EPIPE": (32, "Broken pipe"),
    "EADDRINUSE": (98, "Address already in use"),
    "EADDRNOTAVAIL": (99, "Cannot assign requested address"),
    "ENETUNREACH": (101, "Network is unreachable"),
    "ECONNABORTED": (103, "Software caused connection abort"),
    "ECONNRESET": (104, "Connection reset by peer"),
    "ETIMEDOUT": (110, "Connection timed out"),
    "ECONNREFUSED": (111, "Connection refused"),
    "EHOSTUNREACH": (113, "No route to host"),
}


def errno_pattern(name: str) -> str:
    """How programs print an errno of ERRNOS (a regex): its name (EPIPE), its strerror text as perror, telnet
    and Python print it ("Connection refused"), or Python's ``[Errno 111]``."""
    number, text = ERRNOS[name]
    return rf"\b{name}\b|{re.escape(text)}|\[Errno {number}\]"


if TYPE_CHECKING:
    ErrnoName = str
else:
    ErrnoName = Literal[tuple(ERRNOS)]


class ProgramMatch(Strict):
    """A story program: the host's own (``hosts.X.program.name``) or a started one (its ``as``).

    ``exit``: it exited with this status by the end of the run (ended by signal N: 128+N, as a shell
    says); ``running``: it was (true) or was not (false) still running when the run ended; ``output``:
    a regex found in its output; ``error``: it reported this errno (its name, its strerror text as
    perror/telnet/Python print it, or Python's ``[Errno N]``). With none of them: it was started."""
    host: Name = Field(examples=["server"])
    """The host the program runs on."""
    name: Name = Field(examples=["server"])
    """The program: the host's program's `name` or a started program's `as`."""
    exit: Annotated[int, Field(ge=0, le=255, strict=True)] | None = Field(None, examples=[0])
    """It exited with this status by the end of the run (killed by signal N: 128+N, as a shell says)."""
    running: bool | None = Field(None, examples=[True])
    """It was (`true`) or was not (`false`) still running when the run ended."""
    output: Regex | None = Field(None, examples=["listening on .*:8000"])
    """A regex found in its output."""
    error: ErrnoName | None = None
    """The program reported this errno (`ECONNREFUSED`, `ETIMEDOUT`...): its name, its strerror text as telnet,
    perror or socat print it (`Connection refused`), or Python's `[Errno 111]`, in its output."""


# nstat's names: the line's prefix and the field, as /proc/net/netstat and /proc/net/snmp pair them
def _counter_name(value: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]{1,63}", value):
        raise ValueError(f"{value[:40]!r} is not a counter's name as nstat prints it (e.g. TcpExtListenOverflows, "
                         "TcpOutRsts)")
    return value


CounterName = Annotated[str, AfterValidator(_counter_name)]
CounterValue = Annotated[int, Field(ge=0, strict=True)]


class CounterMatch(Strict):
    """A kernel counter of ``host``'s network namespace (nstat's name: ``TcpExtListenOverflows``,
    ``TcpOutRsts``) at the snapshot ``at``, or its change since the snapshot ``since``: at least ``min``,
    at most ``max``, or exactly ``equals``."""
    host: Name = Field(examples=["server"])
    """The host whose network namespace the counter is of."""
    name: CounterName = Field(examples=["TcpExtListenOverflows"])
    """The counter, as nstat names it: the line's prefix and the field of /proc/net/netstat or /proc/net/snmp."""
    at: Name = Field(examples=["after"])
    """The snapshot whose reading counts."""
    since: Name | None = Field(None, examples=["before"])
    """A snapshot before `at`: the change between the two counts instead of the value."""
    min: CounterValue | None = Field(None, examples=[1])
    """At least this (value, or change with `since`)."""
    max: CounterValue | None = Field(None, examples=[0])
    """At most this."""
    equals: CounterValue | None = Field(None, examples=[0])
    """Exactly this."""


class RetransmitMatch(Strict):
    """Retransmissions ``host``'s kernel made on its sockets (local ``port``, connected to ``peer``), as the
    tracer recorded them (tcp:tcp_retransmit_skb and tcp:tcp_retransmit_synack, ``sockets/retransmits.jsonl``):
    an RTO, a tail loss probe, a fast retransmit, a SYN or SYN-ACK sent again; never a keepalive or zero-window
    probe. Timed like a packet: after an anchor the rule is about the next one (or the ``nth``), at ``delay``;
    ``count`` counts the window's, ``intervals`` times them all."""
    host: Name = Field(examples=["client"])
    """The host whose kernel retransmitted."""
    port: Port | None = Field(None, examples=[40001])
    """The retransmitting socket's local port."""
    peer: Name | None = None
    """The host at the socket's other end."""
    state: State | None = Field(None, examples=["ESTABLISHED"])
    """The socket's state as the tracepoint gives it (`ESTABLISHED`, `SYN_SENT`, `FIN_WAIT1`...); a SYN-ACK's
    record has none."""
    count: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    """Exactly this many in the window (0: never). Without it: at least one."""
    after: Anchor | None = None
    """Only retransmissions after this moment count."""
    delay: Seconds | None = None
    """The one that counts comes at `after` + `delay`, within `tolerance`."""
    tolerance: Seconds = 0.05
    """How far from `after` + `delay` it may come; with `intervals`, how far each gap may be off."""
    nth: Annotated[int, Field(ge=1, le=1000)] | None = Field(None, examples=[2])
    """After an anchor the rule is about one retransmission: the next (`nth: 1`), or the n-th."""
    within: Seconds | None = Field(None, examples=["1s"])
    """Only retransmissions within this long after `after` count."""
    before: Anchor | None = None
    """Only retransmissions before this moment count."""
    intervals: Intervals | None = None
    """Every retransmission of the window as a sequence: the gaps between successive ones (N gaps: exactly N+1).
    A list of durations; `rto-backoff` (each gap twice the one before, the first at least TCP_RTO_MIN); or a kernel
    timer's pattern of `host` (`syn-backoff`, `synack-backoff`): its gaps after the first, since the first packet
    is the original, not a retransmission."""

    def delay_seconds(self, lab: "Lab") -> float | None:
        """The delay in seconds (a retransmission's delay is always a duration)."""
        return self.delay

    def sysctls_needed(self) -> list[tuple[str | None, str]]:
        """(host, sysctl) the rule reads from the run: an interval pattern's."""
        if isinstance(self.intervals, str):
            return [(self.host, name) for name in INTERVAL_PATTERNS[self.intervals]]
        return []


# The kinds of expectation, in one place: the key a lab file writes and the model of its body. An
# expectation has exactly one of them (the loader says so with this list); each has one check
# (tcplab/analysis/checks/) registered for its model.
EXPECTATION_KINDS: dict[str, type[Strict]] = {
    "packet": PacketMatch, "state": StateMatch, "transition": TransitionMatch, "program": ProgramMatch,
    "counter": CounterMatch, "retransmit": RetransmitMatch,
}
Match = Union[PacketMatch, StateMatch, TransitionMatch, ProgramMatch, CounterMatch, RetransmitMatch]


class Expectation(Strict):
    name: Name
    """What the terminal, result.json, the report and JUnit call the expectation; anchors (`after`, `near`) name it."""
    about: Annotated[str, StringConstraints(max_length=300)] | None = None
    """One line: the fact it checks, as the report says it."""
    # one field per kind of EXPECTATION_KINDS, named by it (checked below)
    packet: PacketMatch | None = None
    """Packets on the wire (the hosts' captures)."""
    state: StateMatch | None = None
    """Sockets in a snapshot (netstat/ss tables)."""
    transition: TransitionMatch | None = None
    """A socket's state change (the kernel's tracepoint)."""
    program: ProgramMatch | None = None
    """A story program: started, exited, still running, what it printed."""
    counter: CounterMatch | None = None
    """A kernel counter of a host's network namespace (snapshots), or its change between two snapshots."""
    retransmit: RetransmitMatch | None = None
    """Retransmissions a host's kernel made (the tracer's tcp:tcp_retransmit_skb records)."""

    def kinds_given(self) -> list[str]:
        """The kinds this expectation gives a body for (the loader accepts exactly one)."""
        return [k for k in EXPECTATION_KINDS if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        """packet, state, transition or program."""
        given = self.kinds_given()
        return given[0] if given else ""

    @property
    def match(self) -> Match:
        """The body of its kind: what to look for."""
        body = getattr(self, self.kind, None) if self.kind else None
        if body is None:
            raise ValueError(f"expectation {self.name} has no body (give one of: {', '.join(EXPECTATION_KINDS)})")
        return body  # type: ignore[no-any-return]


for _kind, _cls in EXPECTATION_KINDS.items():  # a kind without its field would be silently ignored
    assert Expectation.model_fields[_kind].annotation == _cls | None, _kind


def _one_line(value: str) -> str:
    if len(value.strip().splitlines()) > 1:  # any line break: \n, \r, \x85, \u2028...
        raise ValueError("is more than one line: a summary is one line (the story has room for more)")
    return value.strip()


class Lab(Strict):
    name: Name
    """The lab's name: containers, the network and run directories are named after it. One lab of a name is up at a
    time."""
    summary: Annotated[str, StringConstraints(max_length=300), AfterValidator(_one_line)] = Field(
        "", description="One line: what `lab ls`, the README's library and the report say of the lab.")
    story: Annotated[str, StringConstraints(max_length=5000)] = ""
    """The war story, as a person tells it (the report's first paragraph)."""
    reference: Annotated[LabReference | None, BeforeValidator(reference_form)] = Field(
        None, description="Where the lab's facts are published, and which expectation checks each: the report "
                          "renders them with this run's verdicts. The short form `reference: NAME` names a "
                          "comparison written in tcplab (`closewait-field-report`), as `reference: {report: NAME}`.")
    network: Network = Field(default_factory=Network)
    """The lab's private network (a lab of one network)."""
    networks: Annotated[dict[Name, Network], Field(max_length=8)] = Field(
        {}, examples=[{"left": {"subnet": "10.1.0.0/24"}, "right": {"subnet": "10.2.0.0/24", "mtu": 1400}}])
    """Several private networks by name, in place of `network`: each host says which it is on (its `networks`),
    `router: true` hosts forward between them and `routes` lead there."""
    capture: Capture = Field(default_factory=Capture)
    """What every host's capture records."""
    hosts: Annotated[dict[Name, Host], Field(min_length=1, max_length=16)]
    """The lab's hosts by name, each a container on the lab's network."""
    steps: Annotated[list[Step], Field(max_length=500)] = []
    """The story, played in order after the hosts' programs are started; each step is one kind (its key)."""
    expect: Annotated[list[Expectation], Field(max_length=500)] = []
    """What must be true of the run; `lab run` checks each against the evidence (exit 1 when one fails)."""

    def expectation_sysctls(self) -> dict[str, list[str]]:
        """Host -> the sysctls the run must read there for this lab, beyond the ones it always reads: those the
        lab sets and those its expectations are stated for."""
        out: dict[str, list[str]] = {h: list(host.sysctls) + list(host.nat.sysctls() if host.nat else {})
                                     for h, host in self.hosts.items()}
        for exp in self.expect:
            body = exp.packet or exp.retransmit
            if body is None:
                continue
            for host, name in body.sysctls_needed():
                for h in ([host] if host is not None else list(self.hosts)):
                    if h in out and name not in out[h]:
                        out[h].append(name)
        return out

    def duration_field(self, ref: str) -> float | None:
        """The seconds a peer's duration field holds (``peers.win.fin_wait2_timeout``), as the run uses
        it: an unset FIN_WAIT_2 timer is the peer kind's own (Windows: 120 s). KeyError for an unknown field."""
        parts = ref.split(".")
        if parts[0] == "peers":
            parts = ["hosts", parts[1], "peer", *parts[2:]]
        if len(parts) != 4 or parts[0] != "hosts" or parts[2] != "peer" or parts[1] not in self.hosts:
            raise KeyError(ref)
        peer = self.hosts[parts[1]].peer
        field = parts[3]
        if field == "fin_wait2_timeout":
            return peer_kind(peer.os).fin_wait2_reset(peer.fin_wait2_timeout)
        if field == "tcp_fin_timeout":
            return None if peer.tcp_fin_timeout is None else float(peer.tcp_fin_timeout)
        raise KeyError(ref)

    def sysctls_read(self) -> list[str]:
        """The sysctls this lab depends on, beyond those tcplab always reads: the reference block's, then
        those a host sets (a NAT box's flow table's too). Each is read in every host as the run starts and recorded
        in run.json."""
        named = list(self.reference.sysctls) if self.reference is not None else []
        named += [k for h in self.hosts.values() for k in h.sysctls]
        named += [k for h in self.hosts.values() if h.nat is not None for k in h.nat.sysctls()]
        return list(dict.fromkeys(named))

    def lab_networks(self) -> dict[str, Network]:
        """The lab's networks by name: its `networks`, or its one `network` (named ``lab``)."""
        return dict(self.networks) if self.networks else {SINGLE_NETWORK: self.network}

    def host_addresses(self, name: str) -> dict[str, ipaddress.IPv4Address]:
        """The host's address on each network it is on, its first network first."""
        if not self.networks:
            return {SINGLE_NETWORK: self.host_ip(name)}
        out: dict[str, ipaddress.IPv4Address] = {}
        for net, place in self.hosts[name].networks.items():
            if place is not None and place.ip is not None:
                out[net] = place.ip
                continue
            on = [h for h, host in self.hosts.items() if net in host.networks]
            out[net] = self.networks[net].subnet.network_address + 2 + on.index(name) if net in self.networks \
                else ipaddress.IPv4Address(0)
        return out

    def route_gateway(self, name: str, route: Route) -> ipaddress.IPv4Address | None:
        """The address of ``route.via`` on the first network it shares with host ``name`` (None: none)."""
        if route.via not in self.hosts:
            return None
        theirs = self.host_addresses(route.via)
        return next((theirs[n] for n in self.hosts[name].networks if n in theirs), None)

    def host_ip(self, name: str) -> ipaddress.IPv4Address:
        """The host's address: set in the file, else the n-th address after the gateway (with `networks`: its
        address on its first network)."""
        if self.networks:
            return next(iter(self.host_addresses(name).values()), ipaddress.IPv4Address(0))
        host = self.hosts[name]
        if host.ip is not None:
            return host.ip
        index = list(self.hosts).index(name)
        return self.network.subnet.network_address + 2 + index
