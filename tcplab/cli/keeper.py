"""The keeper of a lab left up: `lab down LAB` becomes a request to a warm process.

`lab up` plays the story and exits, leaving the lab up. A later `lab down`
would pay for a new interpreter and the imports of the model, the Docker
SDK and the report (0.5-0.7 s on two cores) before it touches the lab. So
`lab up` starts a keeper: a process that makes those imports while the lab
comes up (at low priority: it takes CPU the story leaves idle), then, once
`lab up` hands the lab over, waits on an abstract unix socket named after
the lab. `lab down LAB` asks it and relays what it says; it takes the lab
down with the same code and messages as `lab down` itself (collection,
teardown, report), then exits.

It is only a shortcut. When no keeper answers (killed, the machine
restarted, a lab brought up by an older tcplab) or one dies half-way,
`lab down` does the work itself; teardown is idempotent. A keeper leaves
when the `lab up` that started it fails or dies before handing the lab over,
when its lab is no longer up (taken down another way), or after serving one
`lab down`. Only the user who brought the lab up (or root) may ask it.

The top level imports the standard library only: the client side runs
before anything else of `lab down`.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

CHECK_EVERY = 2.0  # seconds between the keeper's looks at its run (is the lab still up?)
_TEST_ONLY_ENV = ("TCPLAB_INTERRUPT_AT", "TCPLAB_INTERRUPT_SIGNAL", "TCPLAB_CHECKPOINTS_LOG")


def socket_name(lab: str) -> bytes:
    """The keeper's abstract socket: per user, engine and lab (a lab name is unique per engine)."""
    engine = hashlib.sha1(os.environ.get("DOCKER_HOST", "").encode()).hexdigest()[:10]
    return f"\0tcplab-keeper/{os.getuid()}/{engine}/{lab}".encode()[:107]


def keeper_pids(lab: str) -> list[int]:
    """The processes keeping ``lab`` (found by their command line; `lab status` shows them)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[1:4] == [b"-m", b"tcplab.cli.keeper", lab.encode()]:
                pids.append(int(d.name))
    return pids


# --- `lab down LAB`: the client ------------------------------------------------------

def ask_to_take_down(lab: str, write_out: Callable[[str], None], write_err: Callable[[str], None]) -> int | None:
    """Ask LAB's keeper to take it down, relaying what it says; its exit status, or None when no keeper
    answered or it stopped half-way (the caller then takes the lab down itself)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_name(lab))
    except OSError:
        sock.close()
        return None
    try:
        sock.sendall(json.dumps({"request": "down", "cwd": os.getcwd()}).encode() + b"\n")
        for raw in sock.makefile("rb"):
            msg = json.loads(raw)
            if "say" in msg:
                write_err(f"· {msg['say']}\n")
            if "err" in msg:
                write_err(msg["err"] + "\n")
            if "out" in msg:
                write_out(msg["out"] + "\n")
            if msg.get("exit") is not None:
                return int(msg["exit"])
            if "exit" in msg:
                return None  # the keeper found nothing to do (its lab is not up): the caller decides
        return None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


# --- `lab up`: starting and handing over ---------------------------------------------

class KeeperLaunch:
    """The keeper of the lab `lab up` is bringing up: started once the story plays (the containers are
    made by then: its imports do not compete with the engine's busiest part), handed the lab once it is
    up, else dropped."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY_ENV}
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tcplab.cli.keeper", self.lab], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env=env,
                start_new_session=True)  # a Ctrl-C in the terminal is `lab up`'s business, not the keeper's
        except OSError:
            self.proc = None  # `lab down` will do without

    def hand_over(self, run_dir: Path) -> None:
        """Give the keeper the lab and go; it answers `lab down` from now on (one that came early waits)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(f"go {run_dir}\n".encode())
            proc.stdin.close()
        except OSError:
            pass

    def drop(self) -> None:
        """`lab up` failed: the keeper reads end-of-file instead of `go` and exits."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the keeper process -----------------------------------------------------------------

def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def serve(lab: str) -> int:
    """The keeper's life: claim the lab's name, warm up, wait for `lab up`'s word, serve one `lab down`.

    The name is claimed first, so a `lab down` that comes while the keeper warms up (or while `lab up`
    still plays) connects and waits for its answer instead of missing the keeper."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind(socket_name(lab))
    except OSError:
        return 0  # another keeper holds the name: its lab is up, and this `lab up` will say so
    listener.listen(4)
    try:
        os.nice(10)  # warm-up takes what CPU the story leaves
    except OSError:
        pass
    from ..backend.base import EngineError  # the imports `lab down` would otherwise pay for
    from ..backend.docker import DockerBackend
    from ..play.lifecycle import find_running
    from ..report import write_report  # noqa: F401 - the report `lab down` writes
    from ..rundir import RunDir
    from .takedown import take_down

    try:
        backend: DockerBackend | None = DockerBackend()  # the SDK client and its API version, ready
    except EngineError:
        backend = None
    words = sys.stdin.readline().split(maxsplit=1)
    if len(words) != 2 or words[0] != "go":
        return 0  # `lab up` failed, was interrupted or died: nothing to keep (a waiting client sees EOF)
    rd = RunDir(words[1].strip())
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    listener.settimeout(CHECK_EVERY)
    while (rd.read_json(rd.run_json, {}) or {}).get("state") == "up":
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(None)
            request = _read_request(conn)
            if request.get("request") != "down":
                continue
            try:
                os.setpriority(os.PRIO_PROCESS, 0, 0)  # root may lower its niceness back; others go on niced
            except OSError:
                pass

            def say(msg: str) -> None:
                _send(conn, say=msg)

            try:
                backend = backend or DockerBackend()
                running = find_running(backend, lab)
                if running is None or Path(running.run_dir).resolve() != rd.path:
                    _send(conn, exit=None)
                    return 0
                _send(conn, out=take_down(backend, running, say, cwd=str(request.get("cwd") or "/")), exit=0)
            except EngineError as e:
                _send(conn, err=f"lab: {' '.join(str(e).split())}", exit=3)
            return 0
    return 0


def _read_request(conn: socket.socket) -> dict[str, Any]:
    if _peer_uid(conn) not in (os.getuid(), 0):
        return {}
    try:
        request = json.loads(conn.makefile("rb").readline() or b"{}")
    except (OSError, ValueError):
        return {}
    return request if isinstance(request, dict) else {}


def _send(conn: socket.socket, **msg: Any) -> None:
    try:
        conn.sendall(json.dumps(msg).encode() + b"\n")
    except OSError:
        pass  # the client went away (Ctrl-C): the teardown goes on


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
