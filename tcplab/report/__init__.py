"""The HTML report of a run: ``report.html`` in the run directory, from its artifacts alone.

One self-contained file: styles and the small script are inline, nothing is
fetched (a Content-Security-Policy forbids it, and allows only the page's own
script and style by their hashes, so even a payload that slipped through
escaping could not run). Everything from the run is escaped: by Jinja2's
autoescape in the template, by :mod:`tcplab.report.svg` in the diagrams.
"""
from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import BytecodeCache, Environment, FileSystemBytecodeCache, PackageLoader, select_autoescape
from markupsafe import Markup

from ..analysis.explain import fmt_span
from ..analysis.packets import paused_gc
from ..paths import cache_dir
from ..rundir import RunDir
from .gather import RunData, gather
from .ladder import LadderOptions
from .page import build_context

__all__ = ["prepare", "render_report", "write_report", "LadderOptions"]


def _bytecode_cache() -> BytecodeCache | None:
    """The template's compiled code, kept between processes (compiling it is most of a small report's time);
    Jinja checks each entry against the template's source. None when the cache directory cannot be made."""
    where = cache_dir() / "templates"
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return FileSystemBytecodeCache(str(where))


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=PackageLoader("tcplab.report", "templates"),
                      autoescape=select_autoescape(["html", "j2", "html.j2"], default_for_string=True, default=True),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      bytecode_cache=_bytecode_cache())
    env.filters["span"] = fmt_span
    return env


def _asset(name: str) -> str:
    env = _env()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return source


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def content_security_policy(css: str, js: str) -> str:
    """Nothing from the network, no plugins, no forms; only this page's own style and script."""
    return (f"default-src 'none'; style-src {_hash(css)}; script-src {_hash(js)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def prepare() -> None:
    """Load and compile the report's template ahead of time (`lab down` does it while the engine removes
    the lab, so the report is written sooner once the run is down)."""
    _env().get_template("report.html.j2")
    _asset("report.css")
    _asset("report.js")


def render_report(data: RunData, opts: LadderOptions | None = None) -> str:
    css, js = _asset("report.css"), _asset("report.js")
    ctx: dict[str, Any] = build_context(data, opts)
    ctx.update(css=Markup(css), js=Markup(js), csp=content_security_policy(css, js))
    return _env().get_template("report.html.j2").render(**ctx)


def write_report(run_dir: str | Path, opts: LadderOptions | None = None) -> Path:
    """(Re)write ``report.html`` of a run directory; returns its path. Needs no Docker engine."""
    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        raise FileNotFoundError(f"{rd.path}: no such run directory")
    with paused_gc():  # a run of a million packets: no collection walks them while the report is made
        data = gather(rd)
        html = render_report(data, opts)
        data.traffic.release()
        del data
    out = rd.report_html
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
