"""The run directory's files: each has one typed schema, one reader and one writer, in tcplab/runfiles (DESIGN.md).

The rule is read from the source (each module parsed with ``ast``), so it cannot erode without this test
saying where: a file's path (a ``RunDir`` property, or its name as a string) is used only in its own module
of tcplab/runfiles (and in the layout, tcplab/rundir.py); the low-level reading and writing of
tcplab/runfiles/_io.py is used only there; and each module has one function that reads its file and at
most one that writes it. As in test_hygiene.py, each check is first shown code it must refuse. Then the
readers themselves: a run of an older tcplab, or one cut short, is read, not refused.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tcplab.analysis.checks import CHECKS
from tcplab.model.lab import EXPECTATION_KINDS
from tcplab.rundir import RunDir
from tcplab.runfiles import ABOUT, images, programs, result, run_info, snapshots, steps, transitions
from tcplab.runfiles import lab as lab_file
from tcplab.runfiles.run_info import Default, RunInfoFile

from ..conftest import ROOT

PACKAGE = ROOT / "tcplab"
RUNFILES = "tcplab.runfiles"

# the RunDir property of each run file -> the one module that may use it
OWNER = {
    "lab_yaml": "tcplab.runfiles.lab", "run_json": "tcplab.runfiles.run_info", "images_json": "tcplab.runfiles.images",
    "steps_jsonl": "tcplab.runfiles.steps", "programs_jsonl": "tcplab.runfiles.programs",
    "snapshots_json": "tcplab.runfiles.snapshots", "transitions_jsonl": "tcplab.runfiles.transitions",
    "result_json": "tcplab.runfiles.result", "peer_logs_dir": "tcplab.runfiles.peer_events",
    "impair_logs_dir": "tcplab.runfiles.impaired", "retransmits_jsonl": "tcplab.runfiles.retransmits",
}
LAYOUT = "tcplab.rundir"  # defines the properties
NAMES = {name: mod for name, mod in zip(ABOUT, ("tcplab.runfiles.lab", "tcplab.runfiles.run_info",
                                                  "tcplab.runfiles.images", "tcplab.runfiles.steps",
                                                  "tcplab.runfiles.programs", "tcplab.runfiles.result",
                                                  "tcplab.runfiles.snapshots", "tcplab.runfiles.transitions"))}
READS = {"read_document", "read_lines", "read_bytes", "read_text", "open"}  # what a reader calls
WRITES = {"write_json", "append_jsonl", "write_text", "write_bytes"}  # what a writer calls
WRITERS = {"tcplab.runfiles.peer_events": 0, "tcplab.runfiles.impaired": 0, "tcplab.runfiles.retransmits": 0}  # files tcplab only reads (a sidecar writes them); every other: 1


def modules(root: Path) -> dict[str, ast.Module]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def path_problems(mods: dict[str, ast.Module]) -> list[str]:
    """Uses of a run file's path outside its module (a property of RunDir, or the file's name)."""
    problems = []
    for mod, tree in mods.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in OWNER and mod not in (OWNER[node.attr], LAYOUT):
                problems.append(f"{mod}:{node.lineno}: uses RunDir.{node.attr} (only {OWNER[node.attr]} may)")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES \
                    and mod != LAYOUT and not _within(mod, RUNFILES):
                problems.append(f"{mod}:{node.lineno}: names {node.value!r} (its reader and writer are "
                                f"{NAMES[node.value]})")
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_io") and not _within(mod, RUNFILES):
                problems.append(f"{mod}:{node.lineno}: imports the run files' own reading and writing")
    return problems


def _calls(fn: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "")
    return names


def reader_writer_problems(mods: dict[str, ast.Module]) -> list[str]:
    """Each module of a run file: exactly one function that reads it, exactly one that writes it (none for a
    file only a sidecar writes)."""
    problems = []
    for mod, tree in mods.items():
        if not _within(mod, RUNFILES) or mod in (RUNFILES, f"{RUNFILES}._io"):
            continue
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        readers = [f.name for f in functions if _calls(f) & READS]
        writers = [f.name for f in functions if _calls(f) & WRITES]
        if len(readers) != 1:
            problems.append(f"{mod}: {len(readers)} functions read its file ({', '.join(readers) or 'none'})")
        if len(writers) != WRITERS.get(mod, 1):
            problems.append(f"{mod}: {len(writers)} functions write its file ({', '.join(writers) or 'none'})")
    return problems


# --- the checks, on code they must refuse -------------------------------------------------------

def _package(tmp: Path, files: dict[str, str]) -> dict[str, ast.Module]:
    root = tmp / "tcplab"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return modules(root)


def test_a_path_used_outside_its_module_is_found(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "report/gather.py": "def f(rd):\n    return rd.read_json(rd.run_json)\n",
        "cli/x.py": "def g(p):\n    return (p / 'run.json').is_file()\n",
        "play/s.py": "from ..runfiles._io import write_json\n",
        "runfiles/run_info.py": "def read(rd):\n    return rd.run_json\n",  # its own: fine
        "runfiles/steps.py": "def h(rd):\n    return rd.run_json\n",  # another file's: not fine
    })
    assert path_problems(mods) == [
        "tcplab.cli.x:2: names 'run.json' (its reader and writer are tcplab.runfiles.run_info)",
        "tcplab.play.s:1: imports the run files' own reading and writing",
        "tcplab.report.gather:2: uses RunDir.run_json (only tcplab.runfiles.run_info may)",
        "tcplab.runfiles.steps:2: uses RunDir.run_json (only tcplab.runfiles.run_info may)",
    ]


def test_a_second_reader_or_writer_is_found(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "runfiles/steps.py": ("def read(rd):\n    return read_lines(rd.steps_jsonl)\n"
                              "def read_again(rd):\n    return rd.steps_jsonl.read_text()\n"),
        "runfiles/result.py": "def read(rd):\n    return read_document(rd.result_json)\n",
        "runfiles/peer_events.py": "def read(rd):\n    return read_lines(rd.peer_logs_dir)\n",
    })
    assert reader_writer_problems(mods) == [
        "tcplab.runfiles.result: 0 functions write its file (none)",
        "tcplab.runfiles.steps: 2 functions read its file (read, read_again)",
        "tcplab.runfiles.steps: 0 functions write its file (none)",
    ]


# --- the checks, on tcplab itself ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tcplab() -> dict[str, ast.Module]:
    mods = modules(PACKAGE)
    assert {"tcplab.runfiles.run_info", "tcplab.report.gather", "tcplab.play.session"} <= set(mods)
    return mods


def test_each_run_file_is_used_only_by_its_module(tcplab: dict[str, ast.Module]) -> None:
    problems = path_problems(tcplab)
    assert not problems, "a run file used outside tcplab/runfiles:\n" + "\n".join(problems)


def test_each_run_file_has_one_reader_and_one_writer(tcplab: dict[str, ast.Module]) -> None:
    problems = reader_writer_problems(tcplab)
    assert not problems, "\n".join(problems)
    assert set(OWNER.values()) | {RUNFILES, f"{RUNFILES}._io"} == {m for m in tcplab if _within(m, RUNFILES)}


def test_rundir_is_only_the_layout() -> None:
    """The old ways round the readers are gone."""
    for name in ("read_json", "write_json", "read_jsonl", "append_jsonl", "peers_jsonl"):
        assert not hasattr(RunDir, name), name


def test_every_kind_of_expectation_has_its_one_check() -> None:
    assert set(CHECKS) == set(EXPECTATION_KINDS.values())
    assert {c.kind for c in CHECKS.values()} == set(EXPECTATION_KINDS)


# --- the readers: what a run holds, whatever wrote it ----------------------------------------------

def test_run_info_is_merged_in_order_and_read_back(tmp_path: Path) -> None:
    rd = RunDir(tmp_path).create()
    w = RunInfoFile(rd)
    w.update(lab="x", hosts={"a": "10.0.0.2"}, phases={"network": 0.5}, tracer=Default("ok"), state="starting")
    w.update(phases={"hosts": 1.0}, tracer=Default("ok"), state="up")
    w.update(tracer="tracefs is not mounted")
    assert list(json.loads(rd.run_json.read_text())) == ["lab", "hosts", "phases", "tracer", "state"]
    info = run_info.read(rd)
    assert info["phases"] == {"network": 0.5, "hosts": 1.0} and info["state"] == "up"
    assert info["tracer"] == "tracefs is not mounted"
    with pytest.raises(ValueError):
        w.update(hosts="not a mapping")  # the reader would leave it out: the writer refuses it


def test_readers_keep_what_fits_of_an_older_or_broken_run(tmp_path: Path) -> None:
    rd = RunDir(tmp_path).create()
    assert run_info.read(rd) == {} and snapshots.read(rd) == {} and steps.read(rd) == []
    assert result.read(rd) is None and images.read(rd) == {} and transitions.read(rd) == []
    rd.run_json.write_text(json.dumps({"lab": "old", "hosts": ["not", "a", "mapping"], "engine": {"kernel": "4.19"},
                                       "from_the_future": 1}))
    assert run_info.read(rd) == {"lab": "old", "engine": {"kernel": "4.19"}, "from_the_future": 1}
    rd.steps_jsonl.write_text(json.dumps({"index": 0, "name": "s", "outcome": "ok"}) + "\n\n[1, 2]\n"
                              + '{"index": 1, "na')
    assert steps.read(rd) == [{"index": 0, "name": "s", "outcome": "ok"}]
    rd.result_json.write_text(json.dumps({"lab": "x", "counts": {"held": 1, "failed": 0}, "expectations": [
        {"name": "a", "held": True}]}))  # written before verdicts had a status
    assert result.read(rd) == {"lab": "x", "counts": {"held": 1, "failed": 0},
                               "expectations": [{"name": "a", "held": True}]}
    rd.transitions_jsonl.write_text(json.dumps({"ts": 1.5, "event": "inet_sock_set_state", "saddr": "10.0.0.2",
                                                "sport": 1, "daddr": "10.0.0.3", "dport": 2, "old": "LISTEN",
                                                "new": "SYN_RECV"}) + "\n" + json.dumps({"no": "ts"}) + "\n")
    assert [(r["line"], r["new"]) for r in transitions.read(rd)] == [(1, "SYN_RECV")]
    rd.programs_jsonl.write_text(json.dumps({"event": "start", "host": "c", "name": "p", "pid": 3}) + "\n"
                                 + json.dumps({"event": "what", "name": "p"}) + "\n"
                                 + json.dumps({"event": "exit", "host": "c", "name": "p", "status": 1}) + "\n")
    assert [(n, e["event"]) for n, e in programs.read(rd)] == [(1, "start"), (3, "exit")]


def test_the_lab_of_another_tcplab_is_read_for_the_report_without_what_it_refuses(tmp_path: Path) -> None:
    rd = RunDir(tmp_path).create()
    assert lab_file.read_for_report(rd).problems == ["lab.yaml is missing"]
    rd.lab_yaml.write_text(json.dumps({"name": "old", "summary": "s", "reference": "a-report-of-the-future",
                                       "hosts": {"a": {"image": "tcplab/client", "peer": {"os": "windows"}}},
                                       "expect": [{"packet": {"from": "a"}, "after_fin": "120s"}]}))
    got = lab_file.read_for_report(rd)
    assert got.lab is not None and got.lab.summary == "s" and got.lab.hosts["a"].peer.os == "windows"
    assert got.refused == {"reference": "a-report-of-the-future",
                           "expect": [{"packet": {"from": "a"}, "after_fin": "120s"}]}
    assert len(got.problems) == 1 and got.problems[0].startswith("lab.yaml could not be read: lab.yaml: ")
    rd.lab_yaml.write_text("name: [unclosed\n")
    assert lab_file.read_for_report(rd).lab is None


def test_retransmits_missing_file_is_no_evidence_and_an_empty_one_is_none(tmp_path: Path) -> None:
    from tcplab.runfiles import retransmits

    rd = RunDir(tmp_path).create()
    assert not retransmits.exists(rd) and retransmits.read(rd) == []
    rd.sockets_dir.mkdir(parents=True, exist_ok=True)
    (tmp_path / retransmits.NAME).write_text("")
    assert retransmits.exists(rd) and retransmits.read(rd) == []
    (tmp_path / retransmits.NAME).write_text(
        '{"ts": 1.5, "event": "tcp_retransmit_skb", "sport": 4, "state": "ESTABLISHED", "err": 0, "host": "c"}\n'
        '{"ts": 2.5, "event": "tcp_retransmit_synack", "sport": 8000, "host": "s"}\n{"ts": 3')
    got = retransmits.read(rd)
    assert [(r["line"], r["event"], r.get("host")) for r in got] == [
        (1, "tcp_retransmit_skb", "c"), (2, "tcp_retransmit_synack", "s")], "a line cut by a crash is skipped"
    assert [r["ts"] for r in retransmits.iter_for(rd, "s")] == [2.5]
