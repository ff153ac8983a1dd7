"""``lab.yaml``: the lab as resolved (the lab file as written, ``--set`` applied), read back through the model.

Whoever reads a run reads its lab as a validated :class:`~tcplab.model.Lab`, so every default (a Windows
peer's 120 s FIN_WAIT_2 timer, a tolerance) comes from the model and from nowhere else. Only the project's
own files are not checked again: a run copied from CI is read where no project is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..model import Lab, LabError, validate
from ..model.loader import parse_yaml
from ..model.yamlread import MAX_FILE_BYTES, decode
from ..rundir import RunDir

NAME = "lab.yaml"


def write(rd: RunDir, resolved: dict[str, Any]) -> None:
    """The resolved mapping, as ``lab up`` validated it (defaults are not written: the model has them)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's when present: the same YAML, faster
    rd.lab_yaml.write_text(yaml.dump(resolved, Dumper=dumper, sort_keys=False))


def exists(rd: RunDir) -> bool:
    return rd.lab_yaml.is_file()


def _mapping(rd: RunDir, file: str) -> dict[str, Any]:
    """The file's mapping (LabError naming ``file`` when it cannot be read or parsed)."""
    try:
        with open(rd.lab_yaml, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never more: the file may be anything
    except OSError as e:
        raise LabError(file, "", f"cannot read: {e.strerror}") from None
    return parse_yaml(decode(raw, file), file)


def read(rd: RunDir, display_name: str | None = None) -> Lab:
    """The run's lab; a :class:`LabError` (naming ``display_name``, else the file's path) when it is not one."""
    file = display_name or str(rd.lab_yaml)
    return validate(_mapping(rd, file), file)


@dataclass
class ReportLab:
    """The lab as a report of any run can have it."""
    lab: Lab | None  # None: no lab.yaml, or one that gives no lab at all
    problems: list[str] = field(default_factory=list)  # one line each, for the report
    refused: dict[str, Any] = field(default_factory=dict)  # top-level fields the model refused, as written


def read_for_report(rd: RunDir) -> ReportLab:
    """The lab for a report, which must be written whatever the run holds.

    A lab.yaml today's model refuses (a run of another tcplab, whose steps, expectations or field report this
    one does not know) still gives the rest: each top-level field the model refuses is left out (and kept
    as written in ``refused``), as long as a lab remains. A missing or unreadable file gives no lab."""
    if not exists(rd):
        return ReportLab(None, [f"{NAME} is missing"])
    try:
        data = _mapping(rd, NAME)
    except LabError as e:  # not YAML, or no mapping at all
        return ReportLab(None, [f"{NAME} could not be read: {e}"])
    try:
        return ReportLab(validate(dict(data), NAME))
    except LabError as e:
        first = e
    refused: dict[str, Any] = {}
    error: LabError = first
    while True:
        key = error.field.split(".")[0]
        if key not in data or key in ("name", "hosts"):
            return ReportLab(None, [f"{NAME} could not be read: {first}"], refused)
        refused[key] = data.pop(key)
        try:
            lab = validate(data, NAME)
        except LabError as e:
            error = e
            continue
        return ReportLab(lab, [f"{NAME} could not be read: {first} (the report leaves out its "
                               f"{', '.join(refused)})"], refused)
