"""The in-process client against boto3's documented behaviour: machines, versions, aliases,
executions, history, activities, tags, validation and the exceptions each raises.

Every case runs on the in-memory store and on a real SQLite file (skipped while the SQL store
package is not importable)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from statelang import Engine
from statelang.api.client import Client

ROLE = "arn:aws:iam::123456789012:role/statelang"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
PASS2 = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"v": 2}, "End": True}}})
WAIT = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}})
FAIL = json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "bad"}}})


@pytest.fixture(params=["memory", "sqlite"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        return Engine(db=f"sqlite:///{tmp_path}/x.db", clock="virtual")
    return Engine(db="memory", clock="virtual")


@pytest.fixture
def client(engine) -> Client:
    return engine.client()


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def make(client, name="m", definition=PASS, **kw):
    return client.create_state_machine(name=name, definition=definition, roleArn=ROLE, **kw)["stateMachineArn"]


def run(client, engine, sm_arn, input="{}", name=None):
    kw = {"name": name} if name else {}
    arn = client.start_execution(stateMachineArn=sm_arn, input=input, **kw)["executionArn"]
    engine.run_until_idle()
    return arn


# -- exceptions and parameters -----------------------------------------------------------------
def test_every_modelled_exception_is_a_client_error_on_client_exceptions(client):
    import gzip
    from pathlib import Path

    import botocore
    path = next(Path(botocore.__file__).parent.glob("data/stepfunctions/*/service-2.json.gz"))
    model = json.loads(gzip.open(path).read())
    names = [n for n, s in model["shapes"].items() if s.get("exception")]
    assert len(names) > 20
    for name in names:
        cls = getattr(client.exceptions, name)
        assert issubclass(cls, ClientError)
    assert client.exceptions.ClientError is ClientError


def test_missing_required_parameter_is_param_validation_error(client):
    with pytest.raises(ParamValidationError, match="stateMachineArn"):
        client.start_execution(name="x")
    with pytest.raises(ParamValidationError, match="roleArn"):
        client.create_state_machine(name="x", definition=PASS)
    with pytest.raises(ParamValidationError, match="Unknown parameter"):
        client.list_state_machines(bogus=1)
    with pytest.raises(TypeError):
        client.list_state_machines(10)


def test_client_error_names_the_operation(client):
    with pytest.raises(ClientError) as e:
        client.describe_state_machine(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:nope")
    assert code(e) == "StateMachineDoesNotExist"
    assert e.value.operation_name == "DescribeStateMachine"
    assert "StateMachineDoesNotExist" in str(e.value) and "DescribeStateMachine" in str(e.value)
    assert isinstance(e.value, e.value.__class__) and isinstance(e.value, ClientError)


# -- state machines ----------------------------------------------------------------------------
def test_state_machine_lifecycle(client):
    resp = client.create_state_machine(name="orders", definition=PASS, roleArn=ROLE,
                                       loggingConfiguration={"level": "OFF"})
    arn = resp["stateMachineArn"]
    assert arn == "arn:aws:states:us-east-1:123456789012:stateMachine:orders"
    assert isinstance(resp["creationDate"], datetime) and resp["creationDate"].tzinfo is not None
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    d = client.describe_state_machine(stateMachineArn=arn)
    assert (d["name"], d["definition"], d["roleArn"], d["type"], d["status"]) == \
        ("orders", PASS, ROLE, "STANDARD", "ACTIVE")
    assert d["loggingConfiguration"]["level"] == "OFF"
    before = d.get("revisionId")
    u = client.update_state_machine(stateMachineArn=arn, definition=PASS2)
    assert u["revisionId"] and u["revisionId"] != before
    assert client.describe_state_machine(stateMachineArn=arn)["definition"] == PASS2
    client.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.describe_state_machine(stateMachineArn=arn)


def test_create_is_idempotent_for_the_same_definition_only(client):
    first = client.create_state_machine(name="m", definition=PASS, roleArn=ROLE)
    again = client.create_state_machine(name="m", definition=PASS, roleArn=ROLE)
    assert again["stateMachineArn"] == first["stateMachineArn"]
    assert again["creationDate"] == first["creationDate"]
    with pytest.raises(client.exceptions.StateMachineAlreadyExists) as e:
        client.create_state_machine(name="m", definition=PASS2, roleArn=ROLE)
    assert first["stateMachineArn"] in e.value.response["Error"]["Message"]


def test_invalid_definition_message_lists_the_diagnostics(client):
    bad = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}})
    with pytest.raises(client.exceptions.InvalidDefinition) as e:
        make(client, definition=bad)
    msg = e.value.response["Error"]["Message"]
    assert msg.startswith("Invalid State Machine Definition: '") and msg.endswith("'")
    assert "MISSING_TRANSITION_TARGET" in msg and "/States/A/Next" in msg
    with pytest.raises(client.exceptions.InvalidDefinition):
        make(client, definition="{not json")


@pytest.mark.parametrize("name", ["has space", "a/b", "x:y", "q?", "tab\tname", "br{ace}", "ctl\x01"])
def test_invalid_names(client, name):
    with pytest.raises(client.exceptions.InvalidName):
        make(client, name=name)


def test_name_longer_than_80_is_refused(client):
    with pytest.raises(ClientError) as e:
        make(client, name="a" * 81)
    assert code(e) == "ValidationException"
    make(client, name="a" * 80)


def test_bad_role_and_bad_type(client):
    with pytest.raises(client.exceptions.InvalidArn):
        client.create_state_machine(name="m", definition=PASS, roleArn="not-an-arn")
    with pytest.raises(client.exceptions.ValidationException):
        make(client, type="LIGHTNING")
    with pytest.raises(client.exceptions.InvalidLoggingConfiguration):
        make(client, loggingConfiguration={"level": "ALL"})


def test_update_needs_something_to_change(client):
    arn = make(client)
    with pytest.raises(client.exceptions.MissingRequiredParameter):
        client.update_state_machine(stateMachineArn=arn)
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.update_state_machine(stateMachineArn=arn + "x", definition=PASS)


def test_malformed_arns(client):
    with pytest.raises(client.exceptions.InvalidArn):
        client.describe_state_machine(stateMachineArn="garbage")
    with pytest.raises(client.exceptions.InvalidArn):
        client.describe_execution(executionArn="arn:aws:states:us-east-1:123456789012:stateMachine:m")
    with pytest.raises(client.exceptions.InvalidArn):
        client.describe_activity(activityArn="arn:aws:states:us-east-1:123456789012:execution:a:b")


def test_list_state_machines_pages(client):
    names = [f"m{i:02d}" for i in range(7)]
    for n in names:
        make(client, name=n)
    seen, token, pages = [], None, 0
    while True:
        kw = {"nextToken": token} if token else {}
        resp = client.list_state_machines(maxResults=3, **kw)
        pages += 1
        assert len(resp["stateMachines"]) <= 3
        seen += [m["name"] for m in resp["stateMachines"]]
        token = resp.get("nextToken")
        if not token:
            break
    assert pages == 3 and sorted(seen) == names and len(set(seen)) == 7
    assert set(client.list_state_machines()["stateMachines"][0]) >= {"stateMachineArn", "name", "type", "creationDate"}
    with pytest.raises(client.exceptions.InvalidToken):
        client.list_state_machines(nextToken="not-a-token")
    paged = [m["name"] for p in client.get_paginator("list_state_machines").paginate(PaginationConfig={"PageSize": 2})
             for m in p["stateMachines"]]
    assert sorted(paged) == names


# -- versions and aliases ----------------------------------------------------------------------
def test_versions(client):
    resp = client.create_state_machine(name="v", definition=PASS, roleArn=ROLE, publish=True,
                                       versionDescription="first")
    arn, v1 = resp["stateMachineArn"], resp["stateMachineVersionArn"]
    assert v1 == arn + ":1"
    again = client.publish_state_machine_version(stateMachineArn=arn)
    assert again["stateMachineVersionArn"] == v1  # same revision: no new version
    u = client.update_state_machine(stateMachineArn=arn, definition=PASS2, publish=True, versionDescription="2nd")
    assert u["stateMachineVersionArn"] == arn + ":2"
    d1 = client.describe_state_machine(stateMachineArn=v1)
    assert d1["stateMachineArn"] == v1 and d1["definition"] == PASS and d1["description"] == "first"
    assert client.describe_state_machine(stateMachineArn=arn + ":2")["definition"] == PASS2
    listed = client.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [arn + ":2", v1]
    with pytest.raises(client.exceptions.ConflictException):
        client.publish_state_machine_version(stateMachineArn=arn, revisionId="stale")
    client.delete_state_machine_version(stateMachineVersionArn=v1)
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.describe_state_machine(stateMachineArn=v1)
    client.update_state_machine(stateMachineArn=arn, definition=PASS)
    v3 = client.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"]
    assert v3 == arn + ":3"  # numbers are never reused
    with pytest.raises(client.exceptions.ValidationException):
        client.update_state_machine(stateMachineArn=arn, definition=PASS2, versionDescription="no publish")


def test_execution_runs_the_definition_it_started_with(client, engine):
    arn = make(client, definition=WAIT)
    ex = client.start_execution(stateMachineArn=arn, input='{"k": 1}')["executionArn"]
    engine.run_until_idle(max_rounds=1)
    client.update_state_machine(stateMachineArn=arn, definition=PASS2)
    engine.run_until_idle()
    d = client.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == {"k": 1}
    assert client.describe_state_machine_for_execution(executionArn=ex)["definition"] == WAIT
    ex2 = run(client, engine, arn)
    assert json.loads(client.describe_execution(executionArn=ex2)["output"]) == {"v": 2}


def test_aliases_route_by_weight_and_record_the_version(client, engine):
    arn = make(client, publish=True)
    client.update_state_machine(stateMachineArn=arn, definition=PASS2, publish=True)
    v1, v2 = arn + ":1", arn + ":2"
    a = client.create_state_machine_alias(name="PROD", description="live", routingConfiguration=[
        {"stateMachineVersionArn": v1, "weight": 100}])
    alias = a["stateMachineAliasArn"]
    assert alias == arn + ":PROD"
    same = client.create_state_machine_alias(name="PROD", description="live", routingConfiguration=[
        {"stateMachineVersionArn": v1, "weight": 100}])
    assert same["stateMachineAliasArn"] == alias
    d = client.describe_state_machine_alias(stateMachineAliasArn=alias)
    assert d["name"] == "PROD" and d["description"] == "live" and d["routingConfiguration"][0]["weight"] == 100
    ex = run(client, engine, alias, name="via-alias")
    de = client.describe_execution(executionArn=ex)
    assert de["stateMachineAliasArn"] == alias and de["stateMachineVersionArn"] == v1
    assert de["stateMachineArn"] == arn and json.loads(de["output"]) == {}
    client.update_state_machine_alias(stateMachineAliasArn=alias, routingConfiguration=[
        {"stateMachineVersionArn": v1, "weight": 30}, {"stateMachineVersionArn": v2, "weight": 70}])
    picked = []
    for i in range(60):
        e = client.start_execution(stateMachineArn=alias, name=f"split-{i}")["executionArn"]
        picked.append(client.describe_execution(executionArn=e)["stateMachineVersionArn"])
    assert 8 <= picked.count(v1) <= 30 and picked.count(v1) + picked.count(v2) == 60
    only_v1 = client.list_executions(stateMachineArn=v1, maxResults=1000)["executions"]
    assert {e["stateMachineVersionArn"] for e in only_v1} == {v1}
    by_alias = client.list_executions(stateMachineArn=alias, maxResults=1000)["executions"]
    assert len(by_alias) == 61
    with pytest.raises(client.exceptions.ConflictException):
        client.delete_state_machine_version(stateMachineVersionArn=v2)
    listed = client.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]
    assert [x["stateMachineAliasArn"] for x in listed] == [alias]
    client.delete_state_machine_alias(stateMachineAliasArn=alias)
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.describe_state_machine_alias(stateMachineAliasArn=alias)
    client.delete_state_machine_version(stateMachineVersionArn=v2)


def test_alias_routing_rules(client):
    arn = make(client, publish=True)
    v1 = arn + ":1"
    with pytest.raises(client.exceptions.ValidationException):
        client.create_state_machine_alias(name="A", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 50}])
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.create_state_machine_alias(name="A", routingConfiguration=[
            {"stateMachineVersionArn": arn + ":9", "weight": 100}])
    with pytest.raises(client.exceptions.InvalidName):
        client.create_state_machine_alias(name="123", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}])
    client.create_state_machine_alias(name="A", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}])
    with pytest.raises(client.exceptions.ConflictException):
        client.create_state_machine_alias(name="A", description="other",
                                          routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}])


def test_deleting_a_machine_deletes_its_versions_and_aliases(client):
    arn = make(client, publish=True)
    alias = client.create_state_machine_alias(name="A", routingConfiguration=[
        {"stateMachineVersionArn": arn + ":1", "weight": 100}])["stateMachineAliasArn"]
    client.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.describe_state_machine(stateMachineArn=arn + ":1")
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.describe_state_machine_alias(stateMachineAliasArn=alias)
    client.delete_state_machine(stateMachineArn=arn)  # deleting again is not an error


# -- executions --------------------------------------------------------------------------------
def test_start_describe_and_the_arn_format(client, engine):
    arn = make(client, name="shop")
    resp = client.start_execution(stateMachineArn=arn, name="order-1", input='{"id": 7}')
    assert resp["executionArn"] == "arn:aws:states:us-east-1:123456789012:execution:shop:order-1"
    d = client.describe_execution(executionArn=resp["executionArn"])
    assert d["status"] == "RUNNING" and "stopDate" not in d and "output" not in d
    assert d["input"] == '{"id": 7}' and d["inputDetails"] == {"included": True}
    assert "stateMachineVersionArn" not in d and "stateMachineAliasArn" not in d
    engine.run_until_idle()
    d = client.describe_execution(executionArn=resp["executionArn"])
    assert d["status"] == "SUCCEEDED" and d["output"] == '{"id":7}' and d["outputDetails"] == {"included": True}
    assert d["stopDate"] >= d["startDate"] and d["redriveCount"] == 0
    meta = client.describe_execution(executionArn=resp["executionArn"], includedData="METADATA_ONLY")
    assert "input" not in meta and "output" not in meta


def test_start_without_name_or_input(client, engine):
    arn = make(client)
    ex = client.start_execution(stateMachineArn=arn)["executionArn"]
    import uuid
    uuid.UUID(ex.rsplit(":", 1)[1])
    assert client.describe_execution(executionArn=ex)["input"] == "{}"


def test_failed_execution_reports_error_and_cause(client, engine):
    ex = run(client, engine, make(client, definition=FAIL))
    d = client.describe_execution(executionArn=ex)
    assert (d["status"], d["error"], d["cause"]) == ("FAILED", "Boom", "bad")
    assert "output" not in d


def test_name_idempotency(client, engine):
    arn = make(client, definition=WAIT)
    first = client.start_execution(stateMachineArn=arn, name="n", input='{"a": 1}')
    again = client.start_execution(stateMachineArn=arn, name="n", input='{"a": 1}')
    assert again["executionArn"] == first["executionArn"] and again["startDate"] == first["startDate"]
    with pytest.raises(client.exceptions.ExecutionAlreadyExists) as e:
        client.start_execution(stateMachineArn=arn, name="n", input='{"a": 2}')
    assert first["executionArn"] in e.value.response["Error"]["Message"]
    client.stop_execution(executionArn=first["executionArn"])
    with pytest.raises(client.exceptions.ExecutionAlreadyExists):
        client.start_execution(stateMachineArn=arn, name="n", input='{"a": 1}')


def test_input_rules(client):
    arn = make(client)
    with pytest.raises(client.exceptions.InvalidExecutionInput):
        client.start_execution(stateMachineArn=arn, input="{nope")
    with pytest.raises(ClientError) as e:
        client.start_execution(stateMachineArn=arn, input=json.dumps({"x": "a" * 262144}))
    assert code(e) == "ValidationException"
    client.start_execution(stateMachineArn=arn, input=json.dumps({"x": "a" * 200000}))
    with pytest.raises(client.exceptions.InvalidName):
        client.start_execution(stateMachineArn=arn, name="bad name")
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.start_execution(stateMachineArn=arn + "-gone")
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.start_execution(stateMachineArn=arn + ":4")


def test_stop_execution(client, engine):
    arn = make(client, definition=WAIT)
    ex = client.start_execution(stateMachineArn=arn)["executionArn"]
    engine.run_until_idle(max_rounds=1)
    stop = client.stop_execution(executionArn=ex, error="Manual", cause="operator")
    d = client.describe_execution(executionArn=ex)
    assert d["status"] == "ABORTED" and d["stopDate"] == stop["stopDate"]
    assert (d["error"], d["cause"]) == ("Manual", "operator")
    types = [e["type"] for e in client.get_execution_history(executionArn=ex)["events"]]
    assert types[-1] == "ExecutionAborted"
    with pytest.raises(client.exceptions.ExecutionDoesNotExist):
        client.stop_execution(executionArn=ex + "x")


def test_list_executions_filters_pages_newest_first(client, engine):
    arn = make(client, definition=WAIT)
    other = make(client, name="other")
    arns = []
    for i in range(5):
        arns.append(client.start_execution(stateMachineArn=arn, name=f"e{i}")["executionArn"])
        engine.clock.advance(1)
    client.start_execution(stateMachineArn=other)
    client.stop_execution(executionArn=arns[0])
    running = client.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
    assert [e["executionArn"] for e in running] == arns[:0:-1]
    assert client.list_executions(stateMachineArn=arn, statusFilter="ABORTED")["executions"][0]["executionArn"] == arns[0]
    pages, token, seen = 0, None, []
    while True:
        kw = {"nextToken": token} if token else {}
        resp = client.list_executions(stateMachineArn=arn, maxResults=2, **kw)
        seen += [e["executionArn"] for e in resp["executions"]]
        pages += 1
        token = resp.get("nextToken")
        if not token:
            break
    assert pages == 3 and seen[0] == arns[0] and sorted(seen) == sorted(arns)  # the stopped one is newest
    item = running[0]
    assert set(item) >= {"executionArn", "stateMachineArn", "name", "status", "startDate"}
    with pytest.raises(client.exceptions.StateMachineDoesNotExist):
        client.list_executions(stateMachineArn=arn + "zz")
    with pytest.raises(client.exceptions.InvalidToken):
        client.list_executions(stateMachineArn=arn, nextToken=client.list_state_machines(maxResults=1)["nextToken"])


def test_express_executions(client, engine):
    arn = make(client, name="fast", type="EXPRESS")
    ex = client.start_execution(stateMachineArn=arn, name="x")["executionArn"]
    assert ex.startswith("arn:aws:states:us-east-1:123456789012:express:fast:x:")
    assert client.start_execution(stateMachineArn=arn, name="x")["executionArn"] != ex
    with pytest.raises(client.exceptions.StateMachineTypeNotSupported):
        client.list_executions(stateMachineArn=arn)


def test_history_options(client, engine):
    ex = run(client, engine, make(client), input='{"secret": 1}')
    full = client.get_execution_history(executionArn=ex)["events"]
    assert [e["id"] for e in full] == list(range(1, len(full) + 1))
    assert full[0]["type"] == "ExecutionStarted" and full[-1]["type"] == "ExecutionSucceeded"
    assert json.loads(full[0]["executionStartedEventDetails"]["input"]) == {"secret": 1}
    assert all(isinstance(e["timestamp"], datetime) for e in full)
    rev = client.get_execution_history(executionArn=ex, reverseOrder=True)["events"]
    assert [e["id"] for e in rev] == [e["id"] for e in reversed(full)]
    bare = client.get_execution_history(executionArn=ex, includeExecutionData=False)["events"]
    assert "input" not in bare[0]["executionStartedEventDetails"]
    assert "output" not in bare[-1]["executionSucceededEventDetails"]
    assert "input" in client.get_execution_history(executionArn=ex)["events"][0]["executionStartedEventDetails"]
    p1 = client.get_execution_history(executionArn=ex, maxResults=2, reverseOrder=True)
    p2 = client.get_execution_history(executionArn=ex, maxResults=2, reverseOrder=True, nextToken=p1["nextToken"])
    assert [e["id"] for e in p1["events"] + p2["events"]] == [e["id"] for e in rev]
    assert "nextToken" not in p2
    with pytest.raises(client.exceptions.ExecutionDoesNotExist):
        client.get_execution_history(executionArn=ex + "x")


def test_describe_state_machine_for_execution(client, engine):
    arn = make(client, name="sm")
    ex = run(client, engine, arn)
    d = client.describe_state_machine_for_execution(executionArn=ex)
    assert (d["stateMachineArn"], d["name"], d["definition"], d["roleArn"]) == (arn, "sm", PASS, ROLE)
    assert isinstance(d["updateDate"], datetime)


# -- activities, tags, validation --------------------------------------------------------------
def test_activities(client):
    resp = client.create_activity(name="worker")
    arn = resp["activityArn"]
    assert arn == "arn:aws:states:us-east-1:123456789012:activity:worker"
    assert client.create_activity(name="worker")["activityArn"] == arn
    d = client.describe_activity(activityArn=arn)
    assert d["name"] == "worker" and d["creationDate"] == resp["creationDate"]
    for i in range(3):
        client.create_activity(name=f"w{i}")
    first = client.list_activities(maxResults=2)
    rest = client.list_activities(maxResults=2, nextToken=first["nextToken"])
    assert len(first["activities"]) + len(rest["activities"]) == 4
    client.delete_activity(activityArn=arn)
    with pytest.raises(client.exceptions.ActivityDoesNotExist):
        client.describe_activity(activityArn=arn)
    with pytest.raises(client.exceptions.ActivityDoesNotExist):
        client.get_activity_task(activityArn=arn)
    with pytest.raises(client.exceptions.InvalidName):
        client.create_activity(name="no#hash")


def test_tags(client):
    arn = client.create_state_machine(name="t", definition=PASS, roleArn=ROLE,
                                      tags=[{"key": "team", "value": "a"}])["stateMachineArn"]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "a"}]
    client.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "b"}, {"key": "env", "value": "dev"}])
    tags = {t["key"]: t["value"] for t in client.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags == {"team": "b", "env": "dev"}
    client.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "dev"}]
    act = client.create_activity(name="a", tags=[{"key": "k", "value": "v"}])["activityArn"]
    assert client.list_tags_for_resource(resourceArn=act)["tags"] == [{"key": "k", "value": "v"}]
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.tag_resource(resourceArn=arn + "x", tags=[{"key": "a", "value": "b"}])
    with pytest.raises(client.exceptions.TooManyTags):
        client.tag_resource(resourceArn=arn, tags=[{"key": f"k{i}", "value": ""} for i in range(50)])


def test_validate_state_machine_definition(client):
    ok = client.validate_state_machine_definition(definition=PASS)
    assert ok["result"] == "OK" and ok["diagnostics"] == [] and ok["truncated"] is False
    bad = json.dumps({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [
        {"Variable": "$.x", "NumericEquals": 1, "Next": "Missing"}], "Default": "D"},
        "D": {"Type": "Succeed"}}})
    resp = client.validate_state_machine_definition(definition=bad)
    assert resp["result"] == "FAIL"
    diag = resp["diagnostics"][0]
    assert diag["severity"] == "ERROR" and diag["code"] == "MISSING_TRANSITION_TARGET"
    assert diag["location"] == "/States/C/Choices[0]/Next"
    many = json.dumps({"StartAt": "A", "States": {f"S{i}": {"Type": "Pass", "Next": f"X{i}"} for i in range(5)}})
    cut = client.validate_state_machine_definition(definition=many, maxResults=2)
    assert cut["result"] == "FAIL" and len(cut["diagnostics"]) == 2 and cut["truncated"] is True


def test_call_by_operation_name(client):
    arn = client.call("CreateStateMachine", {"name": "byname", "definition": PASS, "roleArn": ROLE})["stateMachineArn"]
    assert client.call("DescribeStateMachine", {"stateMachineArn": arn})["name"] == "byname"
    with pytest.raises(client.exceptions.ValidationException):
        client.call("NoSuchOperation", {})


def test_machines_and_executions_survive_a_new_engine_on_the_same_file(tmp_path):
    db = f"sqlite:///{tmp_path}/durable.db"
    first = Engine(db=db, clock="virtual")
    c1 = first.client()
    arn = c1.create_state_machine(name="keep", definition=WAIT, roleArn=ROLE, publish=True)["stateMachineArn"]
    c1.create_activity(name="act", tags=[{"key": "k", "value": "v"}])
    ex = c1.start_execution(stateMachineArn=arn + ":1", name="survivor", input='{"x": 1}')["executionArn"]
    second = Engine(db=db, clock="virtual")
    c2 = second.client()
    assert c2.describe_state_machine(stateMachineArn=arn)["definition"] == WAIT
    assert [v["stateMachineVersionArn"] for v in c2.list_state_machine_versions(stateMachineArn=arn)
            ["stateMachineVersions"]] == [arn + ":1"]
    assert c2.list_tags_for_resource(resourceArn=c2.list_activities()["activities"][0]["activityArn"])["tags"] == \
        [{"key": "k", "value": "v"}]
    second.run_until_idle()
    d = c2.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED" and d["stateMachineVersionArn"] == arn + ":1" and d["input"] == '{"x": 1}'
    with pytest.raises(c2.exceptions.ExecutionAlreadyExists):
        c2.start_execution(stateMachineArn=arn, name="survivor", input='{"x": 1}')


def test_history_details_hold_only_modelled_members(client, engine):
    ex = run(client, engine, make(client))
    started = client.get_execution_history(executionArn=ex)["events"][0]["executionStartedEventDetails"]
    assert set(started) <= {"input", "inputDetails", "roleArn", "stateMachineAliasArn", "stateMachineVersionArn"}
    assert started["roleArn"] == ROLE


def test_execution_started_event_names_the_version_and_alias(client, engine):
    arn = make(client, publish=True)
    alias = client.create_state_machine_alias(name="LIVE", routingConfiguration=[
        {"stateMachineVersionArn": arn + ":1", "weight": 100}])["stateMachineAliasArn"]
    ex = run(client, engine, alias)
    started = client.get_execution_history(executionArn=ex)["events"][0]["executionStartedEventDetails"]
    assert started["stateMachineVersionArn"] == arn + ":1"
    assert started["stateMachineAliasArn"] == alias


def test_a_definition_over_one_mebibyte_is_refused(client):
    # AWS API reference, CreateStateMachine: definition length at most 1048576.
    big = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "x" * 1048576, "End": True}}}
    with pytest.raises(client.exceptions.ValidationException) as err:
        client.create_state_machine(name="big", definition=json.dumps(big), roleArn=ROLE)
    assert "1048576" in str(err.value)


def test_name_rule_refuses_exactly_the_characters_aws_lists():
    """AWS (CreateStateMachine/StartExecution ``name``): no white space, brackets < > { } [ ],
    wildcards ? *, special characters " # % \\ ^ | ~ ` $ & , ; : /, control characters
    (U+0000-001F, U+007F-009F), surrogates or the non-characters U+FFFE/U+FFFF. Checked for every
    code point against that rule spelt out character by character."""
    from statelang.api.machines import check_name

    listed = set(' <>{}[]?*"#%\\^|~`$&,;:/')

    def refused(c: str) -> bool:
        o = ord(c)
        return (c in listed or c.isspace() or o <= 0x1F or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF
                or o in (0xFFFE, 0xFFFF))

    wrong = []
    for o in range(0x110000):
        c = chr(o)
        try:
            check_name(f"a{c}b")
            ok = True
        except Exception as e:
            assert type(e).__name__ == "InvalidName", (hex(o), e)
            ok = False
        if ok == refused(c):
            wrong.append(hex(o))
    assert wrong == []


_OPERATIONS = sorted({"StartExecution", "DescribeExecution", "SendTaskSuccess", "SendTaskFailure", "CreateStateMachine",
                      "ListExecutions", "TagResource", "CreateStateMachineAlias", "GetExecutionHistory"})


@st.composite
def _requests(draw):
    from statelang.api.client import _service_model
    op = draw(st.sampled_from(_OPERATIONS))
    members = list(_service_model().operation_model(op).input_shape.members)
    names = draw(st.lists(st.sampled_from([*members, "unknownMember"]), unique=True, max_size=6))
    values = st.one_of(st.text(max_size=3), st.integers(), st.none(), st.lists(st.text(max_size=2), max_size=2),
                       st.booleans())
    return op, {n: draw(values) for n in names}


@settings(max_examples=600, deadline=None)
@given(_requests())
def test_the_validation_shortcut_never_accepts_what_botocore_refuses(request):
    """The client skips botocore's parameter validator for requests of plain strings only; every
    request it lets through that way must be one botocore's validator accepts."""
    from botocore.validate import validate_parameters

    from statelang.api.client import _plainly_valid, _service_model
    op, params = request
    if _plainly_valid(op, params):
        validate_parameters(params, _service_model().operation_model(op).input_shape)


