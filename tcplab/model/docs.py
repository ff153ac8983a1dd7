"""docs/lab-file.md, generated from the model so that it cannot drift from what the loader accepts.

Every model reachable from :class:`~tcplab.model.lab.Lab` is a section; every field a row: its YAML
name, its type and constraints (read from the annotation), its default, its description and an
example. A field's description is its ``Field(description=...)`` or, as the model writes them, the
docstring right below it (read from the source here, not by pydantic, so loading a lab pays nothing
for it). An example is the field's ``Field(examples=[...])``, else a value a shipped lab gives it,
else its default. A new field needs only its description.

    python -m tcplab.model.docs             # rewrite docs/lab-file.md of the checkout
    python -m tcplab.model.docs --check     # exit 1 when it differs from what this generates
"""
from __future__ import annotations

import ast
import json
import inspect
import ipaddress
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Union, get_args, get_origin, get_type_hints

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import lab as m
from .duration import format_duration
from .strict import Name, Strict

COMMAND = "python -m tcplab.model.docs"
TARGET = Path("docs") / "lab-file.md"

# Types of the model with a name of their own: said in words, not as their pattern.
NAMED: list[tuple[object, str]] = [
    (Name, "name (`a-z`, then `a-z 0-9 _ -`, up to 31 characters)"),
    (m.Seconds, "duration (`120s`, `500ms`, `2m`, `1.5` = seconds)"),
    (m.WholeSeconds, "duration in whole seconds (`3s`, `6m`, `350`)"),
    (m.Port, "port (1-65535)"),
    (m.TracedState, "TCP state (as `State`, but not `NEW_SYN_RECV`)"),
    (m.State, "TCP state (`ESTABLISHED`, `CLOSE_WAIT`, `FIN_WAIT2`... netstat's, ss's or the kernel's "
              "spelling)"),
    (m.Regex, "regex (Python `re`, searched anywhere in the output; `^` `$` at each line's ends)"),
    (m.Anchor, "anchor (an earlier expectation, a snapshot, a step's name like `stop-telnet2`, or `steps.N`)"),
    (m.Delay, "duration, or the dotted path of a peer's duration field (`peers.win.fin_wait2_timeout`)"),
    (m.Arg, "text (1-4096 characters)"),
    (m.Title, "text (up to 200 characters)"),
    (m.FlagString, "TCP flags as tcpdump prints them (`S`, `F.`, `R.`, `.`) or `none`"),
    (m.FlagBits, "TCP flag letters (`S F R P U E W`)"),
    (m.SysctlKey, "sysctl name under `net.ipv4.`, `net.ipv6.` or `net.core.`"),
    (m.ImageRef, "image reference (`myorg/svc:1.0`, `registry.example.com:5000/team/svc:2`, `name@sha256:...`)"),
    (m.LabPath, "path relative to the lab file's directory, inside it (no `..`)"),
]


@dataclass
class Row:
    name: str
    type: str
    default: str
    description: str
    example: str


@dataclass
class Section:
    model: type[BaseModel]
    paths: list[str]
    rows: list[Row] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return self.model.__name__.lower()


def field_docstrings(cls: type) -> dict[str, str]:
    """The docstrings written right below each field of ``cls`` and of its bases (nearest wins)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ != cls.__module__ or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in zip(body, body[1:]):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                    and isinstance(after.value.value, str):
                found[stmt.target.id] = inspect.cleandoc(after.value.value)
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _models_in(t: Any) -> Iterator[type[BaseModel]]:
    """The models a type annotation holds, in order."""
    if isinstance(t, type) and issubclass(t, BaseModel):
        yield t
        return
    for arg in get_args(t):
        if not isinstance(arg, (str, int, float, bool, FieldInfo)) and arg is not None:
            yield from _models_in(arg)


def _constraints(meta: list[Any]) -> list[str]:
    said: list[str] = []
    for c in meta:
        if isinstance(c, FieldInfo):
            said += _constraints(list(c.metadata))
        elif isinstance(c, annotated_types.Ge):
            said.append(f">= {c.ge}")
        elif isinstance(c, annotated_types.Gt):
            said.append(f"> {c.gt}")
        elif isinstance(c, annotated_types.Le):
            said.append(f"<= {c.le}")
        elif isinstance(c, annotated_types.Lt):
            said.append(f"< {c.lt}")
        elif isinstance(c, annotated_types.MinLen):
            said.append(f"at least {c.min_length} entries")
        elif isinstance(c, annotated_types.MaxLen):
            said.append(f"at most {c.max_length} entries")
        elif type(c).__name__ == "StringConstraints":
            if getattr(c, "pattern", None):
                said.append(f"matching `{c.pattern}`")
            elif getattr(c, "max_length", None):
                said.append(f"up to {c.max_length} characters")
        elif getattr(c, "strict", None) is True:
            said.append("strict")
    return said


def type_text(t: Any, titles: dict[type[BaseModel], str]) -> str:
    """A field's type in words, with its constraints; models link to their section."""
    for named, text in NAMED:
        if t == named:
            return text
    origin = get_origin(t)
    if origin is Annotated:
        base, *meta = get_args(t)
        inner = type_text(base, titles)
        said = _constraints(meta)
        if said and "entries" in " ".join(said) and not inner.startswith(("list", "mapping")):
            said = [s.replace("entries", "characters") for s in said]
        low = next((x for x in said if x.startswith("at least ")), None)
        high = next((x for x in said if x.startswith("at most ")), None)
        if low and high and low.endswith(" entries") and high.endswith(" entries"):
            said = [x for x in said if x not in (low, high)] + [f"{low.split()[2]}-{high.split()[2]} entries"]
        return inner + (f" ({', '.join(said)})" if said else "")
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(t) if a is not type(None)]
        return " or ".join(type_text(a, titles) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(t))
    if origin is list:
        return "list of " + type_text(get_args(t)[0], titles)
    if origin is dict:
        k, v = get_args(t)
        return f"mapping of {type_text(k, titles)} to {type_text(v, titles)}"
    if isinstance(t, type) and issubclass(t, BaseModel):
        return f"[{titles.get(t, t.__name__)}](#{t.__name__.lower()})"
    return {str: "text", int: "integer", float: "number", bool: "`true` or `false`",
            ipaddress.IPv4Address: "IPv4 address", ipaddress.IPv4Network: "IPv4 network (`10.77.0.0/24`)"}.get(
        t, getattr(t, "__name__", str(t)))


