"""DeathWatch: the engine's event stream as the hosts' health, and the fallback when it ends."""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

from tcplab.backend.docker import ContainerDeaths
from tcplab.play.deaths import DeathWatch

from ..conftest import wait_for


class FakeStream:
    """An event stream fed by the test; ``close()`` ends it, as the SDK's CancellableStream does."""

    def __init__(self) -> None:
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self.q.get()) is not None:
            yield item

    def close(self) -> None:
        self.closed.set()
        self.q.put(None)


class FakeBackend:
    def __init__(self) -> None:
        self.stream = FakeStream()
        self.selectors: list[dict[str, str]] = []

    def deaths(self, selector: dict[str, str]) -> ContainerDeaths:
        """The Docker backend's reading of an event stream, over the test's stream."""
        self.selectors.append(selector)
        return ContainerDeaths(self.stream)


def event(action: str, name: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "status": action, "Actor": {"Attributes": {"name": name}}}


def test_deaths_are_collected_and_other_events_ignored() -> None:
    backend = FakeBackend()
    watch = DeathWatch(backend, {"tcplab.run": "r1"})  # type: ignore[arg-type]
    assert backend.selectors == [{"tcplab.run": "r1"}]
    backend.stream.q.put(event("start", "h1"))
    backend.stream.q.put(event("exec_create: true", "h1"))
    backend.stream.q.put(event("die", "h2"))
    backend.stream.q.put(event("destroy", "h3"))
    wait_for(lambda: len(watch.dead) == 2, 5, "two deaths")
    assert watch.dead == {"h2", "h3"} and watch.live
    watch.close()
    assert backend.stream.closed.is_set() and not watch.live


def test_an_ended_stream_says_it_is_no_longer_live() -> None:
    backend = FakeBackend()
    watch = DeathWatch(backend, {"tcplab.run": "r1"})  # type: ignore[arg-type]
    backend.stream.q.put(None)  # the engine went away
    wait_for(lambda: not watch.live, 5, "the watch to notice")
    assert watch.dead == set()
    watch.close()


def test_a_broken_stream_is_not_live_either() -> None:
    class Broken:
        def __iter__(self) -> Iterator[dict[str, Any]]:
            raise ConnectionError("reset by peer")
            yield {}

    class B:
        def deaths(self, selector: dict[str, str]) -> ContainerDeaths:
            return ContainerDeaths(Broken())

    watch = DeathWatch(B(), {})  # type: ignore[arg-type]
    wait_for(lambda: not watch.live, 5, "the watch to notice")
    watch.close()
