"""Install the stand-in network plugin under the name Kathara 3.8 looks for.

Kathara's ``DockerPlugin`` asks the engine for ``<network_plugin>:<arch>``
(``kathara/katharanp_vde:amd64`` with the default settings) and pulls it from
Docker Hub when it is missing; when it is there but disabled it enables it.
Its ``plugin.upgrade()`` call is a generator that is never iterated, so an
installed plugin is never checked against a registry.

This makes a managed (v2) plugin of that name with ``POST /plugins/create``:
a directory with ``config.json`` and ``rootfs/``. The rootfs is the exported
filesystem of an image that has python3 and iproute2 (tcplab/tools: already
on every machine that runs labs, so no download), plus ``katharanp.py``. The
plugin's description carries a hash of the two source files, so a changed
plugin is rebuilt and an unchanged one is left alone (building takes ~10 s).

Usage: ``python bench/katharanp/install.py [--name NAME] [--image IMAGE] [--remove]``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_NAME = "kathara/katharanp_vde:amd64"
DEFAULT_IMAGE = "tcplab/tools"
MARKER = "tcplab bench stand-in"


def source_hash() -> str:
    h = hashlib.sha256()
    for f in ("katharanp.py", "config.json"):
        h.update((HERE / f).read_bytes())
    return h.hexdigest()[:12]


def _config() -> dict[str, Any]:
    cfg = json.loads((HERE / "config.json").read_text())
    cfg["description"] = f"{cfg['description']} [{source_hash()}]"
    return cfg


def find(client: Any, name: str) -> Any | None:
    import docker.errors

    try:
        return client.plugins.get(name)
    except docker.errors.NotFound:
        return None


def remove(client: Any, name: str) -> bool:
    """Remove the plugin if it is ours (its description carries the marker). True if removed."""
    plugin = find(client, name)
    if plugin is None:
        return False
    desc = (plugin.attrs.get("Config") or {}).get("Description", "")
    if MARKER not in desc:
        raise SystemExit(f"{name} is installed but is not the bench stand-in ({desc!r}); not touching it")
    if plugin.enabled:
        plugin.disable(force=True)
    plugin.remove(force=True)
    return True


def ensure(client: Any, name: str = DEFAULT_NAME, image: str = DEFAULT_IMAGE,
           say: Any = lambda m: None) -> dict[str, Any]:
    """The plugin installed and enabled; returns what was done and how long it took."""
    want = source_hash()
    plugin = find(client, name)
    if plugin is not None:
        desc = (plugin.attrs.get("Config") or {}).get("Description", "")
        if f"[{want}]" in desc:
            if not plugin.enabled:
                plugin.enable(timeout=30)
            return {"plugin": name, "action": "present", "seconds": 0.0}
        say(f"plugin {name} is out of date: rebuilding")
        remove(client, name)
    t = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="katharanp-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        say(f"plugin rootfs from {image}")
        container = client.containers.create(image, command=["true"], labels={"tcplab.bench": "katharanp"})
        try:
            tar_path = Path(tmp) / "rootfs.tar"
            with open(tar_path, "wb") as f:
                for chunk in container.export():
                    f.write(chunk)
        finally:
            container.remove(force=True)
        with tarfile.open(tar_path) as tar:
            tar.extractall(root, filter="fully_trusted")  # our own image's filesystem, extracted as root
        tar_path.unlink()
        (root / "opt" / "katharanp").mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "katharanp.py", root / "opt" / "katharanp" / "katharanp.py")
        (root / "run" / "docker" / "plugins").mkdir(parents=True, exist_ok=True)
        (Path(tmp) / "config.json").write_text(json.dumps(_config(), indent=2))
        say(f"docker plugin create {name}")
        client.api.create_plugin(name, tmp)
    plugin = client.plugins.get(name)
    plugin.enable(timeout=30)
    return {"plugin": name, "action": "built", "seconds": round(time.monotonic() - t, 2)}


def main() -> None:
    import docker

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--image", default=DEFAULT_IMAGE)
    ap.add_argument("--remove", action="store_true", help="remove the stand-in plugin")
    args = ap.parse_args()
    client = docker.from_env(timeout=300)
    if args.remove:
        print("removed" if remove(client, args.name) else "not installed")
        return
    print(json.dumps(ensure(client, args.name, args.image, say=lambda m: print(m, file=sys.stderr))))


if __name__ == "__main__":
    main()