def _flow(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv4Address)):
        value = str(value)
    if value == "" or (isinstance(value, str) and not value.isprintable()):
        return json.dumps(value)  # YAML's double-quoted form: "quit\n"
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True,
                               sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix(" ...")


def _example(key: str, value: Any) -> str:
    """``key: value`` as a lab file writes it on one line; long text cut short."""
    if isinstance(value, str) and len(value) > 60:
        value = value[:57].rstrip() + "..."
    return f"{key}: {_flow(value)}"


def _is_duration(t: Any) -> bool:
    return t in (m.Seconds, m.WholeSeconds) or any(_is_duration(a) for a in get_args(t)
                                                   if get_origin(t) in (Union, types.UnionType))


def _default(info: FieldInfo, duration: bool = False) -> str:
    if duration and isinstance(info.default, float):
        return f"`{format_duration(info.default)}`"
    if isinstance(info.default_factory, type) and issubclass(info.default_factory, BaseModel):
        return "see its section"  # a part made with its own defaults, as a default instance is
    if info.default_factory is not None:
        return f"`{_flow(info.default_factory())}`"  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "none"
    if isinstance(info.default, BaseModel):
        return "see its section"
    if isinstance(info.default, float) and info.default.is_integer():
        return f"`{int(info.default)}`"
    return f"`{_flow(info.default)}`"


def _yaml_name(name: str, info: FieldInfo) -> str:
    return info.alias or name


def _container(t: Any) -> str:
    """``dict`` or ``list`` when a field holds models in a mapping or a list; else ``""``."""
    while get_origin(t) is Annotated or get_origin(t) in (Union, types.UnionType):
        args = [a for a in get_args(t) if a is not type(None)]
        if get_origin(t) is not Annotated and len(args) != 1:
            return ""
        t = args[0]
    return {dict: "dict", list: "list"}.get(get_origin(t), "")


def _matching(models: list[type[BaseModel]], item: Any) -> type[BaseModel] | None:
    """The model of a union that a mapping from a lab file is: the one that has all its keys."""
    if not isinstance(item, dict):
        return None
    for model in models:
        names = {_yaml_name(n, i) for n, i in model.model_fields.items()}
        if set(item) <= names:
            return model
    return None


def _collect_examples(model: type[BaseModel], data: Any, seen: dict[tuple[type[BaseModel], str], Any]) -> None:
    """Walk a lab file's data along the model: the first value each field is given."""
    if not isinstance(data, dict):
        return
    hints = get_type_hints(model, include_extras=True)
    for name, info in model.model_fields.items():
        key = _yaml_name(name, info)
        if key not in data:
            continue
        value = data[key]
        seen.setdefault((model, name), value)
        inner = list(dict.fromkeys(_models_in(hints[name])))
        if not inner:
            continue
        kind = _container(hints[name])
        items: list[Any] = [value]
        if kind == "dict" and isinstance(value, dict):
            items = list(value.values())
        elif kind == "list" and isinstance(value, list):
            items = value
        for item in items:
            target = inner[0] if len(inner) == 1 else _matching(inner, item)
            if target is not None:
                _collect_examples(target, item, seen)


def lab_examples(files: list[Path]) -> dict[tuple[type[BaseModel], str], Any]:
    seen: dict[tuple[type[BaseModel], str], Any] = {}
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        _collect_examples(m.Lab, data, seen)
    return seen


