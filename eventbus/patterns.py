"""EventBridge event patterns: validation and compilation to predicates.

A pattern is validated and compiled once into closures; matching an event then walks only the
fields the pattern names. The rules follow AWS's reference matcher (aws/event-ruler's
``JsonRuleCompiler``), whose error texts EventBridge returns after the prefix
``Event pattern is not valid. Reason: ``.

Matching semantics worth knowing:

* Every leaf of a pattern is an array; a field matches when any of its entries matches (OR) and an
  object matches when all of its fields match (AND).
* An event array matches when any element matches. A nested pattern object applied to an array
  of objects must be satisfied by one element as a whole (event-ruler's "array-consistent"
  matching of ``rulesForJSONEvent``).
* Only scalars (string, number, boolean, null) are leaf values. A missing field, an empty array
  and an object all have no leaf value: they satisfy ``{"exists": false}`` and nothing else.
* ``anything-but`` needs a leaf value to reject; its exclusion only applies to values of its
  own type (a string exclusion never rejects a number and vice versa), as in event-ruler's
  ``ByteMachine``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from typing import Any

from statelang.eventbus.terms import (
    AnythingBut,
    CidrRange,
    EqualsIgnoreCase,
    Exact,
    Exclusion,
    Field,
    Leaf,
    NumericRange,
    ObjectPattern,
    Prefix,
    Suffix,
    Term,
    Wildcard,
)
from statelang.language.errors import StatelangError

__all__ = [
    "MISSING",
    "CompiledPattern",
    "InvalidEventPattern",
    "compile_pattern",
    "index_key",
    "ip_literal",
    "leaf_values",
    "object_elements",
    "parse_pattern",
]

ERROR_PREFIX = "Event pattern is not valid. Reason: "
OR_KEY = "$or"
# Constants.RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP of event-ruler: match-type names that may not
# be used as field names anywhere inside a "$or" branch.
RESERVED_IN_OR = frozenset(
    {"anything-but", "exists", "prefix", "suffix", "equals-ignore-case", "numeric", "cidr", "wildcard"}
)
_NUMERIC_OPERATORS = ("=", "<", "<=", ">", ">=")


class _Missing:
    """The value of a field the event does not have (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class InvalidEventPattern(StatelangError, ValueError):
    """A pattern AWS would reject (InvalidEventPatternException).

    ``reason`` is AWS's reason text, ``path`` says where in the pattern the problem sits
    (``detail.state[0]``; empty for the pattern as a whole). ``str()`` gives AWS's message on
    its first line and the location on the second, as AWS appends the parser location.
    """

    def __init__(self, reason: str, path: str = ""):
        self.reason = reason
        self.path = path
        self.message = ERROR_PREFIX + reason
        super().__init__(self.message + (f"\n at {path}" if path else ""))


Predicate = Callable[[Any], bool]


class CompiledPattern:
    """A validated pattern, ready to test many events. Build it with `compile_pattern`."""

    __slots__ = ("pattern", "_root", "required", "tree")

    def __init__(self, pattern: dict, root: Predicate, required: dict[tuple[str, ...], frozenset],
                 tree: ObjectPattern):
        self.pattern = pattern
        self._root = root
        # The typed form the predicate was built from; the compiled matcher indexes it.
        self.tree = tree
        # Paths the pattern requires, outside any "$or", whose only entries are exact values:
        # path -> index keys (see `index_key`). An event can match only if one of its leaf
        # values at that path has one of these keys; `PatternIndex` files rules under them.
        self.required = required

    def matches(self, event: Any) -> bool:
        return self._root(event)

    def __repr__(self) -> str:
        return f"CompiledPattern({json.dumps(self.pattern, sort_keys=True)})"


def parse_pattern(pattern: dict | str) -> dict:
    """Decode a pattern given as JSON text; reject anything that is not a JSON object."""
    if isinstance(pattern, (str, bytes, bytearray)):
        try:
            pattern = json.loads(pattern, parse_constant=_reject_constant)
        except ValueError as exc:
            raise InvalidEventPattern(f"Filter is not valid JSON: {exc}") from None
    if not isinstance(pattern, dict):
        raise InvalidEventPattern("Filter is not an object")
    return pattern


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Non-standard token '{name}'")


def compile_pattern(pattern: dict | str | CompiledPattern) -> CompiledPattern:
    """Validate ``pattern`` and compile it; raise `InvalidEventPattern` as AWS would."""
    if isinstance(pattern, CompiledPattern):
        return pattern
    parsed = parse_pattern(pattern)
    required: dict[tuple[str, ...], frozenset] = {}
    root, tree = _compile_object(parsed, (), "", in_or=False, required=required)
    return CompiledPattern(parsed, root, required, tree)


# --- event side -------------------------------------------------------------------------------


def leaf_values(node: Any) -> list:
    """The scalar values at a field: arrays are flattened, objects and missing give nothing."""
    if node is MISSING or isinstance(node, dict):
        return []
    if isinstance(node, list):
        out: list = []
        for item in node:
            if isinstance(item, list):
                out.extend(leaf_values(item))
            elif not isinstance(item, dict):
                out.append(item)
        return out
    return [node]


def object_elements(node: list) -> list:
    """The objects in an event array, through nested arrays: what an object pattern is tried on."""
    out: list = []
    for item in node:
        if isinstance(item, list):
            out.extend(object_elements(item))
        elif isinstance(item, dict):
            out.append(item)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def index_key(value: Any) -> tuple:
    """A hashable key under which equal leaf values (300 and 3.0e2 alike) meet."""
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bool):
        return ("b", value)
    if value is None:
        return ("z",)
    if isinstance(value, float) and value.is_integer():
        return ("n", int(value))
    return ("n", value)


