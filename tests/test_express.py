"""StartSyncExecution on EXPRESS state machines.

Sources: the API reference (StartSyncExecution: "not available for STANDARD workflows", returns
200 "even if your execution fails"; StartSyncExecutionOutput and SyncExecutionStatus
SUCCEEDED|FAILED|TIMED_OUT, BillingDetails, as botocore's model carries them), the developer
guide "Choosing workflow type" (Express: at most five minutes; execution history not kept by the
service, only sent to CloudWatch Logs) and "Log levels" (ALL, ERROR, FATAL, OFF).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from statelang import Engine
from statelang.api.express import LOG_RECORD, logged_events, start_sync_execution

ROLE = "arn:aws:iam::123456789012:role/statelang"
LOG = {"destinations": [{"cloudWatchLogsLogGroup": {
    "logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:g:*"}}]}


@pytest.fixture
def engine():
    return Engine(db="memory", clock="virtual", handlers={"double": lambda x: {"n": x["n"] * 2}})


def _machine(engine, definition, type_="EXPRESS", level=None, data=False):
    kw = {"loggingConfiguration": {**LOG, "level": level, "includeExecutionData": data}} if level else {}
    return engine.client().create_state_machine(name="m", definition=json.dumps(definition), roleArn=ROLE,
                                                type=type_, **kw)["stateMachineArn"]


TASK = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double", "End": True}}}


def test_success_has_the_documented_response_shape(engine):
    sm = _machine(engine, TASK)
    r = start_sync_execution(engine, sm, json.dumps({"n": 21}), name="one")
    model = json.loads(gzip.open(next(Path(__import__("botocore").__file__).parent.glob(
        "data/stepfunctions/*/service-2.json.gz"))).read())["shapes"]["StartSyncExecutionOutput"]
    assert set(model["required"]) <= set(r)
    assert set(r) <= set(model["members"])
    assert r["status"] == "SUCCEEDED" and json.loads(r["output"]) == {"n": 42}
    assert r["executionArn"].startswith("arn:aws:states:us-east-1:123456789012:express:m:one:")
    assert r["stateMachineArn"] == sm and r["name"] == "one" and r["input"] == '{"n": 21}'
    assert r["stopDate"] >= r["startDate"]
    assert r["billingDetails"]["billedDurationInMilliseconds"] >= 100


def test_a_failed_execution_is_an_answer_not_an_exception(engine):
    # "StartSyncExecution will return a 200 OK response, even if your execution fails".
    sm = _machine(engine, {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}})
    r = start_sync_execution(engine, sm, "{}")
    assert (r["status"], r["error"], r["cause"]) == ("FAILED", "E", "c")
    assert "output" not in r


def test_five_minutes_at_most(engine):
    # Express "Maximum duration: 5 minutes": a longer one ends TIMED_OUT at five minutes.
    sm = _machine(engine, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}})
    r = start_sync_execution(engine, sm, "{}")
    assert r["status"] == "TIMED_OUT"
    assert (r["stopDate"] - r["startDate"]).total_seconds() == 300


def test_a_shorter_timeout_of_the_definition_still_applies(engine):
    sm = _machine(engine, {"StartAt": "W", "TimeoutSeconds": 10,
                           "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}})
    r = start_sync_execution(engine, sm, "{}")
    assert r["status"] == "TIMED_OUT" and (r["stopDate"] - r["startDate"]).total_seconds() == 10


def test_standard_machines_are_refused(engine):
    # "StartSyncExecution is not available for STANDARD workflows."
    sm = _machine(engine, TASK, type_="STANDARD")
    with pytest.raises(Exception) as err:
        start_sync_execution(engine, sm, "{}")
    assert err.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"


@pytest.mark.parametrize("level, kept", [
    (None, []),
    ("OFF", []),
    ("FATAL", ["ExecutionFailed"]),
    ("ERROR", ["LambdaFunctionFailed", "ExecutionFailed"]),
])
def test_history_is_kept_only_as_the_log_level_says(engine, level, kept):
    sm = _machine(engine, {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:nope", "End": True}}},
                  level=level)
    r = start_sync_execution(engine, sm, "{}")
    assert r["status"] == "FAILED"
    events = engine.store.get_record(LOG_RECORD, r["executionArn"])["events"]
    assert [e["type"] for e in events] == kept


def test_level_all_keeps_every_event_and_data_only_when_included(engine):
    history = [{"type": "ExecutionStarted", "executionStartedEventDetails": {"input": "{}", "roleArn": ROLE}},
               {"type": "ExecutionSucceeded", "executionSucceededEventDetails": {"output": "{}"}}]
    assert logged_events(history, {"level": "ALL", "includeExecutionData": True}) == history
    bare = logged_events(history, {"level": "ALL"})
    assert bare[0]["executionStartedEventDetails"] == {"roleArn": ROLE}
    assert bare[1]["executionSucceededEventDetails"] == {}
