"""The host agent's client: run a command in a lab host through FIFOs in a shared directory.

A Docker exec costs 50-90 ms on this kind of machine (create, attach, start,
inspect, through the engine and containerd); a lab story makes a dozen of
them (program starts, readiness, snapshots, stops, liveness). Each host's
main process is ``images/common/labagent`` instead of ``sleep infinity``: it
reads request ids from a FIFO in a directory bind-mounted from the run
directory and runs each request's argv itself. A request then costs a few
milliseconds (a fork and the command), and needs no engine round trip.

The protocol is in ``labagent``'s header. Nothing here knows Docker: the
backend gives the directory to the host as a bind mount; this side only
needs the directory.
"""
from __future__ import annotations

import itertools
import os
import select
import stat
import threading
import time
from pathlib import Path
from typing import Callable

from .base import EngineError, ExecResult

AGENT_DIR = "/run/lab/agent"  # where the host sees its agent directory
AGENT_COMMAND = ["labagent", AGENT_DIR]
REQUESTS = "requests"
DEFAULT_TIMEOUT = 60.0
ALIVE_EVERY = 1.0

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def prepare_agent_dir(directory: Path) -> bool:
    """Make the directory and its request FIFO; False when this filesystem cannot hold a FIFO."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fifo = directory / REQUESTS
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        return stat.S_ISFIFO(fifo.stat().st_mode)
    except OSError:
        return False


class HostAgent:
    """Requests to one host's agent. Thread-safe: requests may overlap (each has its own files)."""

    def __init__(self, directory: Path, host: str, alive: Callable[[], bool] | None = None) -> None:
        self.directory = directory
        self.host = host
        self.alive = alive  # asked every ALIVE_EVERY s while waiting: a dead host ends the wait at once
        self._requests: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, directory: Path, host: str, alive: Callable[[], bool] | None = None) -> HostAgent | None:
        """The agent of a host whose directory was prepared, else None (the caller uses Docker exec)."""
        fifo = directory / REQUESTS
        try:
            return cls(directory, host, alive) if stat.S_ISFIFO(fifo.stat().st_mode) else None
        except OSError:
            return None

    def _request_fd(self) -> int:
        # O_RDWR never blocks and keeps a writer on the FIFO: a request written before the agent
        # has opened its end waits in the pipe instead of being lost
        with self._lock:
            if self._requests is None:
                self._requests = os.open(self.directory / REQUESTS, os.O_RDWR | os.O_CLOEXEC)
            return self._requests

    def run(self, argv: list[str], timeout: float | None = None) -> ExecResult:
        if any("\0" in a for a in argv) or not argv:
            raise ValueError("an agent request is a non-empty argv without NUL bytes")
        with _ids_lock:
            rid = f"{os.getpid()}-{next(_ids)}"
        base = self.directory / rid
        argv_file, rc_fifo = base.with_suffix(".argv"), base.with_suffix(".rc")
        out_file, err_file = base.with_suffix(".out"), base.with_suffix(".err")
        os.mkfifo(rc_fifo, 0o600)
        rc_fd = os.open(rc_fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            argv_file.write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
            os.write(self._request_fd(), f"{rid}\n".encode())
            limit = DEFAULT_TIMEOUT if timeout is None else timeout
            deadline = time.monotonic() + limit
            while (line := _read_line(rc_fd, min(ALIVE_EVERY, max(0.0, deadline - time.monotonic())))) is None:
                if time.monotonic() >= deadline:
                    raise EngineError(f"host {self.host}: its agent did not answer {argv[0]} within {limit:g} s")
                if self.alive is not None and not self.alive():
                    raise EngineError(f"host {self.host} is not running ({argv[0]} got no answer)")
            return ExecResult(int(line) if line.lstrip("-").isdigit() else -1, _read_text(out_file),
                              _read_text(err_file))
        finally:
            for f in (rc_fifo, argv_file, out_file, err_file):  # unlink before close: the agent never blocks
                try:
                    f.unlink()
                except OSError:
                    pass
            os.close(rc_fd)

    def close(self) -> None:
        with self._lock:
            if self._requests is not None:
                os.close(self._requests)
                self._requests = None


def _read_line(fd: int, timeout: float) -> str | None:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return None
        try:
            chunk = os.read(fd, 64)
        except BlockingIOError:
            continue
        data += chunk
    return data.decode("ascii", "replace").strip()


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""
