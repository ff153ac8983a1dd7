"""The published facts of a lab (its ``reference:`` block) beside one run's verdicts for them.

Each fact is checked by the expectations it names: it held when every one of them held, failed when one
failed (the run, on this kernel, differs from the source), error when one could not be judged, and is
unchecked when the run has no verdict for them (``lab up`` judges nothing). Its kernel note is said with
the values the run recorded in run.json (``{kernel}``, ``{sysctl:NAME}``, ``{sysctl:NAME@HOST}``).
Pure: the lab, result.json and run.json in, plain values out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...model import Lab
from ...model.reference import Fact, Source, placeholders
from ...observe.kernel import RELEASE
from ...runfiles.result import ResultDocument, VerdictRecord
from ...runfiles.run_info import RunInfo

HELD, FAILED, ERROR, UNCHECKED = "held", "failed", "error", "unchecked"
NOT_RECORDED = "not recorded"


@dataclass
class FactVerdict:
    """One expectation that checks a fact, as this run judged it."""
    name: str
    status: str  # held, failed, error; unchecked: the run has no verdict for it
    message: str = ""
    expected: str = ""
    seen: str = ""


@dataclass
class FactCheck:
    says: str
    source: Source | None
    verdicts: list[FactVerdict]
    kernel: str = ""  # the kernel note with this run's values in place of its placeholders
    status: str = UNCHECKED

    @property
    def differs(self) -> bool:
        return self.status == FAILED


@dataclass
class KernelRead:
    """What the run read of the kernel the facts depend on."""
    release: str
    sysctls: list[tuple[str, str]] = field(default_factory=list)  # (sysctl, its value or values per host)


def kernel_release(info: RunInfo) -> str:
    """``uname -r`` as a host read it (its ``kernel.osrelease``), else as the engine reports it; "" when the
    run recorded neither."""
    table = info.get("sysctls")
    for values in (table.values() if isinstance(table, dict) else []):
        if isinstance(values, dict) and isinstance(values.get(RELEASE), str) and values[RELEASE]:
            return str(values[RELEASE])
    engine = info.get("engine")
    return str(engine.get("kernel") or "") if isinstance(engine, dict) else ""


def sysctl_value(info: RunInfo, name: str, hosts: list[str], host: str | None = None) -> str:
    """A sysctl's value as the run read it: in ``host``, else in every host (one value when they agree,
    ``server 1, client 0`` when not); "not recorded" when no host recorded it."""
    table = info.get("sysctls")
    table = table if isinstance(table, dict) else {}

    def of(h: str) -> str | None:
        values = table.get(h)
        value = values.get(name) if isinstance(values, dict) else None
        return str(value) if value is not None else None

    if host is not None:
        return of(host) or NOT_RECORDED
    seen = {h: v for h in hosts if (v := of(h)) is not None}
    if not seen:
        return NOT_RECORDED
    if len(set(seen.values())) == 1:
        return next(iter(seen.values()))
    return ", ".join(f"{h} {v}" for h, v in seen.items())


def kernel_note(text: str, info: RunInfo, hosts: list[str]) -> str:
    """A fact's kernel note with the run's values in place of its placeholders."""
    out = text
    for p in placeholders(text):
        value = (kernel_release(info) or "an unrecorded kernel") if p.kernel else \
            sysctl_value(info, p.sysctl, hosts, p.host)
        out = out.replace(p.text, value, 1)
    return out


def _verdicts(result: ResultDocument | None) -> dict[str, VerdictRecord]:
    items = (result or {}).get("expectations") or []
    return {str(v.get("name")): v for v in items if isinstance(v, dict)}


def _status(v: VerdictRecord) -> str:
    return str(v.get("status") or (HELD if v.get("held") else FAILED))  # an older result.json has held only


def fact_status(statuses: list[str]) -> str:
    """The fact's verdict from its expectations': one failed makes it differ; one unjudged leaves it open."""
    for s in (FAILED, ERROR, UNCHECKED):
        if s in statuses:
            return s
    return HELD if statuses else UNCHECKED


def check_fact(fact: Fact, lab: Lab, verdicts: dict[str, VerdictRecord], info: RunInfo) -> FactCheck:
    ref = lab.reference
    rows = []
    for name in fact.expect:
        v = verdicts.get(name)
        if v is None:
            rows.append(FactVerdict(name, UNCHECKED))
        else:
            rows.append(FactVerdict(name, _status(v), str(v.get("message") or ""), str(v.get("expected") or ""),
                                    str(v.get("seen") or "")))
    return FactCheck(fact.says, ref.source(fact.source) if ref is not None else None, rows,
                     kernel_note(fact.kernel, info, list(lab.hosts)) if fact.kernel else "",
                     fact_status([r.status for r in rows]))


def published_facts(lab: Lab | None, result: ResultDocument | None, info: RunInfo) -> list[FactCheck]:
    """Every fact of the lab's reference block, in order, with this run's verdicts; [] for a lab with none."""
    if lab is None or lab.reference is None:
        return []
    verdicts = _verdicts(result)
    return [check_fact(f, lab, verdicts, info) for f in lab.reference.facts]


def kernel_read(lab: Lab | None, info: RunInfo) -> KernelRead:
    """The kernel release and every sysctl the lab depends on, as the run read them."""
    names = lab.sysctls_read() if lab is not None else []
    hosts = list(lab.hosts) if lab is not None else []
    return KernelRead(kernel_release(info), [(n, sysctl_value(info, n, hosts)) for n in names])


def source_line(source: Source | None) -> str:
    """A source in one line of text: title, author, year (for the terminal and junit.xml)."""
    if source is None:
        return ""
    by = ", ".join(x for x in (source.author, str(source.year) if source.year else None) if x)
    where = f" {source.url}" if source.url else (f" ({source.note})" if source.note else "")
    return f"“{source.title}”" + (f" ({by})" if by else "") + where


def cited_for(lab: Lab | None, expectation: str) -> list[str]:
    """What the terminal says under a failed expectation: each fact it checks, with its source."""
    if lab is None or lab.reference is None:
        return []
    return [f"“{f.says}” - {source_line(lab.reference.source(f.source))}"
            for f in lab.reference.facts_checked_by(expectation)]
