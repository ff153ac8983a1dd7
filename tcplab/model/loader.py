"""Loading a lab: YAML text -> overrides (``--set``) -> validated :class:`Lab`.

Every error becomes a :class:`LabError` naming the file and the field by its
dotted path (``hosts.win.peer.syn``), in the manner of netlab's validator.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from .. import paths
from . import messages, yamlread
from .build import check_build
from ..peers import peer_kind
from .errors import LabError
from .topology import topology_problems
from .lab import (EXPECTATION_KINDS, PROJECT_IMAGES, SECONDS_SYSCTLS, CounterMatch, Lab, PacketMatch, ProgramMatch,
                  RetransmitMatch, StartStep, StateMatch, StepProblem, StorySoFar, step_name, sysctl_ref)
from .yamlread import MAX_FILE_BYTES
from .reference import reference_problems

__all__ = ["MAX_FILE_BYTES", "apply_set", "check_build_contexts", "check_references", "load_lab", "parse_yaml",
           "validate"]


def parse_yaml(text: str, file: str) -> dict[str, Any]:
    """The lab file's mapping, or a LabError with the line of the problem (see yamlread for the limits)."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise LabError(file, "", f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; a lab file is a few KiB")
    data = yamlread.load(text, file)
    if data is None:
        raise LabError(file, "", "the file is empty: a lab needs at least a name and hosts")
    if not isinstance(data, dict):
        kinds: dict[type, str] = {list: "a list", str: "a string"}
        kind = kinds.get(type(data), f"a {type(data).__name__}")
        raise LabError(file, "", f"a lab file is a mapping (name: ..., hosts: ..., steps: ...), not {kind}")
    return data


# --- --set overrides -----------------------------------------------------

_SET_RE = re.compile(r"^([A-Za-z0-9_.-]+)=(.*)$", re.S)
_SET_USAGE = "expected KEY=VALUE with KEY a dotted path, like --set peers.win.fin_wait2_timeout=2s"


def _alias(path: list[str]) -> list[str]:
    """``peers.win.X`` is short for ``hosts.win.peer.X``; a sysctl's name is one key although it has dots
    (``hosts.client.sysctls.net.ipv4.tcp_syn_retries``)."""
    if len(path) >= 2 and path[0] == "peers":
        return ["hosts", path[1], "peer", *path[2:]]
    if len(path) > 4 and path[0] == "hosts" and path[2] == "sysctls":
        return [*path[:3], ".".join(path[3:])]
    return path


def set_path(assignment: str) -> str | None:
    """The dotted field an assignment sets (``peers.`` expanded), None when it is not KEY=VALUE."""
    m = _SET_RE.match(assignment)
    if not m:
        return None
    return ".".join(_alias(m.group(1).split(".")))


