"""The `lab` command: thin Typer commands over model, play, analysis and report."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..model import Lab, LabError, StartStep
from .common import (EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, die, engine, err, out, resolve_lab, say,
                     interrupts_tear_down)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn a TCP war story into a reproducible experiment.")
images_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Build or list the images labs use.")
app.add_typer(images_app, name="images")

SetOpt = typer.Option(None, "--set", help="Override a lab field by dotted path, e.g. peers.win.fin_wait2_timeout=2s")


def _ensure_images(backend, names: set[str]) -> dict:  # noqa: ANN001
    from contextlib import nullcontext

    from ..backend.images import ImageBuilder
    from ..paths import IMAGES_DIR

    if err.is_terminal:  # a live progress display; rich.progress is not even imported for logs and CI
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        display = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                           transient=True)
    else:
        display = None
    tasks: dict[str, int] = {}

    def report(image: str, msg: str) -> None:
        if display is None:
            if msg in ("building", "built") or msg.startswith("mmdebstrap"):
                say(f"image {image}: {msg}")
            return
        if image not in tasks:
            tasks[image] = display.add_task(image)
        display.update(tasks[image], description=f"{image}: {msg}")
        if msg.startswith("mmdebstrap"):
            say(f"image {image}: {msg}")

    with display if display is not None else nullcontext():
        records = ImageBuilder(backend, IMAGES_DIR, report).ensure(names)
    return {name: {"id": r.id, "base": r.base, "created": r.created, "built_now": r.built_now}
            for name, r in records.items()}


def _lab_images(lab) -> set[str]:  # noqa: ANN001
    return {h.image for h in lab.hosts.values()} | {"tcplab/tools"}


@app.command("ls")
def ls_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Labs in labs/ and labs running now."""
    from ..model import load_lab
    from ..paths import LABS_DIR

    labs = []
    for f in sorted(LABS_DIR.glob("*.y*ml")):
        try:
            lab, _ = load_lab(f)
            labs.append({"name": lab.name, "summary": lab.summary, "file": f"labs/{f.name}"})
        except LabError as e:
            labs.append({"name": f.stem, "summary": f"invalid: {e}", "file": f"labs/{f.name}"})
    running = []
    try:
        from ..backend.docker import DockerBackend
        from ..play.lifecycle import running_labs

        for r in running_labs(DockerBackend()).values():
            running.append({"lab": r.lab, "run": r.run, "run_dir": r.run_dir,
                            "state": "up" if r.left_up else ("starting" if r.owner_alive else "orphaned")})
    except Exception:  # noqa: BLE001 - listing labs works without an engine
        pass
    if as_json:
        out.print_json(json.dumps({"labs": labs, "running": running}))
        return
    for lab in labs:
        out.print(f"{lab['name']:<20} {lab['summary']}", markup=False)
    if running:
        out.print("\nrunning:")
        for r in running:
            out.print(f"  {r['lab']:<18} {r['state']:<9} {r['run_dir']}", markup=False)


@app.command()
def validate(files: List[str] = typer.Argument(..., help="Lab files or names."),
             sets: Optional[List[str]] = SetOpt) -> None:
    """Check lab files; nothing is started."""
    for f in files:
        lab, _, path = resolve_lab(f, sets)
        out.print(f"{path}: ok ({lab.name}: {len(lab.hosts)} hosts, {len(lab.steps)} steps, "
                  f"{len(lab.expect)} expectations)", markup=False)


@app.command()
def up(lab_name: str = typer.Argument(..., metavar="LAB"), sets: Optional[List[str]] = SetOpt,
       out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<lab>-<UTC time>).")
       ) -> None:
    """Build missing images, bring the lab up, play its steps, leave it up to explore."""
    from ..backend.base import EngineError
    from ..play.checkpoints import checkpoint
    from ..play.lifecycle import bring_up

    from .keeper import KeeperLaunch

    lab, resolved, _ = resolve_lab(lab_name, sets)
    interrupts_tear_down()
    keeper = KeeperLaunch(lab.name)  # started as the story plays, so that `lab down` finds it warm
    handed_over = False
    try:
        backend = engine()
        checkpoint("images")
        images = _ensure_images(backend, _lab_images(lab))
        run = bring_up(lab, resolved, backend, out_dir, images, say, on_playing=keeper.start)
        keeper.hand_over(run.rd.path)
        handed_over = True
    except KeyboardInterrupt:
        die(EXIT_INTERRUPTED, "interrupted; everything created was removed")
    except LabError as e:
        die(EXIT_BAD_INPUT, str(e))
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))
    finally:
        if not handed_over:
            keeper.drop()
    rel = os.path.relpath(run.rd.path)
    out.print(f"{lab.name} is up; run directory: {rel}", markup=False)
    out.print("\n".join("  " + line for line in up_hints(lab, rel)), markup=False)


