"""Choice Rules of JSONPath Choice states, compiled once to predicates ``fn(data, env) -> bool``.

One grammar serves both the validator and the compiler: `_check` walks a rule and lists every
problem with its JSON pointer; `check_choice_rule` hands them to the validator as diagnostics and
`compile_choice_rule` refuses a rule with any of them (StaticError) before it builds closures, so
the two can never disagree about what a well-formed rule is.

Runtime semantics, as AWS runs them:

* a Variable (or the right-hand ``…Path``) that does not resolve fails the state with
  ``States.Runtime`` and the cause "Invalid path '<path>': The choice state's condition path
  references an invalid value." -- except under IsPresent, which is then simply false;
* a value of the wrong type for the comparison (NumericEquals on a string, BooleanEquals on 0,
  a Timestamp comparison on a string that is not a timestamp) makes the comparison false;
* numbers compare by value (1 equals 1.0) and booleans are not numbers;
* And and Or stop at the first rule that decides them, which is what makes the common guard
  ``And: [IsPresent, NumericEquals]`` safe on inputs that lack the field.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from statelang.language.diagnostics import Diagnostic
from statelang.language.env import Env
from statelang.language.errors import PathError, StaticError
from statelang.language.paths import compile_path, is_reference_path
from statelang.language.timestamps import is_timestamp, timestamp_key

__all__ = ["compile_choice_rule", "compile_choices", "check_choice_rule", "OPERATORS", "string_matches"]

Predicate = Callable[[Any, Env], bool]
Getter = Callable[[Any, Env], Any]

SCHEMA = "SCHEMA_VALIDATION_FAILED"
INVALID_PATH = "Invalid path '{}': The choice state's condition path references an invalid value."
MAX_DEPTH = 100  # far beyond real machines; keeps the recursive compile and evaluation bounded

_ORDER = {"Equals": operator.eq, "LessThan": operator.lt, "GreaterThan": operator.gt,
          "LessThanEquals": operator.le, "GreaterThanEquals": operator.ge}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# Each family: how a JSON value becomes a comparable operand (None: wrong type, so the
# comparison is false) and the name of the type its literal operand must have.
def _string_operand(v: Any) -> Any:
    return v if isinstance(v, str) else None


def _numeric_operand(v: Any) -> Any:
    return v if _is_number(v) else None


def _boolean_operand(v: Any) -> Any:
    return v if isinstance(v, bool) else None


_FAMILIES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "String": (_string_operand, "String"),
    "Numeric": (_numeric_operand, "Number"),
    "Boolean": (_boolean_operand, "Boolean"),
    "Timestamp": (timestamp_key, "Timestamp"),
}


def _utf16_order(op: Callable[[Any, Any], bool]) -> Callable[[str, str], bool]:
    """String ordering by UTF-16 code units, as Java's String.compareTo orders (AWS runs on the
    JVM); it differs from code-point order only between U+E000..U+FFFF and astral characters."""
    def compare(a: str, b: str) -> bool:
        if a.isascii() and b.isascii():
            return op(a, b)
        return op(a.encode("utf-16-be", "surrogatepass"), b.encode("utf-16-be", "surrogatepass"))
    return compare


# operator name -> (family, comparison on operands, right-hand side is a Path)
OPERATORS: dict[str, tuple[str, Callable[[Any, Any], bool], bool]] = {}
for _family in ("String", "Numeric", "Timestamp"):
    for _suffix, _op in _ORDER.items():
        _cmp = _utf16_order(_op) if _family == "String" and _suffix != "Equals" else _op
        OPERATORS[_family + _suffix] = (_family, _cmp, False)
        OPERATORS[_family + _suffix + "Path"] = (_family, _cmp, True)
OPERATORS["BooleanEquals"] = ("Boolean", operator.eq, False)
OPERATORS["BooleanEqualsPath"] = ("Boolean", operator.eq, True)

# Type tests take a boolean: true asks "is it?", false asks "is it not?".
TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": _is_number,
    "IsString": lambda v: isinstance(v, str),
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": is_timestamp,
    "IsPresent": lambda v: True,  # handled apart: it is the one test a missing Variable answers
}
STRING_MATCHES = "StringMatches"  # AWS has no StringMatchesPath
BOOLEAN_EXPRESSIONS = ("And", "Or", "Not")
COMPARISONS = frozenset(OPERATORS) | frozenset(TYPE_TESTS) | {STRING_MATCHES}
ALL_OPERATORS = COMPARISONS | frozenset(BOOLEAN_EXPRESSIONS)
_TOP_FIELDS = frozenset({"Next", "Comment", "Assign", "Output"})  # Output: the validator reports it
_NESTED_FIELDS = frozenset({"Comment"})


# ------------------------------------------------------------------------------------ StringMatches

def _pattern_segments(pattern: str) -> tuple[str, ...]:
    """The literal runs between unescaped ``*``: ``\\*`` is a literal star and ``\\\\`` a literal
    backslash; any other backslash stands for itself."""
    segments, cur, i = [], [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            cur.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            segments.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    segments.append("".join(cur))
    return tuple(segments)


def _glob(segments: tuple[str, ...]) -> Callable[[str], bool]:
    """A matcher that runs in time linear in the text per segment, with no regex backtracking:
    with only ``*`` wildcards, taking each middle segment at its leftmost place is optimal."""
    if len(segments) == 1:
        literal = segments[0]
        return lambda s: s == literal
    head, middle, tail = segments[0], segments[1:-1], segments[-1]
    least = len(head) + len(tail)

    def match(s: str) -> bool:
        if len(s) < least or not s.startswith(head) or not s.endswith(tail):
            return False
        pos, end = len(head), len(s) - len(tail)
        for part in middle:
            i = s.find(part, pos, end)
            if i < 0:
                return False
            pos = i + len(part)
        return True

    return match


def string_matches(text: str, pattern: str) -> bool:
    """StringMatches on two strings (the compiled form prepares the pattern once)."""
    return _glob(_pattern_segments(pattern))(text)


# ---------------------------------------------------------------------------------------- checking

def _ptr(base: str, part: Any) -> str:
    return base + "/" + str(part).replace("~", "~0").replace("/", "~1")


def _type_name(kind: str) -> str:
    return f"Expected value of type {kind}"


def _check_value(name: str, value: Any, where: str, out: list[tuple[str, str]]) -> None:
    """The right-hand side of one comparison operator."""
    if name in TYPE_TESTS:
        if not isinstance(value, bool):
            out.append((where, _type_name("Boolean")))
        return
    if name == STRING_MATCHES:
        if not isinstance(value, str):
            out.append((where, _type_name("String")))
        return
    family, _, is_path = OPERATORS[name]
    if is_path:
        if not isinstance(value, str) or not is_reference_path(value):
            out.append((where, f"The value for the field '{name}' must be a valid ReferencePath"))
        return
    if family == "Timestamp":
        if not isinstance(value, str):
            out.append((where, _type_name("String")))
        elif not is_timestamp(value):
            out.append((where, f"The value for the field '{name}' must be a valid timestamp "
                               "(RFC 3339, such as 2016-03-14T01:59:00Z)"))
        return
    if _FAMILIES[family][0](value) is None:
        out.append((where, _type_name(_FAMILIES[family][1])))


def _check(rule: Any, loc: str, level: str, out: list[tuple[str, str]], depth: int = 0) -> None:
    """Append (location, message) for every problem of ``rule``. ``level`` is "top" (a rule of
    Choices: Next required), "nested" (inside And/Or/Not: Next refused) or "any" (compiling)."""
    if not isinstance(rule, dict):
        out.append((loc, _type_name("Object")))
        return
    if depth > MAX_DEPTH:
        out.append((loc, f"Choice Rules may be nested at most {MAX_DEPTH} levels deep"))
        return
    extra = _NESTED_FIELDS if level == "nested" else _TOP_FIELDS
    ops = [k for k in rule if k in ALL_OPERATORS]
    for k in rule:
        if k not in ALL_OPERATORS and k not in extra and k != "Variable":
            out.append((_ptr(loc, k), f"Field '{k}' is not supported"))
    if level == "top" and "Next" not in rule:
        out.append((loc, "These fields are required: [Next]"))
    if not ops:
        out.append((loc, "A Choice Rule must contain one comparison operator (such as StringEquals "
                         "or IsPresent) or one of And, Or, Not"))
        return
    if len(ops) > 1:
        out.append((loc, f"There should only be one of the following fields: [{', '.join(ops)}]"))
        return
    name = ops[0]
    value, where = rule[name], _ptr(loc, name)
    if name in BOOLEAN_EXPRESSIONS:
        if "Variable" in rule:
            out.append((_ptr(loc, "Variable"), "Field 'Variable' is not supported"))
        if name == "Not":
            _check(value, where, "nested", out, depth + 1)
        elif not isinstance(value, list):
            out.append((where, _type_name("Array")))
        elif not value:
            out.append((where, "Minimum number of items is 1"))
        else:
            for i, sub in enumerate(value):
                _check(sub, _ptr(where, i), "nested", out, depth + 1)
        return
    if "Variable" not in rule:
        out.append((loc, "These fields are required: [Variable]"))
    elif not isinstance(rule["Variable"], str) or not is_reference_path(rule["Variable"]):
        out.append((_ptr(loc, "Variable"), "The value for the field 'Variable' must be a valid ReferencePath"))
    _check_value(name, value, where, out)


def check_choice_rule(rule: Any, location: str) -> list[Diagnostic]:
    """Static problems of one rule of a Choice state's Choices (JSONPath), as diagnostics located
    by JSON pointer (``location`` is the rule's own, e.g. ``/States/Check/Choices/0``)."""
    out: list[tuple[str, str]] = []
    _check(rule, location, "top", out)
    return [Diagnostic(SCHEMA, message, where) for where, message in out]


# --------------------------------------------------------------------------------------- compiling

def _reader(path: str) -> Getter:
    """A Variable or ``…Path`` operand whose miss carries the Choice state's own cause text."""
    get = compile_path(path)
    cause = INVALID_PATH.format(path)

    def read(data: Any, env: Env) -> Any:
        try:
            return get(data, env)
        except PathError:
            raise PathError(cause) from None

    return read


def _compile_comparison(name: str, value: Any, read: Getter) -> Predicate:
    if name in TYPE_TESTS:
        test, wanted = TYPE_TESTS[name], value
        return lambda data, env: test(read(data, env)) is wanted
    if name == STRING_MATCHES:
        match = _glob(_pattern_segments(value))
        return lambda data, env: isinstance(v := read(data, env), str) and match(v)
    family, cmp, is_path = OPERATORS[name]
    to_operand = _FAMILIES[family][0]
    if not is_path:
        right = to_operand(value)

        def against_value(data: Any, env: Env) -> bool:
            left = to_operand(read(data, env))
            return left is not None and cmp(left, right)

        return against_value
    read_right = _reader(value)

    def against_path(data: Any, env: Env) -> bool:
        left = to_operand(read(data, env))
        right = to_operand(read_right(data, env))  # read even on a mismatch: a miss still fails
        return left is not None and right is not None and cmp(left, right)

    return against_path


def _build(rule: dict) -> Predicate:
    name = next(k for k in rule if k in ALL_OPERATORS)
    value = rule[name]
    if name == "Not":
        inner = _build(value)
        return lambda data, env: not inner(data, env)
    if name in ("And", "Or"):
        rules = tuple(_build(r) for r in value)
        if name == "And":
            return lambda data, env: all(r(data, env) for r in rules)
        return lambda data, env: any(r(data, env) for r in rules)
    variable = rule["Variable"]
    if name == "IsPresent":
        get = compile_path(variable)

        def present(data: Any, env: Env) -> bool:
            try:
                get(data, env)
            except PathError:
                return not value
            return value

        return present
    return _compile_comparison(name, value, _reader(variable))


def compile_choice_rule(rule: dict) -> Predicate:
    """Compile one Choice Rule (top-level or nested) to ``fn(data, env) -> bool``.

    Raises StaticError naming the first problem `check_choice_rule` would report (a top-level
    rule's Next is not required here: `compile_choices` reads it).
    """
    problems: list[tuple[str, str]] = []
    _check(rule, "", "any", problems)
    if problems:
        where, message = problems[0]
        raise StaticError(f"Invalid Choice Rule at '{where or '/'}': {message}")
    return _build(rule)


def compile_choices(choices: list[dict]) -> Callable[[Any, Env], str | None]:
    """Compile a Choices list to ``fn(data, env) -> Next of the first rule that holds, or None``.

    None leaves the decision to the caller: the state's Default, or States.NoChoiceMatched.
    """
    if not isinstance(choices, list):
        raise StaticError("Choices must be an array of Choice Rules")
    compiled = tuple((compile_choice_rule(rule), rule.get("Next")) for rule in choices)

    def choose(data: Any, env: Env) -> str | None:
        for holds, nxt in compiled:
            if holds(data, env):
                return nxt
        return None

    return choose
