"""Peer kinds: the TCP stacks a lab host can show on the wire, one module each, by ``peer.os``.

A kind (:class:`~tcplab.peers.base.PeerKind`) supplies the checks of its
settings, its host's sysctls, its sidecars and its words for the report. To
add one: a module beside these with a ``PeerKind`` subclass, and its line in
``PEER_KINDS`` below.
"""
from __future__ import annotations

from .base import PeerKind, PeerProblem, PeerSidecar, one_of
from .linux import LINUX
from .windows import WINDOWS

# peer.os -> its kind
PEER_KINDS: dict[str, PeerKind] = {kind.os: kind for kind in (LINUX, WINDOWS)}

__all__ = ["PEER_KINDS", "PeerKind", "PeerProblem", "PeerSidecar", "one_of", "peer_kind"]


def peer_kind(os: str | None) -> PeerKind:
    """The kind ``peer.os`` names (an unset one is Linux). KeyError for a name no module registers."""
    return PEER_KINDS[os or LINUX.os]

