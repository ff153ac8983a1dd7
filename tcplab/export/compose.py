"""A lab as a compose file that ``docker-compose`` (1.29, or ``docker compose``) runs as is.

The containers are the plan's (:mod:`tcplab.plan`), the one ``lab up`` creates,
made for a run directory that is never written (its files are ``./runs/<lab>/``
beside this file), so a sidecar added to the plan shows up here without a
change. Each :class:`ContainerSpec` then becomes one service:

* container names become service names (``tcplab-<lab>-server-capture`` ->
  ``server-capture``): compose adds its project name, so two projects never clash;
* ``container:<name>`` network and PID modes become ``service:<service>``;
* mounts under that run directory become ``./runs/<lab>/...``, relative
  to the file; the host's tracefs is the one host path kept (the tracer's, in
  a profile of its own, since a machine may not have it);
* labels: ``tcplab.compose: <lab>`` replaces ``tcplab.lab``/``tcplab.run`` and
  the owner labels. ``lab ls/status/down/gc`` select objects by ``tcplab.lab``,
  so they never list, collect or remove what compose runs;
* a host's program becomes the service's command: a fixed ``sh -c`` script
  runs ``labrun`` on the program's argv, passed as positional arguments, then
  holds PID 1 (``labrun`` daemonizes). Lab data never enters the script text.

Compose interpolates ``$`` in every string value, so each value is escaped
(``$`` -> ``$$``); the one variable the file means is the base image's. Text that
is not all printable (a multi-line argument) is double-quoted with escapes. The
steps are comment lines, one command each, whose words a shell splits into the
lab's argv exactly (``$'...'`` for an argument with a line break); what to type
for a step is its player's (:meth:`tcplab.play.steps.StepPlayer.by_hand`).
"""
from __future__ import annotations

import math
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..backend.base import LABEL_HOST, LABEL_ROLE, ContainerSpec, Mount
from ..model import Lab, step_title
from ..model.lab import step_explain
from ..model.lab import Ready, Step
from ..observe.tracer import TRACEFS
from ..paths import HOME, IMAGES_DIR
from ..peers import peer_kind
from ..plan import LabPlan, RunNames, SidecarPlan, plan_lab
from ..plan.lab_plan import network_name
from ..play.steps import HandLine, InHost, Note, OnMachine, player_for
from ..rundir import RunDir

FORMATS = ("compose",)
LABEL_COMPOSE = "tcplab.compose"
NETWORK = "lab"  # the network's key in the file; compose names it <project>_lab
TRACER_PROFILE = "tracer"
BASE_IMAGE = "tcplab/base:bookworm"
# Compose interpolates this one: TCPLAB_BASE_IMAGE picks another base, as it does for `lab`.
BASE_ARG = "${TCPLAB_BASE_IMAGE:-" + BASE_IMAGE + "}"
# Fixed script text; the program's name and argv arrive as "$@", never inside the text.
HOLD_SCRIPT = 'labrun "$@" && exec sleep infinity'
HOLD_NAME = "labhold"  # the script's $0, what ps shows
RUNS = "runs"  # captures and logs go to ./runs/<lab>/ beside the file
# The run directory the plan is made for: never created, never in the file (its mounts become ./runs/<lab>/).
PLANNED_RUN_DIR = Path("/tcplab-export")
STORY_WIDTH = 88


class ExportError(Exception):
    """The lab's containers hold something a compose file cannot carry (e.g. a path of this machine)."""


@dataclass(frozen=True)
class ComposeExport:
    text: str
    services: tuple[str, ...]


def export_plan(lab: Lab) -> tuple[LabPlan, RunDir, RunNames]:
    """What `lab up` would create for the lab, for a run directory beside the compose file."""
    rd = RunDir(PLANNED_RUN_DIR / lab.name)
    names = RunNames(lab.name, f"compose-{lab.name}", ".")
    return plan_lab(lab, names, rd, packet_by_packet=True), rd, names


# --- one container -> one service ----------------------------------------

def service_name(names: RunNames, container: str) -> str:
    prefix = f"tcplab-{names.lab}-"
    if not container.startswith(prefix) or container == prefix:
        raise ExportError(f"container {container}: not named like the lab's containers ({prefix}...)")
    return container[len(prefix):]


