"""What a peer kind is: the TCP stack a host shows on the wire (``hosts.HOST.peer.os``).

A peer kind supplies everything of a stack that is not Linux's own defaults:
the rules its settings follow (checked when a lab is loaded), the sysctls of
its host's network namespace, the sidecars that run beside its host (as
needs: :mod:`tcplab.plan` turns them into containers), and the words the
report uses for it. Nothing here talks to an engine or reads a run.

This package imports nothing of tcplab at run time (the model type below is
named for type checkers only), so the model, the plan and the analysis may
all ask it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcplab.model.lab import Peer


@dataclass(frozen=True)
class PeerSidecar:
    """A sidecar a peer kind runs in its host's network namespace, before the plan names and mounts it."""
    role: str  # its container is named after its host and this (tcplab-<lab>-<host>-<role>); its tcplab.role label
    command: list[str]
    capabilities: tuple[str, ...]
    ready_line: str  # what its log says once it works: the host's story may begin
    artifacts: str  # the kind of files it writes, at /<artifacts> in it (a volume of that name on a remote engine)
    folder: str  # where those files land in the run directory (``logs/peer``)
    about: str  # one line for a person reading `lab export`'s file: what it does and with which rights
    image: str = "tcplab/tools"
    mem_limit: str = "256m"
    # a real-time CPU budget (microseconds per second) for a sidecar that runs timers at SCHED_FIFO, where the
    # kernel schedules real-time tasks by cgroup; None: it runs no real-time task
    realtime_us: int | None = None


@dataclass(frozen=True)
class PeerProblem:
    """A peer setting the kind refuses: the field under ``hosts.HOST.peer`` and what is wrong with it."""
    field: str
    message: str


class PeerKind:
    """One kind of peer. Subclasses set ``os`` and ``title`` and override what differs from a plain Linux host."""

    os: str = ""  # the value of peer.os that selects it
    title: str = ""  # how the report and `lab export` name the stack: "Windows"

    def problems(self, peer: Peer) -> list[PeerProblem]:
        """Settings of ``peer`` this kind refuses (the loader reports the first one)."""
        return []

    def sysctls(self, peer: Peer) -> dict[str, str]:
        """The sysctls of the host's own network namespace for this peer."""
        return {}

    def sidecars(self, host: str, peer: Peer) -> list[PeerSidecar]:
        """What runs beside host ``host`` in its network namespace to make it this stack."""
        return []

    def host_note(self, peer: Peer) -> str | None:
        """A few words on what the kind changes in the host itself, for `lab export`'s comment; None: nothing."""
        return None

    def fin_wait2_reset(self, configured: float | None) -> float | None:
        """After how many seconds this stack resets a connection left in FIN_WAIT_2 (its FIN acked, no FIN from
        the other end), given ``peer.fin_wait2_timeout`` as the lab sets it; None: it never does (Linux drops
        an orphaned FIN_WAIT2 silently instead)."""
        return None


def one_of(names: list[str]) -> str:
    """``'a', 'b' or 'c'``: how the lab's error messages list the values a field takes."""
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
