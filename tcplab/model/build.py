"""``program.build``: the source file of a host's program, checked against the project's images.

tcplab builds no lab program itself (yet): a program reaches a host through the
host's image, whose Dockerfile copies its source from ``images/`` and builds it
(``images/server/Dockerfile`` compiles ``images/server/server.c``). So ``build:``
names that source, relative to the lab file (``labs/closewait.yaml`` writes
``../images/server/server.c``), and is accepted only when the file exists and
the Dockerfile of the host's image copies it: a ``build:`` that nothing builds
would claim what no one does.
"""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path, PurePosixPath

from .messages import clip

# Flags of COPY/ADD that take no source; --from copies from a stage or an image, not the context.
_FLAG = re.compile(r"^--[a-z-]+(=\S*)?$")


def dockerfile_sources(text: str) -> list[str]:
    """The build-context paths (or globs) that a Dockerfile's COPY and ADD lines copy."""
    sources: list[str] = []
    joined = re.sub(r"\\\r?\n", " ", text)  # line continuations
    for line in joined.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2 or words[0].upper() not in ("COPY", "ADD"):
            continue
        rest = words[1].strip()
        flags = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(f.startswith("--from") for f in flags) or not all(_FLAG.match(f) for f in flags):
            continue
        if rest.startswith("["):
            try:
                args = json.loads(rest)
            except ValueError:
                continue
            args = [a for a in args if isinstance(a, str)]
        else:
            args = rest.split()
        sources += args[:-1]  # the last one is the destination
    return sources


def dockerfile_bases(text: str) -> list[str]:
    """The images a Dockerfile's FROM lines start from, in order: not its own stages (``FROM build``), not
    ``scratch``, not a name made of build arguments (``FROM ${BASE}``), which only the build knows."""
    bases: list[str] = []
    stages: set[str] = set()
    joined = re.sub(r"\\\r?\n", " ", text)
    for line in joined.splitlines():
        words = line.split()
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if not args:
            continue
        image = args[0]
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
        if image.lower() in stages or image == "scratch" or "$" in image or image in bases:
            continue
        bases.append(image)
    return bases


def copies(sources: list[str], rel: str) -> bool:
    """Whether one of ``sources`` (context paths, directories or globs) takes the context file ``rel``."""
    for source in sources:
        s = str(PurePosixPath(source.lstrip("/"))) if source.strip("/.") else "."
        if s == "." or rel == s or rel.startswith(s.rstrip("/") + "/") or fnmatch.fnmatchcase(rel, s):
            return True
    return False


def check_build(value: str, image: str, lab_dir: Path, images_dir: Path) -> str | None:
    """What is wrong with ``build: value`` on a host of ``image`` (``tcplab/<dir>``), or None when it holds.

    ``lab_dir`` is the lab file's directory, which ``value`` is relative to."""
    shown = clip(value)
    path = lab_dir / value
    if not path.exists():
        return (f"no such file: {shown} (write the path relative to the lab file's directory, "
                "e.g. ../images/server/server.c from labs/)")
    if path.is_dir():
        return f"{shown} is a directory: name the program's source file (e.g. ../images/server/server.c)"
    own = image.split("/", 1)[1].split(":", 1)[0]
    dockerfile = images_dir / own / "Dockerfile"
    try:
        rel = path.resolve().relative_to(images_dir.resolve()).as_posix()
        sources = dockerfile_sources(dockerfile.read_text(encoding="utf-8", errors="replace"))
    except (ValueError, OSError):
        rel, sources = "", []
    if rel and copies(sources, rel):
        return None
    return (f"{shown} is not built by {image} (images/{own}/Dockerfile does not copy it) and tcplab builds no "
            f"lab program itself yet: put the source in images/{own}/ and build it in that Dockerfile")
