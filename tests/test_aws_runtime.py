"""Runtime behaviour pinned to what AWS does, one test (or a few) per deviation found.

Each test names its source: LocalStack's AWS-recorded snapshots (repository localstack/localstack,
tests/aws/services/stepfunctions/v2/**/*.snapshot.json), the AWS developer guide, or a report of
AWS's own answer quoted in an emulator's issue tracker.
"""

from __future__ import annotations

import json

import statelang
from statelang import Engine


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


# -- 2: Wait SecondsPath / TimestampPath / JSONata Seconds ----------------------------------------
def _wait(field: str, path: str, value, jsonata: bool = False):
    if jsonata:
        d = {"QueryLanguage": "JSONata", "StartAt": "W",
             "States": {"W": {"Type": "Wait", field: "{% $states.input.v %}", "End": True}}}
        return run(d, {"v": value})
    d = {"StartAt": "W", "States": {"W": {"Type": "Wait", field: path, "End": True}}}
    return run(d, {"input": {"waitSeconds": value}, "t": value})


def test_seconds_path_not_a_long():
    """LocalStack's Wait (SecondsPath) as fixed against AWS in localstack#10521: 1.5 fails the
    execution with States.Runtime, "cannot be parsed as a long value: <path> == <value>"."""
    ex = _wait("SecondsPath", "$.input.waitSeconds", 1.5)
    assert ex.status == "FAILED" and ex.error == "States.Runtime"
    assert ex.cause.endswith("The SecondsPath parameter cannot be parsed as a long value: "
                             "$.input.waitSeconds == 1.5")
    assert _wait("SecondsPath", "$.input.waitSeconds", "10").status == "FAILED"


def test_seconds_path_negative():
    """The issue's AWS text: "The SecondsPath parameter references a negative value:
    $.input.waitSeconds == -1"."""
    ex = _wait("SecondsPath", "$.input.waitSeconds", -1)
    assert (ex.status, ex.error) == ("FAILED", "States.Runtime")
    assert ex.cause == ("An error occurred while executing the state 'W' (entered at the event id #2). "
                        "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1")
    assert _wait("SecondsPath", "$.input.waitSeconds", 0).succeeded


def test_timestamp_path_value_is_written_unquoted():
    """base/test_wait.snapshot.json, test_wait_timestamppath[.000]: "... ISO-8601 extended offset
    date-time format string: $.start_at == <timestamp>" — the value as it is, without quotes."""
    ex = _wait("TimestampPath", "$.t", "2016-03-14T01:59:00.000")
    assert ex.cause == ("An error occurred while executing the state 'W' (entered at the event id #2). "
                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
                        "date-time format string: $.t == 2016-03-14T01:59:00.000")


def test_jsonata_seconds_and_timestamp_are_query_evaluation_errors():
    """A JSONata Seconds/Timestamp that is not usable fails with States.QueryEvaluationError (the
    error AWS gives JSONata fields), never States.Runtime. (The cause text is ours: no AWS record.)"""
    for field, value in (("Seconds", 1.5), ("Seconds", -1), ("Seconds", "x"), ("Timestamp", "yesterday")):
        ex = _wait(field, "", value, jsonata=True)
        assert (ex.status, ex.error) == ("FAILED", "States.QueryEvaluationError"), (field, value)
        assert f"specified for the field '{field}'" in ex.cause


# -- 3: Fail ErrorPath / CausePath that match nothing -----------------------------------------------
def test_fail_error_path_that_matches_nothing():
    """AWS's cause, quoted in localstack#11951: "An error occurred while executing the state 'fail'
    (entered at the event id #2). The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could
    not be found in the input '<input>'"."""
    d = {"StartAt": "fail", "States": {"fail": {"Type": "Fail", "ErrorPath": "$.ErrorX", "CausePath": "$.Cause"}}}
    ex = run(d, {"Error": "error-value", "Cause": "cause-value"})
    assert (ex.status, ex.error) == ("FAILED", "States.Runtime")
    assert ex.cause == ("An error occurred while executing the state 'fail' (entered at the event id #2). "
                        "The JSONPath '$.ErrorX' specified for the field 'ErrorPath' could not be found in the "
                        "input '{\"Error\":\"error-value\",\"Cause\":\"cause-value\"}'")
    d["States"]["fail"] = {"Type": "Fail", "Error": "E", "CausePath": "$.nope"}
    assert "specified for the field 'CausePath' could not be found" in run(d, {}).cause


