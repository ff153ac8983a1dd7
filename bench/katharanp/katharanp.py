"""A stand-in for Kathara's network plugin (``kathara/katharanp_vde``): Linux bridge + veth pairs.

Kathara 3.8 refuses to start a lab until its Docker network plugin is
installed, and installing it means pulling ``kathara/katharanp_vde:<arch>``
from Docker Hub, which this machine cannot reach. This is a Docker *managed*
(v2) network plugin that implements the remote network driver API the way
Kathara's own bridge plugin (``kathara/katharanp``) does: one Linux bridge per
network, one veth pair per endpoint, the container end handed to Docker to
move into the container and name ``eth<N>``. It runs inside the plugin's own
rootfs (any image with python3 and iproute2: bench/katharanp/install.py uses
tcplab/tools) in the host's network namespace with CAP_NET_ADMIN.

Only the standard library: an HTTP server on the unix socket that Docker's
plugin manager connects to (``/run/docker/plugins/katharanp.sock`` inside the
plugin), ``ip`` run with argv lists, never a shell.

It is a benchmark dependency (bench/lifecycle.py measures Kathara's
``lstart``/``lclean`` against tcplab's ``lab up``/``lab down``), not a part of
tcplab.
"""
from __future__ import annotations

import hashlib
import json
import os
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

SOCKET = os.environ.get("KATHARANP_SOCKET", "/run/docker/plugins/katharanp.sock")
CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
_lock = threading.Lock()  # `ip` calls of concurrent requests touch one bridge: keep them in order
_macs: dict[str, str] = {}  # endpoint ID -> MAC chosen at CreateEndpoint


def bridge_name(network_id: str) -> str:
    return f"kt-{network_id[:12]}"  # interface names are at most 15 characters


def veth_names(endpoint_id: str) -> tuple[str, str]:
    """(host end, container end) of an endpoint's veth pair."""
    return f"kv{endpoint_id[:12]}", f"kc{endpoint_id[:12]}"


def ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return ip("link", "show", "dev", name, check=False).returncode == 0


# --- the remote network driver API -------------------------------------------------------------

def activate(_: dict[str, Any]) -> dict[str, Any]:
    return {"Implements": ["NetworkDriver"]}


def capabilities(_: dict[str, Any]) -> dict[str, Any]:
    return {"Scope": "local", "ConnectivityScope": "local"}


def forward_rule(br: str) -> list[str]:
    """The rule Kathara's bridge plugin appends: Docker's FORWARD policy is DROP and bridged frames
    pass through iptables (br_netfilter), so without it ARP works and IP does not."""
    return ["FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"]


def iptables(*argv: str) -> bool:
    for tool in ("iptables", "ip6tables"):
        proc = subprocess.run([tool, "-w", *argv], capture_output=True, text=True)
        if tool == "iptables" and proc.returncode != 0:
            return False
    return True


def create_network(req: dict[str, Any]) -> dict[str, Any]:
    br = bridge_name(req["NetworkID"])
    with _lock:
        if not link_exists(br):
            ip("link", "add", "name", br, "type", "bridge")
        # a hub, as Kathara's plugin makes it: no MAC learning (ageing 0), link-local groups forwarded
        ip("link", "set", "dev", br, "type", "bridge", "ageing_time", "0", "group_fwd_mask", "0xfff8",
           "stp_state", "0", check=False)
        ip("link", "set", "dev", br, "up")
        if not iptables("-C", *forward_rule(br)):
            iptables("-A", *forward_rule(br))
    return {}


def delete_network(req: dict[str, Any]) -> dict[str, Any]:
    br = bridge_name(req["NetworkID"])
    with _lock:
        if link_exists(br):
            ip("link", "del", "dev", br)
        while iptables("-D", *forward_rule(br)):
            pass
    return {}


def mac_for(text: str) -> str:
    """A locally administered unicast MAC derived from ``text`` (Kathara derives one per machine and
    interface, so a device keeps its MAC across restarts)."""
    d = hashlib.sha256(text.encode()).digest()
    return ":".join(f"{b:02x}" for b in bytes([(d[0] | 0x02) & 0xFE]) + d[1:6])