def test_the_validation_shortcut_takes_the_hot_requests():
    from statelang.api.client import _plainly_valid
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:e1"
    assert _plainly_valid("StartExecution", {"stateMachineArn": arn, "name": "e1", "input": "{}"})
    assert _plainly_valid("DescribeExecution", {"executionArn": arn})
    assert not _plainly_valid("StartExecution", {"stateMachineArn": arn, "name": ""})      # below min 1
    assert not _plainly_valid("StartExecution", {"name": "e1"})                            # required missing
    assert not _plainly_valid("StartExecution", {"stateMachineArn": arn, "nme": "x"})      # unknown member
    assert not _plainly_valid("TagResource", {"resourceArn": arn, "tags": []})             # not a string member


def test_every_response_carries_a_fresh_version_4_request_id():
    import uuid as uuid_module

    from statelang.api.client import _request_id
    ids = {_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in ids:
        u = uuid_module.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid_module.RFC_4122


# -- response shaping -----------------------------------------------------------------------------

def _reference_shaped(value, shape):
    """The plain walk the client's compiled shaper must agree with: keep the members the service
    model defines and drop absent (None) ones, at every level, as botocore's parser does."""
    kind = getattr(shape, "type_name", None)
    if kind == "structure" and isinstance(value, dict):
        return {k: _reference_shaped(v, shape.members[k]) for k, v in value.items()
                if v is not None and k in shape.members}
    if kind == "list" and isinstance(value, list):
        return [_reference_shaped(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _reference_shaped(v, shape.value) for k, v in value.items() if v is not None}
    return _reference_clean(value)


def _reference_clean(value):
    if isinstance(value, dict):
        return {k: _reference_clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_reference_clean(v) for v in value]
    return value


def _responses(shape, depth=0):
    """Values for `shape`: its members (some None, some of the wrong kind) and members it lacks."""
    scalar = st.none() | st.integers() | st.text(max_size=3) | st.booleans()
    anything = st.recursive(scalar, lambda inner: st.lists(inner, max_size=2)
                            | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=4)
    kind = shape.type_name
    if depth > 3 or kind not in ("structure", "list", "map"):
        return anything
    if kind == "list":
        return st.lists(_responses(shape.member, depth + 1), max_size=3) | anything
    if kind == "map":
        return st.dictionaries(st.text(max_size=3), _responses(shape.value, depth + 1), max_size=3) | anything
    names = sorted(shape.members)
    members = st.lists(st.sampled_from(names), max_size=6, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({n: _responses(shape.members[n], depth + 1) for n in chosen}))
    extra = st.dictionaries(st.sampled_from(["internal", "_seq", "frameId"]), anything, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, members, extra) | anything


@pytest.mark.parametrize("op", ["GetExecutionHistory", "DescribeExecution", "ListExecutions",
                                "DescribeStateMachine", "DescribeMapRun", "TestState"])
def test_the_compiled_shaper_agrees_with_the_plain_walk(op):
    from statelang.api.client import _service_model, _shaped
    shape = _service_model().operation_model(op).output_shape

    @settings(max_examples=150, deadline=None)
    @given(value=_responses(shape))
    def agree(value):
        assert _shaped(value, shape) == _reference_shaped(value, shape)
    agree()


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=600, deadline=None)
@given(_json_values)
def test_output_text_is_compacted_as_reading_and_writing_it_would(value):
    """describe_execution hands output back compact. Text the engine wrote (jsontext's compact
    text) goes back as it is, without being read and written again; text with white space in it
    (json's default separators, as older stores or imports may hold) comes back compact. Both
    agree with reading and writing the text, whichever of json's ways wrote it."""
    from statelang.api.client import _compact
    from statelang.language import jsontext
    for text in (jsontext.dumps(value), json.dumps(value), json.dumps(value, ensure_ascii=False),
                 json.dumps(value, separators=(",", ":")), json.dumps(value, indent=2)):
        assert _compact(text) == jsontext.dumps(jsontext.loads(text))
