"""The build backend: the wheel carries the package, the shipped labs and the image contexts; an sdist
builds the same wheel; RECORD is right; an editable wheel names the checkout."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT


def backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tcplab_build", ROOT / "build_backend" / "tcplab_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entries(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_the_wheel_carries_labs_and_images_and_a_true_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    b = backend()
    assert b.get_requires_for_build_wheel() == []  # nothing to download to build
    name = b.build_wheel(str(tmp_path))
    files = entries(tmp_path / name)
    for top, inside in (("labs", "tcplab/_data/labs"), ("images", "tcplab/_data/images")):
        shipped = {p.relative_to(ROOT / top).as_posix() for p in (ROOT / top).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        assert {n.removeprefix(inside + "/") for n in files if n.startswith(inside + "/")} == shipped
    assert {"tcplab/report/templates/report.html.j2", "tcplab/cli/app.py", "tcplab/cli/starter.yaml"} <= set(files)
    assert not [n for n in files if n.endswith(".pyc")]
    info = name.removesuffix("-py3-none-any.whl") + ".dist-info"
    assert "lab = tcplab.cli:main" in files[f"{info}/entry_points.txt"].decode()
    assert "Requires-Dist: pydantic>=2.5" in files[f"{info}/METADATA"].decode()
    record = files[f"{info}/RECORD"].decode().splitlines()
    assert len(record) == len(files)
    for line in record:
        path, digest, size = line.rsplit(",", 2)
        if path.endswith("RECORD"):
            continue
        want = base64.urlsafe_b64encode(hashlib.sha256(files[path]).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={want}" and int(size) == len(files[path]), path
    with zipfile.ZipFile(tmp_path / name) as z:
        mode = z.getinfo("tcplab/_data/images/common/labrun").external_attr >> 16
    assert mode & 0o111, "an image's scripts stay executable"


def test_an_sdist_builds_the_same_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = backend()
    monkeypatch.chdir(ROOT)
    direct = entries(tmp_path / b.build_wheel(str(tmp_path)))
    sdist = tmp_path / "sdist"
    sdist.mkdir()
    with tarfile.open(sdist / b.build_sdist(str(sdist))) as tar:
        tar.extractall(sdist, filter="data")
    (top,) = [p for p in sdist.iterdir() if p.is_dir()]
    assert (top / "PKG-INFO").is_file()
    monkeypatch.chdir(top)
    again = tmp_path / "again"
    again.mkdir()
    assert entries(again / b.build_wheel(str(again))) == direct


def test_an_editable_wheel_puts_the_checkout_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    files = entries(tmp_path / backend().build_editable(str(tmp_path)))
    (pth,) = [n for n in files if n.endswith(".pth")]
    assert files[pth].decode().strip() == str(ROOT)
    assert not [n for n in files if n.startswith("tcplab/")]
