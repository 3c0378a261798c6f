"""Loading a definition: a dict is taken as it is; malformed text is refused with one diagnostic,
as ValidateStateMachineDefinition reports it (INVALID_JSON_DESCRIPTION)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statelang.language.errors import DefinitionError
from statelang.language.loading import load_definition

FIXTURES = Path(__file__).parent / "fixtures"


def test_load_definition_keeps_dict_identity():
    d = {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    assert load_definition(d) is d


def test_load_definition_accepts_text_and_bytes_alike():
    text = (FIXTURES / "valid" / "wait_each.asl.json").read_text()
    assert load_definition(text) == load_definition(text.encode()) == json.loads(text)


def test_load_definition_refuses_malformed_json():
    with pytest.raises(DefinitionError) as e:
        load_definition('{"StartAt": ', yaml=False)
    assert e.value.diagnostics[0].code == "INVALID_JSON_DESCRIPTION"
