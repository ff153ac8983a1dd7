"""The verdicts of a run as files: ``result.json`` (read by the HTML report) and ``junit.xml`` (read by CI).

``junit.xml`` follows the Ant/Jenkins JUnit schema (tests/data/junit-ant.xsd):
``<testsuites>`` holding one ``<testsuite>`` per lab run, one ``<testcase>``
per expectation, a ``<failure>`` whose ``message`` is the one-line verdict and
whose text is the block a person reads. It is built with ElementTree, so
every value is escaped; characters XML 1.0 cannot carry are replaced.
"""
from __future__ import annotations

import os
import platform
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

from ..rundir import RunDir
from ..runfiles import result
from ..runfiles.result import ResultDocument
from .verdicts import Evaluation, Verdict

# XML 1.0 allows tab, newline, carriage return and everything from 0x20 on, except surrogates and FFFE/FFFF
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def result_document(ev: Evaluation) -> ResultDocument:
    doc: ResultDocument = {"lab": ev.lab, "run": ev.run, "passed": ev.passed,
                           "counts": {"held": ev.held, "failed": ev.failed, "error": ev.errors},
                           "expectations": [v.to_dict() for v in ev.verdicts]}
    if ev.cpu is not None:
        doc["cpu"] = {"waited": round(ev.cpu.stalled, 4), "story": round(ev.cpu.story, 4),
                      "share": round(ev.cpu.share, 4), "short": ev.cpu.short}
    return doc


def write_result_json(ev: Evaluation, target: RunDir | str | Path) -> Path:
    """result.json of the run directory ``target`` (or the file ``target``) for ``ev``."""
    return result.write(target if isinstance(target, RunDir) else Path(target), result_document(ev))


def failure_block(v: Verdict, cited: Iterable[str] = ()) -> str:
    """What a person reads about one failed expectation: the verdict line, then its parts; ``cited``: the
    published facts it checks, with their sources (``Evaluation.cited``)."""
    label = v.label
    sources = "".join(f"\n  source:   {line}" for line in cited)
    if v.error:
        return (f"{v.message}\n"
                f"  about:    {v.about}\n"
                f"  missing:  {v.missing}\n"
                f"  expected: {v.expected}\n"
                f"  look at:  {v.where}{sources}")
    return (f"{v.message}\n"
            f"  about:    {v.about}\n"
            f"  expected: {v.expected}\n"
            f"  {label + ':':<9} {v.seen}\n"
            f"  look at:  {v.where}{sources}")


def _x(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def junit_document(ev: Evaluation, hostname: str | None = None, timestamp: float | None = None) -> bytes:
    """junit.xml as bytes (UTF-8, with declaration)."""
    started = timestamp if timestamp is not None else (ev.started or time.time())
    duration = max(0.0, (ev.ended or started) - started) if ev.started else 0.0
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", {
        "name": _x(ev.lab), "package": _x(f"tcplab.{ev.lab}"), "id": "0",
        "hostname": _x(hostname or platform.node() or "localhost"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
        "tests": str(len(ev.verdicts)), "failures": str(ev.failed), "errors": str(ev.errors),
        "time": f"{duration:.3f}",
    })
    props = ET.SubElement(suite, "properties")
    properties = [("run", ev.run), ("run_dir", str(ev.run_dir))]
    if ev.cpu is not None:  # a CI job can tell a timing the machine's load broke from one TCP did
        properties.append(("cpu_waited_share", f"{ev.cpu.share:.3f}"))
    for name, value in properties:
        ET.SubElement(props, "property", {"name": name, "value": _x(value)})
    for v in ev.verdicts:
        case = ET.SubElement(suite, "testcase", {"name": _x(v.name), "classname": _x(f"{ev.lab}.{v.kind}"),
                                                 "time": "0"})
        if not v.held:
            # an expectation the run had no evidence for is JUnit's <error> (it could not run), not a <failure>
            failure = ET.SubElement(case, "error" if v.error else "failure",
                                    {"message": _x(v.message), "type": _x(f"tcplab.{v.kind}")})
            failure.text = _x(failure_block(v, ev.cited.get(v.name, ())))
    out = ET.SubElement(suite, "system-out")
    out.text = _x("\n".join(v.message for v in ev.verdicts) + "\n")
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(ev: Evaluation, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(junit_document(ev))
    os.replace(tmp, path)
    return path
