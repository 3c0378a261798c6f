"""TestState as an API operation: `engine.client().test_state` and the HTTP server's TestState.

Expected answers are AWS's, as recorded in LocalStack's
tests/aws/services/stepfunctions/v2/test_state/test_test_state_scenarios.snapshot.json
(BASE_PASS_STATE, BASE_FAIL_STATE, BASE_CHOICE_STATE, INFO and DEBUG levels).
"""

from __future__ import annotations

import json

import pytest

from statelang import Engine

ROLE = "arn:aws:iam::123456789012:role/r"
FN = "arn:aws:lambda:us-east-1:123456789012:function:Greet"
CHOICE = {"Type": "Choice", "Choices": [
    {"And": [{"Variable": "$.value", "NumericGreaterThanEquals": 20}, {"Variable": "$.value", "NumericLessThan": 30}],
     "Next": "ValueInTwenties"}], "Default": "DefaultState"}


@pytest.fixture
def client():
    return Engine(db="memory", clock="virtual", handlers={FN: lambda event: {"hello": event["name"]}}).client()


def test_pass_info_answers_output_and_status_only(client):
    """BASE_PASS_STATE at INFO: {"output": {"Value": "HelloWorld"}, "status": "SUCCEEDED"}."""
    out = client.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=ROLE,
                            input=json.dumps({"Value": "HelloWorld"}))
    out.pop("ResponseMetadata")
    assert out == {"output": '{"Value":"HelloWorld"}', "status": "SUCCEEDED"}


def test_fail_state_answers_error_and_cause(client):
    """BASE_FAIL_STATE: status FAILED with the state's Error and Cause; DEBUG adds input and afterInputPath."""
    fail = {"Type": "Fail", "Error": "SomeFailure", "Cause": "This state machines raises a 'SomeFailure' failure."}
    out = client.test_state(definition=json.dumps(fail), roleArn=ROLE, input='{"Value":"HelloWorld"}',
                            inspectionLevel="DEBUG")
    assert (out["status"], out["error"], out["cause"]) == ("FAILED", "SomeFailure", fail["Cause"])
    assert json.loads(out["inspectionData"]["input"]) == {"Value": "HelloWorld"}
    assert "output" not in out and "nextState" not in out


def test_choice_state_answers_next_state(client):
    """BASE_CHOICE_STATE: nextState "ValueInTwenties", output the input unchanged."""
    out = client.test_state(definition=json.dumps(CHOICE), roleArn=ROLE, input='{"type":"Private","value":22}')
    assert (out["status"], out["nextState"], json.loads(out["output"])) == \
        ("SUCCEEDED", "ValueInTwenties", {"type": "Private", "value": 22})


def test_task_calls_the_engines_own_handler_and_leaves_no_execution(client):
    """AWS's TestState invokes the real resource and creates no execution: here the engine's
    handlers answer, and the engine's store stays empty."""
    task = {"Type": "Task", "Resource": FN, "ResultPath": "$.greeting", "Next": "After"}
    out = client.test_state(definition=json.dumps(task), roleArn=ROLE, input='{"name":"Ada"}',
                            inspectionLevel="DEBUG")
    assert out["status"] == "SUCCEEDED" and out["nextState"] == "After"
    assert json.loads(out["output"]) == {"name": "Ada", "greeting": {"hello": "Ada"}}
    assert json.loads(out["inspectionData"]["result"]) == {"hello": "Ada"}
    assert client.engine.store.list_executions() == []


def test_bad_requests_are_the_apis_exceptions(client):
    with pytest.raises(client.exceptions.InvalidDefinition):
        client.test_state(definition="{not json", roleArn=ROLE)
    with pytest.raises(client.exceptions.InvalidArn):
        client.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn="not-a-role")
    with pytest.raises(client.exceptions.ValidationException):
        client.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=ROLE,
                          inspectionLevel="EVERYTHING")


def test_test_state_is_served_over_http(tmp_path):
    """Over the AWS JSON protocol (X-Amz-Target: AWSStepFunctions.TestState), as boto3 sends it.
    The SDKs put "sync-" before the host for TestState; inject_host_prefix=False keeps the
    loopback address (the prefixed Host header itself is the server's business)."""
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    from tests.test_server_api import ServeProcess
    srv = ServeProcess(tmp_path)
    try:
        sfn = boto3.client("stepfunctions", endpoint_url=srv.url, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x",
                           config=Config(inject_host_prefix=False))
        out = sfn.test_state(definition=json.dumps({"Type": "Pass", "End": True}), roleArn=ROLE,
                             input='{"Value":"HelloWorld"}')
        assert (out["status"], out["output"]) == ("SUCCEEDED", '{"Value":"HelloWorld"}')
        with pytest.raises(sfn.exceptions.InvalidDefinition):
            sfn.test_state(definition="{", roleArn=ROLE)
    finally:
        srv.stop()