def up_hints(lab: Lab, run_dir: str) -> list[str]:
    """What to try next, on the lab's own hosts: the first whose program ``lab up`` starts, else the first
    a step starts one on, else the first host."""
    import shlex

    started = [h for h, host in lab.hosts.items() if host.program is not None]
    started += [s.host for s in lab.steps if isinstance(s, StartStep)]
    host = (started or list(lab.hosts))[0]
    return [f"lab status {lab.name}", f"lab exec {lab.name} {host} -- netstat -tanp", f"lab shell {lab.name} {host}",
            f"lab report {shlex.quote(run_dir)}", f"lab down {lab.name}"]


def _running_or_die(backend, name: str):  # noqa: ANN001, ANN202
    from ..play.lifecycle import find_running

    r = find_running(backend, name)
    if r is None:
        die(EXIT_BAD_INPUT, f"{name}: lab is not up (lab ls shows what runs)")
    return r


def _host_container(r, host: str) -> str:  # noqa: ANN001
    from ..play.naming import RunNames

    hosts = sorted(o.labels.get("tcplab.host", "") for o in r.objects if o.labels.get("tcplab.role") == "host")
    if host not in hosts:
        die(EXIT_BAD_INPUT, f"{r.lab}: unknown host '{host}' (hosts: {', '.join(hosts)})")
    return RunNames(r.lab, r.run, r.run_dir).host(host)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_cmd(lab_name: str = typer.Argument(..., metavar="LAB"), host: str = typer.Argument(...),
             cmd: List[str] = typer.Argument(..., metavar="-- CMD [ARG]...")) -> None:
    """Run a command (argv, never a shell string) in a host of a running lab."""
    backend = engine()
    container = _host_container(_running_or_die(backend, lab_name), host)
    res = backend.exec(container, list(cmd))
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    raise SystemExit(res.exit_code)


@app.command()
def shell(lab_name: str = typer.Argument(..., metavar="LAB"), host: str = typer.Argument(...)) -> None:
    """An interactive shell in a host (uses the docker CLI's terminal handling)."""
    import shutil

    backend = engine()
    container = _host_container(_running_or_die(backend, lab_name), host)
    docker = shutil.which("docker")
    if docker is None:
        die(EXIT_ENVIRONMENT, "`lab shell` needs the docker CLI for an interactive terminal; use `lab exec`")
    os.execv(docker, [docker, "exec", "-it", container, "bash"])


@app.command()
def status(lab_name: Optional[str] = typer.Argument(None, metavar="[LAB]")) -> None:
    """Hosts, their state, and the sockets of interest now."""
    from ..observe.sockets import parse_netstat
    from ..play.lifecycle import running_labs
    from .keeper import keeper_pids

    backend = engine()
    runs = [r for r in running_labs(backend).values() if lab_name in (None, r.lab)]
    if lab_name and not runs:
        die(EXIT_BAD_INPUT, f"{lab_name}: lab is not up (lab ls shows what runs)")
    if not runs:
        out.print("no lab is up")
    for r in runs:
        state = "up" if r.left_up else ("starting" if r.owner_alive else "orphaned (lab gc removes it)")
        keeper = ", ".join(str(p) for p in keeper_pids(r.lab)) or "none (lab down does the work itself)"
        out.print(f"{r.lab}  {state}  run {r.run}  {r.run_dir}  keeper pid {keeper}", markup=False)
        for o in sorted(r.objects, key=lambda o: (o.kind, o.name)):
            if o.kind != "container":
                continue
            st = backend.state(o.name)
            role = o.labels.get("tcplab.role", "?")
            out.print(f"  {o.name:<34} {role:<8} {st.status}", markup=False)
            if role == "host" and st.running:
                for rec in parse_netstat(backend.exec(o.name, ["netstat", "-tanp"]).stdout):
                    if rec.local_addr.startswith("127."):
                        continue  # the engine's embedded DNS resolver, not the lab's
                    owner = f"{rec.pid}/{rec.program}" if rec.pid else "-"
                    out.print(f"      {rec.state:<12} {rec.local_addr}:{rec.local_port} -> "
                              f"{rec.peer_addr}:{rec.peer_port or '*'}  {owner}", markup=False)


