"""A lab's reference block: the published sources of its story, and which expectation checks each fact.

A lab is held to facts somebody published. The block names the sources (title, author, address), states
each fact as its source says it, names the expectations of the lab that check it, and says what in the
kernel the fact depends on, with the values this run read (``{sysctl:NAME}``, ``{kernel}``). The report
renders every fact beside this run's verdicts for it; ``lab run`` names the source of a fact that failed.

The short form ``reference: closewait-field-report`` names a comparison written in tcplab
(tcplab/analysis/references) and is ``reference: {report: closewait-field-report}``.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from .strict import Name, Strict

if TYPE_CHECKING:
    from .lab import Lab

# the comparisons written in tcplab (tcplab/analysis/references registers them under these names)
ReportName = Literal["closewait-field-report"]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
# a sysctl a lab reads (never sets): its dotted name, as `sysctl -n` takes it
SYSCTL_READ_PATTERN = r"^(net|kernel|vm)(\.[a-z0-9_]{1,40}){1,6}$"
ReadSysctl = Annotated[str, StringConstraints(pattern=SYSCTL_READ_PATTERN)]


def reference_form(value: object) -> object:
    """``reference: NAME`` is short for ``reference: {report: NAME}``."""
    if isinstance(value, str):
        known = get_args(ReportName)
        if value not in known:
            raise ValueError(f"{value[:40]!r} is not a comparison tcplab knows ({', '.join(known)}); or give the "
                             "block: reference: {sources: [...], facts: [...]}")
        return {"report": value}
    return value


def _web_address(value: str) -> str:
    """An http(s) address with a host: it becomes a link in the report, so no other scheme (javascript:...)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"[\s\x00-\x1f\x7f<>\"]", value):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(f"{shown!r} is not a web address: write one that starts with https:// (or http://)")
    return value


Url = Annotated[str, StringConstraints(max_length=500), AfterValidator(_web_address)]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SYSCTL_PLACEHOLDER = re.compile(r"^sysctl:((?:net|kernel|vm)(?:\.[a-z0-9_]{1,40}){1,6})(?:@([a-z][a-z0-9_-]{0,30}))?$")
PLACEHOLDER_RULE = "{kernel} (the kernel release), {sysctl:NAME} or {sysctl:NAME@HOST}"


@dataclass(frozen=True)
class Placeholder:
    """One ``{...}`` of a fact's kernel note: what the run read that goes there."""
    text: str  # as written, braces included
    sysctl: str = ""  # the sysctl's dotted name; "" for {kernel}
    host: str | None = None  # {sysctl:NAME@HOST}: that host's value; None: every host's

    @property
    def kernel(self) -> bool:
        return not self.sysctl


def placeholders(text: str) -> list[Placeholder]:
    """The placeholders of a kernel note, in order; ValueError naming the first that is not one."""
    out = []
    for m in _PLACEHOLDER.finditer(text):
        inner = m.group(1).strip()
        if inner == "kernel":
            out.append(Placeholder(m.group(0)))
            continue
        s = _SYSCTL_PLACEHOLDER.match(inner)
        if s is None:
            shown = m.group(0) if len(m.group(0)) <= 40 else m.group(0)[:37] + "..."
            raise ValueError(f"{shown} is not a placeholder: write {PLACEHOLDER_RULE}")
        out.append(Placeholder(m.group(0), s.group(1), s.group(2)))
    return out


def _note(value: str) -> str:
    placeholders(value)
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class Source(Strict):
    """A published write-up the lab's facts come from."""
    id: Name = Field(description="How the facts name it (`source: bernat`): a short name, unique in the lab.")
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)] = Field(
        description="Its title, as published.")
    author: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Who wrote it: a person or an organisation.")
    url: Url | None = Field(None, description="Where to read it: an `https://` (or `http://`) address; the "
                                              "report links to it.")
    year: Annotated[int, Field(ge=1970, le=2100)] | None = Field(None, description="The year it was published.")
    note: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = Field(
        None, description="Where in it the facts are (a section), or how to find a source with no address.")


