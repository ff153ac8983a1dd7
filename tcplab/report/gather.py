"""Everything a report reads from a run directory, loaded once, tolerant of what is missing.

A run may be finished, still up (captures growing, no ``all.pcapng`` yet),
interrupted, or copied from CI without some files: every artifact is
optional and its absence is something the report says, not an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.packets import Traffic, load_traffic
from ..model import LabError, parse_yaml
from ..observe.timewait import run_records
from ..rundir import RunDir

LOG_BYTES = 512 * 1024  # read at most this much of each log (its beginning)


@dataclass
class RunData:
    rd: RunDir
    lab: dict[str, Any]
    info: dict[str, Any]
    images: dict[str, Any]
    steps: list[dict[str, Any]]
    snapshots: dict[str, Any]
    transitions: list[dict[str, Any]]  # with the derived TIME_WAIT records (tcplab.observe.timewait.run_records)
    result: dict[str, Any] | None
    logs: dict[str, str]  # file stem in logs/ -> text
    traffic: Traffic
    problems: list[str] = field(default_factory=list)
    peer_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # logs/peer/<host>.jsonl

    @property
    def name(self) -> str:
        return str(self.lab.get("name") or self.info.get("lab") or self.rd.path.name)


def read_log(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read(LOG_BYTES + 1)
    text = data[:LOG_BYTES].decode("utf-8", "replace")
    if len(data) > LOG_BYTES:
        text += f"\n[… cut at {LOG_BYTES // 1024} KiB: see the file]\n"
    return text


def gather(run_dir: str | Path | RunDir) -> RunData:
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    problems: list[str] = []
    lab: dict[str, Any] = {}
    if rd.lab_yaml.is_file():
        try:
            lab = parse_yaml(rd.lab_yaml.read_text(encoding="utf-8", errors="replace"), "lab.yaml")
        except LabError as e:
            problems.append(f"lab.yaml could not be read: {e}")
    else:
        problems.append("lab.yaml is missing")
    info = rd.read_json(rd.run_json, {}) or {}
    if not isinstance(info, dict):
        info = {}
    images = rd.read_json(rd.images_json, {}) or {}
    snapshots = rd.read_json(rd.snapshots_json, {}) or {}
    result = rd.read_json(rd.result_json, None)
    logs: dict[str, str] = {}
    if rd.logs_dir.is_dir():
        for p in sorted(rd.logs_dir.glob("*.log")):
            try:
                logs[p.stem] = read_log(p)
            except OSError as e:
                problems.append(f"logs/{p.name}: {e}")
    try:
        traffic = load_traffic(rd)
    except (OSError, ValueError) as e:
        problems.append(f"captures could not be read: {e}")
        traffic = Traffic([], [], dict(info.get("hosts") or {}))
    peer_events: dict[str, list[dict[str, Any]]] = {}
    peer_dir = rd.logs_dir / "peer"
    if peer_dir.is_dir():
        for p in sorted(peer_dir.glob("*.jsonl")):
            peer_events[p.stem] = [e for e in rd.read_jsonl(p) if isinstance(e, dict)]
    return RunData(rd, lab if isinstance(lab, dict) else {}, info, images if isinstance(images, dict) else {},
                   list(rd.read_jsonl(rd.steps_jsonl)), snapshots if isinstance(snapshots, dict) else {},
                   run_records(rd), result if isinstance(result, dict) else None,
                   logs, traffic, problems, peer_events)
