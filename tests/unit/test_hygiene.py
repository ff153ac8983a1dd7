"""Hostile-input hygiene: no shell strings, no eval, and names from lab data stay inside the run directory.

The checks read the source (Python by its syntax tree, so ``backend.exec(...)``
is not mistaken for the builtin ``exec``); each checker is first shown code it
must refuse, so a checker that finds nothing cannot pass by accident.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tcplab.rundir import RunDir, safe_name

from ..conftest import ROOT

SCANNED = [ROOT / "tcplab", ROOT / "images", ROOT / "lab.py"]

_BANNED_CALLS = {
    ("os", "system"), ("os", "popen"), ("os", "popen2"), ("os", "popen3"), ("os", "popen4"),
    ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"), ("commands", "getoutput"),
    ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "unsafe_load_all"), ("yaml", "full_load_all"),
    ("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"),
}
_BANNED_BUILTINS = {"eval", "exec"}
_UNSAFE_YAML_LOADERS = {"Loader", "FullLoader", "UnsafeLoader", "CLoader", "CFullLoader", "CUnsafeLoader"}
_SUBPROCESS_RUNNERS = {"run", "call", "check_call", "check_output", "Popen"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_text(node: ast.AST) -> bool:
    """A command given as one string (to be split by a shell), not an argv list."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    return isinstance(node, ast.BinOp) and (_is_text(node.left) or _is_text(node.right))


def python_problems(source: str, where: str) -> list[str]:
    """Shell strings, eval/exec and unsafe deserialisation in Python source."""
    problems: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "yaml", "pickle"):
            for alias in node.names:
                if (node.module, alias.name) in _BANNED_CALLS:
                    problems.append(f"{line}: imports {node.module}.{alias.name}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        parts = name.rsplit(".", 1)
        if len(parts) == 2 and (parts[0].rsplit(".", 1)[-1], parts[1]) in _BANNED_CALLS:
            problems.append(f"{line}: {name}()")
        if isinstance(node.func, ast.Name) and node.func.id in _BANNED_BUILTINS:
            problems.append(f"{line}: {node.func.id}()")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                problems.append(f"{line}: {name}(shell=...)")
            if name.endswith("load") and kw.arg == "Loader" and \
                    _dotted(kw.value).rsplit(".", 1)[-1] in _UNSAFE_YAML_LOADERS:
                problems.append(f"{line}: {name}(Loader={_dotted(kw.value)})")
        if name in ("yaml.load", "yaml.load_all") and not any(kw.arg == "Loader" for kw in node.keywords) \
                and len(node.args) < 2:
            problems.append(f"{line}: {name}() without a safe Loader")
        if parts[-1] in _SUBPROCESS_RUNNERS and parts[0].endswith("subprocess") and node.args and _is_text(node.args[0]):
            problems.append(f"{line}: {name}() with a command string, not an argv list")
    return problems


_C_CALLS = re.compile(r"\b(system|popen)\s*\(")
_SH_EVAL = re.compile(r"(^|[;&|({]\s*|\s)(eval|(ba)?sh\s+-c)\b")


def other_problems(text: str, where: str, kind: str) -> list[str]:
    """``system()``/``popen()`` in C; ``eval`` and ``sh -c`` in shell scripts."""
    problems = []
    if kind == "c":
        text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    for n, line in enumerate(text.splitlines(), 1):
        code = re.sub(r"//.*$", "", line) if kind == "c" else re.sub(r"(^|\s)#.*$", "", line)
        pattern = _C_CALLS if kind == "c" else _SH_EVAL
        if pattern.search(code):
            problems.append(f"{where}:{n}: {code.strip()}")
    return problems


def _kind(path: Path) -> str | None:
    if path.suffix == ".py":
        return "py"
    if path.suffix in (".c", ".h"):
        return "c"
    if path.suffix == ".sh":
        return "sh"
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if head.startswith(b"#!") and re.match(rb"#![^\n]*\b(sh|bash|dash)\b", head):
        return "sh"
    if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
        return "py"
    return None


def _scanned_files() -> list[tuple[Path, str]]:
    out = []
    for top in SCANNED:
        for path in ([top] if top.is_file() else sorted(top.rglob("*"))):
            if path.is_file() and "__pycache__" not in path.parts:
                kind = _kind(path)
                if kind:
                    out.append((path, kind))
    return out


# --- the checkers can fail ----------------------------------------------------

@pytest.mark.parametrize("source", [
    "import subprocess\nsubprocess.run('ls ' + d, shell=True)\n",
    "import subprocess\nsubprocess.check_output(f'tcpdump -i {iface}')\n",
    "import os\nos.system('reboot')\n",
    "import os\nos.popen(cmd).read()\n",
    "from os import system\n",
    "import subprocess\nsubprocess.getoutput(cmd)\n",
    "eval(data)\n",
    "exec(compile(src, 'x', 'exec'))\n",
    "import yaml\nyaml.load(text)\n",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)\n",
    "import yaml\nyaml.unsafe_load(text)\n",
    "import pickle\npickle.loads(blob)\n",
    "import subprocess as sp\nsp.Popen(argv, shell=flag)\n",
])
def test_python_checker_refuses(source: str) -> None:
    assert python_problems(source, "sample.py")