class Fact(Strict):
    """One published fact, and the expectations of this lab that check it."""
    expect: Annotated[list[Name], BeforeValidator(_one_or_many), Field(min_length=1, max_length=20)] = Field(
        description="The expectation that checks the fact (its `name`), or a list of them: the fact holds "
                    "in a run when every one of them holds.")
    says: Text = Field(description="The fact, as the source states it (a sentence or two).")
    source: Name = Field(description="The `id` of the source that states it, one of `reference.sources`.")
    kernel: Annotated[Text, AfterValidator(_note)] | None = Field(
        None, description="What the fact depends on in the kernel, said with the values this run read: "
                          "`{kernel}` is the kernel release (uname -r), `{sysctl:NAME}` a sysctl's value in "
                          "the hosts (listed in `reference.sysctls` or set by a host's `sysctls`), "
                          "`{sysctl:NAME@HOST}` its value in one host. The report and run.json hold the values.")


class LabReference(Strict):
    """The `reference:` block: the published sources of the lab's story and the facts its expectations check."""
    report: ReportName | None = Field(
        None, description="A comparison written in tcplab that the report renders beside the run: "
                          "`closewait-field-report` (the closewait field report, line by line).")
    sources: Annotated[list[Source], Field(max_length=20)] = Field(
        [], description="The published write-ups the facts come from.")
    facts: Annotated[list[Fact], Field(max_length=100)] = Field(
        [], description="The published facts this lab reproduces, each with the expectations that check it; "
                        "the report's \"Published facts\" section shows each with this run's verdict.")
    sysctls: Annotated[list[ReadSysctl], Field(max_length=32)] = Field(
        [], description="Sysctls the facts depend on (`net.ipv4.tcp_syn_linear_timeouts`): each is read in every "
                        "host as the run starts and recorded in run.json (`sysctls`), beside those tcplab "
                        "always reads; a kernel that lacks one records none.")

    def source(self, source_id: str) -> Source | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def facts_checked_by(self, expectation: str) -> list[Fact]:
        """The facts an expectation checks (those that name it)."""
        return [f for f in self.facts if expectation in f.expect]


def reference_problems(lab: "Lab") -> list[tuple[str, str]]:
    """(field, what is wrong) for each rule the block breaks that pydantic cannot see: a source id used twice, a
    fact naming a source the block does not list or an expectation the lab does not have, a kernel note naming
    a host the lab does not have or a sysctl the run does not read. The loader says the first."""
    ref = lab.reference
    if ref is None:
        return []
    out: list[tuple[str, str]] = []
    ids: list[str] = []
    for i, src in enumerate(ref.sources):
        if src.id in ids:
            out.append((f"reference.sources.{i}.id", f"source id '{src.id}' is used twice"))
        ids.append(src.id)
    expectations = [e.name for e in lab.expect]
    read = set(lab.sysctls_read())
    for i, fact in enumerate(ref.facts):
        where = f"reference.facts.{i}"
        if fact.source not in ids:
            known = f"sources: {', '.join(ids)}" if ids else "reference.sources lists none"
            out.append((f"{where}.source", f"no source '{fact.source}' ({known})"))
        for j, name in enumerate(fact.expect):
            if name not in expectations:
                at = f"{where}.expect" + (f".{j}" if len(fact.expect) > 1 else "")
                out.append((at, f"no expectation '{name}' in this lab ({_names_hint(name, expectations)})"))
        for p in placeholders(fact.kernel or ""):
            if p.host is not None and p.host not in lab.hosts:
                out.append((f"{where}.kernel", f"{p.text}: unknown host '{p.host}' (hosts: {', '.join(lab.hosts)})"))
            if p.sysctl and p.sysctl not in read:
                out.append((f"{where}.kernel", f"{p.text}: the run does not read {p.sysctl}: list it in "
                                               "reference.sysctls"))
    return out


def _names_hint(name: str, names: list[str]) -> str:
    """A close name, else the first few names, for a message that stays one short line."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not names:
        return "it has none"
    return "expectations: " + ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