# --- objects ----------------------------------------------------------------------------------


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _compile_object(obj: dict, keys: tuple, path: str, *, in_or: bool,
                    required: dict | None) -> tuple[Predicate, ObjectPattern]:
    if not obj:
        raise InvalidEventPattern("Empty objects are not allowed", path)
    conjuncts: list[Predicate] = []
    fields: list[Field] = []
    alternatives: list[tuple[ObjectPattern, ...]] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidEventPattern(f"Field name {key!r} is not a string", path)
        where = _where(path, key)
        if key == OR_KEY:
            any_branch, branches = _compile_or(value, keys, where)
            conjuncts.append(any_branch)
            alternatives.append(branches)
            continue
        if in_or and key in RESERVED_IN_OR:
            raise InvalidEventPattern(
                f"{key} is Ruler reserved fieldName which cannot be used inside {OR_KEY}.", where)
        if isinstance(value, dict):
            child, subtree = _compile_object(value, keys + (key,), where, in_or=in_or, required=required)
            conjuncts.append(_descend(key, child))
            fields.append(Field(key, subtree))
        elif isinstance(value, list):
            leaf, exact, typed = _compile_leaf(value, where)
            if required is not None and exact is not None:
                required[keys + (key,)] = exact
            conjuncts.append(_leaf_field(key, leaf))
            fields.append(Field(key, typed))
        else:
            raise InvalidEventPattern(f'"{key}" must be an object or an array', where)
    return _all_of(conjuncts), ObjectPattern(tuple(fields), tuple(alternatives))


def _compile_or(value: Any, keys: tuple, path: str) -> tuple[Predicate, tuple[ObjectPattern, ...]]:
    if not isinstance(value, list):
        raise InvalidEventPattern(f"It must be an Array followed with {OR_KEY}.", path)
    branches: list[Predicate] = []
    typed: list[ObjectPattern] = []
    for index, branch in enumerate(value):
        if not isinstance(branch, dict):
            raise InvalidEventPattern(
                f"Only JSON object is allowed in array of {OR_KEY} relationship.", f"{path}[{index}]")
        predicate, tree = _compile_object(branch, keys, f"{path}[{index}]", in_or=True, required=None)
        branches.append(predicate)
        typed.append(tree)
    if len(branches) < 2:
        raise InvalidEventPattern(f"There must have at least 2 Objects in {OR_KEY} relationship.", path)

    def any_branch(node: Any) -> bool:
        return any(branch(node) for branch in branches)

    return any_branch, tuple(typed)


