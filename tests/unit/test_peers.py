"""Peer kinds (tcplab/peers): the registry peer.os names, each kind's checks, sysctls, sidecars and timer.
The plan's use of a kind's sidecars is in test_plan.py; the Windows sidecar on a real engine in
tests/integration/test_winpeer_raw.py."""
from __future__ import annotations

import pytest

from tcplab.model import LabError, Peer
from tcplab.model.loader import validate
from tcplab.peers import PEER_KINDS, peer_kind
from tcplab.peers.base import PeerKind, PeerProblem, one_of
from tcplab.peers.linux import LinuxPeer
from tcplab.peers.windows import READY_LINE, WindowsPeer, WindowsPeerSidecar, fin_timeout_for


def lab_with(peer: dict[str, object]) -> dict[str, object]:
    return {"name": "p", "hosts": {"h": {"image": "tcplab/client", "peer": peer}}}


def test_peer_os_names_a_registered_kind() -> None:
    assert list(PEER_KINDS) == ["linux", "windows"]
    assert isinstance(peer_kind("windows"), WindowsPeer) and isinstance(peer_kind(None), LinuxPeer)
    assert all(k.os == os and k.title for os, k in PEER_KINDS.items())
    with pytest.raises(LabError, match=r"hosts.h.peer.os: 'macos' is not one of 'linux' or 'windows'"):
        validate(lab_with({"os": "macos"}), "f.yaml")


def test_one_of_lists_values_as_the_errors_do() -> None:
    assert (one_of(["a"]), one_of(["a", "b"]), one_of(["a", "b", "c"])) == ("'a'", "'a' or 'b'", "'a', 'b' or 'c'")


@pytest.mark.parametrize("peer,field,message", [
    ({"fin_wait2_timeout": "2s"}, "fin_wait2_timeout", "only a Windows peer has this timer"),
    ({"os": "windows", "fin_wait2_timeout": "10ms"}, "fin_wait2_timeout", "must be at least 50ms"),
])
def test_each_kind_checks_its_own_settings(peer: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(LabError, match=f"hosts.h.peer.{field}: {message}"):
        validate(lab_with(peer), "f.yaml")
    assert [p.field for p in peer_kind(str(peer.get("os", "linux"))).problems(Peer(**peer))] == [field]


def test_linux_sets_only_what_the_lab_sets() -> None:
    linux = peer_kind("linux")
    assert linux.sysctls(Peer()) == {} and linux.sidecars("h", Peer()) == []
    assert linux.sysctls(Peer(tcp_fin_timeout=3)) == {"net.ipv4.tcp_fin_timeout": "3"}
    assert linux.fin_wait2_reset(None) is None and linux.host_note(Peer()) is None


def test_windows_sysctls_sidecar_and_timer() -> None:
    win = peer_kind("windows")
    peer = Peer(os="windows", fin_wait2_timeout=2.0, syn="windows-7")
    assert win.sysctls(peer) == {"net.ipv4.ip_default_ttl": "128", "net.ipv4.tcp_timestamps": "0",
                                 "net.ipv4.tcp_rmem": "4096 131072 12582912",
                                 "net.ipv4.tcp_fin_timeout": str(fin_timeout_for(2.0))}
    assert win.sysctls(Peer(os="windows", tcp_fin_timeout=9))["net.ipv4.tcp_fin_timeout"] == "9"
    assert "net.ipv4.tcp_timestamps" not in win.sysctls(Peer(os="windows", syn="linux"))
    [side] = win.sidecars("win", peer)
    assert side.command == WindowsPeerSidecar("win", 2.0, "windows-7").command()
    assert (side.role, side.ready_line, side.artifacts, side.folder) == ("peer", READY_LINE, "peer", "logs/peer")
    assert "(2 s)" in side.about
    command = win.sidecars("win", Peer(os="windows"))[0].command
    assert command[command.index("--fin-wait2-timeout") + 1] == "120.0"  # Windows' own timer
    assert (win.fin_wait2_reset(None), win.fin_wait2_reset(2.0)) == (120.0, 2.0)


def test_the_labs_timer_field_follows_the_peer_kind() -> None:
    """A delay naming peers.HOST.fin_wait2_timeout is the kind's timer: the lab's, else the kind's own."""
    base = {"name": "p", "hosts": {"w": {"image": "tcplab/client", "peer": {"os": "windows"}},
                                   "l": {"image": "tcplab/client"}}}
    lab = validate(base, "f.yaml")
    assert lab.duration_field("peers.w.fin_wait2_timeout") == 120.0
    assert lab.duration_field("peers.l.fin_wait2_timeout") is None


def test_a_kind_says_nothing_it_does_not_override() -> None:
    class Plain(PeerKind):
        os = "plain"
        title = "Plain"

    plain, peer = Plain(), Peer()
    assert (plain.problems(peer), plain.sysctls(peer), plain.sidecars("h", peer)) == ([], {}, [])
    assert plain.fin_wait2_reset(5.0) is None and plain.host_note(peer) is None
    assert PeerProblem("f", "m").field == "f"
