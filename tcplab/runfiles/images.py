"""``images.json``: the image each host and sidecar ran, by name: its ID, its base, when it was built, its kind."""
from __future__ import annotations

from pydantic import TypeAdapter, with_config
from typing_extensions import TypedDict

from ..rundir import RunDir
from ._io import DEFERRED, OPEN, read_document, write_json

NAME = "images.json"


@with_config(OPEN)
class ImageInfo(TypedDict, total=False):
    id: str  # sha256:...
    base: str  # the base image and its ID
    created: str  # the engine's build time
    built_now: bool  # built (or pulled) for this run (it was missing or stale)
    kind: str  # project (built from images/), pulled (a reference, local or pulled), built (the lab's Dockerfile)
    reference: str  # a built image's extra name, the lab's ``image:``
    hosts: list[str]  # the hosts that ran it (an image of the lab's own)


Images = dict[str, ImageInfo]  # image name -> what it was
SCHEMA: TypeAdapter[Images] = TypeAdapter(Images, config=DEFERRED)


def write(rd: RunDir, images: Images) -> None:
    SCHEMA.validate_python(images)
    write_json(rd.images_json, images)


def read(rd: RunDir) -> Images:
    """Every image the run recorded; empty for a run without the file."""
    return read_document(rd.images_json, SCHEMA, {})
