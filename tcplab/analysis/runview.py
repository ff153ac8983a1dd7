"""Everything judging a run reads, loaded once, through the run directory's readers (:mod:`tcplab.runfiles`).

No Docker: a run copied from a CI artifact is judged exactly as it was.
"""
from __future__ import annotations

from pathlib import Path

from ..model import Lab
from ..model.lab import SnapshotStep
from ..observe.programs import ProgramRun, read_programs
from ..observe.timewait import run_records, state_view
from ..observe.tracer import join_connects
from ..rundir import RunDir
from ..runfiles import programs, run_info, snapshots, steps, transitions
from ..runfiles.run_info import RunInfo
from ..runfiles.snapshots import Snapshots
from ..runfiles.steps import StepRecord
from ..runfiles.transitions import TransitionRecord
from .packets import Traffic, load_traffic
from .verdicts import Verdict


class RunView:
    """The run as its expectations are judged: what it recorded, and the verdicts so far (later
    expectations may be timed from earlier ones)."""

    def __init__(self, rd: RunDir, lab: Lab) -> None:
        self.rd = rd
        self.lab = lab
        self.info: RunInfo = run_info.read(rd)
        self.traffic: Traffic = load_traffic(rd, self.info)
        self.hosts: dict[str, str] = dict(self.traffic.hosts) or {h: str(lab.host_ip(h)) for h in lab.hosts}
        self.ip_host = {ip: h for h, ip in self.hosts.items() if ip} | self.traffic.ip_host  # a router's every address
        self.snapshots: Snapshots = snapshots.read(rd)
        self.steps: list[StepRecord] = steps.read(rd)
        self.traced = transitions.exists(rd)  # the tracer left its file (without tracefs it did not run)
        # the state changes, each once: the derived TIME_WAIT records as written at collection, or derived
        # now for a run without them; connect()'s sport 0 joined to its port
        self.transitions: list[TransitionRecord] = join_connects(state_view(run_records(rd)))
        self.programs: dict[tuple[str, str], ProgramRun] = read_programs(rd)
        self.program_events = programs.exists(rd)  # the run wrote programs.jsonl
        self.verdicts: dict[str, Verdict] = {}

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rd.path))
        except ValueError:
            return str(path)

    def name_of(self, ip: str) -> str:
        return self.ip_host.get(ip, ip)

    def stopped_at(self) -> str:
        """Why later snapshots are missing: the step the run stopped at, if it did."""
        for s in self.steps:
            if s.get("outcome") not in (None, "ok"):
                return f"the run stopped at step {s.get('index')} ({s.get('title')}): {s.get('detail')}"
        if len(self.steps) < len(self.lab.steps):
            return f"the run played {len(self.steps)} of {len(self.lab.steps)} steps"
        return f"it is not in {snapshots.NAME}"

    def anchor(self, name: str) -> tuple[float | None, str]:
        """The time of an anchor (earlier expectation, snapshot, step), or None and why not."""
        if name in self.verdicts:
            v = self.verdicts[name]
            if not v.held or v.time is None:
                return None, f"'{name}' did not hold, so there is no moment to count from"
            return v.time, ""
        if name in self.snapshots:
            return float(self.snapshots[name]["time"]), ""
        for s in self.steps:
            if name in (s.get("name"), f"steps.{s.get('index')}"):
                return float(s["start"]), ""
        if any(name == f"steps.{i}" for i in range(len(self.lab.steps))) or name in {
                sn.get("name") for sn in self.steps} or name in snapshot_names(self.lab):
            return None, f"'{name}' was not reached: {self.stopped_at()}"
        return None, f"'{name}' is not an expectation, snapshot or step of this run"

    def anchor_where(self, name: str) -> str:
        """Where to look for an anchor that gave no moment."""
        if name in self.verdicts:
            return f"expectation {name}"
        if name in self.snapshots or name in snapshot_names(self.lab):
            return snapshots.NAME
        return steps.NAME


def snapshot_names(lab: Lab) -> set[str]:
    """The snapshots the lab takes, and ``end``."""
    return {s.snapshot for s in lab.steps if isinstance(s, SnapshotStep)} | {"end"}
