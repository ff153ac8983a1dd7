"""Where the project's own files are: lab definitions and image build contexts.

tcplab runs from a checkout (``lab.py`` or an editable install), so both live
beside the package. ``TCPLAB_HOME`` points elsewhere when needed.
"""
from __future__ import annotations

import os
from pathlib import Path

HOME = Path(os.environ.get("TCPLAB_HOME", Path(__file__).resolve().parent.parent))
LABS_DIR = HOME / "labs"
IMAGES_DIR = HOME / "images"
COMPOSE_DIR = HOME / "compose"
IMAGE_PREFIX = "tcplab/"
# image directories that are not images of their own
_NOT_IMAGES = {"base", "common"}


def known_images() -> set[str]:
    """Names (``tcplab/<dir>``) of the images the project can build."""
    if not IMAGES_DIR.is_dir():
        return set()
    return {
        IMAGE_PREFIX + d.name
        for d in IMAGES_DIR.iterdir()
        if d.is_dir() and d.name not in _NOT_IMAGES and (d / "Dockerfile").is_file()
    }


LAB_SUFFIXES = (".yaml", ".yml")
# the file that makes a directory of labs/ a lab (beside its Dockerfile and sources): labs/NAME/lab.yaml is lab NAME
DIR_LAB_FILE = f"lab{LAB_SUFFIXES[0]}"


def lab_file(name_or_path: str) -> Path | None:
    """A lab's file from its name (``labs/<name>.yaml``, or the lab directory ``labs/<name>/``'s file) or a path;
    None if neither exists."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        return p if p.is_file() else None
    for cand in (*(LABS_DIR / f"{name_or_path}{s}" for s in LAB_SUFFIXES), LABS_DIR / name_or_path / DIR_LAB_FILE):
        if cand.is_file():
            return cand
    return None
