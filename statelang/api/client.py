"""The in-process Step Functions API: boto3's ``stepfunctions`` client, served by an `Engine`.

``engine.client()`` returns a `Client` whose methods have boto3's names, keyword arguments,
response dicts (with ``datetime`` values and ``ResponseMetadata``) and exceptions, so that code
written against boto3 runs unchanged against a local engine. Parameters are checked against
botocore's own service model when botocore is importable — the same client-side check boto3 makes,
raising the same ``ParamValidationError`` — and against the required-parameter list otherwise.

The client only records work: an execution moves on when the engine runs (`run_until_idle`, a
worker's `serve_forever`), as a real execution moves on in the service after StartExecution returns.
"""

from __future__ import annotations

import base64
import functools
import json
import random
import uuid
from datetime import datetime
from typing import Any

from statelang.api import limits
from statelang.api.errors import HAVE_BOTOCORE, Exceptions, ParamValidationError, current_operation, error
from statelang.api.machines import (
    ALIAS,
    DEFAULT_PAGE,
    EXEC_ARN,
    SM,
    VERSION,
    MachinesMixin,
    check_name,
    invalid_arn,
    page,
    parse_sm_arn,
    when,
)
from statelang.api.map_runs import MapRunsMixin
from statelang.language import jsontext

MAX_INPUT_BYTES = 262144
META = "execution_meta"
CLOSED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

# boto3 method name -> API operation name, for every operation this client serves.
OPERATIONS = {
    "create_state_machine": "CreateStateMachine", "describe_state_machine": "DescribeStateMachine",
    "update_state_machine": "UpdateStateMachine", "delete_state_machine": "DeleteStateMachine",
    "list_state_machines": "ListStateMachines",
    "publish_state_machine_version": "PublishStateMachineVersion",
    "list_state_machine_versions": "ListStateMachineVersions",
    "delete_state_machine_version": "DeleteStateMachineVersion",
    "create_state_machine_alias": "CreateStateMachineAlias",
    "describe_state_machine_alias": "DescribeStateMachineAlias",
    "update_state_machine_alias": "UpdateStateMachineAlias",
    "delete_state_machine_alias": "DeleteStateMachineAlias",
    "list_state_machine_aliases": "ListStateMachineAliases",
    "start_execution": "StartExecution", "start_sync_execution": "StartSyncExecution", "describe_execution": "DescribeExecution",
    "list_executions": "ListExecutions", "stop_execution": "StopExecution",
    "get_execution_history": "GetExecutionHistory",
    "describe_state_machine_for_execution": "DescribeStateMachineForExecution",
    "send_task_success": "SendTaskSuccess", "send_task_failure": "SendTaskFailure",
    "send_task_heartbeat": "SendTaskHeartbeat",
    "create_activity": "CreateActivity", "describe_activity": "DescribeActivity",
    "delete_activity": "DeleteActivity", "list_activities": "ListActivities",
    "get_activity_task": "GetActivityTask",
    "validate_state_machine_definition": "ValidateStateMachineDefinition",
    "tag_resource": "TagResource", "untag_resource": "UntagResource",
    "list_tags_for_resource": "ListTagsForResource",
    "test_state": "TestState",
    "describe_map_run": "DescribeMapRun", "list_map_runs": "ListMapRuns", "update_map_run": "UpdateMapRun",
}

# Required parameters, for the check made when botocore's model is not at hand.
_REQUIRED = {
    "CreateStateMachine": ("name", "definition", "roleArn"), "CreateStateMachineAlias": ("name", "routingConfiguration"),
    "CreateActivity": ("name",), "StartExecution": ("stateMachineArn",), "SendTaskSuccess": ("taskToken", "output"),
    "TagResource": ("resourceArn", "tags"), "UntagResource": ("resourceArn", "tagKeys"),
    "ValidateStateMachineDefinition": ("definition",),
}
_ONE_ARN = {"stateMachineArn": ("DescribeStateMachine", "UpdateStateMachine", "DeleteStateMachine",
                                "PublishStateMachineVersion", "ListStateMachineVersions", "ListStateMachineAliases"),
            "stateMachineAliasArn": ("DescribeStateMachineAlias", "UpdateStateMachineAlias", "DeleteStateMachineAlias"),
            "stateMachineVersionArn": ("DeleteStateMachineVersion",),
            "executionArn": ("DescribeExecution", "StopExecution", "GetExecutionHistory",
                             "DescribeStateMachineForExecution"),
            "taskToken": ("SendTaskFailure", "SendTaskHeartbeat"),
            "activityArn": ("DescribeActivity", "DeleteActivity", "GetActivityTask"),
            "resourceArn": ("ListTagsForResource",)}
