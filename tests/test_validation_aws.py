"""Definitions AWS refuses at creation are refused here too, by `validate`, `run` and the API alike.

Sources are named per test. The last test is the property that ties the three together: whatever
`validate` accepts, `run` and CreateStateMachine accept; whatever they refuse, `validate` reports.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statelang
from statelang import Engine
from statelang.language.errors import DefinitionError
from statelang.language.validation import validate

ROLE = "arn:aws:iam::123456789012:role/r"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:F"


def task(resource: str, **extra) -> dict:
    return {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": True, **extra}}}


def codes(definition: dict, **kw) -> list[tuple[str, str, str]]:
    return [(d.code, d.message, d.location) for d in validate(definition, **kw)]


@pytest.fixture
def client():
    return Engine(db="memory", clock="virtual").client()


# -- 12: Task resources --------------------------------------------------------------------------
@pytest.mark.parametrize("resource", [
    "mock-arn", "${lambdaArn", "${lambdaArn}",
    "arn:aws:lambda:us-east-1:123456789012:function:F:alias:extra",   # a malformed alias ARN
    "arn:aws:lambda:us-east-1:123456789012:function:",
    "arn:aws:lambda:us-east-1:1234:function:F",
    "arn:aws:states:::lambda",
    "arn:aws:states:us-east-1:123456789012:activity:",
    "arn:aws:states:::sqs:sendMessage.waitForTaskToken.sync",
])
def test_unrecognised_resources_are_refused_as_aws_refuses_them(client, resource):
    """AWS at CreateStateMachine (the error users meet, e.g. with an unsubstituted CDK placeholder):
    ``Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Value is not a valid resource ARN
    at /States/T/Resource'``; ValidateStateMachineDefinition gives the same diagnostic."""
    expected = ("SCHEMA_VALIDATION_FAILED", "Value is not a valid resource ARN", "/States/T/Resource")
    assert codes(task(resource), local_handlers=False) == [expected]
    with pytest.raises(client.exceptions.InvalidDefinition) as err:
        client.create_state_machine(name="m", definition=json.dumps(task(resource)), roleArn=ROLE)
    assert err.value.response["Error"]["Message"] == (
        "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Value is not a valid resource ARN "
        "at /States/T/Resource'")
    out = client.validate_state_machine_definition(definition=json.dumps(task(resource)))
    assert out["result"] == "FAIL"
    assert out["diagnostics"] == [{"severity": "ERROR", "code": expected[0], "message": expected[1],
                                   "location": expected[2]}]


@pytest.mark.parametrize("resource", [
    LAMBDA, LAMBDA + ":1", LAMBDA + ":prod", LAMBDA + ":$LATEST",
    "arn:aws:states:::lambda:invoke", "arn:aws:states:::lambda:invoke.waitForTaskToken",
    "arn:aws:states:::states:startExecution.sync:2", "arn:aws:states:::aws-sdk:s3:listBuckets",
    "arn:aws:states:us-east-1:123456789012:activity:work", "arn:aws-cn:states:::sns:publish",
])
def test_recognised_resources_pass(resource):
    """The resource forms of the developer guide: 'Task workflow state' (Lambda function, activity)
    and 'Integrating services' (optimised integrations with .sync / .sync:2 / .waitForTaskToken,
    and aws-sdk:service:action)."""
    assert codes(task(resource), local_handlers=False) == []


def test_a_bare_handler_name_is_local_shorthand_only():
    """`run(handlers={"charge": ...})` lets a Task name its handler; AWS's API refuses that name."""
    assert codes(task("charge")) == []
    assert statelang.run(task("charge"), {"a": 1}, handlers={"charge": lambda x: x}, clock="virtual").succeeded
    assert [c[0] for c in codes(task("charge"), local_handlers=False)] == ["SCHEMA_VALIDATION_FAILED"]
    assert [c[0] for c in codes(task("${lambdaArn"))] == ["SCHEMA_VALIDATION_FAILED"]   # never a handler name


