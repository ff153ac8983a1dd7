"""The story's programs as events: each one's start, exit and output, in ``programs.jsonl``.

A story program is a host's own program (``hosts.X.program``) or one a ``start`` step runs. labrun
(images/common/labrun) starts it under a small watcher that appends ``PID STATUS TIME`` to
``/var/log/lab/NAME.exit`` the moment the program ends (STATUS as the shell reports it: 128+N for
signal N); its output goes to ``/var/log/lab/NAME.log``. This module makes the events of
``programs.jsonl`` (its schema, reader and writer are :mod:`tcplab.runfiles.programs`) from those files,
and reads them back as one :class:`ProgramRun` per program.

Exits, outputs and ``running`` are written at collection (``lab down``, the end of ``lab run``), from
the files labrun left; the times are those the files carry. Lines are in the order they were written,
not in time order.
"""
from __future__ import annotations

import re
import signal as _signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..rundir import RunDir
from ..runfiles import programs as program_events
from ..runfiles.programs import ExitEvent, OutputEvent, ProgramEvent, RunningEvent, StartEvent

if TYPE_CHECKING:
    from ..backend.base import Backend, ExecResult

LOG_DIR = "/var/log/lab"  # in the host: where labrun writes each program's output and exit
EXIT_SUFFIX = ".exit"
LOG_SUFFIX = ".log"


def signal_name(status: int | None) -> str | None:
    """TERM for 143: the name of the signal a shell status above 128 stands for, else None."""
    if status is None or not 128 < status < 128 + 65:
        return None
    try:
        return _signal.Signals(status - 128).name.removeprefix("SIG")
    except ValueError:
        return None


def describe_status(status: int | None) -> str:
    """``status 1``; ``status 143 (SIGTERM)``."""
    if status is None:
        return "no exit status"
    sig = signal_name(status)
    return f"status {status}" + (f" (SIG{sig})" if sig else "")


def parse_exit_file(text: str) -> list[tuple[int, int, float]]:
    """``(pid, status, time)`` for each line labrun's watcher wrote; lines cut by a crash are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            out.append((int(parts[0]), int(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return out


def record_start(rd: RunDir, host: str, name: str, pid: int | None, argv: list[str], step: int | None,
                 at: float) -> None:
    program_events.append(rd, [StartEvent(event="start", host=host, name=name, pid=pid, argv=list(argv), step=step,
                                          time=at)])


def record_collected(rd: RunDir, host: str, files: dict[str, bytes], at: float) -> None:
    """The exits, the outputs and what still runs, from the copy of a host's /var/log/lab (``files``:
    name -> content) at collection. Exits already recorded are not written again."""
    events = [e for _, e in program_events.read(rd)]
    started = {(e["name"], e.get("pid")) for e in events if e["event"] == "start" and e.get("host") == host}
    recorded = {(e["name"], e.get("pid")) for e in events if e["event"] == "exit" and e.get("host") == host}
    ended: set[tuple[str, int | None]] = set()
    new: list[ProgramEvent] = []
    for fname, data in sorted(files.items()):
        if not fname.endswith(EXIT_SUFFIX) or "/" in fname:
            continue
        name = fname[: -len(EXIT_SUFFIX)]
        for pid, status, t in parse_exit_file(data.decode("utf-8", "replace")):
            ended.add((name, pid))
            if (name, pid) not in recorded:
                new.append(ExitEvent(event="exit", host=host, name=name, pid=pid, status=status,
                                     signal=signal_name(status), time=t))
    for prog, started_pid in sorted(started, key=lambda k: (k[0], k[1] or 0)):
        if (prog, started_pid) not in ended:
            new.append(RunningEvent(event="running", host=host, name=prog, pid=started_pid, time=at))
    for fname, data in sorted(files.items()):
        if not fname.endswith(LOG_SUFFIX) or "/" in fname:
            continue
        name = fname[: -len(LOG_SUFFIX)]
        path = rd.program_log(host, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        new.append(OutputEvent(event="output", host=host, name=name, file=str(path.relative_to(rd.path)),
                               bytes=len(data),
                               lines=data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0), time=at))
    program_events.append(rd, new)


# --- a running program's output -----------------------------------------------------------------

def output_search(pattern: str, text: str) -> re.Match[str] | None:
    """How ``ready.log`` and the ``program`` expectation's ``output`` look at a program's output: Python's
    re, searched anywhere, with ``^`` and ``$`` at each line's ends."""
    return re.search(pattern, text, re.MULTILINE)


