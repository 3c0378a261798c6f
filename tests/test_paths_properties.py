"""Property tests for paths: reading agrees with walking the JSON, ResultPath obeys set/get,
and nothing but our own errors ever escapes compilation or evaluation.

AWS behaviour pinned: a reference path identifies exactly one node reached by object fields and
array indexes (developer guide, "Reference Paths"); ResultPath places the result at that node and
keeps the rest of the input ("ResultPath"); a path into a missing node fails with States.Runtime.
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statelang.language.env import Env
from statelang.language.errors import PathError, ResultPathMatchFailure, StatesError, StaticError
from statelang.language.paths import compile_path, compile_result_path
from statelang.language.payload_templates import compile_template

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8)
keys = st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)

_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _segment(key: str | int, dotted: bool) -> str:
    """Render one step; dot notation only where the name needs no quoting."""
    if isinstance(key, int):
        return f"[{key}]"
    if dotted and key and set(key) <= _PLAIN:
        return "." + key
    return "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _render(steps: list[str | int], dotted: list[bool]) -> str:
    return "$" + "".join(_segment(k, d) for k, d in zip(steps, dotted, strict=True))


@st.composite
def object_and_definite_path(draw):
    """A JSON object, a path that exists in it, and the value found by walking it by hand."""
    root = draw(json_objects)
    node, steps = root, []
    for _ in range(draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            key = i - len(node) if draw(st.booleans()) else i
        else:
            break
        steps.append(key)
        node = node[key]
    dotted = [draw(st.booleans()) for _ in steps]
    return root, _render(steps, dotted), node


@given(object_and_definite_path())
@SETTINGS
def test_definite_path_returns_the_walked_value(case):
    root, path, expected = case
    before = copy.deepcopy(root)
    got = compile_path(path)(root, Env())
    assert got == expected and got is expected  # the node itself, not a copy
    assert root == before


@given(json_objects, st.lists(keys, min_size=1, max_size=4), st.data())
@SETTINGS
def test_missing_definite_path_raises_states_runtime(root, steps, data):
    node = root
    for k in steps:
        if not isinstance(node, dict) or k not in node:
            break
        node = node[k]
    else:
        return  # the drawn path happens to exist
    path = _render(steps, [data.draw(st.booleans()) for _ in steps])
    try:
        compile_path(path)(root, Env())
    except PathError as e:
        assert e.error == "States.Runtime" and e.cause.startswith(f"Invalid path '{path}' : ")
    else:
        raise AssertionError("a missing path must fail")


@st.composite
def input_and_reference_path(draw):
    """A state input and a ResultPath that can be applied to it: existing or new fields, existing indexes."""
    root = draw(json_objects)
    node, steps = root, []
    for _ in range(draw(st.integers(1, 5))):
        if isinstance(node, list) and node and draw(st.booleans()):
            key = draw(st.integers(0, len(node) - 1))
            steps.append(key)
            node = node[key]
            continue
        if not isinstance(node, dict):
            break
        key = draw(st.sampled_from(sorted(node)) if node and draw(st.booleans()) else keys)
        steps.append(key)
        node = node.get(key, {})
    dotted = [draw(st.booleans()) for _ in steps]
    return root, steps, _render(steps, dotted)


@given(input_and_reference_path(), json_values)
@SETTINGS
def test_result_path_set_then_get(case, result):
    root, steps, path = case
    if not steps:
        return
    before = copy.deepcopy(root)
    out = compile_result_path(path)(root, result)
    assert root == before, "the state input is never mutated"
    assert compile_path(path)(out, Env()) is result
    # Everything off the path is unchanged (and shared, not copied).
    old, new = root, out
    for k in steps:
        if isinstance(new, dict):
            assert set(new) - {k} == set(old) - {k} if isinstance(old, dict) else set(new) == {k}
            for other in new:
                if other != k:
                    assert new[other] is old[other]
            old = old.get(k, {}) if isinstance(old, dict) else {}
        else:
            assert len(new) == len(old)
            for j, item in enumerate(new):
                if j != k and j != k + len(new):
                    assert item is old[j]
            old = old[k]
        new = new[k]


@given(json_values.filter(lambda v: not isinstance(v, dict)), keys)
@SETTINGS
def test_result_path_on_non_object_fails_with_result_path_match_failure(state_input, key):
    try:
        compile_result_path(_render([key], [False]))(state_input, 1)
    except ResultPathMatchFailure as e:
        assert e.error == "States.ResultPathMatchFailure"
        assert e.cause.startswith("Unable to apply ReferencePath $")
    else:
        raise AssertionError("ResultPath into a non-object must fail")


# Random path text built from JSONPath's own tokens, so that the parser gets past the first character.
_TOKENS = ["$", "$$", "$v", ".", "..", "[", "]", "*", "?", "(", ")", "@", "'", '"', ",", ":", "-1", "0", "2",
           "a", "b", "==", ">", "<", "!", "&&", "||", " ", "\\", "length()", "~", "States.", "$.a", "[0]", "['a']"]
path_texts = st.lists(st.sampled_from(_TOKENS), max_size=10).map("".join) | st.text(max_size=12)
envs = st.builds(lambda c, v: Env(context=c, variables=v), json_objects, st.fixed_dictionaries({"v": json_values}))


def _only_our_errors(fn, *args):
    try:
        fn(*args)
    except (StatesError, StaticError):
        pass


@given(path_texts, json_values, envs)
@SETTINGS
def test_random_paths_raise_only_our_errors(path, data, env):
    try:
        fn = compile_path(path)
    except StaticError:
        return
    _only_our_errors(fn, data, env)


@given(path_texts, json_values, json_values)
@SETTINGS
def test_random_result_paths_raise_only_our_errors(path, data, result):
    try:
        fn = compile_result_path(path)
    except StaticError:
        return
    _only_our_errors(fn, data, result)


templates = st.recursive(
    scalars | path_texts,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(keys | keys.map(lambda k: k + ".$"), children, max_size=3),
    max_leaves=10,
)


@given(templates, json_values, envs)
@SETTINGS
def test_random_templates_raise_only_our_errors(template, data, env):
    try:
        fn = compile_template(template)
    except (StaticError, ImportError):
        return
    _only_our_errors(fn, data, env)
