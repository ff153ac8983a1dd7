"""A few helpers to write SVG as text, escaping every attribute value and every text node.

The ladder and the timelines are built as strings (thousands of elements: a
template per element would be slow) and handed to the page template as
:class:`markupsafe.Markup`. So this module is where escaping happens for them:
nothing passes through unescaped except markup these functions built.
"""
from __future__ import annotations

from markupsafe import Markup, escape


def attrs(**kw: object) -> str:
    """``key="value"`` pairs; ``class_`` -> ``class``, ``marker_end`` -> ``marker-end``; None is left out."""
    out = []
    for k, v in kw.items():
        if v is None:
            continue
        name = k.rstrip("_").replace("_", "-")
        if isinstance(v, float):
            v = f"{v:.1f}".rstrip("0").rstrip(".")
        out.append(f' {name}="{escape(str(v))}"')
    return "".join(out)


def el(tag: str, *children: str, **kw: object) -> str:
    """An element; children are markup strings (already built by these helpers), never raw data."""
    a = attrs(**kw)
    if not children:
        return f"<{tag}{a}/>"
    return f"<{tag}{a}>{''.join(children)}</{tag}>"


def text(x: float, y: float, content: object, **kw: object) -> str:
    """A text element whose content is escaped."""
    return f"<text{attrs(x=x, y=y, **kw)}>{escape(str(content))}</text>"


def title(content: object) -> str:
    """A tooltip: browsers show it on hover, with no script."""
    return f"<title>{escape(str(content))}</title>"


def svg(width: float, height: float, body: list[str], **kw: object) -> Markup:
    box = f"0 0 {width:.0f} {height:.0f}"
    head = f'<svg xmlns="http://www.w3.org/2000/svg"{attrs(width=width, height=height, viewBox=box, **kw)}>'
    return Markup(head + "".join(body) + "</svg>")
