"""Local DynamoDB: tables of typed items kept as records of the engine's Store.

A table is the record ``dynamodb-table/<name>`` (its key schema); an item is the record
``dynamodb-item:<table>/<canonical key>``, keyed so that the number keys 1.50 and 1.5 are one item,
as in DynamoDB. Requests and responses have DynamoDB's shapes; the optimised integration
(``arn:aws:states:::dynamodb:putItem``) adds the SDK metadata AWS adds and names errors
``DynamoDB.<Exception>``; the SDK integration (``aws-sdk:dynamodb:*``) names them
``DynamoDb.<Exception>`` and adds no metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statelang.runtime.services.dynamodb_expressions import (
    DynamoDBError,
    apply_update,
    canonical,
    evaluate_condition,
    plain,
    update_response,
)
from statelang.runtime.services.errors import ServiceError, sdk_error

TABLES = "dynamodb-table"


def _items_kind(table: str) -> str:
    return f"dynamodb-item:{table}"


class LocalDynamoDB:
    ACTIONS = ("getItem", "putItem", "updateItem", "deleteItem", "query", "scan")

    def __init__(self, env):
        self.env = env
        self._faults: list[str] = []

    def fail_next(self, times: int = 1, exception: str = "ProvisionedThroughputExceededException") -> None:
        """The next `times` task calls fail with ``DynamoDB.<exception>`` (throttling by default), to
        test a machine's Retry and Catch."""
        with self.env.lock:
            self._faults.extend([exception] * times)

    def _fault(self) -> None:
        with self.env.lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault:
            raise DynamoDBError(fault, f"{fault} (injected by fail_next)")

    # -- tables ---------------------------------------------------------------------------------
    def create_table(self, name: str, hash_key: str, range_key: str | None = None) -> None:
        """Declare a table's key schema (idempotent; another schema for the same name is an error)."""
        schema = {"TableName": name, "HashKey": hash_key, "RangeKey": range_key}
        with self.env.lock:
            old = self.env.store.get_record(TABLES, name)
            if old is not None and (old["HashKey"], old.get("RangeKey")) != (hash_key, range_key):
                raise DynamoDBError("ResourceInUseException", f"Table already exists with another key schema: {name}")
            if old is None:
                self.env.store.put_record(TABLES, name, schema)

    def tables(self) -> list[str]:
        return sorted(r["TableName"] for r in self.env.store.list_records(TABLES))

    def items(self, table: str) -> list[dict]:
        """Every item of `table` (typed attribute values), for tests and the console."""
        self._schema(table)
        return self.env.store.list_records(_items_kind(table))

    def _schema(self, name: Any) -> tuple[str, str | None]:
        rec = self.env.store.get_record(TABLES, name) if isinstance(name, str) else None
        if rec is None:
            raise DynamoDBError("ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")
        return rec["HashKey"], rec.get("RangeKey")

    @staticmethod
    def _key(schema: tuple[str, str | None], attrs: dict, strict: bool) -> str:
        hash_key, range_key = schema
        wanted = {hash_key} | ({range_key} if range_key else set())
        if not isinstance(attrs, dict) or (strict and set(attrs) != wanted) or not wanted <= set(attrs):
            raise DynamoDBError("ValidationException", "The provided key element does not match the schema")
        return canonical(attrs[hash_key]) + ("|" + canonical(attrs[range_key]) if range_key else "")

    def _check(self, params: dict, item: dict | None) -> None:
        cond = params.get("ConditionExpression")
        if cond and not evaluate_condition(cond, item or {}, params.get("ExpressionAttributeNames"),
                                           params.get("ExpressionAttributeValues")):
            raise DynamoDBError("ConditionalCheckFailedException", "The conditional request failed")

    def _write(self, table: str, key: str, item: dict | None) -> None:
        if item is None:
            self.env.store.delete_record(_items_kind(table), key)
        else:
            self.env.store.put_record(_items_kind(table), key, item)

    # -- actions (DynamoDB's request and response shapes) ----------------------------------------
    def put_item(self, params: dict) -> dict:
        table, item = params.get("TableName"), params.get("Item") or {}
        with self.env.lock:
            key = self._key(self._schema(table), item, strict=False)
            old = self.env.store.get_record(_items_kind(table), key)
            self._check(params, old)
            self._write(table, key, item)
        return {"Attributes": old} if params.get("ReturnValues") == "ALL_OLD" and old else {}

    def get_item(self, params: dict) -> dict:
        table = params.get("TableName")
        key = self._key(self._schema(table), params.get("Key") or {}, strict=True)
        item = self.env.store.get_record(_items_kind(table), key)
        if item is None:
            return {}
        wanted = params.get("ProjectionExpression")
        if wanted:
            names = params.get("ExpressionAttributeNames") or {}
            keep = {names.get(p.strip(), p.strip()) for p in wanted.split(",")}
            item = {k: v for k, v in item.items() if k in keep}
        return {"Item": item}

    def update_item(self, params: dict) -> dict:
        table, key_attrs = params.get("TableName"), params.get("Key") or {}
        with self.env.lock:
            key = self._key(self._schema(table), key_attrs, strict=True)
            old = self.env.store.get_record(_items_kind(table), key)
            self._check(params, old)
            new = dict(old or key_attrs)
            changed = apply_update(params.get("UpdateExpression") or "", new, params.get("ExpressionAttributeNames"),
                                   params.get("ExpressionAttributeValues"))
            self._write(table, key, new)
        return update_response(params.get("ReturnValues"), old, new, changed)

    def delete_item(self, params: dict) -> dict:
        table = params.get("TableName")
        with self.env.lock:
            key = self._key(self._schema(table), params.get("Key") or {}, strict=True)
            old = self.env.store.get_record(_items_kind(table), key)
            self._check(params, old)
            if old is not None:
                self._write(table, key, None)
        return {"Attributes": old} if params.get("ReturnValues") == "ALL_OLD" and old else {}

    def query(self, params: dict) -> dict:
        """KeyConditionExpression, then FilterExpression; items in range-key order (ScanIndexForward),
        Limit applied before the filter as DynamoDB does (ScannedCount counts what was read)."""
        names, values = params.get("ExpressionAttributeNames"), params.get("ExpressionAttributeValues")
        table = params.get("TableName")
        _, range_key = self._schema(table)
        cond = params.get("KeyConditionExpression")
        if not cond:
            raise DynamoDBError("ValidationException",
                                "Either the KeyConditions or KeyConditionExpression parameter must be specified")
        items = [it for it in self.env.store.list_records(_items_kind(table))
                 if evaluate_condition(cond, it, names, values)]
        if range_key:
            items.sort(key=lambda it: plain(it[range_key]), reverse=params.get("ScanIndexForward") is False)
        if params.get("Limit"):
            items = items[:int(params["Limit"])]
        scanned = len(items)
        if params.get("FilterExpression"):
            items = [it for it in items if evaluate_condition(params["FilterExpression"], it, names, values)]
        return {"Items": items, "Count": len(items), "ScannedCount": scanned}

    def scan(self, params: dict) -> dict:
        table = params.get("TableName")
        self._schema(table)
        rows = self.env.store.list_records(_items_kind(table))
        items = rows
        if params.get("FilterExpression"):
            items = [it for it in rows if evaluate_condition(params["FilterExpression"], it,
                                                             params.get("ExpressionAttributeNames"),
                                                             params.get("ExpressionAttributeValues"))]
        return {"Items": items, "Count": len(items), "ScannedCount": len(rows)}

    # -- as task handlers ----------------------------------------------------------------------
    def _action(self, action: str) -> Callable[[dict], dict]:
        return {"getItem": self.get_item, "putItem": self.put_item, "updateItem": self.update_item,
                "deleteItem": self.delete_item, "query": self.query, "scan": self.scan}[action]

    def optimised(self, action: str) -> Callable[[Any, Any], dict]:
        fn = self._action(action)

        def handle(params: Any, ctx: Any = None) -> dict:
            self._fault()
            out = fn(_params(params, "DynamoDB"))
            return {**out, **self.env.sdk_metadata(ctx)}
        return handle

    def sdk(self, action: str) -> Callable[[Any, Any], dict]:
        fn = self._action(action)

        def handle(params: Any, ctx: Any = None) -> dict:
            try:
                self._fault()
                return fn(_params(params, "DynamoDB"))
            except ServiceError as exc:
                raise sdk_error("dynamodb", exc.exception, exc.cause) from None
        return handle


def _params(params: Any, service: str) -> dict:
    if not isinstance(params, dict):
        raise ServiceError(service, "ValidationException", "The request parameters must be a JSON object")
    return params