def _all_of(conjuncts: list[Predicate]) -> Predicate:
    if len(conjuncts) == 1:
        only = conjuncts[0]

        def one(node: Any) -> bool:
            return only(node) if type(node) is dict else _through_array(only, node)

        return one

    def every(node: Any) -> bool:
        if type(node) is dict:
            for conjunct in conjuncts:
                if not conjunct(node):
                    return False
            return True
        return _through_array(lambda element: all(c(element) for c in conjuncts), node)

    return every


def _through_array(check: Predicate, node: Any) -> bool:
    """An object pattern on an array: one object element must satisfy all of it."""
    if isinstance(node, list):
        elements = object_elements(node)
        if elements:
            return any(check(element) for element in elements)
    return check(_EMPTY)


_EMPTY: dict = {}


def _descend(key: str, child: Predicate) -> Predicate:
    def field(node: dict) -> bool:
        return child(node.get(key, MISSING))

    return field


def _leaf_field(key: str, leaf: Callable[[list], bool]) -> Predicate:
    def field(node: dict) -> bool:
        value = node.get(key, MISSING)
        if isinstance(value, (str, int, float)) or value is None:
            return leaf([value])
        return leaf(leaf_values(value))

    return field


# --- leaves -----------------------------------------------------------------------------------


def _compile_leaf(entries: list, path: str) -> tuple[Callable[[list], bool], frozenset | None, Leaf]:
    """Compile one leaf array; also return its index keys when all entries are exact values, and
    its typed form."""
    if not entries:
        raise InvalidEventPattern("Empty arrays are not allowed", path)
    exact: set = set()
    ip_literals: list = []
    matchers: list[Predicate] = []
    terms: list[Term] = []
    wants_present = wants_absent = False
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        if isinstance(entry, dict):
            operator = _compile_operator(entry, where)
            if operator is True:
                wants_present = True
            elif operator is False:
                wants_absent = True
            else:
                matchers.append(_term_predicate(operator))
                terms.append(operator)
        elif isinstance(entry, str):
            address = ip_literal(entry)
            if address is not None:
                ip_literals.append(address)
            exact.add(("s", entry))
        elif entry is None or isinstance(entry, bool) or _is_finite_number(entry):
            exact.add(index_key(entry))
        else:
            raise InvalidEventPattern("Match value must be String, number, true, false, or null", where)
    typed_exact = Exact(frozenset(exact), tuple(ip_literals)) if exact else None
    if typed_exact is not None:
        matchers.insert(0, _exact_matcher(typed_exact.keys, typed_exact.ip_literals))
    only_exact = len(matchers) == 1 and exact and not ip_literals and not wants_present and not wants_absent
    typed = Leaf(typed_exact, tuple(terms), wants_present, wants_absent)
    return (_leaf_matcher(matchers, wants_present, wants_absent), (frozenset(exact) if only_exact else None),
            typed)


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _exact_matcher(keys: frozenset, ip_literals: tuple) -> Predicate:
    if not ip_literals and all(k[0] == "s" for k in keys):
        strings = frozenset(k[1] for k in keys)

        def is_string(value: Any) -> bool:
            return type(value) is str and value in strings

        return is_string

    def equals(value: Any) -> bool:
        if _index_key_or_none(value) in keys:
            return True
        if ip_literals and isinstance(value, str):
            address = ip_literal(value)
            return address is not None and address in ip_literals
        return False

    return equals


def _index_key_or_none(value: Any) -> tuple | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return index_key(value)


def _leaf_matcher(matchers: list[Predicate], wants_present: bool, wants_absent: bool) -> Callable[[list], bool]:
    """OR over the entries of one leaf array, applied to a field's leaf values."""
    if len(matchers) == 1 and not wants_present and not wants_absent:
        only = matchers[0]

        def single(values: list) -> bool:
            for value in values:
                if only(value):
                    return True
            return False

        return single

    def leaf(values: list) -> bool:
        if not values:
            return wants_absent
        if wants_present:
            return True
        for value in values:
            for matcher in matchers:
                if matcher(value):
                    return True
        return False

    return leaf


# --- match expressions ({"prefix": ...}, {"numeric": [...]}, ...) ------------------------------


