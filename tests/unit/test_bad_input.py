"""Issues 3 and 8: every bad lab file is refused with its golden one-line error.

The bad files are tests/data/bad/*.yaml plus a few generated ones (too big for
git); their errors are recorded in tests/data/bad/expected.txt, one line per
file, exactly as the CLI prints them after ``lab: ``. A message changed on
purpose is re-recorded with ``python tests/data/bad/regen.py``.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import ModuleType

import pytest

from tcplab.model import Lab, LabError, load_lab
from tcplab.paths import known_images

from ..conftest import ROOT, load_module

BAD = ROOT / "tests" / "data" / "bad"
FIGURES = ROOT / "tests" / ".figures" / "bad_input.json"


def _regen() -> ModuleType:
    return load_module(BAD / "regen.py", "bad_regen")


regen = _regen()
GOLDEN: dict[str, str] = regen.read_golden()
NAMES = sorted([f.name for f in regen.committed()] + list(regen.generated()))

# Errors about the file as a whole (not one field): no field path, at most a line number.
WHOLE_FILE = {
    "empty.yaml", "only-comments.yaml", "top-list.yaml", "top-scalar.yaml", "not-utf8.yaml", "raw-nul-byte.yaml",
    "yaml-unclosed-flow.yaml", "yaml-bad-indent.yaml", "yaml-tab-indent.yaml", "yaml-python-tag.yaml",
    "yaml-unknown-tag.yaml", "yaml-two-documents.yaml", "undefined-alias.yaml", "oversized-2mb.yaml",
    "deep-brackets.yaml", "deep-blocks.yaml", "anchor-bomb.yaml", "host-name-100k.yaml",
}
TOP_FIELDS = {f.alias or n for n, f in Lab.model_fields.items()}
LINE_ONLY = re.compile(r"^line \d+(, column \d+)?$")


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    regen.materialize(d)
    return d


def _record(**figures: int) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        data = {}
    data.update(figures)
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_every_bad_file_has_one_golden_line() -> None:
    assert len(NAMES) >= 55
    assert sorted(GOLDEN) == NAMES, "run tests/data/bad/regen.py after adding or removing a bad file"
    assert WHOLE_FILE <= set(NAMES)
    _record(bad_files=len(NAMES))


@pytest.mark.parametrize("name", NAMES)
def test_bad_file_is_refused_with_its_golden_line(name: str, bad_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bad_dir)
    started = time.monotonic()
    with pytest.raises(LabError) as info:
        load_lab(Path(name), [], known_images())
    elapsed = time.monotonic() - started
    line = str(info.value)
    assert line == GOLDEN[name]
    assert "\n" not in line and "\r" not in line and len(line) <= 300
    assert elapsed < 10.0, f"{name}: {elapsed:.1f} s to refuse"  # hostile input stays cheap (~0.1 s)
    field = info.value.field
    if name in WHOLE_FILE:
        assert field == "" or LINE_ONLY.match(field), field
    else:
        assert line.startswith(f"{name}: {field}: ")
        top = re.split(r"[.\[]", field)[0]
        assert top in TOP_FIELDS or (field == top and info.value.message.startswith("unknown field")), \
            f"{field} is not a field path of the lab"


# --- --set misuse -------------------------------------------------------------

SET_CASES = {
    # no '=': not an assignment at all
    "peers.win.fin_wait2_timeout": "--set peers.win.fin_wait2_timeout: expected KEY=VALUE with KEY a dotted path, "
                                   "like --set peers.win.fin_wait2_timeout=2s",
    "=2s": "--set =2s: expected KEY=VALUE",
    "a..b=1": "--set a..b=1: expected KEY=VALUE",
    # a path through a field that holds a plain value
    "name.first=x": "name: --set: this field holds a value ('closewait'), not fields",
    "peers.win.syn.x=1": "hosts.win.peer.syn: --set: this field holds a value ('windows-7'), not fields",
    # a value the field refuses: the error says it came from --set
    "peers.win.fin_wait2_timeout=soon": "hosts.win.peer.fin_wait2_timeout: not a duration: 'soon' (write e.g. 120s, "
                                        "500ms, 2m) (given with --set peers.win.fin_wait2_timeout=soon)",
    "peers.win.fin_wait2_timeout=-1": "hosts.win.peer.fin_wait2_timeout: duration must not be negative: -1",
    "peers.win.syn=windows-95": "hosts.win.peer.syn: 'windows-95' is not one of 'linux', 'windows-7' or "
                                "'windows-10' (given with --set peers.win.syn=windows-95)",
    "network.subnet=8.8.8.0/24": "network.subnet: 8.8.8.0/24 is not a private range",
    "name=$(reboot)": "name: '$(reboot)' is not a valid name",
    "nosuchfield=1": "nosuchfield: unknown field 'nosuchfield'",
    "steps.6.wait.rst_from=mac": "steps.6.wait.rst_from: unknown host 'mac' (hosts: server, linux, win)",
    # list indexes out of range, or not numbers
    "steps.99.timeout=1s": "steps.99: --set: no item 99 in a list of 8 (items are 0 to 7)",
    "steps.x.timeout=1s": "steps.x: --set: 'x' is not an item number in a list of 8",
    # peers.HOST must name a host
    "peers.mac.syn=windows-7": "peers.mac: --set: no host 'mac' (hosts: server, linux, win)",
    "peers.win=1": "peers.win: --set: name a field of the peer",
}


@pytest.mark.parametrize("assignment", list(SET_CASES))
def test_set_misuse_is_one_line_naming_the_field(assignment: str) -> None:
    with pytest.raises(LabError) as info:
        load_lab(ROOT / "labs" / "closewait.yaml", [assignment], known_images(), display_name="closewait.yaml")
    line = str(info.value)
    assert line.startswith("closewait.yaml: " + SET_CASES[assignment]), line
    assert "\n" not in line and len(line) <= 300


def test_set_value_that_is_a_bracket_bomb_stays_a_short_string() -> None:
    """A --set value is parsed as YAML under the same limits as a file: 100 000 '[' is just text."""
    started = time.monotonic()
    with pytest.raises(LabError) as info:
        load_lab(ROOT / "labs" / "closewait.yaml", ["name=" + "[" * 100_000], known_images(),
                 display_name="closewait.yaml")
    assert time.monotonic() - started < 10.0
    assert str(info.value).startswith("closewait.yaml: name: '[[[")
    assert len(str(info.value)) <= 300


def test_the_labs_of_the_project_are_valid() -> None:
    """The rules the bad files test do not refuse the real labs."""
    labs = sorted((ROOT / "labs").glob("*.yaml"))
    assert labs
    for f in labs:
        lab, _ = load_lab(f, [], known_images())
        assert lab.hosts


# --- program.build: the host's image must copy the file ----------------------------

DOCKERFILE = """ARG BASE=tcplab/base:bookworm
FROM ${BASE} AS build
COPY --from=other /x/prog.c /src/
COPY app/main.c \\
     app/util.c /src/
