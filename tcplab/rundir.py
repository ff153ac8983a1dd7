"""The run directory: the only hand-over between running a lab and understanding it.

Layout (see PRODUCT.md): lab.yaml, images.json, steps.jsonl, capture/,
sockets/, logs/, result.json, junit.xml, report.html. The names live here,
in one place; what the files hold, and the one reader and the one writer of
each, are in :mod:`tcplab.runfiles`.
"""
from __future__ import annotations

import re
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(text: str) -> str:
    """A file name from lab data: no separators, no leading dots, bounded length."""
    name = _SAFE.sub("_", text).lstrip(".") or "_"
    return name[:80]


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    # layout
    @property
    def lab_yaml(self) -> Path: return self.path / "lab.yaml"
    @property
    def images_json(self) -> Path: return self.path / "images.json"
    @property
    def steps_jsonl(self) -> Path: return self.path / "steps.jsonl"
    @property
    def programs_jsonl(self) -> Path:
        """The story programs' events: start, exit, output (see tcplab/observe/programs.py)."""
        return self.path / "programs.jsonl"
    @property
    def capture_dir(self) -> Path: return self.path / "capture"
    @property
    def sockets_dir(self) -> Path: return self.path / "sockets"
    @property
    def logs_dir(self) -> Path: return self.path / "logs"
    @property
    def impair_logs_dir(self) -> Path:
        """An impairment sidecar logs each packet it impairs here, one ``<host>.log`` each."""
        return self.logs_dir / "impair"

    @property
    def peer_logs_dir(self) -> Path:
        """A Windows peer's sidecar writes its events here, one ``<host>.jsonl`` each."""
        return self.logs_dir / "peer"
    @property
    def snapshots_json(self) -> Path: return self.sockets_dir / "snapshots.json"
    @property
    def transitions_jsonl(self) -> Path: return self.sockets_dir / "transitions.jsonl"
    @property
    def retransmits_jsonl(self) -> Path: return self.sockets_dir / "retransmits.jsonl"
    @property
    def merged_pcapng(self) -> Path: return self.capture_dir / "all.pcapng"
    @property
    def run_json(self) -> Path: return self.path / "run.json"
    @property
    def result_json(self) -> Path: return self.path / "result.json"
    @property
    def junit_xml(self) -> Path: return self.path / "junit.xml"
    @property
    def report_html(self) -> Path: return self.path / "report.html"

    @property
    def step_gate(self) -> Path:
        """The FIFO a stepping ``lab up --step`` waits on between steps (``lab step`` writes a line to it)."""
        return self.path / ".step"

    @property
    def agents_dir(self) -> Path:
        """The hosts' agent directories (FIFOs, requests in flight): removed when the lab is down."""
        return self.path / ".agents"

    def agent_dir(self, host: str) -> Path:
        return self.agents_dir / safe_name(host)

    def pcap(self, host: str) -> Path:
        return self.capture_dir / f"{safe_name(host)}.pcap"

    def live_pcap(self, host: str) -> Path:
        """The host's FINs and RSTs as they cross (a pcap file): what the wait steps follow while it runs."""
        return self.capture_dir / f"{safe_name(host)}.live"

    def log(self, host: str) -> Path:
        return self.logs_dir / f"{safe_name(host)}.log"

    def program_log(self, host: str, program: str) -> Path:
        """One program's output alone (``logs/<host>.log`` has every program of the host)."""
        return self.logs_dir / "programs" / f"{safe_name(host)}.{safe_name(program)}.log"

    def table(self, host: str, snapshot: str, tool: str = "netstat") -> Path:
        suffix = "" if tool == "netstat" else f".{safe_name(tool)}"
        return self.sockets_dir / f"{safe_name(host)}-{safe_name(snapshot)}{suffix}.txt"

    def create(self) -> "RunDir":
        for d in (self.path, self.capture_dir, self.sockets_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def exists(self) -> bool:
        return self.lab_yaml.is_file()
