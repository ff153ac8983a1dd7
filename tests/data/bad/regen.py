#!/usr/bin/env python3
"""The bad lab files and their golden errors (in the manner of netlab's tests/errors/).

Every ``*.yaml`` in this directory is a lab file that must be refused, and
``expected.txt`` holds, one line per file, the error the CLI prints after
``lab: `` for it: ``<file>: <field>: <message>``. A few more bad files are too
big to keep in git (2 MB, 10 000 hosts, a 100 000-character argument...):
``generated()`` writes them, and their lines are in ``expected.txt`` too.

The tests compare against the committed ``expected.txt``. After a deliberate
change of a message, rewrite it and review the diff:

    .venv/bin/python tests/data/bad/regen.py
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "expected.txt"

_HOSTS = "hosts:\n  server: {image: tcplab/server}\n  client: {image: tcplab/client}\n"


def generated() -> dict[str, bytes]:
    """Bad files built here rather than kept in git: oversized or pathologically nested."""
    files: dict[str, str] = {}
    # 2 MB: refused on its size, before any parsing
    files["oversized-2mb.yaml"] = "name: bad-oversized-2mb\n" + _HOSTS + ("# padding " + "x" * 89 + "\n") * 21_000
    # 10 000 hosts (a lab has at most 16), written compactly with an alias
    files["hosts-10000.yaml"] = ("name: bad-hosts-10000\nhosts:\n  h00000: &h {image: tcplab/client}\n"
                                 + "".join(f"  h{i:05d}: *h\n" for i in range(1, 10_000)))
    # one argument of 100 000 characters (at most 4096)
    files["argument-100k.yaml"] = ("name: bad-argument-100k\n" + _HOSTS
                                   + "steps:\n  - {host: client, start: [echo, " + "A" * 100_000 + "], as: e1}\n")
    # a host name of 100 000 characters: the message quotes a few dozen
    files["host-name-100k.yaml"] = "name: bad-host-name-100k\nhosts:\n  " + "h" * 100_000 + ": {image: tcplab/client}\n"
    # text typed into a program: at most 64 KiB
    files["send-text-70k.yaml"] = ("name: bad-send-text-70k\n" + _HOSTS
                                   + "steps:\n  - {host: client, start: [cat], as: c1}\n"
                                   + "  - {host: client, send: c1, text: " + "t" * 70_000 + "}\n")
    # 600 steps (at most 500)
    files["steps-600.yaml"] = ("name: bad-steps-600\n" + _HOSTS + "steps:\n"
                               + "".join(f"  - {{snapshot: s{i}}}\n" for i in range(600)))
    # 100 000 nested brackets: libyaml would take minutes, then overflow its stack
    files["deep-brackets.yaml"] = "name: bad-deep-brackets\n" + _HOSTS + "story: " + "[" * 100_000 + "]" * 100_000 + "\n"
    # 40 levels of block nesting
    files["deep-blocks.yaml"] = ("name: bad-deep-blocks\n" + _HOSTS + "story:\n"
                                 + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(40)) + "  " * 41 + "end\n")
    # "billion laughs": 1 KB of aliases that expand to 10^9 values
    laughs = ["name: bad-anchor-bomb", _HOSTS.rstrip("\n"), "story:",
              '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    files["anchor-bomb.yaml"] = "\n".join(laughs) + "\nsummary: *a8\n"
    return {name: text.encode() for name, text in files.items()}


def committed() -> list[Path]:
    return sorted(HERE.glob("*.yaml"))


def materialize(dest: Path) -> list[str]:
    """Every bad file (committed and generated) in ``dest``; their names, sorted."""
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for f in committed():
        shutil.copyfile(f, dest / f.name)
        names.append(f.name)
    for name, data in generated().items():
        (dest / name).write_bytes(data)
        names.append(name)
    if len(set(names)) != len(names):
        raise SystemExit("a generated file has the name of a committed one")
    return sorted(names)


def read_golden(path: Path = GOLDEN) -> dict[str, str]:
    """File name -> its golden line."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out[line.split(": ", 1)[0]] = line
    return out


@contextmanager
def inside(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def error_line(name: str) -> str:
    """The LabError line for a bad file in the current directory (as the CLI run there prints it)."""
    from tcplab.model import LabError, load_lab
    from tcplab.paths import known_images

    try:
        load_lab(Path(name), [], known_images())
    except LabError as e:
        return str(e)
    raise AssertionError(f"{name}: accepted, but it is a bad lab file")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        names = materialize(Path(tmp))
        with inside(Path(tmp)):
            lines = [error_line(n) for n in names]
    GOLDEN.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    print(f"{GOLDEN.relative_to(ROOT)}: {len(lines)} bad files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
