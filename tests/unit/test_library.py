"""The library's bookkeeping, with no engine: every shipped lab is in the README's library list with its
summary, in `lab ls`, cites its sources, and has its deliberate faults declared (tests/data/library_faults.yaml)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tcplab.cli.app import app
from tcplab.model import load_lab

from ..conftest import ROOT, shipped_labs
from ..library import declared, fault_id, put_fault

LABS = shipped_labs()
LINE = re.compile(r"^- `lab run ([a-z][a-z0-9_-]*)` - (.+?)( \*\(coming\)\*)?$")


def readme_library() -> dict[str, tuple[str, bool]]:
    """Lab -> (its line's text, marked coming) from the README's library list."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- library:", 1)[1].split("<!-- library end -->", 1)[0]
    out: dict[str, tuple[str, bool]] = {}
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        m = LINE.match(line)
        assert m, f"README library line is not '- `lab run NAME` - summary': {line}"
        assert m.group(1) not in out, f"{m.group(1)} is listed twice in the README's library"
        out[m.group(1)] = (m.group(2), bool(m.group(3)))
    return out


def test_the_readme_library_lists_every_shipped_lab_with_its_summary_and_nothing_else() -> None:
    listed = readme_library()
    for name, path in LABS.items():
        lab, _ = load_lab(path)
        assert name in listed, f"{name} ships but the README's library does not list it: add '- `lab run {name}` - " \
                               f"{lab.summary}'"
        text, coming = listed[name]
        assert not coming, f"{name} ships: drop its *(coming)* mark in the README's library"
        assert text == lab.summary, f"README's line for {name} is not its summary ({lab.summary!r})"
    for name, (_, coming) in listed.items():
        assert name in LABS or coming, f"the README's library lists {name}, which does not ship (labs/{name}.yaml " \
                                       "or labs/{name}/lab.yaml); mark it *(coming)* or drop it"


@pytest.mark.parametrize("name", LABS)
def test_a_shipped_lab_is_found_by_its_name_and_has_a_one_line_summary(name: str) -> None:
    lab, _ = load_lab(LABS[name])
    assert lab.name == name, f"{LABS[name]} calls itself {lab.name}: `lab run {name}` would run a lab named otherwise"
    assert lab.summary and "\n" not in lab.summary


@pytest.mark.parametrize("name", LABS)
def test_a_shipped_lab_cites_the_sources_of_its_facts(name: str) -> None:
    lab, _ = load_lab(LABS[name])
    ref = lab.reference
    assert ref is not None and ref.sources and ref.facts, f"{name}: give a reference block (sources, facts)"


def test_lab_ls_shows_every_shipped_lab_with_its_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./labs here: the shipped labs only
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # `lab ls` lists labs without an engine
    got = CliRunner().invoke(app, ["ls", "--json"])
    assert got.exit_code == 0, got.output
    listed = {item["name"]: item["summary"] for item in json.loads(got.output)["labs"]}
    for name, path in LABS.items():
        assert listed.get(name) == load_lab(path)[0].summary, name
    plain = CliRunner().invoke(app, ["ls"]).output.splitlines()
    for name, path in LABS.items():
        summary = load_lab(path)[0].summary
        assert any(line.split(None, 1) == [name, summary] for line in plain), (name, plain)


def test_every_shipped_lab_declares_its_deliberate_faults() -> None:
    entries = declared()
    assert sorted(entries) == sorted(LABS), "tests/data/library_faults.yaml and labs/ differ: an entry per shipped lab"
    for name, entry in entries.items():
        assert set(entry) <= {"sets", "faults"}, name
        assert entry.get("faults"), f"{name}: declare at least one deliberate fault"
        for fault in entry["faults"]:
            assert set(fault) == {"expect", "change", "message"} and fault["message"], fault_id(name, fault)


@pytest.mark.parametrize("name,fault", [(n, f) for n, e in declared().items() for f in e["faults"]],
                         ids=lambda x: x if isinstance(x, str) else x["expect"])
def test_each_fault_makes_a_valid_lab_that_differs_from_the_shipped_one(name: str, fault: dict, tmp_path: Path) -> None:
    """The fault names a field the expectation has and changes it; the lab with it is still a valid lab."""
    if LABS[name].name == "lab.yaml":  # a lab directory: its Dockerfile is beside it, as build: needs
        shutil.copytree(LABS[name].parent, tmp_path / name)
        path = tmp_path / name / "lab.yaml"
    else:
        path = tmp_path / "lab.yaml"
    data = yaml.safe_load(LABS[name].read_text())
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for host in data["hosts"].values():  # a build context is beside the lab file: beside the copy too
        build = host.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        if context and not (tmp_path / context).exists():
            shutil.copytree(LABS[name].parent / context, tmp_path / context)  # a link would lead out: refused
    put_fault(path, fault)
    faulty, _ = load_lab(path)
    shipped, _ = load_lab(LABS[name])
    before = next(e for e in shipped.expect if e.name == fault["expect"])
    after = next(e for e in faulty.expect if e.name == fault["expect"])
    assert before != after and [e for e in shipped.expect if e != before] == [e for e in faulty.expect if e != after]


def test_an_isolated_run_keeps_a_fixed_address_in_its_new_subnet(tmp_path: Path) -> None:
    from ..conftest import isolated

    path = tmp_path / "lab.yaml"
    path.write_text("name: x\nnetwork: {subnet: 10.9.8.0/24}\nhosts:\n  a: {image: tcplab/client, ip: 10.9.8.40}\n"
                    "  b: {image: tcplab/client}\n")
    sets = isolated("x", path)
    subnet = sets[1].split("=", 1)[1]
    assert sets[0].startswith("name=x-") and sets[2] == f"hosts.a.ip={subnet.rsplit('.', 1)[0]}.40" and len(sets) == 3
    lab, _ = load_lab(path, sets)
    assert str(lab.host_ip("a")).endswith(".40") and lab.name != "x"
