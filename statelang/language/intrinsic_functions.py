"""The States.* intrinsic functions: one plain Python function each, typed by `@signature`.

Every function declares its parameters with `@signature(...)`, so that arity and type failures are
checked in one place and fail the same way for every function, as jmespath's ``functions.py``
does.  A parameter spec is a type name (``string``, ``number``, ``boolean``, ``array``, ``object``,
``any``) with an optional suffix: ``?`` for an optional trailing parameter, ``*`` for "zero or more".
``number`` never accepts a JSON boolean, although Python's ``bool`` is an ``int``.

AWS reports every bad argument at run time the same way: error ``States.Runtime`` with the cause
``There was an error while evaluating the intrinsic function: <call>. Invalid arguments in
States.<Name>``; the functions here raise the part after the call, and the compiled call adds the
call's text (`statelang.language.intrinsics`); the interpreter prefixes the state's name, as for every
runtime error.  The error name is spelled once, in `FAILURE_ERROR`, so that it can be switched to
``States.IntrinsicFailure`` in one line should AWS change it.

Numbers: AWS (a Java service) truncates fractional numbers toward zero where it needs an integer,
except ``States.MathAdd``, which rounds like Java's ``Math.round`` (half up).  Integers stay ints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from statelang.language.env import Env
from statelang.language.errors import RUNTIME, IntrinsicFailure, StatesError

FAILURE_ERROR = RUNTIME
"""The error name AWS reports for an intrinsic that received bad arguments (recorded on AWS)."""

MAX_STRING_LENGTH = 10_000
"""Base64Encode, Base64Decode and Hash refuse longer inputs (AWS developer guide)."""

MAX_RANGE_ITEMS = 1000
"""States.ArrayRange may not produce more items than this (AWS developer guide)."""

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
"""States.MathAdd accepts integers in Java's int range only (AWS developer guide)."""


class InvalidArguments(IntrinsicFailure):
    """An intrinsic received arguments it cannot use.

    It is an `IntrinsicFailure` for whoever catches intrinsic failures, and carries the error name
    AWS reports (`FAILURE_ERROR`) and AWS's cause text.
    """

    def __init__(self, function: str, cause: str | None = None, located: bool = False):
        StatesError.__init__(self, FAILURE_ERROR, cause or f"Invalid arguments in {function}")
        self.function = function
        self.located = located
        """True once the cause names the call that failed."""


# --- signatures --------------------------------------------------------------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "any": lambda v: True,
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


class Param:
    __slots__ = ("type", "check", "optional", "variadic")

    def __init__(self, spec: str):
        self.optional = spec.endswith("?")
        self.variadic = spec.endswith("*")
        self.type = spec.rstrip("?*")
        if self.type not in _TYPES:
            raise ValueError(f"unknown parameter type {self.type!r}")
        self.check = _TYPES[self.type]


class Function:
    """A registered intrinsic: its AWS name, parameters and implementation ``impl(env, *args)``."""

    __slots__ = ("name", "params", "impl", "min_args", "max_args")

    def __init__(self, name: str, params: tuple[Param, ...], impl: Callable[..., Any]):
        self.name, self.params, self.impl = name, params, impl
        self.min_args = sum(1 for p in params if not (p.optional or p.variadic))
        self.max_args = math.inf if any(p.variadic for p in params) else len(params)

    def arity_ok(self, n: int) -> bool:
        return self.min_args <= n <= self.max_args

    def __call__(self, env: Env, args: list[Any]) -> Any:
        """Check the evaluated arguments against the signature, then run the implementation."""
        if not self.arity_ok(len(args)):
            raise InvalidArguments(self.name)
        params = self.params
        for i, value in enumerate(args):
            p = params[i] if i < len(params) else params[-1]
            if not p.check(value):
                raise InvalidArguments(self.name)
        try:
            return self.impl(env, *args)
        except (OverflowError, RecursionError):
            # infinite or absurdly large numbers, pathologically deep values
            raise InvalidArguments(self.name) from None


