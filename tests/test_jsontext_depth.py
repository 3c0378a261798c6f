"""`jsontext.depth_of`, the C-speed nesting measure behind `loads_bounded`, agrees with a walk of
the decoded value, whatever brackets, quotes and backslashes the strings hold; `loads_bounded`
agrees with `loads` below the bound and refuses above it."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from statelang.language import jsontext

tricky = st.text(alphabet='[]{}"\\ab\u00e9', max_size=6)
values = st.recursive(st.one_of(st.none(), st.integers(), tricky),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(tricky, inner, max_size=3)),
                      max_leaves=40)


def walk(value) -> int:
    """The nesting depth, by an explicit stack (deep values would exhaust Python's own)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            stack.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def wrap(value, depth: int):
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


@settings(max_examples=400)
@given(values, st.integers(min_value=0, max_value=600), st.booleans())
def test_depth_of_agrees_with_a_walk_and_bounds_loads(value, extra, ascii_only):
    value = wrap(value, extra)
    text = json.dumps(value, ensure_ascii=ascii_only, indent=None if extra % 3 else 1)
    depth = walk(value)
    assert jsontext.depth_of(text.encode()) == depth
    if depth <= jsontext.MAX_DEPTH:
        same = jsontext.loads_bounded(text) == jsontext.loads(text) == value
        assert same, "loads_bounded, loads and the value disagree"
    else:
        try:
            jsontext.loads_bounded(text)
        except jsontext.JSONDepthError as exc:
            assert exc.depth == depth and str(depth) in str(exc)
        else:
            raise AssertionError("nesting past the bound was read")