# -- 13: JSONata syntax and ResultPath -------------------------------------------------------------
@pytest.mark.parametrize("expr, message", [
    ("10 + * 2", None), ("420.", "Unexpected end of expression"), ("$sum(", "Expected ) before end of expression"),
    ("a[1,2)", 'Expected ], got ,'), ("1 +", "Unexpected end of expression"),
])
def test_jsonata_that_does_not_parse_is_refused_at_creation(client, expr, message):
    """floci-io/floci#2745 (measured against AWS): every expression is parsed at creation and one
    that does not parse is ``INVALID_JSONATA_EXPRESSION: <parser message> at /States/Main/Output``
    — the parser's message without JSONata's error code."""
    d = {"QueryLanguage": "JSONata", "StartAt": "Main",
         "States": {"Main": {"Type": "Pass", "Output": {"x": "{% " + expr + " %}"}, "End": True}}}
    found = codes(d)
    assert [(c, loc) for c, _, loc in found] == [("INVALID_JSONATA_EXPRESSION", "/States/Main/Output/x")]
    if message is not None:
        assert found[0][1] == message
    assert not found[0][1].startswith("S0")
    with pytest.raises(DefinitionError):
        statelang.run(d, {}, clock="virtual")
    with pytest.raises(client.exceptions.InvalidDefinition):
        client.create_state_machine(name="j", definition=json.dumps(d), roleArn=ROLE)


def test_jsonata_syntax_is_checked_in_every_field_of_a_jsonata_state():
    """Conditions, Wait's Seconds, Catch's Output: each "{% %}" string of the state is an expression."""
    d = {"QueryLanguage": "JSONata", "StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.a = %}", "Next": "W"}], "Default": "W"},
        "W": {"Type": "Wait", "Seconds": "{% ( %}", "Next": "T"},
        "T": {"Type": "Task", "Resource": LAMBDA, "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "W", "Output": "{% $states.errorOutput. %}"}]}}}
    assert [(c, loc) for c, _, loc in codes(d)] == [
        ("INVALID_JSONATA_EXPRESSION", "/States/C/Choices/0/Condition"),
        ("INVALID_JSONATA_EXPRESSION", "/States/W/Seconds"),
        ("INVALID_JSONATA_EXPRESSION", "/States/T/Catch/0/Output")]


@pytest.mark.parametrize("path", ["$foo", "$$.Execution.Id", "$.a[*]"])
def test_result_path_must_point_into_the_state_input(path):
    """States Language spec, 'ResultPath': a Reference Path into the state's input; a variable or
    the context object cannot be written to. Refused at creation, never a StaticError from `run`."""
    d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": path, "End": True}}}
    assert codes(d) == [("SCHEMA_VALIDATION_FAILED", "The value for the field 'ResultPath' must be a valid "
                                                     "ReferencePath", "/States/P/ResultPath")]
    with pytest.raises(DefinitionError):
        statelang.run(d, {}, clock="virtual")


# -- 14: template keys that collide after ".$" is stripped -----------------------------------------
def test_template_field_twice_after_dollar_suffix_is_refused():
    """States Language spec, 'Payload Template': a field named "a.$" is renamed "a"; a sibling "a"
    would be silently overwritten (asl-validator issue #92 refuses it too)."""
    d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"a": 1, "a.$": "$.x", "n": {"b.$": "$",
                                                                                                     "b": 2}},
                                          "End": True}}}
    assert [(c, loc) for c, _, loc in codes(d)] == [("SCHEMA_VALIDATION_FAILED", "/States/P/Parameters/a.$"),
                                                    ("SCHEMA_VALIDATION_FAILED", "/States/P/Parameters/n/b.$")]