ADD ["app/data/", "/data/"]
COPY app/lib/*.h /src/
RUN gcc -o /src/app /src/main.c
FROM ${BASE}
COPY --chown=1:1 common/tool /usr/local/bin/
COPY --from=build /src/app /opt/lab/app
"""


@pytest.mark.parametrize("build,ok", [
    ("images/app/main.c", True),             # COPY of the file itself
    ("images/app/util.c", True),             # ... on a continued line
    ("images/app/data/x.txt", True),         # in a directory ADDed in JSON form
    ("images/app/lib/a.h", True),            # a glob
    ("images/common/tool", True),            # a file of another directory, copied with a flag
    ("images/app/prog.c", False),            # --from copies from a stage, not from images/
    ("images/app/unused.c", False),          # in the image's directory, but copied by nothing
    ("images/app/Dockerfile", False),
    ("images/other/main.c", False),          # another image's file
])
def test_build_is_accepted_only_when_the_hosts_image_copies_it(build: str, ok: bool, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tcplab.paths

    images = tmp_path / "images"
    for rel in ("app/main.c", "app/util.c", "app/data/x.txt", "app/lib/a.h", "app/prog.c", "app/unused.c", "common/tool",
                "other/main.c", "other/Dockerfile"):
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        (images / rel).write_text("x\n")
    (images / "app" / "Dockerfile").write_text(DOCKERFILE)
    monkeypatch.setattr(tcplab.paths, "HOME", tmp_path)
    monkeypatch.setattr(tcplab.paths, "IMAGES_DIR", images)
    lab = tmp_path / "lab.yaml"
    lab.write_text(f"name: b\nhosts:\n  h:\n    image: tcplab/app\n    program: {{build: '{build}', run: [x]}}\n")
    if ok:
        load_lab(lab, [], {"tcplab/app", "tcplab/other"})
        return
    with pytest.raises(LabError) as info:
        load_lab(lab, [], {"tcplab/app", "tcplab/other"})
    assert info.value.field == "hosts.h.program.build"
    assert "images/app/Dockerfile does not copy it" in info.value.message


def test_build_is_checked_only_for_a_lab_about_to_run(tmp_path: Path) -> None:
    """A run directory's lab.yaml is read again (lab report, on a copy from CI) where no project is: no check."""
    lab = tmp_path / "lab.yaml"
    lab.write_text("name: b\nhosts:\n  h:\n    image: tcplab/server\n    program: {build: nope.c, run: [x]}\n")
    assert load_lab(lab)[0].hosts["h"].program.build == "nope.c"
    with pytest.raises(LabError, match="no such file: nope.c"):
        load_lab(lab, [], known_images())
