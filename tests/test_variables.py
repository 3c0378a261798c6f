"""Workflow variables: Assign in both query languages, scopes, history, name rules.

Sources: the AWS developer guide page "Passing data between states with variables" (PV), and
executions recorded on AWS in localstack/localstack tests/aws/services/stepfunctions/v2/assign (LS).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import statelang
from statelang.language.env import Env
from statelang.language.payload_templates import compile_template
from statelang.language.variables import check_assign, compile_jsonpath_assign

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
_FILE = json.loads((Path(__file__).parent / "compliance" / "variables.json").read_text())


def run(defn: dict, input=None, **handlers):
    return statelang.run(defn, {} if input is None else input, handlers=handlers, clock="virtual")


def assigned(ex) -> dict:
    out = {}
    for ev in ex.history:
        d = ev.get("stateExitedEventDetails")
        if d and "assignedVariables" in d:
            out.setdefault(d["name"], []).append(d["assignedVariables"])
    return out


@pytest.mark.parametrize("case", _FILE[0]["cases"], ids=lambda c: json.dumps(c["assign"]))
def test_name_rules(case):
    assert len(check_assign(case["assign"], case["language"])) == case["problems"]


@pytest.mark.parametrize("case", _FILE[1]["runs"], ids=["from_result", "paths", "reference_in_parameters"])
def test_jsonpath_assign_recorded_runs(case):
    ex = run(case["definition"], case["input"])
    assert ex.status == "SUCCEEDED", ex
    assert ex.output == case["output"]
    got = assigned(ex)
    for state, variables in case["assigned"].items():
        assert got[state][0] == variables


def test_jsonpath_assign_reads_the_selected_result():
    # PV: in JSONPath states Assign reads the state's result, after ResultSelector.
    selector = compile_template({"v.$": "$.Payload"}, "ResultSelector")
    fn = compile_jsonpath_assign({"x.$": "$.v", "raw": 1}, "Task", selector)
    assert fn({"input": 1}, {"Payload": 5}, Env()) == {"x": 5, "raw": 1}
    plain = compile_jsonpath_assign({"x.$": "$.Payload"}, "Task")
    assert plain({}, {"Payload": None}, Env()) == {"x": None}  # a null result stays the result


def test_jsonata_variables_across_states_and_history():
    # PV: "Assign": {"productName": "product1", "count": 42, "available": true}; referenced as $name.
    defn = {"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"productName": "product1", "count": 42, "available": True},
              "Next": "B"},
        "B": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Pass", "Output": {"p": "{% $productName %}", "c": "{% $count + 1 %}"}, "End": True}}}
    ex = run(defn)
    assert ex.output == {"p": "product1", "c": 43}
    assert assigned(ex) == {"A": [{"productName": '"product1"', "count": "42", "available": "true"}]}


def test_assign_reads_variables_as_of_state_entry():
    # PV: all expressions in Assign see the variables as they were when the state was entered,
    # so two variables swap in one Assign.
    defn = {"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 1, "y": 2}, "Next": "B"},
        "B": {"Type": "Pass", "Assign": {"x": "{% $y %}", "y": "{% $x %}"}, "Next": "C"},
        "C": {"Type": "Pass", "Output": ["{% $x %}", "{% $y %}"], "End": True}}}
    assert run(defn).output == [2, 1]


def test_task_assign_reads_result_and_output_runs_side_by_side():
    # PV: Assign and Output are evaluated side by side; Assign can read $states.result.
    defn = {"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN + "price", "Assign": {"price": "{% $states.result.p %}"},
              "Output": {"old": "{% $exists($price) %}"}, "Next": "N"},
        "N": {"Type": "Pass", "Output": "{% $price %}", "End": True}}}
    ex = run(defn, {}, price=lambda e: {"p": 9.5})
    assert ex.output == 9.5
    assert assigned(ex)["T"] == [{"price": "9.5"}]


def test_map_iterations_read_outer_variables_and_cannot_assign_them():
    # LS BASE_SCOPE_MAP (recorded on AWS): iterations read $x of the outer scope; after the Map
    # the outer $x is unchanged and innerX is not visible.
    defn = {"StartAt": "State0", "States": {
        "State0": {"Type": "Pass", "Assign": {"x": 42, "items": [1, 2, 3]}, "Next": "State1"},
        "State1": {"Type": "Map", "ItemsPath": "$items", "MaxConcurrency": 1,
                   "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Inner", "States": {
                       "Inner": {"Type": "Pass", "Assign": {"innerX.$": "$x", "x": 0}, "End": True}}},
                   "Next": "State2"},
        "State2": {"Type": "Pass", "Assign": {"final.$": "$x"}, "End": True}}}
    ex = run(defn)
    assert ex.status == "SUCCEEDED", ex
    got = assigned(ex)
    assert got["Inner"] == [{"innerX": "42", "x": "0"}] * 3
    assert got["State2"] == [{"final": "42"}]


def test_parallel_branches_read_outer_variables_and_cannot_assign_them():
    def branch(name):   # state names are unique across the whole machine (States Language spec)
        return {"StartAt": name, "States": {name: {"Type": "Pass", "Assign": {"v": "{% $v + 1 %}"},
                                                   "Output": "{% $v %}", "End": True}}}
    defn = {"QueryLanguage": "JSONata", "StartAt": "S", "States": {
        "S": {"Type": "Pass", "Assign": {"v": 10}, "Next": "P"},
        "P": {"Type": "Parallel", "Branches": [branch("B1"), branch("B2")], "Next": "After"},
        "After": {"Type": "Pass", "Output": {"v": "{% $v %}", "r": "{% $states.input %}"}, "End": True}}}
    assert run(defn).output == {"v": 10, "r": [10, 10]}


def test_inner_assign_is_not_visible_after_the_map():
    defn = {"QueryLanguage": "JSONata", "StartAt": "M", "States": {
        "M": {"Type": "Map", "Items": [1],
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"inner": 1},
                                                                 "End": True}}},
              "Next": "After"},
        "After": {"Type": "Pass", "Output": "{% $inner %}", "End": True}}}
    ex = run(defn)
    assert ex.error == "States.QueryEvaluationError" and "'$inner'" in ex.cause


def test_map_assign_sees_results():
    defn = {"QueryLanguage": "JSONata", "StartAt": "M", "States": {
        "M": {"Type": "Map", "Items": [1, 2],
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass",
                                                                 "Output": "{% $states.input * 2 %}",
                                                                 "End": True}}},
              "Assign": {"total": "{% $sum($states.result) %}"}, "Next": "After"},
        "After": {"Type": "Pass", "Output": "{% $total %}", "End": True}}}
    assert run(defn).output == 6


def test_jsonpath_catch_assign_reads_the_error_output():
    # PV: in a Catch, Assign reads the error output ({"Error", "Cause"}).
    defn = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN + "boom",
              "Catch": [{"ErrorEquals": ["States.ALL"], "Assign": {"err.$": "$.Error"}, "Next": "D"}],
              "End": True},
        "D": {"Type": "Pass", "Parameters": {"e.$": "$err"}, "End": True}}}
    ex = run(defn, {}, boom=lambda e: 1 / 0)
    assert ex.output == {"e": "ZeroDivisionError"}


def test_jsonpath_task_assign_after_result_selector_end_to_end():
    defn = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN + "f", "ResultSelector": {"v.$": "$.n"},
              "Assign": {"x.$": "$.v"}, "Next": "D"},
        "D": {"Type": "Pass", "Parameters": {"x.$": "$x"}, "End": True}}}
    assert run(defn, {}, f=lambda e: {"n": 3}).output == {"x": 3}