def _token_text(value: Any) -> str:
    """How the JSON parser would print the token AWS names in a message."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "["
    if isinstance(value, dict):
        return "{"
    return json.dumps(value)


def _single_string(expr: dict, name: str, where: str) -> str:
    value = expr[name]
    if not isinstance(value, str):
        raise InvalidEventPattern(f"{name} match pattern must be a string", where)
    if len(expr) > 1:
        raise InvalidEventPattern("Only one key allowed in match expression", where)
    return value


def _compile_operator(expr: dict, where: str) -> Term | bool:
    """One match expression as a term; `True`/`False` stand for ``exists`` true/false."""
    if not expr:
        raise InvalidEventPattern("Match expression name not found", where)
    name = next(iter(expr))
    value = expr[name]
    if name in ("prefix", "suffix"):
        if isinstance(value, dict) and set(value) == {"equals-ignore-case"} and isinstance(
                value["equals-ignore-case"], str):
            if len(expr) > 1:
                raise InvalidEventPattern("Only one key allowed in match expression", where)
            folded = value["equals-ignore-case"].lower()
            return Prefix(folded, fold=True) if name == "prefix" else Suffix(folded, fold=True)
        if isinstance(value, dict):
            inner = next(iter(value), "")
            if inner == "equals-ignore-case":
                raise InvalidEventPattern("equals-ignore-case match pattern must be a string", where)
            raise InvalidEventPattern(f"Unsupported {name} pattern: {inner}", where)
        text = _single_string(expr, name, where)
        return Prefix(text) if name == "prefix" else Suffix(text)
    if name == "equals-ignore-case":
        return EqualsIgnoreCase(_single_string(expr, name, where).lower())
    if name == "wildcard":
        text = _single_string(expr, name, where)
        return Wildcard(text, _wildcard_regex(text, where))
    if name == "exists":
        if not isinstance(value, bool):
            raise InvalidEventPattern("exists match pattern must be either true or false.", where)
        if len(expr) > 1:
            raise InvalidEventPattern("Only one key allowed in match expression", where)
        return value
    if name == "cidr":
        if not isinstance(value, str):
            # event-ruler reports the prefix message here.
            raise InvalidEventPattern("prefix match pattern must be a string", where)
        network = _cidr(value, where)
        if len(expr) > 1:
            raise InvalidEventPattern("Only one key allowed in match expression", where)
        return network
    if name == "numeric":
        if not isinstance(value, list):
            raise InvalidEventPattern("Value of numeric must be an array.", where)
        check = _numeric(value, where)
        if len(expr) > 1:
            raise InvalidEventPattern("Too many elements in numeric expression", where)
        return check
    if name == "anything-but":
        return _anything_but(expr, value, where)
    raise InvalidEventPattern(f"Unrecognized match type {name}", where)


def _term_predicate(term: Term) -> Predicate:
    """The plain matcher's test of one value against one term."""
    if isinstance(term, Prefix):
        return _prefix(term.text, term.fold)
    if isinstance(term, Suffix):
        return _suffix(term.text, term.fold)
    if isinstance(term, EqualsIgnoreCase):
        folded = term.folded
        return lambda v: type(v) is str and v.lower() == folded
    if isinstance(term, Wildcard):
        regex = term.regex
        return lambda v: type(v) is str and regex.fullmatch(v) is not None
    if isinstance(term, NumericRange):
        checks = [_comparison(operator, operand) for operator, operand in term.comparisons]
        if len(checks) == 1:
            return checks[0]
        low, high = checks
        return lambda v: low(v) and high(v)
    if isinstance(term, CidrRange):
        return _in_cidr(term)
    return _excluding(term)


def _prefix(text: str, fold: bool = False) -> Predicate:
    if fold:
        return lambda v: type(v) is str and v.lower().startswith(text)
    return lambda v: type(v) is str and v.startswith(text)


def _suffix(text: str, fold: bool = False) -> Predicate:
    if fold:
        return lambda v: type(v) is str and v.lower().endswith(text)
    return lambda v: type(v) is str and v.endswith(text)


