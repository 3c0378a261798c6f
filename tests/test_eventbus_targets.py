"""Targets: InputPath and InputTransformer with AWS's quoting, execution-name templates,
state machines, other buses, handlers, retries on the virtual clock and the dead letters."""

from __future__ import annotations

import json

import pytest

import statelang
from statelang.eventbus import EventBus, run_until_idle
from statelang.eventbus.targets import execution_name, json_path, transform

EVENT = {"version": "0", "id": "e-1", "detail-type": "Booking Created", "source": "marketplace.booking",
         "account": "123456789012", "time": "2024-01-15T10:00:00Z", "region": "us-east-1", "resources": [],
         "detail": {"bookingId": "b-7", "amount": 100.5, "tags": ["x", "y"], "note": 'say "hi"',
                    "nested": {"a": 1}, "none": None}}
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


@pytest.fixture(params=["memory", "sqlite"])
def engine(request, tmp_path):
    if request.param == "memory":
        return statelang.Engine(db="memory", clock="virtual")
    return statelang.Engine(db=f"sqlite:///{tmp_path}/t.db", clock="virtual")


def test_json_path_subset():
    assert json_path(EVENT, "$.detail.bookingId") == (True, "b-7")
    assert json_path(EVENT, "$.detail.tags[1]") == (True, "y")
    assert json_path(EVENT, "$.detail-type") == (True, "Booking Created")
    assert json_path(EVENT, "$.detail.missing") == (False, None)
    assert json_path(EVENT, "$.detail.tags[*]") == (True, ["x", "y"])
    assert json_path(EVENT, "$") == (True, EVENT)


@pytest.mark.parametrize("template, expected", [
    ('{"id": <id>, "amount": <amount>}', {"id": "b-7", "amount": 100.5}),
    ('{"text": "booking <id> costs <amount>"}', {"text": "booking b-7 costs 100.5"}),
    ('{"note": "<note>"}', {"note": 'say "hi"'}),
    ('{"note": <note>}', {"note": 'say "hi"'}),
    ('{"tags": <tags>, "nested": <nested>}', {"tags": ["x", "y"], "nested": {"a": 1}}),
    ('{"missing": <missing>, "q": "<missing>"}', {"missing": None, "q": ""}),
    ('{"rule": "<aws.events.rule-name>", "at": "<aws.events.event.ingestion-time>"}',
     {"rule": "R", "at": "2024-01-15T10:00:00Z"}),
    ('{"whole": <aws.events.event.json>}', {"whole": EVENT}),
])
def test_transform_json_templates(template, expected):
    paths = {"id": "$.detail.bookingId", "amount": "$.detail.amount", "note": "$.detail.note",
             "tags": "$.detail.tags", "nested": "$.detail.nested", "missing": "$.detail.nope"}
    out = transform({"InputPathsMap": paths, "InputTemplate": template}, EVENT, "arn:rule/R", "R")
    assert json.loads(out) == expected


def test_transform_event_without_detail():
    out = transform({"InputTemplate": '{"e": <aws.events.event>}'}, EVENT, "a", "R")
    assert json.loads(out)["e"] == {k: v for k, v in EVENT.items() if k != "detail"}


def test_transform_text_template():
    t = {"InputPathsMap": {"i": "$.detail.bookingId", "a": "$.detail.amount"},
         "InputTemplate": "<i> is in state \"<a>\""}
    assert transform(t, EVENT, "a", "R") == 'b-7 is in state "100.5"'


def test_execution_name_templates():
    assert execution_name("booking-{detail.bookingId}-{timestamp}", EVENT) == "booking-b-7-1705312800000"
    assert execution_name("booking-{bookingId}-{timestamp}", EVENT) == "booking-b-7-1705312800000"
    assert execution_name("{source}-{id}", EVENT) == "marketplace.booking-e-1"
    from statelang.eventbus.targets import DeliveryFailed
    with pytest.raises(DeliveryFailed) as exc:
        execution_name("x-{nope}", EVENT)
    assert not exc.value.retryable


def _machine(engine, name="booking"):
    return engine.client().create_state_machine(
        name=name, definition=PASS, roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]


def test_state_machine_target_named_by_template_and_idempotent(engine):
    bus = EventBus(engine)
    sm = _machine(engine)
    bus.put_rule("start", {"source": ["marketplace.booking"]})
    bus.put_targets("start", [{"Id": "sm", "Arn": sm, "ExecutionName": "booking-{bookingId}-{timestamp}",
                               "InputPath": "$.detail"}])
    entry = {"Source": "marketplace.booking", "DetailType": "Booking Created", "Detail": {"bookingId": "b-1"},
             "Time": "2024-01-15T10:00:00Z"}
    bus.put_events([entry])
    bus.put_events([entry])   # the same event again: the same execution, no failure
    run_until_idle(engine)
    (row,) = engine.store.list_executions()
    assert row["name"] == "booking-b-1-1705312800000"
    assert json.loads(row["input"]) == {"bookingId": "b-1"}
    assert row["status"] == "SUCCEEDED"
    assert bus.dead_letters() == []


