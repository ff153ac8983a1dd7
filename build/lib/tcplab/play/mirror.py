"""A file of a container copied to this machine while it grows: a capture on an engine elsewhere.

Where the engine shares this machine's files, the sidecars write into the run
directory themselves. Where it does not (``DOCKER_HOST=tcp://...``), a wait
step still needs the packets as they come: :func:`mirror` follows the
file through the backend and appends what arrives to the local copy, so the
readers of the run directory (``PcapTail``) see no difference. At collection
the complete file is copied out again and replaces the mirror's.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..backend.base import Backend, ByteStream, EngineError


def mirror(backend: Backend, container: str, path: str, local: Path) -> threading.Thread:
    """Follow ``path`` in ``container`` into ``local`` until the container goes (a daemon thread: nothing
    waits for it; collection copies the whole file out before the container is removed)."""
    stream: ByteStream = backend.follow(container, path)

    def copy() -> None:
        try:
            with open(local, "ab") as out:
                for chunk in stream:
                    out.write(chunk)
                    out.flush()
        except (OSError, EngineError):
            pass  # the container went away: collection copies the whole file

    thread = threading.Thread(target=copy, name=f"tcplab-mirror-{local.name}", daemon=True)
    thread.start()
    return thread
