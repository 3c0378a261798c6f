"""Definition models: parse once into frozen models, round-trip to the same JSON, refuse with every
diagnostic at once (DefinitionError), as CreateStateMachine refuses an invalid definition."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from statelang.language.definition import (
    ChoiceState,
    ItemProcessor,
    Iterator,
    MapState,
    ParallelState,
    PassState,
    Retrier,
    StateMachine,
    TaskState,
    load_definition,
    parse,
)
from statelang.language.errors import DefinitionError

FIXTURES = Path(__file__).parent / "fixtures"
VALID = sorted((FIXTURES / "valid").glob("*.asl.json"))


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_fixture_round_trips(path):
    text = path.read_text()
    machine = parse(text)
    assert isinstance(machine, StateMachine)
    assert machine.model_dump(by_alias=True, exclude_unset=True) == json.loads(text)


def test_states_are_discriminated_by_type():
    m = parse((FIXTURES / "valid" / "task_retry_catch.asl.json").read_text())
    task = m.states["T"]
    assert isinstance(task, TaskState)
    assert task.timeout_seconds == 60 and task.heartbeat_seconds == 10
    assert isinstance(task.retry[0], Retrier) and task.retry[0].jitter_strategy == "FULL"
    assert task.retry[1].error_equals == ["States.ALL"]
    assert task.catch[0].next == "Handle" and task.catch[0].result_path == "$.error"
    c = parse((FIXTURES / "valid" / "choice.asl.json").read_text()).states["C"]
    assert isinstance(c, ChoiceState) and c.default == "Small"


def test_nested_machines_are_models():
    p = parse((FIXTURES / "valid" / "parallel.asl.json").read_text()).states["P"]
    assert isinstance(p, ParallelState)
    assert isinstance(p.branches[0].states["X"], PassState) and p.branches[0].start_at == "X"
    m = parse((FIXTURES / "valid" / "map_item_processor.asl.json").read_text()).states["M"]
    assert isinstance(m, MapState) and isinstance(m.processor, ItemProcessor)
    assert m.processor.processor_config.mode == "INLINE"
    legacy = parse((FIXTURES / "valid" / "map_iterator.asl.json").read_text()).states["M"]
    assert isinstance(legacy.processor, Iterator) and legacy.item_processor is None


def test_models_are_frozen():
    m = parse((FIXTURES / "valid" / "pass_chain.asl.json").read_text())
    with pytest.raises(ValidationError):
        m.start_at = "B"
    with pytest.raises(ValidationError):
        m.states["A"].next = "A"


def test_parse_accepts_dict_text_and_bytes():
    d = json.loads((FIXTURES / "valid" / "wait_each.asl.json").read_text())
    assert parse(d) == parse(json.dumps(d)) == parse(json.dumps(d).encode())


def test_parse_refuses_with_every_diagnostic():
    # Like CreateStateMachine's InvalidDefinition, all problems come back together.
    with pytest.raises(DefinitionError) as e:
        parse((FIXTURES / "invalid" / "three_faults.asl.json").read_text())
    assert [d.location for d in e.value.diagnostics] == ["/States/A", "/States/B", "/States/C"]
    assert "SCHEMA_VALIDATION_FAILED" in str(e.value)


def test_parse_refuses_malformed_json():
    with pytest.raises(DefinitionError) as e:
        parse('{"StartAt": ')
    assert e.value.diagnostics[0].code == "INVALID_JSON_DESCRIPTION"


def test_load_definition_keeps_dict_identity():
    d = {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    assert load_definition(d) is d


def test_jsonata_fields_are_kept_verbatim():
    m = parse((FIXTURES / "valid" / "jsonata_machine.asl.json").read_text())
    assert m.query_language == "JSONata"
    assert m.states["T"].arguments == {"amount": "{% $states.input.amount %}"}
    assert m.states["T"].timeout_seconds == "{% $timeout %}"
    assert m.states["M"].items == "{% $states.input.items %}"
