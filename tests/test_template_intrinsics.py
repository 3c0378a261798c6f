"""CloudFormation intrinsics resolved locally, and DefinitionSubstitutions on text and on values.

Semantics from CloudFormation's "Intrinsic function reference" (Fn::Sub's ``${!Literal}``, Fn::Join,
Fn::Select, Fn::If with Conditions, AWS::NoValue removing a property).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statelang.language.placeholders import placeholder_warnings, substitute_text, substitute_value
from statelang.templates.intrinsics import NO_VALUE, Resolver, TemplateError


def resolver(**refs) -> Resolver:
    def attrs(logical, attr, where):
        if logical != "Fn":
            raise TemplateError(f"{where}: no {logical}")
        return f"arn:aws:lambda:us-east-1:123456789012:function:{logical}" if attr == "Arn" else attr
    return Resolver({"AWS::Region": "us-east-1", **refs}, attrs,
                    {"Sizes": {"dev": {"Mem": 128}}}, {"IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]}})


def test_sub_forms():
    r = resolver(Stage="dev")
    assert r.resolve({"Fn::Sub": "${Stage}-${Fn.Arn}-${AWS::Region}-${!Literal}"}, "x") == \
        "dev-arn:aws:lambda:us-east-1:123456789012:function:Fn-us-east-1-${Literal}"
    assert r.resolve({"Fn::Sub": ["${A}/${Stage}", {"A": {"Ref": "Stage"}}]}, "x") == "dev/dev"
    with pytest.raises(TemplateError, match=r"\$\{Nope\} names no parameter"):
        r.resolve({"Fn::Sub": "${Nope}"}, "Resources.M.Properties.DefinitionString")


def test_join_select_split_if_map_novalue():
    r = resolver(Stage="dev")
    assert r.resolve({"Fn::Join": [":", ["a", {"Ref": "Stage"}, 3]]}, "x") == "a:dev:3"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "x") == "b"
    assert r.resolve({"Fn::If": ["IsDev", "yes", "no"]}, "x") == "yes"
    assert r.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Mem"]}, "x") == 128
    assert r.resolve({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]}, "x") == {"B": [1]}
    assert r.resolve({"Ref": "AWS::NoValue"}, "x") is NO_VALUE
    with pytest.raises(TemplateError, match="Ref to 'Missing'"):
        r.resolve({"Ref": "Missing"}, "x")


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="${}", blacklist_categories=("Cs",))),
                max_size=6), st.text(alphabet="-:/ ", max_size=2))
def test_join_and_sub_agree(pieces, sep):
    """Fn::Join of plain strings equals Fn::Sub of the same text with nothing to substitute."""
    r = resolver()
    joined = r.resolve({"Fn::Join": [sep, pieces]}, "x")
    assert joined == sep.join(pieces)
    assert r.resolve({"Fn::Sub": joined}, "x") == joined


names = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh", min_size=1, max_size=6)
plain = st.text(alphabet="abcdefgh0123456789:-/._", max_size=12)   # no JSON-special characters


@given(st.dictionaries(names, plain, max_size=4), st.lists(names, max_size=6))
def test_text_and_value_substitution_agree(values, used):
    """DefinitionSubstitutions applied to a DefinitionString's text and to the parsed Definition
    give the same definition; what no value is given for stays, and is warned about."""
    definition = {"StartAt": "S", "States": {"S": {"Type": "Pass", "Parameters": {
        f"k{i}": "${" + n + "}" for i, n in enumerate(used)}, "End": True}}}
    via_text = json.loads(substitute_text(json.dumps(definition), values))
    via_value = substitute_value(definition, values)
    assert via_text == via_value
    left = {n for n in used if n not in values}
    warned = {w.message.split("}")[0][2:] for w in placeholder_warnings(via_value)}
    assert warned == left


def test_import_value_is_named_as_not_known_here():
    with pytest.raises(TemplateError, match="Resources.X.Properties.Y.Fn::ImportValue: Fn::ImportValue reads"):
        resolver().resolve({"Fn::ImportValue": "shared-vpc"}, "Resources.X.Properties.Y")
