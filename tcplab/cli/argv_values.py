"""Command-line values as they come from argv, taken without building a pydantic adapter per parameter.

Typer coerces every parameter through a pydantic ``TypeAdapter`` it builds when the parameter is first
parsed: importing its adapter module and building the adapters costs about 0.1 s of every command's
start, for values that are already what the command declares (a ``str`` for a ``str``, a list of ``str``
for a ``List[str]``). :func:`take_argv_values_as_they_are` gives each parameter a coercion that returns
such a value as it is, checks a path with Typer's own path rules, and hands anything else to the
adapter Typer would have used, so every message and every conversion stays Typer's.

This reaches into Typer's runtime-parameter seam (``_runtime_param``); where a Typer version does not
have it, nothing is changed and Typer coerces as it always does (tests/unit/test_argv_values.py says
whether the seam is there).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

_MISSING = object()


def take_argv_values_as_they_are(command: Any) -> int:
    """Give every Typer parameter under ``command`` (a click command or group) the quick coercion; the number
    of parameters that got it (0 where this Typer has no such seam)."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:
        return 0

    class ArgvValue(RuntimeParam):
        """A value taken as argv gives it where that is what the parameter declares; else Typer's adapter."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            taken = _as_declared(self.annotation, self.parameter_info, value)
            if taken is not _MISSING:
                return taken
            if _plain_path(self.annotation, self.parameter_info) and isinstance(value, str):
                return coerce_cli_path(Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx)
            return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)

    def give(param: Any) -> int:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", _MISSING) is not None or descriptor.is_file:
            return 0
        param._runtime_param = ArgvValue(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
        return 1

    def with_help(command: Any) -> Any:
        """The command's ``--help`` option, made when first asked for, gets it too."""
        made = command.get_help_option

        def get_help_option(ctx: Any) -> Any:
            option = made(ctx)
            if option is not None:
                give(option)
            return option
        return get_help_option

    given = 0
    for cmd in _commands(command):
        given += sum(give(param) for param in getattr(cmd, "params", []))
        if callable(getattr(cmd, "get_help_option", None)):
            cmd.get_help_option = with_help(cmd)
    return given


def _commands(command: Any) -> list[Any]:
    found = [command]
    for sub in getattr(command, "commands", {}).values():
        found += _commands(sub)
    return found


def _as_declared(annotation: Any, info: Any, value: Any) -> Any:
    """``value`` itself where it already is what ``annotation`` declares and nothing is asked of it (no parser,
    no bounds); else _MISSING."""
    if getattr(info, "parser", None) is not None:
        return _MISSING
    if annotation is str and isinstance(value, str):
        return value
    if get_origin(annotation) is list and get_args(annotation) == (str,) and isinstance(value, (list, tuple)) \
            and all(isinstance(v, str) for v in value):
        return list(value)
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is int and type(value) is int and info.min is None and info.max is None:
        return value
    return _MISSING


def _plain_path(annotation: Any, info: Any) -> bool:
    return annotation is Path and getattr(info, "parser", None) is None and info.path_type is None
