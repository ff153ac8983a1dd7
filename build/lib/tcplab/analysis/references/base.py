"""What a reference is: its observations lined up against a run, as :class:`Difference` rows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..explainers.base import Finding, RunEvidence


@dataclass
class Difference:
    what: str
    field_report: str
    this_run: str
    why: str

    @property
    def same(self) -> bool:
        return self.field_report == self.this_run


@dataclass(frozen=True)
class Reference:
    name: str  # as a lab file names it
    title: str  # as the report names it: "the closewait field report (CentOS 7, kernel 3.10, Windows 7 telnet)"
    source: str  # where its facts are written down
    compare: Callable[[RunEvidence, list[Finding]], list[Difference]]


REFERENCES: dict[str, Reference] = {}


def register_reference(ref: Reference) -> Reference:
    if ref.name in REFERENCES:
        raise ValueError(f"two references named {ref.name!r}")
    REFERENCES[ref.name] = ref
    return ref


def reference_named(name: str | None) -> Reference | None:
    return REFERENCES.get(name) if name else None
