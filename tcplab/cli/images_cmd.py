"""`lab images [build|ls]`, and making sure a lab's images are there (used by `lab up` and `lab run`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from .common import EXIT_ENVIRONMENT, die, engine, err, out, say

if TYPE_CHECKING:
    from pathlib import Path

    from ..backend.base import Backend, ImageRequest
    from ..model import Lab


def register(app: typer.Typer) -> None:
    """Add `lab images build` and `lab images ls` to `app`."""
    images_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Build or list the images labs use.")
    images_app.command("build")(images_build)
    images_app.command("ls")(images_ls)
    app.add_typer(images_app, name="images")


def ensure_images(backend: Backend, names: set[str], requests: dict[str, ImageRequest] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Build what is missing or stale among the project's images ``names``, then pull or build each host's own
    image of ``requests`` (host -> what it needs), with progress on a terminal; what images.json records."""
    from contextlib import nullcontext

    from ..paths import IMAGES_DIR

    if err.is_terminal:  # a live progress display; rich.progress is not even imported for logs and CI
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        display = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err.rich,
                           transient=True)
    else:
        display = None
    tasks: dict[str, Any] = {}

    def report(image: str, msg: str) -> None:
        if display is None:
            if msg in ("building", "built", "pulling", "pulled") or msg.startswith("mmdebstrap"):
                say(f"image {image}: {msg}")
            return
        if image not in tasks:
            tasks[image] = display.add_task(image)
        display.update(tasks[image], description=f"{image}: {msg}")
        if msg.startswith("mmdebstrap"):
            say(f"image {image}: {msg}")

    with display if display is not None else nullcontext():
        records = backend.ensure_images(IMAGES_DIR, names, report)
        out: dict[str, dict[str, Any]] = {
            name: {"id": r.id, "base": r.base, "created": r.created, "built_now": r.built_now, "kind": r.kind}
            for name, r in records.items()}
        for host, request in (requests or {}).items():
            r = backend.ensure_image(request, report)
            entry = out.setdefault(r.name, {"id": r.id, "base": r.base, "created": r.created,
                                            "built_now": r.built_now, "kind": r.kind, "hosts": []})
            if r.reference and r.reference != r.name:
                entry["reference"] = r.reference
            entry.setdefault("hosts", []).append(host)
    return out


def lab_images(lab: Lab, lab_path: Path | None = None) -> set[str]:
    """The project's images a lab's containers run: its project hosts' and the sidecars' (tcplab/tools), and
    those its own Dockerfiles (beside ``lab_path``) start from."""
    from ..plan import project_images
    from ..plan.images import project_bases

    bases = project_bases(lab, lab_path.resolve().parent) if lab_path is not None else set()
    return project_images(lab) | bases


def lab_image_requests(lab: Lab, lab_path: Path) -> dict[str, ImageRequest]:
    """The hosts' own images (pulled, local or built), with build contexts beside the lab file."""
    from ..plan import image_requests

    return image_requests(lab, lab_path.resolve().parent)


def images_build(force: bool = typer.Option(False, "--force", help="Rebuild even when up to date.")) -> None:
    """Build (or bring up to date) every image of the project."""
    from ..backend.base import EngineError
    from ..paths import known_images

    backend = engine()
    try:
        if force:
            from ..paths import IMAGES_DIR

            backend.ensure_images(IMAGES_DIR, known_images(), lambda i, m: say(f"{i}: {m}"), force=True)
        records = ensure_images(backend, known_images())
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))
    for name, rec in records.items():
        out.print(f"{name:<16} {rec['id'][7:19]}  {'built' if rec['built_now'] else 'up to date'}", markup=False)


def images_ls() -> None:
    """The project's images and their IDs."""
    from ..paths import known_images

    backend = engine()
    for name in sorted(known_images() | {"tcplab/base:bookworm"}):
        found = backend.image(name)
        if found is None:
            out.print(f"{name:<22} (not built)", markup=False)
        else:
            out.print(f"{name:<22} {found[0][7:19]}  {found[1][:19]}", markup=False)
