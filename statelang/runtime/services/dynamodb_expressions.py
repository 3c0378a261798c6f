"""DynamoDB's expressions: ConditionExpression, KeyConditionExpression, FilterExpression and
UpdateExpression over typed attribute values ({"S": ..}, {"N": ..}, {"M": ..}, ...).

Covered: comparisons, AND/OR/NOT, BETWEEN, IN, attribute_exists, attribute_not_exists,
begins_with, contains, size; SET with ``+``/``-``, if_not_exists and list_append; REMOVE; ADD.
Problems raise ``DynamoDB.ValidationException`` with DynamoDB's own wording, so a Catch written
for AWS matches. The seed systems' tables (statelang.handlers.services.dynamodb) use it too.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from statelang.runtime.services.errors import ServiceError


class DynamoDBError(ServiceError):
    """An error as the Step Functions integration names it: ``DynamoDB.<Exception>``."""

    def __init__(self, exception: str, message: str):
        super().__init__("DynamoDB", exception, message)


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError as exc:
        raise DynamoDBError("ValidationException", f"The parameter cannot be converted to a numeric value: {text}") from exc


def canonical(value: dict) -> str:
    (kind, v), = value.items()
    if kind == "N":
        return "N:" + format(_number(v).normalize(), "f")
    if kind in ("S", "B"):
        return f"{kind}:{v}"
    raise DynamoDBError("ValidationException", f"Key attributes must be scalars of type S, N or B, not {kind}")


def plain(value: dict) -> Any:
    """A typed value -> something comparable (Decimal for N, str for S, ...)."""
    (kind, v), = value.items()
    return _number(v) if kind == "N" else v


def _num_text(d: Decimal) -> str:
    return format(d.normalize(), "f") if d == d.to_integral_value() else format(d, "f")


# -- expressions ---------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(<>|<=|>=|=|<|>|\(|\)|,|\+|-)|(:[A-Za-z0-9_]+)|(#[A-Za-z0-9_]+)|([A-Za-z_][A-Za-z0-9_]*"
                    r"(?:\.[A-Za-z_#][A-Za-z0-9_]*)*))")
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}


class _Expr:
    """A tokenized expression with its ExpressionAttributeNames and ExpressionAttributeValues."""

    def __init__(self, text: str, names: dict | None, values: dict | None):
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise DynamoDBError("ValidationException", f"Invalid expression: syntax error near '{text[pos:]}'")
            op, val, name, ident = m.groups()
            if op:
                self.tokens.append(("op", op))
            elif val:
                self.tokens.append(("value", val))
            elif name:
                self.tokens.append(("path", name))
            elif ident.upper() in _KEYWORDS:
                self.tokens.append(("kw", ident.upper()))
            else:
                self.tokens.append(("fn" if text[m.end():].lstrip().startswith("(") else "path", ident))
            pos = m.end()
        self.i = 0
        self.names = names or {}
        self.values = values or {}

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (text and tok[1].upper() != text):
            raise DynamoDBError("ValidationException", f"Invalid expression: expected {text or kind}, found {tok}")
        self.i += 1
        return tok[1]

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1].upper() == text and tok[0] in ("op", "kw")

    def path(self, raw: str) -> list[str]:
        parts = []
        for part in raw.split("."):
            if part.startswith("#"):
                if part not in self.names:
                    raise DynamoDBError("ValidationException",
                                        f"An expression attribute name used in the document path is not defined; "
                                        f"attribute name: {part}")
                part = self.names[part]
            parts.append(part)
        return parts

    def value(self, ref: str) -> dict:
        if ref not in self.values:
            raise DynamoDBError("ValidationException",
                                f"An expression attribute value used in expression is not defined; attribute value: {ref}")
        return self.values[ref]


def _get(item: dict, path: list[str]) -> dict | None:
    cur: Any = {"M": item}
    for part in path:
        if not isinstance(cur, dict) or "M" not in cur or part not in cur["M"]:
            return None
        cur = cur["M"][part]
    return cur


def _set(item: dict, path: list[str], value: dict | None) -> None:
    cur = item
    for part in path[:-1]:
        nxt = cur.get(part)
        if not nxt or "M" not in nxt:
            raise DynamoDBError("ValidationException", "The document path provided in the update expression is invalid for update")
        cur = nxt["M"]
    if value is None:
        cur.pop(path[-1], None)
    else:
        cur[path[-1]] = value


def _operand(e: _Expr, item: dict) -> dict | None:
    kind, text = e.peek() or ("", "")
    if kind == "value":
        e.i += 1
        return e.value(text)
    if kind == "path":
        e.i += 1
        return _get(item, e.path(text))
    if kind == "fn" and text == "size":
        e.i += 1
        e.take("op", "(")
        v = _operand(e, item)
        e.take("op", ")")
        (k, raw), = (v or {"S": ""}).items()
        return {"N": str(len(raw))}
    raise DynamoDBError("ValidationException", f"Invalid expression: unexpected token {text!r}")


def _compare(a: dict | None, op: str, b: dict | None) -> bool:
    if a is None or b is None:
        return op == "<>" and a != b
    if op in ("=", "<>"):
        same = (set(a) == set(b)) and (plain(a) == plain(b) if set(a) <= {"N", "S", "B"} else a == b)
        return same if op == "=" else not same
    if set(a) != set(b):
        return False
    x, y = plain(a), plain(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _condition(e: _Expr, item: dict) -> bool:
    result = _conjunction(e, item)
    while e.at("OR"):
        e.i += 1
        rhs = _conjunction(e, item)
        result = result or rhs
    return result


def _conjunction(e: _Expr, item: dict) -> bool:
    result = _negation(e, item)
    while e.at("AND"):
        e.i += 1
        rhs = _negation(e, item)
        result = result and rhs
    return result


def _negation(e: _Expr, item: dict) -> bool:
    if e.at("NOT"):
        e.i += 1
        return not _negation(e, item)
    if e.at("("):
        e.i += 1
        result = _condition(e, item)
        e.take("op", ")")
        return result
    tok = e.peek()
    if tok and tok[0] == "fn" and tok[1] in ("attribute_exists", "attribute_not_exists", "begins_with", "contains"):
        e.i += 1
        e.take("op", "(")
        path = e.path(e.take("path"))
        if tok[1] in ("begins_with", "contains"):
            e.take("op", ",")
            arg = _operand(e, item)
        e.take("op", ")")
        found = _get(item, path)
        if tok[1] == "attribute_exists":
            return found is not None
        if tok[1] == "attribute_not_exists":
            return found is None
        if found is None or arg is None:
            return False
        if tok[1] == "begins_with":
            return "S" in found and "S" in arg and found["S"].startswith(arg["S"])
        if "S" in found:
            return "S" in arg and arg["S"] in found["S"]
        return any(x == arg for x in found.get("L", []) + [{"S": s} for s in found.get("SS", [])])
    lhs = _operand(e, item)
    if e.at("BETWEEN"):
        e.i += 1
        lo = _operand(e, item)
        e.take("kw", "AND")
        hi = _operand(e, item)
        return _compare(lhs, ">=", lo) and _compare(lhs, "<=", hi)
    if e.at("IN"):
        e.i += 1
        e.take("op", "(")
        options = [_operand(e, item)]
        while e.at(","):
            e.i += 1
            options.append(_operand(e, item))
        e.take("op", ")")
        return any(_compare(lhs, "=", o) for o in options)
    op = e.take("op")
    if op not in ("=", "<>", "<", "<=", ">", ">="):
        raise DynamoDBError("ValidationException", f"Invalid expression: unexpected operator {op}")
    return _compare(lhs, op, _operand(e, item))


def evaluate_condition(text: str, item: dict, names: dict | None = None, values: dict | None = None) -> bool:
    """Does `item` (typed attributes; {} for a missing item) satisfy the condition expression?"""
    e = _Expr(text, names, values)
    result = _condition(e, item)
    if e.peek() is not None:
        raise DynamoDBError("ValidationException", f"Invalid expression: unexpected token {e.peek()[1]!r}")
    return result


def _set_value(e: _Expr, item: dict) -> dict | None:
    tok = e.peek()
    if tok and tok[0] == "fn" and tok[1] in ("if_not_exists", "list_append"):
        e.i += 1
        e.take("op", "(")
        if tok[1] == "if_not_exists":
            current = _get(item, e.path(e.take("path")))
            e.take("op", ",")
            default = _operand(e, item)
            e.take("op", ")")
            value = current if current is not None else default
        else:
            a = _operand(e, item)
            e.take("op", ",")
            b = _operand(e, item)
            e.take("op", ")")
            value = {"L": (a or {"L": []})["L"] + (b or {"L": []})["L"]}
    else:
        value = _operand(e, item)
    if e.at("+") or e.at("-"):
        sign = e.take("op")
        other = _operand(e, item)
        if not value or not other or "N" not in value or "N" not in other:
            raise DynamoDBError("ValidationException",
                                "An operand in the update expression has an incorrect data type")
        n = _number(value["N"]) + (_number(other["N"]) if sign == "+" else -_number(other["N"]))
        value = {"N": _num_text(n)}
    return value


def apply_update(text: str, item: dict, names: dict | None = None, values: dict | None = None) -> set[str]:
    """Apply an UpdateExpression to `item` in place; returns the top-level names it changed."""
    e = _Expr(text, names, values)
    changed: set[str] = set()
    while e.peek() is not None:
        clause = e.take("kw")
        while True:
            path = e.path(e.take("path"))
            changed.add(path[0])
            if clause == "SET":
                e.take("op", "=")
                _set(item, path, _set_value(e, item))
            elif clause == "REMOVE":
                _set(item, path, None)
            elif clause == "ADD":
                add = _operand(e, item) or {}
                cur = _get(item, path)
                if "N" in add:
                    base = _number(cur["N"]) if cur else Decimal(0)
                    _set(item, path, {"N": _num_text(base + _number(add["N"]))})
                elif "SS" in add:
                    _set(item, path, {"SS": sorted(set((cur or {}).get("SS", [])) | set(add["SS"]))})
                else:
                    raise DynamoDBError("ValidationException", "ADD takes a number or a set")
            else:
                raise DynamoDBError("ValidationException", f"Unsupported update clause {clause}")
            if not e.at(","):
                break
            e.i += 1
    return changed


def update_response(mode: str | None, old: dict | None, new: dict, changed: set[str]) -> dict:
    """UpdateItem's answer for its ``ReturnValues`` (NONE, ALL_NEW, UPDATED_NEW, ALL_OLD,
    UPDATED_OLD): the item after or before the update, whole or only the attributes it changed."""
    if mode == "ALL_NEW":
        return {"Attributes": new}
    if mode == "UPDATED_NEW":
        return {"Attributes": {k: new[k] for k in changed if k in new}}
    if mode == "ALL_OLD" and old:
        return {"Attributes": old}
    if mode == "UPDATED_OLD" and old:
        return {"Attributes": {k: old[k] for k in changed if k in old}}
    return {}
