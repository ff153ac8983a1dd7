"""The container backend interface: what running a lab needs from an engine.

The Docker implementation lives in :mod:`tcplab.backend.docker`; another
engine (Podman, Kubernetes) would fill the same interface, as Kathará's
managers do, and :func:`tcplab.backend.connect` picks one. Nothing here
knows about reports or expectations, and nothing outside the backend knows
an engine's own words (its mount syntax, network modes or event format).

An engine may run on another machine (``DOCKER_HOST=tcp://...``, a CI job's
``docker:dind`` service): then :attr:`Backend.shares_files` is False, no
path of this machine may be mounted, and files move through the backend
(:meth:`Backend.read_dir`, :meth:`Backend.follow`) instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

# Labels every object carries, so `lab gc` and `lab down` find them.
LABEL_LAB = "tcplab.lab"
LABEL_RUN = "tcplab.run"
LABEL_OWNER_PID = "tcplab.owner-pid"
LABEL_OWNER_START = "tcplab.owner-start"
LABEL_ROLE = "tcplab.role"
LABEL_HOST = "tcplab.host"
LABEL_RUN_DIR = "tcplab.run-dir"


# exit statuses of a command that could not be run: 127 not found, 126 not executable (POSIX shells, exec)
COMMAND_MISSING = (126, 127)


class EngineError(Exception):
    """The container engine failed or is unreachable (exit status 3)."""


@dataclass(frozen=True)
class Mount:
    """``source`` mounted at ``target``. ``kind``: ``local`` a path of this machine (only where the engine
    shares its files), ``engine`` a path of the engine's own machine (its tracefs), ``volume`` a volume."""
    source: str
    target: str
    read_only: bool = False
    kind: str = "local"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: dict[str, str]
    command: list[str] | None = None
    hostname: str | None = None
    network: str | None = None
    ip: str | None = None
    aliases: tuple[str, ...] = ()
    more_networks: tuple[tuple[str, str], ...] = ()  # (network, address): further networks, connected before start
    joins: str | None = None  # a container whose network namespace this one shares (a host's sidecar)
    joins_pid: str | None = None  # a container whose PID namespace this one shares (a host's observer)
    isolated: bool = False  # no network at all
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    mem_limit: str | None = None
    nano_cpus: int | None = None
    pids_limit: int | None = None
    # a real-time CPU budget (microseconds per second) where the engine schedules real-time tasks by cgroup;
    # an engine that has none to give starts the container without it (what runs in it finds out)
    realtime_us: int | None = None
    mounts: tuple[Mount, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    init: bool = True
    user: str | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def command_missing(self) -> bool:
        """The command could not be run at all (not in the image, not executable), as a shell says it."""
        return self.exit_code in COMMAND_MISSING


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # created, running, exited, dead, missing
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    finished_at: float | None = None  # when it exited (epoch seconds), for one that did

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class Removed:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def count(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.volumes)


@dataclass(frozen=True)
class LabeledObject:
    kind: str  # container, network, volume
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class ImageRecord:
    name: str
    id: str
    base: str
    created: str
    built_now: bool
    kind: str = "project"  # project (built from images/), pulled (local or pulled), built (a lab's Dockerfile)
    reference: str = ""  # the name the lab gave it (pulled), or the extra tag of a built image ("" if none)


@dataclass(frozen=True)
class BuildRequest:
    """An image to build from a lab's own Dockerfile, tagged ``repository:<hash of what goes in>`` so that an
    unchanged context is not built again. ``dockerfile`` is relative to ``context``."""
    context: Path
    dockerfile: str
    args: dict[str, str]
    target: str | None
    repository: str


@dataclass(frozen=True)
class ImageRequest:
    """A host's image that is not one of the project's: ``reference`` pulled as ``pull`` says (missing,
    always, never), or built by ``build`` (and also tagged ``reference`` when there is one)."""
    reference: str | None
    pull: str = "missing"
    build: BuildRequest | None = None


Progress = Callable[[str, str], None]  # (image, message): what an image build is doing


class ByteStream(Protocol):
    """Chunks of a file as it grows; ``close()`` ends the stream from another thread."""
    def __iter__(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


class DeathStream(Protocol):
    """Names of containers as they die; ``close()`` ends the stream."""
    def __iter__(self) -> Iterator[str]: ...
    def close(self) -> None: ...


class Backend(Protocol):
    shares_files: bool  # the engine sees this machine's files (bind mounts of local paths work)

    def ping(self) -> None: ...
    def engine_info(self) -> dict[str, str]: ...
    # routed: the bridge carries packets of other subnets (a lab's router forwards them), so it cannot be the
    # engine's internal kind; it does not masquerade, and the plan takes its hosts' default route away
    def create_network(self, name: str, subnet: str, labels: dict[str, str], mtu: int | None = None,
                       routed: bool = False) -> None: ...
    def network_config(self, name: str) -> dict[str, object]: ...
    def create_volume(self, name: str, labels: dict[str, str]) -> None: ...
    def start_container(self, spec: ContainerSpec) -> None: ...
    def create_container(self, spec: ContainerSpec) -> str: ...
    def start_created(self, container: str) -> None: ...
    def exec(self, container: str, argv: list[str], timeout: float | None = None) -> ExecResult: ...
    def wait_log(self, container: str, needle: str, timeout: float) -> bool: ...
    def logs(self, container: str) -> str: ...
    def state(self, container: str) -> ContainerState: ...
    def capabilities(self, container: str) -> list[str]: ...
    def read_dir(self, container: str, path: str) -> dict[str, bytes]: ...
    def follow(self, container: str, path: str) -> ByteStream: ...
    def stop(self, containers: list[str], timeout: float) -> None: ...
    def signal(self, container: str, signal: str) -> None: ...
    def list_labeled(self, selector: dict[str, str] | None = None) -> list[LabeledObject]: ...
    def remove_labeled(self, selector: dict[str, str]) -> Removed: ...
    def deaths(self, selector: dict[str, str]) -> DeathStream: ...
    def ensure_images(self, images_dir: Path, names: set[str], progress: Progress,
                      force: bool = False) -> dict[str, ImageRecord]: ...
    def ensure_image(self, request: ImageRequest, progress: Progress) -> ImageRecord: ...
    def image(self, name: str) -> tuple[str, str] | None: ...
    def remove_old_builds(self) -> tuple[list[str], list[tuple[str, str]]]: ...
    def attach_terminal(self, container: str, argv: list[str]) -> None: ...