# -- 4: Map limits from paths --------------------------------------------------------------------
def _map(distributed: bool = False, **fields):
    proc = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    if distributed:
        proc["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    return {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": proc,
                                             "End": True, **fields}}}


def test_map_limit_paths_that_are_not_usable_fail_the_execution():
    """LocalStack's Map (max_concurrency_path, tolerated_failure_*_path), written against AWS's
    recorded answers: States.Runtime with "The MaxConcurrencyPath field refers to value "abc" which
    is not a valid integer: $.mc", "Expected non-negative integer for MaxConcurrency, got '-1'
    instead.", "ToleratedFailureCount cannot be negative.", "ToleratedFailurePercentage must be
    between 0 and 100." — never a Python ValueError."""
    cases = [
        (_map(MaxConcurrencyPath="$.v"), "abc", 'The MaxConcurrencyPath field refers to value "abc" which is not a '
                                                "valid integer: $.v"),
        (_map(MaxConcurrencyPath="$.v"), {"a": 1}, 'The MaxConcurrencyPath field refers to value "{"a":1}" which '
                                                   "is not a valid integer: $.v"),
        (_map(MaxConcurrencyPath="$.v"), -1, "Expected non-negative integer for MaxConcurrency, got '-1' instead."),
        (_map(True, ToleratedFailureCountPath="$.v"), "x", 'The ToleratedFailureCountPath field refers to value '
                                                           '"x" which is not a valid integer: $.v'),
        (_map(True, ToleratedFailureCountPath="$.v"), -2, "ToleratedFailureCount cannot be negative."),
        (_map(True, ToleratedFailurePercentagePath="$.v"), "lots", 'The ToleratedFailurePercentagePath field '
                                                                   'refers to value "lots" which is not a valid '
                                                                   "float: $.v"),
        (_map(True, ToleratedFailurePercentagePath="$.v"), 101, "ToleratedFailurePercentage must be between 0 "
                                                                "and 100."),
    ]
    for d, value, cause in cases:
        ex = run(d, {"items": [1, 2], "v": value})
        assert (ex.status, ex.error) == ("FAILED", "States.Runtime"), (value, ex)
        assert ex.cause.endswith(cause), ex.cause
    assert run(_map(MaxConcurrencyPath="$.v"), {"items": [1, 2], "v": "2"}).succeeded   # a numeric string reads
    engine = Engine(db="memory", clock="virtual")
    arn = "arn:aws:states:us-east-1:123456789012:execution:m:ok"
    engine.start(_map(True, ToleratedFailurePercentagePath="$.v"), {"items": [1], "v": 50}, arn=arn, name="ok",
                 state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"


# -- 5: JSONata Items and EvaluationFailed --------------------------------------------------------
def test_jsonata_items_not_an_array_and_the_evaluation_failed_event():
    """LocalStack's Map Items (written against AWS): States.QueryEvaluationError, "The JSONata
    expression '...' specified for the field 'Items' returned an unexpected result type. Expected
    'array', but was 'null' for value: null", recorded as an EvaluationFailed event whose details
    are error, cause, location "Items" and state (API reference, EvaluationFailedEventDetails)."""
    d = {"QueryLanguage": "JSONata", "StartAt": "M", "States": {"M": {
        "Type": "Map", "Items": "{% $states.input.v %}", "End": True,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}
    ex = run(d, {"v": None})
    assert (ex.status, ex.error) == ("FAILED", "States.QueryEvaluationError")
    assert ex.cause.endswith("The JSONata expression '$states.input.v' specified for the field 'Items' returned "
                             "an unexpected result type. Expected 'array', but was 'null' for value: null")
    types = [e["type"] for e in ex.history]
    assert types[-2:] == ["EvaluationFailed", "ExecutionFailed"]
    details = ex.history[-2]["evaluationFailedEventDetails"]
    assert details == {"error": "States.QueryEvaluationError", "cause": ex.cause, "location": "Items", "state": "M"}


def test_a_caught_evaluation_error_goes_to_the_catcher():
    d = {"QueryLanguage": "JSONata", "StartAt": "P", "States": {
        "P": {"Type": "Task", "Resource": "f", "Arguments": "{% $error('boom') %}", "End": True,
              "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Done"}]},
        "Done": {"Type": "Succeed"}}}
    ex = run(d, {}, handlers={"f": lambda x: x})
    assert ex.succeeded and "EvaluationFailed" not in [e["type"] for e in ex.history]


# -- 6: escapes inside bracket notation ------------------------------------------------------------
def test_bracketed_field_names_with_escape_sequences():
    """LocalStack's AWS-validated scenario escape_sequences_jsonpath.json5 reads
    ``"value.$": "$['Test\\\\\\"\\"Name\\"']"`` (the path ``$['Test\\""Name"']``) and succeeds on AWS;
    Jayway (AWS's JSONPath) reads \\', \\", \\\\, \\/ and \\u with four hex digits inside brackets as escapes."""
    d = json.loads(r'''{"StartAt": "JsonPathEscapeTest", "States": {"JsonPathEscapeTest": {"Type": "Pass",
        "Parameters": {"value.$": "$['Test\\\"\"Name\"']"}, "End": true}}}''')
    assert run(d, {'Test""Name"': "Value"}).output == {"value": "Value"}
    data = {"a'b": 1, 'a"b': 2, "a\\b": 3, "é": 4, "a/b": 5, "n\nl": 6}
    for path, expected in [("$['a\\'b']", 1), ('$["a\\"b"]', 2), ("$['a\\\\b']", 3), ("$['\\u00e9']", 4),
                           ("$['a\\/b']", 5), ('$["n\\nl"]', 6)]:
        d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": path, "End": True}}}
        assert run(d, data).output == expected, path
    d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 9, "ResultPath": "$['\\u00e9']", "End": True}}}
    assert run(d, {}).output == {"é": 9}


