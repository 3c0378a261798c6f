"""Nested executions: arn:aws:states:::states:startExecution and its .sync, .sync:2 and
.waitForTaskToken forms (AWS developer guide, "Start a new AWS Step Functions state machine
execution" service integration page)."""

from __future__ import annotations

import json

import pytest

import statelang

ACCOUNT, REGION = "123456789012", "us-east-1"
CHILD_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:child"

CHILD = {"StartAt": "Wait", "States": {
    "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Echo"},
    "Echo": {"Type": "Pass", "Parameters": {"got.$": "$.x", "startedBy.$": "$.AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"},
             "End": True}}}
FAILING = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "ChildError", "Cause": "the child failed"}}}


def parent(resource: str, target: str = CHILD_ARN, **task) -> dict:
    return {"StartAt": "Start", "States": {"Start": {
        "Type": "Task", "Resource": resource, "End": True,
        "Parameters": {"StateMachineArn": target, "Input": {
            "x": 7, "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"}}, **task}}}


def run(definition, **kw):
    return statelang.run(definition, {}, state_machines={"child": CHILD, "failing": FAILING}, clock="virtual", **kw)


def test_sync2_returns_the_child_description_with_parsed_output():
    # .sync:2: Output (and Input) are JSON objects, not strings.
    ex = run(parent("arn:aws:states:::states:startExecution.sync:2"))
    assert ex.status == "SUCCEEDED", (ex.error, ex.cause)
    out = ex.output
    assert out["Status"] == "SUCCEEDED" and out["StateMachineArn"] == CHILD_ARN
    assert out["Output"] == {"got": 7, "startedBy": ex.execution_arn}
    assert out["Input"]["x"] == 7
    assert out["ExecutionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:execution:child:")
    assert out["StopDate"] - out["StartDate"] == 30_000   # the child's 30 s Wait, in epoch ms
    types = [e["type"] for e in ex.history]
    assert types[:6] == ["ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSubmitted",
                         "TaskSucceeded"]


def test_sync_returns_output_as_json_text():
    # .sync (version 1): Output is the child's output as a string.
    ex = run(parent("arn:aws:states:::states:startExecution.sync"))
    assert ex.status == "SUCCEEDED"
    assert isinstance(ex.output["Output"], str) and json.loads(ex.output["Output"])["got"] == 7


def test_fire_and_forget_returns_the_start_response():
    ex = run(parent("arn:aws:states:::states:startExecution"))
    assert ex.status == "SUCCEEDED"
    assert set(ex.output) == {"ExecutionArn", "StartDate"}


def test_a_failed_child_fails_the_task_with_states_taskfailed_and_its_description_as_cause():
    ex = run(parent("arn:aws:states:::states:startExecution.sync:2", "failing"))
    assert ex.status == "FAILED" and ex.error == "States.TaskFailed"
    cause = json.loads(ex.cause)
    assert cause["Status"] == "FAILED" and cause["Error"] == "ChildError" and cause["Cause"] == "the child failed"


def test_a_failed_child_can_be_caught():
    definition = parent("arn:aws:states:::states:startExecution.sync", "failing",
                        Catch=[{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.err", "Next": "Handled"}])
    del definition["States"]["Start"]["End"]
    definition["States"]["Start"]["Next"] = "Handled"
    definition["States"]["Handled"] = {"Type": "Pass", "End": True}
    ex = run(definition)
    assert ex.status == "SUCCEEDED" and ex.output["err"]["Error"] == "States.TaskFailed"


def test_unknown_state_machine_is_a_catchable_task_failure():
    ex = run(parent("arn:aws:states:::states:startExecution.sync",
                    f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:nope"))
    assert ex.status == "FAILED" and ex.error == "StepFunctions.StateMachineDoesNotExistException"


def test_wait_for_task_token_child_answers_its_parent():
    # The child gets the parent's token in its input and answers it with SendTaskSuccess.
    child = {"StartAt": "Answer", "States": {"Answer": {
        "Type": "Task", "Resource": "answer", "End": True,
        "Parameters": {"token.$": "$.token"}}}}
    engine = statelang.Engine(db="memory", clock="virtual", state_machines={"child": child})
    engine.resources.register("answer", lambda p: engine.send_task_result(p["token"], True, {"answered": 1}))
    definition = {"StartAt": "Start", "States": {"Start": {
        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.waitForTaskToken", "End": True,
        "Parameters": {"StateMachineArn": CHILD_ARN, "Input": {"token.$": "$$.Task.Token"}}}}}
    ex = statelang.run(definition, {}, engine=engine)
    assert ex.status == "SUCCEEDED" and ex.output == {"answered": 1}


@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_stopping_a_parent_stops_its_sync_children(db, tmp_path):
    url = "memory" if db == "memory" else f"sqlite:///{tmp_path}/n.db"
    engine = statelang.Engine(db=url, clock="virtual", state_machines={"child": CHILD})
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:parent:p1"
    engine.start(parent("arn:aws:states:::states:startExecution.sync:2"), {}, arn=arn, name="p1",
                 state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:parent")
    settle(engine)                                # the child is started and waits out its 30 s
    children = [r for r in engine.store.list_executions() if ":execution:child:" in r["executionArn"]]
    assert [c["status"] for c in children] == ["RUNNING"]
    engine.stop_execution(arn, "Stopped", "by a test")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "ABORTED"
    assert engine.store.get_execution(children[0]["executionArn"])["status"] == "ABORTED"


def settle(engine) -> None:
    """Run what is due now without moving the virtual clock."""
    while arns := engine.store.claim(engine.worker_id, engine.clock.now(), 60, 64):
        for arn in arns:
            engine.process(arn)


def test_nested_runs_replay():
    ex = run(parent("arn:aws:states:::states:startExecution.sync:2"))
    from statelang.history.replay import export_document
    doc = export_document({"executionArn": ex.execution_arn, "input": "{}",
                           "definition": json.dumps(parent("arn:aws:states:::states:startExecution.sync:2"))},
                          ex.history)
    assert statelang.replay(doc).ok
