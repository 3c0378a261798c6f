"""TestState: one state, run alone, answered in the API's shape.

Sources: the AWS Step Functions API reference, TestState (request: definition, roleArn, input,
inspectionLevel, revealSecrets, variables, stateName, mock, context, stateConfiguration; response:
output, error, cause, inspectionData, nextState, status SUCCEEDED|FAILED|RETRIABLE|CAUGHT_ERROR)
and InspectionData / InspectionErrorDetails, as botocore's service model carries them; the
developer guide "Using TestState API to test a state" for the inspection levels.
"""

from __future__ import annotations

import json
import re

import pytest

from statelang.api.teststate import TestStateError
from statelang.api.teststate import test_state as run_test_state

TASK = {
    "Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
    "InputPath": "$.order",
    "Parameters": {"TableName": "orders", "Key": {"id": {"S.$": "$.id"}}},
    "ResultSelector": {"status.$": "$.Item.status.S"},
    "ResultPath": "$.lookup",
    "Next": "Ship",
}
ITEM = {"Item": {"status": {"S": "paid"}}}
INPUT = {"order": {"id": "o-1"}, "keep": True}


def _get_item(args):
    assert args == {"TableName": "orders", "Key": {"id": {"S": "o-1"}}}
    return ITEM


def test_info_gives_output_next_state_and_status_only():
    # INFO "Shows the final state output"; every level gives status and nextState. JSON values
    # travel as JSON text (the response's output is SensitiveData, a string).
    r = run_test_state(TASK, INPUT, handlers={"arn:aws:states:::dynamodb:getItem": _get_item})
    assert r == {"status": "SUCCEEDED", "nextState": "Ship",
                 "output": json.dumps({**INPUT, "lookup": {"status": "paid"}}, separators=(",", ":"))}


def test_debug_shows_each_data_processing_step():
    # DEBUG "Shows the final state output along with the input and output data processing result":
    # input, afterInputPath, afterParameters, result, afterResultSelector, afterResultPath.
    r = run_test_state(json.dumps(TASK), json.dumps(INPUT), inspection_level="DEBUG",
                       handlers={"arn:aws:states:::dynamodb:getItem": _get_item})
    data = {k: json.loads(v) for k, v in r["inspectionData"].items()}
    assert data == {
        "input": INPUT,
        "afterInputPath": {"id": "o-1"},
        "afterParameters": {"TableName": "orders", "Key": {"id": {"S": "o-1"}}},
        "result": ITEM,
        "afterResultSelector": {"status": "paid"},
        "afterResultPath": {**INPUT, "lookup": {"status": "paid"}},
    }


def test_pass_state_with_variables_and_assign():
    # variables: "JSON object literal that sets variables used in the state under test";
    # inspectionData.variables: "the set of workflow variables after execution of the state",
    # including "variables assigned in the state and variables set up as test state input".
    state = {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($base, $.n)"},
             "Assign": {"last.$": "$.sum"}, "End": True}
    r = run_test_state(state, {"n": 2}, variables={"base": 40}, inspection_level="DEBUG")
    assert r["status"] == "SUCCEEDED" and "nextState" not in r
    assert json.loads(r["output"]) == {"sum": 42}
    assert json.loads(r["inspectionData"]["variables"]) == {"base": 40, "last": 42}


def test_choice_next_state_is_the_matched_rule():
    state = {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}],
             "Default": "Small"}
    assert run_test_state(state, {"n": 5})["nextState"] == "Big"
    assert run_test_state(state, {"n": 0})["nextState"] == "Small"


def test_fail_state_fails_with_its_error_and_cause():
    r = run_test_state({"Type": "Fail", "Error": "Oops", "Cause": "bad"}, {})
    assert r == {"status": "FAILED", "error": "Oops", "cause": "bad"}


def _boom(args):
    from statelang import HandlerError
    raise HandlerError("Boom", "it broke")


