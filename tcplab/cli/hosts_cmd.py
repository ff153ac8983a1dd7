"""`lab exec`, `lab shell` and `lab status`: into a running lab's hosts, and what they hold now."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

import typer

from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, die, engine, out

if TYPE_CHECKING:
    from ..backend.base import Backend
    from ..play.lifecycle import RunningLab


def register(app: typer.Typer) -> None:
    """Add `lab exec`, `lab shell` and `lab status` to `app`."""
    app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(exec_cmd)
    app.command("shell")(shell)
    app.command("status")(status)


def _running_or_die(backend: Backend, name: str) -> RunningLab:
    from ..play.lifecycle import find_running

    r = find_running(backend, name)
    if r is None:
        die(EXIT_BAD_INPUT, f"{name}: lab is not up (lab ls shows what runs)")
    return r


def _host_container(r: RunningLab, host: str) -> str:
    from ..play.naming import RunNames

    hosts = sorted(o.labels.get("tcplab.host", "") for o in r.objects if o.labels.get("tcplab.role") == "host")
    if host not in hosts:
        die(EXIT_BAD_INPUT, f"{r.lab}: unknown host '{host}' (hosts: {', '.join(hosts)})")
    return RunNames(r.lab, r.run, r.run_dir).host(host)


def _observer(r: RunningLab, host: str) -> str | None:
    """The observer of a host whose image has no tools (the tools image in its network and PID
    namespaces), if it has one: commands meant for that host run there."""
    from ..observe.observer import ROLE

    return next((o.name for o in r.objects if o.kind == "container" and o.labels.get("tcplab.role") == ROLE
                 and o.labels.get("tcplab.host") == host), None)


def _where(r: RunningLab, host: str) -> str:
    """Where a command for ``host`` runs: the host, or its observer (said on stderr) when it has one."""
    container = _host_container(r, host)
    observer = _observer(r, host)
    if observer is None:
        return container
    print(f"{host}: its image has no tools: running in its observer {observer} (its network and PID "
          "namespaces; its files are under /proc/1/root)", file=sys.stderr)
    return observer


def exec_cmd(lab_name: str = typer.Argument(..., metavar="LAB"), host: str = typer.Argument(...),
             cmd: List[str] = typer.Argument(..., metavar="-- CMD [ARG]...")) -> None:
    """Run a command (argv, never a shell string) in a host of a running lab (in its observer, for a host
    whose image has no tools)."""
    backend = engine()
    container = _where(_running_or_die(backend, lab_name), host)
    res = backend.exec(container, list(cmd))
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    raise SystemExit(res.exit_code)


def shell(lab_name: str = typer.Argument(..., metavar="LAB"), host: str = typer.Argument(...)) -> None:
    """An interactive shell in a host, or in its observer for a host whose image has no tools (the engine's
    own client handles the terminal)."""
    from ..backend.base import EngineError

    backend = engine()
    container = _where(_running_or_die(backend, lab_name), host)
    try:
        backend.attach_terminal(container, ["bash"])
    except EngineError as e:
        die(EXIT_ENVIRONMENT, str(e))


def status(lab_name: Optional[str] = typer.Argument(None, metavar="[LAB]")) -> None:
    """Hosts, their state, and the sockets of interest now."""
    from ..observe.sockets import parse_netstat
    from ..play.lifecycle import running_labs

    backend = engine()
    runs = [r for r in running_labs(backend).values() if lab_name in (None, r.lab)]
    if lab_name and not runs:
        die(EXIT_BAD_INPUT, f"{lab_name}: lab is not up (lab ls shows what runs)")
    if not runs:
        out.print("no lab is up")
    for r in runs:
        state = "up" if r.left_up else ("starting" if r.owner_alive else "orphaned (lab gc removes it)")
        out.print(f"{r.lab}  {state}  run {r.run}  {r.run_dir}", markup=False)
        for o in sorted(r.objects, key=lambda o: (o.kind, o.name)):
            if o.kind != "container":
                continue
            st = backend.state(o.name)
            role = o.labels.get("tcplab.role", "?")
            out.print(f"  {o.name:<34} {role:<8} {st.status}", markup=False)
            if role == "host" and st.running:
                tables = _observer(r, o.labels.get("tcplab.host", "")) or o.name  # a host without tools: its observer's
                for rec in parse_netstat(backend.exec(tables, ["netstat", "-tanp"]).stdout):
                    if rec.local_addr.startswith("127."):
                        continue  # the engine's embedded DNS resolver, not the lab's
                    owner = f"{rec.pid}/{rec.program}" if rec.pid else "-"
                    out.print(f"      {rec.state:<12} {rec.local_addr}:{rec.local_port} -> "
                              f"{rec.peer_addr}:{rec.peer_port or '*'}  {owner}", markup=False)