def create_endpoint(req: dict[str, Any]) -> dict[str, Any]:
    # Kathara uses the null IPAM driver: no address to hand back, only a MAC. The veth pair is made at Join.
    opts = req.get("Options") or {}
    if opts.get("kathara.mac_addr"):
        mac = str(opts["kathara.mac_addr"])
    elif opts.get("kathara.machine") and opts.get("kathara.iface"):
        mac = mac_for(f"{opts['kathara.machine']}-{opts['kathara.iface']}")
    elif req.get("Interface"):
        return {"Interface": {}}  # Docker chose the address itself
    else:
        mac = mac_for(f"{req['NetworkID']}-{req['EndpointID']}")
    with _lock:
        _macs[req["EndpointID"]] = mac
    return {"Interface": {"MacAddress": mac}}


def delete_endpoint(req: dict[str, Any]) -> dict[str, Any]:
    with _lock:
        _macs.pop(req["EndpointID"], None)
    return {}


def join(req: dict[str, Any]) -> dict[str, Any]:
    host_end, cont_end = veth_names(req["EndpointID"])
    br = bridge_name(req["NetworkID"])
    with _lock:
        mac = _macs.get(req["EndpointID"])
        if not link_exists(host_end):
            ip("link", "add", "name", host_end, "type", "veth", "peer", "name", cont_end,
               *(("address", mac) if mac else ()))
        ip("link", "set", "dev", host_end, "master", br)
        ip("link", "set", "dev", host_end, "up")
    # Docker moves SrcName into the container's namespace and renames it DstPrefix<N> (eth0, eth1...).
    # No gateway service: without it Docker adds every container to docker_gwbridge as well.
    return {"InterfaceName": {"SrcName": cont_end, "DstPrefix": "eth"}, "DisableGatewayService": True}


def leave(req: dict[str, Any]) -> dict[str, Any]:
    host_end, _ = veth_names(req["EndpointID"])
    with _lock:
        if link_exists(host_end):
            ip("link", "del", "dev", host_end, check=False)  # deleting one end deletes the pair
    return {}


def empty(_: dict[str, Any]) -> dict[str, Any]:
    return {}


def oper_info(_: dict[str, Any]) -> dict[str, Any]:
    return {"Value": {}}


ROUTES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "/Plugin.Activate": activate,
    "/NetworkDriver.GetCapabilities": capabilities,
    "/NetworkDriver.CreateNetwork": create_network,
    "/NetworkDriver.DeleteNetwork": delete_network,
    "/NetworkDriver.AllocateNetwork": empty,
    "/NetworkDriver.FreeNetwork": empty,
    "/NetworkDriver.CreateEndpoint": create_endpoint,
    "/NetworkDriver.DeleteEndpoint": delete_endpoint,
    "/NetworkDriver.EndpointOperInfo": oper_info,
    "/NetworkDriver.Join": join,
    "/NetworkDriver.Leave": leave,
    "/NetworkDriver.DiscoverNew": empty,
    "/NetworkDriver.DiscoverDelete": empty,
    "/NetworkDriver.ProgramExternalConnectivity": empty,
    "/NetworkDriver.RevokeExternalConnectivity": empty,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = {}
        fn = ROUTES.get(self.path)
        if fn is None:
            self._reply(404, {"Err": f"unknown method {self.path}"})
            return
        try:
            self._reply(200, fn(req if isinstance(req, dict) else {}))
        except Exception as e:  # noqa: BLE001 - Docker shows Err to the user
            self._reply(500, {"Err": f"{self.path}: {e}"})

    def _reply(self, code: int, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def address_string(self) -> str:  # a unix socket has no client address
        return "docker"

    def log_message(self, fmt: str, *args: Any) -> None:
        sys.stderr.write(f"katharanp: {fmt % args}\n")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main() -> None:
    os.makedirs(os.path.dirname(SOCKET), exist_ok=True)
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    with Server(SOCKET, Handler) as srv:
        sys.stderr.write(f"katharanp: listening on {SOCKET}\n")
        srv.serve_forever()


if __name__ == "__main__":
    main()
