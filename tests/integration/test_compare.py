"""`lab compare` of two real runs: closewait (the Windows peer, its timer shortened to 2 s) and its Linux control.

The two labs run once for the module (each its own name and subnet) in one directory whose ./runs holds both:
the control first, then closewait with ``--compare-with`` the control, whose page headless Chromium loads;
`lab compare` then finds each run by its lab's name (its newest run there).
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Any

import lxml.html
import pytest

from ..conftest import lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def _svg(node: Any, cls: str) -> list[Any]:
    return list(node.xpath(f".//*[local-name()='svg'][contains(concat(' ', @class, ' '), ' {cls} ')]"))


def _arrows(svg: Any, cls: str = "pkt") -> list[Any]:
    return list(svg.xpath(f".//*[local-name()='g'][contains(concat(' ', @class, ' '), ' {cls} ')]"))


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compare")
    (tmp / "w").mkdir()
    (tmp / "l").mkdir()
    win_path, win = make_lab(tmp / "w", base="closewait")
    lin_path, lin = make_lab(tmp / "l", base="closewait-linux")
    try:
        lab_cmd("run", str(lin_path), cwd=tmp, timeout=240, check=True)
        run = lab_cmd("run", str(win_path), "--set", "peers.win.fin_wait2_timeout=2s", "--compare-with", lin,
                      cwd=tmp, timeout=240, check=True)
    finally:
        for n in (win, lin):
            if labeled_objects(n):
                lab_cmd("down", n, cwd=tmp, timeout=120)
    by_names = lab_cmd("compare", win, lin, "--out", "again.html", cwd=tmp, timeout=120)
    assert by_names.returncode == 0, by_names.stderr
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (scripts/setup installs it)")
    dump = subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={tmp / 'chrome'}", "--dump-dom",
                           (tmp / "compare.html").as_uri()], capture_output=True, text=True, timeout=90)
    assert dump.returncode == 0 and "<html" in dump.stdout, dump.stderr[-2000:]
    return {"tmp": tmp, "win": win, "lin": lin, "run": run, "by_names": by_names,
            "dom": lxml.html.fromstring(dump.stdout), "again": lxml.html.parse(str(tmp / "again.html")).getroot()}


def test_both_ladders_render_and_only_the_windows_one_has_the_rst(compared: dict[str, Any]) -> None:
    dom = compared["dom"]
    assert compared["run"].stdout.strip().splitlines()[-1] == "compare.html"  # `lab run --compare-with`
    ladders = {side: _svg(dom.get_element_by_id(f"ladder-{side}"), "ladder") for side in "ab"}
    assert [len(v) for v in ladders.values()] == [1, 1]
    for side, (svg,) in ladders.items():
        arrows = _arrows(svg)
        assert len(arrows) >= 8, side  # two handshakes, win's FIN and its ack
        assert all(a.get("id").startswith(f"{side}-a-") for a in arrows)  # no id shared by the two ladders
    rst = {side: [a for a in _arrows(svg, "rst")] for side, (svg,) in ladders.items()}
    assert len(rst["a"]) >= 1 and rst["b"] == []
    # the steps both played start level: "win closes telnet" is at the same height in both ladders
    def step_y(svg: Any, title: str) -> float:
        texts = svg.xpath(".//*[local-name()='text'][@class='steptext']")
        return float(next(t for t in texts if t.text.endswith(title)).get("y"))
    assert step_y(ladders["a"][0], "win closes telnet") == step_y(ladders["b"][0], "win closes telnet")
    assert len(_svg(dom.get_element_by_id("timeline-a"), "timeline")) == 1
    assert len(_svg(dom.get_element_by_id("timeline-b"), "timeline")) == 1


def test_the_differences_name_the_rst_from_win(compared: dict[str, Any]) -> None:
    items = [li.text_content() for li in compared["dom"].xpath("//ul[@class='differences']/li")]
    win, lin = compared["win"], compared["lin"]
    rst = [t for t in items if "win sends an RST to server" in t]
    assert len(rst) == 1, items
    assert f"in {win} (" in rst[0] and f"in {lin} win never sends one" in rst[0]
    assert any(f"still in CLOSE_WAIT in {lin}" in t and "server's socket to win" in t for t in items), items
    assert any("no-rst-from-win" in t for t in items), items  # expectations only one of them checks
    # `lab compare` of the two labs' newest runs under ./runs says the same
    assert compared["by_names"].stdout.strip() == "again.html"
    assert [li.text_content() for li in compared["again"].xpath("//ul[@class='differences']/li")] == items
    said = compared["by_names"].stderr.splitlines()  # and the terminal, a line each
    assert [line.removeprefix("  - ") for line in said[1:]] == [t.split(" ", 1)[1].strip() for t in items]


def test_expectations_of_both_are_listed(compared: dict[str, Any]) -> None:
    dom = compared["dom"]
    names = {side: [b.text for b in dom.get_element_by_id(f"expect-{side}").xpath(".//table//b")] for side in "ab"}
    assert "win-rst-after-fin-wait2" in names["a"] and "win-rst-after-fin-wait2" not in names["b"]
    assert "close-wait-stays" in names["b"]


def test_a_path_that_is_no_run_is_one_line_exit_2(compared: dict[str, Any]) -> None:
    tmp = compared["tmp"]
    bad = lab_cmd("compare", str(tmp / "w"), compared["lin"], cwd=tmp, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "not a run directory" in bad.stderr


def test_compare_with_a_run_that_is_not_there_is_exit_2_before_anything_runs(compared: dict[str, Any]) -> None:
    tmp = compared["tmp"]
    lab = next((tmp / "w").glob("*.yaml"))
    bad = lab_cmd("run", str(lab), "--compare-with", "no-such-lab", cwd=tmp, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "--compare-with no-such-lab: not a run directory" in bad.stderr
    assert bad.stdout == "" and not labeled_objects(compared["win"])
