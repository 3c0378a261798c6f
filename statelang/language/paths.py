"""JSONPath in the States Language: paths, reference paths, ResultPath, the context object.

Everything here compiles once: a path string becomes a closure ``fn(data, env)``. Evaluation never
parses. Payload templates (``"key.$"`` entries, which take a path or an intrinsic call) are built
on these paths in `statelang.language.payload_templates`, above both this module and the
intrinsics, which read their path arguments with `compile_path`.

Roots: ``$`` is the data handed to the closure, ``$$`` the context object (``env.context``) and
``$name`` the JSONPath-mode variable ``name`` (``env.variables``).

Simple definite paths (``.name``, ``['name']``, ``[0]``) are walked over a precomputed key list,
the hot case by far. Anything else (``*``, ``..``, slices, unions, filters) is handed to jsonpath-ng,
parsed at compile time; such an *indefinite* path yields the list of its matches, as AWS does.

AWS evaluates paths with Jayway JsonPath and wraps its messages; the texts here reproduce them:
``Invalid path '$.a' : No results for path: $['a']`` for InputPath/OutputPath/ItemsPath (payload
templates word theirs differently, see `payload_templates`). The interpreter prefixes the
"An error occurred while executing the state ..." part, which names the state.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from typing import Any

from statelang.language.env import Env
from statelang.language.errors import PathError, ResultPathMatchFailure, StaticError

__all__ = [
    "MISSING", "Missing", "PathRoot", "compile_path", "compile_input_path", "compile_output_path",
    "compile_result_path", "compact_json", "is_reference_path", "check_path", "path_root",
]


class Missing:
    """The type of `MISSING`: a field that is absent, as opposed to one that is JSON null."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = Missing()

Key = str | int
Getter = Callable[[Any, Env], Any]

_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# One step of a simple definite path: .name | ['name'] | ["name"] | [index]
_STEP = re.compile(
    r"""\.([^.\[\]()'"\s*?,@]+)"""
    r"""|\['((?:[^'\\]|\\.)*)'\]"""
    r'''|\["((?:[^"\\]|\\.)*)"\]'''
    r"""|\[\s*(-?\d+)\s*\]"""
)
_UNESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescape(text: str) -> str:
    """A bracketed field name as Jayway reads it: \\', \\", \\\\, \\/ stand for themselves, \\n and the
    other JSON escapes for their characters, \\u and four hex digits for that code point."""
    def one(m: re.Match) -> str:
        c = m.group(1)
        if len(c) == 5:
            return chr(int(c[1:], 16))
        return _ESCAPES.get(c, c)
    return _UNESCAPE.sub(one, text)

def compact_json(value: Any) -> str:
    """JSON as AWS prints it inside error causes: no spaces, non-ASCII kept as is."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _normalized(keys: list[Key]) -> str:
    """Jayway's normal form of a path, used in its messages: ``$['a'][0]``."""
    return "$" + "".join(f"[{k}]" if isinstance(k, int) else f"['{k}']" for k in keys)


# -------------------------------------------------------------------------------------------- parsing

def _split_root(path: str) -> tuple[str, str | None, str]:
    """(root kind, variable name, remainder). Kinds: 'input', 'context', 'var'."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise StaticError(f"The path '{path}' must start with '$'")
    if path.startswith("$$"):
        return "context", None, path[2:]
    m = _VAR.match(path)
    if m:
        return "var", m.group(1), path[m.end():]
    return "input", None, path[1:]


def _simple_steps(rest: str) -> list[Key] | None:
    """The key list of a simple definite remainder, or None when jsonpath-ng must handle it."""
    keys: list[Key] = []
    pos = 0
    while pos < len(rest):
        m = _STEP.match(rest, pos)
        if not m:
            return None
        name, sq, dq, idx = m.groups()
        if idx is not None:
            keys.append(int(idx))
        elif name is not None:
            keys.append(name)
        else:
            keys.append(_unescape(sq if sq is not None else dq))
        pos = m.end()
    return keys


def _parse_indefinite(path: str, rest: str) -> Any:
    if rest and rest[0] not in ".[":
        raise StaticError(f"The path '{path}' is not a valid JSONPath")
    from jsonpath_ng.ext import parse  # imported here: most machines never need it

    try:
        return parse("$" + rest)
    except Exception as e:  # jsonpath-ng raises plain Exception subclasses (lexer and parser errors)
        raise StaticError(f"The path '{path}' is not a valid JSONPath: {e}") from None


def _root_getter(path: str, kind: str, var: str | None) -> Getter:
    if kind == "input":
        return lambda data, env: data
    if kind == "context":
        return lambda data, env: env.context

    def variable(data: Any, env: Env) -> Any:
        try:
            return env.variables[var]
        except KeyError:
            raise PathError(f"Invalid path '{path}' : The variable ${var} is not defined") from None

    return variable


# --------------------------------------------------------------------------------------------- paths

def _miss_message(keys: list[Key], root: Any) -> str:
    """Jayway's message for a definite path that does not resolve (walks again; failures are rare)."""
    cur = root
    for i, k in enumerate(keys):
        if isinstance(k, str) and type(cur) is dict and k not in cur and i < len(keys) - 1:
            return f"Missing property in path {_normalized(keys[: i + 1])}"
        try:
            if isinstance(k, int) and type(cur) is not list:
                break
            cur = cur[k]
        except (KeyError, IndexError, TypeError):
            break
    return f"No results for path: {_normalized(keys)}"


