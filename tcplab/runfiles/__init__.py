"""The run directory's files: one module per file, holding its typed schema, its one reader and its one writer.

The run directory is the only hand-over between running a lab and understanding it (DESIGN.md): play writes
it, analysis and the report read it, and ``lab report`` reads a run copied from CI years later. So each file's
shape is written down once, here, and nobody else opens the file: a field is added in one place, and a run
of an older tcplab is read by the same reader (every field it lacks is optional, a line or an entry that does
not fit is left out). ``tests/unit/test_runfiles.py`` keeps it so.

=====================================  ===========================  =============================================
file                                   module                       written by
=====================================  ===========================  =============================================
``lab.yaml``                           :mod:`.lab`                  ``lab up`` (the lab as resolved)
``run.json``                           :mod:`.run_info`             :class:`.run_info.RunInfoFile`, as the run goes
``images.json``                        :mod:`.images`               ``lab up``
``steps.jsonl``                        :mod:`.steps`                each step as it ends
``programs.jsonl``                     :mod:`.programs`             starts as they play; exits and outputs at collection
``sockets/snapshots.json``             :mod:`.snapshots`            each snapshot (rewritten whole)
``sockets/transitions.jsonl``          :mod:`.transitions`          the tracer sidecar; ``lab down`` the derived ones
``sockets/retransmits.jsonl``          :mod:`.retransmits`          the tracer sidecar (where the kernel can say)
``result.json``                        :mod:`.result`               ``lab run``
``logs/peer/<host>.jsonl``             :mod:`.peer_events`          a Windows peer's sidecar (read only here)
=====================================  ===========================  =============================================

The paths themselves are :class:`tcplab.rundir.RunDir`'s layout.
"""
from __future__ import annotations

# What each file holds, in a few words (the report's list of artifacts says it), by its path in the run.
ABOUT: dict[str, str] = {
    "lab.yaml": "the lab as resolved (defaults and --set applied)",
    "run.json": "hosts, engine, phases, capabilities",
    "images.json": "image IDs",
    "steps.jsonl": "the steps played",
    "programs.jsonl": "the story programs: start, exit status and time, output",
    "result.json": "expectations: verdicts",
    "sockets/snapshots.json": "socket tables, parsed",
    "sockets/transitions.jsonl": "TCP state changes (tracepoint)",
    "sockets/retransmits.jsonl": "every retransmission the kernel made (tracepoint)",
}
