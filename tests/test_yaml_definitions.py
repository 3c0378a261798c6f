"""YAML definitions (`.asl.yaml`) and CloudFormation's short tags, in every loader.

Short-tag forms follow CloudFormation's "Intrinsic function reference" (each function's YAML
"Syntax for the short form"), e.g. ``!GetAtt logicalNameOfResource.attributeName`` is
``{"Fn::GetAtt": ["logicalNameOfResource", "attributeName"]}``.
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import statelang
from statelang.language.errors import DefinitionError
from statelang.language.loading import load_definition
from statelang.language.yaml_loader import YamlError, load_yaml

ASL_YAML = """\
Comment: waits until a fixed instant, then says hello
StartAt: Wait
States:
  Wait:
    Type: Wait
    Timestamp: 2016-03-14T01:59:00Z
    Next: Hello
  Hello:
    Type: Pass
    Parameters:
      greeting.$: States.Format('hello {}', $.who)
    End: true
"""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1, max_size=5))
def test_yaml_and_json_texts_of_one_value_load_alike(value):
    as_yaml = yaml.safe_dump(value)   # escapes non-ASCII: PyYAML's emitter mangles a raw NEL
    assert load_yaml(as_yaml) == value
    assert load_definition(json.dumps(value)) == value


def test_unquoted_timestamp_keeps_its_text():
    doc = load_definition(ASL_YAML)
    assert doc["States"]["Wait"]["Timestamp"] == "2016-03-14T01:59:00Z"


def test_asl_yaml_runs_and_validates():
    assert [d for d in statelang.validate(ASL_YAML) if d.severity == "ERROR"] == []
    ex = statelang.run(ASL_YAML, {"who": "yaml"}, clock="virtual")
    assert ex.status == "SUCCEEDED", ex
    assert ex.output == {"greeting": "hello yaml"}


def test_short_tags_become_long_forms():
    doc = load_yaml("a: !GetAtt Table.Arn\nb: !Sub ['${X}-1', {X: !Ref P}]\nc: !Join [':', [a, b]]\n"
                    "d: !GetAtt [Fn, Arn]\ne: !Select [0, !Split [',', 'a,b']]\n")
    assert doc == {"a": {"Fn::GetAtt": ["Table", "Arn"]},
                   "b": {"Fn::Sub": ["${X}-1", {"X": {"Ref": "P"}}]},
                   "c": {"Fn::Join": [":", ["a", "b"]]},
                   "d": {"Fn::GetAtt": ["Fn", "Arn"]},
                   "e": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}}


def test_bad_yaml_names_line_and_column():
    with pytest.raises(DefinitionError) as e:
        load_definition("StartAt: A\nStates:\n  A: [Type, Pass\n")
    (d,) = e.value.diagnostics
    assert d.code == "INVALID_JSON_DESCRIPTION"
    assert "YAML" in d.message and "line 4" in d.message


def test_unknown_tag_and_binary_are_refused():
    with pytest.raises(YamlError, match=r"unknown tag !Foo at line 1, column 4"):
        load_yaml("a: !Foo 1")
    with pytest.raises(YamlError, match="not JSON"):
        load_yaml("a: !!binary aGVsbG8=")


def test_text_opening_as_json_is_json_only():
    with pytest.raises(DefinitionError) as e:
        load_definition('{"StartAt": "A",}')
    assert "YAML" not in e.value.diagnostics[0].message


def test_the_api_takes_json_only():
    """CreateStateMachine and ValidateStateMachineDefinition take the definition as JSON text."""
    eng = statelang.Engine(db="memory", clock="virtual")
    client = eng.client()
    out = client.validate_state_machine_definition(definition=ASL_YAML)
    assert out["result"] == "FAIL"
    assert out["diagnostics"][0]["code"] == "INVALID_JSON_DESCRIPTION"
    with pytest.raises(client.exceptions.InvalidDefinition):
        client.create_state_machine(name="m", definition=ASL_YAML,
                                    roleArn="arn:aws:iam::123456789012:role/r")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "StartAt: A\nStates: &s\n  A: {Type: Pass, End: true, Result: *s}\n"])
def test_an_alias_inside_its_own_anchor_is_refused(text):
    """`a: &a [*a]` loads as a list that holds itself; `statelang validate` then ended in a
    RecursionError traceback. It is refused as YAML no JSON value can be."""
    with pytest.raises(YamlError, match="holds itself"):
        load_yaml(text)
    with pytest.raises(DefinitionError, match="holds itself"):
        load_definition(text)


def test_an_alias_beside_its_anchor_is_shared_not_refused():
    value = load_yaml("a: &x {k: [1, 2]}\nb: *x\nc: [*x, *x]\n")
    assert value == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}, "c": [{"k": [1, 2]}, {"k": [1, 2]}]}


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_a_json_value_never_holds_itself(value):
    """The cycle check against what a JSON text can load as: never a cycle (matcher vs truth)."""
    from statelang.language.yaml_loader import _holds_itself

    assert not _holds_itself(value)
    assert not _holds_itself([value, value, {"x": value}])   # shared, not cyclic