def _wildcard_regex(text: str, where: str) -> re.Pattern:
    """Parse like event-ruler's WildcardParser: ``*`` is any run, ``\\*`` and ``\\\\`` escape.

    Positions count UTF-8 bytes of the value as event-ruler sees it, quoted, so the first
    character of the value is at position 1.
    """
    data = ('"' + text + '"').encode()
    parts: list[str] = []
    literal = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x2A:  # *
            if i + 1 < len(data) and data[i + 1] == 0x2A:
                raise InvalidEventPattern(f"Consecutive wildcard characters at pos {i}", where)
            parts.append(re.escape(literal.decode()))
            parts.append(".*")
            literal.clear()
        elif byte == 0x5C:  # backslash
            if i + 1 < len(data) and data[i + 1] in (0x2A, 0x5C):
                literal.append(data[i + 1])
                i += 2
                continue
            raise InvalidEventPattern(f"Invalid escape character at pos {i}", where)
        else:
            literal.append(byte)
        i += 1
    parts.append(re.escape(literal.decode()))
    body = "".join(parts)
    return re.compile(body[1:-1] if body.startswith('"') else body, re.DOTALL)


def _numeric(terms: list, where: str) -> NumericRange:
    """``[op, n]`` or ``[>/>=, low, </<=, high]``, with event-ruler's messages."""
    if not terms or not isinstance(terms[0], str):
        raise InvalidEventPattern(
            f"Invalid member in numeric match: {_token_text(terms[0]) if terms else ']'}", where)
    operator = terms[0]
    if operator not in _NUMERIC_OPERATORS:
        raise InvalidEventPattern(f"Unrecognized numeric range operator: {operator}", where)
    if len(terms) < 2 or not _is_finite_number(terms[1]):
        label = "equals" if operator == "=" else operator
        raise InvalidEventPattern(f"Value of {label} must be numeric", where)
    first = terms[1]
    if len(terms) == 2:
        return NumericRange(((operator, first),))
    if operator not in (">", ">="):
        raise InvalidEventPattern("Too many elements in numeric expression", where)
    second = terms[2]
    if not isinstance(second, str):
        raise InvalidEventPattern(f"Bad value in numeric range: {_token_text(second)}", where)
    if second not in ("<", "<="):
        raise InvalidEventPattern(f"Bad numeric range operator: {second}", where)
    if len(terms) < 4 or not _is_finite_number(terms[3]):
        raise InvalidEventPattern(f"Value of {second} must be numeric", where)
    if len(terms) > 4:
        raise InvalidEventPattern("Too many terms in numeric range expression", where)
    top = terms[3]
    if not first < top:
        raise InvalidEventPattern("Bottom must be less than top", where)
    return NumericRange(((operator, first), (second, top)))


def _comparison(operator: str, operand: int | float) -> Predicate:
    def number(v: Any) -> bool:
        return type(v) is int or (type(v) is float and math.isfinite(v))

    if operator == "=":
        return lambda v: number(v) and v == operand
    if operator == "<":
        return lambda v: number(v) and v < operand
    if operator == "<=":
        return lambda v: number(v) and v <= operand
    if operator == ">":
        return lambda v: number(v) and v > operand
    return lambda v: number(v) and v >= operand


def _cidr(text: str, where: str) -> CidrRange:
    """event-ruler's CIDR.cidr: the range runs from the given address (not masked) to its top."""
    parts = text.split("/")
    while len(parts) > 1 and parts[-1] == "":  # Java's String.split drops trailing empties
        parts.pop()
    if len(parts) != 2:
        raise InvalidEventPattern("Malformed CIDR, one '/' required", where)
    if not re.fullmatch(r"[+-]?[0-9]{1,10}", parts[1]):
        raise InvalidEventPattern("Malformed CIDR, mask bits must be an integer", where)
    bits = int(parts[1])
    if bits < 0:
        raise InvalidEventPattern("Malformed CIDR, mask bits must not be negative", where)
    address = ip_literal(parts[0])
    if address is None:
        raise InvalidEventPattern(f"Nonstandard IP address: {parts[0]}", where)
    width = address.max_prefixlen
    if bits > width - 1:
        family = "IPv4" if width == 32 else "IPv6"
        raise InvalidEventPattern(f"{family} mask bits must be < {width}", where)
    bottom = int(address)
    return CidrRange(address.version, bottom, bottom | ((1 << (width - bits)) - 1))


def _in_cidr(term: CidrRange) -> Predicate:
    version, bottom, top = term.version, term.bottom, term.top

    def in_range(v: Any) -> bool:
        if type(v) is not str:
            return False
        candidate = ip_literal(v)
        return candidate is not None and candidate.version == version and bottom <= int(candidate) <= top

    return in_range