def last_lines(text: str, n: int = 3, width: int = 120) -> str:
    """``its last lines: "a" | "b"``, on one line, for a message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-n:]
    if not lines:
        return "it printed nothing"
    shown = [re.sub(r"[\x00-\x1f\x7f]", "?", ln if len(ln) <= width else ln[: width - 3] + "...") for ln in lines]
    return f"its last line{'s' if len(shown) > 1 else ''}: " + " | ".join(f'"{ln}"' for ln in shown)


class ProgramOutput:
    """A running program's output, read from its host as it grows: each read asks for the lines not yet
    complete (``tail -n +K``), so a chatty program costs no more per poll than a quiet one."""
    KEEP = 1 << 20  # characters of output kept to search

    def __init__(self, run: Callable[[list[str]], "ExecResult"], name: str) -> None:
        self._run = run
        self.path = f"{LOG_DIR}/{name}{LOG_SUFFIX}"
        self.complete_lines = 0
        self.text = ""  # the complete lines read (the last KEEP characters of them)
        self.partial = ""  # the last line, still without its newline
        self.read = False

    def poll(self) -> None:
        res = self._run(["tail", "-n", f"+{self.complete_lines + 1}", self.path])
        self.read = True
        if res.exit_code != 0:
            return  # no output yet: labrun creates the file as the program starts
        done, newline, rest = res.stdout.rpartition("\n")
        if newline:
            self.text = (self.text + done + "\n")[-self.KEEP:]
            self.complete_lines += done.count("\n") + 1
        self.partial = rest

    def search(self, pattern: str) -> bool:
        self.poll()
        return output_search(pattern, self.text + self.partial) is not None

    def last_lines(self) -> str:
        return last_lines(self.text + self.partial)


class ContainerOutput(ProgramOutput):
    """The output of a host's image's own program: its container's log (stdout and stderr), read whole."""

    def __init__(self, backend: "Backend", container: str, name: str) -> None:
        super().__init__(lambda argv: backend.exec(container, argv), name)
        self._backend = backend
        self._container = container
        self.path = f"the log of {container}"

    def poll(self) -> None:
        from ..backend.base import EngineError

        self.read = True
        try:
            text = self._backend.logs(self._container)
        except EngineError:
            return
        done, newline, rest = text.rpartition("\n")
        self.text = (done + newline)[-self.KEEP:]
        self.partial = rest
        self.complete_lines = self.text.count("\n")


def record_container_program(rd: RunDir, host: str, name: str, output: bytes, status: int | None,
                             ended: float | None, at: float) -> None:
    """A host's image's own program at collection: its exit (the container's status, at the container's
    end) or that it still runs, and its output (the container's log). Its PID is its start's, if one was seen."""
    starts = [e for _, e in program_events.read(rd) if e["event"] == "start" and e.get("host") == host
              and e["name"] == name]
    pid = starts[-1].get("pid") if starts else None
    new: list[ProgramEvent] = []
    if status is not None:
        new.append(ExitEvent(event="exit", host=host, name=name, pid=pid, status=status, signal=signal_name(status),
                             time=ended if ended is not None else at))
    else:
        new.append(RunningEvent(event="running", host=host, name=name, pid=pid, time=at))
    path = rd.program_log(host, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(output)
    new.append(OutputEvent(event="output", host=host, name=name, file=str(path.relative_to(rd.path)),
                           bytes=len(output), lines=output.count(b"\n") + (1 if output and not output.endswith(b"\n")
                                                                            else 0), time=at))
    program_events.append(rd, new)


# --- reading ---------------------------------------------------------------------------------

@dataclass
class ProgramRun:
    """One program of the story as the run recorded it (its last start, when a name was started twice)."""
    host: str
    name: str
    pid: int | None = None
    argv: list[str] | None = None
    step: int | None = None
    started: float | None = None  # when it was started; None: no start was recorded
    ended: float | None = None  # when it exited
    status: int | None = None  # its exit status (128+N: signal N)
    running_at: float | None = None  # seen still running at collection, at this time
    output_file: str | None = None  # relative to the run directory
    output_bytes: int | None = None
    line: int | None = None  # programs.jsonl line of its start (or of its first event)
    exit_line: int | None = None

    @property
    def exited(self) -> bool:
        return self.status is not None

    @property
    def signal(self) -> str | None:
        return signal_name(self.status)

    @property
    def collected(self) -> bool:
        """Its end was observed: it exited, or the run saw it still running when it collected."""
        return self.exited or self.running_at is not None


def read_programs(rd: RunDir) -> dict[tuple[str, str], ProgramRun]:
    """Every program of the run by (host, name), from programs.jsonl."""
    runs: dict[tuple[str, str], ProgramRun] = {}
    exits: dict[tuple[str, str, int | None], tuple[int, ExitEvent]] = {}
    later: list[tuple[int, RunningEvent | OutputEvent]] = []
    for n, e in program_events.read(rd):
        key = (str(e.get("host")), e["name"])
        if e["event"] == "start":
            runs[key] = ProgramRun(key[0], key[1], pid=e.get("pid"), argv=e.get("argv"), step=e.get("step"),
                                   started=e.get("time"), line=n)
        elif e["event"] == "exit":
            exits[(key[0], key[1], e.get("pid"))] = (n, e)
        else:
            later.append((n, e))
    for (host, name, pid), (n, x) in exits.items():
        run = runs.get((host, name))
        if run is None:  # no start recorded (a run cut short between the start and its record)
            run = runs[(host, name)] = ProgramRun(host, name, pid=pid, line=n)
        if run.pid is None or run.pid == pid:
            run.pid, run.status, run.ended, run.exit_line = pid, x.get("status"), x.get("time"), n
    for n, o in later:
        run = runs.get((str(o.get("host")), o["name"]))
        if run is None:
            run = runs[(str(o.get("host")), o["name"])] = ProgramRun(str(o.get("host")), o["name"], line=n)
        if o["event"] == "running":
            if (run.pid is None or o.get("pid") == run.pid) and not run.exited:
                run.running_at = o.get("time")
        else:
            run.output_file, run.output_bytes = str(o.get("file") or ""), o.get("bytes")
    return runs
