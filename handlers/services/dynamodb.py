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

from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Engine as SAEngine

# One DynamoDB error type and one expression evaluator for the seeds' tables and the engine's local
# DynamoDB service (statelang.runtime.services): the same names, conditions and updates in both.
from statelang.runtime.services.dynamodb_expressions import (
    DynamoDBError,
    apply_update,
    evaluate_condition,
    update_response,
)
from statelang.runtime.services.dynamodb_expressions import canonical as _canonical
from statelang.runtime.services.dynamodb_expressions import plain as _plain

from .tables import ddb_items, ddb_requests, ddb_tables, transaction


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
        return update_response(params.get("ReturnValues"), old, new, changed)

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
