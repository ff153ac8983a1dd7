"""``run.json``: the run itself (hosts, phases, engine and kernel, capabilities, what the run could observe).

It is written as the run goes, by several hands (bring-up, the probe of each host's tools, collection,
``lab down``), always through one :class:`RunInfoFile`, which merges what it is given into what the file
holds. Every field is optional: a run cut short, or one of an older tcplab, holds fewer.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

from pydantic import TypeAdapter, with_config
from typing_extensions import TypedDict

from ..rundir import RunDir
from ._io import OPEN, read_document, write_json

NAME = "run.json"



@with_config(OPEN)
class KernelInfo(TypedDict, total=False):
    hz: int  # the kernel's timer frequency (CONFIG_HZ)
    hz_source: str  # where it was read: "CONFIG_HZ=250 in /proc/config.gz"


@with_config(OPEN)
class Evidence(TypedDict, total=False):
    socket_tables: dict[str, dict[str, str]]  # host -> tool -> "ok" or why its table cannot be read


@with_config(OPEN)
class RunInfo(TypedDict, total=False):
    lab: str
    run: str  # the run id: lab name and UTC time
    hosts: dict[str, str]  # host -> address (on its first network)
    addresses: dict[str, dict[str, str]]  # host -> network -> its address there (every network it is on)
    containers: dict[str, str]  # host -> its container's name
    subnet: str
    phases: dict[str, float]  # seconds per phase of bring-up and take-down (network, hosts, ..., teardown)
    tracer: str  # "ok", or why the tracer did not run
    state: str  # starting, up, down, failed, interrupted
    started: float
    ended: float
    collected_at: float  # when the artifacts were collected: the last moment the run observed
    error: str  # why a run failed or was interrupted
    evidence: Evidence
    sysctls: dict[str, dict[str, str]]  # host -> sysctl -> value, as read in the host's network namespace
    kernel: KernelInfo
    capture_stats: dict[str, dict[str, int]]  # host -> tcpdump's counts: captured, received, dropped
    capabilities: dict[str, list[str]]  # container -> the capabilities it was given
    peer_timers: dict[str, str]  # host -> how its Windows peer's FIN_WAIT_2 timers were scheduled (the peer's word)
    engine: dict[str, str]  # docker, api, kernel, os
    impairment: dict[str, str]  # mechanism: nfqueue; netem: whether the kernel has it (and why not)


SCHEMA: TypeAdapter[RunInfo] = TypeAdapter(RunInfo)


def exists(rd: RunDir) -> bool:
    return rd.run_json.is_file()


def modified(rd: RunDir) -> float | None:
    """When the file was last written (a run's last sign of life), None without one."""
    try:
        return rd.run_json.stat().st_mtime
    except OSError:
        return None


def read(rd: RunDir) -> RunInfo:
    """What the file holds; empty for a run without it."""
    return read_document(rd.run_json, SCHEMA, RunInfo())


@dataclass(frozen=True)
class Default:
    """A field's value where the file has none yet (``RunInfoFile.update(tracer=Default("ok"))``)."""
    value: Any


class RunInfoFile:
    """The one writer of run.json: each :meth:`update` merges into what the file holds and rewrites it."""
    _lock = threading.Lock()

    def __init__(self, rd: RunDir) -> None:
        self.rd = rd

    def update(self, **fields: Any) -> RunInfo:
        """Set ``fields``, in order: ``phases`` adds to the phases recorded (a phase given again is replaced);
        a :class:`Default` sets its value only where the file has none. What is given must fit the schema
        (a ValueError otherwise: the reader would leave it out). Returns what the file holds now."""
        given = {k: v.value if isinstance(v, Default) else v for k, v in fields.items()}
        SCHEMA.validate_python(given)  # what was there is not checked again: it may be an older tcplab's
        with self._lock:
            info: dict[str, Any] = dict(read(self.rd))
            for key, value in fields.items():
                if isinstance(value, Default):
                    info.setdefault(key, value.value)
                elif key == "phases":
                    info["phases"] = {**(info.get("phases") or {}), **value}
                else:
                    info[key] = value
            write_json(self.rd.run_json, info)
            return cast(RunInfo, info)
