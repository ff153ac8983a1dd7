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


class _Engine:
    """The SDK's low-level API as far as a lab's image build uses it: images by tag and by label, tag, build."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}  # repository:tag -> image id
        self.labels: dict[str, dict[str, str]] = {}  # image id -> labels
        self.builds: list[str] = []

    def inspect_image(self, ref: str) -> dict[str, Any]:
        import docker.errors

        if ref not in self.tags:
            raise docker.errors.ImageNotFound(ref)
        return {"Id": self.tags[ref], "Created": ""}

    def images(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        key, _, value = filters["label"].partition("=")
        return [{"Id": i} for i, labels in self.labels.items() if labels.get(key) == value]

    def tag(self, image: str, repository: str, tag: str, force: bool = False) -> bool:
        self.tags[f"{repository}:{tag}"] = image
        return True

    def build(self, tag: str, labels: dict[str, str], **_: Any) -> list[dict[str, str]]:
        image = f"sha256:{len(self.builds) + 1}"
        self.builds.append(tag)
        self.tags[tag] = image
        self.labels[image] = labels
        return [{"stream": "Step 1/1 : FROM scratch\n"}]


def test_the_same_files_are_built_once_whatever_lab_or_run_name_asks(tmp_path: Path) -> None:
    from tcplab.backend.base import BuildRequest
    from tcplab.backend.images import ensure_built

    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (tmp_path / "a").write_text("one")
    engine = _Engine()

    def request(repository: str) -> BuildRequest:
        return BuildRequest(tmp_path, "Dockerfile", {}, None, repository)

    first = ensure_built(engine, request("tcplab-build/backlog-client"), None, lambda *_: None)
    again = ensure_built(engine, request("tcplab-build/half-open-client"), None, lambda *_: None)
    assert len(engine.builds) == 1 and (first.built_now, again.built_now) == (True, False)
    assert again.id == first.id and again.name.startswith("tcplab-build/half-open-client:")
    (tmp_path / "a").write_text("two")
    changed = ensure_built(engine, request("tcplab-build/half-open-client"), None, lambda *_: None)
    assert len(engine.builds) == 2 and changed.built_now and changed.id != first.id
