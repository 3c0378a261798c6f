"""Task resources -> handlers (statelang.runtime.resources): lookup by name and ARN, context detection,
async handlers, and how exceptions become (error, cause) as Lambda reports them.

Sources:
- [EH] AWS Step Functions developer guide, "Handling errors in Step Functions workflows":
  a Lambda function's exception is reported with the exception's type as the error name and a
  cause holding Lambda's error document; ErrorEquals matches that name (e.g. a Python
  ``class CustomError(Exception)`` is caught with ``"ErrorEquals": ["CustomError"]``).
- [LAMBDA] AWS Lambda developer guide, "AWS Lambda function errors in Python": the error document
  is ``{"errorMessage": ..., "errorType": ..., "requestId": ..., "stackTrace": [...]}``.
- [ARN] Lambda "Invoke" API, FunctionName: a name ("my-function"), a name with alias
  ("my-function:v1"), a partial ARN ("123456789012:function:my-function") or a full ARN.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from statelang.interpreter.commands import OutcomeKind, TaskOutcome
from statelang.language.errors import StatesError
from statelang.runtime.resources import HandlerError, Resources, TaskContext, _arity, _function_name

ARN = "arn:aws:lambda:us-east-1:123456789012:function:Charge"


def ctx(**kw) -> TaskContext:
    base = dict(execution_arn="arn:aws:states:us-east-1:123456789012:execution:sm:e1", execution_name="e1",
                state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:sm", state_name="S",
                retry_count=0, idempotency_key="k1")
    base.update(kw)
    return TaskContext(**base)


def brief(outcome: TaskOutcome) -> tuple:
    """The outcome as a short tuple for assertions: ("ok", value) or ("err", error, cause)."""
    if outcome.kind == OutcomeKind.SUCCEEDED:
        return ("ok", outcome.value)
    assert outcome.kind == OutcomeKind.FAILED, outcome
    return ("err", outcome.error, outcome.cause)


def invoke(res: Resources, kind: str, resource: str, input, **kw):
    return brief(res.invoke({"kind": kind, "resource": resource, "input": input}, ctx(**kw)))


def echo(event):
    return {"got": event}


# -- lookup ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ref,name", [
    ("Charge", "Charge"),
    (ARN, "Charge"),
    (ARN + ":prod", "Charge"),
    (ARN + ":7", "Charge"),
    ("123456789012:function:Charge", "Charge"),
])
def test_function_name_of_every_reference_form(ref, name):
    # [ARN] the accepted FunctionName forms.
    assert _function_name(ref) == name


@pytest.mark.parametrize("resource", ["Charge", ARN, ARN + ":live",
                                      "arn:aws:lambda:eu-west-1:999999999999:function:Charge"])
def test_bare_name_answers_every_lambda_arn_of_that_function(resource):
    res = Resources({"Charge": echo})
    assert invoke(res, "lambda", resource, {"a": 1}) == ("ok", {"got": {"a": 1}})


def test_handler_registered_under_an_arn_answers_its_bare_name_and_partial_arn():
    res = Resources({ARN: echo})
    assert invoke(res, "lambda", ARN, 1) == ("ok", {"got": 1})
    assert invoke(res, "lambda", "Charge", 2) == ("ok", {"got": 2})
    assert invoke(res, "lambda", "123456789012:function:Charge", 3) == ("ok", {"got": 3})


def test_exact_arn_wins_over_the_bare_name():
    res = Resources({"Charge": lambda e: "bare",
                     "arn:aws:lambda:eu-west-1:1:function:Charge": lambda e: "eu"})
    assert invoke(res, "lambda", "arn:aws:lambda:eu-west-1:1:function:Charge", {}) == ("ok", "eu")
    assert invoke(res, "lambda", ARN, {}) == ("ok", "bare")


@pytest.mark.parametrize("fname", ["Charge", ARN, ARN + ":prod", "123456789012:function:Charge"])
def test_lambda_invoke_finds_the_handler_by_function_name_and_passes_the_payload(fname):
    # arn:aws:states:::lambda:invoke: Parameters {FunctionName, Payload}; the function gets Payload.
    res = Resources({"Charge": echo})
    out = invoke(res, "lambda_invoke", "arn:aws:states:::lambda:invoke",
                 {"FunctionName": fname, "Payload": {"amount": 5}})
    assert out == ("ok", {"got": {"amount": 5}})


def test_lambda_invoke_without_function_name_is_a_missing_function():
    res = Resources({"Charge": echo})
    out = invoke(res, "lambda_invoke", "arn:aws:states:::lambda:invoke", {"Payload": {}})
    assert out[0] == "err" and out[1] == "Lambda.ResourceNotFoundException"


def test_lambda_invoke_function_registered_by_full_arn_in_the_engine_region():
    res = Resources({ARN: echo}, region="us-east-1", account_id="123456789012")
    out = invoke(res, "lambda_invoke", "arn:aws:states:::lambda:invoke", {"FunctionName": "Charge"})
    assert out == ("ok", {"got": None})


@pytest.mark.parametrize("resource", [
    "arn:aws:states:::dynamodb:putItem",
    "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
    "arn:aws:states:::ecs:runTask.sync",
    "arn:aws:states:::states:startExecution.sync:2",
])
@pytest.mark.parametrize("style", ["arn", "short"])
def test_service_integrations_match_with_or_without_prefix_and_suffix(resource, style):
    base = resource.split(".waitForTaskToken")[0].split(".sync")[0]
    key = base if style == "arn" else base[len("arn:aws:states:::"):]
    res = Resources({key: echo})
    assert invoke(res, "service", resource, {"x": 1}) == ("ok", {"got": {"x": 1}})


def test_service_handler_for_one_suffix_is_preferred_over_the_base():
    res = Resources({"sqs:sendMessage": lambda e: "base",
                     "arn:aws:states:::sqs:sendMessage.waitForTaskToken": lambda e: "callback"})
    assert invoke(res, "service", "arn:aws:states:::sqs:sendMessage.waitForTaskToken", {}) == ("ok", "callback")
    assert invoke(res, "service", "arn:aws:states:::sqs:sendMessage", {}) == ("ok", "base")


def test_update_registers_more_handlers():
    res = Resources()
    res.update({"A": lambda e: "a"})
    assert invoke(res, "lambda", "A", None) == ("ok", "a")


# -- unknown resources ----------------------------------------------------------------------------

def test_unknown_lambda_is_resource_not_found_with_the_full_arn():
    res = Resources(region="eu-west-1", account_id="111122223333")
    err, name, cause = invoke(res, "lambda", "Nope", {})
    assert (err, name) == ("err", "Lambda.ResourceNotFoundException")
    assert "arn:aws:lambda:eu-west-1:111122223333:function:Nope" in cause
    assert "Nope" in cause


def test_unknown_lambda_invoke_names_the_function():
    out = invoke(Resources(), "lambda_invoke", "arn:aws:states:::lambda:invoke", {"FunctionName": ARN})
    assert out[1] == "Lambda.ResourceNotFoundException" and ARN in out[2]


def test_unknown_service_integration_is_a_runtime_error():
    out = invoke(Resources(), "service", "arn:aws:states:::glue:startJobRun.sync", {})
    assert out[:2] == ("err", "States.Runtime")
    assert "arn:aws:states:::glue:startJobRun.sync" in out[2]


# -- the context argument ---------------------------------------------------------------------------

def test_context_is_passed_only_to_handlers_that_take_two_arguments():
    seen = {}

    def two(event, context):
        seen["ctx"] = context
        return context.idempotency_key

    res = Resources({"one": lambda e: "no ctx", "two": two})
    assert invoke(res, "lambda", "one", {}) == ("ok", "no ctx")
    assert invoke(res, "lambda", "two", {}, idempotency_key="abc") == ("ok", "abc")
    assert isinstance(seen["ctx"], TaskContext)


def test_context_detection_rules():
    def varargs(*args):
        return len(args)

    def kwonly(event, *, context=None):
        return context

    class Handler:
        def method(self, event, context):
            return context.state_name

        def __call__(self, event):
            return "called"

    assert _arity(varargs) == 2
    assert _arity(kwonly) == 1
    assert _arity(Handler().method) == 2    # bound: self is not counted
    assert _arity(Handler()) == 1
    res = Resources({"v": varargs, "k": kwonly, "m": Handler().method, "c": Handler()})
    assert invoke(res, "lambda", "v", {}) == ("ok", 2)
    assert invoke(res, "lambda", "k", {}) == ("ok", None)
    assert invoke(res, "lambda", "m", {}, state_name="Pay") == ("ok", "Pay")
    assert invoke(res, "lambda", "c", {}) == ("ok", "called")


def test_builtins_without_a_signature_get_one_argument():
    res = Resources({"len": len})
    assert invoke(res, "lambda", "len", [1, 2, 3]) == ("ok", 3)


# -- async handlers ------------------------------------------------------------------------------

def test_async_handlers_are_awaited():
    async def fetch(event, context):
        await asyncio.sleep(0)
        return {"n": event["n"] + 1, "state": context.state_name}

    res = Resources({"fetch": fetch})
    assert invoke(res, "lambda", "fetch", {"n": 1}) == ("ok", {"n": 2, "state": "S"})


def test_async_handler_failures_are_task_failures():
    class Declined(Exception):
        pass

    async def pay(event):
        raise Declined("card declined")

    out = invoke(Resources({"pay": pay}), "lambda", "pay", {})
    assert out[:2] == ("err", "Declined")
    assert json.loads(out[2])["errorMessage"] == "card declined"


ASYNC_IN_LOOP = (
    "resources._run_coroutine, when called on a thread whose event loop is running (statelang.run "
    "or Engine used from async code: a single invocation runs inline), creates a second loop and "
    "calls run_until_complete on the same thread, which asyncio refuses ('Cannot run the event loop "
    "while another loop is running'): the task fails with RuntimeError. Fix: run the coroutine on "
    "another thread, e.g. ThreadPoolExecutor(1).submit(asyncio.run, coro).result().")


def test_async_handler_called_from_inside_a_running_loop():
    async def h(event):
        return "inner"

    async def outer():
        return invoke(Resources({"h": h}), "lambda", "h", {})

    assert asyncio.run(outer()) == ("ok", "inner")


def test_run_from_async_code_with_an_async_handler():
    import statelang

    async def h(event):
        return 1

    async def main():
        return statelang.run({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "h", "End": True}}},
                             {}, handlers={"h": h})

    ex = asyncio.run(main())
    assert (ex.status, ex.output) == ("SUCCEEDED", 1)


def test_sync_handler_returning_an_awaitable_is_awaited():
    async def later():
        return 42

    assert invoke(Resources({"h": lambda e: later()}), "lambda", "h", {}) == ("ok", 42)


# -- errors ---------------------------------------------------------------------------------------

class CustomError(Exception):
    pass


def test_lambda_exception_becomes_error_type_and_error_document():
    # [EH]/[LAMBDA] error = the exception's type; cause = the JSON error document.
    def boom(event):
        raise CustomError("This is a custom error!")

    err, name, cause = invoke(Resources({"boom": boom}), "lambda", "boom", {})
    assert (err, name) == ("err", "CustomError")
    doc = json.loads(cause)
    assert doc["errorMessage"] == "This is a custom error!"
    assert doc["errorType"] == "CustomError"
    assert set(doc) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert isinstance(doc["stackTrace"], list) and doc["stackTrace"]
    assert any("boom" in line for line in doc["stackTrace"])


def test_lambda_invoke_exceptions_carry_the_error_document_too():
    def boom(event):
        raise ValueError("bad amount")

    out = invoke(Resources({"F": boom}), "lambda_invoke", "arn:aws:states:::lambda:invoke",
                 {"FunctionName": "F", "Payload": {}})
    assert out[1] == "ValueError" and json.loads(out[2])["errorType"] == "ValueError"


def test_error_attribute_names_the_error():
    class Tagged(Exception):
        error = "Payments.Declined"

    def boom(event):
        raise Tagged("no funds")

    out = invoke(Resources({"b": boom}), "lambda", "b", {})
    assert out[1] == "Payments.Declined"
    assert json.loads(out[2])["errorMessage"] == "no funds"


def test_handler_error_and_states_error_give_name_and_cause_verbatim():
    def he(event):
        raise HandlerError("Order.Invalid", "missing id")

    def se(event):
        raise StatesError("Custom.Thing", "plain cause")

    res = Resources({"he": he, "se": se})
    assert invoke(res, "lambda", "he", {}) == ("err", "Order.Invalid", "missing id")
    assert invoke(res, "lambda", "se", {}) == ("err", "Custom.Thing", "plain cause")


def test_service_integration_exceptions_have_a_plain_cause():
    def boom(event):
        raise KeyError("Item")

    out = invoke(Resources({"dynamodb:getItem": boom}), "service", "arn:aws:states:::dynamodb:getItem", {})
    assert out == ("err", "KeyError", "'Item'")


def test_non_json_result_is_a_runtime_error_naming_the_resource():
    out = invoke(Resources({"s": lambda e: {1, 2}}), "lambda", "s", {})
    assert out[:2] == ("err", "States.Runtime")
    assert "'s'" in out[2] and "not JSON" in out[2]


def test_a_type_error_raised_by_the_handler_is_a_task_failure():
    def bad(event):
        raise TypeError("unsupported operand")

    out = invoke(Resources({"b": bad}), "lambda", "b", {})
    assert out[1] == "TypeError"


def test_a_serialization_error_inside_the_handler_is_a_task_failure():
    def bad(event):
        return json.dumps({"tags": {"a"}})   # raises TypeError: Object of type set is not JSON serializable

    out = invoke(Resources({"b": bad}), "lambda", "b", {})
    assert out[1] == "TypeError"


def _cycle() -> dict:
    d: dict = {}
    d["self"] = d
    return d


def _deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("make", [lambda: {"tags": {"a"}}, lambda: [object()], _cycle],
                         ids=["a set", "an object", "a cycle"])
def test_a_result_that_is_not_json_fails_the_task_as_runtime(make):
    """What json.dumps refuses in a handler's result fails the task with States.Runtime, naming
    the handler; a reference cycle included, never a RecursionError out of the engine."""
    result = make()
    out = invoke(Resources({"b": lambda event: result}), "lambda", "b", {})
    assert out[:2] == ("err", "States.Runtime")
    assert out[2].startswith("The handler for 'b' returned a value that is not JSON: ")


def test_a_result_nested_deeper_than_orjson_writes_is_still_json():
    deep = _deep(300)   # orjson stops at 255 levels; json writes it
    assert invoke(Resources({"b": lambda event: deep}), "lambda", "b", {}) == ("ok", deep)


def test_handler_gets_a_copy_of_its_input():
    original = {"items": [1, 2]}

    def mutate(event):
        event["items"].append(3)
        return event

    spec = {"kind": "lambda", "resource": "m", "input": original}
    assert brief(Resources({"m": mutate}).invoke(spec, ctx())) == ("ok", {"items": [1, 2, 3]})
    assert original == {"items": [1, 2]}


@pytest.mark.parametrize("value", [None, 0, 1.5, "s", [], {}, [1, {"a": None}], True])
def test_any_json_value_is_a_result(value):
    assert invoke(Resources({"r": lambda e: value}), "lambda", "r", {}) == ("ok", value)
