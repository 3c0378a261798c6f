"""JSON text in and out, through orjson wherever it gives exactly the answer `json` gives.

Every state's input and output is written as JSON text into the history, and every execution
read back parses some; orjson does both several times faster than `json`. It is used only where
its result is the one `json` would produce, and `json` answers the rest, errors included:

* writing: orjson refuses what it cannot write as `json` would (integers beyond 64 bits, lone
  surrogates, sets, ...) by raising, and then `json` writes it (or raises its own error); a few
  floats it writes its own way, and a text that may hold one is written again by `json`
  (`maybe_differs`);
* reading: orjson would read an integer beyond 64 bits as a float where `json` keeps it exact,
  so a text with a run of 19 or more digits goes to `json` directly; orjson refuses NaN, Infinity,
  1e400 and lone surrogates, which `json` then reads as it always has.

Reading is also where nesting is bounded (`MAX_DEPTH`): JSON text from outside (a request body,
an execution input, a task output, an event) is read by `loads_bounded`, and a value nested
deeper than the rest of the engine can walk (Python's recursion limit is about 1,000 frames;
`json` raises `RecursionError`, which no caller expects, and orjson stops at 1,024) is refused as
bad JSON (`JSONDepthError`, a `ValueError`) naming its depth, before any decoder sees it. Text the
engine wrote itself (history, checkpoints) is read back by `loads` unbounded: what an execution
built, it may read again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import orjson

from .errors import StatelangError

_OPTIONS = orjson.OPT_NON_STR_KEYS   # keys 1, True, None written "1", "true", "null", as json does
# Every byte mapped to b"1" (an ASCII digit) or b"0" (anything else): a run of 19 digits is then
# a run of 19 b"1"s in the mapped text.
_DIGIT_MAP = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_LONG_RUN = b"1" * 19


class encoder:  # noqa: N801 - used as a function factory: json_dumps = encoder(default=...)
    """``json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=default,
    check_circular=check_circular).encode``, through orjson where that gives the same text. With a
    `default`, datetimes go to it as they do in json (orjson would write them itself). A class,
    not a closure: psycopg caches its JSON dumpers by function and warns of closures."""

    def __init__(self, default: Callable[[Any], Any] | None = None, check_circular: bool = False):
        self.default = default
        self.exact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=check_circular,
                                      default=default).encode
        self.options = _OPTIONS | (orjson.OPT_PASSTHROUGH_DATETIME if default is not None else 0)

    def __call__(self, value: Any) -> str:
        try:
            raw = orjson.dumps(value, default=self.default, option=self.options)
        except TypeError:   # orjson.JSONEncodeError is a TypeError
            return self.exact(value)
        text = raw.decode()
        if ("e-" in text or "null" in text or "0.0000" in text) and maybe_differs(text, raw, value):
            return self.exact(value)   # the three C-speed scans above keep most texts from a call
        return text


dumps = encoder()   # json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def maybe_differs(text: str, raw: bytes, value: Any) -> bool:
    """Whether orjson's text of `value` may hold a number json writes otherwise: orjson writes
    NaN and the infinities as null (json: NaN, Infinity), a one-digit negative exponent as e-7
    (json: e-07) and magnitudes below 1e-4 in full (0.000099999; json: 9.9999e-05). Other
    floats, integers and strings come out the same (checked on every exponent and millions of
    random doubles). A match inside a string only costs a second, exact, writing; an "e-" after
    anything but a digit ("Trace-Id", "Type-e-") is no number, and is not one.

    A null is common (a None in the data) and a NaN rare, so a text with a null is read back and
    compared, at C speed, before it is written again: NaN and the infinities read back as None,
    which equals neither (and a value orjson wrote through `default`, or a tuple, reads back
    unequal too, and goes to json as before)."""
    if "0.0000" in text or ("e-" in text and _negative_exponent(text)):
        return True
    return "null" in text and _reads_back_unequal(raw, value)


def _negative_exponent(text: str) -> bool:
    """Whether an "e-" in `text` may be a number's exponent (1e-7): it follows digits (and a
    point) that follow what a number follows in compact JSON (``:``, ``[``, ``,``, a sign, or
    the text's start). Digits that follow a letter or a quote are inside a string: a request id
    such as "...d3e-4f..." in every Lambda response is not a number. A regex search took 6 µs on
    a Lambda response, this a fraction of one."""
    at = text.find("e-")
    while at != -1:
        i = at - 1
        while i >= 0 and text[i] in "0123456789.":
            i -= 1
        if i < at - 1:   # digits before the "e"
            if i >= 0 and text[i] == "-":
                i -= 1
            if i < 0 or text[i] in ":[,":
                return True
        at = text.find("e-", at + 2)
    return False


def json_type(value: Any) -> str:
    """The JSON type of a value read from JSON: null, boolean, number, string, array or object (the
    words AWS's messages use: "Expected 'number', but was 'string'")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "number", float: "number", str: "string", list: "array"}.get(type(value), "object")


MAX_DEPTH = 512   # arrays and objects inside one another; the engine walks values recursively
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
_STEP = [0] * 256
_STEP[ord("[")] = 1
_STEP[ord("]")] = -1
_PEELS = 8   # shallow data is measured by peeling; deeper data by a running sum


class JSONDepthError(StatelangError, ValueError):
    """JSON text nested deeper than `MAX_DEPTH`: bad input, refused like a syntax error."""

    def __init__(self, depth: int, limit: int = MAX_DEPTH):
        super().__init__(f"JSON nested {depth} levels deep; at most {limit} levels are allowed")
        self.depth = depth
        self.limit = limit


def depth_of(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, brackets inside strings aside.

    All at C speed: strings cut out (a split on quotes when no quote is escaped), every byte but
    the brackets deleted and ``{}`` made ``[]``; then innermost pairs are peeled off a level per
    round, which measures ordinary data in a few rounds, and a running sum measures what is left."""
    text = _STRING.sub(b"", raw) if b'\\"' in raw else b"".join(raw.split(b'"')[::2])
    brackets = text.translate(_SQUARE, _NOT_BRACKET)
    peeled = 0
    while brackets and peeled < _PEELS:
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):   # not nested pairs: bad JSON, which the decoder names
            break
        brackets, peeled = inner, peeled + 1
    return peeled + max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def check_depth(text: str | bytes) -> None:
    """Raise `JSONDepthError` if the JSON text nests deeper than `MAX_DEPTH`."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:   # fewer openers cannot nest deeper
        depth = depth_of(raw)
        if depth > MAX_DEPTH:
            raise JSONDepthError(depth)


def loads_bounded(text: str | bytes) -> Any:
    """``json.loads(text)`` for text from outside: nesting deeper than `MAX_DEPTH` is refused with
    `JSONDepthError` (a `ValueError`, as a syntax error is)."""
    check_depth(text)
    return loads(text)


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_RUN not in raw.translate(_DIGIT_MAP):   # a C-speed scan; a regex took 10x longer
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def canonical(value: Any) -> str:
    """The JSON text of a definition, for content-keyed caches and for compiling: equal values
    give equal text when their keys come in the same order (and merely miss the cache otherwise),
    and the text reads back as the value. orjson without options, the fastest way (a definition's
    keys are strings); it may write a float otherwise than `json` (1e-7, not 1e-07), which reads
    back the same, so only NaN and the infinities (written as null) need a second look: a text
    with a null is read back and compared, and `json` writes it when they differ."""
    try:
        raw = orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if b"null" in raw and _reads_back_unequal(raw, value):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return raw.decode()


def _reads_back_unequal(raw: bytes, value: Any) -> bool:
    try:
        return orjson.loads(raw) != value
    except orjson.JSONDecodeError:
        return True