def sections(root: type[BaseModel] = m.Lab) -> list[Section]:
    """Every model reachable from the lab, each once, in the order a lab file reads them; its YAML paths."""
    found: dict[type[BaseModel], Section] = {}
    kinds: dict[type[BaseModel], str] = {cls: kind for kind, cls in m.STEP_KINDS.items()}

    def walk(model: type[BaseModel], path: str) -> None:
        if model in found:
            found[model].paths.append(path)
            return
        found[model] = Section(model, [path])
        hints = get_type_hints(model, include_extras=True)
        for name, info in model.model_fields.items():
            yname = _yaml_name(name, info)
            kind = _container(hints[name])
            for inner in dict.fromkeys(_models_in(hints[name])):
                if inner in m.STEP_KINDS.values():
                    sub = f"steps[] ({kinds[inner]})"
                elif kind == "dict":
                    sub = f"{path}.{yname}.NAME".lstrip(".")
                elif kind == "list":
                    sub = f"{path}.{yname}[]".lstrip(".")
                else:
                    sub = f"{path}.{yname}".lstrip(".")
                walk(inner, sub)

    walk(root, "")
    return list(found.values())


def field_problems(root: type[BaseModel] = m.Lab) -> list[str]:
    """Fields of the lab file without a description: ``Class.field`` and where to write it."""
    problems = []
    for section in sections(root):
        docs = field_docstrings(section.model)
        for name, info in section.model.model_fields.items():
            if not (info.description or docs.get(name)):
                problems.append(f"{section.model.__name__}.{name} ({inspect.getsourcefile(section.model)}) has no "
                                "description: write a docstring right below it (or Field(description=...))")
    return problems


def _where(paths: list[str]) -> str:
    return ", ".join(f"`{p}`" for p in paths if p)


def render(example_files: list[Path], root: type[BaseModel] = m.Lab) -> str:
    """The whole of docs/lab-file.md."""
    secs = sections(root)
    titles = {s.model: s.model.__name__ for s in secs}
    examples = lab_examples(example_files)
    out = [
        "# The lab file",
        "",
        f"<!-- generated by `{COMMAND}` from tcplab/model: edit the model's docstrings, not this file -->",
        "",
        "A lab file is YAML: a mapping with the fields of [Lab](#lab) below. Each section is one part of the "
        "file and says where it goes (`hosts.NAME` is any host's name under `hosts:`, `steps[]` an item of the "
        "`steps:` list). A field not listed is refused, and so is a value outside its type: `lab validate` "
        "says which (one line: file, field, what is wrong; exit status 2).",
        "",
        "Paths in a lab file are relative to the lab file's directory. Durations are written `120s`, `500ms`, "
        "`2m`, `1h` or as a number of seconds. An example is a value the shipped labs or `examples/` give the field, "
        "else one the model gives.",
        "",
        "| section | where |",
        "| --- | --- |",
    ]
    out += [f"| [{s.model.__name__}](#{s.anchor}) | {_where(s.paths) or 'the file'} |" for s in secs]
    for s in secs:
        model = s.model
        hints = get_type_hints(model, include_extras=True)
        docs = field_docstrings(model)
        out += ["", f'<a id="{s.anchor}"></a>', "", f"## {model.__name__}", ""]
        out.append(f"Where: {_where(s.paths) or 'the top of the file'}.")
        if model.__doc__ and model.__doc__ is not BaseModel.__doc__ and model.__doc__ not in (
                Strict.__doc__, m.BaseStep.__doc__):
            out += ["", _one_line(inspect.cleandoc(model.__doc__)).replace("\\|", "|")]
        out += ["", "| field | type | default | description | example |", "| --- | --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            yname = _yaml_name(name, info)
            description = info.description or docs.get(name, "")
            if list(_models_in(hints[name])):  # a part of its own: its section has the examples, but a short form
                short = examples.get((model, name))
                example = _example(yname, short) if isinstance(short, (str, int, float)) else ""
            elif info.examples:
                example = _example(yname, info.examples[0])
            elif (model, name) in examples:
                example = _example(yname, examples[(model, name)])
            elif info.default not in (None, PydanticUndefined, "", [], {}):
                duration = _is_duration(hints[name]) and isinstance(info.default, float)
                example = _example(yname, format_duration(info.default) if duration else info.default)
            else:
                example = ""
            default = _default(info, _is_duration(hints[name]))
            out.append(f"| `{yname}` | {_one_line(type_text(hints[name], titles))} | {_one_line(default)} | "
                       f"{_one_line(description)} | {f'`{_one_line(example)}`' if example else '-'} |")
    return "\n".join(out) + "\n"


def example_files(top: Path) -> list[Path]:
    """The lab files whose values serve as examples: the shipped labs (files and lab directories), then
    the worked examples."""
    labs = sorted([*top.glob("labs/*.yaml"), *top.glob("labs/*/lab.yaml")], key=lambda p: p.parent.name + p.stem)
    return labs + sorted(top.glob("examples/*/lab.yaml"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    top = Path(__file__).resolve().parents[2]
    if not (top / "docs").is_dir():
        print(f"{top}: not a checkout of tcplab (no docs/): run this from one", file=sys.stderr)
        return 2
    target = top / TARGET
    text = render(example_files(top))
    problems = field_problems()
    for p in problems:
        print(f"{p}", file=sys.stderr)
    if "--check" in args:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != text:
            print(f"{TARGET} differs from the model: run `{COMMAND}` and commit it", file=sys.stderr)
            return 1
        return 1 if problems else 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