@app.command()
def down(lab_name: Optional[str] = typer.Argument(None, metavar="[LAB]"),
         all_labs: bool = typer.Option(False, "--all", help="Every lab that is up.")) -> None:
    """Collect the last artifacts, then remove every object of the lab."""
    from ..backend.base import EngineError
    from ..play.lifecycle import find_running, running_labs
    from .takedown import take_down

    if not lab_name and not all_labs:
        die(EXIT_BAD_INPUT, "name a lab, or --all")
    backend = engine()
    runs = list(running_labs(backend).values()) if all_labs else [find_running(backend, lab_name or "")]
    if runs == [None]:
        die(EXIT_BAD_INPUT, f"{lab_name}: lab is not up (lab ls shows what runs)")
    try:
        for r in runs:
            assert r is not None
            out.print(take_down(backend, r, say), markup=False)
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))


@app.command()
def gc() -> None:
    """Remove objects left by runs whose process is gone (killed, crashed)."""
    from ..play.lifecycle import collect_garbage

    backend = engine()
    removed = collect_garbage(backend)
    if not removed:
        out.print("nothing to collect")
    for r, rm in removed:
        out.print(f"removed run {r.run}: {len(rm.containers)} containers ({', '.join(sorted(rm.containers))}), "
                  f"{len(rm.networks)} networks, {len(rm.volumes)} volumes", markup=False)


@images_app.command("build")
def images_build(force: bool = typer.Option(False, "--force", help="Rebuild even when up to date.")) -> None:
    """Build (or bring up to date) every image of the project."""
    from ..backend.base import EngineError
    from ..paths import known_images

    backend = engine()
    try:
        if force:
            from ..backend.images import ImageBuilder
            from ..paths import IMAGES_DIR

            ImageBuilder(backend, IMAGES_DIR, lambda i, m: say(f"{i}: {m}")).ensure(known_images(), force=True)
        records = _ensure_images(backend, known_images())
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))
    for name, rec in records.items():
        out.print(f"{name:<16} {rec['id'][7:19]}  {'built' if rec['built_now'] else 'up to date'}", markup=False)


@images_app.command("ls")
def images_ls() -> None:
    """The project's images and their IDs."""
    from ..paths import known_images

    backend = engine()
    for name in sorted(known_images() | {"tcplab/base:bookworm"}):
        try:
            info = backend.api.inspect_image(name)
            out.print(f"{name:<22} {info['Id'][7:19]}  {info.get('Created', '')[:19]}", markup=False)
        except Exception:  # noqa: BLE001
            out.print(f"{name:<22} (not built)", markup=False)


from . import export_cmd, report_cmd, run_cmd  # noqa: E402

for _module in (run_cmd, report_cmd, export_cmd):
    _module.register(app)


def main() -> None:
    """Run the app; usage errors become one line (`lab: ...`, exit 2) like every other bad input."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="lab", standalone_mode=False)
    except KeyboardInterrupt:
        die(EXIT_INTERRUPTED, "interrupted")
    except Exception as e:  # click's UsageError family: typer vendors click, so match on its interface
        if hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int):
            ctx = getattr(e, "ctx", None)
            path = ctx.command_path if ctx is not None else "lab"
            sub = path.removeprefix("lab").strip()
            die(EXIT_BAD_INPUT, f"{sub + ': ' if sub else ''}{e.format_message().rstrip('.')} (see {path} --help)")
        raise
    raise SystemExit(code if isinstance(code, int) else 0)

