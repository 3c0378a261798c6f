"""Rule targets: what a matched event becomes, and how it is delivered, retried or dead-lettered.

A target is the dict `PutTargets` takes (``Id``, ``Arn``, ``Input`` | ``InputPath`` |
``InputTransformer``, ``RetryPolicy``, ``DeadLetterConfig``) plus one extension the seed systems
need: ``ExecutionName``, a template naming the execution a state-machine target starts
(``booking-{detail.bookingId}-{timestamp}``). Three kinds of ``Arn`` are delivered in process:
a state machine (an execution is started through the engine's client), an event bus (the event is
put on it) and anything else, looked up among the Python handlers registered on the bus (and then
among the engine's task handlers, so a Lambda ARN means the same function in both places).

Every delivery is a stored record *before* it is attempted, so an accepted event reaches its
targets at least once even across a crash; the record goes when the delivery succeeds or is
dead-lettered. A worker claims a delivery before attempting it (`claim_delivery`), so of several
workers ticking one database only one attempts it at a time. Retries follow the target's RetryPolicy with a deterministic exponential backoff,
so a test on the virtual clock sees the same schedule every run.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from statelang.api.errors import ClientError
from statelang.language.errors import StatelangError
from statelang.runtime.storage import RecordWrite

DELIVERY = "events.delivery"
DEAD_LETTER = "events.dead_letter"
MAX_TARGETS_PER_RULE = 5
DEFAULT_RETRY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
BACKOFF_CAP_SECONDS = 300
PREDEFINED = ("aws.events.rule-arn", "aws.events.rule-name", "aws.events.event.ingestion-time",
              "aws.events.event", "aws.events.event.json")
_ID_RE = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
_PLACEHOLDER = re.compile(r"<([^<>\s]+)>")
_NAME_FIELD = re.compile(r"\{([^{}]+)\}")
# Step Functions errors that a second attempt cannot cure: delivered straight to the dead letters.
_PERMANENT = {"StateMachineDoesNotExist", "InvalidName", "InvalidExecutionInput", "ValidationException",
              "InvalidArn", "ExecutionAlreadyExists", "ResourceNotFoundException", "InvalidParameter",
              "StateMachineDeleting"}


class EventBridgeError(ClientError, StatelangError):
    """An EventBridge API error, shaped like botocore's ClientError: ``e.response["Error"]["Code"]``."""

    def __init__(self, code: str, message: str, operation: str = ""):
        super().__init__({"Error": {"Code": code, "Message": message},
                          "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        self.code = code
        self.message = message


class DeliveryFailed(Exception):
    """A target refused an event: ``code`` names why, ``retryable`` says whether to try again."""

    def __init__(self, code: str, message: str, retryable: bool = True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


# -- validation (PutTargets) -------------------------------------------------------------------

def check_target(target: dict) -> tuple[str, str] | None:
    """(ErrorCode, ErrorMessage) for a target PutTargets would refuse, else None."""
    tid = target.get("Id")
    if not isinstance(tid, str) or not _ID_RE.match(tid):
        return ("ValidationException", f"Parameter Id is not valid. Reason: Id {tid!r} must match "
                                       "[\\.\\-_A-Za-z0-9]+ and be 1 to 64 characters long.")
    if not target.get("Arn"):
        return ("ValidationException", f"Parameter Arn is not valid for target {tid}.")
    given = [k for k in ("Input", "InputPath", "InputTransformer") if target.get(k) is not None]
    if len(given) > 1:
        return ("ValidationException", f"Only one of Input, InputPath, or InputTransformer must be "
                                       f"provided for target {tid}.")
    if target.get("Input") is not None:
        try:
            json.loads(target["Input"])
        except (TypeError, ValueError):
            return ("ValidationException", f"Parameter Input is not valid JSON for target {tid}.")
    transformer = target.get("InputTransformer")
    if transformer is not None:
        template = transformer.get("InputTemplate")
        if not isinstance(template, str) or not template:
            return ("ValidationException", "InputTemplate is required for InputTransformer.")
        paths = transformer.get("InputPathsMap") or {}
        if len(paths) > 100:
            return ("ValidationException", "InputPathsMap can have at most 100 entries.")
        for key in paths:
            if key in PREDEFINED:
                return ("ValidationException", f"InputTransformer for target {tid} contains a reserved "
                                               f"placeholder {key}.")
        for name in _PLACEHOLDER.findall(template):
            if name not in paths and name not in PREDEFINED:
                return ("ValidationException", f"InputTemplate for target {tid} contains invalid "
                                               f"placeholder {name}.")
    policy = target.get("RetryPolicy") or {}
    attempts = policy.get("MaximumRetryAttempts", 0)
    age = policy.get("MaximumEventAgeInSeconds", 60)
    if not 0 <= attempts <= 185:
        return ("ValidationException", "MaximumRetryAttempts must be between 0 and 185.")
    if not 60 <= age <= 86400:
        return ("ValidationException", "MaximumEventAgeInSeconds must be between 60 and 86400.")
    return None


# -- what the target receives ------------------------------------------------------------------

def json_path(document: Any, path: str) -> tuple[bool, Any]:
    """EventBridge's JSONPath subset: ``$``, ``$.a.b``, ``$.a[0]``, ``$.a['b-c']``, ``$.a[*].b``.
    Returns (found, value)."""
    if not isinstance(path, str) or not path.startswith("$"):
        return False, None
    tokens = re.findall(r"\.([^.\[\]]+)|\[(\d+|\*)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]", path[1:])
    values, wild = [document], False
    for key, index, quoted, dquoted in tokens:
        out = []
        for v in values:
            if index == "*":
                wild = True
                if isinstance(v, list):
                    out.extend(v)
            elif index:
                if isinstance(v, list) and int(index) < len(v):
                    out.append(v[int(index)])
            else:
                name = key or quoted or dquoted
                if key == "*":
                    wild = True
                    if isinstance(v, dict):
                        out.extend(v.values())
                elif isinstance(v, dict) and name in v:
                    out.append(v[name])
        values = out
    if wild:
        return True, values
    return (True, values[0]) if values else (False, None)


def _quoted_at(template: str, start: int) -> bool:
    """Whether position ``start`` of a JSON template lies inside a string literal."""
    inside, i = False, 0
    while i < start:
        c = template[i]
        if c == "\\" and inside:
            i += 2
            continue
        if c == '"':
            inside = not inside
        i += 1
    return inside


def transform(transformer: dict, event: dict, rule_arn: str, rule_name: str) -> str:
    """The InputTransformer's output text, with AWS's quoting rules.

    In a JSON template (one that starts with ``{`` or ``[``) a placeholder inside quotes receives
    a string's characters JSON-escaped (other values as JSON text), and outside quotes receives
    JSON (a string arrives quoted); a path that resolves to nothing gives ``""`` inside quotes and
    ``null`` outside. In a plain-text template values go in as they are, strings unquoted.
    ``aws.events.event`` is the event without ``detail``; ``aws.events.event.json`` the whole event.
    """
    values: dict[str, tuple[bool, Any]] = {}
    for key, path in (transformer.get("InputPathsMap") or {}).items():
        values[key] = json_path(event, path)
    values["aws.events.rule-arn"] = (True, rule_arn)
    values["aws.events.rule-name"] = (True, rule_name)
    values["aws.events.event.ingestion-time"] = (True, event.get("time"))
    values["aws.events.event"] = (True, {k: v for k, v in event.items() if k != "detail"})
    values["aws.events.event.json"] = (True, event)
    template = transformer["InputTemplate"]
    is_json = template.lstrip()[:1] in ("{", "[")

    def render(m: re.Match) -> str:
        if m.group(1) not in values:
            return m.group(0)
        found, value = values[m.group(1)]
        if is_json and _quoted_at(template, m.start()):
            if not found or value is None:
                return ""
            return json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value).replace('"', '\\"')
        if is_json:
            return json.dumps(value) if found else "null"
        if not found or value is None:
            return "null" if found else ""
        return value if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(render, template)


def target_input(target: dict, event: dict, rule_arn: str, rule_name: str) -> str:
    """The text the target receives: Input as given, InputPath's value, the transformer's output,
    or else the whole event."""
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        found, value = json_path(event, target["InputPath"])
        return json.dumps(value if found else None)
    if target.get("InputTransformer"):
        return transform(target["InputTransformer"], event, rule_arn, rule_name)
    return json.dumps(event)


def event_millis(event: dict) -> int:
    """The event's ingestion time in epoch milliseconds (what ``Date.now()`` gives the seeds)."""
    text = event.get("time") or "1970-01-01T00:00:00Z"
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def execution_name(template: str, event: dict) -> str:
    """Fill an ExecutionName template from the event.

    ``{detail.bookingId}`` is a path into the event; a bare ``{bookingId}`` is looked up in
    ``detail`` first, then at the top of the event (``{id}``, ``{source}``); ``{timestamp}`` is the
    ingestion time in epoch milliseconds. Every field comes from the event, never from the clock,
    so a retried delivery names the same execution and starting it again is idempotent.
    """
    def field(m: re.Match) -> str:
        key = m.group(1).strip()
        if key == "timestamp":
            return str(event_millis(event))
        detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
        if "." in key:
            found, value = json_path(event, "$." + key)
        elif key in detail:
            found, value = True, detail[key]
        else:
            found, value = key in event, event.get(key)
        if not found or value is None or isinstance(value, (dict, list)):
            raise DeliveryFailed("InvalidParameter", f"ExecutionName template field {{{key}}} has no "
                                                     "value in the event.", retryable=False)
        return value if isinstance(value, str) else json.dumps(value)

    return _NAME_FIELD.sub(field, template)


# -- delivery ------------------------------------------------------------------------------------

def _handler_for(bus, arn: str):
    registry = bus.handlers
    fn = registry.get(arn)
    if fn is None and ":function:" in arn:
        fn = registry.get(arn.split(":function:", 1)[1].split(":", 1)[0])
    if fn is None:
        fn = registry.get(arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1])
    if fn is None:
        entry = bus.engine.resources.lookup("lambda", arn, None)
        fn = entry[0] if entry else None
    return fn


def deliver(bus, delivery: dict) -> None:
    """Carry one event to one target; raise `DeliveryFailed` when it does not arrive."""
    target, event = delivery["Target"], delivery["Event"]
    arn = target["Arn"]
    if ":stateMachine:" in arn:
        _start_execution(bus, target, event, delivery)
    elif ":event-bus/" in arn:
        name = arn.split(":event-bus/", 1)[1]
        if not bus.bus_exists(name):
            raise DeliveryFailed("ResourceNotFoundException", f"Event bus {name} does not exist.", False)
        bus.forward(name, dict(event), depth=delivery.get("Depth", 0) + 1)
    else:
        fn = _handler_for(bus, arn)
        if fn is None:
            raise DeliveryFailed("ResourceNotFoundException", f"No handler is registered for {arn}.", False)
        text = target_input(target, event, delivery["RuleArn"], delivery["RuleName"])
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        try:
            fn(payload)
        except Exception as exc:  # noqa: BLE001 - a failing handler is a failed delivery
            raise DeliveryFailed(getattr(exc, "error", None) or type(exc).__name__, str(exc)) from exc


def _start_execution(bus, target: dict, event: dict, delivery: dict) -> None:
    text = target_input(target, event, delivery["RuleArn"], delivery["RuleName"])
    if target.get("ExecutionName"):
        name = execution_name(target["ExecutionName"], event)
    else:  # AWS names it at random; a name fixed by (event, target) makes redelivery idempotent
        digest = hashlib.sha1(f"{event.get('id')}#{delivery['RuleArn']}#{target['Id']}".encode()).digest()
        name = str(uuid.UUID(bytes=digest[:16], version=4))
    client = bus.engine.client()
    try:
        client.start_execution(stateMachineArn=target["Arn"], name=name, input=text)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "ExecutionAlreadyExists" and _same_execution(bus, target["Arn"], name, text):
            return
        raise DeliveryFailed(code, exc.response["Error"].get("Message", ""), code not in _PERMANENT) from exc


def _same_execution(bus, sm_arn: str, name: str, text: str) -> bool:
    """An execution of this name already started with this input: an earlier attempt arrived."""
    base = sm_arn.split(":stateMachine:", 1)[1].split(":")[0]
    prefix = sm_arn.split(":stateMachine:", 1)[0]
    row = bus.engine.store.get_execution(f"{prefix}:execution:{base}:{name}")
    return row is not None and json.loads(row["input"]) == json.loads(text)


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based): 1, 2, 4, ... capped at five minutes."""
    return float(min(2 ** (attempt - 1), BACKOFF_CAP_SECONDS))


def iso(t: datetime) -> str:
    return t.isoformat()


def new_delivery(bus, rule_arn: str, rule_name: str, target: dict, event: dict, now: datetime,
                 depth: int = 0) -> dict:
    """The record of one event on its way to one target, already claimed by this worker (see
    `claim_delivery`). Its id is fixed by (event, replay, rule, target), so a fire or an event
    accepted twice is one delivery."""
    did = f"{event.get('id')}#{event.get('replay-name', '')}#{rule_arn}#{target['Id']}"
    return {"Id": did, "EventBusName": bus.name, "RuleArn": rule_arn, "RuleName": rule_name,
            "Target": target, "Event": event, "Accepted": iso(now), "Due": iso(_claim_end(bus, now)),
            "Owner": bus.engine.worker_id, "Retries": 0, "Depth": depth}


def _claim_end(bus, now: datetime) -> datetime:
    return now + timedelta(seconds=bus.engine.lease_seconds)


def _held(delivery: dict) -> dict:
    """The fields that say who holds a stored delivery: a write expecting them fails once another
    worker has claimed it."""
    return {"Due": delivery["Due"], "Owner": delivery.get("Owner")}


def claim_delivery(bus, delivery: dict, now: datetime) -> dict | None:
    """Take a due delivery for this worker until ``now`` plus the engine's lease, or None when
    another worker took it first. While the claim lasts its ``Due`` is the claim's end, so no
    other worker attempts it (a delivery in flight is never retried beside itself); when its
    worker dies the claim runs out and another retries it: at least once, one at a time."""
    claimed = dict(delivery, Due=iso(_claim_end(bus, now)), Owner=bus.engine.worker_id)
    write = RecordWrite(DELIVERY, delivery["Id"], claimed, expect=_held(delivery))
    return claimed if bus.engine.store.write_records([write]) else None


def attempt(bus, delivery: dict, now: datetime) -> bool:
    """Try a delivery this worker holds (see `claim_delivery`) once. On success or dead-lettering
    its record goes; on a retryable failure it is stored again, unclaimed, with its next due time.
    Each of these writes expects the claim still to be this worker's. Returns whether it arrived."""
    store = bus.engine.store
    held = _held(delivery)
    try:
        deliver(bus, delivery)
    except DeliveryFailed as exc:
        policy = {**DEFAULT_RETRY, **(delivery["Target"].get("RetryPolicy") or {})}
        age = (now - datetime.fromisoformat(delivery["Accepted"])).total_seconds()
        retries = delivery.get("Retries", 0)
        condition = None
        if not exc.retryable:
            condition = None
        elif retries >= policy["MaximumRetryAttempts"]:
            condition = "MaximumRetryAttemptsExhausted"
        elif age + backoff(retries + 1) > policy["MaximumEventAgeInSeconds"]:
            condition = "MaximumEventAgeExceeded"
        else:
            delivery = dict(delivery, Retries=retries + 1, Due=iso(now + timedelta(seconds=backoff(retries + 1))),
                            Owner=None, LastError={"Code": exc.code, "Message": exc.message})
            store.write_records([RecordWrite(DELIVERY, delivery["Id"], delivery, expect=held)])
            return False
        dead = {"Id": delivery["Id"], "EventBusName": delivery["EventBusName"], "RuleArn": delivery["RuleArn"],
                "TargetId": delivery["Target"]["Id"], "TargetArn": delivery["Target"]["Arn"],
                "DeadLetterArn": (delivery["Target"].get("DeadLetterConfig") or {}).get("Arn"),
                "ErrorCode": exc.code, "ErrorMessage": exc.message, "RetryAttempts": retries,
                "ExhaustedRetryCondition": condition, "Event": delivery["Event"], "Time": iso(now)}
        store.write_records([RecordWrite(DELIVERY, delivery["Id"], None, expect=held),
                             RecordWrite(DEAD_LETTER, delivery["Id"], dead)])
        return False
    store.write_records([RecordWrite(DELIVERY, delivery["Id"], None, expect=held)])
    return True
