"""Nested executions: ``arn:aws:states:::states:startExecution`` and its ``.sync``, ``.sync:2`` and
``.waitForTaskToken`` forms.

The child is an ordinary execution of the same engine, started with a link to its parent
(execution, frame, wait number). When a ``.sync`` child ends, its end commit carries a
``child_done`` message to the parent, so the parent resumes exactly once even across a crash.
Stopping or failing a parent stops its running ``.sync`` children, as AWS does.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC
from typing import Any

from statelang.interpreter.commands import TaskOutcome
from statelang.runtime.storage import Message, MessageKind

PREFIX = "arn:aws:states:::states:startExecution"


def install(engine) -> None:
    """Register the startExecution integration on `engine` (idempotent)."""
    engine.integrations[PREFIX] = _start_execution
    if _on_end not in engine.end_hooks:
        engine.end_hooks.append(_on_end)


def _definition_for(engine, arn: str) -> tuple[str | dict, str] | None:
    """(definition, state machine ARN) for a state machine, version or alias ARN, or a name."""
    sms = engine.state_machines
    name = arn.split(":stateMachine:")[-1].split(":")[0] if ":stateMachine:" in arn else arn
    for key in (arn, name):
        if key in sms:
            sm_arn = arn if arn.startswith("arn:") else \
                f"arn:aws:states:{engine.region}:{engine.account_id}:stateMachine:{name}"
            return sms[key], sm_arn
    store = engine.store
    for kind in ("state_machine", "state_machine_version"):
        rec = store.get_record(kind, arn)
        if rec is not None:
            return rec["definition"], arn
    alias = store.get_record("state_machine_alias", arn)
    if alias is not None:
        best = max(alias["routingConfiguration"], key=lambda r: r["weight"])
        rec = store.get_record("state_machine_version", best["stateMachineVersionArn"])
        if rec is not None:
            return rec["definition"], arn
    return None


def _start_execution(engine, run, fid: str, seq: int, spec: dict):
    args = spec["input"] if isinstance(spec["input"], dict) else {}
    target = args.get("StateMachineArn")
    if not target:
        return TaskOutcome.failed("States.Runtime", "The field 'StateMachineArn' is required by states:startExecution.")
    found = _definition_for(engine, target)
    if found is None:
        return TaskOutcome.failed("StepFunctions.StateMachineDoesNotExistException",
                f"State Machine Does Not Exist: '{target}' (Service: AWSStepFunctions; Status Code: 400; "
                f"Error Code: StateMachineDoesNotExist)")
    definition, sm_arn = found
    child_input = args.get("Input")
    if child_input is None:   # StartExecution's input defaults to {}; null is no input at all
        child_input = {}
    if isinstance(child_input, str):
        try:
            child_input = json.loads(child_input)
        except ValueError:
            return TaskOutcome.failed("StepFunctions.InvalidExecutionInputException",
                    "Invalid execution input: the Input string is not JSON")
    # A name fixed by (parent, frame, wait): a crash's re-run or a replay names the child the same.
    digest = hashlib.sha1(f"{run.arn}#{fid}#{seq}".encode()).digest()
    name = args.get("Name") or str(uuid.UUID(bytes=digest[:16], version=4))
    base = sm_arn.split(":stateMachine:")[1].split(":")[0]
    child_arn = f"arn:aws:states:{engine.region}:{engine.account_id}:execution:{base}:{name}"
    resource = spec["resource"]
    mode = "sync2" if resource.endswith(".sync:2") else "sync" if resource.endswith(".sync") else \
        "token" if resource.endswith(".waitForTaskToken") else "start"
    from statelang.runtime.storage import ExecutionAlreadyExistsError
    try:
        child = engine.start(definition, child_input, arn=child_arn, name=name, state_machine_arn=sm_arn,
                             role_arn=run.role_arn, extra={"parent": {
                                 "executionArn": run.arn, "frame": fid, "seq": seq, "mode": mode}})
    except ExecutionAlreadyExistsError:
        return TaskOutcome.failed("StepFunctions.ExecutionAlreadyExistsException",
                f"Execution Already Exists: '{child_arn}'")
    started = {"ExecutionArn": child_arn, "StartDate": child.start.astimezone(UTC).isoformat()}
    if mode == "start":
        return TaskOutcome.succeeded(started)
    return TaskOutcome.submitted(started)


def describe(row: dict, mode: str) -> dict:
    """The DescribeExecution shape AWS returns as a .sync task's output."""
    out: dict[str, Any] = {
        "ExecutionArn": row["executionArn"], "StateMachineArn": row["stateMachineArn"], "Name": row["name"],
        "Status": row["status"], "StartDate": _ms(row.get("startDate")), "StopDate": _ms(row.get("stopDate")),
        "Input": _input_text(row.get("input")), "InputDetails": {"Included": True}}
    if row["status"] == "SUCCEEDED":
        output = row.get("output")
        out["Output"] = json.loads(output) if mode == "sync2" and output is not None else output
        out["OutputDetails"] = {"Included": True}
    if mode == "sync2":
        out["Input"] = json.loads(out["Input"])
    if row.get("error") is not None:
        out["Error"] = row["error"]
    if row.get("cause") is not None:
        out["Cause"] = row["cause"]
    return out


def _input_text(text: str | None) -> str:
    """The child's input as AWS reports it: compact JSON text, and '{}' (StartExecution's default
    input) when there was none — never 'null'."""
    if text is None:
        return "{}"
    value = json.loads(text)
    return "{}" if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _ms(t) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def _on_end(engine, run, commit) -> None:
    """Called inside the child's end commit: tell a .sync parent; stop .sync children."""
    parent = getattr(run, "parent", None)
    if parent and parent.get("mode") in ("sync", "sync2"):
        # The row may not exist yet: an eager child can end inside the commit that creates it.
        row = {"executionArn": run.arn, "stateMachineArn": run.state_machine_arn, "name": run.name,
               "startDate": run.start, "input": json.dumps(run.input, separators=(",", ":")),
               **(engine.store.get_execution(run.arn) or {}), **commit.execution}
        desc = describe(row, parent["mode"])
        if run.status == "SUCCEEDED":
            payload = {"ok": True, "output": desc}
        else:
            payload = {"ok": False, "error": "States.TaskFailed", "cause": json.dumps(desc, separators=(",", ":"))}
        commit.add_messages.append(Message(parent["executionArn"], MessageKind.CHILD_DONE, run.stop_time,
                                           parent["frame"], parent["seq"], payload))
    if run.status in ("ABORTED", "FAILED", "TIMED_OUT"):
        for child in engine.store.list_executions(None, "RUNNING"):
            p = child.get("parent") or {}
            if p.get("executionArn") == run.arn and p.get("mode") in ("sync", "sync2"):
                engine.store.add_message(Message(child["executionArn"], MessageKind.STOP, run.stop_time, payload={
                    "error": "States.Aborted", "cause": f"The parent execution {run.arn} stopped."}))
