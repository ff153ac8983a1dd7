"""The Docker implementation of :class:`Backend`, through the Docker SDK only."""
from __future__ import annotations

import io
import os
import re
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, TypeVar

from .base import (ContainerSpec, ContainerState, EngineError, ExecResult, ImageRecord, ImageRequest, LabeledObject,
                   Progress, Removed)

T = TypeVar("T")


def refuses_realtime(message: str) -> bool:
    """Whether an engine's error is about the real-time budget asked for: the kernel has no real-time group
    scheduling ("does not support CPU real-time scheduler"), or the engine's cgroup has no budget to share
    (runc: "failed to write ... cpu.rt_runtime_us: invalid argument")."""
    low = message.lower()
    return "rt_runtime" in low or "real-time" in low or "realtime" in low


def _engine_call(what: str, fn: Callable[[], T]) -> T:
    """Run an SDK call; engine failures become one-line EngineErrors."""
    import docker.errors
    import requests.exceptions

    try:
        return fn()
    except docker.errors.APIError as e:
        raise EngineError(f"{what}: {e.explanation or e}") from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as e:
        raise EngineError(f"{what}: Docker engine not reachable ({type(e).__name__})") from None


class DockerBackend:
    def __init__(self, client: Any | None = None) -> None:
        if client is None:
            import docker  # imported lazily: `lab validate` and `lab report` never need it

            try:
                client = docker.from_env(timeout=120)
            except docker.errors.DockerException as e:
                raise EngineError(f"no Docker engine answers ({e}); start one with scripts/setup") from None
        self.client = client
        self.api = client.api
        self.shares_files = engine_shares_files(str(getattr(self.api, "base_url", "")))
        self._realtime_specs: dict[str, ContainerSpec] = {}  # created with a real-time budget, not started yet

    # --- engine ------------------------------------------------------------
    def ping(self) -> None:
        _engine_call("ping the Docker engine", self.api.ping)

    def engine_info(self) -> dict[str, str]:
        v = _engine_call("read the engine version", self.api.version)
        return {"docker": str(v.get("Version", "")), "api": str(v.get("ApiVersion", "")),
                "kernel": str(v.get("KernelVersion", "")), "os": str(v.get("Os", ""))}

    # --- networks ----------------------------------------------------------
    def create_network(self, name: str, subnet: str, labels: dict[str, str], mtu: int | None = None,
                       routed: bool = False) -> None:
        from docker.types import IPAMConfig, IPAMPool

        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)])
        options = {"com.docker.network.driver.mtu": str(mtu)} if mtu is not None else {}
        if routed:  # Docker drops what an internal bridge carries to or from outside its subnet: a routed packet
            options["com.docker.network.bridge.enable_ip_masquerade"] = "false"
        _engine_call(f"create network {name}", lambda: self.api.create_network(
            name, driver="bridge", internal=not routed, ipam=ipam, labels=labels, check_duplicate=True,
            options=options or None))

    def network_config(self, name: str) -> dict[str, Any]:
        return _engine_call(f"inspect network {name}", lambda: self.api.inspect_network(name))

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        _engine_call(f"create volume {name}", lambda: self.api.create_volume(name, labels=labels))

    # --- containers --------------------------------------------------------
    def start_container(self, spec: ContainerSpec) -> None:
        self.start_created(self.create_container(spec))

    def start_created(self, container: str) -> None:
        try:
            _engine_call(f"start container {container}", lambda: self.api.start(container))
        except EngineError as e:
            spec = self._realtime_specs.pop(container, None)
            if spec is None or not refuses_realtime(str(e)):
                raise
            # the engine's own cgroup has no real-time budget to share (dockerd without --cpu-rt-runtime)
            _engine_call(f"remove container {container}", lambda: self.api.remove_container(container, force=True))
            self.create_container(replace(spec, realtime_us=None))
            _engine_call(f"start container {container}", lambda: self.api.start(container))

    def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) the container; its name. A container that shares another's network
        namespace may be created while that one is still starting: it only has to exist.

        A real-time budget the engine cannot give (a kernel without RT group scheduling, as on cgroup v2,
        where none is needed; an engine whose own cgroup has none) is left out, here or at start."""
        if spec.realtime_us:
            try:
                self._create(spec)
            except EngineError as e:
                if not refuses_realtime(str(e)):
                    raise
                return self._create(replace(spec, realtime_us=None))
            self._realtime_specs[spec.name] = spec
            return spec.name
        return self._create(spec)

    def _create(self, spec: ContainerSpec) -> str:
        api = self.api
        binds = [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts]
        if not self.shares_files and any(m.kind == "local" for m in spec.mounts):
            local = [m.source for m in spec.mounts if m.kind == "local"]
            raise EngineError(f"create container {spec.name}: the engine is on another machine and cannot mount "
                              f"{', '.join(local)} of this one")
        network_mode = (f"container:{spec.joins}" if spec.joins else "none" if spec.isolated else spec.network)
        host_config = api.create_host_config(
            binds=binds or None,
            cap_add=list(spec.cap_add) or None,
            cap_drop=list(spec.cap_drop) or None,
            sysctls=dict(spec.sysctls) or None,
            mem_limit=spec.mem_limit,
            nano_cpus=spec.nano_cpus,
            pids_limit=spec.pids_limit,
            cpu_rt_runtime=spec.realtime_us,
            network_mode=network_mode,
            pid_mode=f"container:{spec.joins_pid}" if spec.joins_pid else None,
            init=spec.init,
            privileged=False,
        )
        networking = None
        if spec.network and not spec.joins and not spec.isolated:
            endpoint = api.create_endpoint_config(ipv4_address=spec.ip, aliases=list(spec.aliases) or None)
            networking = api.create_networking_config({spec.network: endpoint})  # type: ignore[arg-type]  # the stubs say one EndpointConfig; the API takes a mapping by network
        _engine_call(f"create container {spec.name}", lambda: api.create_container(
            spec.image, command=spec.command, name=spec.name,
            hostname=None if spec.joins else spec.hostname,
            labels=spec.labels, host_config=host_config, networking_config=networking,
            environment=spec.environment or None, user=spec.user or "", detach=True))
        for network, ip in spec.more_networks:  # before start: the container starts with all its interfaces
            def connect(network: str = network, ip: str = ip) -> None:
                api.connect_container_to_network(spec.name, network, ipv4_address=ip,
                                                 aliases=list(spec.aliases) or None)
            _engine_call(f"connect container {spec.name} to {network}", connect)
        return spec.name

    def exec(self, container: str, argv: list[str], timeout: float | None = None) -> ExecResult:
        api = self.api
        eid = _engine_call(f"exec in {container}",
                           lambda: api.exec_create(container, argv, stdout=True, stderr=True))["Id"]
        out, err = _engine_call(f"exec in {container}", lambda: api.exec_start(eid, demux=True))
        code = _engine_call(f"exec in {container}", lambda: api.exec_inspect(eid)).get("ExitCode")
        return ExecResult(code if code is not None else -1, (out or b"").decode("utf-8", "replace"),
                          (err or b"").decode("utf-8", "replace"))

    def logs(self, container: str) -> str:
        raw = _engine_call(f"read logs of {container}", lambda: self.api.logs(container, stdout=True, stderr=True))
        return raw.decode("utf-8", "replace")

    def wait_log(self, container: str, needle: str, timeout: float) -> bool:
        """True once ``needle`` appears in the container's output; False on timeout or exit."""
        import docker.errors

        deadline = time.monotonic() + timeout
        try:
            stream = self.api.logs(container, stdout=True, stderr=True, stream=True, follow=True)
        except docker.errors.APIError:
            return False
        seen = b""
        # the stream ends when the container exits; a watchdog closes it on timeout
        import threading

        timer = threading.Timer(timeout, lambda: _close(stream))
        timer.start()
        try:
            for chunk in stream:
                seen += chunk
                if needle.encode() in seen:
                    return True
                if time.monotonic() > deadline:
                    return False
        except Exception:  # noqa: BLE001 - closed by the watchdog
            return False
        finally:
            timer.cancel()
            _close(stream)
        return needle.encode() in seen

    def state(self, container: str) -> ContainerState:
        import docker.errors

        try:
            info = self.api.inspect_container(container)
        except docker.errors.NotFound:
            return ContainerState(container, "missing")
        except docker.errors.APIError as e:
            raise EngineError(f"inspect {container}: {e.explanation or e}") from None
        except Exception as e:  # noqa: BLE001 - the SDK's transport errors have no common base
            raise EngineError(f"inspect {container}: Docker engine not reachable ({type(e).__name__})") from None
        st = info.get("State", {})
        return ContainerState(container, st.get("Status", "?"), st.get("ExitCode"), bool(st.get("OOMKilled")),
                              st.get("Error", ""), info.get("Config", {}).get("Labels") or {},
                              _epoch(st.get("FinishedAt")) if st.get("Status") in ("exited", "dead") else None)

    def capabilities(self, container: str) -> list[str]:
        info = _engine_call(f"inspect {container}", lambda: self.api.inspect_container(container))
        return list(info.get("HostConfig", {}).get("CapAdd") or [])

    def read_dir(self, container: str, path: str) -> dict[str, bytes]:
        """Regular files under ``path`` in the container (running or stopped), by relative name."""
        import docker.errors

        try:
            stream, _ = self.api.get_archive(container, path)
        except docker.errors.NotFound:
            return {}
        except docker.errors.APIError as e:
            raise EngineError(f"copy {path} from {container}: {e.explanation or e}") from None
        buf = io.BytesIO(b"".join(stream))
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=buf) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        files[member.name.split("/", 1)[-1]] = f.read()
        return files

    def follow(self, container: str, path: str) -> "FollowedFile":
        """The file at ``path`` in the running container from its first byte, and each byte appended to it,
        until ``close()`` or the container ends (``tail -F`` in the container: streamed, no local path)."""
        api = self.api
        argv = ["tail", "-c", "+1", "-F", path]
        eid = _engine_call(f"follow {path} in {container}",
                           lambda: api.exec_create(container, argv, stdout=True, stderr=False))["Id"]
        sock = _engine_call(f"follow {path} in {container}", lambda: api.exec_start(eid, socket=True))
        return FollowedFile(sock)

    def stop(self, containers: list[str], timeout: float) -> None:
        import docker.errors

        def one(name: str) -> None:
            try:
                self.api.stop(name, timeout=max(0, int(timeout)))
            except docker.errors.NotFound:
                pass

        parallel(one, containers)

    def signal(self, container: str, signal: str) -> None:
        """Send ``signal`` (e.g. "SIGUSR1") to the container's main process; a container that is gone is fine."""
        import docker.errors

        try:
            self.api.kill(container, signal=signal)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: not running (exited already)
                raise EngineError(f"signal {container}: {e.explanation or e}") from None

    # --- labels ------------------------------------------------------------
    def list_labeled(self, selector: dict[str, str] | None = None) -> list[LabeledObject]:
        from .base import LABEL_LAB

        filters = {"label": [f"{k}={v}" for k, v in (selector or {}).items()] or [LABEL_LAB]}
        out: list[LabeledObject] = []
        for c in _engine_call("list containers", lambda: self.api.containers(all=True, filters=filters)):
            out.append(LabeledObject("container", c["Names"][0].lstrip("/"), c.get("Labels") or {}))
        for n in _engine_call("list networks", lambda: self.api.networks(filters=filters)):
            out.append(LabeledObject("network", n["Name"], n.get("Labels") or {}))
        vols = _engine_call("list volumes", lambda: self.api.volumes(filters=filters)).get("Volumes") or []
        for v in vols:
            out.append(LabeledObject("volume", v["Name"], v.get("Labels") or {}))
        return out

    def remove_labeled(self, selector: dict[str, str]) -> Removed:
        """Remove every container, then network and volume, carrying all of ``selector``'s labels."""
        import docker.errors

        removed = Removed()
        objects = self.list_labeled(selector)

        def rm_container(name: str) -> None:
            try:
                self.api.remove_container(name, force=True, v=True)
                removed.containers.append(name)
            except docker.errors.NotFound:
                pass

        # sidecars share their host's network namespace: remove them first
        containers = [o.name for o in objects if o.kind == "container"]
        sidecars = [c for c in containers if any(o.name == c and o.labels.get("tcplab.role") != "host"
                                                 for o in objects)]
        parallel(rm_container, sidecars)
        parallel(rm_container, [c for c in containers if c not in sidecars])
        for o in objects:
            try:
                if o.kind == "network":
                    self.api.remove_network(o.name)
                    removed.networks.append(o.name)
                elif o.kind == "volume":
                    self.api.remove_volume(o.name, force=True)
                    removed.volumes.append(o.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                raise EngineError(f"remove {o.kind} {o.name}: {e.explanation or e}") from None
        return removed

    # --- images ------------------------------------------------------------
    def ensure_images(self, images_dir: Path, names: set[str], progress: Progress,
                      force: bool = False) -> dict[str, ImageRecord]:
        """Build what is missing or stale among ``names`` from the project's ``images_dir``."""
        from .images import ImageBuilder

        return ImageBuilder(self, images_dir, progress).ensure(names, force=force)

    def ensure_image(self, request: ImageRequest, progress: Progress) -> ImageRecord:
        """A host's own image: pulled as its policy says, or built from the lab's Dockerfile."""
        from .images import ensure_built, ensure_pulled

        if request.build is not None:
            return ensure_built(self.api, request.build, request.reference, progress)
        assert request.reference is not None
        return ensure_pulled(self.api, request.reference, request.pull, progress)

    def remove_old_builds(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Images built from labs' Dockerfiles that a newer build of the same host replaced and no container
        uses: the names removed, and (name, the engine's reason) of those it kept."""
        from .images import remove_old_builds

        return remove_old_builds(self.api)

    def image(self, name: str) -> tuple[str, str] | None:
        """The image's ID and creation time, or None when the engine has no such image."""
        import docker.errors

        try:
            info = self.api.inspect_image(name)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as e:
            raise EngineError(f"inspect image {name}: {e.explanation or e}") from None
        return str(info["Id"]), str(info.get("Created", ""))

    def attach_terminal(self, container: str, argv: list[str]) -> None:
        """Replace this process with an interactive ``argv`` in the container, on this terminal: the docker
        CLI's terminal handling (raw mode, resizes), for a person at a keyboard, never for orchestration."""
        import shutil

        docker = shutil.which("docker")
        if docker is None:
            raise EngineError("an interactive terminal needs the docker CLI; use `lab exec` instead")
        os.execv(docker, [docker, "exec", "-it", container, *argv])

    def deaths(self, selector: dict[str, str]) -> "ContainerDeaths":
        """Names of the selected containers as they die (subscribed once this returns)."""
        filters = {"label": [f"{k}={v}" for k, v in selector.items()], "type": "container"}
        events = _engine_call("subscribe to engine events", lambda: self.api.events(filters=filters, decode=True))
        return ContainerDeaths(events)


def engine_shares_files(base_url: str) -> bool:
    """Whether the engine mounts this machine's paths: a local socket yes, TCP or SSH no.
    ``TCPLAB_ENGINE_SHARES_FILES=0`` (or 1) says otherwise, e.g. for an engine in a VM behind a socket."""
    told = os.environ.get("TCPLAB_ENGINE_SHARES_FILES")
    if told in ("0", "1"):
        return told == "1"
    return not base_url.startswith(("http://", "https://", "ssh://", "tcp://"))


class ContainerDeaths:
    """The engine's event stream, reduced to the names of containers that died."""

    def __init__(self, events: Any) -> None:
        self._events = events

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if (event.get("Action") or event.get("status")) in ("die", "oom", "destroy"):
                name = (event.get("Actor") or {}).get("Attributes", {}).get("name")
                if name:
                    yield name

    def close(self) -> None:
        _close(self._events)


class FollowedFile:
    """The raw output of a ``tail -F`` exec: the engine's stream framing (an 8-byte header per frame when
    no TTY is attached) is taken off here."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._raw = getattr(sock, "_sock", sock)

    def __iter__(self) -> Iterator[bytes]:
        buf = b""
        while True:
            try:
                chunk = self._raw.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 8:
                size = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + size:
                    break
                stream, payload, buf = buf[0], buf[8:8 + size], buf[8 + size:]
                if stream == 1:
                    yield payload

    def close(self) -> None:
        for closer in (lambda: self._raw.shutdown(2), self._raw.close, self._sock.close):
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing a stream that is already gone
                pass


def _close(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - closing a stream that is gone already
        pass


def parallel(fn: Callable[[str], None], items: list[str]) -> None:
    """Run ``fn`` over ``items`` at once; the first error is raised after all have finished."""
    if not items:
        return
    if len(items) == 1:
        fn(items[0])
        return
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        futures = [pool.submit(fn, i) for i in items]
    for f in futures:
        f.result()


def _epoch(stamp: object) -> float | None:
    """Docker's RFC 3339 time with nanoseconds (``2026-12-01T05:40:01.123456789Z``) in epoch seconds."""
    import datetime as dt

    if not isinstance(stamp, str) or stamp.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if not m:
        return None
    when = dt.datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return when.timestamp() + float("0." + (m.group(2) or "0"))