def escape(value: Any) -> Any:
    """``value`` with every ``$`` in its strings doubled, so compose reads them literally."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    return value


def volume(mount: Mount, rd: RunDir, lab: str) -> str:
    """A bind mount in compose's short syntax, its source relative to the file (or tracefs)."""
    if mount.kind == "engine":  # the engine machine's own path (tracefs): the same on any machine
        source = mount.source
    else:
        try:
            rel = Path(mount.source).resolve().relative_to(rd.path)
        except ValueError:
            raise ExportError(f"mount {mount.source} -> {mount.target} is outside the run directory: "
                              "a compose file must not carry a path of the machine that wrote it") from None
        # "./" matters: a source without it is a named volume to compose
        source = "/".join([".", RUNS, lab, *rel.parts])
    return f"{source}:{mount.target}" + (":ro" if mount.read_only else "")


def build_section(image: str, images_context: str) -> dict[str, Any] | None:
    """How compose builds one of the project's images from ``images/``, as ``lab images build`` does."""
    if not image.startswith("tcplab/"):
        return None
    own = image.split("/", 1)[1].split(":", 1)[0]
    return {"context": escape(images_context), "dockerfile": f"{own}/Dockerfile", "args": {"BASE": BASE_ARG}}


def program_command(name: str, argv: list[str]) -> list[str]:
    """The host's command: start its program as lab program ``name`` (labrun), then keep PID 1 alive."""
    return ["sh", "-c", HOLD_SCRIPT, HOLD_NAME, name, *argv]


def healthcheck(name: str, ready: Ready) -> dict[str, Any]:
    """The program's readiness (as ``lab up`` waits for it) as a healthcheck: ``docker-compose ps`` shows it."""
    if ready.listen is not None:
        test = ["CMD", "sh", "-c", 'ss -Htln "sport = :$1" | grep -q .', "ready", str(ready.listen)]
    else:
        test = ["CMD", "grep", "-qP", "--", ready.log or "", f"/var/log/lab/{name}.log"]  # a regex, as lab up reads it
    return {"test": test, "interval": "1s", "timeout": "5s", "retries": max(1, math.ceil(ready.timeout))}


def own_image_sections(lab: Lab, host: str, lab_dir: str) -> dict[str, Any]:
    """A host of the lab's own image as compose has it: ``build`` (its context relative to the compose file,
    ``lab_dir`` being the lab file's directory from there) and ``pull_policy``."""
    h = lab.hosts[host]
    if h.build is None:
        return {"pull_policy": h.pull}
    context = (Path(lab_dir) / h.build.context).as_posix()
    build: dict[str, Any] = {"context": context if context.startswith((".", "/")) else f"./{context}"}
    if h.build.dockerfile != "Dockerfile":
        build["dockerfile"] = h.build.dockerfile
    if h.build.args:
        build["args"] = dict(h.build.args)
    if h.build.target:
        build["target"] = h.build.target
    return {"build": build, "pull_policy": "build" if h.image is None else h.pull}


def to_service(spec: ContainerSpec, lab: Lab, rd: RunDir, names: RunNames, images_context: str,
               lab_dir: str = ".") -> dict[str, Any]:
    role = spec.labels.get(LABEL_ROLE, "")
    host = spec.labels.get(LABEL_HOST, "")
    own = role == "host" and host in lab.hosts and lab.hosts[host].own_program
    # labrun starts a project host's program; a host of the lab's own image runs its image's program itself
    program = lab.hosts[host].program if role == "host" and host in lab.hosts and not own else None
    svc: dict[str, Any] = {"image": spec.image}
    if role == "tracer":
        svc["profiles"] = [TRACER_PROFILE]
    if spec.hostname and not spec.joins:
        svc["hostname"] = spec.hostname
    if spec.init:
        svc["init"] = True
    if spec.user:
        svc["user"] = spec.user
    command = program_command(program.name, program.run) if program is not None and program.run else spec.command
    if command is not None:
        svc["command"] = list(command)
    if spec.joins:
        svc["network_mode"] = "service:" + service_name(names, spec.joins)
    elif spec.isolated:
        svc["network_mode"] = "none"
    elif spec.network is not None:
        keys = network_keys(lab, names)
        svc["networks"] = {}
        for net, ip in ((spec.network, spec.ip), *spec.more_networks):
            if net not in keys:
                raise ExportError(f"container {spec.name}: on no network of the lab ({net!r})")
            endpoint: dict[str, Any] = {}
            if ip:
                endpoint["ipv4_address"] = ip
            if spec.aliases:
                endpoint["aliases"] = list(spec.aliases)
            svc["networks"][keys[net]] = endpoint
    else:
        raise ExportError(f"container {spec.name}: on no network of the lab")
    if spec.joins_pid:
        svc["pid"] = "service:" + service_name(names, spec.joins_pid)
    if spec.sysctls:
        svc["sysctls"] = dict(spec.sysctls)
    if spec.cap_drop:
        svc["cap_drop"] = list(spec.cap_drop)
    if spec.cap_add:
        svc["cap_add"] = list(spec.cap_add)
    if spec.mem_limit:
        svc["mem_limit"] = spec.mem_limit
    if spec.nano_cpus:
        svc["cpus"] = round(spec.nano_cpus / 1e9, 3)
    if spec.pids_limit:
        svc["pids_limit"] = spec.pids_limit
    if spec.environment:
        svc["environment"] = dict(spec.environment)
    if spec.mounts:
        svc["volumes"] = [volume(m, rd, lab.name) for m in spec.mounts]
    labels = {LABEL_COMPOSE: lab.name, LABEL_ROLE: role}
    if host:
        labels[LABEL_HOST] = host
    svc["labels"] = labels
    if program is not None and program.ready is not None:
        svc["healthcheck"] = healthcheck(program.name, program.ready)
    svc = escape(svc)
    if own:
        return {"image": svc.pop("image"), **escape(own_image_sections(lab, host, lab_dir)), **svc}
    build = build_section(spec.image, images_context)
    if build is not None:
        svc = {"image": svc.pop("image"), "build": build, **svc}
    return svc


