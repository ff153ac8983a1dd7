"""Images: the locally made Debian base, then the project's images built from ``images/``.

An image is rebuilt only when its build context changed: the hash of its
Dockerfile, the files it copies (the whole ``images/`` tree minus other
images' folders) and the base image's ID is kept as a label on the image.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .base import EngineError, ImageRecord, Progress

BASE_IMAGE = os.environ.get("TCPLAB_BASE_IMAGE", "tcplab/base:bookworm")
LABEL_CONTEXT = "tcplab.context"
# What a sidecar needs is in tools; the order builds shared stages once.
BUILD_ORDER = ("tcplab/server", "tcplab/client", "tcplab/tools")



def _ignored(rel: Path) -> bool:
    """Files that are no part of an image (see images/.dockerignore): bytecode a test left behind."""
    return "__pycache__" in rel.parts or rel.suffix == ".pyc"


def _context_hash(images_dir: Path, name: str, base_id: str) -> str:
    own = name.split("/", 1)[1]
    h = hashlib.sha256(base_id.encode())
    for path in sorted(images_dir.rglob("*")):
        rel = path.relative_to(images_dir)
        if not path.is_file() or rel.parts[0] not in (own, "common") or _ignored(rel):
            continue
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class ImageBuilder:
    def __init__(self, backend: Any, images_dir: Path, progress: Progress | None = None) -> None:
        self.api = backend.api
        self.images_dir = images_dir
        self.progress = progress or (lambda image, msg: None)

    def _inspect(self, name: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            info: dict[str, Any] = self.api.inspect_image(name)
            return info
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as e:
            raise EngineError(f"inspect image {name}: {e.explanation or e}") from None

    def ensure_base(self) -> dict[str, Any]:
        info = self._inspect(BASE_IMAGE)
        if info is not None:
            return info
        if not shutil.which("mmdebstrap"):
            raise EngineError(f"base image {BASE_IMAGE} is missing and mmdebstrap is not installed (run scripts/setup)")
        self.progress(BASE_IMAGE, "mmdebstrap --variant=minbase bookworm (no registry: the base is made here)")
        with tempfile.TemporaryDirectory(prefix="tcplab-base-") as tmp:
            tar = os.path.join(tmp, "rootfs.tar")
            proc = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "bookworm", tar],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                raise EngineError(f"mmdebstrap failed to make the base image: {last}")
            self.progress(BASE_IMAGE, "docker import")
            repo, tag = BASE_IMAGE.rsplit(":", 1)
            self.api.import_image_from_file(tar, repository=repo, tag=tag, changes=['CMD ["bash"]'])
        info = self._inspect(BASE_IMAGE)
        if info is None:
            raise EngineError(f"importing {BASE_IMAGE} failed")
        return info

    def ensure(self, names: list[str] | set[str], force: bool = False) -> dict[str, ImageRecord]:
        """Build what is missing or stale among ``names``; returns a record for each."""
        base = self.ensure_base()
        wanted = [n for n in BUILD_ORDER if n in names] + sorted(set(names) - set(BUILD_ORDER))
        out: dict[str, ImageRecord] = {}

        def one(name: str) -> None:
            digest = _context_hash(self.images_dir, name, base["Id"])
            info = self._inspect(name)
            labels = ((info or {}).get("Config") or {}).get("Labels") or {}
            built = False
            if force or info is None or labels.get(LABEL_CONTEXT) != digest:
                self._build(name, digest)
                info = self._inspect(name)
                built = True
            assert info is not None
            out[name] = ImageRecord(name, info["Id"], f"{BASE_IMAGE} {base['Id']}", info.get("Created", ""), built)

        # the first wave builds at once; tools comes after server, whose compile stage it reuses from the cache
        first = [n for n in wanted if n != "tcplab/tools"]
        with ThreadPoolExecutor(max_workers=max(1, len(first))) as pool:
            futures = [pool.submit(one, n) for n in first]
        for f in futures:
            f.result()
        if "tcplab/tools" in wanted:
            one("tcplab/tools")
        return {n: out[n] for n in wanted}

    def _build(self, name: str, digest: str) -> None:
        own = name.split("/", 1)[1]
        dockerfile = self.images_dir / own / "Dockerfile"
        if not dockerfile.is_file():
            raise EngineError(f"no Dockerfile for {name} at {dockerfile}")
        step_re = re.compile(r"^Step (\d+)/(\d+) : (.*)")
        last_lines: list[str] = []
        self.progress(name, "building")
        stream = self.api.build(path=str(self.images_dir), dockerfile=f"{own}/Dockerfile", tag=name, rm=True,
                                forcerm=True, decode=True, buildargs={"BASE": BASE_IMAGE},
                                labels={LABEL_CONTEXT: digest, "tcplab.image": own})
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                tail = " | ".join(line.strip() for line in last_lines[-3:])
                raise EngineError(f"image build failed for {name}: {detail.strip()} ({tail})")
            text = chunk.get("stream", "")
            for line in text.splitlines():
                if not line.strip():
                    continue
                last_lines.append(line)
                m = step_re.match(line)
                if m:
                    self.progress(name, f"step {m.group(1)}/{m.group(2)}: {m.group(3)[:70]}")
        self.progress(name, "built")
