"""Intrinsic function calls (``States.Format('{}', $.x)``): parser and compiler.

The text is parsed once, into a small typed AST (`Call`, `Literal`, `PathArg`), which the validator
reads and `compile_intrinsic` turns into a closure ``fn(data, env)``; nothing is parsed again when
the closure runs.  Malformed text raises `StaticError` at compile time, naming the problem and its
position; everything AWS accepts in a definition but refuses at run time (wrong argument count or
type, bad values) fails at run time with the error and cause AWS reports, see
`statelang.intrinsic_functions`.

Grammar, as the AWS developer guide describes it::

    call     := 'States.' name '(' [ argument (',' argument)* ] ')'
    argument := string | number | 'true' | 'false' | 'null' | path | call
    string   := "'" ( char | '\\'' | '\\{' | '\\}' | '\\\\' )* "'"
    path     := '$' ...  |  '$$' ...  |  '$name' ...   (up to the next top-level ',' or ')')

Calls nest up to 10 deep (AWS's limit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statelang.language.env import Env
from statelang.language.errors import PathError, StaticError
from statelang.language.intrinsic_functions import FUNCTIONS, FormatTemplate, InvalidArguments
from statelang.language.paths import compact_json, compile_path

__all__ = ["Call", "Literal", "PathArg", "compile_intrinsic", "is_intrinsic", "parse_intrinsic",
           "MAX_NESTING", "FUNCTIONS"]

MAX_NESTING = 10
"""AWS allows up to 10 intrinsic functions nested within one field."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal argument; for a string, `raw` is its text between the quotes, escapes intact."""

    value: Any
    position: int
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class PathArg:
    """A path argument: ``$.x``, ``$``, ``$$.Execution.Id`` or a variable ``$name.x``."""

    path: str
    position: int


@dataclass(frozen=True, slots=True)
class Call:
    """A call of the intrinsic `name` (``States.Format``) with its arguments."""

    name: str
    args: tuple[Call | Literal | PathArg, ...]
    position: int


Node = Call | Literal | PathArg

_START = re.compile(r"\s*States\.[A-Za-z_]")
_NAME = re.compile(r"States\.[A-Za-z0-9_]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPABLE = "'{}\\"


def is_intrinsic(text: str) -> bool:
    """True if `text` is meant as an intrinsic call (it starts with ``States.`` and a name).

    Paths start with ``$``, so the two never overlap; a malformed call still counts, so that
    `compile_intrinsic` reports what is wrong with it.
    """
    return isinstance(text, str) and _START.match(text) is not None


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self, problem: str, pos: int | None = None) -> StaticError:
        at = self.pos if pos is None else pos
        return StaticError(f"Invalid intrinsic function {self.text!r}: {problem} at position {at}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of text"
            raise self.fail(f"expected {char!r} but found {found}")
        self.pos += 1

    def parse(self) -> Call:
        self.skip_ws()
        call = self.call(1)
        self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.text[self.pos:self.pos + 20]!r} after the call")
        return call

    def call(self, depth: int) -> Call:
        start = self.pos
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a States.* function name")
        name = m.group()
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function {name!r}", start)
        if depth > MAX_NESTING:
            raise self.fail(f"more than {MAX_NESTING} nested intrinsic functions", start)
        self.pos = m.end()
        self.skip_ws()
        self.expect("(")
        args: list[Node] = []
        self.skip_ws()
        if self.peek() == ")":
            self.pos += 1
            return Call(name, (), start)
        while True:
            self.skip_ws()
            args.append(self.argument(depth))
            self.skip_ws()
            c = self.peek()
            if c == ",":
                self.pos += 1
            elif c == ")":
                self.pos += 1
                return Call(name, tuple(args), start)
            elif not c:
                raise self.fail(f"unbalanced parentheses: {name} is not closed")
            else:
                raise self.fail(f"expected ',' or ')' but found {c!r}")

    def argument(self, depth: int) -> Node:
        c = self.peek()
        start = self.pos
        if c == "'":
            return self.string()
        if c == "$":
            return self.path()
        if c == "-" or c.isdigit():
            m = _NUMBER.match(self.text, self.pos)
            end = m.end() if m else self.pos
            if not m or (end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "._")):
                raise self.fail("malformed number")
            self.pos = end
            text = m.group()
            return Literal(float(text) if m.group(1) or m.group(2) else int(text), start)
        if c == "S" and self.text.startswith("States.", self.pos):
            return self.call(depth + 1)
        m = _WORD.match(self.text, self.pos)
        if m and m.group() in ("true", "false", "null"):
            self.pos = m.end()
            return Literal({"true": True, "false": False, "null": None}[m.group()], start)
        if not c or c in ",)":
            raise self.fail("missing argument")
        raise self.fail(f"unexpected {c!r}: an argument must be a 'string', a number, true, false, "
                        "null, a path or an intrinsic call")

    def string(self) -> Literal:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.fail("unterminated string literal", start)
            c = text[self.pos]
            if c == "'":
                raw = text[start + 1:self.pos]
                self.pos += 1
                return Literal("".join(out), start, raw)
            if c == "\\":
                nxt = text[self.pos + 1] if self.pos + 1 < len(text) else ""
                if nxt not in _ESCAPABLE or not nxt:
                    raise self.fail("open escape backslash: only \\' \\{ \\} \\\\ may be escaped")
                out.append(nxt)
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1

    def path(self) -> PathArg:
        start = self.pos
        depth = 0
        quote = ""
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if quote:
                if c == "\\":
                    self.pos += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"" and depth:
                quote = c
            elif c in "[(":
                depth += 1
            elif c in "])":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                break
            self.pos += 1
        if quote or depth:
            raise self.fail("unterminated path", start)
        path = text[start:self.pos].rstrip()
        if any(ch.isspace() for ch in path):
            raise self.fail(f"malformed path {path!r}", start)
        return PathArg(path, start)


