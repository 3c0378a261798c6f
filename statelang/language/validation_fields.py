"""The vocabulary of static checks: JSON pointers, value kinds, and the messages AWS words them in.

Validation works on the raw JSON rather than on the models so that it can go on after the first
problem and report every one, each at the JSON pointer of the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from statelang.language.diagnostics import Diagnostic

SCHEMA = "SCHEMA_VALIDATION_FAILED"
MISSING_TARGET = "MISSING_TRANSITION_TARGET"
MISSING_END = "MISSING_END_STATE"
INVALID_STATE_NAME = "INVALID_STATE_NAME"

JSONPATH, JSONATA = "JSONPath", "JSONata"
MAX_SECONDS = 99999999
STATE_NAME_MAX = 80

_TYPE_NAMES = {str: "String", int: "Integer", float: "Number", bool: "Boolean", dict: "Object", list: "Array"}
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def ptr(base: str, *parts: Any) -> str:
    """Extend a JSON pointer (RFC 6901: '~' and '/' in a key are escaped)."""
    for p in parts:
        base += "/" + str(p).replace("~", "~0").replace("/", "~1")
    return base


def is_type(value: Any, kind: type) -> bool:
    """JSON type test; bool is not a number here although Python makes it an int."""
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def is_jsonata(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def is_timestamp(value: str) -> bool:
    return bool(_TIMESTAMP.match(value))


class Report:
    """Collects diagnostics; every check appends and carries on."""

    def __init__(self, *, local_handlers: bool = True) -> None:
        self.items: list[Diagnostic] = []
        # A Task Resource may be a bare handler name (statelang's local shorthand for `run`);
        # False answers as AWS does, which refuses anything but a recognised ARN.
        self.local_handlers = local_handlers

    def add(self, code: str, message: str, location: str) -> None:
        self.items.append(Diagnostic(code, message, location))

    def schema(self, message: str, location: str) -> None:
        self.add(SCHEMA, message, location)

    # --- wording shared by many checks -------------------------------------------------------
    def wrong_type(self, kind: type, location: str) -> None:
        self.schema(f"Expected value of type {_TYPE_NAMES[kind]}", location)

    def unsupported(self, field: str, location: str) -> None:
        self.schema(f"Field '{field}' is not supported", location)

    def required(self, fields: Iterable[str], location: str) -> None:
        self.schema(f"These fields are required: [{', '.join(fields)}]", location)

    def only_one(self, fields: Iterable[str], location: str) -> None:
        self.schema(f"There should only be one of the following fields: [{', '.join(fields)}]", location)

    def one_required(self, fields: Iterable[str], location: str) -> None:
        self.schema(f"Exactly one of the following fields is required: [{', '.join(fields)}]", location)

    def language(self, lang: str, field: str, location: str) -> None:
        other = JSONATA if lang == JSONPATH else JSONPATH
        self.schema(f"The QueryLanguage is set to '{lang}', but field '{field}' is only supported "
                    f"for the '{other}' QueryLanguage", location)

    def not_allowed_value(self, value: Any, allowed: Iterable[str], location: str) -> None:
        self.schema(f"Value {value!r} is not one of the allowed values: [{', '.join(allowed)}]", location)

    # --- small reusable checks ---------------------------------------------------------------
    def typed(self, obj: dict, field: str, kind: type, location: str) -> bool:
        """True when the field is absent or of the right JSON type."""
        if field in obj and not is_type(obj[field], kind):
            self.wrong_type(kind, ptr(location, field))
            return False
        return True

    def bounded(self, obj: dict, field: str, location: str, *, kind: type = int,
                minimum: float | None = None, maximum: float | None = None, lang: str = JSONPATH) -> None:
        """A number field with AWS's range messages; in JSONata a '{% %}' string stands in for it."""
        if field not in obj:
            return
        value, where = obj[field], ptr(location, field)
        if lang == JSONATA and isinstance(value, str):
            if not is_jsonata(value):
                self.schema(f"Expected value of type {_TYPE_NAMES[kind]} or a JSONata expression "
                            "enclosed in {% %}", where)
            return
        if not is_type(value, kind):
            self.wrong_type(kind, where)
            return
        fmt = (lambda n: repr(float(n))) if kind is float else str
        if minimum is not None and value < minimum:
            self.schema(f"Minimum value is {fmt(minimum)}", where)
        if maximum is not None and value > maximum:
            self.schema(f"Maximum value is {fmt(maximum)}", where)

    def exclusive(self, obj: dict, fields: tuple[str, ...], location: str, *, required: bool = False) -> None:
        present = [f for f in fields if f in obj]
        if len(present) > 1:
            self.only_one(fields, location)
        elif required and not present:
            self.one_required(fields, location)

    def jsonata_strings(self, value: Any, location: str, depth: int = 0) -> None:
        """Strings that open an expression with '{%' must close it with '%}' (nothing is evaluated)."""
        if depth > 200:
            return
        if isinstance(value, str):
            if value.startswith("{%") and not value.endswith("%}"):
                self.schema("The JSONata expression must be enclosed in {% %}", location)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.jsonata_strings(v, ptr(location, k), depth + 1)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.jsonata_strings(v, ptr(location, i), depth + 1)