FUNCTIONS: dict[str, Function] = {}
"""Every intrinsic by its AWS name (``States.Format`` ...)."""


def signature(name: str, *specs: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(env, *args)`` as intrinsic `name` whose parameters are typed by `specs`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = Function(name, tuple(Param(s) for s in specs), fn)
        return fn

    return register


# --- helpers -----------------------------------------------------------------------------------

def _truncate(x: int | float) -> int:
    """Java's (int) cast: fractional numbers lose their fraction toward zero (observed on AWS)."""
    if isinstance(x, int):
        return x
    if not math.isfinite(x):
        raise OverflowError
    return int(x)


def _java_round(x: int | float) -> int:
    """Java's Math.round, half up: 1.5 -> 2, -1.5 -> -1 (recorded on AWS for States.MathAdd)."""
    return x if isinstance(x, int) else math.floor(x + 0.5)


def json_key(value: Any) -> str:
    """A canonical text of a JSON value: equal keys mean equal JSON values (1 and true differ)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_json_string(value: Any) -> str:
    """Compact JSON, as States.JsonToString prints it: no spaces, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_value(value: Any) -> str:
    """Render one States.Format argument as AWS does (Java's toString of the JSON value).

    Strings are inserted raw, objects print as ``{k=v, k2=v2}`` and arrays as ``[a, b]`` with
    their members rendered the same way, null as ``null`` (all recorded on AWS).
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return json.dumps(value)


BAD_TEMPLATE = "Invalid template in States.Format: matching '}' not found for '{'."
ARGUMENT_COUNT = ("Invalid arguments in States.Format: number of arguments do not match the "
                  "occurrences of {}.")


class FormatTemplate(str):
    """A States.Format template whose placeholders were found when the literal was parsed.

    A literal template keeps the difference between an escaped ``\\{`` and a placeholder brace,
    which its unescaped value no longer shows; `pieces` is the text between placeholders, or None
    when the template holds a brace that is neither escaped nor part of ``{}``.
    """

    pieces: tuple[str, ...] | None

    def __new__(cls, value: str, pieces: tuple[str, ...] | None) -> FormatTemplate:
        obj = super().__new__(cls, value)
        obj.pieces = pieces
        return obj


def split_template(text: str) -> tuple[str, ...] | None:
    """Split a template read at run time at its ``{}``; None if a brace stands alone."""
    pieces = text.split("{}")
    if any("{" in p or "}" in p for p in pieces):
        return None
    return tuple(pieces)


# --- States.Format, JSON ----------------------------------------------------------------------

@signature("States.Format", "string", "any*")
def states_format(env: Env, template: str, *values: Any) -> str:
    pieces = template.pieces if isinstance(template, FormatTemplate) else split_template(template)
    if pieces is None:
        raise InvalidArguments("States.Format", BAD_TEMPLATE)
    if len(pieces) != len(values) + 1:
        raise InvalidArguments("States.Format", ARGUMENT_COUNT)
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out.append(format_value(value))
        out.append(piece)
    return "".join(out)


@signature("States.StringToJson", "string")
def string_to_json(env: Env, text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidArguments("States.StringToJson") from None


@signature("States.JsonToString", "any")
def json_to_string(env: Env, value: Any) -> str:
    try:
        return to_json_string(value)
    except (ValueError, TypeError, RecursionError):
        raise InvalidArguments("States.JsonToString") from None


@signature("States.JsonMerge", "object", "object", "boolean")
def json_merge(env: Env, first: dict, second: dict, deep: bool) -> dict:
    # AWS supports the shallow mode only: a true deep flag is refused.
    if deep:
        raise InvalidArguments("States.JsonMerge")
    return {**first, **second}


# --- arrays -------------------------------------------------------------------------------------

@signature("States.Array", "any*")
def states_array(env: Env, *values: Any) -> list:
    return list(values)


@signature("States.ArrayPartition", "array", "number")
def array_partition(env: Env, array: list, size: int | float) -> list:
    n = _truncate(size)
    if n <= 0:
        raise InvalidArguments("States.ArrayPartition")
    return [array[i:i + n] for i in range(0, len(array), n)]


@signature("States.ArrayContains", "array", "any")
def array_contains(env: Env, array: list, value: Any) -> bool:
    key = json_key(value)
    return any(json_key(item) == key for item in array)


@signature("States.ArrayRange", "number", "number", "number")
def array_range(env: Env, start: int | float, end: int | float, step: int | float) -> list:
    first, last, by = _truncate(start), _truncate(end), _truncate(step)
    if by == 0:
        raise InvalidArguments("States.ArrayRange")
    count = max(0, (last - first) // by + 1)
    if count > MAX_RANGE_ITEMS:
        raise InvalidArguments("States.ArrayRange")
    return list(range(first, last + (1 if by > 0 else -1), by))


@signature("States.ArrayGetItem", "array", "number")
def array_get_item(env: Env, array: list, index: int | float) -> Any:
    i = _truncate(index)
    if not array:
        return None  # observed on AWS: any index into an empty array yields null
    if not 0 <= i < len(array):
        raise InvalidArguments("States.ArrayGetItem")
    return array[i]


@signature("States.ArrayLength", "array")
def array_length(env: Env, array: list) -> int:
    return len(array)


@signature("States.ArrayUnique", "array")
def array_unique(env: Env, array: list) -> list:
    seen: set[str] = set()
    out = []
    for item in array:
        key = json_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


# --- encoding, hashing --------------------------------------------------------------------------

@signature("States.Base64Encode", "string")
def base64_encode(env: Env, text: str) -> str:
    if len(text) > MAX_STRING_LENGTH:
        raise InvalidArguments("States.Base64Encode")
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")


_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


@signature("States.Base64Decode", "string")
def base64_decode(env: Env, text: str) -> str:
    # AWS's decoder is lenient (observed): it skips characters outside the alphabet, stops at the
    # padding and tolerates missing padding, so only the length limit makes it fail.
    if len(text) > MAX_STRING_LENGTH:
        raise InvalidArguments("States.Base64Decode")
    body = _NOT_BASE64.sub("", text.split("=", 1)[0])
    body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidArguments("States.Base64Decode") from None
    return raw.decode("utf-8", "replace")


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@signature("States.Hash", "any", "string")
def states_hash(env: Env, data: Any, algorithm: str) -> str:
    # AWS hashes non-string data too (observed); its text is taken as the compact JSON form.
    text = data if isinstance(data, str) else json_to_string(env, data)
    if len(text) > MAX_STRING_LENGTH or algorithm not in _HASHES:
        raise InvalidArguments("States.Hash")
    return hashlib.new(_HASHES[algorithm], text.encode("utf-8", "surrogatepass")).hexdigest()


# --- math, strings, ids -------------------------------------------------------------------------

@signature("States.MathRandom", "number", "number", "number?")
def math_random(env: Env, start: int | float, end: int | float, seed: int | float | None = None) -> int:
    low, high = _truncate(start), _truncate(end)
    if low >= high:
        raise InvalidArguments("States.MathRandom")
    rng = env.rng if seed is None else random.Random(_truncate(seed))
    return rng.randrange(low, high)


@signature("States.MathAdd", "number", "number")
def math_add(env: Env, a: int | float, b: int | float) -> int:
    if not (math.isfinite(a) and math.isfinite(b)):
        raise InvalidArguments("States.MathAdd")
    x, y = _java_round(a), _java_round(b)
    if not (INT32_MIN <= x <= INT32_MAX and INT32_MIN <= y <= INT32_MAX):
        raise InvalidArguments("States.MathAdd")
    return x + y


@signature("States.StringSplit", "string", "string")
def string_split(env: Env, text: str, separators: str) -> list:
    # Every character of the second argument separates; empty pieces are dropped (AWS example).
    if not separators:
        return [text] if text else []
    pattern = "[" + re.escape(separators) + "]"
    return [p for p in re.split(pattern, text) if p]


@signature("States.UUID")
def states_uuid(env: Env) -> str:
    return str(uuid.UUID(int=env.rng.getrandbits(128), version=4))
