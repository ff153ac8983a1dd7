"""The kernel state tracer: TCP state changes of the lab's sockets, from tracefs.

It runs as a sidecar (image tcplab/tools, ``/opt/lab/tracer.py``) with the
host's tracefs bind-mounted read-write at /tracefs. It needs no added
capability: tracefs is governed by file permissions and the sidecar runs as
root of the engine's host (no user namespace). It creates its own tracefs
instance (``instances/tcplab-<run>``) so labs never share trace settings, and
keeps only events of the lab's addresses; each record names the host that owns
the socket (by its local address) and the host at the other end.

It writes one line per event into ``sockets/transitions.jsonl`` (the records
and their one reader are :mod:`tcplab.runfiles.transitions`). Sockets bound to
the wildcard address (a LISTEN socket before any connection) have no lab
address and are not recorded: the tracepoint does not say which network
namespace a socket lives in.

No tracepoint fires for a timewait socket (TIME_WAIT, an orphaned FIN_WAIT2):
once the tracer has stopped, ``lab down`` appends the records derived for them
(``"derived": "timewait"``, see :mod:`tcplab.observe.timewait`), and readers
read the file through :func:`tcplab.observe.timewait.run_records`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import cast

from ..runfiles.transitions import TransitionRecord

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


def instance_name(run: str) -> str:
    return f"tcplab-{run}"


def remove_instance(name: str, root: str = TRACEFS) -> bool:
    """Remove a run's tracefs instance if it is still there (the tracer was killed before it could).

    A leaked instance keeps its ring buffers until reboot. True when nothing is left.
    """
    path = os.path.join(root, "instances", name)
    if not os.path.isdir(path):
        return True
    try:
        os.rmdir(path)  # tracefs removes an instance's files with it; fails while a file is open
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class StateTracer:
    subnet: str
    instance: str
    hosts: dict[str, str] = field(default_factory=dict)  # host name -> IPv4 address

    def command(self) -> list[str]:
        return ["python3", "-u", "/opt/lab/tracer.py", "/tracefs", self.subnet, "/sockets/transitions.jsonl",
                self.instance, *(f"{h}={ip}" for h, ip in sorted(self.hosts.items()))]


def join_connects(changes: list[TransitionRecord]) -> list[TransitionRecord]:
    """State changes in time order, with connect()'s CLOSE -> SYN_SENT given its port.

    connect() fires CLOSE -> SYN_SENT before the source port is chosen, so that record carries
    ``sport 0``; it is joined to the next SYN_SENT -> ... of the same local address, peer and peer
    port. A ``sport 0`` record that nothing joins is dropped (it names no socket)."""
    pending: dict[tuple[str, str, int], list[TransitionRecord]] = {}
    joined: list[TransitionRecord] = []
    for rec in sorted(changes, key=lambda r: float(r["ts"])):
        k = (str(rec.get("saddr")), str(rec.get("daddr")), int(rec.get("dport") or 0))
        if not int(rec.get("sport") or 0):
            pending.setdefault(k, []).append(rec)
            continue
        if rec.get("old") == "SYN_SENT" and pending.get(k):
            joined.append(cast(TransitionRecord, {**pending[k].pop(0), "sport": int(rec["sport"])}))
        joined.append(rec)
    joined.sort(key=lambda r: float(r["ts"]))
    return joined
