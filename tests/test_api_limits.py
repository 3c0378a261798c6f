"""The API model's length limits, answered as AWS answers them (ValidationException, Coral wording).

Sources: the Step Functions API reference, "Tag" (key 1-128, value 0-256 characters) and
"TagResource" (TooManyTags beyond 50 per resource); the wording of the message as moto's
test_stepfunctions.py::test_state_machine_name_limits pins it from AWS:
"1 validation error detected: Value '<name>' at 'name' failed to satisfy constraint: Member must
have length less than or equal to 80".
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statelang import Engine

ROLE = "arn:aws:iam::123456789012:role/r"
DEFINITION = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


@pytest.fixture
def client():
    return Engine(db="memory", clock="virtual").client()


@pytest.fixture
def machine(client):
    return client.create_state_machine(name="m", definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]


def _message(exc) -> str:
    return exc.value.response["Error"]["Message"]


def test_tag_key_over_128_characters(client, machine):
    key = "k" * 129
    with pytest.raises(client.exceptions.ValidationException) as err:
        client.tag_resource(resourceArn=machine, tags=[{"key": "ok", "value": "v"}, {"key": key, "value": "v"}])
    assert _message(err) == (f"1 validation error detected: Value '{key}' at 'tags.2.member.key' failed to "
                             "satisfy constraint: Member must have length less than or equal to 128")
    client.tag_resource(resourceArn=machine, tags=[{"key": "k" * 128, "value": "v" * 256}])   # the limits are inclusive


def test_tag_value_over_256_and_two_errors_counted(client):
    tags = [{"key": "k" * 129, "value": "v" * 257}]
    with pytest.raises(client.exceptions.ValidationException) as err:
        client.create_state_machine(name="t", definition=DEFINITION, roleArn=ROLE, tags=tags)
    assert _message(err) == (
        f"2 validation errors detected: Value '{'k' * 129}' at 'tags.1.member.key' failed to satisfy constraint: "
        "Member must have length less than or equal to 128; "
        f"Value '{'v' * 257}' at 'tags.1.member.value' failed to satisfy constraint: "
        "Member must have length less than or equal to 256")


def test_more_than_50_tags_is_too_many(client, machine):
    client.tag_resource(resourceArn=machine, tags=[{"key": f"k{i}", "value": ""} for i in range(50)])
    with pytest.raises(client.exceptions.TooManyTags):
        client.tag_resource(resourceArn=machine, tags=[{"key": "one-more", "value": ""}])
    with pytest.raises(client.exceptions.TooManyTags):
        client.create_state_machine(name="t", definition=DEFINITION, roleArn=ROLE,
                                    tags=[{"key": f"k{i}", "value": ""} for i in range(51)])


def test_name_over_80_characters(client, machine):
    """moto's AWS-pinned text for CreateStateMachine's and StartExecution's name."""
    name = "n" * 81
    for call in (lambda: client.create_state_machine(name=name, definition=DEFINITION, roleArn=ROLE),
                 lambda: client.start_execution(stateMachineArn=machine, name=name)):
        with pytest.raises(client.exceptions.ValidationException) as err:
            call()
        assert _message(err) == (f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
                                 "constraint: Member must have length less than or equal to 80")


def test_sensitive_members_are_not_echoed(client, machine):
    """SendTaskFailure's cause is sensitive in the model: the message names it, never repeats it."""
    with pytest.raises(client.exceptions.ValidationException) as err:
        client.send_task_failure(taskToken="t", error="e" * 257)
    assert _message(err) == ("1 validation error detected: Value at 'error' failed to satisfy constraint: "
                             "Member must have length less than or equal to 256")


@settings(max_examples=60, deadline=None)
@given(key=st.text(min_size=1, max_size=140), value=st.text(max_size=270))
def test_tag_limits_property(key, value):
    """A tag is accepted exactly when its key is 1-128 and its value 0-256 characters long."""
    client = Engine(db="memory", clock="virtual").client()
    arn = client.create_state_machine(name="m", definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
    ok = len(key) <= 128 and len(value) <= 256
    try:
        client.tag_resource(resourceArn=arn, tags=[{"key": key, "value": value}])
    except client.exceptions.ValidationException as exc:
        assert not ok
        assert "failed to satisfy constraint: Member must have length less than or equal to" in str(exc)
        return
    assert ok
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": key, "value": value}]
