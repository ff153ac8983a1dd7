"""Running a lab: create what its plan says, play its steps, collect, tear down.

A :class:`LabRun` is the whole network of one run (Mininet's ``net.py``): its
containers are its plan's (:mod:`tcplab.plan`), each step is played by the
player of its kind (:mod:`tcplab.play.steps`), and each host is driven
through the backend's exec, never a shell string. The
run directory is written as the run goes, so what happened up to a crash or
an interrupt is on disk.
"""
from __future__ import annotations

import shutil
from functools import partial
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ..backend.agent import AGENT_DIR, HostAgent, prepare_agent_dir
from ..backend.base import LABEL_RUN, Backend, ContainerSpec, EngineError, ExecResult
from ..model import Lab, step_kind, step_name, step_title
from ..model.lab import Ready, Step, step_explain
from ..observe import observer
from ..observe.programs import (EXIT_SUFFIX, ContainerOutput, ProgramOutput, describe_status, parse_exit_file,
                               record_start)
from ..observe.counters import COUNTERS_ARGV, counters_in_snapshot, read_counters
from ..observe.kernel import HZ_ARGV, parse_hz, parse_sysctls, sysctl_argv
from ..observe.machine import cpu_stall_total
from ..observe.sockets import snapshot_tables
from ..observe.tracer import tracefs_missing
from ..observe.watch import PcapTail
from ..plan import TOOLS_IMAGE, LabPlan, RunNames, SidecarPlan, followed_capture, host_image, plan_lab
from ..rundir import RunDir
from ..runfiles import images as images_file
from ..runfiles import lab as lab_file
from ..observe import kernel as kernel_facts
from ..runfiles import snapshots as snapshots_file
from ..runfiles import steps as steps_file
from ..runfiles.run_info import Default, RunInfoFile
from ..runfiles.steps import StepCommand, StepRecord
from .checkpoints import checkpoint
from .deaths import DeathWatch
from .errors import HostFailure, StepFailure
from .mirror import mirror
from .steps import player_for
from .steps.base import POLL, ShowCountdown, last_lines_of
from .teardown import remove_agent_dirs

__all__ = ["HostFailure", "LabRun", "StepFailure"]

Say = Callable[[str], None]
PROGRAM_LOGS = "/var/log/lab"  # where labrun writes each program's output


