"""The Linux peer: the host's own kernel, as it is. Only ``tcp_fin_timeout`` may be set.

Linux keeps an orphaned FIN_WAIT2 socket for ``net.ipv4.tcp_fin_timeout`` and
then drops it without a packet: it has no FIN_WAIT_2 timer that ends in a
reset, so it refuses ``fin_wait2_timeout``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import PeerKind, PeerProblem

if TYPE_CHECKING:
    from tcplab.model.lab import Peer


class LinuxPeer(PeerKind):
    os = "linux"
    title = "Linux"

    def problems(self, peer: Peer) -> list[PeerProblem]:
        if peer.fin_wait2_timeout is not None:
            return [PeerProblem("fin_wait2_timeout", "only a Windows peer has this timer (set peer.os: windows, "
                                                     "or use tcp_fin_timeout)")]
        return []

    def sysctls(self, peer: Peer) -> dict[str, str]:
        if peer.tcp_fin_timeout is None:
            return {}
        return {"net.ipv4.tcp_fin_timeout": str(peer.tcp_fin_timeout)}


LINUX = LinuxPeer()
