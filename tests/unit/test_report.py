"""report.html as a whole: sections, escaping, the content security policy, links, missing artifacts, the CLI."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import lxml.html
import pytest
from typer.testing import CliRunner

from tcplab.cli.app import app
from tcplab.cli.report_cmd import NotARun, resolve_run_dir
from tcplab.report import write_report

from .test_report_synth import HOSTS, T0, A, P, S, Wire, write_closewait_run

PAYLOAD = (b"<script>document.title='PWNED'</script> <img src=x onerror=\"document.title='PWNED'\">\r\n")
ROOT = Path(__file__).resolve().parents[2]


def _doc(path: Path) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(path.read_text(encoding="utf-8"))


@pytest.fixture
def windows_report(tmp_path: Path) -> tuple[Path, lxml.html.HtmlElement]:
    rd = write_closewait_run(tmp_path, windows=True, payload=PAYLOAD)
    out = write_report(rd)
    return rd, _doc(out)


def test_payload_typed_into_telnet_is_text_not_markup(windows_report: tuple[Path, lxml.html.HtmlElement]) -> None:
    rd, doc = windows_report
    scripts = doc.xpath("//script")
    assert len(scripts) == 1  # the page's own, and nothing from the run
    assert doc.xpath("//img") == [] and doc.xpath("//*[@onerror]") == []
    payload_cells = [td.text_content() for td in
                     doc.xpath("//table[contains(@class,'packets')]//td[contains(@class,'payload')]")]
    assert any("<script>document.title='PWNED'</script>" in c for c in payload_cells)
    logs = doc.get_element_by_id("log-server").text_content()
    assert "<img src=x onerror=\"document.title='PWNED'\">" in logs
    assert doc.findtext(".//title") == "closewait — tcplab report"


def test_csp_allows_only_the_pages_own_style_and_script(windows_report: tuple[Path, lxml.html.HtmlElement]) -> None:
    _, doc = windows_report
    csp = doc.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")[0]
    assert "default-src 'none'" in csp

    def h(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    style = doc.xpath("//style")[0].text
    script = doc.xpath("//script")[0].text
    assert re.search(r"style-src ([^;]*)", csp).group(1) == h(style)
    assert re.search(r"script-src ([^;]*)", csp).group(1) == h(script)


def test_self_contained_and_links_point_into_the_run(windows_report: tuple[Path, lxml.html.HtmlElement]) -> None:
    rd, doc = windows_report
    assert doc.xpath("//@src") == []
    ids = set(doc.xpath("//@id"))
    for href in doc.xpath("//@href"):
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", href), href  # no scheme: nothing remote, no javascript:
        if href.startswith("#"):
            assert href[1:] in ids, href
        else:
            from urllib.parse import unquote

            assert (rd / unquote(href)).is_file(), href
    hrefs = set(doc.xpath("//@href"))
    for must in ("capture/all.pcapng", "capture/server.pcap", "sockets/server-close_wait.txt", "logs/server.log",
                 "lab.yaml"):
        if (rd / must).exists():
            assert must in hrefs, must


def test_sections_are_filled_from_the_run(windows_report: tuple[Path, lxml.html.HtmlElement]) -> None:
    rd, doc = windows_report
    for sid in ("summary", "explanation", "ladder", "timelines", "tables", "packets", "logs", "artifacts"):
        assert doc.get_element_by_id(sid) is not None
    ladder = doc.xpath("//section[@id='ladder']//*[local-name()='svg']")[0]
    assert len(ladder.xpath(".//*[local-name()='g'][contains(@class,'pkt')]")) == 11
    bars = doc.xpath("//section[@id='timelines']//*[local-name()='rect'][contains(@class,'bar')]")
    assert any("s-close-wait" in b.get("class") for b in bars)
    finding = doc.xpath("//div[contains(@class,'finding')]")[0].text_content()
    assert f"{HOSTS['server']}:8000" in finding and "RST from win" in finding
    marked = doc.xpath("//pre[contains(@class,'netstat')]/span[contains(@class,'close-wait')]")
    assert marked and all("CLOSE_WAIT" in m.text_content() for m in marked)
    unaccepted = doc.xpath("//pre[contains(@class,'netstat')]/span[contains(@class,'unaccepted')]")
    assert unaccepted and all(":52552" in m.text_content() for m in unaccepted)
    summary = doc.get_element_by_id("summary").text_content()
    assert "6.1.0-test" in summary and "20.10.24" in summary and "sha256:" + "ab" * 32 in summary
    assert "NET_RAW" in summary
    assert "expectations were not checked" in summary  # no result.json


def test_verdicts_from_result_json(tmp_path: Path) -> None:
    result = {"lab": "closewait", "run": "r", "passed": False, "counts": {"held": 1, "failed": 1}, "expectations": [
        {"name": "fin", "about": "win closes", "kind": "packet", "held": True, "expected": "[F.] from win",
         "seen": "#9", "where": "capture/win.pcap #4", "message": ""},
        {"name": "rst<b>", "about": "win resets", "kind": "packet", "held": False, "expected": "[R.]",
         "seen": "none", "where": "", "message": "no RST <b>at all</b>"}]}
    rd = write_closewait_run(tmp_path, result=result)
    doc = _doc(write_report(rd))
    rows = doc.xpath("//table[contains(@class,'verdicts')]//tr[td]")
    assert [r.xpath("td[1]")[0].text_content().strip() for r in rows] == ["✓ held", "✗ failed"]
    assert "no RST <b>at all</b>" in rows[1].text_content() and doc.xpath("//b[text()='at all']") == []
    assert "some expectations failed" in doc.get_element_by_id("summary").text_content()


def test_report_of_a_run_with_almost_nothing(tmp_path: Path) -> None:
    rd = tmp_path / "empty-run"
    rd.mkdir()
    (rd / "lab.yaml").write_text("name: empty\nhosts: {a: {image: tcplab/client}}\n")
    doc = _doc(write_report(rd))
    text = doc.text_content()
    assert "No TCP packets were captured" in text and "No snapshots" in text
    assert "expectations were not checked" in text


def test_unreadable_capture_is_reported_not_fatal(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path)
    (rd / "capture" / "server.pcap").write_bytes(b"not a pcap at all, sorry")
    doc = _doc(write_report(rd))
    assert "captures could not be read" in doc.get_element_by_id("summary").text_content()


def test_large_capture_is_folded_and_stays_small(tmp_path: Path) -> None:
    w = Wire(HOSTS)
    w.send(T0, "linux", "server", 40000, 8000, 0, 0, S, 64240)
    for i in range(20_000):
        w.send(T0 + 1e-3 + i * 1e-5, "linux", "server", 40000, 8000, 1 + i, 1, P | A, 63, payload=b"<")
    rd = tmp_path / "big"
    w.write(rd / "capture")
    (rd / "run.json").write_text(json.dumps({"hosts": HOSTS}))
    out = write_report(rd)
    doc = _doc(out)
    assert len(doc.xpath("//*[local-name()='g'][contains(@class,'pkt')]")) < 100
    assert "packets not drawn" in doc.get_element_by_id("ladder").text_content()
    assert out.stat().st_size < 300_000


def test_write_report_needs_no_docker(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path)
    code = ("import sys; from tcplab.report import write_report; write_report(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.')))")
    proc = subprocess.run([sys.executable, "-c", code, str(rd)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, DOCKER_HOST="unix:///nonexistent.sock"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert (rd / "report.html").is_file()


# --- the command -------------------------------------------------------------------

def test_cli_report_run_dir_and_newest_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    old = write_closewait_run(runs / "a")
    new = write_closewait_run(runs / "b")
    os.utime(old / "run.json", (1, 1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(old)])
    assert res.exit_code == 0, res.output
    assert (old / "report.html").is_file() and not (new / "report.html").exists()
    # runs/a/... and runs/b/... are not directly under runs/: point runs/ at them
    for d in (old, new):
        d.rename(runs / d.name.replace("closewait", d.parent.name))
    res = runner.invoke(app, ["report", "--open"])
    assert res.exit_code == 0, res.output
    assert (runs / "b-20261124T101500Z" / "report.html").is_file()
    assert "no display" in res.output


def test_cli_report_bad_argument_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a run directory" in res.output


def test_resolve_lab_name_asks_the_engine_only_for_names(tmp_path: Path) -> None:
    rd = write_closewait_run(tmp_path / "runs")
    asked: list[str] = []

    def finder(name: str) -> str | None:
        asked.append(name)
        return str(rd) if name == "closewait" else None

    assert resolve_run_dir(str(rd), tmp_path / "runs", finder) == rd and asked == []
    assert resolve_run_dir("closewait", tmp_path / "runs", finder) == rd and asked == ["closewait"]
    with pytest.raises(NotARun, match="lab is not up"):
        resolve_run_dir("other", tmp_path / "runs", finder)


_PREPARE_WITHOUT_COMPILING = """
import jinja2
def refuse(*a, **k):
    raise AssertionError("the template was compiled again")
jinja2.Environment.compile = refuse
from tcplab.report import prepare
prepare()
"""


def test_the_compiled_template_is_kept_between_processes(tmp_path: Path) -> None:
    env = {**os.environ, "TCPLAB_CACHE": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", "from tcplab.report import prepare; prepare()"], env=env,
                           capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "cache" / "templates").iterdir()), "the first process leaves the compiled template"
    second = subprocess.run([sys.executable, "-c", _PREPARE_WITHOUT_COMPILING], env=env, capture_output=True,
                            text=True, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    (tmp_path / "blocked").write_text("a file where the cache directory would be")
    blocked = subprocess.run([sys.executable, "-c", "from tcplab.report import prepare; prepare()"], cwd=ROOT,
                             env={**env, "TCPLAB_CACHE": str(tmp_path / "blocked")}, capture_output=True, text=True)
    assert blocked.returncode == 0, "no cache is slower, not an error: " + blocked.stderr
