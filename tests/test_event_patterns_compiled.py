"""The compiled matcher (all rules in one structure, `PatternIndex`) against the plain matcher.

The plain matcher, `CompiledPattern.matches` evaluated rule by rule, is the reference: on every
generated set of rules and every generated event the compiled matcher must return exactly the
rules the plain one matches, in the order they were added. The generators cover each match type
of the EventBridge user guide ("Comparison operators": exact, prefix, suffix, equals-ignore-case,
wildcard, numeric, exists, anything-but and its prefix/suffix/equals-ignore-case/wildcard forms,
IP-address CIDR), "$or" at any depth, and events whose arrays of objects call for event-ruler's
array-consistent matching (aws/event-ruler README, "Arrays").
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statelang.eventbus import InvalidEventPattern, PatternIndex, PlainPatternIndex, compile_pattern
from statelang.eventbus.ruler import MAX_SUB_RULES, expand

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COMPLIANCE = json.loads((Path(__file__).parent / "compliance" / "event_patterns.json").read_text())

# --- generators --------------------------------------------------------------------------------

_STRINGS = ["a", "ab", "abc", "b", "B", "Ab", "", "x*y", "10.0.0.1", "10.1.2.3", "11.0.0.1", "::1",
            "0:0:0:0:0:0:0:1", "2001:db8::1", "İ"]
_NUMBERS = [0, 1, 2, 2.0, 3, 1.5, -1, 10**20, 1e20, 2**70 + 1, 0.1]
_exact = st.sampled_from(_STRINGS + _NUMBERS + [None, True, False])
_texts = st.sampled_from(["", "a", "ab", "b", "B", "aB", "x*y", "İ"])
_nonempty = st.sampled_from(["a", "ab", "b", "B", "aB"])
_numeric = st.sampled_from([
    [">", 1], ["<=", 1], ["=", 2], ["=", 2.0], [">=", 1, "<", 3], [">", 1.5, "<=", 10**20], ["<", 0],
    [">=", 0, "<=", 2], [">", 2**70, "<", 2**71], ["=", 1e20],
])
_anything_but = st.one_of(
    _texts, st.lists(_texts, min_size=1, max_size=3), st.sampled_from(_NUMBERS),
    st.lists(st.sampled_from(_NUMBERS), min_size=1, max_size=3),
    st.builds(lambda k, v: {k: v}, st.sampled_from(["prefix", "suffix"]),
              _nonempty | st.lists(_nonempty, min_size=1, max_size=2)),
    st.builds(lambda v: {"equals-ignore-case": v}, _texts | st.lists(_texts, min_size=1, max_size=2)),
    st.builds(lambda v: {"wildcard": v}, st.sampled_from(["a*", "*b", "a*b", "*", "x\\*y"])),
)
_operators = st.one_of(
    _exact,
    st.builds(lambda v: {"prefix": v}, _texts),
    st.builds(lambda v: {"suffix": v}, _texts),
    st.builds(lambda v: {"prefix": {"equals-ignore-case": v}}, _texts),
    st.builds(lambda v: {"suffix": {"equals-ignore-case": v}}, _texts),
    st.builds(lambda v: {"equals-ignore-case": v}, _texts),
    st.builds(lambda v: {"wildcard": v}, st.sampled_from(["a*", "*b", "a*b", "*", "x\\*y", "*.*"])),
    st.builds(lambda v: {"numeric": v}, _numeric),
    st.builds(lambda v: {"exists": v}, st.booleans()),
    st.builds(lambda v: {"anything-but": v}, _anything_but),
    st.builds(lambda v: {"cidr": v}, st.sampled_from(["10.0.0.0/8", "10.0.0.0/24", "::/64", "2001:db8::/32"])),
)
_paths = st.sampled_from([
    ("source",), ("detail-type",), ("resources",), ("detail",), ("detail", "x"), ("detail", "y"),
    ("detail", "items", "sku"), ("detail", "items", "qty"), ("detail", "items", "tags", "k"),
])
_leaves = st.lists(_operators, min_size=1, max_size=3)


def _nest(fields: list[tuple[tuple[str, ...], list]]) -> dict:
    """A pattern object from (path, leaf) pairs; a path that clashes with an earlier one is left out."""
    out: dict = {}
    for path, leaf in fields:
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            if path[-1] not in node:
                node[path[-1]] = leaf
    return out


_conditions = st.lists(st.tuples(_paths, _leaves), min_size=1, max_size=4).map(_nest)


def _with_or(base: dict, branches: list[dict], where: tuple[str, ...]) -> dict:
    """``base`` with a "$or" of ``branches`` added at the object at ``where`` (made if missing)."""
    node = base
    for key in where:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return base
        node = child
    node.setdefault("$or", branches)
    return base


_or_places = st.sampled_from([(), ("detail",), ("detail", "items")])
patterns = st.recursive(
    _conditions,
    lambda inner: st.builds(_with_or, inner, st.lists(inner, min_size=2, max_size=3), _or_places),
    max_leaves=4,
)

_scalars = st.sampled_from(_STRINGS + _NUMBERS + [None, True, False, math.inf, math.nan])
_values = st.one_of(_scalars, st.lists(_scalars | st.lists(_scalars, max_size=2), max_size=3))
_tags = st.fixed_dictionaries({}, optional={"k": _values})
_items = st.fixed_dictionaries({}, optional={"sku": _values, "qty": _values, "tags": _tags | st.lists(_tags, max_size=2)})
_detail = st.fixed_dictionaries({}, optional={
    "x": _values, "y": _values,
    "items": _items | _scalars | st.lists(_items | _scalars | st.lists(_items, max_size=2), max_size=3),
})
events = st.fixed_dictionaries({}, optional={
    "source": _values, "detail-type": _values, "resources": _values,
    "detail": _detail | _scalars | st.lists(_detail | _scalars, max_size=3),
})


def _value_for(entry, draw):
    """A value that the leaf entry likely accepts (the plain matcher decides if it does)."""
    if not isinstance(entry, dict):
        return entry
    name, operand = next(iter(entry.items()))
    if name in ("prefix", "suffix"):
        text = operand if isinstance(operand, str) else operand["equals-ignore-case"].swapcase()
        extra = draw(st.sampled_from(["", "c", "Q"]))
        return text + extra if name == "prefix" else extra + text
    if name == "equals-ignore-case":
        return operand.swapcase()
    if name == "wildcard":
        return operand.replace("\\*", "\0").replace("*", draw(st.sampled_from(["", "q"]))).replace("\0", "*")
    if name == "numeric":
        return draw(st.sampled_from([n for n in operand if not isinstance(n, str)])) + draw(st.sampled_from([0, 1]))
    if name == "exists":
        return "v" if operand else None
    if name == "cidr":
        return operand.split("/")[0]
    return draw(_scalars)


def _witness(pattern: dict, draw) -> dict:
    """An event shaped after ``pattern``: one branch of each "$or", a likely value for each leaf,
    sometimes a nested object inside an array beside another element."""
    out: dict = {}
    for key, value in pattern.items():
        if key == "$or":
            for name, part in _witness(draw(st.sampled_from(value)), draw).items():
                mine = out.get(name)
                if isinstance(mine, (dict, list)) and isinstance(part, (dict, list)):
                    # Both name this object: put each in its own array element.
                    part = (mine if isinstance(mine, list) else [mine]) + (part if isinstance(part, list) else [part])
                out[name] = part
        elif isinstance(value, dict):
            nested = _witness(value, draw)
            out[key] = draw(st.sampled_from([nested, [nested], [{"other": 1}, nested], [nested, "s"]]))
        else:
            entry = draw(st.sampled_from(value))
            if entry != {"exists": False}:
                out[key] = _value_for(entry, draw)
    return out


def _plain(rules: dict, event) -> list:
    return [rule_id for rule_id, compiled in rules.items() if compiled.matches(event)]


def _compiled_rules(candidates: list[dict]) -> dict:
    rules = {}
    for number, pattern in enumerate(candidates):
        try:
            rules[number] = compile_pattern(pattern)
        except InvalidEventPattern:
            continue
    return rules


# --- the property ------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(patterns, min_size=1, max_size=10), st.lists(events, min_size=1, max_size=8), st.data())
def test_compiled_matcher_agrees_with_plain_matcher(rule_patterns, sample_events, data):
    rules = _compiled_rules(rule_patterns)
    index = PatternIndex(rules.items())
    plain_index = PlainPatternIndex(rules.items())
    sample_events = sample_events + [_witness(rule.pattern, data.draw) for rule in rules.values()]
    for event in sample_events:
        expected = _plain(rules, event)
        assert index.match(event) == expected, (event, [rules[r].pattern for r in rules])
        assert plain_index.match(event) == expected
    # Removing and replacing rules recompiles: still the same answers, in order of addition.
    for number in data.draw(st.lists(st.sampled_from(sorted(rules) or [0]), max_size=3)):
        index.remove(number)
        rules.pop(number, None)
    if rules:
        moved = data.draw(st.sampled_from(sorted(rules)))
        index.add(moved, rules[moved].pattern)
        rules[moved] = rules.pop(moved)
    for event in sample_events:
        assert index.match(event) == _plain(rules, event)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_operators, min_size=1, max_size=4), st.lists(_values, min_size=1, max_size=4))
def test_compiled_matcher_agrees_on_one_leaf_many_values(leaf, values):
    """Many small cases of one leaf array: the entries of a leaf are ORed, each kind indexed apart."""
    rules = _compiled_rules([{"f": leaf}, {"f": leaf[::-1], "g": [{"exists": False}]}])
    index = PatternIndex(rules.items())
    for event in [{"f": value} for value in values] + [{"f": values}, {}]:
        assert index.match(event) == _plain(rules, event), event


@SETTINGS
@given(patterns, st.lists(events, min_size=1, max_size=4))
def test_compiled_matcher_agrees_on_scalars_and_arrays_as_whole_events(pattern, sample_events):
    """A top-level array or scalar is not an event the bus accepts, yet both matchers answer alike."""
    rules = _compiled_rules([pattern])
    index = PatternIndex(rules.items())
    for event in [sample_events, *[e.get("detail") for e in sample_events], "a", 1, None]:
        assert index.match(event) == _plain(rules, event)


# --- the compliance file -------------------------------------------------------------------------


def test_compliance_patterns_in_one_index_match_as_each_alone():
    cases = [case for case in COMPLIANCE["cases"] if "error" not in case]
    index = PatternIndex((number, case["pattern"]) for number, case in enumerate(cases))
    for name, event in COMPLIANCE["events"].items():
        expected = [number for number, case in enumerate(cases) if case["event"] == name and case["matches"]]
        found = [number for number in index.match(event) if cases[number]["event"] == name]
        assert found == expected, name
        # and every compliance pattern, on every event, answers as the plain matcher does
        assert index.match(event) == [n for n, c in enumerate(cases) if compile_pattern(c["pattern"]).matches(event)]


# --- cases worth naming ----------------------------------------------------------------------------


def test_array_of_objects_needs_one_element_to_satisfy_the_whole_object():
    # event-ruler README, "Arrays": fields of different elements do not combine.
    index = PatternIndex([("r", {"detail": {"items": {"sku": ["A"], "qty": [2]}}})])
    assert index.match({"detail": {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}}) == []
    assert index.match({"detail": {"items": [{"sku": "B", "qty": 1}, {"sku": "A", "qty": 2}]}}) == ["r"]


def test_an_or_branch_naming_the_object_again_may_use_another_element():
    # Two pattern objects on "detail" (the field, and the "$or" branch's): each one needs an
    # element of its own, as the plain matcher evaluates them.
    pattern = {"detail": {"x": ["a"]}, "$or": [{"detail": {"x": [{"exists": False}]}}, {"source": ["a"]}]}
    index = PatternIndex([("r", pattern)])
    assert compile_pattern(pattern).matches({"detail": [{}, {"x": "a"}]})
    assert index.match({"detail": [{}, {"x": "a"}]}) == ["r"]
    assert index.match({"detail": [{"x": "a"}]}) == []
    assert index.match({"detail": {"x": "a"}, "source": "a"}) == ["r"]


def test_exists_false_holds_when_one_element_lacks_the_field():
    index = PatternIndex([("r", {"detail": {"items": {"sku": [{"exists": False}]}}})])
    assert index.match({"detail": {"items": [{"sku": "A"}, {"qty": 1}]}}) == ["r"]
    assert index.match({"detail": {"items": [{"sku": "A"}]}}) == []
    assert index.match({"detail": {"items": ["A"]}}) == ["r"]  # no object element: tried on {}


def test_or_naming_a_field_twice_needs_both_conditions():
    index = PatternIndex([("r", {"source": [{"prefix": "a"}], "$or": [{"source": [{"suffix": "z"}]},
                                                                     {"detail": {"n": [1]}}]})])
    assert index.match({"source": "abz"}) == ["r"]
    assert index.match({"source": "abc"}) == []
    assert index.match({"source": "abc", "detail": {"n": 1}}) == ["r"]
    assert index.match({"source": ["a", "bz"]}) == ["r"]  # each condition by any value of the array


def test_numbers_meet_across_int_and_float_and_beyond_float_precision():
    index = PatternIndex([("eq", {"n": [{"numeric": ["=", 3]}]}), ("big", {"n": [{"numeric": [">", 2**70]}]}),
                          ("exact", {"n": [300]})])
    assert index.match({"n": 3.0}) == ["eq"]
    assert index.match({"n": 2**70}) == []
    assert index.match({"n": 2**70 + 1}) == ["big"]
    assert index.match({"n": 3.0e2}) == ["exact"]
    assert index.match({"n": math.inf}) == []


def test_anything_but_passes_values_of_another_type():
    index = PatternIndex([("s", {"f": [{"anything-but": "a"}]}), ("n", {"f": [{"anything-but": [1, 2]}]})])
    assert index.match({"f": "a"}) == ["n"]
    assert index.match({"f": 1.0}) == ["s"]
    assert index.match({"f": None}) == ["s", "n"]
    assert index.match({"f": []}) == []  # no value to test: anything-but needs one


def test_two_anything_buts_in_one_leaf_are_ored():
    # A leaf array is an OR of its entries: "anything but a" lets "b" through, "anything but b" lets "a".
    index = PatternIndex([("r", {"f": [{"anything-but": "a"}, {"anything-but": "b"}]}),
                          ("s", {"f": [{"anything-but": {"prefix": "a"}}, {"anything-but": [1, 2]}]})])
    assert index.match({"f": "a"}) == ["r", "s"]
    assert index.match({"f": ["a", "b"]}) == ["r", "s"]
    assert index.match({"f": "ab"}) == ["r", "s"]
    assert index.match({"f": 1}) == ["r", "s"]
    index.add("t", {"f": [{"anything-but": ["a", "b"]}]})
    assert index.match({"f": "a"}) == ["r", "s"]


def test_ip_literals_and_cidr_compare_addresses():
    index = PatternIndex([("exact", {"ip": ["::1"]}), ("net", {"ip": [{"cidr": "10.0.0.0/24"}]})])
    assert index.match({"ip": "0:0:0:0:0:0:0:1"}) == ["exact"]
    assert index.match({"ip": "10.0.0.255"}) == ["net"]
    assert index.match({"ip": "10.0.1.0"}) == []


def test_or_past_the_expansion_limit_is_evaluated_by_its_predicate():
    # Nine objects holding a "$or" of 2 branches each: 512 conjunctions, past MAX_SUB_RULES.
    pattern: dict = {"a": ["x"]}
    for number in range(9):
        pattern[f"o{number}"] = {"$or": [{"p": [1]}, {"q": [{"prefix": "z"}]}]}
    assert expand(compile_pattern(pattern).tree) is None
    index = PatternIndex([("first", {"a": ["x"]}), ("big", pattern), ("last", {"a": [{"prefix": "x"}]})])
    event = {"a": "x", **{f"o{number}": {"p": 1} if number % 2 else {"q": "zz"} for number in range(9)}}
    assert compile_pattern(pattern).matches(event)
    assert index.match(event) == ["first", "big", "last"]
    assert index.match({**event, "o3": {}}) == ["first", "last"]
    assert len(expand(compile_pattern({"o": pattern["o0"], "r": pattern["o1"]}).tree)) == 4 < MAX_SUB_RULES


def test_index_bookkeeping():
    index = PatternIndex()
    assert index.match({"source": "a"}) == []
    index.add("r", {"source": ["a"]})
    index.add("s", {"source": ["a"]})
    index.add("r", {"source": ["a"]})  # replaced: now the last added
    assert len(index) == 2 and "r" in index
    assert index.match({"source": "a"}) == ["s", "r"]
    with pytest.raises(InvalidEventPattern):
        index.add("s", {"source": "a"})
    assert index.match({"source": "a"}) == ["s", "r"]
    assert index.get("s").pattern == {"source": ["a"]}
    assert index.remove("s") is True and index.remove("s") is False
    assert index.match({"source": "a"}) == ["r"]
