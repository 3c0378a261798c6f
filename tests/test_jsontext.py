"""`statelang.jsontext` answers exactly as `json` does: the same text written, the same values
(and types: an integer stays an integer) read, the same errors raised; only faster."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from statelang.language import jsontext
from statelang.store.jsoncolumns import json_default
from statelang.store.jsoncolumns import json_dumps as store_dumps


def store_encode(value):
    """What the store wrote before orjson: json with the store's default."""
    return json.dumps(value, default=json_default, separators=(",", ":"), ensure_ascii=False)

_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=-1e-3, max_value=1e-3),
    st.text(), st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Lo"])),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none()), inner, max_size=4)),
    max_leaves=12)


def _same(a, b) -> bool:
    """Equal, of the same types all the way down, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _outcome(f, *args, **kwargs):
    try:
        return "ok", f(*args, **kwargs)
    except Exception as e:   # noqa: BLE001 - the error itself is what is compared
        return "error", type(e).__name__


@settings(max_examples=1500, deadline=None)
@given(_values)
def test_dumps_writes_the_text_json_writes(value):
    expected = _outcome(json.dumps, value, separators=(",", ":"), ensure_ascii=False)
    got = _outcome(jsontext.dumps, value)
    assert got[0] == expected[0]
    if got[0] == "ok":
        assert got[1] == expected[1]
    assert _outcome(store_dumps, value) == _outcome(store_encode, value)


_dashed_keys = st.sampled_from(["X-Amzn-Trace-Id", "Type-e-", "e-", "1e-", "a1e-7", "0.0000", "Date"])


@settings(max_examples=800, deadline=None)
@given(st.dictionaries(_dashed_keys, st.one_of(st.floats(), st.text(alphabet="e-01.", max_size=6)), max_size=4))
def test_dumps_tells_an_exponent_from_a_dash_in_a_string(value):
    """An "e-" that follows no digit ("Trace-Id", a Lambda response's header) is no exponent,
    whereas 1e-07 (json) against 1e-7 (orjson) after a digit is: both cases write json's text."""
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_hexish = st.text(alphabet="0123456789abcdef-e.:,[", max_size=12)


@settings(max_examples=1500, deadline=None)
@given(st.recursive(st.one_of(st.floats(), st.floats(min_value=-1e-5, max_value=1e-5), _hexish,
                              st.builds(lambda h: f"{h[:8]}-{h[8:12]}-{h[12:16]}", st.text("0123456789abcdef", min_size=16, max_size=16))),
                    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_hexish, inner, max_size=3)),
                    max_leaves=8))
def test_dumps_tells_an_exponent_from_digits_inside_a_string(value):
    """A request id's "d3e-4" has digits before its "e-", inside a string: no number. Numbers
    with one-digit negative exponents, in arrays, objects, signed and alone, still are."""
    assert jsontext.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=1500, deadline=None)
@given(_values)
def test_canonical_text_reads_back_as_what_json_writes(value):
    """A definition's cache key is also the text it is compiled from: it must read back as the
    value json's text reads back as (floats may be written otherwise, never read otherwise)."""
    expected = _outcome(json.dumps, value, separators=(",", ":"), ensure_ascii=False)
    got = _outcome(jsontext.canonical, value)
    assert got[0] == expected[0]
    if got[0] == "ok":
        assert _same(json.loads(got[1]), json.loads(expected[1]))
        assert jsontext.canonical(value) == got[1]   # the same value, the same key


@settings(max_examples=1500, deadline=None)
@given(_values)
def test_loads_reads_what_json_reads(value):
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return
    assert _same(jsontext.loads(text), json.loads(text))


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_loads_fails_or_succeeds_as_json_does_on_any_text(text):
    expected, got = _outcome(json.loads, text), _outcome(jsontext.loads, text)
    assert got[0] == expected[0]
    if got[0] == "ok":
        assert _same(got[1], expected[1])


def test_the_cases_orjson_alone_would_get_wrong():
    big = "123456789012345678901234567890"
    assert jsontext.loads(big) == int(big) and isinstance(jsontext.loads(big), int)
    assert jsontext.loads("-9223372036854775809") == -9223372036854775809
    assert math.isnan(jsontext.loads("NaN")) and jsontext.loads("1e400") == math.inf
    assert jsontext.dumps(float("nan")) == "NaN" and jsontext.dumps([math.inf]) == "[Infinity]"
    assert jsontext.dumps(1.5e-7) == "1.5e-07"
    assert jsontext.dumps(2 ** 70) == str(2 ** 70)
    assert jsontext.dumps({2: "a", None: "b", True: "c"}) == '{"2":"a","null":"b","true":"c"}'
    # a null of the data beside a NaN or an infinity (which orjson would also write as null)
    assert jsontext.dumps({"a": None, "b": float("nan")}) == '{"a":null,"b":NaN}'
    assert jsontext.dumps([None, [-math.inf]]) == "[null,[-Infinity]]"
    assert jsontext.dumps({"a": None, "t": (1, None)}) == '{"a":null,"t":[1,null]}'
    assert jsontext.canonical({"Result": None, "x": math.inf}) == '{"Result":null,"x":Infinity}'


def test_the_store_writes_datetimes_and_sets_through_its_default_as_json_did():
    from datetime import UTC, datetime, timedelta, timezone
    for value in ({"at": datetime(2024, 3, 1, 12, 0, 0, 5, tzinfo=UTC)}, [datetime(2024, 3, 1, 12, 0)],
                  {"at": datetime(2024, 3, 1, tzinfo=timezone(timedelta(hours=-5)))}, {"s": {3, 1, 2}}):
        assert store_dumps(value) == store_encode(value)
