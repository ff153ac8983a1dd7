"""Collecting a run's last artifacts before its objects go: the final snapshot, the programs' logs and
exits, the sidecars' counts and logs, the files of an engine elsewhere, the merged capture.

Also used by `lab down` on a lab another process brought up: everything it needs is in the run
directory and on the engine.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

from ..backend.base import LABEL_ROLE, Backend, EngineError
from ..model import Lab
from ..model.lab import StartStep
from ..observe.capture import COUNTS_LINE, drained, parse_tcpdump_stats, salvage
from ..observe.merge import merge_captures
from ..observe.programs import EXIT_SUFFIX, record_collected, record_container_program
from ..plan import LabPlan, RunNames, SidecarPlan
from ..plan.lab_plan import BLOCK_CAPTURE_ROLE
from ..rundir import RunDir
from ..runfiles import peer_events
from ..runfiles import snapshots as snapshots_file
from ..runfiles import steps as steps_file
from .session import LabRun, Say

def collect(backend: Backend, rd: RunDir, names: RunNames, lab: Lab, say: Say, final_snapshot: bool = True) -> None:
    """Final snapshot, logs, flushed captures, merged pcapng. Best effort: a dead host is skipped."""
    run = LabRun(lab, {}, backend, rd, names, say)
    run.snapshots = snapshots_file.read(rd)
    sidecars = run.plan.sidecars()  # the hosts' and the tracer

    def last_snapshot() -> None:
        if final_snapshot and "end" not in run.snapshots:
            run.step_index = len(lab.steps)
            run.snapshot("end")

    def host_logs(h: str) -> None:
        copied_at = time.time()
        host = lab.hosts[h]
        own = ""
        if host.own_program:  # its image's own program: the container's log and exit are the program's
            container = names.host(h)
            output = backend.logs(container).encode("utf-8", "replace")
            st = backend.state(container)
            ended = st.status in ("exited", "dead")
            own = f"==> {host.program_name} (the container's log) <==\n" + output.decode("utf-8", "replace")
            record_container_program(rd, h, host.program_name or "program", output,
                                     st.exit_code if ended else None, st.finished_at, copied_at)
            if not any(isinstance(s, StartStep) and s.host == h for s in lab.steps):
                rd.log(h).write_text(own)
                return
            # an image built on the project's (labrun inside) whose story programs the steps start: theirs too
        files = run.program_logs(h)
        with open(rd.log(h), "w") as f:
            f.write(own + ("\n" if own and not own.endswith("\n") else ""))
            for fname, data in sorted(files.items()):
                if fname.endswith(EXIT_SUFFIX):
                    continue  # labrun's record of how each program ended: events, below
                f.write(f"==> {fname} <==\n")
                f.write(data.decode("utf-8", "replace"))
                if data and not data.endswith(b"\n"):
                    f.write("\n")
        record_collected(rd, h, files, copied_at)  # exits, outputs, what still runs: programs.jsonl

    stats: dict[str, Any] = {}
    ended_early: set[str] = set()  # hosts whose capture ended before collection (with its host's interface)
    caps: dict[str, list[str]] = {}
    engine: dict[str, str] = {}

    def sidecar_log(sidecar: SidecarPlan) -> None:
        c = sidecar.spec.name
        blocks = sidecar.spec.labels.get(LABEL_ROLE) == BLOCK_CAPTURE_ROLE  # as the plan made it
        if sidecar.role == "capture" and not blocks:
            # tcpdump prints its counts on SIGUSR1 and goes on; its file is complete already (-U: packet by
            # packet), so no sidecar is stopped: teardown removes them, as it removes the tracer and the
            # peers (whose files are written line by line). A stop would cost ~0.3 s of the engine's time.
            backend.signal(c, "SIGUSR1")
            backend.wait_log(c, COUNTS_LINE, timeout=2)
        try:
            # a capture written a block at a time is complete once it is drained and stopped (its counts: the last
            # lines of its log)
            if blocks:
                text, early = stop_capture(backend, c)
                if early and sidecar.host is not None and c == names.sidecar(sidecar.host, "capture"):
                    ended_early.add(sidecar.host)
            else:
                text = backend.logs(c)
        except EngineError:
            return  # never started (no tracefs for a tracer) or already gone: nothing to keep
        (rd.logs_dir / f"{c.removeprefix(f'tcplab-{lab.name}-')}.log").write_text(text)
        if sidecar.role == "capture" and sidecar.host is not None:
            host = sidecar.host
            stats[host] = parse_tcpdump_stats(text)
            if stats[host].get("dropped"):
                say(f"{host}: the capture lost {stats[host]['dropped']} packets (dropped by the kernel): "
                    "expectations that need them will be errors")

    def engine_facts() -> None:
        engine.update(_safe_info(backend))
        for c in [spec.name for spec in run.plan.containers()]:
            try:
                caps[c] = backend.capabilities(c)
            except EngineError:
                pass

    def best_effort(what: str, fn: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            try:
                fn()
            except EngineError as e:
                say(f"{what}: {e}")
        return call

    # none of these depends on another: the last snapshot, logs, capture counts and capabilities go at once
    run._all([best_effort("final snapshot incomplete", last_snapshot), engine_facts]
             + [best_effort(f"logs of {s.spec.name}", partial(sidecar_log, s)) for s in sidecars]
             + [best_effort(f"logs of {h}", partial(host_logs, h)) for h in lab.hosts])
    if not backend.shares_files:
        best_effort("copying the artifacts out", lambda: copy_out(backend, rd, run.plan))()
    for h in sorted(ended_early):
        if (n := salvage(rd.pcap(h), rd.live_pcap(h))):
            say(f"{h}: its capture ended with its host; {n} FIN/RST packets of its last second taken from the live "
                f"capture ({rd.live_pcap(h).name}); others of that second may be missing")
    steps = steps_file.read(rd)
    merge_captures({h: rd.pcap(h) for h in lab.hosts}, run.ips, steps, rd.merged_pcapng, lab.name)
    timers = peer_timers(rd)
    run.write_run_info(capture_stats=dict(sorted(stats.items())), capabilities=caps, engine=engine,
                       collected_at=time.time(), **({"peer_timers": timers} if timers else {}))


DRAIN_WITHIN = 3.0  # seconds: the kernel hands tcpdump a block within its 1 s timeout of the block's first packet
ASK_WITHIN = 2.0  # seconds for tcpdump to print its counts after a SIGUSR1
POLL = 0.02
DRAIN_POLL = 0.1


def ask_counts(backend: Backend, container: str) -> dict[str, int] | None:
    """tcpdump's counts now (SIGUSR1 makes it print them); None if it printed none (it has ended)."""
    before = backend.logs(container).count(COUNTS_LINE)
    backend.signal(container, "SIGUSR1")
    deadline = time.monotonic() + ASK_WITHIN
    while True:
        text = backend.logs(container)
        if text.count(COUNTS_LINE) > before:
            return parse_tcpdump_stats(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL)  # a log line, no event to wait on


