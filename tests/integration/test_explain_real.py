"""The explanation of real runs on this kernel: each phenomenon the story shows is explained, and the FIN's
delayed ACK is explained from what the kernel itself showed (ss's ato before and after the FIN)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from tcplab.analysis.explain import fmt_span
from tcplab.analysis.timeline import SocketId
from tcplab.report.gather import gather
from tcplab.report.page import build_context

from ..conftest import lab_cmd, make_lab

pytestmark = pytest.mark.integration


def _run(tmp: Path, base: str, sets: list[str]) -> Path:
    lab, _ = make_lab(tmp, base)
    out = tmp / "run"
    res = lab_cmd("run", str(lab), *[a for s in sets for a in ("--set", s)], "--out", str(out), cwd=tmp, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def test_closewait_explains_each_phenomenon_and_the_fins_delayed_ack(tmp_path: Path) -> None:
    out = _run(tmp_path, "closewait", ["peers.win.fin_wait2_timeout=2s"])
    data = gather(out)
    ex = build_context(data)["ex"]
    hosts = data.info["hosts"]
    (cw,) = ex.of("close_wait")
    assert (cw.socket.host, cw.socket.local_port, cw.socket.peer_ip) == ("server", 8000, hosts["win"])
    (fw2,) = ex.of("fin_wait2")
    (rst,) = ex.of("rst_after_close")
    assert fw2.socket.host == rst.socket.host == "win" and ex.of("time_wait") == []
    # the kernel's own evidence for the delayed ACK: no ato on the server's socket before the FIN, ato:40 after
    sock = SocketId("server", hosts["server"], 8000, hosts["win"], cw.socket.peer_port)
    fin = next(p for p in data.traffic.packets if p.tcp.src == hosts["win"] and "F" in p.flags)
    ack = next(p for p in data.traffic.packets if p.n > fin.n and p.tcp.src == hosts["server"])
    infos = _ss_info(data.snapshots, sock)
    assert any(t < fin.ts and "ato:" not in info for t, info in infos)
    assert any(t > ack.ts and re.search(r"\bato:40\b", info) for t, info in infos)
    row = next(d for d in ex.differences if d.what == "server's ACK of the FIN")
    assert "ato:40" in row.why and fmt_span(ack.ts - fin.ts) in row.why
    doc = lxml.html.fromstring((out / "report.html").read_text(encoding="utf-8"))
    assert doc.xpath("//section[@id='explanation']//table[contains(@class,'diff')]")


def _ss_info(snapshots: dict[str, Any], sock: SocketId) -> list[tuple[float, str]]:
    """(time, ss's details) of ``sock`` in each snapshot that lists it."""
    out = []
    for snap in snapshots.values():
        for r in ((snap.get("hosts") or {}).get(sock.host) or {}).get("ss", {}).get("records") or []:
            if (r.get("local_addr"), r.get("local_port"), r.get("peer_addr"), r.get("peer_port")) == sock.key():
                out.append((float(snap["time"]), str(r.get("info") or "")))
    return out


def test_closewait_linux_has_no_rst_explanation_and_keeps_its_comparison(tmp_path: Path) -> None:
    out = _run(tmp_path, "closewait-linux", [])
    ex = build_context(gather(out))["ex"]
    assert len(ex.of("close_wait")) == 1 and ex.of("rst_after_close") == []
    assert [f.socket.host for f in ex.of("fin_wait2")] == ["win"]
    assert next(d for d in ex.differences if d.what == "win's RST").this_run == "none"