# -- 15: state names unique across the whole machine ---------------------------------------------
def test_state_names_are_unique_across_branches_and_processors():
    """States Language spec, 'States': "State names MUST be unique within the scope of the whole
    state machine". AWS: ``DUPLICATE_STATE_NAME: Duplicate State name: P``, at the repeat's place."""
    d = {"StartAt": "Par", "States": {
        "Par": {"Type": "Parallel", "Next": "M", "Branches": [
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}]},
        "M": {"Type": "Map", "End": True, "ItemProcessor": {"StartAt": "Par", "States": {
            "Par": {"Type": "Pass", "End": True}}}}}}
    assert codes(d) == [("DUPLICATE_STATE_NAME", "Duplicate State name: P", "/States/Par/Branches/1/States/P"),
                        ("DUPLICATE_STATE_NAME", "Duplicate State name: Par", "/States/M/ItemProcessor/States/Par")]
    with pytest.raises(DefinitionError):
        statelang.run(d, {}, clock="virtual")


# -- 16: Credentials -----------------------------------------------------------------------------
@pytest.mark.parametrize("credentials, expected", [
    ({}, [("SCHEMA_VALIDATION_FAILED", "These fields are required: [RoleArn]", "/States/T/Credentials")]),
    ({"Role": ROLE}, [("SCHEMA_VALIDATION_FAILED", "Field 'Role' is not supported", "/States/T/Credentials"),
                      ("SCHEMA_VALIDATION_FAILED", "These fields are required: [RoleArn]", "/States/T/Credentials")]),
    ("x", [("SCHEMA_VALIDATION_FAILED", "Expected value of type Object", "/States/T/Credentials")]),
    ({"RoleArn": ROLE}, []), ({"RoleArn.$": "$.role"}, []),
])
def test_credentials_need_a_role_arn(credentials, expected):
    """Developer guide, 'Task workflow state' / Credentials: "RoleArn" (or "RoleArn.$") names the
    role to assume; without it AWS refuses the definition."""
    assert codes(task(LAMBDA, Credentials=credentials), local_handlers=False) == expected


# -- 17: validate, run and CreateStateMachine agree ------------------------------------------------
_RESOURCES = [LAMBDA, "arn:aws:states:::lambda:invoke", "F", "mock-arn", "${lambdaArn",
              LAMBDA + ":a:b", "arn:aws:states:us-east-1:123456789012:activity:act"]
_RESULT_PATHS = [None, "$", "$.r", "$foo", "$$.x", "$.a[0]", "$.a[*]", "$..x", "x"]
_EXPRESSIONS = ["$states.input", "1 + 2", "10 + * 2", "420.", "$sum(", "[1,2", "$x", "$states.input.a ? ",
                "''", ""]


@st.composite
def definitions(draw) -> dict:
    """Small machines that mix valid and invalid pieces of every kind items 12-16 are about."""
    jsonata = draw(st.booleans())
    n = draw(st.integers(1, 4))
    names = [draw(st.sampled_from(["A", "B", "C", "D"])) + str(i) for i in range(n)]
    states = {}
    for i, name in enumerate(names):
        flow = {"End": True} if i == n - 1 else {"Next": names[i + 1]}
        kind = draw(st.sampled_from(["Pass", "Task", "Parallel"]))
        state: dict = {"Type": kind, **flow}
        if kind == "Task":
            state["Resource"] = draw(st.sampled_from(_RESOURCES))
            if draw(st.booleans()):
                state["Credentials"] = draw(st.sampled_from([{}, {"RoleArn": ROLE}, {"R": 1}]))
        if kind == "Parallel":
            inner = draw(st.sampled_from([name + "x", "A0", names[0]]))
            state["Branches"] = [{"StartAt": inner, "States": {inner: {"Type": "Pass", "End": True}}}]
        if jsonata:
            if draw(st.booleans()):
                state["Output"] = {"v": "{% " + draw(st.sampled_from(_EXPRESSIONS)) + " %}"}
        else:
            if draw(st.booleans()):
                state["ResultPath"] = draw(st.sampled_from(_RESULT_PATHS))
            if kind != "Parallel" and draw(st.booleans()):
                state["Parameters"] = draw(st.sampled_from([{"a": 1}, {"a.$": "$"}, {"a": 1, "a.$": "$"},
                                                            {"b.$": "States.Format('{}', $.x)"}, {"c.$": "$$$"}]))
        states[name] = state
    d = {"StartAt": names[0], "States": states}
    if jsonata:
        d["QueryLanguage"] = "JSONata"
    return d


