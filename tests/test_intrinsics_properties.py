"""Property tests of the intrinsic functions: round trips, partition and range laws, robustness."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from statelang.language.env import Env
from statelang.language.errors import StatesError, StaticError
from statelang.language.intrinsic_functions import FUNCTIONS
from statelang.language.intrinsics import compile_intrinsic

json_scalars = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)

BASE64_ROUND_TRIP = compile_intrinsic("States.Base64Decode(States.Base64Encode($.s))")
JSON_ROUND_TRIP = compile_intrinsic("States.StringToJson(States.JsonToString($.v))")
PARTITION = compile_intrinsic("States.ArrayPartition($.a, $.n)")
RANGE = compile_intrinsic("States.ArrayRange($.start, $.end, $.step)")


@given(st.text(alphabet=st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), max_size=2000))
def test_base64_round_trip(s):
    # AWS: Base64Decode(Base64Encode(s)) is s for printable strings within the 10,000 limit.
    assert BASE64_ROUND_TRIP({"s": s}, Env()) == s


@given(json_values)
def test_json_round_trip(v):
    # StringToJson(JsonToString(v)) gives v back; ints stay ints (AWS prints integers as such).
    back = JSON_ROUND_TRIP({"v": v}, Env())
    assert back == v
    assert json.dumps(back, sort_keys=True) == json.dumps(v, sort_keys=True)


@given(st.lists(json_values, max_size=60), st.integers(1, 70))
def test_partition_flattens_back(array, size):
    chunks = PARTITION({"a": array, "n": size}, Env())
    assert [x for chunk in chunks for x in chunk] == array
    assert all(len(c) == size for c in chunks[:-1])
    assert not chunks or 1 <= len(chunks[-1]) <= size
    assert len(chunks) == -(-len(array) // size)


@given(st.integers(-3000, 3000), st.integers(-3000, 3000), st.integers(-500, 500).filter(bool))
def test_array_range_length_law(start, end, step):
    count = max(0, (end - start) // step + 1)
    fn_input = {"start": start, "end": end, "step": step}
    if count > 1000:
        try:
            RANGE(fn_input, Env())
        except StatesError as exc:
            assert exc.error == "States.Runtime"
            return
        raise AssertionError("ranges above 1000 items must be refused")
    items = RANGE(fn_input, Env())
    assert len(items) == count
    if items:
        assert items[0] == start
        assert all(b - a == step for a, b in zip(items, items[1:], strict=False))
        assert (start <= items[-1] <= end) if step > 0 else (end <= items[-1] <= start)


ALPHABET = "States.FormatArayUniqMhdRgeJsoTS$.x,()'\\{} -0123456789truefalsn[]\"@"


@settings(max_examples=500)
@given(st.text(alphabet=ALPHABET, max_size=60) | st.text(max_size=30))
def test_random_text_compiles_or_raises_static_error(text):
    try:
        compile_intrinsic(text)
    except StaticError:
        pass


def _literal(value):
    if isinstance(value, str):
        return "'" + "".join("\\" + c if c in "'{}\\" else c for c in value) + "'"
    return json.dumps(value)


literal_values = st.none() | st.booleans() | st.integers(-5000, 5000) | st.floats(-1e6, 1e6) | st.text(max_size=10)
argument_sources = st.sampled_from(["$.a", "$.b", "$.c", "$.s", "$", "$.missing", "lit", "nested"])


@st.composite
def calls(draw, depth=0):
    name = draw(st.sampled_from(sorted(FUNCTIONS)))
    args = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(argument_sources)
        if kind == "lit":
            args.append(_literal(draw(literal_values)))
        elif kind == "nested" and depth < 3:
            args.append(draw(calls(depth + 1)))
        else:
            args.append(kind if kind != "nested" else "$.a")
    return f"{name}({', '.join(args)})"


@settings(max_examples=1000)
@given(calls(), json_values, json_values, st.lists(json_values, max_size=6), st.text(max_size=30),
       st.integers(0, 2**32))
def test_random_calls_raise_only_states_errors(text, a, b, c, s, seed):
    fn = compile_intrinsic(text)  # generated calls are well formed: compiling never fails
    data = {"a": a, "b": b, "c": c, "s": s}
    try:
        result = fn(data, Env(rng=random.Random(seed)))
    except StatesError as exc:
        assert exc.error == "States.Runtime" and exc.cause
        return
    json.dumps(result)  # whatever succeeds is JSON
