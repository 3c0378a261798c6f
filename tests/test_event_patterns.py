"""EventBridge event patterns: the compliance file, error locations, and the rule index.

Each compliance case names the AWS behaviour it pins ('pins'); the cases written here pin what
the file cannot say (error locations, JSON text input, the index's bookkeeping).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statelang.eventbus import (
    CompiledPattern,
    InvalidEventPattern,
    PatternIndex,
    PlainPatternIndex,
    compile_pattern,
    test_event_pattern,
)

COMPLIANCE = json.loads((Path(__file__).parent / "compliance" / "event_patterns.json").read_text())
EVENTS = COMPLIANCE["events"]
MATCH_CASES = [case for case in COMPLIANCE["cases"] if "error" not in case]
ERROR_CASES = [case for case in COMPLIANCE["cases"] if "error" in case]


def test_compliance_file_is_large_and_balanced():
    assert len(COMPLIANCE["cases"]) >= 80
    assert sum(case["matches"] for case in MATCH_CASES) >= 30
    assert sum(not case["matches"] for case in MATCH_CASES) >= 30
    assert len(ERROR_CASES) >= 30


@pytest.mark.parametrize("case", MATCH_CASES, ids=[case["pins"] for case in MATCH_CASES])
def test_compliance_match(case):
    event = EVENTS[case["event"]]
    assert test_event_pattern(case["pattern"], event) is case["matches"]
    # The same answer through JSON text, as the TestEventPattern API receives it.
    assert test_event_pattern(json.dumps(case["pattern"]), json.dumps(event)) is case["matches"]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[case["pins"] for case in ERROR_CASES])
def test_compliance_error(case):
    with pytest.raises(InvalidEventPattern) as caught:
        compile_pattern(case["pattern"])
    assert caught.value.reason == case["error"]
    # AWS's message: the fixed prefix and the reason on the first line.
    assert str(caught.value).splitlines()[0] == "Event pattern is not valid. Reason: " + case["error"]
    assert isinstance(caught.value, ValueError)


# AWS reports where the parser stood; we name the place in the pattern.
@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ({"detail": {"state": [{"numeric": [">", 5, "<", 1]}]}}, "detail.state[0]"),
        ({"source": ["a"], "detail": {"x": ["ok", {"prefix": 1}]}}, "detail.x[1]"),
        ({"detail": {"$or": [{"a": ["b"]}, {"c": []}]}}, "detail.$or[1].c"),
        ({"detail": {"count": 5}}, "detail.count"),
    ],
)
def test_error_names_its_place_in_the_pattern(pattern, path):
    with pytest.raises(InvalidEventPattern) as caught:
        compile_pattern(pattern)
    assert caught.value.path == path
    assert str(caught.value).endswith(path)


def test_pattern_text_must_be_json():
    # AWS rejects text that does not parse; the reason text of the JSON parser is not reproduced.
    with pytest.raises(InvalidEventPattern):
        compile_pattern('{"source": ["a"')
    with pytest.raises(InvalidEventPattern, match="Filter is not an object"):
        compile_pattern('["source"]')
    with pytest.raises(InvalidEventPattern):  # NaN is not JSON
        compile_pattern('{"n": [NaN]}')


def test_invalid_pattern_is_reported_even_if_event_is_irrelevant():
    # TestEventPattern validates the pattern before looking at the event.
    with pytest.raises(InvalidEventPattern):
        test_event_pattern({"source": "aws.ec2"}, {"source": "aws.ec2"})


def test_event_must_be_an_object():
    with pytest.raises(ValueError):
        test_event_pattern({"source": ["a"]}, "[1, 2]")
    with pytest.raises(ValueError):
        test_event_pattern({"source": ["a"]}, "{not json")


def test_compile_once_reuse_many():
    compiled = compile_pattern('{"source": ["aws.ec2"], "detail": {"n": [{"numeric": [">", 1]}]}}')
    assert isinstance(compiled, CompiledPattern)
    assert compile_pattern(compiled) is compiled
    assert compiled.matches({"source": "aws.ec2", "detail": {"n": 2}})
    assert not compiled.matches({"source": "aws.ec2", "detail": {"n": 1}})
    assert not compiled.matches({"source": "aws.s3", "detail": {"n": 2}})


def test_or_inside_nested_object_and_array():
    # "$or" may sit at any level (event-ruler README, parallel "Or").
    pattern = {"detail": {"items": {"$or": [{"sku": ["A"]}, {"qty": [{"numeric": [">", 10]}]}]}}}
    assert test_event_pattern(pattern, {"detail": {"items": [{"sku": "B", "qty": 1}, {"qty": 11}]}})
    assert not test_event_pattern(pattern, {"detail": {"items": [{"sku": "B", "qty": 1}]}})


def test_exists_false_on_missing_parent():
    # A field under a missing object is missing too (event-ruler README, exists matching).
    pattern = {"detail": {"a": {"b": [{"exists": False}]}}}
    assert test_event_pattern(pattern, {"detail": {}})
    assert test_event_pattern(pattern, {"other": 1})
    assert not test_event_pattern(pattern, {"detail": {"a": {"b": None}}})


# --- the index -------------------------------------------------------------------------------


def _event(source, detail_type="T", **detail):
    return {"source": source, "detail-type": detail_type, "detail": detail}


def test_index_matches_like_each_rule():
    index = PatternIndex()
    index.add("ec2", {"source": ["aws.ec2"]})
    index.add("s3-put", {"source": ["aws.s3"], "detail-type": ["Put"]})
    index.add("big", {"detail": {"n": [{"numeric": [">", 100]}]}})
    index.add("or", {"$or": [{"source": ["aws.s3"]}, {"detail": {"n": [0]}}]})
    assert index.match(_event("aws.ec2", n=5)) == ["ec2"]
    assert index.match(_event("aws.s3", "Put", n=500)) == ["s3-put", "big", "or"]
    assert index.match(_event("aws.iam", n=0)) == ["or"]
    assert index.match({"source": ["aws.ec2", "aws.s3"], "detail-type": "Put"}) == ["ec2", "s3-put", "or"]


def test_plain_index_only_evaluates_candidates():
    index = PlainPatternIndex()
    for n in range(200):
        index.add(n, {"source": [f"src.{n}"], "detail": {"x": [{"prefix": "a"}]}})
    index.add("any", {"detail": {"x": [{"prefix": "a"}]}})
    assert index.candidates(_event("src.7", x="abc")) == {7, "any"}
    assert index.match(_event("src.7", x="abc")) == [7, "any"]


def test_index_numbers_meet_numerically():
    index = PatternIndex()
    index.add("r", {"detail": {"code": [300]}})
    assert index.match(_event("s", code=3.0e2)) == ["r"]
    assert index.match(_event("s", code="300")) == []


def test_index_remove_and_replace():
    index = PatternIndex()
    index.add("r", {"source": ["a"]})
    index.add("r", {"source": ["b"]})  # replaces
    assert len(index) == 1
    assert index.match(_event("a")) == []
    assert index.match(_event("b")) == ["r"]
    assert index.remove("r") is True
    assert index.remove("r") is False
    assert index.match(_event("b")) == []
    assert "r" not in index


def test_index_rejects_invalid_pattern_and_keeps_old_rule():
    index = PatternIndex()
    index.add("r", {"source": ["a"]})
    with pytest.raises(InvalidEventPattern):
        index.add("r", {"source": "a"})
    assert index.match(_event("a")) == ["r"]
