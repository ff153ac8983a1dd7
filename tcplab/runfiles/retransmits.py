"""``sockets/retransmits.jsonl``: every retransmission the kernel made on the lab's sockets.

The tracer sidecar (``images/tools/tracer.py``) writes one line per ``tcp:tcp_retransmit_skb`` (a segment sent
again: an RTO, a tail loss probe, a fast retransmit, a SYN) and ``tcp:tcp_retransmit_synack`` event, where the
kernel has those tracepoints::

    {"ts": 1795508890.32559, "event": "tcp_retransmit_skb", "saddr": "10.77.0.3", "sport": 40001,
     "daddr": "10.77.0.2", "dport": 8000, "state": "ESTABLISHED", "err": 0, "host": "client", "peer": "server"}

The file exists only when retransmissions were watched: no file is no evidence (an older tracer, a kernel
without the tracepoints, no tracefs), an empty file is evidence that the kernel retransmitted nothing.
This module is the file's one reader.
"""
from __future__ import annotations

from typing import Iterator

from pydantic import TypeAdapter, with_config
from typing_extensions import Required, TypedDict

from ..rundir import RunDir
from ._io import OPEN, read_lines

NAME = "sockets/retransmits.jsonl"


@with_config(OPEN)
class RetransmitRecord(TypedDict, total=False):
    ts: Required[float]  # seconds since the epoch, on the captures' clock
    event: Required[str]  # tcp_retransmit_skb or tcp_retransmit_synack
    saddr: str  # the retransmitting socket's own address and port: it belongs to ``host``
    sport: int
    daddr: str
    dport: int
    host: str | None  # the host whose kernel retransmitted
    peer: str | None  # the host at the other end
    state: str  # tcp_retransmit_skb: the socket's state (ESTABLISHED, SYN_SENT, FIN_WAIT1, ...)
    err: int  # tcp_retransmit_skb: 0 when the segment left, a negative errno when the kernel could not send it
    line: int  # never written: the record's 1-based line, added on read


SCHEMA: TypeAdapter[RetransmitRecord] = TypeAdapter(RetransmitRecord)


def exists(rd: RunDir) -> bool:
    """Whether retransmissions were watched in this run (the tracer had the tracepoints)."""
    return rd.retransmits_jsonl.is_file()


def read(rd: RunDir) -> list[RetransmitRecord]:
    """The run's retransmissions in file order, each with its ``line``; empty when none were seen (check
    :func:`exists` first: a missing file is no evidence)."""
    out: list[RetransmitRecord] = []
    if not exists(rd):
        return out
    for n, rec in read_lines(rd.retransmits_jsonl, SCHEMA):
        rec["line"] = n
        out.append(rec)
    return out


def iter_for(rd: RunDir, host: str) -> Iterator[RetransmitRecord]:
    """The retransmissions of one host's kernel."""
    return (r for r in read(rd) if r.get("host") == host)