for _param, _ops in _ONE_ARN.items():
    for _op in _ops:
        _REQUIRED[_op] = (_param,)

_BY_NAME = {op: method for method, op in OPERATIONS.items()}

_PAGINATED = {"get_execution_history": "events", "list_activities": "activities", "list_executions": "executions",
              "list_state_machines": "stateMachines", "list_state_machine_versions": "stateMachineVersions",
              "list_state_machine_aliases": "stateMachineAliases", "list_map_runs": "mapRuns"}


@functools.lru_cache(maxsize=1)
def _service_model():
    from botocore.loaders import Loader
    from botocore.model import ServiceModel
    return ServiceModel(Loader().load_service_model("stepfunctions", "service-2"), "stepfunctions")


@functools.cache
def _plain_string_rules(op: str) -> tuple[tuple[str, ...], dict[str, int]] | None:
    """For an operation: (required members, {string member: minimum length}), the whole of what
    botocore's validator checks on a request whose members are all plain strings; None when the
    input shape has a constraint beyond those (a tagged union, a host label)."""
    shape = _service_model().operation_model(op).input_shape
    if shape.is_tagged_union:
        return None
    strings = {}
    for name, member in shape.members.items():
        if member.type_name != "string" or "jsonvalue" in member.serialization:
            continue
        if member.serialization.get("hostLabel") and "min" not in member.metadata:
            return None
        strings[name] = member.metadata.get("min", 0)
    return tuple(shape.metadata.get("required", ())), strings


def _plainly_valid(op: str, params: dict) -> bool:
    """True when botocore's validator would accept `params` for certain (every request the hot
    paths make: StartExecution, DescribeExecution, SendTask*): every required member present, and
    every member a known string member given a string no shorter than its minimum. Anything else
    is left to botocore, which then finds and words the error itself."""
    rules = _plain_string_rules(op)
    if rules is None:
        return False
    required, strings = rules
    for name in required:
        if name not in params:
            return False
    for name, value in params.items():
        least = strings.get(name)
        if least is None or not isinstance(value, str) or len(value) < least:
            return False
    return True


def _validate_params(op: str, params: dict) -> None:
    """The client-side check boto3 makes before sending a request."""
    if HAVE_BOTOCORE:
        shape = _service_model().operation_model(op).input_shape
        if not _plainly_valid(op, params):
            from botocore.validate import validate_parameters
            validate_parameters(params, shape)
        found = limits.problems(shape, params)   # what the service checks after boto3
        if found:
            raise error("ValidationException", limits.message(found))
        return
    missing = [p for p in _REQUIRED.get(op, ()) if p not in params]  # pragma: no cover - without botocore
    if missing:  # pragma: no cover
        raise ParamValidationError(report="\n".join(f'Missing required parameter in input: "{p}"' for p in missing))


