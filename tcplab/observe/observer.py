"""The observer: a sidecar that watches a host from beside it, for an image that holds no tools at all.

A host that runs its image's own program (an image of the user's, down to a ``FROM scratch`` image
with one static binary) has no shell, no netstat, no ss and no labrun, and tcplab puts nothing into
it. Its observer is a container of the tools image that shares the host's network namespace (its
sockets are the host's) and its PID namespace (its processes are the host's), so ``netstat -tanp``
there prints the host's sockets with their owners' PIDs and program names, as it would inside the host.

Where each observation of such a host comes from:

==================  ======================================================================
socket snapshots    netstat and ss in the observer (:data:`SNAPSHOT_ARGV`: labsnap's output)
readiness (listen)  ss in the observer (:func:`listen_argv`)
readiness (log)     the host container's log, through the engine
the program's PID   ps in the observer: the child of the host's init (:data:`PROGRAM_ARGV`)
liveness and exit   the host container itself, through the engine (its main process is the program)
output              the host container's log, through the engine
sysctls             ``cat /proc/sys/net/...`` in the observer (they are the network namespace's)
==================  ======================================================================

Privileges: an owner's PID comes from reading ``/proc/PID/fd`` of the host's processes, which the kernel
allows a process of another container only if it may ptrace them (same user, and the target's
capabilities a subset of its own), or with SYS_PTRACE. A program running as another user than root
(an image with ``USER``) is readable only with SYS_PTRACE; without it netstat, as root, prints ``-`` and
says nothing, which would read as "no owner". So the observer, and no other container, gets SYS_PTRACE;
like the hosts it has no NET_RAW. It can see and trace only the processes of its own host.
"""
from __future__ import annotations

READY_LINE = "tcplab observer: ready"
ROLE = "observer"
CAPABILITIES = ("SYS_PTRACE",)
DROPPED = ("NET_RAW",)
MEMORY = "64m"
# our own fixed script texts (no lab data ever enters them), run by the tools image's sh
COMMAND = ["sh", "-c", f'echo "{READY_LINE}"; exec sleep infinity']
# images/common/labsnap, which the tools image does not hold: the same output, parsed by observe/sockets.py
SNAPSHOT_ARGV = ["sh", "-c", 'netstat -tanp; ns=$?; echo "@@tcplab-ss@@"; ss -tanpoei; s=$?; '
                             'echo "@@tcplab-counters@@"; cat /proc/net/netstat /proc/net/snmp; c=$?; '
                             'echo "@@tcplab-status@@ netstat=$ns ss=$s counters=$c"']
# the host's main process is its init (tcplab starts every host with one); the program is the init's child.
# Printed: its PID on one line, then its argv (/proc/PID/cmdline, NUL-separated).
PROGRAM_ARGV = ["sh", "-c", 'for p in $(ps -o pid= --ppid 1); do echo "$p"; cat "/proc/$p/cmdline"; exit 0; done; '
                            'exit 1']


def listen_argv(port: int) -> list[str]:
    """ss listing the listeners on ``port``: any line means something listens there."""
    return ["ss", "-Htln", f"sport = :{port}"]


def parse_program(stdout: str) -> tuple[int, list[str]] | None:
    """The PID and argv :data:`PROGRAM_ARGV` printed, or None (no program runs)."""
    first, _, rest = stdout.partition("\n")
    if not first.strip().isdigit():
        return None
    argv = [a for a in rest.split("\0") if a]
    return int(first.strip()), argv
