"""Laws of Choice Rules, checked with hypothesis.

1. NumericEquals(x) holds for x and its float form; NumericLessThan, NumericEquals and
   NumericGreaterThan are mutually exclusive and exhaustive for numbers (AWS compares by value).
2. StringMatches without an unescaped ``*`` is StringEquals on the unescaped text; replacing
   substrings of s by ``*`` (escaping the rest) gives a pattern that matches s.
3. Not(rule) is the negation of rule on any input where rule does not fail.
4. Any dict either compiles or raises StaticError, and a compiled rule raises only StatesError;
   the validator finds a problem exactly when the compiler refuses.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from statelang.language.choice import check_choice_rule, compile_choice_rule
from statelang.language.env import Env
from statelang.language.errors import StatesError, StaticError
from statelang.language.timestamps import timestamp_key

ENV = Env(context={"Execution": {"Name": "e"}}, variables={"v": 1, "s": "x"})

numbers = st.one_of(st.integers(-(10**15), 10**15), st.floats(allow_nan=False, allow_infinity=False))
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6),
                         st.sampled_from(["2016-03-14T01:59:00Z", "2016-03-14T02:59:00.5+01:00"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)),
    max_leaves=8)
inputs = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4)


def _holds(rule: dict, data) -> bool:
    return compile_choice_rule(rule)(data, ENV)


# -------------------------------------------------------------------------------------- 1. numbers

@given(st.integers(-(2**53), 2**53))
def test_numeric_equals_holds_for_an_integer_and_its_float_form(x):
    # AWS compares numbers by value: 3 and 3.0 are the same number.
    for literal in (x, float(x)):
        for value in (x, float(x)):
            assert _holds({"Variable": "$.a", "NumericEquals": literal}, {"a": value})
            assert _holds({"Variable": "$.a", "NumericEqualsPath": "$.b"}, {"a": value, "b": literal})


@given(numbers, numbers)
def test_less_equal_greater_are_exclusive_and_exhaustive(x, y):
    data = {"a": x}
    outcomes = [_holds({"Variable": "$.a", op: y}, data)
                for op in ("NumericLessThan", "NumericEquals", "NumericGreaterThan")]
    assert outcomes.count(True) == 1
    assert _holds({"Variable": "$.a", "NumericLessThanEquals": y}, data) == (outcomes[0] or outcomes[1])
    assert _holds({"Variable": "$.a", "NumericGreaterThanEquals": y}, data) == (outcomes[1] or outcomes[2])


@given(st.booleans(), numbers)
def test_booleans_are_never_numbers(b, y):
    for op in ("NumericLessThan", "NumericEquals", "NumericGreaterThan"):
        assert not _holds({"Variable": "$.a", op: y}, {"a": b})


# -------------------------------------------------------------------------------------- 2. strings

def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


@given(st.text(alphabet="ab*\\x", max_size=8), st.text(alphabet="ab*\\x", max_size=8))
def test_pattern_without_wildcard_is_string_equals(literal, s):
    # A pattern whose every * is escaped matches exactly the unescaped text.
    pattern = _escape(literal)
    matches = _holds({"Variable": "$.a", "StringMatches": pattern}, {"a": s})
    equals = _holds({"Variable": "$.a", "StringEquals": literal}, {"a": s})
    assert matches == equals == (s == literal)


@given(st.text(max_size=20), st.data())
def test_replacing_substrings_by_a_wildcard_still_matches(s, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(s)), max_size=6)))
    pattern, i = [], 0
    for k in range(0, len(cuts) - 1, 2):
        start, end = cuts[k], cuts[k + 1]
        pattern.append(_escape(s[i:start]) + "*")
        i = end
    pattern.append(_escape(s[i:]))
    assert _holds({"Variable": "$.a", "StringMatches": "".join(pattern)}, {"a": s})


def _reference_regex(pattern: str) -> re.Pattern:
    """The documented meaning of a pattern, spelled as a regex: the slow, obviously right oracle."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and pattern[i + 1:i + 2] in ("*", "\\"):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if pattern[i] == "*" else re.escape(pattern[i]))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@given(st.text(alphabet="ab*\\\n", max_size=8), st.text(alphabet="ab*\\\n", max_size=8))
def test_string_matches_agrees_with_a_regex_oracle(pattern, s):
    expected = _reference_regex(pattern).fullmatch(s) is not None
    assert _holds({"Variable": "$.a", "StringMatches": pattern}, {"a": s}) is expected


@given(st.text(max_size=6), st.text(max_size=6))
def test_string_orders_agree_with_each_other(x, y):
    data = {"a": x, "b": y}
    lt, eq, gt = (_holds({"Variable": "$.a", f"String{op}Path": "$.b"}, data)
                  for op in ("LessThan", "Equals", "GreaterThan"))
    assert [lt, eq, gt].count(True) == 1
    assert eq == (x == y)


# -------------------------------------------------------------------------------------- 3. negation

