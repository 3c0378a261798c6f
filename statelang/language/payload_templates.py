"""Payload templates (Parameters, ResultSelector, ItemSelector, Assign, ...): compiled once.

A template is JSON whose keys ending in ``.$`` take the value of a path or of an intrinsic function
call. Both kinds of value are compiled by the modules below this one (`paths`, `intrinsics`; the
intrinsics read their own path arguments through `paths`), so a template needs both and neither
needs the template.

AWS words a template's failures apart from a plain path's:
``The JSONPath '$.a' specified for the field 'x.$' could not be found in the input '{}'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from statelang.language.env import Env
from statelang.language.errors import PathError, StaticError
from statelang.language.intrinsics import compile_intrinsic
from statelang.language.paths import PathRoot, compact_json, compile_path, path_root

__all__ = ["compile_template", "check_template", "TEMPLATE_VALUE_INVALID", "NULL_INPUT"]

TEMPLATE_VALUE_INVALID = "The value for the field '{}' must be a valid JSONPath or a valid intrinsic function call"
NULL_INPUT = "Unable to apply Path transformation to null or empty input."


def _constant(value: Any) -> Callable[[Any, Env], Any]:
    """A fresh copy per call for containers (the payload goes to handlers, which may mutate it)."""
    if isinstance(value, dict | list):
        text = json.dumps(value)
        loads = json.loads
        return lambda data, env: loads(text)
    return lambda data, env: value


def _binding(key: str, value: Any, field: str) -> Callable[[Any, Env], Any]:
    """The closure for one ``key.$`` entry: a path or an intrinsic function call."""
    if not isinstance(value, str):
        raise StaticError(TEMPLATE_VALUE_INVALID.format(key) + f" (in {field})")
    if value.startswith("States."):
        return compile_intrinsic(value)
    if not value.startswith("$"):
        raise StaticError(TEMPLATE_VALUE_INVALID.format(key) + f" (in {field})")
    try:
        getter, root = compile_path(value), path_root(value)
    except StaticError:
        raise StaticError(TEMPLATE_VALUE_INVALID.format(key) + f" (in {field})") from None
    of_input, of_context = root is PathRoot.INPUT, root is PathRoot.CONTEXT   # decided once, not per call

    def bound(data: Any, env: Env) -> Any:
        if of_input and data is None:
            raise PathError(NULL_INPUT)
        try:
            return getter(data, env)
        except PathError:
            shown = env.context if of_context else data
            raise PathError(f"The JSONPath '{value}' specified for the field '{key}' could not be found "
                            f"in the input '{compact_json(shown)}'") from None

    return bound


def _has_binding(template: Any) -> bool:
    if isinstance(template, dict):
        return any(k.endswith(".$") or _has_binding(v) for k, v in template.items())
    if isinstance(template, list):
        return any(_has_binding(v) for v in template)
    return False


def _compile_node(template: Any, field: str) -> Callable[[Any, Env], Any]:
    if not _has_binding(template):
        return _constant(template)
    if isinstance(template, list):
        items = tuple(_compile_node(v, field) for v in template)
        return lambda data, env: [f(data, env) for f in items]
    entries = tuple(
        (k[:-2], _binding(k, v, field)) if k.endswith(".$") else (k, _compile_node(v, field))
        for k, v in template.items()
    )
    return lambda data, env: {k: f(data, env) for k, f in entries}


def compile_template(template: Any, field: str = "Parameters") -> Callable[[Any, Env], Any]:
    """Compile a payload template (Parameters, ResultSelector, ItemSelector, ...) to ``fn(data, env)``.

    Keys ending in ``.$`` take the value of their path or intrinsic call, under the key without
    ``.$``; everything else is copied. Each call returns new containers, never the template's own
    objects, so a handler that mutates its payload cannot corrupt the compiled machine. Values
    selected by paths are shared with the input, not copied: nothing downstream mutates the input.
    ``field`` names the template in compile-time errors.
    """
    return _compile_node(template, field)


# ------------------------------------------------------------------------------------------ validation

def _pointer(token: str | int) -> str:
    return "/" + str(token).replace("~", "~0").replace("/", "~1")


def check_template(template: Any) -> list[tuple[str, str]]:
    """Every malformed ``.$`` entry of a payload template as (JSON pointer suffix, AWS message)."""
    problems: list[tuple[str, str]] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, where + _pointer(i))
        elif isinstance(node, dict):
            for k, v in node.items():
                here = where + _pointer(k)
                if not k.endswith(".$"):
                    visit(v, here)
                    continue
                try:
                    _binding(k, v, "")
                except StaticError:
                    problems.append((here, TEMPLATE_VALUE_INVALID.format(k)))

    visit(template, "")
    return problems