# -- 7: nested .sync executions -------------------------------------------------------------------
def test_nested_sync_reports_the_childs_input_as_compact_text_and_braces_when_none():
    """StartExecution API reference: an execution given no input gets "{}" ("you still must
    include the two braces"); the .sync task's output is DescribeExecution's shape, whose Input is
    that text — '{}', never 'null' (and .sync:2 gives it as JSON)."""
    child_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:child"
    child = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    for params, text in (({}, "{}"), ({"Input": None}, "{}"), ({"Input": {"a": 1, "b": [1, 2]}}, '{"a":1,"b":[1,2]}')):
        for suffix, expect in ((".sync", text), (".sync:2", json.loads(text))):
            d = {"StartAt": "S", "States": {"S": {"Type": "Task", "End": True,
                                                  "Resource": "arn:aws:states:::states:startExecution" + suffix,
                                                  "Parameters": {"StateMachineArn": child_arn, **params}}}}
            ex = statelang.run(d, {}, state_machines={child_arn: child}, clock="virtual")
            assert ex.succeeded and ex.output["Input"] == expect, (params, suffix, ex.output)


# -- 9: TIMED_OUT --------------------------------------------------------------------------------
def test_a_timed_out_execution_is_described_without_error_or_cause():
    """timeouts/test_timeouts.snapshot.json, test_global_timeout (AWS-recorded DescribeExecution):
    executionArn, input, inputDetails, name, redriveCount 0, redriveStatus REDRIVABLE, startDate,
    stateMachineArn, status TIMED_OUT, stopDate — and no error, no cause, no output."""
    engine = Engine(db="memory", clock="virtual")
    client = engine.client()
    d = {"TimeoutSeconds": 1, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}}
    sm = client.create_state_machine(name="slow", definition=json.dumps(d),
                                     roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    arn = client.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
    engine.run_until_idle()
    described = client.describe_execution(executionArn=arn)
    described.pop("ResponseMetadata")
    assert described["status"] == "TIMED_OUT"
    assert set(described) == {"executionArn", "input", "inputDetails", "name", "redriveCount", "redriveStatus",
                              "startDate", "stateMachineArn", "status", "stopDate"}
    assert described["redriveStatus"] == "REDRIVABLE"


# -- 8: lambda:invoke ----------------------------------------------------------------------------
INVOKE = "arn:aws:states:::lambda:invoke"


def _invoke(payload, **params):
    seen = []
    d = {"StartAt": "L", "States": {"L": {"Type": "Task", "Resource": INVOKE, "End": True,
                                          "Parameters": {"FunctionName": "F", "Payload": payload, **params}}}}
    ex = run(d, {}, handlers={"F": lambda event: seen.append(event) or event})
    return ex, seen


def test_a_string_payload_is_json_text_the_function_receives_decoded():
    """The issue's AWS observation (Lambda Invoke takes Payload as JSON text): a Payload of
    "\\"HelloWorld\\"" reaches the function as "HelloWorld"; 0, true, objects and arrays likewise."""
    for text, value in (('"HelloWorld"', "HelloWorld"), ("0", 0), ("true", True), ('{"a":1}', {"a": 1}),
                        ("[1,2]", [1, 2]), ("null", None)):
        ex, seen = _invoke(text)
        assert ex.succeeded and seen == [value], text
        assert ex.output["Payload"] == value
    ex, seen = _invoke("HelloWorld")   # not JSON: Lambda refuses the request
    assert (ex.status, ex.error, seen) == ("FAILED", "Lambda.InvalidRequestContentException", [])


def test_log_type_tail_returns_log_result():
    """Lambda Invoke API reference: with LogType Tail the response has LogResult, the base64 of the
    invocation's last log lines."""
    import base64
    ex, _ = _invoke({"a": 1}, LogType="Tail")
    log = base64.b64decode(ex.output["LogResult"]).decode()
    request_id = ex.output["SdkResponseMetadata"]["RequestId"]
    assert log.startswith(f"START RequestId: {request_id} Version: $LATEST") and "REPORT RequestId" in log
    assert "LogResult" not in _invoke({"a": 1})[0].output


def test_a_lambda_error_document_has_a_request_id():
    """Lambda's error document (errorMessage, errorType, requestId, stackTrace) always names the
    request: requestId is never empty."""
    def boom(event):
        raise ValueError("no")
    d = {"StartAt": "L", "States": {"L": {"Type": "Task", "Resource": INVOKE, "End": True,
                                          "Parameters": {"FunctionName": "F", "Payload": {}}}}}
    ex = run(d, {}, handlers={"F": boom})
    doc = json.loads(ex.cause)
    assert ex.error == "ValueError" and doc["errorMessage"] == "no" and doc["requestId"]


# -- 10: ResultPath into a non-object input --------------------------------------------------------
def test_result_path_into_a_non_object_input():
    """The text AWS gave in aws/aws-cdk#29473: "Unable to apply ReferencePath $.partitioned to input
    \\"{...}\\"" (the input as JSON, a string quoted); the error is the States Language spec's
    States.ResultPathMatchFailure, which a Catch can take."""
    d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.partitioned", "End": True}}}
    ex = run(d, '{"min_size":10000}')
    assert (ex.status, ex.error) == ("FAILED", "States.ResultPathMatchFailure")
    assert ex.cause == 'Unable to apply ReferencePath $.partitioned to input "{\\"min_size\\":10000}"'
    d = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "f", "ResultPath": "$.r", "End": True,
              "Catch": [{"ErrorEquals": ["States.ResultPathMatchFailure"], "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": True}}}
    ex = run(d, [1, 2], handlers={"f": lambda x: 3})
    assert ex.succeeded and ex.output["Error"] == "States.ResultPathMatchFailure"


