"""The kernel state tracer: TCP state changes of the lab's sockets, from tracefs.

It runs as a sidecar (image tcplab/tools, ``/opt/lab/tracer.py``) with the
host's tracefs bind-mounted read-write at /tracefs. It needs no added
capability: tracefs is governed by file permissions and the sidecar runs as
root of the engine's host (no user namespace). It creates its own tracefs
instance (``instances/tcplab-<run>``) so labs never share trace settings, and
keeps only events whose addresses are in the lab's subnet.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

TRACEFS = "/sys/kernel/tracing"
EVENTS = ("sock/inet_sock_set_state", "tcp/tcp_send_reset", "tcp/tcp_receive_reset")
READY_LINE = "tracer ready"


def tracefs_missing(root: str = TRACEFS) -> str | None:
    """Why the tracer cannot run here, or None when it can."""
    if not os.path.exists(os.path.join(root, "trace_pipe")):
        return f"tracefs is not mounted at {root} (mount -t tracefs nodev {root})"
    for ev in EVENTS:
        if not os.path.isdir(os.path.join(root, "events", ev)):
            return f"this kernel has no tracepoint {ev.replace('/', ':')}"
    if not os.path.isdir(os.path.join(root, "instances")):
        return "this kernel's tracefs has no instances/"
    return None


@dataclass(frozen=True)
class StateTracer:
    subnet: str
    instance: str

    def command(self) -> list[str]:
        return ["python3", "-u", "/opt/lab/tracer.py", "/tracefs", self.subnet, "/sockets/transitions.jsonl",
                self.instance]
