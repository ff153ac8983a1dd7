"""A sidecar's real-time budget (``ContainerSpec.realtime_us``) where the engine cannot give it.

The Docker backend asks for ``CpuRealtimeRuntime``; an engine on a kernel without RT group
scheduling refuses it at create, one whose own cgroup has no budget fails at start (runc). Either
way the container must start without it, the same container under the same name. The engine
here is a fake of the SDK's low-level API that answers as Docker 20.10 does; the real engine's
answer is checked by tests/integration/test_peer_realtime.py.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from tcplab.backend.base import ContainerSpec
from tcplab.backend.docker import DockerBackend, refuses_realtime

CREATE_REFUSAL = "Your kernel does not support cgroup cpu real-time runtime"
START_REFUSAL = ("failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
                 "container process: unable to apply cgroup configuration: failed to write \"20000\": write "
                 "/sys/fs/cgroup/cpu/docker/0123/cpu.rt_runtime_us: invalid argument: unknown")


class FakeAPI:
    """create_host_config / create_container / start / remove_container, refusing a real-time budget
    at ``refuse`` ("create", "start" or "" for an engine that gives it)."""

    base_url = "http+docker://localhost"

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.containers: dict[str, dict[str, Any]] = {}
        self.started: list[str] = []
        self.calls: list[str] = []

    def create_host_config(self, **kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v is not None}

    def create_container(self, image: str, name: str, host_config: dict[str, Any], **kw: Any) -> dict[str, str]:
        self.calls.append(f"create {name} rt={host_config.get('cpu_rt_runtime')}")
        if name in self.containers:
            raise docker.errors.APIError("Conflict", explanation=f"the name {name} is in use")
        if self.refuse == "create" and host_config.get("cpu_rt_runtime"):
            raise docker.errors.APIError("400", explanation=CREATE_REFUSAL)
        self.containers[name] = host_config
        return {"Id": name}

    def start(self, name: str) -> None:
        self.calls.append(f"start {name}")
        if self.refuse == "start" and self.containers[name].get("cpu_rt_runtime"):
            raise docker.errors.APIError("500", explanation=START_REFUSAL)
        self.started.append(name)

    def remove_container(self, name: str, force: bool = False) -> None:
        self.calls.append(f"remove {name}")
        del self.containers[name]


def backend(refuse: str) -> tuple[DockerBackend, FakeAPI]:
    api = FakeAPI(refuse)
    return DockerBackend(SimpleNamespace(api=api)), api


SPEC = ContainerSpec(name="tcplab-x-win-peer", image="tcplab/tools", labels={}, realtime_us=20000,
                     joins="tcplab-x-win", cap_add=("NET_RAW", "NET_ADMIN", "SYS_NICE"))


@pytest.mark.parametrize("refuse", ["create", "start"])
def test_refused_budget_starts_the_container_without_it(refuse: str) -> None:
    b, api = backend(refuse)
    b.start_created(b.create_container(SPEC))
    assert api.started == [SPEC.name]
    assert "cpu_rt_runtime" not in api.containers[SPEC.name]
    assert api.containers[SPEC.name]["cap_add"] == ["NET_RAW", "NET_ADMIN", "SYS_NICE"]  # only the budget goes


def test_given_budget_is_kept() -> None:
    b, api = backend("")
    b.start_container(SPEC)
    assert api.containers[SPEC.name]["cpu_rt_runtime"] == 20000
    assert api.calls == [f"create {SPEC.name} rt=20000", f"start {SPEC.name}"]


def test_other_start_failures_are_not_retried() -> None:
    b, api = backend("")
    b.create_container(SPEC)

    def fail(name: str) -> None:
        raise docker.errors.APIError("500", explanation="cannot join network of a non running container")

    api.start = fail  # type: ignore[method-assign]
    with pytest.raises(Exception, match="non running container"):
        b.start_created(SPEC.name)
    assert "cpu_rt_runtime" in api.containers[SPEC.name]


def test_refusals_are_recognised() -> None:
    assert refuses_realtime(CREATE_REFUSAL) and refuses_realtime(START_REFUSAL)
    assert not refuses_realtime("No such image: tcplab/tools")
