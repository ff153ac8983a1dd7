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
from typing import Any, Sequence

from ..model.build import dockerfile_bases
from .base import BuildRequest, EngineError, ImageRecord, Progress

BASE_IMAGE = os.environ.get("TCPLAB_BASE_IMAGE", "tcplab/base:bookworm")
LABEL_CONTEXT = "tcplab.context"
# What a sidecar needs is in tools; the order builds shared stages once.
BUILD_ORDER = ("tcplab/server", "tcplab/client", "tcplab/tools", "tcplab/impair")



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


# --- a lab's own images: any reference (pulled or local), or built from the lab's Dockerfile ----------------

LABEL_BUILT_FOR = "tcplab.built-for"  # on an image built from a lab's Dockerfile: the repository it was made as
LABEL_BUILD_HASH = "tcplab.build-hash"  # and what it is made of (build_hash): one build serves every lab of that make
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")
# what the classic builder says of itself between a step's own lines
_BUILDER_CHATTER = re.compile(r"^\s*(---> |Running in [0-9a-f]+|Removing intermediate container|Successfully )")


def _line(text: str, width: int = 200) -> str:
    """Text from the engine or a build, safe and short enough for a one-line message."""
    text = _ONE_LINE.sub(" ", " ".join(text.split()))
    return text if len(text) <= width else text[: width - 3] + "..."


def _inspect(api: Any, name: str) -> dict[str, Any] | None:
    import docker.errors

    try:
        info: dict[str, Any] = api.inspect_image(name)
        return info
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as e:
        raise EngineError(f"image {name}: {_line(str(e.explanation or e))}") from None
    except Exception as e:  # noqa: BLE001 - the SDK's transport errors have no common base
        raise EngineError(f"image {name}: Docker engine not reachable ({type(e).__name__})") from None


def ensure_pulled(api: Any, ref: str, pull: str, progress: Progress) -> ImageRecord:
    """``ref`` on the engine: pulled when missing (``missing``), always (``always``) or never (``never``)."""
    info = _inspect(api, ref)
    pulled = False
    if pull == "always" or (info is None and pull == "missing"):
        _pull(api, ref, progress)
        info = _inspect(api, ref)
        pulled = True
    if info is None:
        if pull == "never":
            raise EngineError(f"image {ref} is not on the engine and the lab says pull: never "
                              "(build or pull it first, or set pull: missing)")
        raise EngineError(f"image {ref}: the pull ended without the image")
    return ImageRecord(ref, info["Id"], "", info.get("Created", ""), pulled, kind="pulled", reference=ref)


def _pull(api: Any, ref: str, progress: Progress) -> None:
    """Pull through the engine with the credentials of the Docker client's configuration (docker login)."""
    import docker.errors

    progress(ref, "pulling")
    try:
        for chunk in api.pull(ref, stream=True, decode=True):
            if isinstance(chunk, dict) and "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise EngineError(f"image {ref}: the pull failed: {_line(str(detail))}")
    except docker.errors.APIError as e:
        raise EngineError(f"image {ref}: the pull failed: {_line(str(e.explanation or e))}") from None
    except EngineError:
        raise
    except Exception as e:  # noqa: BLE001 - the SDK's transport errors have no common base
        raise EngineError(f"image {ref}: the pull failed ({type(e).__name__}: {_line(str(e))})") from None
    progress(ref, "pulled")


def build_hash(build: BuildRequest, bases: Sequence[str] = ()) -> str:
    """What the image is made of: every file of the context (path and bytes), the Dockerfile's name, the
    arguments, the target, and the IDs of the local images it starts from (``bases``: a project image rebuilt
    under it makes it stale). Unchanged, the image is not built again."""
    h = hashlib.sha256()
    for base in bases:
        h.update(f"base {base}\0".encode())
    h.update(f"dockerfile={build.dockerfile}\0target={build.target or ''}\0".encode())
    for key in sorted(build.args):
        h.update(f"arg {key}={build.args[key]}\0".encode())
    for path in sorted(build.context.rglob("*")):
        rel = path.relative_to(build.context)
        if path.is_file() and not path.is_symlink() and not _ignored(rel) and ".git" not in rel.parts:
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _base_ids(api: Any, build: BuildRequest) -> list[str]:
    """The IDs of the images the Dockerfile starts from that the engine has (a project image, a local one)."""
    try:
        text = (build.context / build.dockerfile).read_text(errors="replace")
    except OSError:
        return []  # the build says what is wrong
    return [str(info["Id"]) for b in dockerfile_bases(text) if (info := _inspect(api, b)) is not None]


def ensure_built(api: Any, build: BuildRequest, ref: str | None, progress: Progress) -> ImageRecord:
    """The lab's image built from its Dockerfile (unless an image of the same content hash exists), tagged
    ``repository:<hash>``, and ``ref`` too when the lab names it (as compose tags a built image)."""
    digest = build_hash(build, _base_ids(api, build))
    tag = f"{build.repository}:{digest}"
    info = _inspect(api, tag) or _tagged_from_same_make(api, digest, build.repository)
    built = info is None
    if info is None:
        _build_lab_image(api, build, tag, digest, progress)
        info = _inspect(api, tag)
        if info is None:
            raise EngineError(f"image {tag}: the build ended without the image")
    if ref is not None:
        repo, _, version = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        try:
            api.tag(info["Id"], repo, version or "latest", force=True)
        except Exception as e:  # noqa: BLE001 - the SDK's transport errors have no common base
            raise EngineError(f"image {tag}: could not tag it {ref}: {_line(str(e))}") from None
    return ImageRecord(tag, info["Id"], "", info.get("Created", ""), built, kind="built", reference=ref or "")


