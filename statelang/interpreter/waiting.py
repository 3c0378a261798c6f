"""What the step words as AWS does: a Wait's unusable seconds or timestamp, the EvaluationFailed
event of a JSONata expression that failed, and Lambda's LogResult for LogType Tail.

Kept apart from the step so that the interpreter stays a few lines per case and the texts, which
come from AWS's recorded answers, live in one place.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from statelang.interpreter.events import dump
from statelang.language import errors as E
from statelang.language.compiled_state import CState
from statelang.language.errors import StatesError
from statelang.language.jsontext import json_type
from statelang.language.timestamps import parse_timestamp


def wait_problem(how: str, value: Any) -> str | None:
    """Why a Wait's seconds or timestamp cannot be used: "long" (not an integer), "negative",
    "timestamp" (not an ISO-8601 date-time with an offset), or None."""
    if how == "seconds":
        if isinstance(value, bool) or not isinstance(value, int):
            return "long"
        return "negative" if value < 0 else None
    return None if isinstance(value, str) and parse_timestamp(value) is not None else "timestamp"


def wait_error(st: CState, how: str, value: Any, problem: str) -> StatesError:
    """AWS's texts (LocalStack's AWS-recorded test_wait.snapshot.json and its Wait implementation):
    ``The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5``, ``... references a
    negative value: $.s == -1``, ``The TimestampPath parameter does not reference a valid ISO-8601
    extended offset date-time format string: $.t == <value>`` (the value unquoted). A JSONata
    Seconds or Timestamp fails with States.QueryEvaluationError instead."""
    shown = value if isinstance(value, str) else dump(value)
    field = "Seconds" if how == "seconds" else "Timestamp"
    if st.query_language == "JSONata":
        from statelang.language.jsonata import expression_text
        expected = {"long": "integer", "negative": "non-negative integer", "timestamp": "timestamp"}[problem]
        return StatesError(E.QUERY_EVALUATION_ERROR,
                           f"The JSONata expression '{expression_text(st.definition.get(field))}' specified for "
                           f"the field '{field}' returned an unexpected result type. Expected '{expected}', "
                           f"but was '{json_type(value)}' for value: {dump(value)}")
    where = f"{st.definition.get(field + 'Path', '$')} == {shown}"
    if problem == "long":
        return StatesError(E.RUNTIME, f"The SecondsPath parameter cannot be parsed as a long value: {where}")
    if problem == "negative":
        return StatesError(E.RUNTIME, f"The SecondsPath parameter references a negative value: {where}")
    return StatesError(E.RUNTIME, "The TimestampPath parameter does not reference a valid ISO-8601 extended "
                                  f"offset date-time format string: {where}")


_FIELD = re.compile(r"specified for the field '([^']+)'|for the field '([^']+)'")


def evaluation_failed(error: str, cause: str | None, state: str) -> dict:
    """evaluationFailedEventDetails (API reference, EvaluationFailedEventDetails: error, cause,
    location — the field whose expression failed, e.g. "Items" — and state)."""
    details: dict[str, Any] = {"error": error}
    if cause is not None:
        details["cause"] = cause
        m = _FIELD.search(cause)
        if m:
            details["location"] = m.group(1) or m.group(2)
    details["state"] = state
    return details


def lambda_log_tail(request_id: str) -> str:
    """Invoke's LogResult for LogType Tail: the base64 of the invocation's last log lines (Lambda
    Invoke API reference). The function's own prints are not captured here, only Lambda's
    START/END/REPORT lines."""
    text = (f"START RequestId: {request_id} Version: $LATEST\nEND RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: 1.00 ms\tBilled Duration: 1 ms\t"
            f"Memory Size: 128 MB\tMax Memory Used: 64 MB\t\n")
    return base64.b64encode(text.encode()).decode()
