"""The report of a real closewait run, rendered by headless Chromium.

One lab run for the module: a copy of closewait (the Windows peer, its
FIN_WAIT_2 timer shortened to 2 s) in which the Linux client first types a
payload that would run script if the report did not escape it (``<script>``,
``<img onerror>``). The report is written while the
lab is up (`lab report LAB`, found through the engine), by `lab down`, and
again by `lab report RUN_DIR`; Chromium then loads it (scripts on, as a
person's browser would) and the tests read the DOM it dumps and the
screenshot it takes.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import yaml

from tcplab.analysis.packets import load_traffic

from ..conftest import ROOT, lab_cmd, labeled_objects, make_lab

pytestmark = pytest.mark.integration

PAYLOAD = "<script>document.title='PWNED'</script> <img src=x onerror=\"document.title='PWNED'\">\r\n"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


TIMER = 2.0  # seconds: win's FIN_WAIT_2 timer (120 s in Windows)


def _steps() -> list[dict[str, Any]]:
    steps = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())["steps"]
    steps.insert(1, {"host": "linux", "send": "telnet1", "text": PAYLOAD, "title": "linux types a payload"})
    return steps


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("report")
    path, name = make_lab(tmp, base="closewait", changes={"steps": _steps()})
    run_dir = tmp / "run"
    try:
        lab_cmd("up", str(path), "--set", f"peers.win.fin_wait2_timeout={TIMER:g}s", "--out", str(run_dir), cwd=tmp,
                timeout=240, check=True)
        up = lab_cmd("report", name, cwd=tmp, timeout=120)  # a lab that is up: found through the engine
        while_up = (run_dir / "report.html").read_text() if up.returncode == 0 else ""
        down = lab_cmd("down", name, cwd=tmp, timeout=120, check=True)
        after_down = (run_dir / "report.html").read_text()
    finally:
        if labeled_objects(name):
            lab_cmd("down", name, cwd=tmp, timeout=120)
    assert not labeled_objects(name)
    return {"dir": run_dir, "name": name, "tmp": tmp, "up": up, "while_up": while_up, "down": down,
            "after_down": after_down}


def _chromium(args: list[str], url: str, profile: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup installs it)")
    return subprocess.run([CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dom(run: dict[str, Any]) -> lxml.html.HtmlElement:
    proc = _chromium(["--dump-dom"], (run["dir"] / "report.html").as_uri(), run["tmp"] / "chrome-dom")
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return lxml.html.fromstring(proc.stdout)


def test_report_written_while_up_by_down_and_by_report_command(run: dict[str, Any]) -> None:
    assert run["up"].returncode == 0, run["up"].stderr
    assert "still up when this report was written" in run["while_up"]
    assert " · down · " in run["after_down"] and "still up" not in run["after_down"]  # `lab down` rewrote it
    assert 'href="capture/all.pcapng"' in run["after_down"] and 'href="capture/all.pcapng"' not in run["while_up"]
    report = run["dir"] / "report.html"
    written_by_down = report.stat().st_mtime_ns
    again = lab_cmd("report", str(run["dir"]), cwd=run["tmp"], timeout=120)  # no engine needed for a RUN_DIR
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("report.html")
    assert report.stat().st_mtime_ns >= written_by_down
    assert 'class="verdict-banner none"' in report.read_text()  # `lab up` checks no expectations


def test_payload_is_shown_as_text_and_never_runs(run: dict[str, Any], dom: lxml.html.HtmlElement) -> None:
    assert dom.findtext(".//title") != "PWNED"
    assert "js" in (dom.body.get("class") or "").split()  # the page's own script did run: scripts were on
    assert len(dom.xpath("//script")) == 1 and dom.xpath("//img") == [] and dom.xpath("//*[@onerror]") == []
    cells = [td.text_content() for td in dom.xpath("//td[contains(@class,'payload')]")]
    assert any("<script>document.title='PWNED'</script>" in c for c in cells), cells
    server_log = dom.get_element_by_id("log-server").text_content()
    assert "<img src=x onerror=\"document.title='PWNED'\">" in server_log


def test_ladder_and_timelines_are_in_the_rendered_dom(run: dict[str, Any], dom: lxml.html.HtmlElement) -> None:
    traffic = load_traffic(run["dir"])
    ladder = dom.xpath("//section[@id='ladder']//*[local-name()='svg']")
    assert len(ladder) == 1
    arrows = ladder[0].xpath(".//*[local-name()='g'][contains(concat(' ', @class, ' '), ' pkt ')]")
    assert len(arrows) == len(traffic.packets) >= 10
    lines = ladder[0].xpath(".//*[local-name()='line']")
    assert len(lines) >= 2 * len(arrows) + 3  # an arrow and its hit area per packet, a lifeline per host
    labels = [a.xpath(".//*[local-name()='text'][@class='lbl']")[0].text for a in arrows]
    assert any(lb.startswith("[F.] seq 1, ack 1, win ") for lb in labels), labels
    assert "[R.] seq 2, ack 1, win 0" in labels
    # the quiet stretch before the RST is folded, its length written on it
    gaps = [float(t.text.split()[0]) for t in ladder[0].xpath(".//*[local-name()='text'][@class='gaptext']")]
    assert any(TIMER - 0.1 < g < TIMER + 0.1 for g in gaps), gaps
    bars = dom.xpath("//section[@id='timelines']//*[local-name()='rect'][contains(@class,'bar')]")
    assert len(bars) >= 6
    cw = [b for b in bars if "s-close-wait" in b.get("class")]
    assert len(cw) == 1 and "open" not in cw[0].get("class") and float(cw[0].get("width")) > 20
    finding = dom.xpath("//div[contains(@class,'finding')][contains(@class,'close-wait')]")
    assert len(finding) == 1
    text = finding[0].text_content()
    assert ":8000" in text and "until the RST from win" in text and "never accept()ed" in text


def test_screenshot_shows_arrows_and_the_close_wait_bar(run: dict[str, Any]) -> None:
    png = run["dir"] / "report-screenshot.png"
    proc = _chromium([f"--screenshot={png}", "--window-size=1400,9000"], (run["dir"] / "report.html").as_uri(),
                     run["tmp"] / "chrome-shot")
    assert png.is_file(), proc.stderr[-2000:]
    # report.css uses these only for the ladder's arrows (and their labels) and the timeline's CLOSE_WAIT bars
    colours = {"syn": (0x16, 0x80, 0x3C), "fin": (0x1D, 0x4E, 0xD8), "rst": (0xDC, 0x26, 0x26),
               "close_wait": (0xFF, 0xB3, 0xB3)}
    counts = _colour_counts(png, colours)
    print(f"screenshot: {png} {counts}")
    assert counts["syn"] > 50 and counts["fin"] > 20 and counts["rst"] > 20, counts  # the arrows were painted
    assert counts["close_wait"] > 500, counts  # and the CLOSE_WAIT bar


def _colour_counts(path: Path, colours: dict[str, tuple[int, int, int]], tol: int = 6) -> dict[str, int]:
    """Pixels near each colour in an 8-bit RGB/RGBA PNG (a small decoder: no imaging library needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat = 8, b""
    w = h = ct = 0
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        i += 12 + n
        if kind == b"IHDR":
            w, h, depth, ct = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ct in (2, 6)
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if ct == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    counts = dict.fromkeys(colours, 0)
    pos = 0
    for _ in range(h):
        f = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if f == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for x in range(stride):
                line[x] = (line[x] + (((line[x - bpp] if x >= bpp else 0) + prev[x]) >> 1)) & 255
        elif f == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        for x in range(0, stride, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            if r > 250 and g > 250 and b > 250:
                continue
            for name, (cr, cg, cb) in colours.items():
                if abs(r - cr) <= tol and abs(g - cg) <= tol and abs(b - cb) <= tol:
                    counts[name] += 1
    return counts