class LabRun:
    def __init__(self, lab: Lab, resolved: dict[str, Any], backend: Backend, run_dir: RunDir, names: RunNames,
                 say: Say | None = None) -> None:
        self.lab = lab
        self.resolved = resolved
        self.backend = backend
        self.rd = run_dir
        self.names = names
        self.say = say or (lambda msg: None)
        self.ips = {h: str(lab.host_ip(h)) for h in lab.hosts}
        self.pids: dict[tuple[str, str], int] = {}
        self.snapshots: dict[str, Any] = {}
        self.phases: dict[str, float] = {}
        self.tails = {h: PcapTail(followed_capture(lab, h, run_dir)) for h in lab.hosts}  # FINs, RSTs as they cross
        self.seen: dict[tuple[str, str], int] = {}
        self.consumed: dict[tuple[str, str], int] = {}
        self.tracer_note: str | None = None
        self.step_index = 0
        self.step_commands: list[StepCommand] = []  # what the step being played ran (steps.jsonl's commands)
        self.deaths: DeathWatch | None = None  # while the lab comes up and plays
        self.stopping = threading.Event()  # set on an interrupt: workers start nothing more
        self.no_ss: set[str] = set()  # hosts whose image has no ss: readiness is asked of their capture sidecar
        # hosts whose agent directory exists (a run another process brought up, collected by `lab down`)
        self.agents = {h: a for h in lab.hosts
                       if (a := HostAgent.of(run_dir.agent_dir(h), h, self._running(h))) is not None}
        self.host_images: dict[str, str] = {}  # host -> the ID of its own image (pulled or built), once known
        self.said_exit: set[str] = set()  # hosts whose own program's exit was said
        self.before_step: Callable[[int, Step], None] | None = None  # lab up --step: the pause before each step
        self.show_countdown: ShowCountdown | None = None  # a long wait's countdown (the CLI's, on a terminal)
        self.fin_seen: dict[str, float] = {}  # host -> when a wait first saw its FIN (capture time)
        self.plan = self.make_plan()

    # --- the plan ---------------------------------------------------------------
    def make_plan(self) -> LabPlan:
        """What this run creates, for the engine it runs on and the hosts whose agent directory is ready."""
        return plan_lab(self.lab, self.names, self.rd, volumes=not self.backend.shares_files, agents=set(self.agents),
                        images=self.host_images)

    # --- bring up --------------------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - t, 4)

    def up(self, images: dict[str, Any]) -> None:
        """Network, hosts, sidecars, programs, then the steps. Raises after tearing nothing down:
        the caller decides (``lab up`` tears down on failure, keeping artifacts)."""
        self.rd.create()
        lab_file.write(self.rd, self.resolved)
        images_file.write(self.rd, images)
        self.host_images = {h: str(info["id"]) for info in images.values() for h in info.get("hosts", ())
                            if info.get("id")}
        self.write_run_info(state="starting", started=time.time())
        # where a FIFO cannot be made (an odd filesystem, an engine elsewhere), Docker exec serves
        for h in self.lab.hosts if self.backend.shares_files else ():
            if self.lab.hosts[h].own_program:
                continue  # its main process is its image's own program: Docker exec serves
            if prepare_agent_dir(self.rd.agent_dir(h)):
                self.agents[h] = HostAgent(self.rd.agent_dir(h), h, self._running(h))
        self.plan = plan = self.make_plan()
        for artifacts in plan.artifacts:  # the sidecars' folders, written into or copied out into
            (self.rd.path / artifacts.folder).mkdir(parents=True, exist_ok=True)
        with self.phase("network"):
            for net in plan.networks:
                kind = "routed, no default route" if net.routed else "internal"
                mtu = f", MTU {net.mtu}" if net.mtu is not None else ""
                self.say(f"network {net.name} ({net.subnet}, {kind}{mtu})")
                self.backend.create_network(net.name, net.subnet, net.labels, net.mtu, net.routed)
            if plan.volumes:
                self.say("the engine is on another machine: artifacts are copied out through it")
                for volume in plan.volumes:
                    self.backend.create_volume(volume, plan.volume_labels)
            checkpoint("network")
        self.deaths = DeathWatch(self.backend, {LABEL_RUN: self.names.run})
        try:
            self._bring_up_hosts_and_play()
        finally:
            self.deaths.close()
            self.deaths = None
        checkpoint("played")
        self.write_run_info(state="up", up_at=time.time())

    def _bring_up_hosts_and_play(self) -> None:
        with self.phase("hosts_and_sidecars"):
            observed = [h.name for h in self.plan.hosts if h.observer is not None]
            self.say(f"hosts: {', '.join(self.lab.hosts)}; sidecars: captures, tracer, peers"
                     + (f"; observers of {', '.join(observed)} (no tools in their images)" if observed else ""))
            # each host's sidecars start as soon as that host runs; the tracer needs no host
            self._all([self.start_tracer] + [partial(self.start_host_and_sidecars, n) for n in self.lab.hosts])
        with self.phase("programs"):
            self.probe_evidence()
            for name, host in self.lab.hosts.items():
                if host.own_program:
                    self.own_program_started(name)
                    checkpoint(f"program:{name}")
                elif host.program and host.program.run:
                    self.say(f"{name}: start {' '.join(host.program.run)}")
                    self.start_program(name, host.program.name, host.program.run, host.program.ready, step=None)
                    checkpoint(f"program:{name}")
        self.write_run_info(state="playing")
        with self.phase("steps"):
            self.play()
            self.check_health(watched=False)  # the last word is the engine's own, not its event stream's

    def start_host_and_sidecars(self, name: str) -> None:
        planned = self.plan.host(name)
        host = planned.spec
        self.backend.create_container(host)
        # the sidecars are created while their host starts: sharing its namespace needs it to exist, not to run
        self._all([partial(self.backend.start_created, host.name)]
                  + [partial(self._create, s.spec) for s in planned.sidecars])
        checkpoint(f"host:{name}")
        if self.stopping.is_set():
            return
        try:
            self._all([partial(self.start_sidecar, s, created=True) for s in planned.sidecars])
        except (EngineError, HostFailure):
            self._ended_too_soon(name)
            raise

    def _ended_too_soon(self, name: str) -> None:
        """StepFailure, saying so, when a host's own program ended before its sidecars could join the host's
        network namespace (which goes with its container): the lab cannot come up."""
        if not self.lab.hosts[name].own_program:
            return
        st = self.backend.state(self.names.host(name))
        if st.running or st.status == "missing":
            return
        output = ContainerOutput(self.backend, self.names.host(name), self.lab.hosts[name].program_name or "")
        raise StepFailure(f"{name}: its program exited with {describe_status(st.exit_code)} before the lab was up "
                          f"({last_lines_of(output)}); a host's own program must run until its capture has joined "
                          "it, since its network goes with its container")

    def _create(self, spec: ContainerSpec) -> None:
        self.backend.create_container(spec)

    def start_tracer(self) -> None:
        # on an engine elsewhere, its own machine's tracefs counts: the tracer says if it has none
        self.tracer_note = tracefs_missing() if self.backend.shares_files else None
        if self.tracer_note is not None:
            self.say(f"no socket state transitions: {self.tracer_note}")
            return
        self.start_sidecar(self.plan.tracer)

    def start_sidecar(self, sidecar: SidecarPlan, created: bool = False) -> None:
        spec = sidecar.spec
        try:
            if created:
                self.backend.start_created(spec.name)
            else:
                self.backend.start_container(spec)
        except EngineError:
            if self._outlived(sidecar):
                return
            raise
        checkpoint(f"sidecar:{spec.name.removeprefix(self.names.network + '-')}")
        if self.stopping.is_set():
            return
        if not self.backend.wait_log(spec.name, sidecar.ready, timeout=20):
            if self._outlived(sidecar):
                return
            tail = self.backend.logs(spec.name).strip().splitlines()[-1:] or ["no output"]
            if sidecar.optional:  # the tracer: transitions are a bonus, go on without them, say so once
                self.tracer_note = f"the tracer did not start: {tail[0]}"
                self.say(f"no socket state transitions: {self.tracer_note}")
                return
            raise HostFailure(f"sidecar {spec.name} did not become ready: {tail[0]}")
        if not self.backend.shares_files:  # an engine elsewhere: its files are followed here as they grow
            for f in sidecar.follow:
                mirror(self.backend, spec.name, f.path, f.local)

    def _outlived(self, sidecar: SidecarPlan) -> bool:
        """A sidecar that lives in its host's PID namespace (an observer) and could not start or ended because
        the host's own program had already ended: nothing is left to observe, which is no failure."""
        return sidecar.ends_with_host and sidecar.host is not None and self.program_ended(sidecar.host)

    def program_ended(self, host: str) -> bool:
        """The host runs its image's own program and that program (its container's main process) has ended."""
        if not self.lab.hosts[host].own_program:
            return False
        return self.backend.state(self.names.host(host)).status in ("exited", "dead")

    def _all(self, calls: Sequence[Callable[[], None]]) -> None:
        """Run calls at once; wait for all (so nothing is still being created), then raise the first error."""
        if not calls:  # a snapshot of a lab none of whose hosts runs
            return
        if len(calls) == 1:
            calls[0]()
            return
        pool = ThreadPoolExecutor(max_workers=min(16, len(calls)))
        futures = [pool.submit(c) for c in calls]
        interrupt: BaseException | None = None
        while True:
            try:
                pool.shutdown(wait=True)
                break
            except KeyboardInterrupt as e:
                # a container being created right now must exist before teardown lists what to remove:
                # tell the workers to start nothing more, wait for them, then go on with the interrupt
                interrupt = e
                self.stopping.set()
        if interrupt is not None:
            raise interrupt
        for f in futures:
            f.result()

    # --- programs --------------------------------------------------------------
    def start_program(self, host: str, prog: str, argv: list[str], ready: Ready | None, step: int | None) -> int:
        """Start a story program (``step``: the start step's index; None for the host's own program)."""
        asked = time.time()
        res = self.run_in(host, ["labrun", prog, *argv])
        if res.exit_code != 0:
            raise StepFailure(f"{host}: could not start {prog}: {(res.stderr or res.stdout).strip()}")
        pid = int(res.stdout.strip().splitlines()[-1])
        self.pids[(host, prog)] = pid
        record_start(self.rd, host, prog, pid, argv, step, asked)
        if ready is not None:
            self.wait_ready(host, prog, ready)
        return pid

    def own_program_started(self, host: str) -> None:
        """A host running its image's own program: it started with its container; record it, wait until ready."""
        h = self.lab.hosts[host]
        name = h.program_name or "program"
        argv = list(h.program.run) if h.program is not None and h.program.run else []
        asked = time.time()
        # its PID and whole argv (entrypoint and command), as its observer sees them in the host
        seen = self.program_seen(host) if self.plan.host(host).observer is not None else None
        pid, argv = seen if seen is not None else (None, argv)
        self.say(f"{host}: its image's own program ({name})" + (f": {' '.join(argv)}" if argv else "")
                 + (f", pid {pid}" if pid is not None else ""))
        if pid is not None:
            self.pids[(host, name)] = pid
        record_start(self.rd, host, name, pid, argv, None, asked)
        if h.program is not None and h.program.ready is not None:
            self.wait_ready(host, name, h.program.ready)

    def own_program(self, host: str, prog: str) -> bool:
        """``prog`` is the host's image's own program: the container's main process."""
        h = self.lab.hosts[host]
        return h.own_program and prog == h.program_name

    def program_output(self, host: str, prog: str) -> ProgramOutput:
        """The program's output as it grows: labrun's log file, or the container's log for its own program."""
        if self.own_program(host, prog):
            return ContainerOutput(self.backend, self.names.host(host), prog)
        return ProgramOutput(lambda argv: self.run_in(host, argv), prog)

    def program_seen(self, host: str) -> tuple[int, list[str]] | None:
        """The PID and argv of a host's image's own program, as its observer sees them (the child of the
        host's init, in the host's PID namespace); None once it has ended."""
        try:
            res = self.backend.exec(self.observer_of(host), observer.PROGRAM_ARGV)
        except EngineError:
            return None  # the observer ended with the host's PID namespace: the program is gone
        return observer.parse_program(res.stdout) if res.exit_code == 0 else None

    def observer_of(self, host: str) -> str:
        """The container of the host's observer; KeyError for a host observed from inside (it has the tools)."""
        side = self.plan.host(host).observer
        if side is None:
            raise KeyError(host)
        return side.spec.name

    def observe(self, host: str, argv: list[str]) -> ExecResult:
        """Run an observation's argv where the host's tools are: its observer, else the host itself."""
        if self.plan.host(host).observer is not None:
            return self.backend.exec(self.observer_of(host), argv)
        return self.run_in(host, argv)

    def _running(self, host: str) -> Callable[[], bool]:
        return lambda: self.host_running(host)

    def host_running(self, host: str) -> bool:
        """From the engine's event stream while it is read (free), else by asking the engine (~3 ms)."""
        container = self.names.host(host)
        if self.deaths is not None and self.deaths.live:
            return container not in self.deaths.dead
        return self.backend.state(container).running

    def run_in(self, host: str, argv: list[str]) -> ExecResult:
        """Run argv in a host: through its agent (milliseconds), else a Docker exec."""
        agent = self.agents.get(host)
        if agent is not None:
            return agent.run(argv)
        try:
            return self.backend.exec(self.names.host(host), argv)
        except EngineError:
            # a host running its image's own program stops when that program ends, maybe just now
            if self.lab.hosts[host].own_program and not self.backend.state(self.names.host(host)).running:
                return ExecResult(125, "", f"{host} is not running: its program ended")
            raise

    def listening(self, host: str, port: int) -> bool:
        """Whether something listens on ``port`` in the host's network namespace: asked of its observer (an
        image with no tools at all), else of the host's own ss, else (an image without ss) of its capture
        sidecar, which shares that namespace."""
        argv = observer.listen_argv(port)
        if self.program_ended(host):
            return False  # its program ended and the container with it: nothing listens there
        if self.plan.host(host).observer is not None:
            res = self.backend.exec(self.observer_of(host), argv)
            return res.exit_code == 0 and res.stdout.strip() != ""
        if host not in self.no_ss:
            res = self.run_in(host, argv)
            if not res.command_missing:
                return res.exit_code == 0 and res.stdout.strip() != ""
            self.no_ss.add(host)
        res = self.backend.exec(self.names.sidecar(host, "capture"), argv)
        return res.exit_code == 0 and res.stdout.strip() != ""

    def wait_ready(self, host: str, prog: str, ready: Ready) -> None:
        """Until the program is ready; StepFailure, naming its last lines, when it is not in time or exits."""
        deadline = time.monotonic() + ready.timeout
        output = self.program_output(host, prog)
        while time.monotonic() < deadline:
            # whether it ended is asked first: a program that printed its line and exited at once was ready
            status = self.exit_status(host, prog)
            if ready.listen is not None:
                ok = self.listening(host, ready.listen)
            else:
                ok = output.search(ready.log or "")
            if ok:
                return
            if status is not None:
                raise StepFailure(f"{host}: program {prog} exited with {describe_status(status)} before it was "
                                  f"{self._ready_words(ready)}; {last_lines_of(output)}")
            time.sleep(POLL)
        raise StepFailure(f"{host}: program {prog} was not {self._ready_words(ready)} within {ready.timeout:g} s; "
                          f"{last_lines_of(output)}")

    @staticmethod
    def _ready_words(ready: Ready) -> str:
        return f"listening on port {ready.listen}" if ready.listen is not None else f"printing /{ready.log}/"

    def exit_status(self, host: str, prog: str) -> int | None:
        """The exit status of the program's current run (labrun's watcher wrote it; the container's for the
        image's own program), None while it runs."""
        if self.own_program(host, prog):
            st = self.backend.state(self.names.host(host))
            return st.exit_code if st.status in ("exited", "dead") else None
        pid = self.pids.get((host, prog))
        res = self.run_in(host, ["cat", f"{PROGRAM_LOGS}/{prog}{EXIT_SUFFIX}"])
        if res.exit_code != 0:
            return None
        ends = [status for p, status, _ in parse_exit_file(res.stdout) if pid is None or p == pid]
        return ends[-1] if ends else None

    # --- steps -----------------------------------------------------------------
    def play(self) -> None:
        for i, step in enumerate(self.lab.steps):
            self.step_index = i
            self.play_step(i, step)

    def play_step(self, i: int, step: Step) -> None:
        if self.before_step is not None:
            self.before_step(i, step)
        title = step_title(step)
        player = player_for(step)
        limit = player.time_limit(step)
        self.say(f"step {i}: {title}" + (f" (up to {limit:g} s)" if limit is not None else ""))
        checkpoint(f"step:{i}")
        record = StepRecord(index=i, name=step_name(step, i), kind=step_kind(step), title=title,
                            host=getattr(step, "host", None), start=time.time())
        if (explain := step_explain(step)) is not None:
            record["explain"] = explain
        outcome, detail = "ok", ""
        self.step_commands = []
        stalled_before = cpu_stall_total() if self.backend.shares_files else None  # the engine is on this machine
        try:
            detail = player.play(self, step, i)
            self.check_health()  # from the engine's event stream: a set lookup
        except BaseException as e:
            outcome, detail = ("interrupted" if isinstance(e, KeyboardInterrupt) else "failed"), str(e)
            raise
        finally:
            record.update({"end": time.time(), "outcome": outcome, "detail": detail})
            if stalled_before is not None and (stalled_after := cpu_stall_total()) is not None:
                record["cpu_stalled"] = round(max(0.0, stalled_after - stalled_before), 4)
            if self.step_commands:
                record["commands"] = list(self.step_commands)
            steps_file.append(self.rd, record)

    def record_command(self, argv: list[str], exit_code: int) -> None:
        """A command the step being played ran (a firewall rule): kept in its line of steps.jsonl."""
        self.step_commands.append({"argv": list(argv), "exit": exit_code})

    def check_health(self, watched: bool = True) -> None:
        """Hosts still running. With ``watched``, a host the event stream has not seen die is taken as running.

        Programs are not looked at: a story program that exits (the host's own one too, whatever its
        status) is an event of the story, recorded in programs.jsonl at collection, not a failure. So is the
        end of a host whose main process is its image's own program: the container stops with it (a lab
        whose server is meant to die, or that waits for it to exit); only its removal ends the run."""
        for name in self.lab.hosts:
            seen_running = watched and self.deaths is not None and self.deaths.live and self.host_running(name)
            if not seen_running:  # the engine's own word, with the exit code of a host that died
                st = self.backend.state(self.names.host(name))
                if not st.running and st.status != "missing" and self.lab.hosts[name].own_program:
                    if name not in self.said_exit:
                        self.said_exit.add(name)
                        self.say(f"{name}: its program exited with {describe_status(st.exit_code)} "
                                 "(the container stopped with it)")
                    continue
                if not st.running:
                    why = "was removed" if st.status == "missing" else (
                        f"exited with code {st.exit_code}" + (" (out of memory)" if st.oom_killed else ""))
                    raise HostFailure(f"host {name} {why}")

    # --- observations ----------------------------------------------------------
    def snapshot(self, label: str) -> None:
        taken = time.time()
        tables: dict[str, Any] = {}
        counters: dict[str, Any] = {}

        def one(host: str) -> None:
            try:
                res, image = self.take_tables(host)  # netstat, then ss: one round trip
            except EngineError:
                if not self.program_ended(host):
                    raise
                tables[host] = {"missing": f"host {host} was not running"}  # its program ended meanwhile
                return
            checkpoint(f"snapshot:{label}:{host}")
            both = snapshot_tables(res.stdout, res.stderr, res.exit_code, image)
            self.rd.table(host, label).write_text(both["netstat"]["raw"])
            self.rd.table(host, label, "ss").write_text(both["ss"]["raw"])
            tables[host] = both
            in_snapshot = counters_in_snapshot(res.stdout, res.stderr)
            if in_snapshot is None:  # a labsnap that prints no counters: read them on their own
                count(host)
            else:
                counters[host] = in_snapshot

        def count(host: str) -> None:  # /proc/net of the host's network namespace: the host's own, or its observer's
            try:
                res = self.observe(host, list(COUNTERS_ARGV))
            except EngineError:
                if not self.program_ended(host):
                    raise
                return  # its program ended meanwhile: its tables say so
            counters[host] = read_counters(res.stdout, res.stderr, res.exit_code)

        running = [h for h in self.lab.hosts if self.host_running(h)]
        self._all([partial(one, h) for h in running])
        for h, c in counters.items():
            if h in tables and not tables[h].get("missing"):
                tables[h]["counters"] = c
        for h in self.lab.hosts:
            if h not in running:
                tables[h] = {"missing": f"host {h} was not running"}
        self.snapshots[label] = {"time": taken, "step": self.step_index, "hosts": dict(sorted(tables.items()))}
        snapshots_file.write(self.rd, self.snapshots)

    def take_tables(self, host: str) -> tuple[ExecResult, str]:
        """Both socket tables of a host (labsnap's output) and the image that took them: the host's own, or
        its observer's (the tools image) for a host whose image has no tools."""
        if self.plan.host(host).observer is not None:
            return self.backend.exec(self.observer_of(host), observer.SNAPSHOT_ARGV), TOOLS_IMAGE
        return self.run_in(host, ["labsnap"]), host_image(self.lab, host)

    def probe_evidence(self) -> None:
        """Before the story: can each host's socket tables be read? Said at once, one line per host whose
        tables cannot be, and kept in run.json, so nobody learns it from a verdict."""
        found: dict[str, dict[str, Any]] = {}
        sysctls: dict[str, dict[str, str]] = {}
        kernel: dict[str, Any] = {}

        # a host whose own program has already ended has nothing left to read (the engine says so, at once)
        ended = {h for h in self.lab.hosts if self.program_ended(h)}
        hosts = [h for h in self.lab.hosts if h not in ended]
        for host in ended:
            found[host] = {tool: "its program had ended before the story began" for tool in ("netstat", "ss")}

        def one(host: str) -> None:
            res, image = self.take_tables(host)
            tables = snapshot_tables(res.stdout, res.stderr, res.exit_code, image)
            found[host] = {tool: "ok" if t["ok"] else t["error"] for tool, t in tables.items()}

        # the kernel facts the explanations use (observe/kernel.py), every sysctl a host of the lab sets (its own
        # and its peer kind's), read in each host: the value a story set as its kernel took it, beside the others'
        # for comparison; those the lab's published facts depend on (reference.sysctls) and those its expectations
        # are stated for (a kernel timer's pattern, a delay read from a sysctl); the kernel's release
        wanted = self.lab.expectation_sysctls()
        names = kernel_facts.sysctl_names([*(k for h in self.plan.hosts for k in h.spec.sysctls),
                                           *self.lab.sysctls_read(),
                                           *(n for host_names in wanted.values() for n in host_names),
                                           kernel_facts.RELEASE])

        def settings(host: str) -> None:
            res = self.observe(host, sysctl_argv(names))
            sysctls[host] = parse_sysctls(res.stdout, res.stderr, names)

        def hz() -> None:  # the kernel's: any host will do, one with its own tools first (no observer's exec)
            first = sorted(hosts, key=lambda h: self.plan.host(h).observer is not None)[0]
            kernel.update(parse_hz(self.observe(first, HZ_ARGV).stdout))

        self._all([lambda h=h: one(h) for h in hosts] + [lambda h=h: settings(h) for h in hosts]
                  + ([hz] if hosts else []))
        for host, tools in sorted(found.items()):
            if all(v != "ok" for v in tools.values()):
                self.say(f"{host}: no socket tables ({'; '.join(tools.values())}): state expectations on "
                         f"{host} will be errors")
        self.write_run_info(evidence={"socket_tables": dict(sorted(found.items()))},
                            sysctls=dict(sorted(sysctls.items())), **({"kernel": kernel} if kernel else {}))

    def program_logs(self, host: str) -> dict[str, bytes]:
        """The files of the host's /var/log/lab, by name: copied by its agent into its directory (no engine
        call), else through the engine's archive API."""
        agent = self.agents.get(host)
        if agent is None:
            return self.backend.read_dir(self.names.host(host), PROGRAM_LOGS)
        copy = agent.directory / "program-logs"
        shutil.rmtree(copy, ignore_errors=True)
        res = agent.run(["cp", "-rT", PROGRAM_LOGS, f"{AGENT_DIR}/{copy.name}"])
        if res.exit_code != 0:
            return {}  # no program ever ran there: no /var/log/lab
        return {str(p.relative_to(copy)): p.read_bytes() for p in sorted(copy.rglob("*")) if p.is_file()}

    def close_agents(self) -> None:
        """Forget the hosts' agents and remove their directories (call once the hosts are gone)."""
        for agent in self.agents.values():
            agent.close()
        self.agents.clear()
        remove_agent_dirs(self.rd)

    def write_run_info(self, **fields: Any) -> None:
        RunInfoFile(self.rd).update(
            lab=self.lab.name, run=self.names.run, hosts=self.ips,
            addresses={h: {net: str(ip) for net, ip in self.lab.host_addresses(h).items()} for h in self.lab.hosts},
            containers={h: self.names.host(h) for h in self.lab.hosts}, subnet=str(self.lab.network.subnet),
            phases=self.phases, tracer=Default("ok") if self.tracer_note is None else (self.tracer_note or "ok"),
            **fields)
