"""Properties of validation, and its agreement with the compiler.

1. Every definition built by the strategy below is valid by the spec (a chain of Pass, Wait, Choice,
   Parallel and Map states ending in a terminal state, Parallel and Map nesting machines of their
   own): it validates clean and compiles, every state of every nested machine in its table.
2. Whatever JSON validate() is given, it returns diagnostics and never raises: the AWS API answers
   every bad definition with a diagnostic, never with an internal error. What it accepts, the
   compiler compiles: a definition that passes validation never fails when it is first run.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statelang.language.compiler import CompiledMachine
from statelang.language.diagnostics import Diagnostic
from statelang.language.validation import validate

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False,
                                                                                  allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)
names = st.text(min_size=1, max_size=12).filter(lambda s: "~" not in s)
comments = st.none() | st.text(max_size=10)
timestamps = st.datetimes().map(lambda t: t.replace(microsecond=0).isoformat() + "Z")


def _with_comment(state: dict, comment: str | None) -> dict:
    return state if comment is None else {**state, "Comment": comment}


@st.composite
def machines(draw, depth: int = 0, tag: str = "") -> dict:
    """A chain S0 -> S1 -> ... whose last state ends; Choice states may also jump forward.
    Nested machines prefix their names with their place (`tag`, holding a '~' no top-level name
    has): state names are unique across the whole machine, as the States Language requires."""
    n = draw(st.integers(1, 5 if depth == 0 else 3))
    state_names = [tag + x for x in draw(st.lists(names, min_size=n, max_size=n, unique=True))]
    states = {}
    for i, name in enumerate(state_names):
        last = i == n - 1
        kinds = ["Pass", "Wait", "Parallel", "Map"] if depth < 2 else ["Pass", "Wait"]
        if last:
            kinds += ["Succeed", "Fail"]
        else:
            kinds += ["Choice"]
        kind = draw(st.sampled_from(kinds))
        flow = {"End": True} if last else {"Next": state_names[i + 1]}
        comment = draw(comments)
        if kind == "Pass":
            state = {"Type": "Pass"}
            if draw(st.booleans()):
                state["Result"] = draw(json_values)
            if draw(st.booleans()):
                state["ResultPath"] = draw(st.sampled_from([None, "$", "$.r", "$.a.b"]))
            state.update(flow)
        elif kind == "Wait":
            field, value = draw(st.sampled_from([
                ("Seconds", st.integers(0, 99999999)), ("SecondsPath", st.just("$.s")),
                ("Timestamp", timestamps), ("TimestampPath", st.just("$.t"))]))
            state = {"Type": "Wait", field: draw(value), **flow}
        elif kind == "Choice":
            targets = state_names[i + 1:]
            rules = [{"Variable": "$.n", "NumericEquals": draw(st.integers()), "Next": draw(st.sampled_from(targets))}
                     for _ in range(draw(st.integers(1, 2)))]
            state = {"Type": "Choice", "Choices": rules, "Default": state_names[i + 1]}
        elif kind == "Succeed":
            state = {"Type": "Succeed"}
        elif kind == "Fail":
            state = {"Type": "Fail"}
            if draw(st.booleans()):
                state["Error"] = draw(st.text(max_size=8))
            if draw(st.booleans()):
                state["Cause"] = draw(st.text(max_size=8))
        elif kind == "Parallel":
            branches = [draw(machines(depth + 1, f"{tag}{i}.{j}~")) for j in range(draw(st.integers(1, 2)))]
            state = {"Type": "Parallel", "Branches": branches, **flow}
        else:
            inner = draw(machines(depth + 1, f"{tag}{i}~"))
            field = draw(st.sampled_from(["ItemProcessor", "Iterator"]))
            state = {"Type": "Map", field: inner, **flow}
            if draw(st.booleans()):
                state["MaxConcurrency"] = draw(st.integers(0, 40))
        states[name] = _with_comment(state, comment)
    machine = {"StartAt": state_names[0], "States": states}
    if depth == 0 and draw(st.booleans()):
        machine["Comment"] = draw(st.text(max_size=10))
    return machine


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(machines())
def test_generated_definitions_are_valid_and_compile(d):
    assert validate(d) == []
    assert validate(json.dumps(d)) == []
    compiled = CompiledMachine(d)
    assert compiled.start_at[""] == d["StartAt"] and set(compiled.tables[""]) == set(d["States"])
    assert sum(len(t) for t in compiled.tables.values()) == _count_states(d)


def _count_states(machine: dict) -> int:
    n = 0
    for state in machine["States"].values():
        n += 1
        for branch in state.get("Branches") or []:
            n += _count_states(branch)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            n += _count_states(processor)
    return n


@settings(max_examples=300)
@given(json_values)
def test_validate_never_raises_on_any_json(value):
    out = validate(json.dumps(value))
    assert isinstance(out, list) and all(isinstance(x, Diagnostic) for x in out)
    if not isinstance(value, dict):
        assert out  # a definition is an object


@settings(max_examples=200)
@given(st.text(max_size=40) | st.binary(max_size=40))
def test_validate_never_raises_on_any_text(text):
    assert all(isinstance(x, Diagnostic) for x in validate(text))


def _paths(value, prefix=()):
    """Every location of a JSON value, as key tuples."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(value, where, new):
    if not where:
        return new
    head, rest = where[0], where[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


@st.composite
def mutated_machines(draw):
    d = draw(machines())
    for _ in range(draw(st.integers(1, 3))):
        locations = list(_paths(d))
        where = draw(st.sampled_from(locations))
        d = _replace(d, where, draw(json_values))
    return d


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_machines())
def test_mutated_definitions_get_diagnostics_or_compile(d):
    # Near-valid definitions reach deep into every check; validate() never raises, and a
    # definition it accepts must compile.
    out = validate(d)
    assert all(isinstance(x, Diagnostic) and x.code for x in out)
    if not out:
        CompiledMachine(d)
