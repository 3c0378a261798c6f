"""Paths, ResultPath and payload templates against the AWS developer guide's examples.

The language-neutral cases live in tests/compliance/paths.json (each case names the AWS behaviour
it pins); the tests below add what JSON cannot say: identity of objects, mutation, sentinels.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from statelang.language.env import Env
from statelang.language.errors import PathError, ResultPathMatchFailure, StatesError, StaticError
from statelang.language.paths import (
    MISSING,
    check_path,
    compile_input_path,
    compile_output_path,
    compile_path,
    compile_result_path,
    is_reference_path,
)
from statelang.language.payload_templates import check_template, compile_template

_SPEC = json.loads((Path(__file__).parent / "compliance" / "paths.json").read_text())
_KINDS = ("path", "inputPath", "outputPath", "template", "resultPath")


def _cases():
    for g, group in enumerate(_SPEC["groups"]):
        for c, case in enumerate(group["cases"]):
            kind = next(k for k in _KINDS if k in case)
            yield pytest.param(group, case, kind, id=f"{g}.{c}-{kind}-{case['pins'][:40]}")


def _evaluate(group: dict, case: dict, kind: str):
    env = Env(context=group.get("context"), variables=group.get("variables"))
    data = copy.deepcopy(group["given"])
    if kind == "path":
        return compile_path(case["path"])(data, env)
    if kind == "inputPath":
        return compile_input_path(case["inputPath"])(data, env)
    if kind == "outputPath":
        return compile_output_path(case["outputPath"])(data, env)
    if kind == "template":
        return compile_template(case["template"])(data, env)
    spec = case["resultPath"]
    out = compile_result_path(MISSING if spec == "__absent__" else spec)(data, case["taskResult"])
    assert data == group["given"], "ResultPath must not mutate the state input"
    return out


@pytest.mark.parametrize(("group", "case", "kind"), list(_cases()))
def test_compliance(group, case, kind):
    # Each case pins the AWS behaviour named in its "pins" field (see paths.json).
    if "error" not in case:
        assert _evaluate(group, case, kind) == case["result"]
        return
    expected = StaticError if case["error"] == "StaticError" else StatesError
    with pytest.raises(expected) as info:
        _evaluate(group, case, kind)
    if expected is StatesError:
        assert info.value.error == case["error"]
        assert info.value.cause == case["cause"]


def test_compliance_file_is_not_empty():
    assert sum(len(g["cases"]) for g in _SPEC["groups"]) >= 50


# --- InputPath / OutputPath: AWS says "If you omit the field, it gets the $ value"; null gives {}.

def test_absent_input_path_is_identity_and_null_is_a_fresh_empty_object():
    data = {"a": 1}
    assert compile_input_path(MISSING)(data, Env()) is data
    assert compile_output_path()(data, Env()) is data
    first = compile_input_path(None)(data, Env())
    first["x"] = 1
    assert compile_input_path(None)(data, Env()) == {}


def test_missing_is_falsy_singleton_distinct_from_null():
    from statelang.language.paths import Missing

    assert Missing() is MISSING and MISSING is not None and not MISSING


def test_path_errors_are_states_runtime():
    # AWS fails the state with States.Runtime when an InputPath does not match.
    with pytest.raises(PathError) as info:
        compile_path("$.a.b")({"a": {}}, Env())
    assert info.value.error == "States.Runtime"


def test_missing_intermediate_property_uses_jayway_text():
    # Jayway (which AWS uses) reports a missing non-leaf property of a definite path this way.
    with pytest.raises(PathError) as info:
        compile_path("$.a.b.c")({}, Env())
    assert info.value.cause == "Invalid path '$.a.b.c' : Missing property in path $['a']"


def test_string_is_not_indexable():
    # A JSON string is not an array: $.s[0] has no result (Python would give the first character).
    with pytest.raises(PathError):
        compile_path("$.s[0]")({"s": "abc"}, Env())


def test_undefined_variable_is_a_runtime_error():
    with pytest.raises(PathError):
        compile_path("$nope.x")({}, Env(variables={"other": 1}))


def test_quoted_names_with_dots_and_escapes():
    data = {"a.b": {"it's": 1}}
    assert compile_path("$['a.b']['it\\'s']")(data, Env()) == 1
    assert compile_path('$["a.b"]["it\'s"]')(data, Env()) == 1


# --- ResultPath: copy-on-write, AWS's "Unable to apply ReferencePath" text.

def test_result_path_shares_untouched_subtrees_and_copies_the_spine():
    data = {"keep": {"big": [1, 2, 3]}, "a": {"b": 1}}
    out = compile_result_path("$.a.c")(data, "r")
    assert out == {"keep": {"big": [1, 2, 3]}, "a": {"b": 1, "c": "r"}}
    assert out["keep"] is data["keep"]
    assert out is not data and out["a"] is not data["a"]
    assert data == {"keep": {"big": [1, 2, 3]}, "a": {"b": 1}}


def test_result_path_into_array_element():
    data = {"items": [{"n": 1}, {"n": 2}]}
    assert compile_result_path("$.items[1].r")(data, 9) == {"items": [{"n": 1}, {"n": 2, "r": 9}]}
    with pytest.raises(ResultPathMatchFailure):
        compile_result_path("$.items[5]")(data, 9)


@pytest.mark.parametrize("state_input", [[1, 2], 3, None, True])
def test_result_path_on_non_object_input(state_input):
    # aws/aws-cdk#29473: "Unable to apply ReferencePath $.partitioned to input \"...\"" on a string input;
    # the error is the spec's States.ResultPathMatchFailure (States Language spec, errors table).
    with pytest.raises(ResultPathMatchFailure) as info:
        compile_result_path("$.x")(state_input, 1)
    assert info.value.error == "States.ResultPathMatchFailure"
    assert info.value.cause == f"Unable to apply ReferencePath $.x to input {json.dumps(state_input, separators=(',', ':'))}"


def test_result_path_null_returns_input_and_dollar_returns_result():
    data, result = {"a": 1}, {"b": 2}
    assert compile_result_path(None)(data, result) is data
    assert compile_result_path("$")(data, result) is result


@pytest.mark.parametrize("bad", ["$.a[*]", "$..a", "$$.Execution.Id", "$var.x", "a", 3, "$.a["])
def test_result_path_must_be_a_reference_into_the_input(bad):
    with pytest.raises(StaticError):
        compile_result_path(bad)


# --- Payload templates.

def test_constant_template_returns_fresh_copies():
    template = {"a": {"b": [1, 2]}, "c": "x"}
    fn = compile_template(template)
    first = fn({}, Env())
    first["a"]["b"].append(3)
    assert fn({}, Env()) == {"a": {"b": [1, 2]}, "c": "x"}
    assert template == {"a": {"b": [1, 2]}, "c": "x"}


def test_template_constant_parts_are_fresh_next_to_bindings():
    fn = compile_template({"k.$": "$.v", "lit": {"z": [1]}})
    first = fn({"v": 1}, Env())
    first["lit"]["z"].append(2)
    assert fn({"v": 1}, Env()) == {"k": 1, "lit": {"z": [1]}}


def test_template_miss_on_context_path_uses_template_text():
    # Same AWS text as for input paths ("The JSONPath ... specified for the field ... could not be found").
    with pytest.raises(PathError) as info:
        compile_template({"t.$": "$$.Task.Token"})({}, Env(context={"Execution": {}}))
    assert info.value.cause.startswith("The JSONPath '$$.Task.Token' specified for the field 't.$' could not be found")


def test_template_indefinite_path_yields_list():
    fn = compile_template({"ids.$": "$.items[*].id"})
    assert fn({"items": [{"id": 1}, {"id": 2}, {}]}, Env()) == {"ids": [1, 2]}


def test_template_intrinsic_call():
    # AWS: a '.$' value starting with 'States.' is an intrinsic function call.
    fn = compile_template({"msg.$": "States.Format('Hello, {}', $.name)"})
    assert fn({"name": "World"}, Env()) == {"msg": "Hello, World"}


# --- Validation helpers.

def test_is_reference_path():
    assert is_reference_path("$") and is_reference_path("$.a['b'][0]") and is_reference_path("$$.Execution.Id")
    assert is_reference_path("$var.x")
    for p in ["$.a[*]", "$..a", "$.a[0:1]", "$.a[?(@.x)]", "$.a[0,1]", "a", "$.a["]:
        assert not is_reference_path(p), p


def test_check_path():
    assert check_path("$.a[*]") is None
    assert check_path("$.a[*]", reference=True) is not None
    assert check_path("$.a[") is not None
    assert check_path("nope") is not None
    assert check_path(3) is not None  # type: ignore[arg-type]


def test_check_template_reports_json_pointers_and_aws_text():
    template = {
        "ok.$": "$.a",
        "n.$": 3,
        "Payload": {"x.$": "not a path", "list": [{"y.$": "$.["}]},
        "a/b.$": "$$.[",
    }
    found = dict(check_template(template))
    assert set(found) == {"/n.$", "/Payload/x.$", "/Payload/list/0/y.$", "/a~1b.$"}
    assert found["/Payload/x.$"] == (
        "The value for the field 'x.$' must be a valid JSONPath or a valid intrinsic function call")
    assert check_template({"fine.$": "$.x", "nested": [{"k.$": "$$.Execution"}]}) == []


def test_static_errors_carry_the_aws_template_text():
    with pytest.raises(StaticError, match="must be a valid JSONPath or a valid intrinsic function call"):
        compile_template({"a": {"b.$": "plain"}}, "ResultSelector")
