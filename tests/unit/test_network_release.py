"""Removing a lab's network on a busy engine: a removed container's endpoint may linger a moment ("has active
endpoints", seen with ten labs at once); the Docker backend waits for the engine to release it, and fails as
before on any other error or when it does not. The engine is a fake of the SDK's low-level API."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from tcplab.backend import docker as docker_backend
from tcplab.backend.docker import DockerBackend

BUSY = "error while removing network: network tcplab-x id 35a2 has active endpoints"


class FakeAPI:
    base_url = "http+docker://localhost"

    def __init__(self, lingers: int, error: str = BUSY) -> None:
        self.lingers = lingers  # inspections that still list the endpoint
        self.error = error
        self.removed = False

    def remove_network(self, name: str) -> None:
        if self.lingers > 0:
            raise docker.errors.APIError("403", explanation=self.error)
        self.removed = True

    def inspect_network(self, name: str) -> dict[str, Any]:
        self.lingers -= 1
        return {"Containers": {"ep-1": {}} if self.lingers > 0 else {}}


def test_a_lingering_endpoint_is_waited_for() -> None:
    api = FakeAPI(lingers=3)
    DockerBackend(SimpleNamespace(api=api))._remove_network("tcplab-x")
    assert api.removed


def test_other_errors_and_endpoints_that_stay_still_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(docker.errors.APIError, match="not found"):
        DockerBackend(SimpleNamespace(api=FakeAPI(1, "network tcplab-x not found")))._remove_network("tcplab-x")
    monkeypatch.setattr(docker_backend, "ENDPOINT_RELEASE", 0.1)
    with pytest.raises(docker.errors.APIError, match="active endpoints"):
        DockerBackend(SimpleNamespace(api=FakeAPI(10**9)))._remove_network("tcplab-x")
