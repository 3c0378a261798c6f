"""Handlers matched by pattern, a catch-all, the @handler decorator, and Lambda's context object
(attributes as on AWS's "Using the Lambda context object to retrieve Python function information")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import statelang
from statelang.runtime.clock import VirtualClock
from statelang.runtime.lambda_context import FunctionConfig, lambda_context
from statelang.runtime.resources import Handlers, Resources, TaskContext, handler

DDB = "arn:aws:states:::dynamodb:"


def machine(*resources: str) -> dict:
    names = [f"S{i}" for i in range(len(resources))]
    states = {}
    for i, (n, r) in enumerate(zip(names, resources, strict=True)):
        states[n] = {"Type": "Task", "Resource": r, "ResultPath": f"$.{n}",
                     **({"Next": names[i + 1]} if i + 1 < len(names) else {"End": True})}
    return {"StartAt": names[0], "States": states}


def test_exact_beats_pattern_beats_catch_all():
    handlers = {f"{DDB}putItem": lambda e: "exact", f"{DDB}*": lambda e: "pattern", "*": lambda e: "catch-all"}
    ex = statelang.run(machine(f"{DDB}putItem", f"{DDB}getItem", "arn:aws:states:::sqs:sendMessage"),
                       handlers=handlers, clock="virtual")
    assert ex.output == {"S0": "exact", "S1": "pattern", "S2": "catch-all"}


def test_longer_pattern_is_more_specific_and_lambda_names_match():
    handlers = {"arn:aws:states:::*": lambda e: "any service", f"{DDB}*": lambda e: "dynamodb",
                "Fraud*": lambda e: "fraud"}
    ex = statelang.run(machine(f"{DDB}query", "arn:aws:states:::sns:publish",
                               "arn:aws:lambda:us-east-1:123456789012:function:FraudCheck"),
                       handlers=handlers, clock="virtual")
    assert ex.output == {"S0": "dynamodb", "S1": "any service", "S2": "fraud"}


def test_pattern_matches_the_resource_without_its_integration_suffix():
    r = Resources({"arn:aws:states:::ecs:runTask": lambda e: 1})
    assert r.lookup("service", "arn:aws:states:::ecs:runTask.sync", {}) is not None
    r = Resources({"arn:aws:states:::ecs:*": lambda e: 1})
    assert r.lookup("service", "arn:aws:states:::ecs:runTask.waitForTaskToken", {}) is not None
    assert r.lookup("service", "arn:aws:states:::sqs:sendMessage", {}) is None


@given(st.text(alphabet="abc:*/", max_size=12), st.text(alphabet="abc:/", max_size=12))
def test_only_the_star_is_special(pattern, name):
    """A pattern is its text with '*' matching any run of characters (compared with a regex-free
    reading: split on '*', the pieces must appear in order, anchored at both ends)."""
    r = Resources({pattern: lambda e: 1} if "*" in pattern and pattern != "*" else {})
    if "*" not in pattern or pattern == "*":
        return
    pieces = pattern.split("*")
    pos, ok = 0, name.startswith(pieces[0])
    if ok:
        pos = len(pieces[0])
        for piece in pieces[1:-1]:
            found = name.find(piece, pos)
            if found < 0:
                ok = False
                break
            pos = found + len(piece)
        ok = ok and len(name) - pos >= len(pieces[-1]) and name.endswith(pieces[-1])
    assert (r.lookup("lambda", name, {}) is not None) == ok


def test_decorator_registers_under_declared_names():
    hs = Handlers()

    @hs.handler("ChargeCard", "arn:aws:states:::sqs:*")
    def charge(event):
        return {"charged": event["amount"]}

    assert hs["ChargeCard"] is charge and hs["arn:aws:states:::sqs:*"] is charge
    assert charge.statelang_handles == ("ChargeCard", "arn:aws:states:::sqs:*")

    @handler("Refund")
    def refund(event):
        return "refunded"

    found = Handlers().collect({"refund": refund, "other": 3})
    assert found == {"Refund": refund}
    ex = statelang.run(machine("ChargeCard", "Refund"), {"amount": 5}, handlers={**hs, **found}, clock="virtual")
    assert ex.output["S0"] == {"charged": 5} and ex.output["S1"] == "refunded"
    with pytest.raises(TypeError):
        handler()


def test_lambda_context_counts_down_on_the_execution_clock():
    clock = VirtualClock()
    cfg = FunctionConfig("Fn", "arn:aws:lambda:us-east-1:123456789012:function:Fn", timeout_seconds=30,
                         memory_mb=256)
    ctx = lambda_context(cfg, clock=clock)
    assert ctx.get_remaining_time_in_millis() == 30000
    clock.advance(12.5)
    assert ctx.get_remaining_time_in_millis() == 17500
    clock.advance(60)
    assert ctx.get_remaining_time_in_millis() == 0
    assert (ctx.function_name, ctx.memory_limit_in_mb, ctx.function_version) == ("Fn", "256", "$LATEST")
    assert ctx.invoked_function_arn == cfg.arn and ctx.log_group_name == "/aws/lambda/Fn"
    assert len(ctx.aws_request_id) == 36


def test_a_lambda_handler_registered_by_name_gets_lambdas_context_too():
    """A handler for a Lambda task, written as a Lambda function (event, context), finds Lambda's
    context names and statelang's TaskContext names on the one object it receives."""
    seen = {}

    def lambda_handler(event, context):
        seen["remaining"] = context.get_remaining_time_in_millis()
        seen["names"] = (context.function_name, context.invoked_function_arn, context.memory_limit_in_mb)
        seen["state"] = context.state_name
        return {"request": context.aws_request_id}

    d = {"StartAt": "Score", "States": {"Score": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 45,
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:Scorer:live",
                       "Payload.$": "$"}, "OutputPath": "$.Payload", "End": True}}}
    ex = statelang.run(d, {}, handlers={"Scorer": lambda_handler}, clock="virtual")
    assert ex.status == "SUCCEEDED", ex
    assert seen["remaining"] == 45000
    assert seen["names"] == ("Scorer", "arn:aws:lambda:us-east-1:123456789012:function:Scorer:live", "128")
    assert seen["state"] == "Score"
    again = statelang.run(d, {}, handlers={"Scorer": lambda_handler}, clock="virtual")
    assert again.output == ex.output    # the request id follows the task's idempotency key
    assert not hasattr(TaskContext("arn", "n", "sm", "S", 0, "k"), "function_name")   # not a Lambda task
