"""Static validation, one fixture per rule: each invalid fixture must yield exactly the listed
(code, location) pairs, each valid fixture none.

AWS behaviour pinned, per row, is named in the comment beside it.  Codes are those of the
ValidateStateMachineDefinition API reference; messages were compared with definitions rejected by
AWS where a rejection text is public (noted "AWS text"), otherwise only code and location are
pinned.  Locations are JSON pointers (AWS prints array indexes as [i]; see test_to_aws_location).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statelang.language.errors import DefinitionError
from statelang.language.loading import load_definition
from statelang.language.validation import to_aws_location, validate

FIXTURES = Path(__file__).parent / "fixtures"
S, T, E = "SCHEMA_VALIDATION_FAILED", "MISSING_TRANSITION_TARGET", "MISSING_END_STATE"
# fixture -> (expected [(code, location)], message fragment of the first diagnostic or None)
INVALID = {
    # AWS text "These fields are required: [StartAt]": StartAt is required at the top level.
    "start_at_missing": ([(S, "")], "These fields are required: [StartAt]"),
    # StartAt must name a state of the same machine.
    "start_at_unknown": ([(T, "/StartAt")], "Nope"),
    # AWS text "Missing 'Next' target: Nope" at /States/A/Next; the orphaned B is also reported.
    "next_unknown": ([(T, "/States/A/Next"), (T, "/States/B")], "Missing 'Next' target: Nope"),
    # AWS says 'Next' for a dangling Default too.
    "default_unknown": ([(T, "/States/C/Default")], "Missing 'Next' target: Nope"),
    # ... and for a dangling Catch Next.
    "catch_next_unknown": ([(T, "/States/T/Catch/0/Next")], "Missing 'Next' target: Nope"),
    # AWS text 'State "B" is not reachable.' with MISSING_TRANSITION_TARGET at /States/B.
    "unreachable": ([(T, "/States/B")], 'State "B" is not reachable.'),
    # AWS text "Workflow has no terminal state", no location; it replaces the reachability report.
    "no_terminal": ([(E, "")], "Workflow has no terminal state"),
    # Next and End are mutually exclusive.
    "next_and_end": ([(S, "/States/A")], "[Next, End]"),
    # A non-terminal state needs Next or End: true.
    "neither_next_nor_end": ([(S, "/States/A")], "[Next, End]"),
    # AWS text "Field 'Next' is not supported": Succeed and Fail are terminal.
    "succeed_with_next": ([(S, "/States/S")], "Field 'Next' is not supported"),
    "fail_with_end": ([(S, "/States/F")], "Field 'End' is not supported"),
    # A field of another state type is refused at the state's location.
    "resource_on_pass": ([(S, "/States/A")], "Field 'Resource' is not supported"),
    "seconds_on_task": ([(S, "/States/T")], "Field 'Seconds' is not supported"),
    "unknown_field": ([(S, "/States/A")], "Field 'Colour' is not supported"),
    # AWS text "Expected value of type Integer at /States/W/Seconds".
    "wrong_field_type": ([(S, "/States/W/Seconds")], "Expected value of type Integer"),
    # State names are limited to 80 characters.
    "state_name_too_long": ([("INVALID_STATE_NAME", "/States/" + "N" * 81)], "80"),
    # InputPath must be a Path; ResultPath a Reference Path (no wildcards).
    "invalid_input_path": ([(S, "/States/A/InputPath")], "must be a valid JSONPath"),
    "invalid_result_path": ([(S, "/States/A/ResultPath")], "ReferencePath"),
    # AWS text "The value for the field 'x.$' must be a valid JSONPath", located inside the template.
    "invalid_template": ([(S, "/States/A/Parameters/p/x.$")], "The value for the field 'x.$'"),
    "malformed_intrinsic": ([(S, "/States/A/Parameters/x.$")], "'x.$'"),
    # Retriers: ErrorEquals non-empty; States.ALL alone and last; ranges; JitterStrategy FULL|NONE.
    "retry_empty_error_equals": ([(S, "/States/T/Retry/0/ErrorEquals")], None),
    "retry_all_not_alone": ([(S, "/States/T/Retry/0/ErrorEquals")], "States.ALL"),
    "retry_all_not_last": ([(S, "/States/T/Retry/0")], "States.ALL"),
    "retry_max_attempts_negative": ([(S, "/States/T/Retry/0/MaxAttempts")], "Minimum value is 0"),
    "retry_backoff_below_one": ([(S, "/States/T/Retry/0/BackoffRate")], "Minimum value is 1.0"),
    "retry_interval_zero": ([(S, "/States/T/Retry/0/IntervalSeconds")], "Minimum value is 1"),
    "retry_max_delay_zero": ([(S, "/States/T/Retry/0/MaxDelaySeconds")], "Minimum value is 1"),
    "retry_bad_jitter": ([(S, "/States/T/Retry/0/JitterStrategy")], "FULL, NONE"),
    "catch_all_not_last": ([(S, "/States/T/Catch/0")], "States.ALL"),
    # Choice states need Choices; each rule goes through statelang.language.choice.
    "choice_without_choices": ([(S, "/States/C")], "[Choices]"),
    "choice_bad_rule": (None, None),
    # Wait: exactly one of Seconds, SecondsPath, Timestamp, TimestampPath.
    "wait_without_duration": ([(S, "/States/W")], "Seconds, SecondsPath, Timestamp, TimestampPath"),
    "wait_two_durations": ([(S, "/States/W")], "There should only be one of the following fields"),
    # AWS text "There should only be one of the following fields: [..., ...Path]".
    "fail_error_and_error_path": ([(S, "/States/F")], "[Error, ErrorPath]"),
    "task_timeout_and_path": ([(S, "/States/T")], "[TimeoutSeconds, TimeoutSecondsPath]"),
    "heartbeat_not_below_timeout": ([(S, "/States/T/HeartbeatSeconds")], "HeartbeatSeconds"),
    # Branches are machines of their own, located under /Branches/<i>.
    "parallel_branch_fault": ([(T, "/States/P/Branches/0/States/X/Next"), (T, "/States/P/Branches/0/States/Y")],
                              "Missing 'Next' target: Z"),
    # A branch cannot transition to a state outside it.
    "parallel_cross_boundary": ([(T, "/States/P/Branches/0/States/X/Next"), (T, "/States/P/Branches/0/States/Y")],
                                "Missing 'Next' target: After"),
    "map_iterator_and_processor": ([(S, "/States/M")], "[ItemProcessor, Iterator]"),
    "map_processor_fault": ([(S, "/States/M/ItemProcessor/States/I")], "Seconds"),
    # AWS text "Maximum value is 100.0" / "Minimum value is 0".
    "tolerated_percentage_out_of_range": ([(S, "/States/M/ToleratedFailurePercentage")],
                                          "Maximum value is 100.0"),
    "tolerated_count_negative": ([(S, "/States/M/ToleratedFailureCount")], "Minimum value is 0"),
    # AWS text "The QueryLanguage is set to 'JSONata', but field 'InputPath' is only supported for
    # the 'JSONPath' QueryLanguage", and the converse for JSONata-only fields.
    "jsonata_with_input_path": ([(S, "/States/A/InputPath")], "The QueryLanguage is set to 'JSONata'"),
    "jsonpath_with_output": ([(S, "/States/A/Output")], "field 'Output' is only supported for the 'JSONata'"),
    "jsonpath_with_arguments": ([(S, "/States/T/Arguments")], "'Arguments'"),
    "jsonpath_with_condition": ([(S, "/States/C/Choices/0/Condition")], "'Condition'"),
    # A JSONata value that is not a literal must be wrapped in {% %}.
    "jsonata_seconds_not_wrapped": ([(S, "/States/W/Seconds")], "{% %}"),
    # AWS text "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine".
    "jsonata_machine_jsonpath_state": ([(S, "/States/A/QueryLanguage")], "can not be 'JSONPath'"),
    # AWS text "Field 'QueryLanguage' is not supported" at /States/M/ItemProcessor.
    "item_processor_query_language": ([(S, "/States/M/ItemProcessor")], "Field 'QueryLanguage'"),
    # Every problem in one pass.
    "three_faults": ([(S, "/States/A"), (S, "/States/B"), (S, "/States/C")], None),
    # INVALID_JSON_DESCRIPTION for text that is not JSON, with line and column.
    "malformed_json": ([("INVALID_JSON_DESCRIPTION", "")], "at line 4, column 39"),
}

VALID = sorted(p.name for p in (FIXTURES / "valid").glob("*.asl.json"))


def test_every_invalid_fixture_is_listed():
    on_disk = {p.name[: -len(".asl.json")] for p in (FIXTURES / "invalid").glob("*.asl.json")}
    assert on_disk == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixture(name):
    expected, fragment = INVALID[name]
    diagnostics = validate((FIXTURES / "invalid" / f"{name}.asl.json").read_text())
    if expected is None:  # only the location prefix is ours to pin; the text belongs to the rule checker
        assert diagnostics and all(d.location.startswith("/States/C/Choices/0") for d in diagnostics)
        return
    assert [(d.code, d.location) for d in diagnostics] == expected
    if fragment is not None:
        assert fragment in diagnostics[0].message
    assert all(d.severity == "ERROR" for d in diagnostics)


@pytest.mark.parametrize("name", VALID)
def test_valid_fixture(name):
    text = (FIXTURES / "valid" / name).read_text()
    assert validate(text) == []
    assert validate(text.encode()) == []
    assert validate(json.loads(text)) == []


def test_valid_fixtures_cover_both_map_spellings_and_jsonata():
    # Guards the fixture set itself: the rules above each need an accepted counterpart.
    assert {"map_iterator.asl.json", "map_item_processor.asl.json", "jsonata_machine.asl.json",
            "state_name_80.asl.json", "wait_each.asl.json", "task_retry_catch.asl.json"} <= set(VALID)


# --- load_definition --------------------------------------------------------------------------
def test_load_definition_reports_line_and_column():
    # INVALID_JSON_DESCRIPTION: "JSON syntax problem found", located by line and column.
    with pytest.raises(DefinitionError) as e:
        load_definition('{"StartAt": "A",\n  "States": }')
    [d] = e.value.diagnostics
    assert d.code == "INVALID_JSON_DESCRIPTION"
    assert d.message.endswith("at line 2, column 13")


def test_load_definition_empty_is_missing_description():
    # MISSING_DESCRIPTION: "Received a null or empty workflow input".
    with pytest.raises(DefinitionError) as e:
        load_definition("   ")
    assert e.value.diagnostics[0].code == "MISSING_DESCRIPTION"


def test_load_definition_accepts_text_bytes_and_dict():
    d = {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    assert load_definition(json.dumps(d)) == d
    assert load_definition(json.dumps(d).encode()) == d
    assert load_definition(d) is d


@pytest.mark.parametrize("text", ["[]", "1", '"x"', "null"])
def test_non_object_json_is_a_schema_error(text):
    [d] = validate(text)
    assert d.code == "SCHEMA_VALIDATION_FAILED"


# --- finer points -----------------------------------------------------------------------------
def _machine(**state):
    return {"StartAt": "A", "States": {"A": {**state, "End": True} if state.get("Type") != "Fail" else state}}


def test_boolean_is_not_an_integer():
    # JSON true is not a number, although Python's bool is an int.
    [d] = validate(_machine(Type="Wait", Seconds=True))
    assert (d.location, d.message) == ("/States/A/Seconds", "Expected value of type Integer")


def test_wait_seconds_maximum():
    # AWS text "Maximum value is 99999999 at /States/Wait/Seconds".
    [d] = validate(_machine(Type="Wait", Seconds=100000000))
    assert d.message == "Maximum value is 99999999"
    assert validate(_machine(Type="Wait", Seconds=99999999)) == []


def test_catch_needs_next_and_error_equals():
    d = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "r", "Catch": [{}], "End": True}}}
    got = [(x.location, x.message) for x in validate(d)]
    assert ("/States/T/Catch/0", "These fields are required: [ErrorEquals]") in got
    assert ("/States/T/Catch/0", "These fields are required: [Next]") in got


def test_jsonpath_only_catch_result_path_in_jsonata():
    d = {"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "T", "ResultPath": "$.e"}]}}}
    [x] = validate(d)
    assert x.location == "/States/T/Catch/0/ResultPath" and "JSONata" in x.message


def test_retry_and_catch_not_supported_on_pass():
    # AWS refuses Retry and Catch on Pass, Wait, Choice, Succeed and Fail.
    d = _machine(Type="Pass", Retry=[], Catch=[])
    assert [(x.location, x.message) for x in validate(d)] == [
        ("/States/A", "Field 'Retry' is not supported"), ("/States/A", "Field 'Catch' is not supported")]


def test_nested_states_take_the_machine_language_not_the_maps():
    # A Map declaring JSONata does not make its ItemProcessor's states JSONata.
    inner = {"StartAt": "I", "States": {"I": {"Type": "Pass", "Output": 1, "End": True}}}
    d = {"StartAt": "M", "States": {"M": {"Type": "Map", "QueryLanguage": "JSONata",
                                          "ItemProcessor": inner, "End": True}}}
    [x] = validate(d)
    assert x.location == "/States/M/ItemProcessor/States/I/Output"


def test_invalid_query_language_value():
    d = {"QueryLanguage": "XPath", "StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    [x] = validate(d)
    assert x.location == "/QueryLanguage"


def test_unknown_state_type():
    # The unknown type also leaves the machine without a terminal state.
    got = [(x.code, x.location) for x in validate(_machine(Type="Sleep"))]
    assert got == [("SCHEMA_VALIDATION_FAILED", "/States/A/Type"), ("MISSING_END_STATE", "")]


def test_state_names_with_slash_are_escaped_in_pointers():
    d = {"StartAt": "a/b", "States": {"a/b": {"Type": "Pass", "Next": "x~y"}}}
    x = validate(d)[0]
    assert x.location == "/States/a~1b/Next" and x.message == "Missing 'Next' target: x~y"


def test_to_aws_location():
    # AWS prints /States/C/Choices[0]/Next and /States/T/Catch[0]/Next.
    assert to_aws_location("/States/C/Choices/0/Next") == "/States/C/Choices[0]/Next"
    assert to_aws_location("/States/P/Branches/1/States/a~1b") == "/States/P/Branches[1]/States/a/b"
    assert to_aws_location("/States/0/Next") == "/States/0/Next"


def test_too_deeply_nested():
    # TOO_DEEPLY_NESTED: "The states are too deeply nested"; never a RecursionError.
    d: dict = {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}
    for i in range(150):
        d = {"StartAt": f"P{i}", "States": {f"P{i}": {"Type": "Parallel", "Branches": [d], "End": True}}}
    codes = {x.code for x in validate(json.dumps(d))}
    assert codes == {"TOO_DEEPLY_NESTED"}


def test_jsonpath_rules_go_to_the_choice_checker(monkeypatch):
    # Each JSONPath rule is handed to choice.check_choice_rule(rule, location) and its
    # diagnostics are reported as they come; JSONata rules (Condition) are never handed over.
    from statelang.language import validation_choice
    from statelang.language.diagnostics import Diagnostic

    seen = []

    def check_choice_rule(rule, location):
        seen.append((rule.get("Variable"), location))
        return [Diagnostic("SCHEMA_VALIDATION_FAILED", "stand-in", location + "/Variable")]

    monkeypatch.setattr(validation_choice, "check_choice_rule", check_choice_rule)
    rules = [{"Variable": "$.a", "IsPresent": True, "Next": "B"}, {"Variable": "$.b", "IsNull": True, "Next": "B"}]
    d = {"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": rules}, "B": {"Type": "Succeed"}}}
    got = [(x.location, x.message) for x in validate(d)]
    assert seen == [("$.a", "/States/C/Choices/0"), ("$.b", "/States/C/Choices/1")]
    assert got == [("/States/C/Choices/0/Variable", "stand-in"), ("/States/C/Choices/1/Variable", "stand-in")]
    seen.clear()
    d["QueryLanguage"] = "JSONata"
    d["States"]["C"]["Choices"] = [{"Condition": "{% true %}", "Next": "B"}]
    assert validate(d) == [] and seen == []



def test_a_state_name_written_twice_is_reported():
    # AWS ValidateStateMachineDefinition: DUPLICATE_STATE_NAME, "The same state name appears more
    # than once" — here a repeated key in one States object, which JSON parsing would silently drop.
    from statelang.language.validation import validate as check
    text = '{"StartAt":"A","States":{"A":{"Type":"Pass","End":true},"A":{"Type":"Succeed"}}}'
    assert [(d.code, d.location) for d in check(text)] == [("DUPLICATE_STATE_NAME", "/States/A")]
    assert check('{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}') == []