def network_keys(lab: Lab, names: RunNames) -> dict[str, str]:
    """The engine's name of each of the lab's networks -> its key under the compose file's ``networks:``."""
    return {network_name(lab, names, key): key if lab.networks else NETWORK for key in lab.lab_networks()}


def networks(plan: LabPlan, lab: Lab, names: RunNames) -> dict[str, Any]:
    """The lab's networks as ``lab up`` creates them: bridges of the lab's subnets, internal (no way out); in a
    lab of several networks, bridges that carry routed packets (not internal, no masquerading; the routes sidecars
    take every host's default route away)."""
    keys = network_keys(lab, names)
    out: dict[str, Any] = {}
    for net in plan.networks:
        body: dict[str, Any] = {"driver": "bridge", "internal": not net.routed,
                                "ipam": {"config": [{"subnet": net.subnet}]}}
        options = {"com.docker.network.driver.mtu": str(net.mtu)} if net.mtu is not None else {}
        if net.routed:
            options["com.docker.network.bridge.enable_ip_masquerade"] = "false"
        if options:
            body["driver_opts"] = options
        body["labels"] = {LABEL_COMPOSE: lab.name, LABEL_ROLE: "network"}
        out[keys[net.name]] = body
    return out


# --- the file ------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Block style, but short argv-like lists on one line; never anchors; text that is not all
    printable (line breaks, tabs, control characters) double-quoted with escapes."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(x, (str, int, float, bool)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML would write a line break, NEL or LS raw inside a quoted scalar and fold it on reading;
    # YAML 1.2 readers (Compose v2) do not take NEL and LS as breaks at all. Escapes read the same everywhere.
    style = None if data.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def _dump(data: dict[str, Any], indent: int) -> str:
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100,
                     allow_unicode=True)
    pad = " " * indent
    # at "\n" only, where the emitter breaks lines: str.splitlines() also cuts at \x85, \u2028...
    lines = text.removesuffix("\n").split("\n")
    return "".join((pad + line if line.strip() else line) + "\n" for line in lines)


# Everything YAML reads as a line break (\r, NEL, LS, PS) or a C0 control, so lab
# text in a comment can never end the comment and become YAML of its own.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")


def comment(text: str, indent: int = 0) -> str:
    """``text`` as comment lines."""
    pad = " " * indent
    lines = []
    for line in text.split("\n"):
        line = _UNSAFE.sub("?", line.replace("\t", "    ")).rstrip()
        lines.append(f"{pad}# {line}".rstrip() + "\n")
    return "".join(lines)


_C_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def shell_word(arg: str) -> str:
    """``arg`` as one shell word on one line: POSIX single quotes when it is all printable, else bash's
    ``$'...'`` with escapes (a line break must not end the comment line the command is on)."""
    if arg.isprintable():
        return shlex.quote(arg)
    out = []
    for ch in arg:
        if ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:  # bytes, not \u: the same whatever the reader's locale
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass")))
    return "$'" + "".join(out) + "'"