# -- 11: redrive ---------------------------------------------------------------------------------
def test_a_redriven_task_is_scheduled_and_started_again_and_the_execution_replays():
    """Developer guide, 'Redriving executions': a redrive restarts the unsuccessful steps — the
    history goes on after ExecutionRedriven with the re-run task's own Scheduled/Started events,
    its outcome following them; and such a history replays (the replay redrives where the record
    does)."""
    calls = []

    def flaky(event):
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("first")
        return "ok"
    engine = statelang.Engine(db="memory", clock="virtual", handlers={"f": flaky})
    d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "T"},
                                    "T": {"Type": "Task", "Resource": "f", "End": True}}}
    arn = "arn:aws:states:us-east-1:123456789012:execution:m:e1"
    engine.start(d, {}, arn=arn, name="e1", state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m")
    engine.run_until_idle()
    engine.redrive(arn)
    engine.run_until_idle()
    events = engine.store.history(arn)
    after = [(e["type"], e["previousEventId"]) for e in events[8:]]
    assert after == [("ExecutionRedriven", 8), ("LambdaFunctionScheduled", 9), ("LambdaFunctionStarted", 10),
                     ("LambdaFunctionSucceeded", 11), ("TaskStateExited", 12), ("ExecutionSucceeded", 13)]
    assert events[9]["lambdaFunctionScheduledEventDetails"] == events[4]["lambdaFunctionScheduledEventDetails"]
    result = engine.replay(arn)
    assert result.ok, result.divergence
    assert len(calls) == 2   # the replay called no handler


def test_a_caught_task_timeout_carries_an_empty_cause():
    """A Task timeout reaches its catcher as {"Error": "States.Timeout", "Cause": ""} on AWS (the
    empty Cause a catcher's Lambda met, opensupplyhub/open-apparel-registry#1193), while the
    TaskTimedOut event itself has no cause (timeouts/test_timeouts.snapshot.json)."""
    d = {"StartAt": "L", "States": {
        "L": {"Type": "Task", "Resource": INVOKE, "TimeoutSeconds": 1, "Next": "Done",
              "Parameters": {"FunctionName": "F", "Payload": {}},
              "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Done", "ResultPath": "$.err"}]},
        "Done": {"Type": "Pass", "End": True}}}

    def slow(event, ctx):   # outlives TimeoutSeconds on the execution's virtual clock
        ctx.clock.advance(3)
        return "late"
    ex = run(d, {}, handlers={"F": slow})
    assert ex.succeeded and ex.output["err"] == {"Error": "States.Timeout", "Cause": ""}
    timed_out = next(e for e in ex.history if e["type"] == "TaskTimedOut")
    assert "cause" not in timed_out["taskTimedOutEventDetails"]


def test_the_execution_timed_out_event():
    """floci-io/floci#2733 (measured on AWS): a machine's TimeoutSeconds ends it TIMED_OUT with one
    ExecutionTimedOut event carrying States.Timeout, no cause, previousEventId 0."""
    d = {"TimeoutSeconds": 3, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 25, "End": True}}}
    ex = run(d, {})
    assert (ex.status, ex.error, ex.cause) == ("TIMED_OUT", "States.Timeout", None)
    last = ex.history[-1]
    assert [e["type"] for e in ex.history] == ["ExecutionStarted", "WaitStateEntered", "ExecutionTimedOut"]
    assert last["executionTimedOutEventDetails"] == {"error": "States.Timeout"} and last["previousEventId"] == 0
    assert (last["timestamp"] - ex.history[0]["timestamp"]).total_seconds() == 3
