"""Where a lab is found: a path, a lab directory, ./labs of the current directory, the shipped labs."""
from __future__ import annotations

from pathlib import Path

import pytest

import tcplab.paths as paths
from tests.conftest import lab_cmd

LAB = "name: {name}\nsummary: {summary}\nhosts:\n  a: {{image: tcplab/client}}\n"


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shipped labs/ (one file, one directory) and a working directory with labs/ of its own."""
    shipped = tmp_path / "home" / "labs"
    (shipped / "dirlab").mkdir(parents=True)
    (shipped / "plain.yaml").write_text(LAB.format(name="plain", summary="shipped plain"))
    (shipped / "dirlab" / "lab.yaml").write_text(LAB.format(name="dirlab", summary="shipped dir"))
    (shipped / "notalab").mkdir()  # a directory without lab.yaml is no lab
    work = tmp_path / "work"
    (work / "labs" / "mine").mkdir(parents=True)
    (work / "labs" / "mine" / "lab.yaml").write_text(LAB.format(name="mine", summary="my dir lab"))
    (work / "labs" / "plain.yml").write_text(LAB.format(name="plain", summary="my plain, shadowing"))
    monkeypatch.setattr(paths, "LABS_DIR", shipped)
    monkeypatch.chdir(work)
    return tmp_path


def test_a_name_finds_the_working_directorys_labs_first_then_the_shipped_ones(places: Path) -> None:
    assert paths.lab_file("mine") == Path("labs/mine/lab.yaml")
    assert paths.lab_file("plain") == Path("labs/plain.yml")
    assert paths.lab_file("dirlab") == places / "home" / "labs" / "dirlab" / "lab.yaml"
    assert paths.lab_file("notalab") is None and paths.lab_file("nothing") is None


def test_a_path_names_a_file_or_a_lab_directory(places: Path) -> None:
    assert paths.lab_file("labs/mine") == Path("labs/mine/lab.yaml")
    assert paths.lab_file(str(places / "home" / "labs" / "dirlab")) == places / "home" / "labs" / "dirlab" / "lab.yaml"
    assert paths.lab_file("labs/plain.yml") == Path("labs/plain.yml")
    assert paths.lab_file("labs/none.yaml") is None
    assert paths.lab_file(str(places / "home" / "labs" / "notalab")) is None


def test_all_labs_lists_each_name_once_local_first(places: Path) -> None:
    got = [(e.name, e.shipped) for e in paths.all_labs()]
    assert got == [("mine", False), ("plain", False), ("dirlab", True)]


def test_lab_ls_from_another_directory_lists_local_and_shipped_labs(tmp_path: Path) -> None:
    (tmp_path / "labs" / "svc").mkdir(parents=True)
    (tmp_path / "labs" / "svc" / "lab.yaml").write_text(LAB.format(name="svc", summary="a service of mine"))
    res = lab_cmd("ls", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[0] == "svc" and "(labs/svc/lab.yaml)" in lines[0]
    assert any(line.split()[0] == "closewait" for line in lines)
    res = lab_cmd("validate", "svc", "closewait", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("labs/svc/lab.yaml: ok (svc:")


def test_a_directory_without_a_lab_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = lab_cmd("validate", "empty/", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == "lab: empty/: no lab.yaml in this directory\n"


def test_a_name_finds_a_lab_directory_of_the_current_one_before_a_shipped_lab(places: Path) -> None:
    (places / "work" / "dirlab").mkdir()
    assert paths.lab_file("dirlab") == places / "home" / "labs" / "dirlab" / "lab.yaml"  # no lab.yaml in it yet
    (places / "work" / "dirlab" / "lab.yaml").write_text(LAB.format(name="dirlab", summary="mine"))
    assert paths.lab_file("dirlab") == Path("dirlab/lab.yaml")
    assert paths.lab_file("mine") == Path("labs/mine/lab.yaml")  # ./labs comes first
