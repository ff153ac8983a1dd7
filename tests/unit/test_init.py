"""`lab init [DIR]`: a starter lab for a user's service that the loader accepts as written."""
from __future__ import annotations

from pathlib import Path

import pytest

from tcplab.cli.init_cmd import lab_name_for
from tcplab.model import load_lab
from tests.conftest import lab_cmd


def test_init_writes_a_lab_the_loader_accepts(tmp_path: Path) -> None:
    svc = tmp_path / "svc"
    svc.mkdir()
    (svc / "Dockerfile").write_text("FROM scratch\n")
    res = lab_cmd("init", "svc", "--port", "9100", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "next: lab run svc"
    lab, _ = load_lab(svc / "lab.yaml")
    server = lab.hosts["server"]
    assert lab.name == "svc" and server.build is not None and server.build.context == "."
    assert server.program is not None and server.program.ready is not None and server.program.ready.listen == 9100
    assert lab.hosts["client"].image == "tcplab/client"
    assert [(e.kind, e.state.is_ if e.state else None) for e in lab.expect] == [("state", "CLOSE_WAIT")]
    res = lab_cmd("validate", "svc", cwd=tmp_path)  # by its directory's name, from its parent
    assert res.returncode == 0, res.stderr


def test_init_never_overwrites_a_lab_without_force(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("name: mine\n")
    res = lab_cmd("init", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr == "lab: lab.yaml: exists; not overwritten (--force to replace it)\n"
    assert (tmp_path / "lab.yaml").read_text() == "name: mine\n"
    res = lab_cmd("init", "--force", "--name", "again", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "name: again\n" in (tmp_path / "lab.yaml").read_text()
    assert "has no Dockerfile yet" in res.stdout


@pytest.mark.parametrize("dirname,name", [("svc", "svc"), ("My Service.v2", "my-service-v2"), ("42-api", "api"),
                                          ("___", "my-service"), ("x" * 40, "x" * 31)])
def test_the_lab_name_comes_from_the_directory(tmp_path: Path, dirname: str, name: str) -> None:
    assert lab_name_for(tmp_path / dirname) == name


def test_a_bad_name_is_one_line(tmp_path: Path) -> None:
    res = lab_cmd("init", "--name", "Bad Name", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == "lab: --name 'Bad Name': a lab name is a-z, then a-z 0-9 _ -, up to 31 characters\n"
    assert not (tmp_path / "lab.yaml").exists()