def _runs(d: dict) -> bool:
    try:
        statelang.run(d, {"x": 1, "a": [1]}, handlers={"F": lambda x: x}, clock="virtual")
    except DefinitionError:
        return False
    return True


def _creates(client, d: dict) -> bool:
    try:
        client.create_state_machine(name="p", definition=json.dumps(d), roleArn=ROLE)
    except client.exceptions.InvalidDefinition:
        return False
    client.delete_state_machine(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:p")
    return True


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_validate_agrees_with_run_and_create_state_machine(d):
    """Item 17: `validate` says OK exactly when `run` accepts (any other exception than
    DefinitionError fails this test); the AWS-exact `validate(local_handlers=False)` says OK exactly
    when CreateStateMachine accepts. Each refusal is a diagnostic, never a traceback."""
    client = Engine(db="memory", clock="virtual", account_id="123456789012", region="us-east-1").client()
    local_ok = not [x for x in validate(d) if x.severity == "ERROR"]
    aws_ok = not [x for x in validate(d, local_handlers=False) if x.severity == "ERROR"]
    assert _runs(d) == local_ok
    assert _creates(client, d) == aws_ok
    assert not aws_ok or local_ok   # the AWS rules are the local ones and one more


_FIELDS = ["InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "ItemsPath", "ItemSelector",
           "MaxConcurrency", "MaxConcurrencyPath", "SecondsPath", "TimestampPath", "Seconds", "Timestamp", "Assign",
           "Output", "Arguments", "Items", "ToleratedFailureCount", "ToleratedFailurePercentagePath", "Label",
           "ErrorPath", "CausePath", "Result", "TimeoutSeconds", "HeartbeatSecondsPath"]
_VALUES = [None, "$", "$.a", "$$.Execution.Id", "$x", "$.a[*]", "$..b", "States.Format('{}', $.a)", "{% 1 %}",
           "{% $states.input %}", "{% ( %}", 1, -1, 1.5, "x", {"a.$": "$.b"}, {"a.$": "States.Nope()"},
           {"a": 1, "a.$": "$"}, {"k": "{% 1+ %}"}, [], {}, True, "2020-01-01T00:00:00Z", "$['x']"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_whatever_validate_accepts_compiles_and_every_refusal_has_a_place(data):
    """Item 17, wider: valid machines of every state type with any field set to any of a range of
    values, in either query language. When `validate` finds nothing, the compiler (what `run`
    and CreateStateMachine build on) accepts the machine; when it refuses, each diagnostic names
    where (none comes from the last-resort compile check)."""
    from statelang.language.compiler import CompiledMachine
    from tests.test_validation_properties import machines
    d = data.draw(machines())
    if data.draw(st.booleans()):
        d["QueryLanguage"] = "JSONata"
    names = list(d["States"])
    for _ in range(data.draw(st.integers(0, 3))):
        state = d["States"][data.draw(st.sampled_from(names))]
        state[data.draw(st.sampled_from(_FIELDS))] = data.draw(st.sampled_from(_VALUES))
    errors = [x for x in validate(d) if x.severity == "ERROR"]
    if not errors:
        CompiledMachine(d)
    else:   # the last-resort compile check is the one schema diagnostic without a place
        assert not [x for x in errors if x.code == "SCHEMA_VALIDATION_FAILED" and not x.location], errors
