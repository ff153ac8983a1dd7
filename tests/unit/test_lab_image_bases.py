"""A lab's own image may start from one of the project's (``FROM tcplab/client``, as labs/programs does): that
image is built first, as the project's always are (no registry has them), and a rebuilt base makes the lab's
image stale."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tcplab.backend.base import BuildRequest
from tcplab.backend.images import build_hash
from tcplab.cli.images_cmd import lab_images
from tcplab.model import load_lab
from tcplab.model.build import dockerfile_bases
from tcplab.paths import LABS_DIR


def test_the_bases_of_a_dockerfile_are_its_from_images_not_its_stages() -> None:
    text = ("ARG BASE=tcplab/base:bookworm\nFROM tcplab/client AS build\nRUN make\nFROM ${BASE}\n"
            "FROM --platform=linux/amd64 debian:12 AS run\nCOPY --from=build /a /a\nFROM build\nFROM scratch\n"
            "FROM \\\n  tcplab/client\n")
    assert dockerfile_bases(text) == ["tcplab/client", "debian:12"]


def test_the_story_labs_need_the_client_image_they_are_built_on() -> None:
    for name in ("half-open", "backlog", "abortive-close"):
        path = LABS_DIR / f"{name}.yaml"
        lab, _ = load_lab(path)
        assert lab_images(lab, path) == {"tcplab/client", "tcplab/tools"}, name
        assert lab_images(lab) == {"tcplab/tools"}


def test_a_rebuilt_base_changes_the_built_images_hash(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM tcplab/client\n")
    build = BuildRequest(context=tmp_path, dockerfile="Dockerfile", args={}, target=None, repository="r")
    same: Any = build_hash(build, ["sha256:1"])
    assert build_hash(build, ["sha256:1"]) == same != build_hash(build, ["sha256:2"]) != build_hash(build)