def _clean(value: Any) -> Any:
    """Drop absent (None) members, as boto3's parser never returns a member the service left out."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _shaped(value: Any, shape) -> Any:
    """Keep only the members the service model defines, as botocore's parser does (a field the
    engine records for itself never reaches a caller that expects boto3's responses), and drop
    absent (None) members as `_clean` does, in the same walk."""
    return _shaper(shape)(value)


@functools.cache
def _shaper(shape) -> Any:
    """`_shaped` for one shape, made once per shape of the service model (the cache holds the
    shape, so its key is never reused): a structure's members are sorted once into those that
    hold nested shapes and those that hold scalars, which a history page's 20,000 members then
    look up, rather than asking each member's shape its kind."""
    kind = getattr(shape, "type_name", None)
    if kind == "structure":
        scalars = frozenset(k for k, m in shape.members.items() if m.type_name not in _NESTED)
        nested = {k: m for k, m in shape.members.items() if m.type_name in _NESTED}
        made: dict[str, Any] = {}   # a nested member's shaper, made on first use (a shape may hold itself)

        def structure(value: Any) -> Any:
            if not isinstance(value, dict):
                return _clean(value)
            out = {}
            for k, v in value.items():
                if v is None:
                    continue
                if k in scalars:
                    out[k] = _clean(v) if isinstance(v, dict | list) else v
                elif k in nested:
                    if isinstance(v, dict | list):
                        each = made.get(k)
                        if each is None:
                            each = made[k] = _shaper(nested[k])
                        v = each(v)
                    out[k] = v
            return out
        return structure
    if kind == "list":
        member = shape.member

        def listed(value: Any) -> Any:
            if not isinstance(value, list):
                return _clean(value)
            each = _shaper(member)
            return [each(v) if isinstance(v, dict | list) else v for v in value]
        return listed
    if kind == "map":
        member = shape.value

        def mapped(value: Any) -> Any:
            if not isinstance(value, dict):
                return _clean(value)
            each = _shaper(member)
            return {k: each(v) if isinstance(v, dict | list) else v for k, v in value.items() if v is not None}
        return mapped
    return _clean


_NESTED = ("structure", "list", "map")


def _without_data(details: dict) -> dict:
    """An event's details less its input and output (GetExecutionHistory's includeExecutionData)."""
    return {k: v for k, v in details.items() if k not in ("input", "output")}


def _request_id() -> str:
    """A version-4 UUID's text, as AWS's request ids look: from `random`, not the OS (it names a
    response, it guards nothing), which costs a fraction of uuid.uuid4()."""
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _compact(text: str | None) -> str | None:
    """AWS hands JSON data back without insignificant white space, and characters unescaped as
    json writes them with ensure_ascii off. Text with no white space and no escape at all (what
    the engine writes, most often) is that already and goes back as it is: reading and writing
    a 1,000-item Map's output again cost ~0.5-1.8 ms a describe, the five scans ~2 µs."""
    if text is None or not (" " in text or "\\" in text or "\n" in text or "\t" in text or "\r" in text):
        return text
    return jsontext.dumps(jsontext.loads(text))


def _operation(method: str, op: str):
    def call(self, *args, **params):
        if args:
            raise TypeError(f"{method}() only accepts keyword arguments.")
        token = current_operation.set(op)
        try:
            _validate_params(op, params)
            result = getattr(self, "_" + method)(**params)
        finally:
            current_operation.reset(token)
        if HAVE_BOTOCORE:
            out = _shaped(result, _service_model().operation_model(op).output_shape)
        else:  # pragma: no cover - without botocore
            out = _clean(result)
        out["ResponseMetadata"] = {"RequestId": _request_id(), "HTTPStatusCode": 200,
                                   "HTTPHeaders": {}, "RetryAttempts": 0}
        return out
    call.__name__ = method
    call.__qualname__ = f"Client.{method}"
    call.__doc__ = f"The {op} operation, as boto3's ``stepfunctions.{method}``."
    return call


class Paginator:
    """boto3's paginator, reduced to ``paginate(**params)`` with ``PaginationConfig``."""

    def __init__(self, client: Client, method: str):
        self._call = getattr(client, method)
        self._key = _PAGINATED[method]

    def paginate(self, **params):
        cfg = params.pop("PaginationConfig", None) or {}
        if cfg.get("PageSize"):
            params["maxResults"] = cfg["PageSize"]
        if cfg.get("StartingToken"):
            params["nextToken"] = cfg["StartingToken"]
        left = cfg.get("MaxItems")
        while True:
            resp = self._call(**params)
            if left is not None:
                resp[self._key] = resp[self._key][:left]
                left -= len(resp[self._key])
            yield resp
            token = resp.get("nextToken")
            if not token or (left is not None and left <= 0):
                return
            params["nextToken"] = token


