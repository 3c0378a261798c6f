"""Property tests for EventBridge event patterns.

AWS behaviour pinned (EventBridge user guide, "Creating event patterns" and "Comparison
operators"; aws/event-ruler README): a pattern made of an event's own values matches it;
anything-but excludes the value it names; prefix matching is string prefix; the index is only an
optimisation of evaluating each rule; and a pattern is either accepted or rejected with
InvalidEventPatternException, never anything else.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from statelang.eventbus import InvalidEventPattern, PatternIndex, compile_pattern, test_event_pattern

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
keys = st.text(max_size=6).filter(lambda k: k != "$or")
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
events = st.dictionaries(keys, json_values, min_size=1, max_size=6)


def _pattern_from(event: dict) -> dict | None:
    """Wrap each scalar leaf of ``event`` in a one-element array (a list gives one element)."""
    pattern: dict = {}
    for key, value in event.items():
        if isinstance(value, dict):
            sub = _pattern_from(value)
            if sub:
                pattern[key] = sub
        elif isinstance(value, list):
            flat = [v for v in value if not isinstance(v, (list, dict))]
            if flat:
                pattern[key] = [flat[-1]]
        else:
            pattern[key] = [value]
    return pattern or None


@SETTINGS
@given(events)
def test_pattern_of_own_leaf_values_matches(event):
    pattern = _pattern_from(event)
    assume(pattern is not None)
    assert test_event_pattern(pattern, event)
    assert test_event_pattern(json.dumps(pattern), json.dumps(event))


@SETTINGS
@given(st.text(max_size=10) | st.integers(-10**9, 10**9) | st.floats(-1e9, 1e9, allow_nan=False),
       st.booleans())
def test_anything_but_own_value_does_not_match(value, as_list):
    operand = [value] if as_list else value
    pattern = {"detail": {"field": [{"anything-but": operand}]}}
    assert not test_event_pattern(pattern, {"detail": {"field": value}})
    # ... and the same pattern does match a different value of the same type.
    other = value + "x" if isinstance(value, str) else value + 1
    assert test_event_pattern(pattern, {"detail": {"field": other}})


@SETTINGS
@given(st.text(max_size=12), st.integers(0, 12))
def test_prefix_of_own_prefix_matches(text, cut):
    prefix = text[:cut]
    assert test_event_pattern({"f": [{"prefix": prefix}]}, {"f": text})
    assert test_event_pattern({"f": [{"suffix": text[cut:]}]}, {"f": text})
    assert test_event_pattern({"f": [{"wildcard": _escape(prefix) + "*"}]}, {"f": text})


@SETTINGS
@given(st.text(alphabet="abcXYZ-_.0", max_size=12), st.integers(0, 12))
def test_prefix_ignore_case_of_own_prefix_matches(text, cut):
    pattern = {"f": [{"prefix": {"equals-ignore-case": text[:cut].swapcase()}}]}
    assert test_event_pattern(pattern, {"f": text})


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


# --- index versus loop -----------------------------------------------------------------------

_values = st.sampled_from(["a", "b", "ab", "B", 1, 2, 2.0, None, True, "10.0.0.1"])
_field_paths = st.sampled_from([("source",), ("detail-type",), ("detail", "x"), ("detail", "y")])
_operators = st.one_of(
    _values,
    st.builds(lambda v: {"prefix": v}, st.sampled_from(["", "a", "b"])),
    st.builds(lambda v: {"anything-but": v}, st.sampled_from(["a", ["a", "b"], 1, {"prefix": "a"}])),
    st.builds(lambda v: {"numeric": v}, st.sampled_from([[">", 1], ["<=", 1], [">=", 1, "<", 3]])),
    st.builds(lambda v: {"exists": v}, st.booleans()),
    st.builds(lambda v: {"equals-ignore-case": v}, st.sampled_from(["a", "B"])),
    st.builds(lambda v: {"wildcard": v}, st.sampled_from(["a*", "*b"])),
    st.builds(lambda v: {"cidr": v}, st.sampled_from(["10.0.0.0/8"])),
)


def _nest(fields: dict) -> dict:
    out: dict = {}
    for path, entries in fields.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = entries
    return out


_conditions = st.dictionaries(_field_paths, st.lists(_operators, min_size=1, max_size=3), min_size=1, max_size=3)
patterns = st.one_of(
    _conditions.map(_nest),
    st.tuples(_conditions, _conditions, _conditions).map(
        lambda t: {**_nest(t[0]), "$or": [_nest(t[1]), _nest(t[2])]}),
)
_event_values = st.one_of(_values, st.lists(_values, max_size=3))
index_events = st.fixed_dictionaries(
    {},
    optional={
        "source": _event_values,
        "detail-type": _event_values,
        "detail": st.one_of(
            st.fixed_dictionaries({}, optional={"x": _event_values, "y": _event_values}),
            st.lists(st.fixed_dictionaries({}, optional={"x": _event_values, "y": _event_values}), max_size=3),
        ),
    },
)


@SETTINGS
@given(st.lists(patterns, min_size=1, max_size=12), st.lists(index_events, min_size=1, max_size=8),
       st.data())
def test_index_agrees_with_evaluating_every_rule(rule_patterns, sample_events, data):
    index = PatternIndex()
    compiled = {}
    for number, pattern in enumerate(rule_patterns):
        try:
            compiled[number] = index.add(number, pattern)
        except InvalidEventPattern:
            continue
    # Removing some rules must leave the index agreeing with the remaining ones.
    for number in data.draw(st.lists(st.sampled_from(sorted(compiled) or [0]), max_size=3)):
        index.remove(number)
        compiled.pop(number, None)
    for event in sample_events:
        expected = [number for number, rule in compiled.items() if rule.matches(event)]
        assert index.match(event) == expected


# --- never another exception -----------------------------------------------------------------

_pattern_keys = st.sampled_from(
    ["source", "detail", "$or", "prefix", "suffix", "anything-but", "numeric", "exists", "cidr",
     "wildcard", "equals-ignore-case", "x", ""])
_pattern_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                    | st.sampled_from(["<", ">", "=", ">=", "<=", "a*", "**", "\\", "10.0.0.0/8", "::/0", "x"]))
random_json = st.recursive(
    _pattern_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_pattern_keys, children, max_size=4),
    max_leaves=30,
)


@SETTINGS
@given(random_json)
def test_random_patterns_compile_or_raise_invalid_event_pattern(pattern):
    try:
        compiled = compile_pattern(pattern)
    except InvalidEventPattern as exc:
        assert str(exc).startswith("Event pattern is not valid. Reason: ")
        return
    # A compiled pattern evaluates any event without raising.
    compiled.matches({"source": "x", "detail": {"x": [1, "a", None, {"y": 2}]}})


@SETTINGS
@given(st.text(max_size=40) | random_json.map(lambda v: json.dumps(v, allow_nan=True)))
def test_random_pattern_text_compiles_or_raises_invalid_event_pattern(text):
    try:
        compile_pattern(text)
    except InvalidEventPattern:
        pass


@SETTINGS
@given(patterns, json_values)
def test_compiled_patterns_never_raise_on_any_event(pattern, event):
    try:
        compiled = compile_pattern(pattern)
    except InvalidEventPattern:
        return
    assert compiled.matches(event) in (True, False)
