"""The Windows peer: what a Linux host needs to look like a Windows client on the wire.

A peer kind (:mod:`tcplab.peers.base`) in two parts, both pure data here
(nothing in this module talks to an engine):

* :func:`host_sysctls` - the host container's own kernel settings (its network
  namespace): TTL 128, no TCP timestamps, a receive buffer that makes the
  kernel pick window scale 8 (so the wscale the SYN rewriter writes is the one
  the kernel really uses), and a ``tcp_fin_timeout`` that keeps the orphaned
  FIN_WAIT_2 socket alive until the emulated Windows timer fires.
* :class:`WindowsPeerSidecar` - the sidecar that shares the host's network
  namespace and runs ``/opt/lab/winpeer.py`` (image ``tcplab/tools``): the
  SYN rewriter and the FIN_WAIT_2 timer that ends in ``[R.] seq fin+1, win 0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import PeerKind, PeerProblem, PeerSidecar

if TYPE_CHECKING:
    from tcplab.model.lab import Peer

READY_LINE = "peer ready"  # what winpeer.py prints once its sniffer captures
WINDOWS_TTL = 128
# ilog2(12582912) - 15 = 8: the kernel's own window scale becomes Windows' 8
# (tcp_select_initial_window scales the largest of tcp_rmem[2] and
# net.core.rmem_max; the latter is a host-wide setting, 4 MiB or less by default).
WINDOWS_TCP_RMEM = "4096 131072 12582912"
# Linux keeps an orphaned FIN_WAIT_2 socket as a full socket only for
# tcp_fin_timeout - TCP_TIMEWAIT_LEN, then as a timewait socket for as long
# again; at or below TCP_TIMEWAIT_LEN it is a timewait socket for
# tcp_fin_timeout from the start (net/ipv4/tcp_input.c, tcp_timer.c).
TCP_TIMEWAIT_LEN = 60
FIN_TIMEOUT_MARGIN = 5  # seconds the kernel socket outlives the emulated timer
DEFAULT_FIN_WAIT2_TIMEOUT = 120.0  # Windows' own FIN_WAIT_2 timer, when the lab sets none
MIN_FIN_WAIT2_TIMEOUT = 0.05  # the shortest timer a lab may set
DEFAULT_SYN = "windows-10"
# The timers run in a process of their own (no interpreter lock shared with the capture) at SCHED_FIFO
# (CAP_SYS_NICE) where the engine allows it: a busy machine then delays the RST by microseconds, not by the
# tens of milliseconds a normal task waits for a core. Where real-time tasks are scheduled by cgroup (cgroup v1
# with RT group scheduling) the container also needs a budget: the timer process uses well under a millisecond
# a second (a wakeup and a frame per timer).
REALTIME_PRIORITY = 10
REALTIME_BUDGET_US = 20000


def orphan_fin_wait2_lifetime(tcp_fin_timeout: int) -> int:
    """How long Linux keeps an orphaned FIN_WAIT_2 socket for a given net.ipv4.tcp_fin_timeout."""
    if tcp_fin_timeout <= TCP_TIMEWAIT_LEN:
        return tcp_fin_timeout
    return 2 * (tcp_fin_timeout - TCP_TIMEWAIT_LEN)


def fin_timeout_for(fin_wait2_timeout: float) -> int:
    """The smallest tcp_fin_timeout (at least Linux' default 60) whose orphan lifetime covers the timer.

    Not simply ``timer + margin``: above 60 s the lifetime is twice the excess
    over 60 (see :func:`orphan_fin_wait2_lifetime`), so a tcp_fin_timeout of 65
    keeps the socket only 10 s. For the 120 s Windows timer this gives 123.
    """
    need = math.ceil(fin_wait2_timeout) + FIN_TIMEOUT_MARGIN
    if need <= TCP_TIMEWAIT_LEN:
        return TCP_TIMEWAIT_LEN
    return TCP_TIMEWAIT_LEN + math.ceil(need / 2)


def fin_wait2_seconds(peer: Peer) -> float:
    """The FIN_WAIT_2 timer a Windows peer runs: the lab's, else Windows' own 120 s."""
    return DEFAULT_FIN_WAIT2_TIMEOUT if peer.fin_wait2_timeout is None else peer.fin_wait2_timeout


def syn_profile(peer: Peer) -> str:
    """Whose SYN the peer sends: the lab's choice, else Windows 10's."""
    return peer.syn if peer.syn is not None else DEFAULT_SYN


def host_sysctls(peer: Peer) -> dict[str, str]:
    """The sysctls of a Windows peer's host container (its own network namespace)."""
    out: dict[str, str] = {"net.ipv4.ip_default_ttl": str(WINDOWS_TTL)}
    if syn_profile(peer).startswith("windows"):
        out["net.ipv4.tcp_timestamps"] = "0"
    out["net.ipv4.tcp_rmem"] = WINDOWS_TCP_RMEM
    # an explicit tcp_fin_timeout in the lab file wins; otherwise the kernel keeps the socket past the timer
    fin_timeout = peer.tcp_fin_timeout
    if fin_timeout is None:
        fin_timeout = fin_timeout_for(fin_wait2_seconds(peer))
    out["net.ipv4.tcp_fin_timeout"] = str(fin_timeout)
    return out


@dataclass(frozen=True)
class WindowsPeerSidecar:
    """The peer sidecar of one Windows host: ``winpeer.py`` in the host's network namespace."""

    host: str
    fin_wait2_timeout: float
    syn: str
    interface: str = "eth0"

    capabilities = ("NET_RAW", "NET_ADMIN", "SYS_NICE")
    READY_LINE = READY_LINE

    def events_path(self) -> str:
        """Where the sidecar appends its JSON lines (a bind mount of the run's peer directory)."""
        return f"/peer/{self.host}.jsonl"

    def command(self) -> list[str]:
        return ["python3", "-u", "/opt/lab/winpeer.py", "--iface", self.interface,
                "--fin-wait2-timeout", repr(float(self.fin_wait2_timeout)), "--syn", self.syn,
                "--events", self.events_path(), "--realtime", str(REALTIME_PRIORITY)]

    @classmethod
    def for_peer(cls, host: str, peer: Peer) -> WindowsPeerSidecar | None:
        """The sidecar a host's peer needs, or None for a peer that is not Windows."""
        if peer.os != WindowsPeer.os:
            return None
        return cls(host, fin_wait2_seconds(peer), syn_profile(peer))


class WindowsPeer(PeerKind):
    os = "windows"
    title = "Windows"

    def problems(self, peer: Peer) -> list[PeerProblem]:
        if peer.fin_wait2_timeout is not None and peer.fin_wait2_timeout < MIN_FIN_WAIT2_TIMEOUT:
            return [PeerProblem("fin_wait2_timeout", "must be at least 50ms")]
        return []

    def sysctls(self, peer: Peer) -> dict[str, str]:
        return host_sysctls(peer)

    def sidecars(self, host: str, peer: Peer) -> list[PeerSidecar]:
        side = WindowsPeerSidecar(host, fin_wait2_seconds(peer), syn_profile(peer))
        about = (f"Windows emulation for {host}, in its network namespace: SYN fingerprint, and the FIN_WAIT_2 "
                 f"timer ({side.fin_wait2_timeout:g} s) ending in an RST; NET_RAW and NET_ADMIN, and SYS_NICE for the "
                 f"timer process's SCHED_FIFO")
        return [PeerSidecar(role="peer", command=side.command(), capabilities=side.capabilities,
                            ready_line=READY_LINE, artifacts="peer", folder="logs/peer", about=about,
                            realtime_us=REALTIME_BUDGET_US)]

    def host_note(self, peer: Peer) -> str | None:
        return "sysctls of a Windows peer"

    def fin_wait2_reset(self, configured: float | None) -> float | None:
        return DEFAULT_FIN_WAIT2_TIMEOUT if configured is None else configured


WINDOWS = WindowsPeer()
