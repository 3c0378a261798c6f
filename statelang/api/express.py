"""Synchronous Express executions: StartSyncExecution.

An Express execution is answered in the same call that starts it, so it is run to its end on the
engine right away (on a virtual clock its waits take no time). AWS caps Express executions at five
minutes; the cap is put into the definition's TimeoutSeconds so that the engine itself times the
execution out at that instant, with the history a Standard timeout has.

Express workflows keep no execution history in the service: what survives is what the state
machine's loggingConfiguration sends to CloudWatch Logs — every event (ALL), error events (ERROR),
only the execution's own failure (FATAL) or nothing (OFF). The kept events are stored as the
record ``express-log`` of the execution ARN; the engine's own history rows are its working state.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

MAX_SECONDS = 300  # "Maximum duration: 5 minutes" (Standard vs. Express workflows)
LOG_RECORD = "express-log"
_FATAL = {"ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}


def logged_events(history: list[dict], logging_configuration: dict | None) -> list[dict]:
    """The events a log level lets through; without includeExecutionData, no input or output."""
    cfg = logging_configuration or {}
    level = cfg.get("level", "OFF")
    if level == "OFF":
        return []
    if level == "FATAL":
        kept = [e for e in history if e["type"] in _FATAL]
    elif level == "ERROR":
        kept = [e for e in history if e["type"] in _FATAL or e["type"].endswith(("Failed", "TimedOut", "Aborted"))]
    else:
        kept = list(history)
    if not cfg.get("includeExecutionData", False):
        kept = [_without_data(e) for e in kept]
    return kept


def _without_data(event: dict) -> dict:
    out = {}
    for k, v in event.items():
        if isinstance(v, dict) and k.endswith("EventDetails"):
            v = {dk: dv for dk, dv in v.items() if dk not in ("input", "output", "parameters")}
        out[k] = v
    return out


def start_sync_execution(engine, state_machine_arn: str, input: Any = None, name: str | None = None) -> dict:
    """Run an EXPRESS machine's execution to its end; StartSyncExecution's response."""
    machine = _machine(engine, state_machine_arn)
    text = "{}" if input is None else input if isinstance(input, str) else json.dumps(input)
    value = json.loads(text)
    name = name or str(uuid.uuid4())
    sm_name = machine["name"]
    base = machine["stateMachineArn"]
    prefix = base.split(":stateMachine:")[0]
    arn = f"{prefix}:express:{sm_name}:{name}:{uuid.uuid4()}"
    definition = json.loads(machine["definition"]) if isinstance(machine["definition"], str) \
        else dict(machine["definition"])
    definition["TimeoutSeconds"] = min(definition.get("TimeoutSeconds", MAX_SECONDS), MAX_SECONDS)
    engine.start(definition, value, arn=arn, name=name, state_machine_arn=base,
                 role_arn=machine.get("roleArn", ""))
    row = engine.wait(arn)
    history = list(engine.store.history(arn))
    engine.store.put_record(LOG_RECORD, arn, {"executionArn": arn,
                                               "events": logged_events(history, machine.get("loggingConfiguration"))})
    status = row["status"]
    start, stop = _date(row.get("startDate")), _date(row.get("stopDate"))
    out: dict[str, Any] = {"executionArn": arn, "stateMachineArn": base, "name": name,
                           "startDate": start, "stopDate": stop, "status": status,
                           "input": text, "inputDetails": {"included": True}}
    if status == "SUCCEEDED":
        out["output"] = row.get("output")
        out["outputDetails"] = {"included": True}
    else:
        if row.get("error") is not None:
            out["error"] = row["error"]
        if row.get("cause") is not None:
            out["cause"] = row["cause"]
    ms = max(0, int((stop - start).total_seconds() * 1000)) if start and stop else 0
    # Express bills per 100 ms (minimum 100) at 64 MB.
    out["billingDetails"] = {"billedMemoryUsedInMB": 64,
                             "billedDurationInMilliseconds": max(100, -(-ms // 100) * 100)}
    return out


def _machine(engine, arn: str) -> dict:
    """The state machine as DescribeStateMachine shows it; StartSyncExecution is for EXPRESS only."""
    described = engine.client().describe_state_machine(stateMachineArn=arn)
    if described.get("type") != "EXPRESS":
        from statelang.api.errors import error
        raise error("StateMachineTypeNotSupported",
                    "This operation is not supported by this type of state machine")
    return described


def _date(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
