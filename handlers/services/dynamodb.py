"""A DynamoDB-like item store over SQLAlchemy: the ``dynamodb:putItem/getItem/updateItem/deleteItem/
query`` integrations with DynamoDB's own parameter shapes, typed attribute values and errors.

Items are stored as their typed JSON ({"S": ..}, {"N": ..}, {"M": ..}, {"BOOL": ..}, ...) keyed by a
canonical text of the key attributes, so a number key 1.50 and 1.5 are the same item, as in
DynamoDB. Expressions cover what workflows use: conditions (comparisons, AND/OR/NOT, BETWEEN,
attribute_exists, attribute_not_exists, begins_with), update expressions (SET with ``+``/``-``,
if_not_exists and list_append; REMOVE; ADD) and key conditions. A failed condition raises
``DynamoDB.ConditionalCheckFailedException`` so a state machine can Catch it by that name.

Writes made through the Step Functions integration are idempotent under the task's idempotency
key: the response is recorded with the write, in its transaction, and a re-run of the same task
(after a crash between the write and the engine's record of it) gets the recorded response back.
Without that, ``attribute_not_exists`` on a put fails on the task's own first write. A handler
calling the store directly passes ``request_token=`` for the same guarantee.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Engine as SAEngine

from statelang import HandlerError

from .tables import ddb_items, ddb_requests, ddb_tables, transaction


class DynamoDBError(HandlerError):
    """An error as the Step Functions integration names it: ``DynamoDB.<Exception>``."""

    def __init__(self, exception: str, message: str):
        super().__init__(f"DynamoDB.{exception}", message)


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError as exc:
        raise DynamoDBError("ValidationException", f"The parameter cannot be converted to a numeric value: {text}") from exc


def _canonical(value: dict) -> str:
    (kind, v), = value.items()
    if kind == "N":
        return "N:" + format(_number(v).normalize(), "f")
    if kind in ("S", "B"):
        return f"{kind}:{v}"
    raise DynamoDBError("ValidationException", f"Key attributes must be scalars of type S, N or B, not {kind}")


def _plain(value: dict) -> Any:
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
        same = (set(a) == set(b)) and (_plain(a) == _plain(b) if set(a) <= {"N", "S", "B"} else a == b)
        return same if op == "=" else not same
    if set(a) != set(b):
        return False
    x, y = _plain(a), _plain(b)
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


# -- the store -----------------------------------------------------------------------------------
class DynamoDB:
    """Tables of typed items in SQL. Methods take and return DynamoDB's request/response shapes."""

    def __init__(self, engine: SAEngine):
        self.engine = engine
        self._faults: list[str] = []

    def fail_next(self, times: int = 1, exception: str = "ProvisionedThroughputExceededException") -> None:
        """The next `times` integration calls fail with ``DynamoDB.<exception>`` (throttling by default)."""
        self._faults.extend([exception] * times)

    def _integration(self, fn, write: bool = False):
        def call(params: dict, ctx: Any = None) -> dict:
            if self._faults:
                exc = self._faults.pop(0)
                raise DynamoDBError(exc, f"{exc} on {params.get('TableName')}")
            token = getattr(ctx, "idempotency_key", None) if write else None
            return fn(params, request_token=token) if token else fn(params)
        return call

    @staticmethod
    def _recorded(conn, token: str | None) -> dict | None:
        if token is None:
            return None
        row = conn.execute(select(ddb_requests.c.response).where(ddb_requests.c.token == token)).first()
        return None if row is None else row.response

    @staticmethod
    def _record(conn, token: str | None, operation: str, response: dict) -> dict:
        if token is not None:
            conn.execute(insert(ddb_requests).values(token=token, operation=operation, response=response))
        return response

    def create_table(self, name: str, hash_key: str, range_key: str | None = None) -> None:
        """Declare a table's key schema (idempotent; a changed schema is an error)."""
        with transaction(self.engine) as conn:
            row = conn.execute(select(ddb_tables).where(ddb_tables.c.name == name)).first()
            if row is None:
                conn.execute(insert(ddb_tables).values(name=name, hash_key=hash_key, range_key=range_key))
            elif (row.hash_key, row.range_key) != (hash_key, range_key):
                raise DynamoDBError("ResourceInUseException", f"Table already exists with another key schema: {name}")

    def _schema(self, conn, name: str | None) -> tuple[str, str | None]:
        row = conn.execute(select(ddb_tables).where(ddb_tables.c.name == (name or ""))).first()
        if row is None:
            raise DynamoDBError("ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")
        return row.hash_key, row.range_key

    @staticmethod
    def _key(schema: tuple[str, str | None], attrs: dict, strict: bool) -> tuple[str, str]:
        hash_key, range_key = schema
        wanted = {hash_key} | ({range_key} if range_key else set())
        if strict and set(attrs) != wanted or not wanted <= set(attrs):
            raise DynamoDBError("ValidationException", "The provided key element does not match the schema")
        return _canonical(attrs[hash_key]), _canonical(attrs[range_key]) if range_key else ""

    def _load(self, conn, table: str, key: tuple[str, str]) -> dict | None:
        row = conn.execute(select(ddb_items.c.item).where(and_(
            ddb_items.c.table_name == table, ddb_items.c.hash_value == key[0],
            ddb_items.c.range_value == key[1]))).first()
        return None if row is None else row.item

    def _check(self, params: dict, item: dict | None) -> None:
        cond = params.get("ConditionExpression")
        if cond and not evaluate_condition(cond, item or {}, params.get("ExpressionAttributeNames"),
                                           params.get("ExpressionAttributeValues")):
            raise DynamoDBError("ConditionalCheckFailedException", "The conditional request failed")

    def _write(self, conn, table: str, key: tuple[str, str], old: dict | None, new: dict | None) -> None:
        where = and_(ddb_items.c.table_name == table, ddb_items.c.hash_value == key[0],
                     ddb_items.c.range_value == key[1])
        if new is None:
            conn.execute(delete(ddb_items).where(where))
        elif old is None:
            conn.execute(insert(ddb_items).values(table_name=table, hash_value=key[0], range_value=key[1], item=new))
        else:
            conn.execute(update(ddb_items).where(where).values(item=new))

    def put_item(self, params: dict, request_token: str | None = None) -> dict:
        item = params.get("Item") or {}
        with transaction(self.engine) as conn:
            if (done := self._recorded(conn, request_token)) is not None:
                return done
            key = self._key(self._schema(conn, params.get("TableName")), item, strict=False)
            old = self._load(conn, params["TableName"], key)
            self._check(params, old)
            self._write(conn, params["TableName"], key, old, item)
            out = {"Attributes": old} if params.get("ReturnValues") == "ALL_OLD" and old else {}
            return self._record(conn, request_token, "PutItem", out)

    def get_item(self, params: dict) -> dict:
        with transaction(self.engine) as conn:
            key = self._key(self._schema(conn, params.get("TableName")), params.get("Key") or {}, strict=True)
            item = self._load(conn, params["TableName"], key)
        if item is None:
            return {}
        wanted = params.get("ProjectionExpression")
        if wanted:
            names = params.get("ExpressionAttributeNames") or {}
            keep = {names.get(p.strip(), p.strip()) for p in wanted.split(",")}
            item = {k: v for k, v in item.items() if k in keep}
        return {"Item": item}

    def update_item(self, params: dict, request_token: str | None = None) -> dict:
        key_attrs = params.get("Key") or {}
        with transaction(self.engine) as conn:
            if (done := self._recorded(conn, request_token)) is not None:
                return done
            out = self._update(conn, params, key_attrs)
            return self._record(conn, request_token, "UpdateItem", out)

    def _update(self, conn, params: dict, key_attrs: dict) -> dict:
        key = self._key(self._schema(conn, params.get("TableName")), key_attrs, strict=True)
        old = self._load(conn, params["TableName"], key)
        self._check(params, old)
        new = {k: v for k, v in (old or key_attrs).items()}
        changed = apply_update(params.get("UpdateExpression") or "", new, params.get("ExpressionAttributeNames"),
                               params.get("ExpressionAttributeValues"))
        self._write(conn, params["TableName"], key, old, new)
        mode = params.get("ReturnValues") or "NONE"
        if mode == "ALL_NEW":
            return {"Attributes": new}
        if mode == "UPDATED_NEW":
            return {"Attributes": {k: new[k] for k in changed if k in new}}
        if mode == "ALL_OLD" and old:
            return {"Attributes": old}
        if mode == "UPDATED_OLD" and old:
            return {"Attributes": {k: old[k] for k in changed if k in old}}
        return {}

    def delete_item(self, params: dict, request_token: str | None = None) -> dict:
        with transaction(self.engine) as conn:
            if (done := self._recorded(conn, request_token)) is not None:
                return done
            key = self._key(self._schema(conn, params.get("TableName")), params.get("Key") or {}, strict=True)
            old = self._load(conn, params["TableName"], key)
            self._check(params, old)
            if old is not None:
                self._write(conn, params["TableName"], key, old, None)
            out = {"Attributes": old} if params.get("ReturnValues") == "ALL_OLD" and old else {}
            return self._record(conn, request_token, "DeleteItem", out)

    def query(self, params: dict) -> dict:
        """KeyConditionExpression on the hash key (and optionally the range key), then an optional
        FilterExpression; items in range-key order (ScanIndexForward), at most Limit of them."""
        names, values = params.get("ExpressionAttributeNames"), params.get("ExpressionAttributeValues")
        with transaction(self.engine) as conn:
            hash_key, range_key = self._schema(conn, params.get("TableName"))
            rows = conn.execute(select(ddb_items.c.item).where(ddb_items.c.table_name == params["TableName"])).all()
        cond = params.get("KeyConditionExpression")
        if not cond:
            raise DynamoDBError("ValidationException", "Either the KeyConditions or KeyConditionExpression parameter must be specified")
        items = [r.item for r in rows if evaluate_condition(cond, r.item, names, values)]
        if range_key:
            items.sort(key=lambda it: _plain(it[range_key]), reverse=params.get("ScanIndexForward") is False)
        scanned = len(items)
        limit = params.get("Limit")
        if limit:
            items = items[:int(limit)]
            scanned = len(items)
        if params.get("FilterExpression"):
            items = [it for it in items if evaluate_condition(params["FilterExpression"], it, names, values)]
        return {"Items": items, "Count": len(items), "ScannedCount": scanned}

    def scan(self, params: dict) -> dict:
        """Every item of a table that passes the FilterExpression (for handlers' own reads)."""
        with transaction(self.engine) as conn:
            self._schema(conn, params.get("TableName"))
            rows = conn.execute(select(ddb_items.c.item).where(ddb_items.c.table_name == params["TableName"])).all()
        items = [r.item for r in rows]
        if params.get("FilterExpression"):
            items = [it for it in items if evaluate_condition(params["FilterExpression"], it,
                                                             params.get("ExpressionAttributeNames"),
                                                             params.get("ExpressionAttributeValues"))]
        return {"Items": items, "Count": len(items), "ScannedCount": len(rows)}

    def handlers(self) -> dict:
        """The Step Functions integration ARNs this store answers."""
        base, w = "arn:aws:states:::dynamodb:", self._integration
        return {base + "putItem": w(self.put_item, True), base + "getItem": w(self.get_item),
                base + "updateItem": w(self.update_item, True), base + "deleteItem": w(self.delete_item, True),
                base + "query": w(self.query), "arn:aws:states:::aws-sdk:dynamodb:query": w(self.query)}