def shell_join(argv: Iterable[str]) -> str:
    return " ".join(shell_word(a) for a in argv)


def needs_bash(argv: Iterable[str]) -> bool:
    return not all(a.isprintable() for a in argv)


def _dc(*argv: str) -> str:
    return "  " + shell_join(["docker-compose", *argv])


def hand_lines(lab: Lab, step: Step) -> list[HandLine]:
    """What a person types for one step of the lab (its player says), the run's files beside this file."""
    return player_for(step).by_hand(step, lab, "/".join([".", RUNS, lab.name]))


def step_lines(lab: Lab, i: int, step: Step) -> list[str]:
    """One step of the lab as commands a person types (lines of a comment)."""
    lines = [f"step {i + 1}: {step_title(step)}"]
    explain = step_explain(step)
    if explain is not None:  # the lab's explanation for the class, as it wrote it
        lines += [f"  # {w}" for w in textwrap.wrap(" ".join(explain.split()), STORY_WIDTH)]
    for line in hand_lines(lab, step):
        if isinstance(line, InHost):
            lines.append(_dc("exec", "-T", line.host, *line.argv))
        elif isinstance(line, OnMachine):
            lines.append("  " + shell_join(line.argv))
        else:
            lines.append(f"  # {line.text}")
    return lines


def step_argvs(lab: Lab, step: Step) -> list[list[str]]:
    """The command lines a step puts in the file (to see whether they need bash's $'...')."""
    return [line.argv for line in hand_lines(lab, step) if not isinstance(line, Note)]


def header(lab: Lab, source: str, file_name: str, images_context: str, sets: list[str]) -> str:
    project = lab.name
    runs = "/".join([".", RUNS, lab.name])
    nets = [str(n.subnet) for n in lab.lab_networks().values()]
    subnets = f"The subnet {nets[0]} is" if len(nets) == 1 else f"The subnets {', '.join(nets)} are"
    made = f"`lab export {lab.name}` from {source}" + (f" with {' '.join('--set ' + s for s in sets)}" if sets else "")
    parts = [
        f"{lab.name}: {lab.summary}" if lab.summary else lab.name,
        "",
        f"Written by {made}. Do not edit: export again",
        "(tests/unit/test_export.py fails while a committed file differs from a fresh export).",
    ]
    if lab.story:
        parts += ["", *textwrap.wrap(" ".join(lab.story.split()), STORY_WIDTH)]
    parts += [
        "",
        "Run it without tcplab, from this file's directory (docker-compose 1.29, or `docker compose`):",
        "",
        "  lab images build    # once: makes the base image tcplab/base:bookworm locally (mmdebstrap;",
        "                      # no registry has it) and the images below; or build them with compose:",
        f"  export COMPOSE_FILE={file_name} COMPOSE_PROJECT_NAME={project}",
        f"  docker-compose up -d     # builds a missing image from {images_context}/<name>/Dockerfile",
        "                           # (build arg BASE; TCPLAB_BASE_IMAGE picks another base, as for lab)",
        "  docker-compose ps        # a host turns healthy once its program is ready",
        "  docker-compose logs      # each capture prints 'listening on' when it captures",
        "  (the steps below)",
        "  docker-compose down -v   # removes every container and the network",
        "",
    ]
    programs = {h: host.program.run for h, host in lab.hosts.items()
                if host.program and host.program.run and not host.own_program}
    if programs:
        # one line each, never wrapped: the argv exactly, as a shell reads it
        parts += ["Host programs start with their containers (lab up starts them before step 1):",
                  *(f"  {h}: {shell_join(run)}" for h, run in programs.items()), ""]
    parts += [
        f"Captures: one tcpdump per host writes {runs}/capture/<host>.pcap (relative to this file),",
        "packet by packet (with capture.blocks lab up's write a block at a time and drain it before a stop,",
        "which compose cannot).",
        f"The tracer (kernel TCP state changes into {runs}/sockets/transitions.jsonl) is optional:",
        f"it needs the host's tracefs at {TRACEFS}, the one path of the machine in this file;",
        f"`docker-compose --profile {TRACER_PROFILE} up -d` starts it too.",
        "",
        f"Labels: every object carries {LABEL_COMPOSE}={lab.name} and no tcplab.lab label. `lab ls`,",
        "`lab status`, `lab down` and `lab gc` select objects by tcplab.lab, so they neither list nor",
        "remove what compose runs (`lab gc` would take it for what a dead run left): docker-compose",
        f"owns it. {subnets} the lab's own: `lab up {lab.name}` and this file",
        "cannot run on one engine at the same time.",
        "",
        "The steps: `lab up` plays them with timing (it waits for each program to be ready, for FINs",
        "and RSTs, and snapshots the socket tables); compose has no steps, so they are here as the",
        "commands to type, in order. Comments, not a script beside the file: this file alone is the",
        "whole lab to hand on, and a generated script would be a shell program made of lab data.",
    ]
    if needs_bash([a for run in programs.values() for a in run]
                  + [a for s in lab.steps for argv in step_argvs(lab, s) for a in argv]):
        parts += ["An argument with a line break or another character that is not printable is written $'...'",
                  "with that character escaped: type these commands into bash (or zsh, ksh), not dash."]
    parts += [
        "",
    ]
    for i, step in enumerate(lab.steps):
        parts += step_lines(lab, i, step)
    if not lab.steps:
        parts.append("(this lab has no steps)")
    return comment("\n".join(parts))


