"""History events as AWS names them: types, detail keys, and the JSON text they carry."""

from __future__ import annotations

import re
from typing import Any

from statelang.language.errors import DATA_LIMIT_EXCEEDED, StatesError
from statelang.language.jsontext import dumps

MAX_PAYLOAD_BYTES = 262144  # 256 KiB, AWS's limit on a state's input/output and an execution's.

_CAMEL = re.compile(r"^([A-Z])")


def details_key(event_type: str) -> str:
    """'TaskStateEntered' -> 'stateEnteredEventDetails'; 'MapIterationStarted' ->
    'mapIterationStartedEventDetails' (AWS folds every ...StateEntered/Exited into one key)."""
    if event_type.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if event_type.endswith("StateExited"):
        return "stateExitedEventDetails"
    return event_type[0].lower() + event_type[1:] + "EventDetails"


def dump(value: Any) -> str:
    """Compact JSON as history events carry it (see `jsontext.dumps`)."""
    return dumps(value)


def dump_checked(value: Any, what: str) -> str:
    text = dumps(value)
    if len(text) * 4 > MAX_PAYLOAD_BYTES and len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise StatesError(
            DATA_LIMIT_EXCEEDED,
            f"The state/task '{what}' returned a result with a size exceeding the maximum number of "
            f"bytes service limit.")
    return text


def resource_parts(resource: str) -> tuple[str, str]:
    """'arn:aws:states:::lambda:invoke.waitForTaskToken' -> ('lambda', 'invoke.waitForTaskToken')."""
    if resource.startswith("arn:aws:states:::"):
        rest = resource[len("arn:aws:states:::"):]
        if rest.startswith("aws-sdk:"):
            svc, _, action = rest[len("aws-sdk:"):].partition(":")
            return "aws-sdk:" + svc, action
        svc, _, action = rest.partition(":")
        return svc, action
    return "lambda", resource


def event_prefix(state_type: str) -> str:
    return state_type  # Pass -> PassStateEntered, Map -> MapStateEntered, ...


TERMINAL_EVENTS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut",
                             "ExecutionAborted"})
