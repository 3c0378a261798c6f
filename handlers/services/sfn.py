"""The ``aws-sdk:sfn`` task-token calls a workflow makes on another execution of the same engine:
``sendTaskSuccess``, ``sendTaskFailure`` and ``sendTaskHeartbeat``.

One workflow signals another's wait this way (HourBank's escrow cancellation ends the request's
wait with ``HourBank.EscrowCancelled``). Parameters are the API's, in PascalCase as the AWS SDK
integrations take them (TaskToken, Output as JSON text, Error, Cause). Errors are named as AWS SDK
integrations name them, ``<Service>.<Error>Exception`` in Pascal case ("Learning to use AWS service
SDK integrations in Step Functions", AWS Step Functions Developer Guide): a token that was never
issued is ``Sfn.InvalidTokenException``, one whose task is over is ``Sfn.TaskTimedOutException``.
Answering a closed token again is what a crash's re-run does, so callers Catch that name.
"""

from __future__ import annotations

import json
from typing import Any

from statelang import HandlerError

BASE = "arn:aws:states:::aws-sdk:sfn:"


def _answered(status: str, token: str) -> dict:
    if status == "ok":
        return {}
    if status == "unknown":
        raise HandlerError("Sfn.InvalidTokenException", f"Invalid Token: '{token[:40]}'")
    raise HandlerError("Sfn.TaskTimedOutException", "Task Timed Out: the task of this token is over")


def _token(params: dict) -> str:
    token = params.get("TaskToken")
    if not isinstance(token, str) or not token:
        raise HandlerError("Sfn.ValidationException", "1 validation error detected: Value null at 'taskToken' "
                                                      "failed to satisfy constraint: Member must not be null")
    return token


def sfn_handlers(engine: Any) -> dict:
    """{integration ARN: handler} answering task tokens of `engine`'s executions."""

    def send_task_success(params: dict) -> dict:
        token = _token(params)
        output = params.get("Output", "{}")
        try:
            value = json.loads(output) if isinstance(output, str) else output
        except ValueError:
            raise HandlerError("Sfn.InvalidOutputException", "Invalid Output: not JSON text") from None
        return _answered(engine.send_task_result(token, True, output=value), token)

    def send_task_failure(params: dict) -> dict:
        token = _token(params)
        return _answered(engine.send_task_result(token, False, error=params.get("Error"),
                                                 cause=params.get("Cause")), token)

    def send_task_heartbeat(params: dict) -> dict:
        token = _token(params)
        return _answered(engine.send_task_heartbeat(token), token)

    return {BASE + "sendTaskSuccess": send_task_success, BASE + "sendTaskFailure": send_task_failure,
            BASE + "sendTaskHeartbeat": send_task_heartbeat}
