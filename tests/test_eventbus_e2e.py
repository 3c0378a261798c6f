"""The bus and the engine together, as the seed systems use them: a domain event starts a
workflow named by the auto-trigger table's pattern, the workflow publishes with events:putEvents,
its status changes reach the default bus, archives replay, a cron rule runs on the virtual clock;
and the ``events``/``rules`` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import statelang
from statelang.eventbus import EventBus, install, run_until_idle
from statelang.runtime.clock import VirtualClock

T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
BOOKING = {
    "StartAt": "Validate",
    "States": {
        "Validate": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:validate",
                     "ResultPath": "$.validation", "Next": "Publish"},
        "Publish": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                    "Parameters": {"Entries": [{
                        "Source": "marketplace.booking", "DetailType": "Booking Confirmed",
                        "EventBusName": "ecosystem-marketplace-events",
                        "Detail": {"bookingId.$": "$.bookingId", "amount.$": "$.amount"}}]},
                    "ResultPath": "$.published", "End": True},
    },
}


def _db(kind, tmp_path):
    if kind == "memory":
        return "memory"
    return f"sqlite:///{tmp_path}/e2e.db"


@pytest.fixture
def engine(backend_url):
    engine = statelang.Engine(db=backend_url, clock=VirtualClock(T0),
                              handlers={"validate": lambda p: {"ok": p["amount"] > 0}})
    install(engine, ["ecosystem-marketplace-events"])
    return engine


def _machine(engine, name, definition):
    return engine.client().create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]


def test_event_starts_workflow_that_publishes_to_a_handler(engine):
    market = EventBus(engine, "ecosystem-marketplace-events")
    sm = _machine(engine, "ecosystem-booking-lifecycle", BOOKING)
    market.put_rule("booking-created", {"source": ["marketplace.booking"], "detail-type": ["Booking Created"]})
    market.put_targets("booking-created", [{"Id": "wf", "Arn": sm, "InputPath": "$.detail",
                                            "ExecutionName": "booking-{bookingId}-{timestamp}"}])
    notified = []
    market.register_handler("arn:aws:lambda:us-east-1:123456789012:function:notification-handler", notified.append)
    market.put_rule("booking-events", {"source": ["marketplace.booking"], "detail-type": ["Booking Confirmed"]})
    market.put_targets("booking-events", [{"Id": "n", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:"
                                                             "notification-handler"}])

    out = market.put_events([{"Source": "marketplace.booking", "DetailType": "Booking Created",
                              "Detail": json.dumps({"bookingId": "booking-123", "amount": 100.0})}])
    assert out["FailedEntryCount"] == 0
    run_until_idle(engine)

    (row,) = engine.store.list_executions(sm)
    assert row["name"] == f"booking-booking-123-{int(T0.timestamp() * 1000)}"
    assert row["status"] == "SUCCEEDED"
    (event,) = notified
    assert event["detail"] == {"bookingId": "booking-123", "amount": 100.0}
    assert event["resources"] == [row["executionArn"], sm]   # Step Functions appends them
    output = json.loads(row["output"])
    assert output["published"]["FailedEntryCount"] == 0
    assert output["published"]["Entries"] == [{"EventId": event["id"]}]


def test_failed_entry_fails_the_task(engine):
    bad = {"StartAt": "P", "States": {"P": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                                            "Parameters": {"Entries": [{"Source": "s", "DetailType": "t",
                                                                        "Detail": {}, "EventBusName": "nope"}]},
                                            "End": True}}}
    sm = _machine(engine, "bad", bad)
    arn = engine.client().start_execution(stateMachineArn=sm, name="x")["executionArn"]
    run_until_idle(engine)
    row = engine.store.get_execution(arn)
    assert row["status"] == "FAILED" and row["error"] == "EventBridge.FailedEntry"
    assert json.loads(row["cause"])["Entries"][0]["ErrorCode"] == "ResourceNotFoundException"


def test_status_change_events(engine):
    bus = EventBus(engine)
    seen = []
    bus.register_handler("watch", seen.append)
    bus.put_rule("sfn-status", {"source": ["aws.states"],
                                "detail-type": ["Step Functions Execution Status Change"],
                                "detail": {"status": ["SUCCEEDED", "FAILED"]}})
    bus.put_targets("sfn-status", [{"Id": "w", "Arn": "watch"}])
    ok = _machine(engine, "ok", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 90, "End": True}}})
    boom = _machine(engine, "boom", {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope",
                                                                       "Cause": "because"}}})
    c = engine.client()
    a = c.start_execution(stateMachineArn=ok, name="a", input='{"k": 1}')["executionArn"]
    b = c.start_execution(stateMachineArn=boom, name="b")["executionArn"]
    run_until_idle(engine)
    by_arn = {e["detail"]["executionArn"]: e for e in seen}
    assert set(by_arn) == {a, b}
    ev = by_arn[a]
    assert ev["source"] == "aws.states" and ev["resources"] == [a]
    det = ev["detail"]
    assert det["status"] == "SUCCEEDED" and det["name"] == "a" and det["stateMachineArn"] == ok
    assert det["startDate"] == int(T0.timestamp() * 1000) and det["stopDate"] == det["startDate"] + 90_000
    assert json.loads(det["input"]) == {"k": 1} and json.loads(det["output"]) == {"k": 1}
    assert det["error"] is None and det["inputDetails"] == {"included": True}
    fail = by_arn[b]["detail"]
    assert fail["status"] == "FAILED" and fail["error"] == "Nope" and fail["cause"] == "because"
    assert fail["output"] is None


def test_archive_and_replay_restart_workflows(engine):
    market = EventBus(engine, "ecosystem-marketplace-events")
    sm = _machine(engine, "payments", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    market.create_archive("all-payments", {"source": ["marketplace.payment"]})
    market.put_rule("pay", {"source": ["marketplace.payment"]})
    market.put_targets("pay", [{"Id": "wf", "Arn": sm, "ExecutionName": "payment-{paymentIntentId}-{timestamp}"}])
    for n in range(3):
        market.put_events([{"Source": "marketplace.payment", "DetailType": "Payment Intent Created",
                            "Detail": {"paymentIntentId": f"pi_{n}"}}])
        engine.clock.advance(60)
    run_until_idle(engine)
    assert len(engine.store.list_executions(sm)) == 3
    # a fixed workflow version takes over the rule; replay the first two events through it
    sm2 = _machine(engine, "payments-v2", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    market.put_targets("pay", [{"Id": "wf", "Arn": sm2, "ExecutionName": "payment-{paymentIntentId}-{timestamp}"}])
    market.start_replay("all-payments", T0, T0 + timedelta(seconds=90), name="redo")
    run_until_idle(engine)
    rows = engine.store.list_executions(sm2)
    assert sorted(r["name"] for r in rows) == [f"payment-pi_{n}-{int((T0 + timedelta(seconds=60 * n)).timestamp() * 1000)}"
                                               for n in range(2)]
    assert all(json.loads(r["input"])["replay-name"] == "redo" for r in rows)


def test_cron_rule_starts_executions_in_order_with_waits(engine):
    """A cron at 02:00 daily starts a job whose Wait ends at 05:00; the virtual clock must fire
    both in their true order, never jumping past a schedule."""
    bus = EventBus(engine)
    sm = _machine(engine, "nightly", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3 * 3600,
                                                                        "End": True}}})
    bus.put_rule("nightly", schedule_expression="cron(0 2 * * ? *)")
    bus.put_targets("nightly", [{"Id": "wf", "Arn": sm, "ExecutionName": "nightly-{timestamp}"}])
    run_until_idle(engine, until=datetime(2024, 1, 17, 4, 0, tzinfo=UTC))
    rows = sorted(engine.store.list_executions(sm), key=lambda r: r["startDate"])
    assert [r["startDate"] for r in rows] == [datetime(2024, 1, 16, 2, 0, tzinfo=UTC),
                                              datetime(2024, 1, 17, 2, 0, tzinfo=UTC)]
    assert [r["status"] for r in rows] == ["SUCCEEDED", "RUNNING"]
    assert rows[0]["stopDate"] == datetime(2024, 1, 16, 5, 0, tzinfo=UTC)
    assert engine.clock.now() == datetime(2024, 1, 17, 4, 0, tzinfo=UTC)


# -- the commands -------------------------------------------------------------------------------

def _cli(args, **kw):
    from statelang.cli import main
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def test_cli_test_pattern_exit_codes(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"source": ["marketplace.booking"]}))
    (tmp_path / "e.json").write_text(json.dumps({"source": "marketplace.booking", "detail": {}}))
    assert _cli(["events", "test-pattern", "--pattern", f"@{tmp_path}/p.json",
                 "--event", f"@{tmp_path}/e.json"]).exit_code == 0
    r = _cli(["events", "test-pattern", "--pattern", '{"source": ["x"]}', "--event", f"@{tmp_path}/e.json"])
    assert r.exit_code == 1 and "no match" in r.output
    r = _cli(["events", "test-pattern", "--pattern", '{"source": "x"}', "--event", "{}"])
    assert r.exit_code == 2 and "Event pattern is not valid" in r.output and "Traceback" not in r.output


def test_cli_put_rules_archives_replay(tmp_path):
    db = _db("sqlite", tmp_path)
    bus = EventBus(statelang.Engine(db=db), "orders")
    bus.put_rule("r", {"source": ["shop"]}, description="orders in")
    bus.put_targets("r", [{"Id": "t", "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/default"}])
    bus.create_archive("orders-arc")
    (tmp_path / "d.json").write_text('{"orderId": "o-1"}')
    r = _cli(["events", "put", "--db", db, "--bus", "orders", "--source", "shop", "--detail-type", "Order",
              "--detail", f"@{tmp_path}/d.json"])
    assert r.exit_code == 0 and json.loads(r.output)["FailedEntryCount"] == 0
    r = _cli(["events", "put", "--db", db, "--bus", "orders", "--source", "shop", "--detail-type", "Order",
              "--detail", "[1]"])
    assert r.exit_code == 1 and json.loads(r.output)["Entries"][0]["ErrorCode"] == "MalformedDetail"
    r = _cli(["rules", "list", "--db", db, "--bus", "orders"])
    assert [x["Name"] for x in json.loads(r.output)["Rules"]] == ["r"]
    r = _cli(["rules", "describe", "r", "--db", db, "--bus", "orders"])
    assert json.loads(r.output)["Targets"][0]["Id"] == "t"
    r = _cli(["rules", "describe", "nope", "--db", db])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = _cli(["events", "archives", "list", "--db", db, "--bus", "orders"])
    assert json.loads(r.output)["Archives"][0]["EventCount"] == 1
    r = _cli(["events", "replay", "--db", db, "--bus", "orders", "--archive", "orders-arc",
              "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--name", "again"])
    assert r.exit_code == 0 and json.loads(r.output)["State"] == "COMPLETED"
    assert json.loads(r.output)["EventCount"] == 1


def test_workflow_event_starts_another_workflow(engine):
    """A chain through the bus from inside an execution: the publishing task's commit and the
    child's creation share one store (and one SQLite file) without deadlock."""
    market = EventBus(engine, "ecosystem-marketplace-events")
    first = _machine(engine, "ecosystem-booking-lifecycle", BOOKING)
    second = _machine(engine, "ecosystem-payment-processing",
                      {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    market.put_rule("confirmed", {"detail-type": ["Booking Confirmed"]})
    market.put_targets("confirmed", [{"Id": "pay", "Arn": second, "InputPath": "$.detail",
                                      "ExecutionName": "payment-{bookingId}"}])
    engine.client().start_execution(stateMachineArn=first, name="b1",
                                    input=json.dumps({"bookingId": "booking-9", "amount": 5}))
    run_until_idle(engine)
    (row,) = engine.store.list_executions(second)
    assert row["name"] == "payment-booking-9" and row["status"] == "SUCCEEDED"
    assert json.loads(row["output"]) == {"bookingId": "booking-9", "amount": 5}