@pytest.mark.parametrize("source", [
    "backend.exec(container, ['ls', '-l'])\n",
    "import subprocess\nsubprocess.run(['tcpdump', '-i', iface], shell=False)\n",
    "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n",
    "import yaml\nyaml.safe_load(text)\n",
    "os.execv(docker, [docker, 'exec', '-it', c, 'bash'])\n",
])
def test_python_checker_allows(source: str) -> None:
    assert python_problems(source, "sample.py") == []


def test_c_and_shell_checkers_refuse() -> None:
    assert other_problems('int main(void) { system(cmd); }\n', "x.c", "c")
    assert other_problems('FILE *f = popen(cmd, "r");\n', "x.c", "c")
    assert other_problems('eval "$cmd"\n', "x.sh", "sh")
    assert other_problems('sh -c "$1"\n', "x.sh", "sh")
    assert other_problems("/* system(x) is not called */\nint a;\n", "x.c", "c") == []
    assert other_problems('# eval is never used here\n"$@" <"$fifo"\n', "x.sh", "sh") == []


# --- the project --------------------------------------------------------------

def test_the_scan_covers_the_package_and_the_images() -> None:
    files = _scanned_files()
    rel = {p.relative_to(ROOT).as_posix() for p, _ in files}
    assert "tcplab/model/loader.py" in rel and "images/server/server.c" in rel
    assert "images/common/labrun" in rel  # a shell script without a suffix
    assert len([k for _, k in files if k == "py"]) >= 20


def test_no_shell_strings_eval_or_unsafe_loads_in_the_project() -> None:
    problems: list[str] = []
    for path, kind in _scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(ROOT).as_posix()
        problems += python_problems(text, where) if kind == "py" else other_problems(text, where, kind)
    assert problems == []


# --- names from lab data stay inside the run directory --------------------------

HOSTILE_NAMES = [
    "../../etc/passwd", "..", ".", "...", "a/b", "/etc/shadow", "\x00", "a\x00b", "x" * 10_000, "",
    "..\\..\\windows", "a\nb", "~root", "-rf", "ü/../ü", "....//....//etc", " ", ".hidden", "$(reboot)", "`id`",
    "con", "a" * 300 + "/../b",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:24]))
def test_safe_name_is_one_plain_file_name(name: str) -> None:
    safe = safe_name(name)
    assert safe and safe not in (".", "..")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe and "\n" not in safe
    assert not safe.startswith(".")
    assert len(safe.encode()) <= 80


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:24]))
def test_run_dir_paths_of_hostile_names_stay_inside(name: str, tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run").create()
    paths = {
        rd.pcap(name): rd.capture_dir,
        rd.log(name): rd.logs_dir,
        rd.table(name, name): rd.sockets_dir,
        rd.table("server", name, name): rd.sockets_dir,
    }
    for path, home in paths.items():
        resolved = path.resolve()
        assert resolved.parent == home.resolve(), f"{name!r} -> {path}"
        assert rd.path in resolved.parents
        path.write_text("x")  # a real file system accepts the name, and it lands where it should
        assert path.read_text() == "x"
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written and all(rd.path in p.parents for p in written)


# --- a noqa says why ---------------------------------------------------------------------------

_NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)$")


def noqa_without_reason(text: str) -> list[int]:
    """Lines whose ``# noqa`` names no rule codes or gives no reason after them (``# noqa: BLE001 - why``)."""
    bad = []
    for n, line in enumerate(text.splitlines(), 1):
        m = _NOQA.search(line)
        if m is None:
            continue
        codes = re.match(r":\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s*(?P<why>.*)$", m.group("rest"))
        why = codes.group("why").strip(" -—:()") if codes else ""
        if len(why) < 4:
            bad.append(n)
    return bad


def test_the_noqa_checker_refuses_bare_suppressions() -> None:
    assert noqa_without_reason("x = 1  # noqa\ny = 2  # noqa: E501\nz = 3  # noqa: F401, E402\n") == [1, 2, 3]
    assert noqa_without_reason("x = 1  # noqa: BLE001 - the stream may be closed already\n") == []


def test_every_noqa_in_the_project_says_why() -> None:
    found = {}
    for top in (ROOT / "tcplab", ROOT / "images", ROOT / "tests", ROOT / "bench", ROOT / "lab.py"):
        for path in ([top] if top.is_file() else sorted(top.rglob("*.py"))):
            parts = path.relative_to(ROOT).parts
            if any(part.startswith(".venv") for part in parts) or "out" in parts[:2]:  # bench/.venv-*: others' code
                continue
            bad = noqa_without_reason(path.read_text(errors="replace"))
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    found.pop("tests/unit/test_hygiene.py", None)  # the checker's own examples
    assert found == {}, found
