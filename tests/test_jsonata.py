"""QueryLanguage JSONata, end to end through `statelang.run`, plus the compliance file.

Sources pinned per test: the AWS developer guide pages "Transforming data with JSONata in Step
Functions" (TJ) and "Passing data between states with variables" (PV), and executions recorded on
AWS in localstack/localstack tests/aws/services/stepfunctions (LS).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import statelang
from statelang.language.env import Env
from statelang.language.jsonata import Expression, bindings, compile_template

QEE = "States.QueryEvaluationError"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"


def machine(states: dict, start: str | None = None) -> dict:
    return {"QueryLanguage": "JSONata", "StartAt": start or next(iter(states)), "States": states}


def run(defn: dict, input=None, **handlers):
    return statelang.run(defn, {} if input is None else input, handlers=handlers, clock="virtual")


def exited(ex, name: str) -> dict:
    for ev in ex.history:
        d = ev.get("stateExitedEventDetails")
        if d and d["name"] == name:
            return d
    raise AssertionError(f"no exit of {name}")


# -- compliance file ---------------------------------------------------------------------------
_FILE = json.loads((Path(__file__).parent / "compliance" / "jsonata.json").read_text())
_CASES = [(g["given"], c) for g in _FILE for c in g["cases"]]


@pytest.mark.parametrize("given,case", _CASES, ids=[c["expression"] for _, c in _CASES])
def test_compliance(given, case):
    setup = {"Type": "Pass", "Assign": given.get("variables", {}), "Next": "Probe"}
    probe = {"Type": "Pass", "Output": "{% " + case["expression"] + " %}", "End": True}
    ex = run(machine({"Setup": setup, "Probe": probe}), given["input"])
    if "error" in case:
        assert (ex.status, ex.error) == ("FAILED", QEE), ex
        assert case["error"] in ex.cause
        assert f"The JSONata expression '{case['expression']}' specified for the field 'Output'" in ex.cause
    else:
        assert ex.status == "SUCCEEDED", ex
        assert ex.output == case["result"]


# -- states ------------------------------------------------------------------------------------
def test_task_arguments_output_and_result():
    # TJ: Arguments build the task input from $states.input; Output reads $states.result.
    seen = []

    def double(event):
        seen.append(event)
        return {"value": event["n"] * 2}

    defn = machine({"T": {"Type": "Task", "Resource": FN + "double",
                          "Arguments": {"n": "{% $states.input.n %}", "fixed": [1, "{% $states.input.n %}"]},
                          "Output": {"doubled": "{% $states.result.value %}", "was": "{% $states.input.n %}"},
                          "End": True}})
    ex = run(defn, {"n": 21}, double=double)
    assert ex.output == {"doubled": 42, "was": 21}
    assert seen == [{"n": 21, "fixed": [1, 21]}]


def test_task_default_output_is_the_result():
    # TJ: without Output a Task's output is its result ($states.result), not its input.
    ex = run(machine({"T": {"Type": "Task", "Resource": FN + "f", "End": True}}), {"a": 1},
             f=lambda e: {"b": 2})
    assert ex.output == {"b": 2}


def test_json_null_is_a_value_and_undefined_fails_naming_the_field():
    # AWS: "The JSONata expression '$states.input.pushLocation' specified for the field
    # 'Arguments/Input/pushLocation' returned nothing (undefined)." (error States.QueryEvaluationError)
    ok = run(machine({"P": {"Type": "Pass", "Output": {"v": "{% $states.input.bar %}"}, "End": True}}),
             {"bar": None})
    assert ok.output == {"v": None}
    bad = run(machine({"P": {"Type": "Pass", "Output": {"a": {"b": [0, "{% $states.input.absent %}"]}},
                             "End": True}}))
    assert bad.error == QEE
    assert bad.cause.endswith("The JSONata expression '$states.input.absent' specified for the field "
                              "'Output/a/b[1]' returned nothing (undefined).")


def test_undefined_output_cause_has_the_state_prefix():
    # LS BASE_UNDEFINED_OUTPUT; AWS prefixes the cause as for States.Runtime:
    # "An error occurred while executing the state 'State0' (entered at the event id #2). The
    # JSONata expression '$doesNotExist' specified for the field 'Output' returned nothing (undefined)."
    ex = run(machine({"State0": {"Type": "Pass", "Output": "{% $doesNotExist %}", "End": True}}))
    assert ex.cause == ("An error occurred while executing the state 'State0' (entered at the event id #2). "
                        "The JSONata expression '$doesNotExist' specified for the field 'Output' "
                        "returned nothing (undefined).")


def test_query_evaluation_error_is_catchable_with_error_output():
    # TJ: Catch Output/Assign read $states.errorOutput; without Output the state's output is the
    # error output.
    defn = machine({
        "T": {"Type": "Task", "Resource": FN + "boom", "Arguments": {"x": "{% $states.input.missing %}"},
              "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Caught",
                         "Assign": {"err": "{% $states.errorOutput.Error %}"},
                         "Output": {"e": "{% $states.errorOutput.Error %}", "in": "{% $states.input %}"}}],
              "End": True},
        "Caught": {"Type": "Pass", "Output": {"e": "{% $states.input.e %}", "v": "{% $err %}"}, "End": True}})
    ex = run(defn, {"k": 1}, boom=lambda e: 1 / 0)
    assert ex.output == {"e": QEE, "v": QEE}
    assert exited(ex, "T")["assignedVariables"] == {"err": json.dumps(QEE)}


def test_catch_without_output_passes_the_error_output():
    defn = machine({"T": {"Type": "Task", "Resource": FN + "boom",
                          "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}], "End": True},
                    "Done": {"Type": "Succeed"}})
    ex = run(defn, {}, boom=lambda e: (_ for _ in ()).throw(ValueError("bad")))
    assert ex.output["Error"] == "ValueError" and ex.output["Cause"]


def test_choice_conditions_rule_output_and_assign():
    # TJ: a JSONata Choice rule has Condition, and may carry its own Output and Assign.
    defn = machine({
        "C": {"Type": "Choice", "Choices": [
            {"Condition": "{% $states.input.n > 10 %}", "Next": "Big",
             "Output": {"size": "big"}, "Assign": {"picked": "{% $states.input.n %}"}},
            {"Condition": "{% $states.input.n > 5 %}", "Next": "Mid"}],
              "Default": "Small"},
        "Big": {"Type": "Pass", "Output": {"size": "{% $states.input.size %}", "p": "{% $picked %}"}, "End": True},
        "Mid": {"Type": "Pass", "Output": "mid", "End": True},
        "Small": {"Type": "Pass", "Output": "{% $states.input %}", "End": True}})
    assert run(defn, {"n": 11}).output == {"size": "big", "p": 11}
    assert run(defn, {"n": 6}).output == "mid"
    assert run(defn, {"n": 1}).output == {"n": 1}


def test_choice_condition_must_be_boolean():
    defn = machine({"C": {"Type": "Choice", "Choices": [{"Condition": "{% $states.input.n %}", "Next": "X"}],
                          "Default": "X"}, "X": {"Type": "Succeed"}})
    ex = run(defn, {"n": 3})
    assert ex.error == QEE and "Choices[0]/Condition" in ex.cause


def test_map_items_item_selector_and_context():
    # TJ: Items (an array or expression) and ItemSelector reading $states.context.Map.Item.
    defn = machine({"M": {"Type": "Map", "Items": "{% $states.input.xs %}", "MaxConcurrency": "{% 1 %}",
                          "ItemSelector": {"i": "{% $states.context.Map.Item.Index %}",
                                           "v": "{% $states.context.Map.Item.Value * 10 %}",
                                           "tag": "{% $states.input.tag %}"},
                          "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                          "Output": "{% $states.result %}", "End": True}})
    ex = run(defn, {"xs": [1, 2], "tag": "t"})
    assert ex.output == [{"i": 0, "v": 10, "tag": "t"}, {"i": 1, "v": 20, "tag": "t"}]


def test_map_items_must_be_an_array():
    # LS (JSONata Map): "... specified for the field 'Items' returned an unexpected result type.
    # Expected 'array', but was 'object' for value: {...}"
    defn = machine({"M": {"Type": "Map", "Items": "{% $states.input %}",
                          "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                          "End": True}})
    ex = run(defn, {"a": 1})
    assert ex.error == QEE
    assert ex.cause.endswith("The JSONata expression '$states.input' specified for the field 'Items' returned "
                             "an unexpected result type. Expected 'array', but was 'object' for value: {\"a\":1}")


def test_parallel_arguments_and_output():
    def branch(name):   # state names are unique across the whole machine
        return {"StartAt": name, "States": {name: {"Type": "Pass", "Output": "{% $states.input.v + 1 %}", "End": True}}}
    defn = machine({"Par": {"Type": "Parallel", "Arguments": {"v": "{% $states.input.n %}"},
                            "Branches": [branch("B1"), branch("B2")], "Output": "{% $sum($states.result) %}",
                            "End": True}})
    assert run(defn, {"n": 1}).output == 4


def test_wait_seconds_and_fail_fields_are_expressions():
    defn = machine({"W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "Next": "F"},
                    "F": {"Type": "Fail", "Error": "{% 'E.' & $states.input.kind %}",
                          "Cause": "{% $string($states.input.s) %}"}})
    ex = run(defn, {"s": 3600, "kind": "Custom"})
    assert (ex.status, ex.error, ex.cause) == ("FAILED", "E.Custom", "3600")


def test_task_timeout_seconds_expression():
    defn = machine({"T": {"Type": "Task", "Resource": FN + "f", "TimeoutSeconds": "{% $states.input.t %}",
                          "End": True}})
    ex = run(defn, {"t": 7}, f=lambda e: 1)
    sched = [e for e in ex.history if e["type"] == "LambdaFunctionScheduled"][0]
    assert sched["lambdaFunctionScheduledEventDetails"]["timeoutInSeconds"] == 7


def test_now_reads_the_state_entered_time():
    # Time is injected: $now() is the state's entered time, the same on every replay.
    defn = machine({"P": {"Type": "Pass", "Output": {"now": "{% $now() %}",
                                                     "entered": "{% $states.context.State.EnteredTime %}"},
                          "End": True}})
    out = run(defn).output
    assert out["now"] == out["entered"]


def test_uuid_and_random_are_reproducible_per_execution():
    defn = machine({"P": {"Type": "Pass", "Output": {"u": "{% $uuid() %}", "r": "{% $random() %}"}, "End": True}})
    a, b = run(defn).output, run(defn).output
    assert a == b and len(a["u"]) == 36 and 0 <= a["r"] < 1


def test_expression_compiled_once_and_throughput():
    expr = compile_template({"v": "{% $states.input.a + $x %}"}, "Output")
    env = Env({}, {"x": 1})
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        assert expr(bindings(env, {"a": i})) == {"v": i + 1}
    rate = n / (time.perf_counter() - t0)
    print(f"\nJSONata evaluations/s: {rate:,.0f}")
    assert rate > 500


def test_invalid_expression_is_a_static_error():
    from statelang.language.errors import StaticError
    with pytest.raises(StaticError):
        Expression("1 +", "Output")