def apply_set(data: dict[str, Any], assignment: str, file: str) -> dict[str, Any]:
    """A copy of ``data`` with one ``KEY=VALUE`` applied; VALUE is read as a YAML scalar/flow value."""
    m = _SET_RE.match(assignment)
    if not m or ".." in m.group(1) or m.group(1).startswith(".") or m.group(1).endswith("."):
        raise LabError(file, f"--set {messages.clip(assignment)}", _SET_USAGE)
    raw_path = m.group(1).split(".")
    path = _alias(raw_path)
    if raw_path[0] == "peers" and len(raw_path) >= 2:
        hosts = data.get("hosts")
        if not isinstance(hosts, dict) or raw_path[1] not in hosts:
            known = ", ".join(str(h) for h in hosts) if isinstance(hosts, dict) else "none"
            raise LabError(file, ".".join(raw_path[:2]), f"--set: no host '{raw_path[1]}' (hosts: {known})")
        if len(raw_path) == 2:
            raise LabError(file, ".".join(raw_path), "--set: name a field of the peer, like "
                           f"peers.{raw_path[1]}.fin_wait2_timeout")
    try:
        value = yamlread.load(m.group(2), file) if m.group(2) != "" else ""
    except LabError:
        value = m.group(2)  # not YAML: the text as it is
    out = copy.deepcopy(data)
    node: Any = out
    for i, key in enumerate(path[:-1]):
        here = ".".join(path[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                what = f"no item {key}" if key.isdigit() else f"'{messages.clip(key, 20)}' is not an item number"
                raise LabError(file, here, f"--set: {what} in a list of {len(node)} (items are 0 to {len(node) - 1})"
                               if node else f"--set: {what}: the list is empty")
            node = node[int(key)]
        elif isinstance(node, dict):
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]
        if not isinstance(node, (dict, list)):
            raise LabError(file, here, f"--set: this field holds a value ({messages.short(node)}), not fields")
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise LabError(file, ".".join(path), f"--set: no item {last} in a list of {len(node)}")
        node[int(last)] = value
    else:
        node[last] = value
    return out


# --- validation ----------------------------------------------------------

# What compose users write that a lab file may never ask for, and why: a lab file may come from a stranger.
_STRANGER = "a lab file may come from a stranger, so it cannot ask for"
FORBIDDEN_HOST_FIELDS: dict[str, str] = {
    "privileged": f"{_STRANGER} privileged mode",
    "network_mode": f"{_STRANGER} another network (the host's, a container's): a lab host is on the lab's network",
    "pid": f"{_STRANGER} the host's (or another container's) PID namespace",
    "ipc": f"{_STRANGER} the host's (or another container's) IPC namespace",
    "uts": f"{_STRANGER} the host's UTS namespace",
    "cgroup": f"{_STRANGER} the host's cgroup namespace",
    "cgroup_parent": f"{_STRANGER} a cgroup of its choosing",
    "userns_mode": f"{_STRANGER} the host's user namespace",
    "volumes": f"{_STRANGER} mounts of the host's files or volumes",
    "volumes_from": f"{_STRANGER} another container's volumes",
    "devices": f"{_STRANGER} the host's devices",
    "device_cgroup_rules": f"{_STRANGER} the host's devices",
    "security_opt": f"{_STRANGER} security options (seccomp, AppArmor, SELinux off)",
    "cap_drop": "tcplab decides which capabilities a host drops",
    "tmpfs": "tcplab mounts nothing a lab file asks for",
    "sysctls_host": f"{_STRANGER} the host's kernel settings",
}


def _refuse_host_powers(data: dict[str, Any], file: str) -> None:
    """Fields of compose that would give a lab's container power over the machine: refused by name, with why,
    before anything else (so a user from compose reads why, not 'unknown field')."""
    hosts = data.get("hosts")
    if not isinstance(hosts, dict):
        return
    for name, host in hosts.items():
        if not isinstance(host, dict):
            continue
        for key in host:
            if key in FORBIDDEN_HOST_FIELDS:
                raise LabError(file, f"hosts.{name}.{key}", f"not allowed: {FORBIDDEN_HOST_FIELDS[key]}")
        caps = host.get("cap_add")
        if isinstance(caps, list):
            for i, cap in enumerate(caps):
                if isinstance(cap, str) and cap.upper().removeprefix("CAP_") not in ("NET_ADMIN", "NET_RAW"):
                    raise LabError(file, f"hosts.{name}.cap_add.{i}",
                                   f"not allowed: {messages.clip(cap, 30)}: {_STRANGER} capabilities beyond "
                                   "NET_ADMIN and NET_RAW")


def validate(data: dict[str, Any], file: str) -> Lab:
    _refuse_host_powers(data, file)
    try:
        lab = Lab.model_validate(data)
    except ValidationError as e:
        field, message = messages.describe(e.errors(), Lab)
        raise LabError(file, field, message) from None
    check_references(lab, file)
    return lab


def check_references(lab: Lab, file: str, known_images: set[str] | None = None, lab_dir: Path | None = None) -> None:
    """Cross-field rules pydantic cannot see: hosts named in steps exist, names are unique...

    With ``known_images`` (a lab about to run from this project) the lab is also checked against the
    project's files: each host's image is one of them and each ``program.build`` (relative to ``lab_dir``,
    the lab file's directory; default the current one) is copied by its image.
    """
    hosts = lab.hosts
    for name, host in hosts.items():
        if host.image is None and host.build is None:
            raise LabError(file, f"hosts.{name}.image", "a host needs an image (e.g. tcplab/server, myorg/svc:1.0) "
                           "or a build (a folder with a Dockerfile, beside the lab file)")
        if host.build is not None and host.image is not None and host.image.startswith(PROJECT_IMAGES):
            raise LabError(file, f"hosts.{name}.image", f"'{host.image}' is one of the project's images: a built "
                           "image cannot take its name (drop image:, or name it e.g. myorg/svc:dev)")
        if host.image_kind == "project" and host.pull != "missing":
            raise LabError(file, f"hosts.{name}.pull", f"{host.image} is one of the project's images, built here "
                           "from images/ (lab images build), never pulled: drop pull")
        if host.image_kind == "project" and host.program is not None and host.program.run is None:
            raise LabError(file, f"hosts.{name}.program.run", f"{host.image} has no program of its own: say what "
                           "to run (e.g. run: [server, '9000'])")
        if host.own_program and host.program is not None and host.program.build is not None:
            raise LabError(file, f"hosts.{name}.program.build", "program.build names a source file of the "
                           "project's images; this host's image is its own (say how it is made with build:)")
    if known_images is not None:
        for name, host in hosts.items():
            if host.image_kind == "project" and host.image not in known_images:
                raise LabError(file, f"hosts.{name}.image",
                               f"unknown image '{host.image}' (known: {', '.join(sorted(known_images))})")
            if host.image is not None and host.program is not None and host.program.build is not None:
                wrong = check_build(host.program.build, host.image, lab_dir or Path(), paths.IMAGES_DIR)
                if wrong:
                    raise LabError(file, f"hosts.{name}.program.build", wrong)
    for field, message in topology_problems(lab):
        raise LabError(file, field, message)
    for name, host in hosts.items():
        for problem in peer_kind(host.peer.os).problems(host.peer):
            raise LabError(file, f"hosts.{name}.peer.{problem.field}", problem.message)
    story = StorySoFar(list(hosts), routers={name for name, host in hosts.items() if host.router})
    for name, host in hosts.items():
        if host.program_name is not None:
            story.started[(name, host.program_name)] = -1
    for i, step in enumerate(lab.steps):
        where = f"steps.{i}"
        on = getattr(step, "host", None)  # every kind that names a host names one of the lab's
        if on is not None and on not in hosts:
            raise LabError(file, f"{where}.host", f"unknown host '{on}' (hosts: {', '.join(hosts)})")
        try:
            step.check_story(i, story)
        except StepProblem as e:
            raise LabError(file, f"{where}.{e.field}", e.message) from None
    _check_expectations(lab, file, story.snapshots)
    problems = reference_problems(lab)
    if problems:
        raise LabError(file, *problems[0])


def _check_expectations(lab: Lab, file: str, snapshots: set[str]) -> None:
    """Expectations name hosts, snapshots and anchors that exist; each says one thing."""
    hosts = lab.hosts
    names: set[str] = set()
    snapshots = snapshots | {"end"}
    steps = {f"steps.{i}" for i in range(len(lab.steps))} | {step_name(s, i) for i, s in enumerate(lab.steps)}
    for i, exp in enumerate(lab.expect):
        where = f"expect.{i}"
        given = exp.kinds_given()
        if len(given) != 1:
            raise LabError(file, where, f"an expectation has exactly one of: {', '.join(EXPECTATION_KINDS)}")
        if exp.name in names:
            raise LabError(file, f"{where}.name", f"expectation name '{exp.name}' is used twice")
        body = getattr(exp, given[0])
        for field in (("from_", "to", "seen_at") if exp.packet is not None else ("host", "peer")):
            h = getattr(body, field, None)
            if isinstance(h, str) and h not in hosts:
                raise LabError(file, f"{where}.{given[0]}.{field.rstrip('_')}",
                               f"unknown host '{h}' (hosts: {', '.join(hosts)})")
        if exp.program is not None:
            _check_program(lab, file, where, exp.program)
        if exp.counter is not None:
            _check_counter(file, where, exp.counter, snapshots)
        if exp.state is not None:
            _check_state(file, where, exp.state)
            if exp.state.at not in snapshots:
                raise LabError(file, f"{where}.state.at",
                               f"no snapshot '{exp.state.at}' (snapshots: {', '.join(sorted(snapshots))})")
            said = [k for k, v in (("is", exp.state.is_), ("not", exp.state.not_), ("absent", exp.state.absent or None))
                    if v is not None]
            if len(said) != 1:
                raise LabError(file, f"{where}.state",
                               "give exactly one of 'is: STATE', 'not: STATE' or 'absent: true'")
        anchor_field = "after" if exp.packet is not None or exp.retransmit is not None else "near"
        anchor = getattr(body, anchor_field, None)
        if anchor is not None and anchor not in names and anchor not in snapshots and anchor not in steps:
            raise LabError(file, f"{where}.{given[0]}.{anchor_field}",
                           f"'{anchor}' is not an earlier expectation, a snapshot or a step "
                           f"(steps: {', '.join(step_name(s, n) for n, s in enumerate(lab.steps))})")
        if exp.packet is not None:
            pm = exp.packet
            _check_sequence(lab, file, where, pm)
            if pm.delay is not None and pm.after is None:
                raise LabError(file, f"{where}.packet.delay",
                               "a delay needs 'after' (the expectation or step it counts from)")
            if isinstance(pm.delay, str) and not sysctl_ref(pm.delay):
                try:
                    lab.duration_field(pm.delay)
                except KeyError:
                    raise LabError(file, f"{where}.packet.delay",
                                   f"'{pm.delay}' is not a duration field of a peer of this lab "
                                   "(peers.HOST.fin_wait2_timeout or peers.HOST.tcp_fin_timeout)") from None
            if pm.before is not None and pm.before not in names and pm.before not in snapshots \
                    and pm.before not in steps:
                raise LabError(file, f"{where}.packet.before",
                               f"'{pm.before}' is not an earlier expectation, a snapshot or a step "
                               f"(steps: {', '.join(step_name(s, n) for n, s in enumerate(lab.steps))})")
            if pm.within is not None and pm.after is None:
                raise LabError(file, f"{where}.packet.within", "a window needs 'after' (the moment it starts at)")
            if pm.within is not None and pm.delay is not None:
                raise LabError(file, f"{where}.packet.within", "give delay (one packet at a moment) or within "
                               "(the packets of a window), not both")
            if pm.nth is not None and pm.any:
                raise LabError(file, f"{where}.packet.nth", "give nth (that one packet) or any: true (whichever "
                               "packet), not both")
            if pm.count is not None and (pm.nth is not None or pm.any):
                raise LabError(file, f"{where}.packet.count", "count counts every matching packet of the window: "
                               f"drop {'nth' if pm.nth is not None else 'any'}")
            if pm.flags is not None and pm.has_flags is not None:
                raise LabError(file, f"{where}.packet.has_flags",
                               "give flags (exactly) or has_flags (at least), not both")
            both = set(pm.options or pm.with_options or []) & set(pm.without_options or [])
            if both:
                raise LabError(file, f"{where}.packet.without_options",
                               f"{', '.join(sorted(both))} is also required present")
        if exp.retransmit is not None:
            _check_retransmit(file, where, exp.retransmit, names | snapshots | steps, lab)
        names.add(exp.name)


def _check_retransmit(file: str, where: str, rm: RetransmitMatch, moments: set[str], lab: Lab) -> None:
    """A retransmission window is placed as a packet's: from ``after``, up to ``within`` or ``before``; a sequence
    or a count is every retransmission of it."""
    at = f"{where}.retransmit"
    if rm.before is not None and rm.before not in moments:
        raise LabError(file, f"{at}.before", f"'{rm.before}' is not an earlier expectation, a snapshot or a step "
                       f"(steps: {', '.join(step_name(s, n) for n, s in enumerate(lab.steps))})")
    for key in ("delay", "within"):
        if getattr(rm, key) is not None and rm.after is None:
            raise LabError(file, f"{at}.{key}", "needs 'after' (the expectation or step it counts from)")
    if rm.within is not None and rm.delay is not None:
        raise LabError(file, f"{at}.within", "give delay (one retransmission at a moment) or within (those of a "
                       "window), not both")
    if rm.peer is not None and rm.peer == rm.host:
        raise LabError(file, f"{at}.peer", f"{rm.peer} is the retransmitting host: name the other end")
    if rm.intervals is not None and rm.count is not None:
        raise LabError(file, f"{at}.count", "intervals give the count (N gaps are exactly N+1 retransmissions): "
                       "drop count")
    if rm.nth is not None and (rm.count is not None or rm.intervals is not None):
        raise LabError(file, f"{at}.nth", f"{'count' if rm.count is not None else 'intervals'} takes every "
                       "retransmission of the window: drop nth")
    if rm.intervals == "keepalive":
        raise LabError(file, f"{at}.intervals", "keepalive probes are no retransmissions (the tracepoint never "
                       "fires for them): time them as packets (packet: probe: true)")


def _check_sequence(lab: Lab, file: str, where: str, pm: PacketMatch) -> None:
    """A sequence (``intervals``) is every matching packet of its window: it gives the count itself; a kernel
    timer's pattern is the sending host's; a delay read from a sysctl names a host and a sysctl in seconds."""
    ref = sysctl_ref(pm.delay)
    if ref is not None:
        host, name = ref
        if host not in lab.hosts:
            raise LabError(file, f"{where}.packet.delay", f"unknown host '{host}' (hosts: {', '.join(lab.hosts)})")
        if name not in SECONDS_SYSCTLS:
            raise LabError(file, f"{where}.packet.delay", f"{name} is not a number of seconds: a delay may be "
                           f"one of {', '.join(SECONDS_SYSCTLS)}")
    if pm.intervals is None:
        return
    if pm.count is not None:
        n = len(pm.intervals) + 1 if isinstance(pm.intervals, list) else None
        raise LabError(file, f"{where}.packet.count", "intervals give the count (N gaps are exactly N+1 packets"
                       + (f": {n} here" if n else "") + "): drop count")
    if pm.nth is not None or pm.any:
        raise LabError(file, f"{where}.packet.intervals", "a sequence is every matching packet of the window: "
                       f"drop {'nth' if pm.nth is not None else 'any'}")
    if isinstance(pm.intervals, str) and pm.from_ is None:
        raise LabError(file, f"{where}.packet.from", f"'{pm.intervals}' is the timer of the sending host: "
                       "name it with from")


def _check_state(file: str, where: str, sm: StateMatch) -> None:
    """Queues and timers are those of the socket ``is`` finds; bounds are in order."""
    extra = [k for k in ("recv_q", "send_q", "timer", "timer_left") if getattr(sm, k) is not None]
    if extra and sm.is_ is None:
        raise LabError(file, f"{where}.state.{extra[0]}", f"{extra[0]} is read from the socket 'is: STATE' "
                       "finds: give is")
    if sm.timer_left is not None and sm.timer in (None, "off"):
        raise LabError(file, f"{where}.state.timer_left", "timer_left is the time left on a timer: give "
                       "timer (timewait, keepalive, on, persist)")
    for key in ("recv_q", "send_q", "timer_left"):
        b = getattr(sm, key)
        lo, hi = getattr(b, "min", None), getattr(b, "max", None)
        if b is not None and not isinstance(b, int) and lo is None and hi is None:
            raise LabError(file, f"{where}.state.{key}", "give min, max or both")
        if lo is not None and hi is not None and lo > hi:
            raise LabError(file, f"{where}.state.{key}.min", f"min {lo} is above max {hi}")


def _check_counter(file: str, where: str, cm: CounterMatch, snapshots: set[str]) -> None:
    """The snapshots exist, ``since`` is another one, and one bound at least is given (and they can meet)."""
    for key, snap in (("at", cm.at), ("since", cm.since)):
        if snap is not None and snap not in snapshots:
            raise LabError(file, f"{where}.counter.{key}",
                           f"no snapshot '{snap}' (snapshots: {', '.join(sorted(snapshots))})")
    if cm.since is not None and cm.since == cm.at:
        raise LabError(file, f"{where}.counter.since", f"the change since '{cm.at}' at '{cm.at}' is always 0: "
                                                       "name an earlier snapshot")
    if cm.min is None and cm.max is None and cm.equals is None:
        raise LabError(file, f"{where}.counter", "give min, max or equals (the value, or its change since 'since')")
    if cm.equals is not None and (cm.min is not None or cm.max is not None):
        raise LabError(file, f"{where}.counter.equals", "give equals, or min and/or max, not both")
    if cm.min is not None and cm.max is not None and cm.min > cm.max:
        raise LabError(file, f"{where}.counter.max", f"max {cm.max} is below min {cm.min}: nothing can hold")


def _check_program(lab: Lab, file: str, where: str, pm: ProgramMatch) -> None:
    """The program is one of its host's: the host's own or one a step starts there; it says one thing."""
    host = lab.hosts[pm.host]
    names = ([host.program_name] if host.program_name else []) + [
        s.as_ for s in lab.steps if isinstance(s, StartStep) and s.host == pm.host]
    if pm.name not in names:
        elsewhere = sorted({h for h, other in lab.hosts.items() if other.program_name == pm.name}
                           | {s.host for s in lab.steps if isinstance(s, StartStep) and s.as_ == pm.name})
        known = f"programs of {pm.host}: {', '.join(dict.fromkeys(names))}" if names else f"{pm.host} runs no program"
        hint = f"; it runs on {', '.join(elsewhere)}" if elsewhere else ""
        raise LabError(file, f"{where}.program.name", f"no program '{pm.name}' on {pm.host} ({known}{hint})")
    if pm.exit is not None and pm.running:
        raise LabError(file, f"{where}.program.running", "a program that exited is not running at the end: "
                       "give exit or running: true, not both")


def load_lab(path: str | Path, sets: Iterable[str] = (), known_images: set[str] | None = None,
             display_name: str | None = None) -> tuple[Lab, dict[str, Any]]:
    """The validated lab and the resolved mapping (defaults not yet filled) it came from."""
    file = display_name or str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never more: the file may be anything
    except OSError as e:
        raise LabError(file, "", f"cannot read: {e.strerror}") from None
    data = parse_yaml(yamlread.decode(raw, file), file)
    sets = list(sets)
    for assignment in sets:
        data = apply_set(data, assignment, file)
    try:
        lab = validate(data, file)
        if known_images is not None:
            check_references(lab, file, known_images, Path(path).parent)
        check_build_contexts(lab, file, Path(path).resolve().parent)
    except LabError as e:
        raise _blame_set(e, sets) from None
    return lab, data


def check_build_contexts(lab: Lab, file: str, lab_dir: Path) -> None:
    """Each ``build`` context is a folder inside the lab file's directory (links resolved: none leads out),
    with its Dockerfile inside the context."""
    top = lab_dir.resolve()
    for name, host in lab.hosts.items():
        if host.build is None:
            continue
        where = f"hosts.{name}.build"
        context = (top / host.build.context).resolve()
        if not context.is_relative_to(top):
            raise LabError(file, f"{where}.context", f"{host.build.context} leads out of the lab file's directory "
                           "(a link?): a build context stays inside it")
        if not context.is_dir():
            raise LabError(file, f"{where}.context", f"no folder {host.build.context} beside the lab file "
                           "(a build context is relative to the lab file's directory)")
        dockerfile = (context / host.build.dockerfile).resolve()
        if not dockerfile.is_relative_to(context):
            raise LabError(file, f"{where}.dockerfile", f"{host.build.dockerfile} leads out of the build context")
        if not dockerfile.is_file():
            raise LabError(file, f"{where}.dockerfile", f"no file {host.build.dockerfile} in the build context "
                           f"{host.build.context}")


def _blame_set(e: LabError, sets: list[str]) -> LabError:
    """An error in a field that --set gave says so: the file is not what is wrong."""
    for assignment in sets:
        dotted = set_path(assignment)
        if dotted and e.field and (e.field == dotted or e.field.startswith(dotted + ".")
                                   or dotted.startswith(e.field + ".")):
            return LabError(e.file, e.field, f"{e.message} (given with --set {messages.clip(assignment)})")
    return e