LEAF_RULES = st.one_of(
    st.builds(lambda p, v: {"Variable": p, "NumericLessThan": v}, st.sampled_from(["$.a", "$.b"]), numbers),
    st.builds(lambda p, v: {"Variable": p, "StringMatches": v}, st.sampled_from(["$.a", "$.b"]),
              st.text(alphabet="ab*", max_size=4)),
    st.builds(lambda p, v: {"Variable": p, "BooleanEquals": v}, st.sampled_from(["$.a", "$.b"]), st.booleans()),
    st.builds(lambda p, t, v: {"Variable": p, t: v}, st.sampled_from(["$.a", "$.b", "$.zz"]),
              st.sampled_from(["IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"]),
              st.booleans()),
    st.builds(lambda p, v: {"Variable": p, "TimestampLessThan": v}, st.sampled_from(["$.a", "$.b"]),
              st.sampled_from(["2016-03-14T02:00:00Z", "2000-01-01T00:00:00.1-03:00"])),
    st.builds(lambda v: {"Variable": "$v", "NumericEqualsPath": v}, st.sampled_from(["$.a", "$.b"])),
)
RULES = st.recursive(LEAF_RULES, lambda inner: st.one_of(
    st.builds(lambda r: {"Not": r}, inner),
    st.builds(lambda rs: {"And": rs}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda rs: {"Or": rs}, st.lists(inner, min_size=1, max_size=3))), max_leaves=6)
operand_inputs = st.fixed_dictionaries({}, optional={
    "a": json_scalars, "b": st.one_of(json_scalars, st.lists(json_scalars, max_size=2))})


@given(RULES, operand_inputs)
def test_not_is_negation(rule, data):
    try:
        value = _holds(rule, data)
    except StatesError:
        with pytest.raises(StatesError):  # the negation fails the same way
            _holds({"Not": rule}, data)
        return
    assert isinstance(value, bool)
    assert _holds({"Not": rule}, data) is (not value)
    assert _holds({"Not": {"Not": rule}}, data) is value


@given(RULES, RULES, operand_inputs)
def test_de_morgan(r1, r2, data):
    # Not(And) and Or(Not) evaluate the same rules in the same order, so they agree even on failure.
    outcomes = []
    for rule in ({"Not": {"And": [r1, r2]}}, {"Or": [{"Not": r1}, {"Not": r2}]}):
        try:
            outcomes.append(_holds(rule, data))
        except StatesError as e:
            outcomes.append(e.cause)
    assert outcomes[0] == outcomes[1]


@given(st.sampled_from(["2016-03-14T01:59:00Z", "2016-03-14T01:59:00.5+01:00", "1999-12-31T23:59:59.999-12:00"]),
       st.sampled_from(["2016-03-14T01:59:00Z", "2016-03-14T00:59:00.5Z", "2000-01-01T11:59:59.999Z"]))
def test_timestamp_operators_follow_instant_order(a, b):
    ka, kb = timestamp_key(a), timestamp_key(b)
    data = {"a": a}
    assert _holds({"Variable": "$.a", "TimestampEquals": b}, data) == (ka == kb)
    assert _holds({"Variable": "$.a", "TimestampLessThan": b}, data) == (ka < kb)
    assert _holds({"Variable": "$.a", "TimestampGreaterThanEquals": b}, data) == (ka >= kb)


# -------------------------------------------------------------------------------------- 4. robustness

FIELD_NAMES = st.sampled_from([
    "Variable", "StringEquals", "StringMatches", "NumericEquals", "NumericLessThanPath", "BooleanEquals",
    "TimestampGreaterThan", "TimestampEqualsPath", "IsPresent", "IsNull", "IsTimestamp", "And", "Or",
    "Not", "Next", "Comment", "Bogus", "StringMatchesPath"])
FIELD_VALUES = st.one_of(json_scalars, st.sampled_from(["$.a", "$.b.c", "$$.Execution.Name", "$v", "$s",
                                                        "$.a[*]", "$..a", "$.a[0]", "$nope", "a*\\*"]))


@st.composite
def _mutated(draw):
    """A valid rule with one field added, replaced or removed, somewhere in its tree."""
    rule = draw(RULES)
    node = rule
    while True:
        inner = [v for v in node.values() if isinstance(v, dict)] + \
                [x for v in node.values() if isinstance(v, list) for x in v]
        if not inner or draw(st.booleans()):
            break
        node = draw(st.sampled_from(inner))
    if node and draw(st.booleans()):
        del node[draw(st.sampled_from(sorted(node)))]
    else:
        node[draw(FIELD_NAMES)] = draw(FIELD_VALUES)
    return rule


random_rules = st.one_of(RULES, _mutated(), st.recursive(
    st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=3),
    lambda inner: st.one_of(
        st.dictionaries(FIELD_NAMES, st.one_of(FIELD_VALUES, inner, st.lists(inner, max_size=2)), max_size=3),
        inner),
    max_leaves=8))


@settings(max_examples=300)
@given(random_rules, st.one_of(inputs, json_values))
def test_compile_raises_only_static_error_and_evaluation_only_states_error(rule, data):
    try:
        predicate = compile_choice_rule(rule)
    except StaticError:
        assert check_choice_rule(rule, "") != []  # the validator reports what the compiler refuses
        return
    assert [d for d in check_choice_rule(rule, "") if "[Next]" not in d.message] == []
    try:
        result = predicate(data, ENV)
    except StatesError as e:
        assert e.error == "States.Runtime"
        assert e.cause.endswith("The choice state's condition path references an invalid value.")
        return
    assert isinstance(result, bool)


@given(st.one_of(json_values, st.lists(random_rules, max_size=2)))
def test_non_dict_rules_are_static_errors(rule):
    assume(not isinstance(rule, dict))
    with pytest.raises(StaticError):
        compile_choice_rule(rule)
    assert check_choice_rule(rule, "/x")
