"""A file of a container copied to this machine while it grows: a capture on an engine elsewhere.

Where the engine shares this machine's files, the sidecars write into the run
directory themselves. Where it does not (``DOCKER_HOST=tcp://...``), a wait
step still needs the packets as they come: a :class:`FileMirror` follows the
file through the backend and appends what arrives to the local copy, so the
readers of the run directory (``PcapTail``) see no difference. At collection
the complete file is copied out again and replaces the mirror's.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..backend.base import Backend, ByteStream, EngineError


class FileMirror:
    def __init__(self, backend: Backend, container: str, path: str, local: Path) -> None:
        self.local = local
        self._stream: ByteStream = backend.follow(container, path)
        self._thread = threading.Thread(target=self._copy, name=f"tcplab-mirror-{local.name}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            with open(self.local, "ab") as out:
                for chunk in self._stream:
                    out.write(chunk)
                    out.flush()
        except (OSError, EngineError):
            pass  # the container went away: collection copies the whole file

    def close(self) -> None:
        self._stream.close()
        self._thread.join(timeout=2)