def parse_intrinsic(text: str) -> Call:
    """Parse `text` into its AST; raise `StaticError` naming the problem and position."""
    if not isinstance(text, str):
        raise StaticError(f"Invalid intrinsic function {text!r}: not a string")
    return _Parser(text).parse()


def arity_problem(call: Call) -> str | None:
    """What AWS will refuse at run time about this call's argument count, for the validator."""
    fn = FUNCTIONS[call.name]
    if fn.arity_ok(len(call.args)):
        return None
    expected = (str(fn.min_args) if fn.min_args == fn.max_args else
                f"at least {fn.min_args}" if fn.max_args == float("inf") else
                f"{fn.min_args} to {fn.max_args}")
    return f"{call.name} takes {expected} argument(s) but is given {len(call.args)}"


def _template_pieces(raw: str) -> tuple[str, ...] | None:
    """Split a literal Format template at its unescaped ``{}`` and unescape the pieces."""
    pieces: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            cur.append(raw[i + 1])
            i += 2
        elif c == "{" and raw.startswith("{}", i):
            pieces.append("".join(cur))
            cur = []
            i += 2
        elif c in "{}":
            return None
        else:
            cur.append(c)
            i += 1
    pieces.append("".join(cur))
    return tuple(pieces)


def render(node: Node) -> str:
    """The text of a call as AWS quotes it in error causes: arguments joined by ', '."""
    if isinstance(node, Call):
        return f"{node.name}({', '.join(render(a) for a in node.args)})"
    if isinstance(node, PathArg):
        return node.path
    if isinstance(node.value, str):
        return f"'{node.raw if node.raw is not None else node.value}'"
    return json.dumps(node.value)


def _compile_path(node: PathArg, where: str) -> Callable[[Any, Env], Any]:
    try:
        getter = compile_path(node.path)
    except Exception as exc:  # the path compiler's complaint (StaticError, ValueError, ...)
        raise StaticError(f"Invalid path {node.path!r} in intrinsic function at position "
                          f"{node.position}: {exc}") from None
    path = node.path
    on_context = path.startswith("$$")

    def resolve(data: Any, env: Env) -> Any:
        try:
            return getter(data, env)
        except PathError:
            shown = compact_json(env.context if on_context else data)
            raise PathError(f"{where} The JsonPath argument for the field '{path}' could not be "
                            f"found in the input '{shown}'") from None

    return resolve


def _compile(node: Node, where: str = "") -> Callable[[Any, Env], Any]:
    if isinstance(node, Literal):
        value = node.value
        return lambda data, env: value
    if isinstance(node, PathArg):
        return _compile_path(node, where)
    fn = FUNCTIONS[node.name]
    here = f"There was an error while evaluating the intrinsic function: {render(node)}."
    args = node.args
    if node.name == "States.Format" and args and isinstance(args[0], Literal) \
            and isinstance(args[0].value, str):
        template = FormatTemplate(args[0].value, _template_pieces(args[0].raw or ""))
        args = (Literal(template, args[0].position),) + args[1:]
    parts = tuple(_compile(a, here) for a in args)

    def call(env: Env, values: list[Any]) -> Any:
        try:
            return fn(env, values)
        except InvalidArguments as exc:
            if exc.located:
                raise
            raise InvalidArguments(exc.function, f"{here} {exc.cause}", located=True) from None

    if not parts:
        return lambda data, env: call(env, [])
    if len(parts) == 1:
        (a,) = parts
        return lambda data, env: call(env, [a(data, env)])
    if len(parts) == 2:
        a, b = parts
        return lambda data, env: call(env, [a(data, env), b(data, env)])
    return lambda data, env: call(env, [p(data, env) for p in parts])


def compile_intrinsic(text: str) -> Callable[[Any, Env], Any]:
    """Parse `text` once and return ``fn(data, env)`` that evaluates the call.

    Raises `StaticError` for malformed text.  The closure raises `StatesError` subclasses only:
    `InvalidArguments` (an `IntrinsicFailure`) for arguments AWS refuses, `PathError` for a path
    that does not resolve.
    """
    return _compile(parse_intrinsic(text))