def _tagged_from_same_make(api: Any, digest: str, repository: str) -> dict[str, Any] | None:
    """An image another lab (or another run's name) built from the same files, tagged ``repository:digest``
    too, so it is not built again; None when there is none."""
    try:
        same = api.images(filters={"label": f"{LABEL_BUILD_HASH}={digest}"})
    except Exception:  # noqa: BLE001 - no reuse then: the build says what is wrong with the engine
        return None
    for image in same or ():
        try:
            api.tag(image["Id"], repository, digest)
        except Exception:  # noqa: BLE001 - removed meanwhile: try the next, or build
            continue
        return _inspect(api, f"{repository}:{digest}")
    return None


def _build_lab_image(api: Any, build: BuildRequest, tag: str, digest: str, progress: Progress) -> None:
    """Build through the engine's API, saying each step; a failing step is one line with its last output."""
    import docker.errors

    last: list[str] = []
    step = ""
    progress(tag, "building")
    try:
        stream = api.build(path=str(build.context), dockerfile=build.dockerfile, tag=tag, rm=True, forcerm=True,
                           decode=True, buildargs=dict(build.args), target=build.target, pull=False,
                           labels={LABEL_BUILT_FOR: build.repository, LABEL_BUILD_HASH: digest})
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                tail = " | ".join(_line(ln, 100) for ln in last[-3:])
                where = f" at {step}" if step else ""
                raise EngineError(f"image {tag}: the build failed{where}: {_line(str(detail))}"
                                  + (f"; its last lines: {tail}" if tail else ""))
            for line in str(chunk.get("stream", "")).splitlines():
                if not line.strip():
                    continue
                m = _STEP.match(line)
                if m:
                    step = f"step {m.group(1)}/{m.group(2)} ({_line(m.group(3), 60)})"
                    progress(tag, f"step {m.group(1)}/{m.group(2)}: {m.group(3)[:70]}")
                    last = []
                elif not _BUILDER_CHATTER.match(line):
                    last.append(line)
    except docker.errors.APIError as e:
        raise EngineError(f"image {tag}: the build failed: {_line(str(e.explanation or e))}") from None
    except EngineError:
        raise
    except Exception as e:  # noqa: BLE001 - the SDK's transport errors have no common base
        raise EngineError(f"image {tag}: the build failed ({type(e).__name__}: {_line(str(e))})") from None
    progress(tag, "built")


def old_builds(images: list[dict[str, Any]], used: set[str]) -> list[str]:
    """What `lab gc --images` removes of the engine's images built from labs' Dockerfiles (``images``: the
    engine's listing of them, with ``Id``, ``RepoTags`` and ``Created``): in each repository every tag but
    the newest image's (a changed Dockerfile or context builds a new one and leaves the old), and each image
    that lost its tags; never an image a container uses (``used``: image IDs). Tags, not IDs, are removed,
    so an image of the same make that another lab's repository names stays as long as that name does."""
    newest: dict[str, tuple[tuple[int, int], str]] = {}
    for image in images:
        for ref in _tags(image):
            repo = ref.rpartition(":")[0]
            key = (_created(image.get("Created")), image["Id"])
            if repo not in newest or key > newest[repo]:
                newest[repo] = key
    old: list[str] = []
    for image in sorted(images, key=lambda i: (_created(i.get("Created")), i["Id"])):
        if image["Id"] in used:
            continue
        tags = _tags(image)
        if not tags:
            old.append(image["Id"])
        old += [ref for ref in tags if newest[ref.rpartition(":")[0]][1] != image["Id"]]
    return old


def _created(value: Any) -> tuple[int, int]:
    """An image's creation time as (seconds, nanoseconds), from the engine's listing (whole seconds) or its
    inspection (RFC 3339 with up to nine decimals: two builds in one second are told apart)."""
    if isinstance(value, (int, float)):
        return int(value), 0
    import datetime

    text = str(value or "").rstrip("Z")
    whole, _, fraction = text.partition(".")
    try:
        seconds = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return 0, 0
    digits = "".join(c for c in fraction if c.isdigit())[:9]
    return int(seconds), int(digits.ljust(9, "0")) if digits else 0


def _tags(image: dict[str, Any]) -> list[str]:
    return sorted(t for t in image.get("RepoTags") or () if t and t != "<none>:<none>")


def remove_old_builds(api: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """Remove :func:`old_builds`: the references removed, and those the engine kept with its reason."""
    import docker.errors

    try:
        images = api.images(all=False, filters={"label": LABEL_BUILT_FOR})
        used = {c.get("ImageID", "") for c in api.containers(all=True)}
        for image in images:  # the listing's times are whole seconds: the inspection's tell close builds apart
            try:
                image["Created"] = api.inspect_image(image["Id"]).get("Created", image.get("Created"))
            except docker.errors.ImageNotFound:
                pass
    except docker.errors.APIError as e:
        raise EngineError(f"list images: {_line(str(e.explanation or e))}") from None
    removed: list[str] = []
    kept: list[tuple[str, str]] = []
    for ref in old_builds(images, used):
        try:
            api.remove_image(ref, noprune=False)
            removed.append(ref)
        except docker.errors.ImageNotFound:
            pass  # gone with a tag removed before it
        except docker.errors.APIError as e:
            kept.append((ref, _line(str(e.explanation or e))))
    return removed, kept
