"""`lab watch` and `lab step`: a live view of a running lab, and letting a stepping `lab up` play its next step.

The view reads the run directory only (:mod:`tcplab.analysis.live`): no host is asked anything, so it may
refresh four times a second while the lab plays. It ends when the run says it is over (run.json), or when
the engine no longer has the run's objects.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import typer

from .common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, die, engine, out

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ..analysis.live import LiveView
    from ..backend.base import Backend
    from ..play.lifecycle import RunningLab
    from ..runfiles.snapshots import Snapshots

FIRST_READ = "read by lab watch"  # the view's own first look at the hosts' tables, before the tracer's changes

REFRESH = 0.2  # seconds between looks at the run directory (and frames)
ENGINE_EVERY = 2.0  # seconds between asking the engine whether the run's objects still exist
STREAM = 14  # lines of the stream shown


def register(app: typer.Typer) -> None:
    """Add `lab watch` and `lab step` to `app`."""
    app.command("watch")(watch)
    app.command("step")(step)


def _age(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{seconds / 60:.0f}m{seconds % 60:02.0f}s"


def render(view: LiveView, name: str, now: float) -> RenderableType:
    """The frame: the sockets of every host, then the latest events."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    snap = (f"last snapshot: {view.snapshot} ({_age(now - view.snapshot_time)} ago)"
            if view.snapshot and view.snapshot_time else "no snapshot yet")
    head = Text(f"{name}: {view.state or 'starting'}  |  {snap}  |  tracer: {view.tracer_seen} changes "
                "(rows: state from the tracer or a snapshot, with its age; queues, timer and owner from the "
                "last snapshot)", style="bold")
    table = Table(expand=False, pad_edge=False, box=None, header_style="bold")
    for col in ("host", "state", "local", "peer", "recv-q", "send-q", "timer", "owner", "from", "age"):
        table.add_column(col, no_wrap=True)
    for r in view.table():
        def q(v: int | None) -> str:
            return "" if v is None else str(v)
        source = r.source + (f" (details: {r.details_from})" if r.details_from and r.details_from != r.source else "")
        table.add_row(r.host, "gone" if r.gone else r.state, f"{r.local[0]}:{r.local[1]}",
                      f"{r.peer[0]}:{r.peer[1] or '*'}", q(r.recv_q), q(r.send_q), r.timer or "", r.owner or "",
                      source, _age(max(0.0, now - r.seen)), style="dim" if r.gone else None)
    t0 = view.started or (view.events[0].ts if view.events else now)
    stream = Text()
    for e in view.events[-STREAM:]:
        style = {"step": "bold cyan", "reset": "bold red", "snapshot": "dim"}.get(e.kind, "")
        stream.append(f"{e.ts - t0:8.3f}s  {e.text}\n", style=style)
    return Group(head, table, Text("events (s since the run began):", style="bold"), stream)


def watch_run(run_dir: str, name: str, run_id: str | None = None, said: list[str] | None = None,
              stop: threading.Event | None = None) -> str:
    """Show the run live until it is over (or ``stop`` is set); what ended it, in a few words. With ``said``,
    the last lines of it (what ``lab up`` says) are shown under the view."""
    from rich.console import Console
    from rich.live import Live

    from ..analysis.live import LiveView
    from ..model import LabError
    from ..rundir import RunDir
    from ..runfiles import lab as lab_file

    rd = RunDir(run_dir)
    try:
        lab = lab_file.read(rd) if rd.exists() else None
    except (LabError, OSError, ValueError):
        lab = None  # the view works without the lab's words
    view = LiveView(rd, lab=lab)
    backend = engine() if run_id is not None else None
    if backend is not None and run_id is not None:
        from ..play.lifecycle import running_labs

        running = running_labs(backend).get(run_id)
        if running is not None:  # listeners on every address have no tracer record: read the tables once
            view.apply_snapshots(read_tables(backend, running))
    next_engine = time.monotonic() + ENGINE_EVERY
    console = Console(highlight=False, stderr=said is not None)  # within lab up, on its stderr like the rest
    why = ""
    def frame() -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        shown = render(view, name, time.time())
        return Group(shown, Text("\n".join(f"lab up: {line}" for line in said[-4:]), style="dim")) if said else shown

    with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
        while True:
            view.update()
            live.update(frame(), refresh=True)
            if stop is not None and stop.is_set():
                why = "lab up is done"
                break
            if view.ended:
                why = f"the lab is {view.state}"
                break
            if backend is not None and time.monotonic() > next_engine:
                from ..play.lifecycle import running_labs

                next_engine = time.monotonic() + ENGINE_EVERY
                if run_id not in running_labs(backend):
                    why = "the lab's containers are gone"
                    break
            time.sleep(REFRESH)  # a frame rate: the run directory's files give no event to wait on
    return why


def read_tables(backend: Backend, r: RunningLab) -> Snapshots:
    """Every running host's socket tables now, as a snapshot of the view's own (one exec per host, once):
    the tracer reports no listener on every address (0.0.0.0 is no host's), so without it a view started
    before the lab's first snapshot would miss them."""
    from ..backend.base import EngineError
    from ..observe.observer import ROLE, SNAPSHOT_ARGV
    from ..observe.sockets import snapshot_tables

    observers = {o.labels.get("tcplab.host", ""): o.name for o in r.objects
                 if o.kind == "container" and o.labels.get("tcplab.role") == ROLE}
    taken = time.time()
    hosts: dict[str, Any] = {}
    for o in r.objects:
        host = o.labels.get("tcplab.host", "")
        if o.kind != "container" or o.labels.get("tcplab.role") != "host":
            continue
        try:
            res = (backend.exec(observers[host], SNAPSHOT_ARGV) if host in observers
                   else backend.exec(o.name, ["labsnap"]))
        except EngineError:
            continue  # not running: the tracer and the lab's snapshots say the rest
        hosts[host] = snapshot_tables(res.stdout, res.stderr, res.exit_code)
    return {FIRST_READ: {"time": taken, "hosts": hosts}} if hosts else {}


def watch(lab_name: str = typer.Argument(..., metavar="LAB")) -> None:
    """A live view of a running lab: each host's sockets (state, queues, timer, owner) and the state changes
    and steps as they happen, from its run directory (the tracer and the snapshots); ends when it goes down."""
    from ..play.lifecycle import find_running

    r = find_running(engine(), lab_name)
    if r is None:
        die(EXIT_BAD_INPUT, f"{lab_name}: lab is not up (lab ls shows what runs)")
    try:
        why = watch_run(r.run_dir, r.lab, r.run)
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    out.print(f"{lab_name}: {why}; the view ends", markup=False)


def step(lab_name: str = typer.Argument(..., metavar="LAB")) -> None:
    """Let a `lab up --step` of the lab play its next step (as Enter in its terminal does)."""
    from ..play.gate import NotStepping, let_go
    from ..play.lifecycle import find_running
    from ..rundir import RunDir

    r = find_running(engine(), lab_name)
    if r is None:
        die(EXIT_BAD_INPUT, f"{lab_name}: lab is not up (lab ls shows what runs)")
    try:
        let_go(RunDir(r.run_dir))
    except NotStepping as e:
        die(EXIT_BAD_INPUT, f"{lab_name}: {e}")
    out.print(f"{lab_name}: next step let go", markup=False)