def test_state_machine_target_errors_are_dead_lettered_without_retry(engine):
    bus = EventBus(engine)
    bus.put_rule("r", {"source": ["a"]})
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:nope"
    bus.put_targets("r", [{"Id": "sm", "Arn": missing, "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:1:dlq"}}])
    bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {}}])
    (dead,) = bus.dead_letters()
    assert dead["ErrorCode"] == "StateMachineDoesNotExist"
    assert dead["RetryAttempts"] == 0 and dead["ExhaustedRetryCondition"] is None
    assert dead["DeadLetterArn"] == "arn:aws:sqs:us-east-1:1:dlq" and dead["TargetArn"] == missing
    assert bus.pending_deliveries() == []


def test_handler_retries_then_succeeds_on_virtual_clock(engine):
    bus = EventBus(engine)
    calls = []

    def flaky(payload):
        calls.append(engine.clock.now())
        if len(calls) < 4:
            raise ConnectionError("down")

    bus.register_handler("arn:aws:lambda:us-east-1:123456789012:function:flaky", flaky)
    bus.put_rule("r", {"source": ["a"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:flaky"}])
    bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {}}])
    assert len(calls) == 1 and len(bus.pending_deliveries()) == 1
    run_until_idle(engine)
    assert len(calls) == 4
    gaps = [(b - a).total_seconds() for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps == [1.0, 2.0, 4.0]
    assert bus.pending_deliveries() == [] and bus.dead_letters() == []


def test_retry_attempts_exhausted(engine):
    bus = EventBus(engine)
    calls = []

    def broken(payload):
        calls.append(payload)
        raise ValueError("bad payload")

    bus.register_handler("broken", broken)
    bus.put_rule("r", {"source": ["a"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "broken", "RetryPolicy": {"MaximumRetryAttempts": 2}}])
    bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {"k": 1}}])
    run_until_idle(engine)
    assert len(calls) == 3
    (dead,) = bus.dead_letters()
    assert dead["ExhaustedRetryCondition"] == "MaximumRetryAttemptsExhausted"
    assert dead["RetryAttempts"] == 2 and dead["ErrorCode"] == "ValueError"
    assert dead["ErrorMessage"] == "bad payload" and dead["Event"]["detail"] == {"k": 1}


def test_maximum_event_age(engine):
    bus = EventBus(engine)
    calls = []
    bus.register_handler("broken", lambda p: calls.append(1) or 1 / 0)
    bus.put_rule("r", {"source": ["a"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "broken", "RetryPolicy": {"MaximumEventAgeInSeconds": 60}}])
    bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {}}])
    run_until_idle(engine)
    (dead,) = bus.dead_letters()
    assert dead["ExhaustedRetryCondition"] == "MaximumEventAgeExceeded"
    assert len(calls) == 6   # at 0, 1, 3, 7, 15, 31 s; the next (63 s) would be past 60 s


def test_unknown_handler_and_bus_targets(engine):
    bus = EventBus(engine)
    orders = EventBus(engine, "orders")
    got = []
    orders.register_handler("h", got.append)
    orders.put_rule("all", {"source": ["a"]})
    orders.put_targets("all", [{"Id": "t", "Arn": "h"}])
    bus.put_rule("fwd", {"source": ["a"]})
    bus.put_targets("fwd", [{"Id": "bus", "Arn": orders.arn},
                            {"Id": "ghost", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:ghost"},
                            {"Id": "gone", "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/gone"}])
    eid = bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {}}])["Entries"][0]["EventId"]
    assert [e["id"] for e in got] == [eid]
    codes = sorted(d["ErrorCode"] for d in bus.dead_letters())
    assert codes == ["ResourceNotFoundException", "ResourceNotFoundException"]


def test_engine_handlers_serve_lambda_targets():
    got = []
    engine = statelang.Engine(db="memory", clock="virtual", handlers={"notify": got.append})
    bus = EventBus(engine)
    bus.put_rule("r", {"source": ["a"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:notify",
                           "Input": '{"fixed": true}'}])
    bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {}}])
    assert got == [{"fixed": True}]


def test_pending_retry_survives_a_restart(tmp_path):
    db = f"sqlite:///{tmp_path}/r.db"
    first = EventBus(statelang.Engine(db=db, clock="virtual"))
    first.register_handler("h", lambda p: 1 / 0)
    first.put_rule("r", {"source": ["a"]})
    first.put_targets("r", [{"Id": "t", "Arn": "h"}])
    first.put_events([{"Source": "a", "DetailType": "d", "Detail": {"n": 1}}])
    assert len(first.pending_deliveries()) == 1
    engine = statelang.Engine(db=db, clock="virtual")
    engine.clock.set(first.engine.clock.now())
    second = EventBus(engine)
    got = []
    second.register_handler("h", got.append)
    run_until_idle(engine)
    assert [e["detail"] for e in got] == [{"n": 1}]
    assert second.pending_deliveries() == [] and second.dead_letters() == []
