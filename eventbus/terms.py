"""The typed form of a validated event pattern: what each leaf entry asks of a value.

`patterns` parses and validates a pattern into these values once; two matchers are built from
them. The plain matcher (`CompiledPattern.matches`) turns each term into a predicate and walks
one rule; the compiled matcher (`statelang.eventbus.ruler.PatternIndex`) files the terms of all
rules in per-field value indexes. Sharing the parse keeps the two answering about the same
pattern; their property test compares how each evaluates it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "AnythingBut",
    "CidrRange",
    "EqualsIgnoreCase",
    "Exact",
    "Exclusion",
    "Field",
    "Leaf",
    "NumericRange",
    "ObjectPattern",
    "Prefix",
    "Suffix",
    "Term",
    "Wildcard",
]


@dataclass(frozen=True)
class Exact:
    """All plain values of one leaf array: index keys (see `patterns.index_key`) and the IP
    literals among its strings, which also match other spellings of the same address."""

    keys: frozenset
    ip_literals: tuple


@dataclass(frozen=True)
class Prefix:
    """``{"prefix": text}``; with ``fold`` the ``equals-ignore-case`` form (text lower-cased)."""

    text: str
    fold: bool = False


@dataclass(frozen=True)
class Suffix:
    text: str
    fold: bool = False


@dataclass(frozen=True)
class EqualsIgnoreCase:
    folded: str


@dataclass(frozen=True)
class Wildcard:
    """``{"wildcard": source}``; ``regex`` must match the whole value."""

    source: str
    regex: re.Pattern


@dataclass(frozen=True)
class NumericRange:
    """``{"numeric": [...]}`` as its comparisons, ``(("=", 5),)`` or ``((">", 0), ("<=", 9))``."""

    comparisons: tuple[tuple[str, int | float], ...]


@dataclass(frozen=True)
class CidrRange:
    """Addresses of one IP version from ``bottom`` to ``top`` inclusive, as integers."""

    version: int
    bottom: int
    top: int


class Exclusion(enum.Enum):
    """What an ``anything-but`` excludes."""

    STRINGS = "strings"
    NUMBERS = "numbers"  # operands are index keys
    PREFIX = "prefix"
    SUFFIX = "suffix"
    EQUALS_IGNORE_CASE = "equals-ignore-case"  # operands are lower-cased
    WILDCARD = "wildcard"  # operands are compiled regexes


@dataclass(frozen=True)
class AnythingBut:
    """Any value except those the exclusion names (values of another type always pass)."""

    exclusion: Exclusion
    operands: tuple


Term = Prefix | Suffix | EqualsIgnoreCase | Wildcard | NumericRange | CidrRange | AnythingBut


@dataclass(frozen=True)
class Leaf:
    """One leaf array: OR of its entries. ``present``/``absent`` stand for ``exists`` true/false."""

    exact: Exact | None
    terms: tuple[Term, ...]
    present: bool
    absent: bool


@dataclass(frozen=True)
class Field:
    """One key of a pattern object, holding a leaf array or a nested object."""

    key: str
    value: Leaf | ObjectPattern


@dataclass(frozen=True)
class ObjectPattern:
    """AND of its fields and of each ``$or`` (a tuple of branches applied to the same object)."""

    fields: tuple[Field, ...]
    alternatives: tuple[tuple[ObjectPattern, ...], ...]