def stop_capture(backend: Backend, container: str) -> tuple[str, bool]:
    """Stop a capture sidecar losing none of the packets the kernel had handed its tcpdump: asked for its counts
    until it has read them all from its ring (up to ~1 s: the kernel hands them over a block at a time), then
    stopped (SIGTERM: tcpdump writes out its buffered file, prints its final counts and exits). Its log, and
    whether it had ended before (with its host's interface: its last block lost, see observe.capture.salvage)."""
    if backend.state(container).status != "running":
        return backend.logs(container), True
    counts = ask_counts(backend, container)
    if counts is not None and "received" in counts:
        taken = counts["received"]
        deadline = time.monotonic() + DRAIN_WITHIN
        while not drained(counts, taken) and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL)  # until the kernel's block timer hands the last block over: no event to wait on
            counts = ask_counts(backend, container) or counts
    backend.stop([container], timeout=5)
    return backend.logs(container), False


def peer_timers(rd: RunDir) -> dict[str, str]:
    """How each Windows peer scheduled its timers (SCHED_FIFO, or why not), as its first event says."""
    out = {}
    for host, events in peer_events.read(rd).items():
        said = next((e.get("detail") for e in events if e.get("event") == "timer_priority"), None)
        out[host] = said or "not said (a peer that predates timer_priority: the normal policy)"
    return out


def copy_out(backend: Backend, rd: RunDir, plan: LabPlan) -> None:
    """The sidecars' files, from the run's volumes on an engine elsewhere, into the run directory.

    Each volume is read through a sidecar that mounts it (the engine's archive API): the captures and
    the peers' logs through their host's sidecars, the transitions through the tracer."""
    for artifacts in plan.artifacts:
        place = rd.path / artifacts.folder
        files: dict[str, bytes] = {}
        for c in plan.writers(artifacts.kind):
            try:
                files = backend.read_dir(c, artifacts.target)
                break
            except EngineError:
                continue  # that sidecar is gone (never started, a dead host): another one mounts the volume
        for name, data in files.items():
            if "/" in name or name.startswith("."):
                continue  # the sidecars write flat files; anything else is none of the run's
            target = place / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.copy")
            tmp.write_bytes(data)
            tmp.replace(target)  # a mirror still appending to the old file writes to nobody's copy


def _safe_info(backend: Backend) -> dict[str, str]:
    try:
        return backend.engine_info()
    except EngineError:
        return {}