def _anything_but(expr: dict, value: Any, where: str) -> AnythingBut:
    if isinstance(value, dict):
        if not value:
            raise InvalidEventPattern("Anything-But expression name not found", where)
        inner = next(iter(value))
        operand = value[inner]
        if inner not in ("prefix", "suffix", "wildcard", "equals-ignore-case"):
            raise InvalidEventPattern(f"Unsupported anything-but pattern: {inner}", where)
        if len(value) > 1 or len(expr) > 1:
            raise InvalidEventPattern("Only one key allowed in match expression", where)
        texts = operand if isinstance(operand, list) else [operand]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidEventPattern(_ANYTHING_BUT_TYPE_ERRORS[inner], where)
        if inner in ("prefix", "suffix") and any(t == "" for t in texts):
            raise InvalidEventPattern("Null prefix/suffix not allowed", where)
        if inner == "equals-ignore-case":
            return AnythingBut(Exclusion.EQUALS_IGNORE_CASE, tuple(t.lower() for t in texts))
        if inner == "wildcard":
            return AnythingBut(Exclusion.WILDCARD, tuple(Wildcard(t, _wildcard_regex(t, where)) for t in texts))
        return AnythingBut(Exclusion.PREFIX if inner == "prefix" else Exclusion.SUFFIX, tuple(texts))
    if isinstance(value, list):
        strings = [v for v in value if isinstance(v, str)]
        numbers = [v for v in value if _is_finite_number(v)]
        if len(strings) + len(numbers) != len(value):
            raise InvalidEventPattern("Inside anything but list, start|null|boolean is not supported.", where)
        if bool(strings) == bool(numbers):
            raise InvalidEventPattern(
                "Inside anything but list, either all values are number or string, mixed type is not supported",
                where)
    elif isinstance(value, str) or _is_finite_number(value):
        strings, numbers = ([value], []) if isinstance(value, str) else ([], [value])
    else:
        raise InvalidEventPattern(
            "Value of anything-but must be an array or single string/number value.", where)
    if len(expr) > 1:
        raise InvalidEventPattern("Too many elements in numeric expression", where)
    if strings:
        return AnythingBut(Exclusion.STRINGS, tuple(strings))
    return AnythingBut(Exclusion.NUMBERS, tuple(index_key(n) for n in numbers))


def _excluding(term: AnythingBut) -> Predicate:
    """The plain matcher's test for ``anything-but``: only values of the excluded kind can fail."""
    exclusion = term.exclusion
    if exclusion is Exclusion.EQUALS_IGNORE_CASE:
        folded = frozenset(term.operands)
        return lambda v: type(v) is not str or v.lower() not in folded
    if exclusion is Exclusion.WILDCARD:
        regexes = [wildcard.regex for wildcard in term.operands]
        return lambda v: type(v) is not str or not any(r.fullmatch(v) for r in regexes)
    if exclusion is Exclusion.PREFIX:
        excluded = term.operands
        return lambda v: type(v) is not str or not v.startswith(excluded)
    if exclusion is Exclusion.SUFFIX:
        excluded = term.operands
        return lambda v: type(v) is not str or not v.endswith(excluded)
    if exclusion is Exclusion.STRINGS:
        excluded_strings = frozenset(term.operands)
        return lambda v: type(v) is not str or v not in excluded_strings
    excluded_numbers = frozenset(term.operands)
    return lambda v: not _is_finite_number(v) or index_key(v) not in excluded_numbers


_ANYTHING_BUT_TYPE_ERRORS = {
    "prefix": "prefix/suffix match pattern must be a string",
    "suffix": "prefix/suffix match pattern must be a string",
    "wildcard": "wildcard match pattern must be a string",
    "equals-ignore-case": "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
}


# --- IP addresses -------------------------------------------------------------------------------

_IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
_IPV6_RE = re.compile(r"[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\Z")


def ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a string spells, if it is a plain IPv4 or IPv6 literal (no zone id)."""
    if len(text) > 45:
        return None
    try:
        if _IPV4_RE.match(text):
            return ipaddress.IPv4Address(text)
        if _IPV6_RE.match(text):
            return ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return None
