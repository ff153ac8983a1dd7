"""Which image each host runs, and what the engine must do to have the images that are not the project's.

The project's images (``tcplab/server``, ...) are built from ``images/`` by the backend's image builder.
Any other host image is the lab's own: a reference the engine has or pulls (``pull``), or an image built
from a Dockerfile beside the lab file (``build``), tagged ``tcplab-build/<lab>-<host>:<content hash>``.
Pure: nothing here calls an engine.
"""
from __future__ import annotations

from pathlib import Path

from ..backend.base import BuildRequest, ImageRequest
from ..model.build import dockerfile_bases
from ..model.lab import PROJECT_IMAGES, ImpairStep, Lab

BUILT_REPOSITORY = "tcplab-build"  # the repository of images built from a lab's Dockerfile
TOOLS_IMAGE = "tcplab/tools"  # the sidecars' image
IMPAIR_IMAGE = "tcplab/impair"  # the impairment sidecar's image, only for labs with an impair step


def built_repository(lab: Lab, host: str) -> str:
    """``tcplab-build/<lab>-<host>``: where the image built for a host is tagged (its tag: the content hash)."""
    return f"{BUILT_REPOSITORY}/{lab.name}-{host}"


def host_image(lab: Lab, host: str) -> str:
    """The name a host's image goes by: its ``image``, else (built without one) its built repository."""
    h = lab.hosts[host]
    return h.image if h.image is not None else built_repository(lab, host)


def project_images(lab: Lab) -> set[str]:
    """The project's images a lab runs: its project hosts' and the sidecars' (tcplab/tools, and tcplab/impair
    for a lab that impairs a link)."""
    impair = {IMPAIR_IMAGE} if any(isinstance(s, ImpairStep) for s in lab.steps) else set()
    return {h.image for h in lab.hosts.values() if h.image_kind == "project" and h.image} | {TOOLS_IMAGE} | impair


def project_bases(lab: Lab, lab_dir: Path) -> set[str]:
    """The project's images the lab's own Dockerfiles start from (``FROM tcplab/client``): they must be built
    before those, as the project's images always are, since no registry has them."""
    out: set[str] = set()
    for h in lab.hosts.values():
        if h.build is None:
            continue
        try:
            text = (lab_dir / h.build.context / h.build.dockerfile).read_text(errors="replace")
        except OSError:
            continue  # the build itself says what is wrong with it
        out |= {b for b in dockerfile_bases(text) if b.startswith(PROJECT_IMAGES) and ":" not in b and "@" not in b}
    return out


def image_requests(lab: Lab, lab_dir: Path) -> dict[str, ImageRequest]:
    """What the engine must pull or build for each host whose image is the lab's own (``lab_dir``: the lab
    file's directory, which build contexts are relative to)."""
    out: dict[str, ImageRequest] = {}
    for name, h in lab.hosts.items():
        if h.image_kind == "project":
            continue
        build = None
        if h.build is not None:
            context = lab_dir / h.build.context
            build = BuildRequest(context=context, dockerfile=h.build.dockerfile, args=dict(h.build.args),
                                 target=h.build.target, repository=built_repository(lab, name))
        out[name] = ImageRequest(reference=h.image, pull=h.pull, build=build)
    return out
