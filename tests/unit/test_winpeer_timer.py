"""The Windows peer's timer process (images/tools/winpeer.py ``TimerProcess``), run for real outside a container.

The child sends each armed frame through the descriptor it was given when its deadline comes, and tells
the parent; a cancelled timer sends nothing. A datagram socket pair stands in for the AF_PACKET socket.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import ModuleType

from ..conftest import load_module

WINPEER = Path(__file__).resolve().parents[2] / "images" / "tools" / "winpeer.py"


def _load() -> ModuleType:
    return load_module(WINPEER, "winpeer_timer_under_test")


wp = _load()


class Fired:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: list[tuple[int, float, float]] = []
        self.dropped: list[int] = []

    def drop(self, token: int) -> None:
        with self.cond:
            self.dropped.append(token)
            self.cond.notify_all()

    def __call__(self, token: int, sent: float, woke: float) -> None:
        with self.cond:
            self.seen.append((token, sent, woke))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[int, float, float]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.seen) >= n, timeout), f"only {self.seen} fired"
            return list(self.seen)


def test_the_child_sends_the_frame_at_its_deadline_and_says_so() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fired = Fired()
    timers = wp.TimerProcess(a.fileno(), 0, fired, fired.drop)
    try:
        assert not timers.realtime and "not asked" in timers.said
        deadline = time.monotonic() + 0.2
        wall_deadline = time.time() + 0.2
        token = timers.schedule(deadline, b"\x01frame\xff")
        [(got, sent, woke)] = fired.wait_for(1)
        assert got == token
        assert b.recv(100) == b"\x01frame\xff"
        assert sent >= wall_deadline - 0.005  # never early (the spin ends on the deadline)
        assert woke <= 0.0  # at the normal policy the child wakes early and spins the rest
    finally:
        timers.stop()
        a.close()
        b.close()
    assert timers.proc.returncode == 0


def test_a_cancelled_timer_sends_nothing() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fired = Fired()
    timers = wp.TimerProcess(a.fileno(), 0, fired, fired.drop)
    try:
        now = time.monotonic()
        first = timers.schedule(now + 0.15, b"cancelled")
        second = timers.schedule(now + 0.3, b"kept")
        timers.cancel(first)
        [(got, _, _)] = fired.wait_for(1)
        assert got == second
        b.setblocking(False)
        assert b.recv(100) == b"kept"
        try:
            extra = b.recv(100)
        except BlockingIOError:
            extra = None
        assert extra is None  # the cancelled frame, earlier, never came
    finally:
        timers.stop()
        a.close()
        b.close()
    assert [t for t, _, _ in fired.seen] == [second]
    assert fired.dropped == [first]  # the parent hears of each timer once: fired, or dropped


def test_a_cancel_after_the_rst_changes_nothing_and_is_not_reported() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fired = Fired()
    timers = wp.TimerProcess(a.fileno(), 0, fired, fired.drop)
    try:
        token = timers.schedule(time.monotonic() + 0.05, b"sent")
        fired.wait_for(1)
        timers.cancel(token)  # too late
        later = timers.schedule(time.monotonic() + 0.05, b"next")
        assert [t for t, _, _ in fired.wait_for(2)] == [token, later]
    finally:
        timers.stop()
        a.close()
        b.close()
    assert fired.dropped == []
