"""Where the project's own files are (the shipped labs, the image build contexts), and where a lab is.

Three places can hold the shipped labs and images, first found wins:

- ``TCPLAB_HOME``: a directory with ``labs/`` and ``images/`` (a checkout, or a copy of one);
- ``tcplab/_data/``: what an installed package carries (the wheel puts the checkout's top-level
  ``labs/`` and ``images/`` there, see ``build_backend/``);
- the checkout the package runs from (``lab.py`` or an editable install): its top.

A lab named on the command line is looked for in ``./labs`` of the current directory first
(``labs/NAME.yaml`` or a lab directory ``labs/NAME/lab.yaml``), then ``./NAME/lab.yaml``, then among
the shipped labs (the same two shapes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _home() -> Path:
    env = os.environ.get("TCPLAB_HOME")
    if env:
        return Path(env)
    if (_PACKAGE / "_data" / "labs").is_dir():
        return _PACKAGE / "_data"
    return _PACKAGE.parent


HOME = _home()
LABS_DIR = HOME / "labs"
IMAGES_DIR = HOME / "images"
COMPOSE_DIR = HOME / "compose"
IMAGE_PREFIX = "tcplab/"
# image directories that are not images of their own
_NOT_IMAGES = {"base", "common"}
LAB_SUFFIXES = (".yaml", ".yml")
# the file that makes a directory a lab (beside its Dockerfile and sources): labs/NAME/lab.yaml is lab NAME
DIR_LAB_FILES = tuple(f"lab{s}" for s in LAB_SUFFIXES)
DIR_LAB_FILE = DIR_LAB_FILES[0]  # the one lab init writes


def known_images() -> set[str]:
    """Names (``tcplab/<dir>``) of the images the project can build."""
    if not IMAGES_DIR.is_dir():
        return set()
    return {
        IMAGE_PREFIX + d.name
        for d in IMAGES_DIR.iterdir()
        if d.is_dir() and d.name not in _NOT_IMAGES and (d / "Dockerfile").is_file()
    }


def cache_dir() -> Path:
    """Where tcplab keeps what it can make again (the report template's compiled code): ``TCPLAB_CACHE``, else
    ``$XDG_CACHE_HOME/tcplab``, else ``~/.cache/tcplab``. Deleting it costs time, never a result."""
    env = os.environ.get("TCPLAB_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tcplab"


def local_labs_dir() -> Path:
    """``labs/`` of the current directory: a user's own labs, found by name as the shipped ones are."""
    return Path("labs")


def _dir_lab(directory: Path) -> Path | None:
    for name in DIR_LAB_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def _named(labs_dir: Path, name: str) -> Path | None:
    for ext in LAB_SUFFIXES:
        if (labs_dir / f"{name}{ext}").is_file():
            return labs_dir / f"{name}{ext}"
    return _dir_lab(labs_dir / name) if (labs_dir / name).is_dir() else None


def looks_like_path(name_or_path: str) -> bool:
    """A command line's lab argument names a file or directory (rather than a lab by name)."""
    return Path(name_or_path).suffix in LAB_SUFFIXES or os.sep in name_or_path or name_or_path in (".", "..")


def lab_file(name_or_path: str) -> Path | None:
    """A lab's file from its name, a file's path or a lab directory's path; None if none exists.

    A name is looked up in ``./labs`` first (``NAME.yaml``, ``NAME/lab.yaml``), then as a lab directory of
    the current one (``NAME/lab.yaml``), then among the shipped labs (:data:`LABS_DIR`)."""
    p = Path(name_or_path)
    if looks_like_path(name_or_path):
        if p.is_dir():
            return _dir_lab(p)
        return p if p.is_file() else None
    found = _named(local_labs_dir(), name_or_path)
    if found is None and p.is_dir():  # a lab directory here, as `lab init NAME` makes one
        found = _dir_lab(p)
    return found if found is not None else _named(LABS_DIR, name_or_path)


@dataclass(frozen=True)
class LabEntry:
    """A lab `lab ls` lists: the name `lab up` takes, its file, and whether it ships with tcplab."""
    name: str
    path: Path
    shipped: bool


def _entries(labs_dir: Path) -> list[tuple[str, Path]]:
    """(name, file) of each lab in ``labs_dir``: ``NAME.yaml`` and ``NAME/lab.yaml``, by name."""
    if not labs_dir.is_dir():
        return []
    found: dict[str, Path] = {}
    for f in sorted(labs_dir.iterdir()):
        if f.is_file() and f.suffix in LAB_SUFFIXES:
            found.setdefault(f.stem, f)
        elif f.is_dir():
            inside = _dir_lab(f)
            if inside is not None:
                found.setdefault(f.name, inside)
    return sorted(found.items())


def all_labs() -> list[LabEntry]:
    """The labs a name finds: ``./labs`` first, then the shipped ones it does not shadow (each file once)."""
    shipped_root = LABS_DIR.resolve()
    names: set[str] = set()
    files: set[Path] = set()
    out: list[LabEntry] = []
    for labs_dir in (local_labs_dir(), LABS_DIR):
        for name, path in _entries(labs_dir):
            real = path.resolve()
            if name in names or real in files:
                continue
            names.add(name)
            files.add(real)
            out.append(LabEntry(name, path, real.is_relative_to(shipped_root)))
    return out