def _compile_definite(path: str, root: Getter, keys: list[Key]) -> Getter:
    if not keys:
        return root
    steps = tuple((k, isinstance(k, int)) for k in keys)

    def walk(data: Any, env: Env) -> Any:
        cur = start = root(data, env)
        for k, is_index in steps:
            try:
                if is_index and type(cur) is not list:
                    raise TypeError
                cur = cur[k]
            except (KeyError, IndexError, TypeError):
                raise PathError(f"Invalid path '{path}' : {_miss_message(keys, start)}") from None
        return cur

    return walk


def _compile_indefinite(path: str, root: Getter, expr: Any) -> Getter:
    def find(data: Any, env: Env) -> list[Any]:
        try:
            return [m.value for m in expr.find(root(data, env))]
        except PathError:
            raise
        except Exception as e:  # a filter that cannot compare, say; Jayway reports no match either
            raise PathError(f"Invalid path '{path}' : {e}") from None

    return find


class PathRoot(enum.Enum):
    """The value a path reads from: the data (``$``), the context object (``$$``) or a variable."""

    INPUT = "input"
    CONTEXT = "context"
    VARIABLE = "var"


def path_root(path: str) -> PathRoot:
    """Which value ``path`` reads from; raises StaticError when it does not start with ``$``."""
    return PathRoot(_split_root(path)[0])


def _compile(path: str) -> tuple[Getter, str, bool]:
    """(closure, root kind, definite?)."""
    kind, var, rest = _split_root(path)
    root = _root_getter(path, kind, var)
    keys = _simple_steps(rest)
    if keys is not None:
        return _compile_definite(path, root, keys), kind, True
    return _compile_indefinite(path, root, _parse_indefinite(path, rest)), kind, False


def compile_path(path: str) -> Callable[[Any, Env], Any]:
    """Compile a Path (``$...``, ``$$...`` or ``$var...``) to ``fn(data, env) -> value``.

    A definite path yields one value or raises PathError; an indefinite one yields the list of its
    matches, possibly empty (Jayway does not fail an indefinite path that matches nothing).
    Raises StaticError at once when the path is malformed.
    """
    return _compile(path)[0]


def _null_or_path(path: Any, field: str) -> Callable[[Any, Env], Any]:
    if path is MISSING or path == "$":
        return lambda data, env: data
    if path is None:
        return lambda data, env: {}
    if not isinstance(path, str):
        raise StaticError(f"The value for the field '{field}' must be a valid JSONPath")
    return compile_path(path)


def compile_input_path(path: str | None | Missing = MISSING) -> Callable[[Any, Env], Any]:
    """InputPath: absent means ``$`` (the whole input); JSON null means the empty object ``{}``."""
    return _null_or_path(path, "InputPath")


def compile_output_path(path: str | None | Missing = MISSING) -> Callable[[Any, Env], Any]:
    """OutputPath: absent means ``$`` (the whole output); JSON null means the empty object ``{}``."""
    return _null_or_path(path, "OutputPath")


# ----------------------------------------------------------------------------------------- ResultPath

def compile_result_path(path: str | None | Missing = MISSING) -> Callable[[Any, Any], Any]:
    """ResultPath as ``fn(state_input, result) -> state output``.

    Absent or ``$``: the result. Null: the input (result discarded). A reference path into the
    input: a copy of the input with the result placed there; only the objects along the path are
    copied (copy-on-write), so the input is never mutated and unrelated subtrees are shared.
    Missing intermediate objects are created. ResultPath can only write into the state input, so
    ``$$`` and variables are rejected at compile time.
    """
    if path is MISSING or path == "$":
        return lambda state_input, result: result
    if path is None:
        return lambda state_input, result: state_input
    if not isinstance(path, str):
        raise StaticError("The value for the field 'ResultPath' must be a valid ReferencePath")
    kind, _, rest = _split_root(path)
    keys = _simple_steps(rest)
    if kind != "input" or keys is None:
        raise StaticError(f"The value for the field 'ResultPath' must be a valid ReferencePath: '{path}'")
    if not keys:
        return lambda state_input, result: result
    last = len(keys) - 1

    def fail(state_input: Any) -> ResultPathMatchFailure:
        return ResultPathMatchFailure(f"Unable to apply ReferencePath {path} to input {compact_json(state_input)}")

    def put(node: Any, i: int, result: Any, state_input: Any) -> Any:
        k = keys[i]
        if isinstance(k, str):
            if type(node) is not dict:
                raise fail(state_input)
            new = dict(node)
            new[k] = result if i == last else put(node.get(k, _EMPTY), i + 1, result, state_input)
            return new
        if type(node) is not list or not -len(node) <= k < len(node):
            raise fail(state_input)
        new_list = list(node)
        new_list[k] = result if i == last else put(node[k], i + 1, result, state_input)
        return new_list

    def apply(state_input: Any, result: Any) -> Any:
        return put(state_input, 0, result, state_input)

    return apply


_EMPTY: dict = {}  # read-only stand-in for a missing intermediate object; `put` copies it before writing


# ------------------------------------------------------------------------------------------ validation

def is_reference_path(path: str) -> bool:
    """True for a valid path that can identify only a single node (no ``* .. , : ? @``)."""
    try:
        _, _, rest = _split_root(path)
    except StaticError:
        return False
    return _simple_steps(rest) is not None


def check_path(path: str, reference: bool = False) -> str | None:
    """Why ``path`` is not a valid Path (or reference path when ``reference``), or None if it is."""
    if not isinstance(path, str):
        return "The value must be a string"
    try:
        _compile(path)
    except StaticError as e:
        return str(e)
    if reference and not is_reference_path(path):
        return f"The path '{path}' must be a valid ReferencePath"
    return None
