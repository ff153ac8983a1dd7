"""docs/lab-file.md is what the generator makes of the model, and every field of the lab file says what it is."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from tcplab.model import docs
from tcplab.model.lab import Host, Lab
from tcplab.model.strict import Strict
from tests.conftest import ROOT, lab_cmd

REGENERATE = f"run `{docs.COMMAND}` in the checkout (with .venv's python) and commit docs/lab-file.md"


def test_docs_lab_file_is_what_the_generator_makes() -> None:
    committed = (ROOT / docs.TARGET).read_text(encoding="utf-8")
    assert committed == docs.render(docs.example_files(ROOT)), f"docs/lab-file.md differs from the model: {REGENERATE}"


def test_every_field_of_the_lab_file_has_a_description() -> None:
    problems = docs.field_problems()
    assert not problems, "\n".join(problems)


def test_every_model_and_field_of_the_lab_is_in_the_docs() -> None:
    text = (ROOT / docs.TARGET).read_text(encoding="utf-8")
    for section in docs.sections():
        assert f"## {section.model.__name__}\n" in text
        for name, info in section.model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text, f"{section.model.__name__}.{name}"
    assert "`hosts.NAME.peer`" in text and "`steps[] (wait).wait`" in text  # where each part goes


class _Inner(Strict):
    documented: int = 3
    """A field with its docstring."""
    bare: str | None = None


class _Outer(Strict):
    inner: Annotated[list[_Inner], Field(max_length=4)] = []
    """Inner parts."""
    described: int = Field(1, description="Said in Field.", examples=[7])


def test_a_new_field_needs_only_its_description_and_one_without_is_named() -> None:
    assert docs.field_problems(_Outer) == [
        f"_Inner.bare ({Path(__file__)}) has no description: write a docstring right below it "
        "(or Field(description=...))"]
    text = docs.render([], _Outer)
    assert "| `documented` | integer | `3` | A field with its docstring. | `documented: 3` |" in text
    assert "| `described` | integer | `1` | Said in Field. | `described: 7` |" in text
    assert "| `inner` | list of [_Inner](#_inner) (at most 4 entries) | `[]` | Inner parts. | - |" in text
    assert "Where: `inner[]`." in text


def test_examples_come_from_the_shipped_labs() -> None:
    examples = docs.lab_examples([ROOT / "labs" / "closewait.yaml"])
    assert examples[(Host, "image")] == "tcplab/server"
    assert examples[(Lab, "name")] == "closewait"


def test_lab_docs_lab_file_prints_the_reference() -> None:
    res = lab_cmd("docs", "lab-file")
    assert res.returncode == 0, res.stderr
    assert res.stdout == (ROOT / docs.TARGET).read_text(encoding="utf-8")
