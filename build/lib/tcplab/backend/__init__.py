"""tcplab.backend: engines in lab terms (:class:`~tcplab.backend.base.Backend`) and the one place that picks one."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend

BACKENDS = ("docker",)


def connect(kind: str | None = None) -> "Backend":
    """The backend the user's environment names (``TCPLAB_BACKEND``, default docker), connected.

    Docker's own variables choose which engine: ``DOCKER_HOST`` (``unix://``, ``tcp://``, ``ssh://``),
    ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``. EngineError when it does not answer."""
    kind = kind or os.environ.get("TCPLAB_BACKEND") or "docker"
    if kind == "docker":
        from .docker import DockerBackend

        return DockerBackend()
    from .base import EngineError

    raise EngineError(f"TCPLAB_BACKEND={kind!r}: no such backend (known: {', '.join(BACKENDS)})")
