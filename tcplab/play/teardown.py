"""Removing every object of a run, whatever its state, and what the run left on this machine.

Ctrl-C cannot interrupt it, an engine restarting under it is waited for, and
the tracer's tracefs instance (kernel ring buffers) goes with it.
"""
from __future__ import annotations

import shutil
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from ..backend.base import Backend, EngineError, Removed
from ..observe.tracer import instance_name, remove_instance, tracefs_missing
from ..rundir import RunDir


def remove_agent_dirs(rd: RunDir) -> None:
    """The agents' FIFOs and leftover request files are no artifact: gone with the hosts."""
    shutil.rmtree(rd.agents_dir, ignore_errors=True)


def teardown(backend: Backend, run: str, patience: float = 30.0) -> Removed:
    """Remove every object of the run, whatever the state; Ctrl-C cannot interrupt it.

    An engine that stops answering (restarting under us) is given ``patience``
    seconds to come back, so a restart mid-run still leaves nothing behind.
    """
    from ..backend.base import LABEL_RUN

    deadline = time.monotonic() + patience
    with _signals_deferred():
        _stop_first(backend, run, remote=not backend.shares_files)
        while True:
            try:
                removed = backend.remove_labeled({LABEL_RUN: run})
                break
            except EngineError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        # the tracer was killed with its container: its tracefs instance (kernel ring buffers) is ours to remove
        if backend.shares_files and tracefs_missing() is None:
            remove_instance(instance_name(run))
        return removed


def _stop_first(backend: Backend, run: str, remote: bool) -> None:
    """Stop (SIGTERM) what must not be killed: a capture written a block at a time still running (a run not
    collected: its tcpdump writes out the file it buffers), and on an engine elsewhere the tracer, whose
    tracefs instance is out of our reach (it removes it itself when stopped). A container already stopped (a
    collected run's captures) costs a call that does nothing."""
    from ..backend.base import LABEL_ROLE, LABEL_RUN
    from ..plan.lab_plan import BLOCK_CAPTURE_ROLE

    roles = {BLOCK_CAPTURE_ROLE, "tracer"} if remote else {BLOCK_CAPTURE_ROLE}
    try:
        names = [o.name for o in backend.list_labeled({LABEL_RUN: run})
                 if o.kind == "container" and o.labels.get(LABEL_ROLE) in roles]
        backend.stop(names, timeout=5)
    except EngineError:
        pass  # removal goes on; a stopped engine has nothing to stop


@contextmanager
def _signals_deferred() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.signal(s, lambda n, f: got.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if got:
            raise KeyboardInterrupt