RETRYING = {"Type": "Task", "Resource": "boom", "End": True,
            "Retry": [{"ErrorEquals": ["Other"]}, {"ErrorEquals": ["Boom"], "IntervalSeconds": 2,
                                                   "MaxAttempts": 2, "BackoffRate": 3}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Recover"}]}


def test_a_matching_retrier_makes_the_test_retriable():
    # RETRIABLE with errorDetails.retryIndex ("The array index of the Retry which handled the
    # exception") and retryBackoffIntervalSeconds; a retry re-enters the same state.
    r = run_test_state(RETRYING, {"a": 1}, handlers={"boom": _boom}, inspection_level="DEBUG")
    assert (r["status"], r["error"], r["cause"], r["nextState"]) == ("RETRIABLE", "Boom", "it broke", "TestState")
    assert r["inspectionData"]["errorDetails"] == {"retryIndex": 1, "retryBackoffIntervalSeconds": 2}


def test_retries_used_up_fall_to_the_catcher():
    # stateConfiguration.retrierRetryCount: "The number of retry attempts that have occurred for
    # the state's Retry that applies to the mocked error"; once MaxAttempts are spent, Catch
    # decides: CAUGHT_ERROR, the catcher's Next and catchIndex.
    r = run_test_state(RETRYING, {"a": 1}, handlers={"boom": _boom}, inspection_level="DEBUG",
                       state_configuration={"retrierRetryCount": 2})
    assert (r["status"], r["nextState"]) == ("CAUGHT_ERROR", "Recover")
    assert json.loads(r["output"]) == {"a": 1, "err": {"Error": "Boom", "Cause": "it broke"}}
    assert r["inspectionData"]["errorDetails"] == {"catchIndex": 0}


def test_an_unhandled_error_fails():
    r = run_test_state({"Type": "Task", "Resource": "boom", "End": True}, {}, handlers={"boom": _boom})
    assert r == {"status": "FAILED", "error": "Boom", "cause": "it broke"}


def test_state_name_picks_a_state_of_a_whole_machine():
    # stateName: "If this field is specified, the definition must contain a fully-formed state
    # machine definition."
    machine = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
                                          "B": {"Type": "Pass", "Result": {"b": 1}, "Next": "C"},
                                          "C": {"Type": "Succeed"}}}
    r = run_test_state(machine, {}, state_name="B")
    assert r == {"status": "SUCCEEDED", "nextState": "C", "output": '{"b":1}'}
    with pytest.raises(TestStateError, match="no state named 'Z'"):
        run_test_state(machine, {}, state_name="Z")


def test_mock_result_and_error_output():
    # mock.result: "the mocked result of the state invocation"; mock.errorOutput: error and cause.
    task = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl": "q", "MessageBody.$": "$"}, "ResultPath": "$.sent", "Next": "Done"}
    r = run_test_state(task, {"m": 1}, mock={"result": json.dumps({"MessageId": "m-1"})})
    assert json.loads(r["output"]) == {"m": 1, "sent": {"MessageId": "m-1"}}
    r = run_test_state(task, {}, mock={"errorOutput": {"error": "SQS.Throttled", "cause": "slow down"}})
    assert r == {"status": "FAILED", "error": "SQS.Throttled", "cause": "slow down"}


def test_rejected_requests():
    # "A mock can only be specified for Task, Map, or Parallel states"; context "may only be
    # specified if a mock is specified in the same request".
    with pytest.raises(TestStateError, match="ValidationException"):
        run_test_state({"Type": "Pass", "End": True}, {}, mock={"result": "{}"})
    with pytest.raises(TestStateError, match="ValidationException"):
        run_test_state({"Type": "Pass", "End": True}, {}, context={})
    with pytest.raises(TestStateError, match="InvalidDefinition"):
        run_test_state("{not json", {})
    with pytest.raises(TestStateError, match="inspectionLevel"):
        run_test_state({"Type": "Pass", "End": True}, {}, inspection_level="ALL")


@pytest.mark.parametrize("definition, message", [
    ("[1]", "must be a JSON object .* not an array"),
    ('"S"', "not a string"),
    ({"StartAt": "S", "States": {"S": [1]}}, "the state 'S' must be a JSON object, not an array"),
])
def test_a_state_name_in_a_definition_of_the_wrong_shape_is_invalid(definition, message):
    """Found by the server's fuzz test: with stateName, a definition that is no object (or names a
    state that is no object) was an AttributeError, a 500 over HTTP; it is InvalidDefinition."""
    with pytest.raises(TestStateError, match="InvalidDefinition") as raised:
        run_test_state(definition, {}, state_name="S")
    assert re.search(message, str(raised.value))


@pytest.mark.parametrize("definition", [
    {"StartAt": "A", "States": [1]},
    {"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": "x", "End": True}}},
    {"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": [1, {"States": 2}], "End": True}}},
    {"StartAt": "A", "States": {"A": {"Type": "Map", "ItemProcessor": [], "End": True}}},
])
def test_a_state_name_missing_from_a_malformed_machine_is_a_clear_error(definition):
    with pytest.raises(TestStateError, match="no state named 'S'"):
        run_test_state(definition, {}, state_name="S")
