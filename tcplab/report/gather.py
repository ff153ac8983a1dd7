"""Everything a report reads from a run directory, loaded once, tolerant of what is missing.

A run may be finished, still up (captures growing, no ``all.pcapng`` yet),
interrupted, or copied from CI without some files: every artifact is
optional and its absence is something the report says, not an error. Each
file is read by its one reader (:mod:`tcplab.runfiles`); the lab is the
model's, so the report and the analysis under it know the lab's defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.packets import Traffic, load_traffic
from ..model import Lab
from ..observe import timewait
from ..rundir import RunDir
from ..runfiles import images, impaired, lab as lab_file, peer_events, result, retransmits, run_info, snapshots, steps
from ..runfiles.images import Images
from ..runfiles.impaired import Impaired
from ..runfiles.retransmits import RetransmitRecord
from ..runfiles.peer_events import PeerEvent
from ..runfiles.result import ResultDocument
from ..runfiles.run_info import RunInfo
from ..runfiles.snapshots import Snapshots
from ..runfiles.steps import StepRecord
from ..runfiles.transitions import TransitionRecord

LOG_BYTES = 512 * 1024  # read at most this much of each log (its beginning)


@dataclass
class RunData:
    rd: RunDir
    lab: Lab | None  # None: the run has no lab.yaml the model can read (said in ``problems``)
    info: RunInfo
    images: Images
    steps: list[StepRecord]
    snapshots: Snapshots
    transitions: list[TransitionRecord]  # with the derived TIME_WAIT records (tcplab.observe.timewait.run_records)
    result: ResultDocument | None
    logs: dict[str, str]  # file stem in logs/ -> text
    traffic: Traffic
    problems: list[str] = field(default_factory=list)
    peer_events: dict[str, list[PeerEvent]] = field(default_factory=dict)  # logs/peer/<host>.jsonl
    lab_refused: dict[str, Any] = field(default_factory=dict)  # lab.yaml's fields the model refused, as written
    impaired: list[Impaired] = field(default_factory=list)  # logs/impair/<host>.log
    retransmits: list[RetransmitRecord] = field(default_factory=list)  # sockets/retransmits.jsonl

    @property
    def reference(self) -> str:
        """The field report the lab names, known to this tcplab or not."""
        named = self.lab.reference.report if self.lab is not None and self.lab.reference is not None else None
        refused = self.lab_refused.get("reference")
        if isinstance(refused, dict):  # the block form, refused: its report, if it names one
            refused = refused.get("report")
        return str(named or (refused if isinstance(refused, str) else "") or "")

    @property
    def name(self) -> str:
        return str((self.lab.name if self.lab is not None else None) or self.info.get("lab") or self.rd.path.name)


def read_log(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read(LOG_BYTES + 1)
    text = data[:LOG_BYTES].decode("utf-8", "replace")
    if len(data) > LOG_BYTES:
        text += f"\n[… cut at {LOG_BYTES // 1024} KiB: see the file]\n"
    return text


def gather(run_dir: str | Path | RunDir) -> RunData:
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    read = lab_file.read_for_report(rd)
    problems = list(read.problems)
    info = run_info.read(rd)
    logs: dict[str, str] = {}
    if rd.logs_dir.is_dir():
        for p in sorted(rd.logs_dir.glob("*.log")):
            try:
                logs[p.stem] = read_log(p)
            except OSError as e:
                problems.append(f"logs/{p.name}: {e}")
    derives = timewait.derives(timewait.read_records(rd))  # then the packets' reading keeps the segments it reads
    try:
        traffic = load_traffic(rd, info, syn_fin_rst=derives)
    except (OSError, ValueError) as e:
        problems.append(f"captures could not be read: {e}")
        traffic = Traffic([], [], dict(info.get("hosts") or {}))
    return RunData(rd, read.lab, info, images.read(rd), steps.read(rd), snapshots.read(rd),
                   timewait.run_records(rd, traffic.syn_fin_rst),
                   result.read(rd), logs, traffic, problems, peer_events.read(rd), read.refused, impaired.read(rd),
                   retransmits.read(rd))