class Client(MachinesMixin, MapRunsMixin):
    """boto3's ``stepfunctions`` client over an `Engine`: ``Client(engine)`` or ``engine.client()``."""

    exceptions = Exceptions()

    def __init__(self, engine):
        self.engine = engine

    def can_paginate(self, operation_name: str) -> bool:
        return operation_name in _PAGINATED

    def get_paginator(self, operation_name: str) -> Paginator:
        if operation_name not in _PAGINATED:
            raise ValueError(f"Operation cannot be paginated: {operation_name}")
        return Paginator(self, operation_name)

    def close(self) -> None:
        """boto3 clients have it; nothing is held open here."""

    def call(self, operation: str, params: dict | None = None) -> dict:
        """Serve an operation by its API name ("StartExecution"), as the JSON protocol names it in
        ``X-Amz-Target``: the HTTP face needs no table of its own."""
        method = _BY_NAME.get(operation)
        if method is None:
            raise error("ValidationException", f"Unknown operation: {operation}")
        return getattr(self, method)(**(params or {}))

    # -- executions -----------------------------------------------------------------------------
    def _target(self, arn: str, name: str) -> tuple[dict, str | None, str | None]:
        """What StartExecution on `arn` runs: (machine or version record, version ARN, alias ARN)."""
        base, _, qualifier = parse_sm_arn(arn)
        if qualifier is None:
            return self._machine(base), None, None
        alias_arn = None
        if not qualifier.isdigit():
            alias = self._get(ALIAS, arn)
            if alias is None:
                raise error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
            alias_arn = arn
            # Weighted and seeded by the execution: the same name always lands on the same version.
            draw = random.Random(f"{arn}#{name}").random() * 100
            total = 0
            for route in alias["routingConfiguration"]:
                total += route["weight"]
                arn = route["stateMachineVersionArn"]
                if draw < total:
                    break
        version = self._get(VERSION, arn)
        if version is None:
            raise error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return version, arn, alias_arn

    def _start_execution(self, *, stateMachineArn: str, name: str | None = None, input: str | None = None,
                         traceHeader: str | None = None) -> dict:
        from statelang.runtime.storage import ExecutionAlreadyExistsError
        name = name if name is not None else str(uuid.uuid4())
        check_name(name)
        text = "{}" if input is None else input
        if len(text.encode()) > MAX_INPUT_BYTES:
            raise error("ValidationException",
                        "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                        f"Member must have length less than or equal to {MAX_INPUT_BYTES}")
        try:
            value = jsontext.loads_bounded(text)
        except ValueError as exc:
            raise error("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exc}'") from exc
        target, version_arn, alias_arn = self._target(stateMachineArn, name)
        base = target["stateMachineArn"]
        sm_name = target["name"]
        machine = target if version_arn is None else self._get(SM, base) or target
        if target["type"] == "EXPRESS":
            arn = f"{self._arn('express', sm_name)}:{name}:{uuid.uuid4()}"
        else:
            arn = f"{self._arn('execution', sm_name)}:{name}"
        meta = {"stateMachineVersionArn": version_arn, "stateMachineAliasArn": alias_arn,
                "type": target["type"], "traceHeader": traceHeader,
                "revisionId": target.get("revisionId"),
                "updateDate": machine.get("updateDate") or target["creationDate"],
                "loggingConfiguration": target.get("loggingConfiguration"),
                "tracingConfiguration": target.get("tracingConfiguration")}
        meta = {k: v for k, v in meta.items() if v is not None}   # read with .get(): absent is None
        extra = {k: v for k, v in meta.items() if k in ("stateMachineVersionArn", "stateMachineAliasArn",
                                                         "traceHeader")}
        extra["input"] = text   # the input column: the caller's text as given
        extra["meta"] = meta    # kept on the execution row itself: one write per start
        try:
            live = self.engine.start(target["definition"], value, arn=arn, name=name, state_machine_arn=base,
                                     role_arn=target["roleArn"], extra=extra)
        except ExecutionAlreadyExistsError:
            row = self.engine.store.get_execution(arn)
        else:
            return {"executionArn": arn, "startDate": live.start}
        # The name is taken: the same input on a running execution is the same request again.
        if row is not None and row["status"] == "RUNNING" and self._input_text(row) == text:
            return {"executionArn": arn, "startDate": row["startDate"]}
        raise error("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")

    def _meta(self, arn: str, row: dict | None = None) -> dict:
        row = row if row is not None else self.engine.store.get_execution(arn)
        if row is not None and row.get("meta"):
            return row["meta"]
        return self._get(META, arn) or {}

    def _input_text(self, row: dict) -> str:
        return self._meta(row["executionArn"], row).get("input") or row["input"]

    def _execution(self, arn: str) -> dict:
        if not EXEC_ARN.match(arn):
            raise invalid_arn(arn, "execution")
        row = self.engine.store.get_execution(arn)
        if row is None:
            raise error("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return row

    def _start_sync_execution(self, *, stateMachineArn: str, name: str | None = None, input: str | None = None,
                              traceHeader: str | None = None, includedData: str | None = None) -> dict:
        """Express machines only: run to the end now and answer with the result (at least once)."""
        from statelang.api.express import start_sync_execution
        if name is not None:
            check_name(name)
        text = "{}" if input is None else input
        if len(text.encode()) > MAX_INPUT_BYTES:
            raise error("ValidationException",
                        "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                        f"Member must have length less than or equal to {MAX_INPUT_BYTES}")
        try:
            jsontext.loads_bounded(text)
        except ValueError as exc:
            raise error("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exc}'") from exc
        return start_sync_execution(self.engine, stateMachineArn, text, name)

    def _describe_execution(self, *, executionArn: str, includedData: str | None = None) -> dict:
        if ":express:" in executionArn:
            raise error("InvalidArn", "Executions of an EXPRESS state machine aren't supported by "
                                      "DescribeExecution: " + executionArn)
        row = self._execution(executionArn)
        meta = self._meta(executionArn, row)
        status = row["status"]
        out = {"executionArn": executionArn, "stateMachineArn": row["stateMachineArn"], "name": row["name"],
               "status": status, "startDate": when(row["startDate"]),
               "stopDate": when(row.get("stopDate")) if status != "RUNNING" else None,
               "traceHeader": meta.get("traceHeader"),
               "stateMachineVersionArn": row.get("stateMachineVersionArn") or meta.get("stateMachineVersionArn"),
               "stateMachineAliasArn": row.get("stateMachineAliasArn") or meta.get("stateMachineAliasArn"),
               "redriveCount": row.get("redriveCount") or 0}
        if includedData != "METADATA_ONLY":
            out["input"] = self._input_text(row)
            out["inputDetails"] = {"included": True}
            if status == "SUCCEEDED":
                out["output"] = _compact(row.get("output"))
                out["outputDetails"] = {"included": True}
        if status in ("FAILED", "TIMED_OUT", "ABORTED"):
            if status != "TIMED_OUT":   # AWS-recorded (LocalStack test_timeouts.snapshot.json,
                # test_global_timeout): a TIMED_OUT execution is described with no error or cause
                out["error"], out["cause"] = row.get("error"), row.get("cause")
            out["redriveStatus"] = "REDRIVABLE"
        else:
            out["redriveStatus"] = "NOT_REDRIVABLE"
            out["redriveStatusReason"] = f"Execution is {status} and cannot be redriven"
        if row.get("redriveDate"):
            out["redriveDate"] = when(row["redriveDate"])
        return out

    def _list_executions(self, *, stateMachineArn: str | None = None, statusFilter: str | None = None,
                         maxResults: int | None = None, nextToken: str | None = None,
                         mapRunArn: str | None = None, redriveFilter: str | None = None) -> dict:
        if (stateMachineArn is None) == (mapRunArn is None):
            raise error("ValidationException", "Must provide a StateMachine ARN or MapRun ARN, but not both")
        qualifier = None
        if mapRunArn is not None:   # a Distributed Map's children
            rows = [dict(r) for r in self.map_run_children(mapRunArn)
                    if statusFilter is None or r["status"] == statusFilter]
        else:
            base, _, qualifier = parse_sm_arn(stateMachineArn)
            rec = self._machine(base)
            if rec["type"] == "EXPRESS":
                raise error("StateMachineTypeNotSupported",
                            "This operation is not supported by this type of state machine")
            rows = [dict(r) for r in self.engine.store.list_executions(base, statusFilter)]
        for r in rows:
            meta = self._meta(r["executionArn"], r)
            for k in ("stateMachineVersionArn", "stateMachineAliasArn"):
                r[k] = r.get(k) or meta.get(k)
        if qualifier is not None:
            field = "stateMachineVersionArn" if qualifier.isdigit() else "stateMachineAliasArn"
            rows = [r for r in rows if r.get(field) == stateMachineArn]
        if redriveFilter == "REDRIVEN":
            rows = [r for r in rows if r.get("redriveCount")]
        elif redriveFilter == "NOT_REDRIVEN":
            rows = [r for r in rows if not r.get("redriveCount")]

        def key(r):  # newest first: running ones by start, closed ones by stop
            at = when(r.get("stopDate")) if r["status"] != "RUNNING" and r.get("stopDate") else when(r["startDate"])
            return [-at.timestamp(), r["executionArn"]]
        rows.sort(key=key)
        chunk, token = page(rows, key, maxResults, nextToken, [stateMachineArn or mapRunArn, statusFilter,
                                                               redriveFilter])
        items = [{"executionArn": r["executionArn"], "stateMachineArn": r["stateMachineArn"], "name": r["name"],
                  "status": r["status"], "startDate": when(r["startDate"]),
                  "stopDate": when(r.get("stopDate")) if r["status"] != "RUNNING" else None,
                  "stateMachineVersionArn": r.get("stateMachineVersionArn"),
                  "stateMachineAliasArn": r.get("stateMachineAliasArn"),
                  "redriveCount": r.get("redriveCount") or 0, "redriveDate": when(r.get("redriveDate"))}
                 for r in chunk]
        if mapRunArn is not None:   # ExecutionListItem: a map run's children name it and their item count
            for item, r in zip(items, chunk, strict=True):
                item["mapRunArn"], item["itemCount"] = mapRunArn, self.map_run_item_count(mapRunArn, r)
        return {"executions": items, "nextToken": token}

    def _stop_execution(self, *, executionArn: str, error: str | None = None, cause: str | None = None) -> dict:
        row = self._execution(executionArn)
        if row["status"] == "RUNNING":
            row = self.engine.stop_execution(executionArn, error, cause) or row
        return {"stopDate": when(row.get("stopDate")) or self._now()}

    def _get_execution_history(self, *, executionArn: str, maxResults: int | None = None,
                               reverseOrder: bool = False, nextToken: str | None = None,
                               includeExecutionData: bool = True) -> dict:
        if not EXEC_ARN.match(executionArn):
            raise invalid_arn(executionArn, "execution")
        # Keyset paging: the token names the last event handed out (its id, negated when reversed,
        # as `page` keys it), so the store reads one page's events, plus one to know if more follow.
        after = _token_after(nextToken)
        events = self.engine.store.history(executionArn, after=None if after is None else abs(after),
                                           limit=(maxResults or DEFAULT_PAGE) + 1, reverse=bool(reverseOrder))
        if not events:   # every execution has events: none may mean no execution (one read a page, not two)
            self._execution(executionArn)
        chunk, token = page(events, (lambda e: -e["id"]) if reverseOrder else (lambda e: e["id"]),
                            maxResults, nextToken, [executionArn, bool(reverseOrder)])
        # The store's own events, made anew only where they change: the shaping `call` gives
        # every response copies, so nothing a caller changes reaches the store.
        out = []
        for ev in chunk:
            if not isinstance(ev["timestamp"], datetime):
                ev = {**ev, "timestamp": when(ev["timestamp"])}
            if not includeExecutionData:
                ev = {k: _without_data(v) if k.endswith("EventDetails") and isinstance(v, dict) else v
                      for k, v in ev.items()}
            out.append(ev)
        return {"events": out, "nextToken": token}

    def _describe_state_machine_for_execution(self, *, executionArn: str, includedData: str | None = None) -> dict:
        row = self._execution(executionArn)
        meta = self._meta(executionArn, row)
        _, sm_name, _ = parse_sm_arn(row["stateMachineArn"])
        return {"stateMachineArn": row["stateMachineArn"], "name": sm_name,
                "definition": row["definition"] if isinstance(row["definition"], str) else json.dumps(row["definition"]),
                "roleArn": row.get("roleArn") or "", "updateDate": when(meta.get("updateDate")) or when(row["startDate"]),
                "loggingConfiguration": meta.get("loggingConfiguration"),
                "tracingConfiguration": meta.get("tracingConfiguration"), "revisionId": meta.get("revisionId")}

    # -- task tokens ----------------------------------------------------------------------------
    def _answered(self, token: str, status: str) -> dict:
        if status == "ok":
            return {}
        if status == "closed":
            raise error("TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'")
        try:  # tokens this engine issues are UUIDs; anything else cannot be one of ours
            uuid.UUID(token)
        except ValueError:
            raise error("InvalidToken", "Invalid Token: 'Invalid token'") from None
        raise error("TaskDoesNotExist", "Task Does Not Exist: 'Provided task does not exist'")

    def _send_task_success(self, *, taskToken: str, output: str) -> dict:
        try:
            value = jsontext.loads_bounded(output)
        except ValueError as exc:
            raise error("InvalidOutput", f"Invalid Output: '{exc}'") from exc
        if len(output.encode()) > MAX_INPUT_BYTES:
            raise error("ValidationException",
                        "1 validation error detected: Value at 'output' failed to satisfy constraint: "
                        f"Member must have length less than or equal to {MAX_INPUT_BYTES}")
        return self._answered(taskToken, self.engine.send_task_result(taskToken, True, output=value))

    def _send_task_failure(self, *, taskToken: str, error: str | None = None, cause: str | None = None) -> dict:
        return self._answered(taskToken, self.engine.send_task_result(taskToken, False, error=error, cause=cause))

    def _send_task_heartbeat(self, *, taskToken: str) -> dict:
        return self._answered(taskToken, self.engine.send_task_heartbeat(taskToken))

    def _get_activity_task(self, *, activityArn: str, workerName: str | None = None) -> dict:
        """Answers at once: {} when no task is waiting (AWS long-polls up to 60 s, then answers the same)."""
        self._activity(activityArn)
        task = self.engine.get_activity_task(activityArn, workerName or "")
        if task is None:
            return {}
        return {"taskToken": task["token"], "input": _compact(task["input"])}

    # -- TestState ------------------------------------------------------------------------------
    def _test_state(self, *, definition: str, roleArn: str | None = None, input: str | None = None,
                    inspectionLevel: str | None = None, revealSecrets: bool = False,
                    variables: str | None = None, stateName: str | None = None, mock: dict | None = None,
                    context: str | None = None, stateConfiguration: dict | None = None) -> dict:
        """One state, run alone against this engine's handlers (`statelang.api.teststate`)."""
        from statelang.api.teststate import TestStateError, test_state
        from statelang.language.errors import DefinitionError
        if roleArn is not None:
            self._check_role(roleArn)
        try:
            return test_state(definition, input, role_arn=roleArn, inspection_level=inspectionLevel or "INFO",
                              reveal_secrets=bool(revealSecrets), variables=variables, state_name=stateName,
                              mock=mock, context=context, state_configuration=stateConfiguration,
                              engine=self.engine)
        except TestStateError as exc:
            raise error(exc.code, exc.message) from None
        except DefinitionError as exc:
            parts = [f"{d.code}: {d.message}" + (f" at {d.location}" if d.location else "") for d in exc.diagnostics]
            raise error("InvalidDefinition", "Invalid State Machine Definition: '" + ", ".join(parts) + "'") from None

    # -- validation -----------------------------------------------------------------------------
    def _validate_state_machine_definition(self, *, definition: str, type: str | None = None,
                                           severity: str | None = None, maxResults: int | None = None) -> dict:
        from statelang.language.loading import json_text_problems
        from statelang.language.validation import to_aws_location, validate
        found = json_text_problems(definition) or validate(definition, local_handlers=False)
        if (severity or "ERROR") == "ERROR":
            found = [d for d in found if d.severity == "ERROR"]
        limit = maxResults or 100
        diagnostics = []
        for d in found[:limit]:
            item = d.as_aws()
            if "location" in item:
                item["location"] = to_aws_location(item["location"])
            diagnostics.append(item)
        return {"result": "FAIL" if any(d.severity == "ERROR" for d in found) else "OK",
                "diagnostics": diagnostics, "truncated": len(found) > limit}


for _method, _op in OPERATIONS.items():
    setattr(Client, _method, _operation(_method, _op))

__all__ = ["Client", "Paginator", "OPERATIONS"]


def _token_after(next_token: str | None) -> int | None:
    """The event key a history token names, or None; `page` itself refuses a bad token."""
    if not next_token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(next_token.encode()).decode())["after"]
    except Exception:  # noqa: BLE001 - page() raises InvalidToken for it
        return None
    return after if isinstance(after, int) and not isinstance(after, bool) else None
