"""Runtime behaviour pinned to what AWS does, one test (or a few) per deviation found.

Each test names its source: LocalStack's AWS-recorded snapshots (repository localstack/localstack,
tests/aws/services/stepfunctions/v2/**/*.snapshot.json), the AWS developer guide, or a report of
AWS's own answer quoted in an emulator's issue tracker.
"""

from __future__ import annotations

import json

import statelang


def run(definition: dict, input=None, handlers=None):
    return statelang.run(definition, {} if input is None else input, handlers=handlers, clock="virtual")


# -- 1: $$.State ---------------------------------------------------------------------------------
def test_state_context_of_a_pass_state_has_name_and_entered_time_only():
    """context_object/test_context_object.snapshot.json, test_input_path[$$]: a Pass state's
    ``$$.State`` is ``{"Name": "TestState", "EnteredTime": ...}`` — no RetryCount."""
    d = {"StartAt": "TestState", "States": {"TestState": {"Type": "Pass", "InputPath": "$$", "End": True}}}
    state = run(d, {"input-value": 0}).output["State"]
    assert list(state) == ["Name", "EnteredTime"] and state["Name"] == "TestState"


def test_state_context_of_a_task_keeps_retry_count():
    """Developer guide, 'Context object': State.RetryCount is the Task's retry count."""
    d = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "f", "Parameters": {"s.$": "$$.State"},
                                          "End": True}}}
    out = run(d, handlers={"f": lambda x: x}).output
    assert out["s"]["RetryCount"] == 0 and out["s"]["Name"] == "T"