def _service_comment(spec: ContainerSpec, lab: Lab, sidecar: SidecarPlan | None) -> str:
    """What the service is, in a comment above it: a host's address and program, a sidecar's job."""
    host = spec.labels.get(LABEL_HOST, "")
    if sidecar is None:
        h = lab.hosts[host]
        text = f"host {host}, {lab.host_ip(host)}"
        if h.own_program:
            text += f": it runs its image's own program ({h.program_name}; its log is the container's)"
        elif h.program:
            text += f": its program {h.program.name} runs under labrun (logs in /var/log/lab/)"
        note = peer_kind(h.peer.os).host_note(h.peer)
        if note:
            text += f"; {note}"
    elif sidecar.role == "tracer":
        text = (f"OPTIONAL (profile {TRACER_PROFILE}): needs the host's tracefs at {TRACEFS};"
                f" `docker-compose --profile {TRACER_PROFILE} up -d`")
    else:
        text = sidecar.about or f"{sidecar.role} sidecar" + (f" of {host}" if host else "")
    return comment("\n".join(textwrap.wrap(text, STORY_WIDTH, break_on_hyphens=False)), 2)


def export_compose(lab: Lab, resolved: dict[str, Any], *, source: str, file_name: str | None = None,
                   images_context: str = "../images", sets: Iterable[str] = (), lab_dir: str = ".") -> ComposeExport:
    """The compose file of ``lab``. ``source`` names the lab file in the header (keep it relative);
    ``images_context`` is the ``images/`` directory and ``lab_dir`` the lab file's directory (where its
    build contexts are), both relative to where the file is written."""
    plan, rd, names = export_plan(lab)
    containers: list[tuple[ContainerSpec, SidecarPlan | None]] = [(h.spec, None) for h in plan.hosts]
    containers += [(s.spec, s) for s in plan.sidecars()]
    services: dict[str, tuple[ContainerSpec, SidecarPlan | None, dict[str, Any]]] = {}
    for spec, sidecar in containers:
        name = service_name(names, spec.name)
        if name in services:
            raise ExportError(f"two containers would be service {name!r}: rename a host")
        services[name] = (spec, sidecar, to_service(spec, lab, rd, names, images_context, lab_dir))
    text = header(lab, source, file_name or f"{lab.name}.yml", images_context, list(sets))
    text += "\nservices:\n"
    for i, (name, (spec, sidecar, body)) in enumerate(services.items()):
        text += ("\n" if i else "") + _service_comment(spec, lab, sidecar) + _dump({name: body}, 2)
    text += "\nnetworks:\n" + _dump(networks(plan, lab, names), 2)
    return ComposeExport(text, tuple(services))


def export_to(target: Path, lab: Lab, resolved: dict[str, Any], lab_path: Path,
              sets: Iterable[str] = ()) -> ComposeExport:
    """The file ``lab export`` writes at ``target``: ``images/`` relative to the target's directory,
    the lab file named relative to the checkout (or by its bare name)."""
    images = Path(os.path.relpath(IMAGES_DIR.resolve(), target.parent.resolve())).as_posix()
    try:
        source = lab_path.resolve().relative_to(HOME.resolve()).as_posix()
    except ValueError:
        source = lab_path.name
    lab_dir = Path(os.path.relpath(lab_path.resolve().parent, target.parent.resolve())).as_posix()
    return export_compose(lab, resolved, source=source, file_name=target.name, images_context=images, sets=sets,
                          lab_dir=lab_dir)
