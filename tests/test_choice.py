"""Choice Rules (JSONPath) against AWS's documented and observed behaviour.

The language-neutral cases live in tests/compliance/choice.json (each names the behaviour it
pins); the tests below add what JSON cannot say: compile-once, diagnostics and their locations,
the Choices list, and the timestamp parser's own contract.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from statelang.language.choice import check_choice_rule, compile_choice_rule, compile_choices, string_matches
from statelang.language.env import Env
from statelang.language.errors import PathError, StatesError, StaticError
from statelang.language.timestamps import is_timestamp, parse_timestamp, timestamp_key

_SPEC = json.loads((Path(__file__).parent / "compliance" / "choice.json").read_text(encoding="utf-8"))
INVALID = "Invalid path '{}': The choice state's condition path references an invalid value."


def _cases():
    for g, group in enumerate(_SPEC["groups"]):
        for c, case in enumerate(group["cases"]):
            yield pytest.param(group, case, id=f"{g}.{c}-{case['pins'][:50]}")


@pytest.mark.parametrize(("group", "case"), list(_cases()))
def test_compliance(group, case):
    env = Env(context=group.get("context"), variables=group.get("variables"))
    data = case["input"] if "input" in case else group["given"]
    if case.get("error") == "StaticError":
        with pytest.raises(StaticError):
            compile_choice_rule(case["rule"])
        # The validator must refuse what the compiler refuses.
        assert check_choice_rule(dict(case["rule"], Next="X"), "/R")
        return
    predicate = compile_choice_rule(case["rule"])
    assert check_choice_rule(dict(case["rule"], Next="X"), "/R") == []
    if "error" in case:
        with pytest.raises(StatesError) as info:
            predicate(data, env)
        assert info.value.error == case["error"]
        assert info.value.cause == case["cause"]
    else:
        assert predicate(data, env) is case["result"]


def test_compliance_file_covers_every_operator():
    # Every operator AWS lists for JSONPath Choice Rules appears in at least one case.
    text = json.dumps(_SPEC)
    ops = [f"{fam}{cmp}{p}" for fam in ("String", "Numeric", "Timestamp")
           for cmp in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
           for p in ("", "Path")]
    ops += ["BooleanEquals", "StringMatches", "IsNull", "IsPresent", "IsNumeric", "IsString",
            "IsBoolean", "IsTimestamp", "And", "Or", "Not"]
    missing = [op for op in ops if f'"{op}"' not in text]
    assert len(_SPEC["groups"]) >= 6
    # Ordering Path variants are exercised in the unit tests below where the JSON has none.
    assert all(op.endswith("Path") for op in missing), missing


@pytest.mark.parametrize(("op", "left", "right", "expected"), [
    ("StringGreaterThanPath", "b", "a", True), ("StringLessThanEqualsPath", "a", "a", True),
    ("StringGreaterThanEqualsPath", "a", "b", False), ("StringEqualsPath", "a", "a", True),
    ("NumericLessThanPath", 1, 2, True), ("NumericLessThanEqualsPath", 2, 2.0, True),
    ("NumericGreaterThanEqualsPath", 1, 2, False), ("NumericGreaterThanPath", 3, 2, True),
    ("TimestampEqualsPath", "2020-01-01T00:00:00Z", "2020-01-01T01:00:00+01:00", True),
    ("TimestampGreaterThanPath", "2020-01-01T00:00:01Z", "2020-01-01T00:00:00Z", True),
    ("TimestampGreaterThanEqualsPath", "2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z", False),
    ("TimestampLessThanEqualsPath", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000Z", True),
    ("BooleanEqualsPath", True, True, True), ("BooleanEqualsPath", True, 1, False),
])
def test_path_variants_read_the_right_side_from_the_input(op, left, right, expected):
    # AWS: appending Path to an operator compares the Variable with another value of the input.
    rule = compile_choice_rule({"Variable": "$.l", op: "$.r"})
    assert rule({"l": left, "r": right}, Env()) is expected


def test_missing_variable_raises_path_error_with_aws_cause():
    # AWS reports States.Runtime "Invalid path '$.x': The choice state's condition path references
    # an invalid value." (the interpreter prefixes the state name and event id).
    rule = compile_choice_rule({"Variable": "$.x", "StringEquals": "a"})
    with pytest.raises(PathError) as info:
        rule({}, Env())
    assert info.value.error == "States.Runtime"
    assert info.value.cause == INVALID.format("$.x")


@pytest.mark.parametrize("data", [None, [], "text", 3])
def test_non_object_input_is_a_missing_variable(data):
    # A field of a non-object input does not resolve: the same States.Runtime as a missing field.
    rule = compile_choice_rule({"Variable": "$.x", "NumericEquals": 1})
    with pytest.raises(PathError):
        rule(data, Env())
    assert compile_choice_rule({"Variable": "$.x", "IsPresent": False})(data, Env()) is True


def test_compiled_once_then_evaluated_with_different_inputs_and_envs():
    # Compile once, evaluate many: one closure, many inputs, no re-parsing.
    rule = compile_choice_rule({"Variable": "$v", "NumericGreaterThanPath": "$.n"})
    assert rule({"n": 1}, Env(variables={"v": 2})) is True
    assert rule({"n": 3}, Env(variables={"v": 2})) is False
    assert rule({"n": 3}, Env(variables={"v": 4})) is True


def test_rule_is_not_mutated_and_later_edits_do_not_leak_in():
    rule = {"Variable": "$.s", "StringMatches": "a*"}
    snapshot = json.dumps(rule)
    predicate = compile_choice_rule(rule)
    assert json.dumps(rule) == snapshot
    rule["StringMatches"] = "zzz"
    assert predicate({"s": "abc"}, Env()) is True


# ------------------------------------------------------------------------------------ compile_choices

CHOICES = [  # AWS developer guide example: Public / ValueIsZero / ValueInTwenties, Default otherwise
    {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
    {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
    {"And": [{"Variable": "$.value", "NumericGreaterThanEquals": 20},
             {"Variable": "$.value", "NumericLessThan": 30}], "Next": "ValueInTwenties"},
]


@pytest.mark.parametrize(("data", "expected"), [
    ({"type": "Public", "value": 22}, "Public"),          # first matching rule wins, in order
    ({"type": "Private", "value": 0}, "ValueIsZero"),
    ({"type": "Private", "value": 22}, "ValueInTwenties"),
    ({"type": "Private", "value": 35}, None),             # no match: caller takes Default
])
def test_compile_choices_takes_the_first_matching_rule(data, expected):
    assert compile_choices(CHOICES)(data, Env()) == expected


def test_compile_choices_stops_at_the_first_match():
    # Rules after the matching one are not evaluated: a later rule on a missing field cannot fail.
    choose = compile_choices([{"Variable": "$.a", "IsPresent": True, "Next": "A"},
                              {"Variable": "$.missing", "NumericEquals": 1, "Next": "B"}])
    assert choose({"a": 1}, Env()) == "A"
    with pytest.raises(PathError):
        choose({}, Env())


def test_compile_choices_refuses_malformed_rules_at_compile_time():
    with pytest.raises(StaticError):
        compile_choices([{"Variable": "$.a", "Next": "A"}])
    with pytest.raises(StaticError):
        compile_choices({"Variable": "$.a"})


# --------------------------------------------------------------------------------- check_choice_rule

def _d(rule, loc="/States/C/Choices/0"):
    return [(d.code, d.location, d.message) for d in check_choice_rule(rule, loc)]


def test_valid_rules_have_no_diagnostics():
    for rule in CHOICES:
        assert _d(rule) == []
    assert _d({"Variable": "$.a", "IsNull": True, "Next": "X", "Comment": "c", "Assign": {"x": 1}}) == []


@pytest.mark.parametrize(("rule", "where", "fragment"), [
    ({"Variable": "$.a", "Next": "X"}, "", "comparison operator"),
    ({"Variable": "$.a", "NumericEquals": 1, "StringEquals": "a", "Next": "X"}, "",
     "There should only be one of the following fields: [NumericEquals, StringEquals]"),
    ({"Variable": "$.a", "Frobnicate": 1, "IsNull": True, "Next": "X"}, "/Frobnicate",
     "Field 'Frobnicate' is not supported"),
    ({"Variable": "$.a", "StringEquals": 1, "Next": "X"}, "/StringEquals", "Expected value of type String"),
    ({"Variable": "$.a", "NumericEquals": "1", "Next": "X"}, "/NumericEquals", "Expected value of type Number"),
    ({"Variable": "$.a", "BooleanEquals": 1, "Next": "X"}, "/BooleanEquals", "Expected value of type Boolean"),
    ({"Variable": "$.a", "TimestampLessThan": "yesterday", "Next": "X"}, "/TimestampLessThan", "valid timestamp"),
    ({"Variable": "$.a", "IsPresent": "true", "Next": "X"}, "/IsPresent", "Expected value of type Boolean"),
    ({"NumericEquals": 1, "Next": "X"}, "", "These fields are required: [Variable]"),
    ({"Variable": "a.b", "NumericEquals": 1, "Next": "X"}, "/Variable", "valid ReferencePath"),
    ({"Variable": 7, "NumericEquals": 1, "Next": "X"}, "/Variable", "valid ReferencePath"),
    ({"Variable": "$.a", "NumericEqualsPath": "$.b[*]", "Next": "X"}, "/NumericEqualsPath", "valid ReferencePath"),
    ({"And": {}, "Next": "X"}, "/And", "Expected value of type Array"),
    ({"Or": [], "Next": "X"}, "/Or", "Minimum number of items is 1"),
    ({"Not": [], "Next": "X"}, "/Not", "Expected value of type Object"),
    ({"Variable": "$.a", "IsNull": True}, "", "These fields are required: [Next]"),
    ({"Not": {"Variable": "$.a", "IsNull": True, "Next": "X"}, "Next": "X"}, "/Not/Next",
     "Field 'Next' is not supported"),
    ({"And": [{"Variable": "$.a", "IsNull": True}, {"Variable": "$.a"}], "Next": "X"}, "/And/1",
     "comparison operator"),
    ({"And": [{"Variable": "$.a", "IsNull": True, "Assign": {}}], "Next": "X"}, "/And/0/Assign",
     "Field 'Assign' is not supported"),
])
def test_diagnostics_name_the_problem_and_its_json_pointer(rule, where, fragment):
    # AWS reports SCHEMA_VALIDATION_FAILED at the offending field of the rule.
    found = _d(rule)
    assert any(code == "SCHEMA_VALIDATION_FAILED" and loc == "/States/C/Choices/0" + where and fragment in msg
               for code, loc, msg in found), found


def test_non_object_rule_is_a_type_error():
    assert _d("nope") == [("SCHEMA_VALIDATION_FAILED", "/States/C/Choices/0", "Expected value of type Object")]


def test_every_problem_is_reported_not_only_the_first():
    found = _d({"And": [{"Variable": "$.a", "StringEquals": 1}, {"Variable": "x", "IsNull": True}]})
    assert {loc for _, loc, _ in found} == {"/States/C/Choices/0", "/States/C/Choices/0/And/0/StringEquals",
                                            "/States/C/Choices/0/And/1/Variable"}


def test_json_pointer_escapes_field_names():
    assert _d({"Variable": "$.a", "IsNull": True, "a/b~c": 1, "Next": "X"})[0][1] == "/States/C/Choices/0/a~1b~0c"


def test_deep_nesting_is_refused_not_a_recursion_error():
    rule: dict = {"Variable": "$.a", "IsNull": True}
    for _ in range(500):
        rule = {"Not": rule}
    with pytest.raises(StaticError):
        compile_choice_rule(rule)
    assert _d(dict(rule, Next="X"))


# ------------------------------------------------------------------------------------ StringMatches

@pytest.mark.parametrize(("text", "pattern", "expected"), [
    ("log-1.txt", "log-*.txt", True), ("a*b", "a\\*b", True), ("axb", "a\\*b", False),
    ("a\\b", "a\\\\b", True), ("a\\xb", "a\\x*", True),  # a backslash before another character is literal
    ("", "", True), ("x", "", False), ("aaa", "a*a*a", True), ("aa", "a*a*a", False),
])
def test_string_matches(text, pattern, expected):
    assert string_matches(text, pattern) is expected


def test_string_matches_is_not_quadratic_backtracking():
    # A regex translation backtracks badly on this; the segment matcher answers at once.
    assert string_matches("a" * 50_000, "*a" * 200 + "b") is False


# ------------------------------------------------------------------------------------- timestamps

@pytest.mark.parametrize(("text", "expected"), [
    ("2016-03-14T01:59:00Z", datetime(2016, 3, 14, 1, 59, tzinfo=UTC)),
    ("2016-03-14T01:59:00.5Z", datetime(2016, 3, 14, 1, 59, 0, 500000, tzinfo=UTC)),
    ("2016-03-14T01:59:00.123456789+05:30",
     datetime(2016, 3, 14, 1, 59, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
    ("2016-03-14T01:59:00-00:00", datetime(2016, 3, 14, 1, 59, tzinfo=UTC)),
    ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
])
def test_parse_timestamp_accepts_rfc3339(text, expected):
    got = parse_timestamp(text)
    assert got == expected and got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", [
    "2016-03-14T01:59:00", "2016-03-14 01:59:00Z", "2016-03-14t01:59:00Z", "2016-03-14T01:59:00z",
    "2016-03-14T01:59Z", "2016-3-14T01:59:00Z", "2016-03-14T24:00:00Z", "2016-03-14T01:60:00Z",
    "2016-03-14T01:59:60Z", "2023-02-29T00:00:00Z", "2016-13-01T00:00:00Z", "2016-03-14T01:59:00+0100",
    "2016-03-14T01:59:00+24:00", "2016-03-14T01:59:00.Z", "2016-03-14T01:59:00.1234567890Z",
    "0000-01-01T00:00:00Z", "٢٠١٦-03-14T01:59:00Z", " 2016-03-14T01:59:00Z", "2016-03-14T01:59:00Z\n",
    "", None, 20160314, ["2016-03-14T01:59:00Z"],
])
def test_parse_timestamp_refuses_what_is_not_rfc3339(text):
    assert parse_timestamp(text) is None and timestamp_key(text) is None and not is_timestamp(text)


def test_timestamp_key_orders_instants_exactly():
    assert timestamp_key("1970-01-01T00:00:00Z") == 0
    assert timestamp_key("1970-01-01T01:00:00+01:00") == 0
    assert timestamp_key("1970-01-01T00:00:00.000000001Z") == 1
    assert timestamp_key("0001-01-01T00:00:00+01:00") < timestamp_key("0001-01-01T00:00:00Z")
    text = "2016-03-14T01:59:00.123456Z"
    assert timestamp_key(text) == int(parse_timestamp(text).timestamp()) * 10**9 + 123456000
