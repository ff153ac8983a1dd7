"""The build backend of tcplab (PEP 517 and PEP 660): a wheel, an sdist, an editable install.

Why a backend of its own: the wheel must carry the checkout's top-level ``labs/`` and ``images/``
(the shipped labs and the image build contexts) inside the package, as ``tcplab/_data/labs`` and
``tcplab/_data/images``, so an installed ``lab`` works from any directory (see tcplab/paths.py).
setuptools can only do that with a custom build command, and setuptools older than 70.1 also needs
the ``wheel`` package to make a wheel at all. This backend needs nothing but the standard library:
``pip install .``, ``pipx install .`` and ``pip wheel .`` build with no download (offline too).

The metadata comes from ``pyproject.toml``'s ``[project]`` table: name, version, description, readme,
requires-python, dependencies, optional-dependencies and scripts (what this project uses).
"""
from __future__ import annotations

import base64
import hashlib
import io
import stat
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any, Iterator

PACKAGE = "tcplab"
# the checkout's top-level directories the package carries, and where they go in it
DATA = {"labs": f"{PACKAGE}/_data/labs", "images": f"{PACKAGE}/_data/images"}
# what an sdist holds besides them: enough to build the wheel again
SDIST_TOP = ("pyproject.toml", "README.md", "lab.py", "build_backend", PACKAGE, *DATA)
# zip entries get a fixed time: the same tree gives the same wheel
EPOCH = (1980, 1, 1, 0, 0, 0)


def _project(root: Path) -> dict[str, Any]:
    with open(root / "pyproject.toml", "rb") as f:
        project: dict[str, Any] = tomllib.load(f)["project"]
    return project


def _dist_name(project: dict[str, Any]) -> str:
    return f"{project['name'].replace('-', '_')}-{project['version']}"


def _skipped(rel: Path) -> bool:
    """Files no build carries: bytecode, and a package's _data left by anything but this backend."""
    return "__pycache__" in rel.parts or rel.suffix == ".pyc" or rel.parts[:2] == (PACKAGE, "_data")


def _files(root: Path, top: str) -> Iterator[Path]:
    """The files under ``root/top`` (a directory or a file), sorted, relative to ``root``."""
    base = root / top
    if base.is_file():
        yield Path(top)
        return
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not _skipped(rel):
            yield rel


def metadata(root: Path) -> str:
    """The core metadata (METADATA in a wheel, PKG-INFO in an sdist)."""
    p = _project(root)
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}"]
    if p.get("description"):
        lines.append(f"Summary: {p['description']}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    lines += [f"Requires-Dist: {dep}" for dep in p.get("dependencies", [])]
    for extra, deps in p.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    readme = p.get("readme")
    body = ""
    if isinstance(readme, str) and (root / readme).is_file():
        kind = "text/markdown" if readme.endswith(".md") else "text/plain"
        lines.append(f"Description-Content-Type: {kind}")
        body = (root / readme).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n\n" + body


def _entry_points(project: dict[str, Any]) -> str:
    scripts = project.get("scripts", {})
    return "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())


class _Wheel:
    """A wheel being written: every entry is recorded for RECORD."""

    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records: list[str] = []

    def add(self, arcname: str, data: bytes, executable: bool = False) -> None:
        info = zipfile.ZipInfo(arcname, date_time=EPOCH)
        info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.records.append(f"{arcname},sha256={digest},{len(data)}")

    def add_file(self, arcname: str, path: Path) -> None:
        self.add(arcname, path.read_bytes(), executable=bool(path.stat().st_mode & 0o111))

    def close(self, record: str) -> None:
        self.records.append(f"{record},,")
        self.zip.writestr(zipfile.ZipInfo(record, date_time=EPOCH), "\n".join(self.records) + "\n")
        self.zip.close()


def _build(wheel_directory: str, editable: bool) -> str:
    root = Path.cwd()
    project = _project(root)
    dist = _dist_name(project)
    name = f"{dist}-py3-none-any.whl"
    info = f"{dist}.dist-info"
    wheel = _Wheel(Path(wheel_directory) / name)
    if editable:  # the checkout itself on sys.path: its labs/ and images/ are found beside the package
        wheel.add(f"__editable__.{dist}.pth", f"{root}\n".encode())
    else:
        for rel in _files(root, PACKAGE):
            wheel.add_file(rel.as_posix(), root / rel)
        for top, inside in DATA.items():
            for rel in _files(root, top):
                wheel.add_file(f"{inside}/{rel.relative_to(top).as_posix()}", root / rel)
    wheel.add(f"{info}/METADATA", metadata(root).encode())
    wheel.add(f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: tcplab_build\nRoot-Is-Purelib: true\n"
                               b"Tag: py3-none-any\n")
    wheel.add(f"{info}/entry_points.txt", _entry_points(project).encode())
    wheel.add(f"{info}/top_level.txt", f"{PACKAGE}\n".encode())
    wheel.close(f"{info}/RECORD")
    return name


# --- the hooks pip calls ------------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    """An editable install: a .pth naming the checkout (setuptools' ``editable_mode=compat``, always)."""
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    root = Path.cwd()
    dist = _dist_name(_project(root))
    name = f"{dist}.tar.gz"
    with tarfile.open(Path(sdist_directory) / name, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        def add(arcname: str, data: bytes, mode: int) -> None:
            member = tarfile.TarInfo(f"{dist}/{arcname}")
            member.size, member.mode, member.mtime = len(data), mode, 315532800  # 1980-01-01
            tar.addfile(member, io.BytesIO(data))

        for top in SDIST_TOP:
            if not (root / top).exists():
                continue
            for rel in _files(root, top):
                executable = bool((root / rel).stat().st_mode & 0o111)
                add(rel.as_posix(), (root / rel).read_bytes(), 0o755 if executable else 0o644)
        add("PKG-INFO", metadata(root).encode(), 0o644)
    return name

