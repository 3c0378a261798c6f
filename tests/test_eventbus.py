"""The bus's API as EventBridge's: rules, targets, PutEvents limits and errors, archives, replay,
buses by name — on the in-memory store and on a real SQLite file, and across two engines."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import statelang
from statelang.eventbus import EventBridgeError, EventBus


def _sqlite(tmp_path):
    return f"sqlite:///{tmp_path}/bus.db"


@pytest.fixture
def engine(backend_url):
    """Every test on each backend: memory, a SQLite file, a PostgreSQL database."""
    return statelang.Engine(db=backend_url, clock="virtual")


@pytest.fixture
def bus(engine):
    return EventBus(engine)


def _entry(**kw):
    return {"Source": "marketplace.booking", "DetailType": "Booking Created",
            "Detail": json.dumps({"bookingId": "b-1"}), **kw}


def test_rule_lifecycle(bus):
    arn = bus.put_rule("r1", {"source": ["a"]}, description="first")["RuleArn"]
    assert arn == "arn:aws:events:us-east-1:123456789012:rule/r1"
    d = bus.describe_rule("r1")
    assert d["State"] == "ENABLED" and d["EventBusName"] == "default" and json.loads(d["EventPattern"]) == {
        "source": ["a"]}
    bus.disable_rule("r1")
    assert bus.describe_rule("r1")["State"] == "DISABLED"
    bus.enable_rule("r1")
    assert bus.describe_rule("r1")["State"] == "ENABLED"
    bus.put_targets("r1", [{"Id": "t", "Arn": "h"}])
    with pytest.raises(EventBridgeError) as exc:
        bus.delete_rule("r1")
    assert exc.value.code == "ValidationException"
    assert exc.value.message == "Rule can't be deleted since it has targets."
    bus.remove_targets("r1", ["t"])
    bus.delete_rule("r1")
    with pytest.raises(EventBridgeError) as exc:
        bus.describe_rule("r1")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert exc.value.message == "Rule r1 does not exist on EventBus default."
    assert bus.delete_rule("never-was") == {}


def test_put_rule_validation(bus):
    cases = [
        (dict(name="bad name!", event_pattern={"source": ["a"]}), "ValidationException"),
        (dict(name="r"), "ValidationException"),
        (dict(name="r", event_pattern={"source": "a"}), "InvalidEventPatternException"),
        (dict(name="r", schedule_expression="rate(1 minutes)"), "ValidationException"),
        (dict(name="r", event_pattern={"source": ["a"]}, state="ON"), "ValidationException"),
    ]
    for kwargs, code in cases:
        with pytest.raises(EventBridgeError) as exc:
            bus.put_rule(**kwargs)
        assert exc.value.code == code, kwargs
    custom = EventBus(bus.engine, "orders")
    with pytest.raises(EventBridgeError, match="only on the default event bus"):
        custom.put_rule("s", schedule_expression="rate(5 minutes)")


def test_list_rules_prefix_and_paging(bus):
    for n in range(7):
        bus.put_rule(f"rule-{n}", {"source": [str(n)]})
    bus.put_rule("other", {"source": ["x"]})
    page = bus.list_rules("rule-", limit=3)
    names = [r["Name"] for r in page["Rules"]]
    while "NextToken" in page:
        page = bus.list_rules("rule-", next_token=page["NextToken"], limit=3)
        names += [r["Name"] for r in page["Rules"]]
    assert names == [f"rule-{n}" for n in range(7)]
    assert [r["Name"] for r in bus.list_rules()["Rules"]][0] == "other"


def test_put_targets_validation_and_limit(bus):
    bus.put_rule("r", {"source": ["a"]})
    out = bus.put_targets("r", [
        {"Id": "ok", "Arn": "h"},
        {"Id": "two", "Arn": "h", "Input": "{}", "InputPath": "$.detail"},
        {"Id": "tpl", "Arn": "h", "InputTransformer": {"InputPathsMap": {}, "InputTemplate": "<nope>"}},
        {"Id": "bad id!", "Arn": "h"},
    ])
    assert out["FailedEntryCount"] == 3
    assert [f["TargetId"] for f in out["FailedEntries"]] == ["two", "tpl", "bad id!"]
    assert [t["Id"] for t in bus.list_targets_by_rule("r")["Targets"]] == ["ok"]
    bus.put_targets("r", [{"Id": f"t{n}", "Arn": "h"} for n in range(4)])
    with pytest.raises(EventBridgeError) as exc:
        bus.put_targets("r", [{"Id": "t9", "Arn": "h"}])
    assert exc.value.code == "LimitExceededException"
    with pytest.raises(EventBridgeError) as exc:
        bus.put_targets("missing", [{"Id": "t", "Arn": "h"}])
    assert exc.value.code == "ResourceNotFoundException"


def test_put_events_entry_errors_and_limits(bus):
    out = bus.put_events([
        _entry(),
        {"DetailType": "t", "Detail": "{}"},
        {"Source": "s", "Detail": "{}"},
        {"Source": "s", "DetailType": "t"},
        _entry(Detail="not json"),
        _entry(Detail="[1, 2]"),
        _entry(EventBusName="nowhere"),
    ])
    assert out["FailedEntryCount"] == 6
    assert "EventId" in out["Entries"][0]
    assert out["Entries"][1] == {"ErrorCode": "InvalidArgument", "ErrorMessage":
                                 "Parameter Source is not valid. Reason: Source is a required argument."}
    assert out["Entries"][2]["ErrorMessage"].startswith("Parameter DetailType is not valid")
    assert out["Entries"][3]["ErrorMessage"].startswith("Parameter Detail is not valid")
    assert out["Entries"][4] == {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    assert out["Entries"][5]["ErrorCode"] == "MalformedDetail"
    assert out["Entries"][6]["ErrorCode"] == "ResourceNotFoundException"
    with pytest.raises(EventBridgeError, match="less than or equal to 10"):
        bus.put_events([_entry()] * 11)
    with pytest.raises(EventBridgeError, match="greater than or equal to 1"):
        bus.put_events([])
    big = json.dumps({"x": "y" * (130 * 1024)})
    with pytest.raises(EventBridgeError, match="over the limit"):
        bus.put_events([_entry(Detail=big), _entry(Detail=big)])
    assert bus.put_events([_entry(Detail=big)])["FailedEntryCount"] == 0


def test_events_reach_matching_enabled_rules_only(bus):
    got = []
    bus.register_handler("h", lambda e: got.append(e["detail"]["n"]))
    bus.put_rule("match", {"source": ["a"], "detail": {"n": [{"numeric": [">", 1]}]}})
    bus.put_targets("match", [{"Id": "t", "Arn": "h"}])
    bus.put_rule("off", {"source": ["a"]}, state="DISABLED")
    bus.put_targets("off", [{"Id": "t", "Arn": "h"}])
    for n in range(4):
        bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {"n": n}}])
    assert got == [2, 3]
    bus.enable_rule("off")
    bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {"n": 0}}])
    assert got == [2, 3, 0]


def test_event_envelope(bus, engine):
    seen = []
    bus.register_handler("h", seen.append)
    bus.put_rule("r", {"source": ["a"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "h"}])
    eid = bus.put_events([{"Source": "a", "DetailType": "d", "Detail": "{\"k\": 1}",
                           "Resources": ["arn:x"]}])["Entries"][0]["EventId"]
    (event,) = seen
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources",
                          "detail"}
    assert event["id"] == eid and event["version"] == "0" and event["resources"] == ["arn:x"]
    assert event["time"] == engine.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def test_buses_by_name(engine):
    orders = EventBus(engine, "orders")
    assert orders.arn.endswith(":event-bus/orders")
    names = [b["Name"] for b in orders.list_event_buses()["EventBuses"]]
    assert names == ["default", "orders"]
    arn = orders.put_rule("r", {"source": ["a"]})["RuleArn"]
    assert arn.endswith(":rule/orders/r")
    assert EventBus(engine).list_rules()["Rules"] == []
    got = []
    orders.register_handler("h", got.append)
    orders.put_targets("r", [{"Id": "t", "Arn": "h"}])
    # put through the default bus with EventBusName, by name and by ARN
    EventBus(engine).put_events([{"Source": "a", "DetailType": "d", "Detail": "{}", "EventBusName": "orders"},
                                 {"Source": "a", "DetailType": "d", "Detail": "{}", "EventBusName": orders.arn}])
    assert len(got) == 2
    with pytest.raises(EventBridgeError):
        orders.delete_event_bus("default")


def test_archive_and_replay(bus, engine):
    got = []
    bus.register_handler("h", got.append)
    bus.put_rule("r", {"source": ["a"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "h"}])
    bus.create_archive("arc", {"detail": {"keep": [True]}})
    with pytest.raises(EventBridgeError) as exc:
        bus.create_archive("arc")
    assert exc.value.code == "ResourceAlreadyExistsException"
    t0 = engine.clock.now()
    for n in range(5):
        bus.put_events([{"Source": "a", "DetailType": "d", "Detail": {"n": n, "keep": n != 2}}])
        engine.clock.advance(60)
    d = bus.describe_archive("arc")
    assert d["EventCount"] == 4 and d["SizeBytes"] > 0 and d["State"] == "ENABLED"
    assert [a["ArchiveName"] for a in bus.list_archives()["Archives"]] == ["arc"]
    got.clear()
    out = bus.start_replay("arc", t0 + timedelta(seconds=30), t0 + timedelta(seconds=200), name="rp")
    assert out["State"] == "STARTING" and out["ReplayArn"].endswith(":replay/rp")
    assert [e["detail"]["n"] for e in got] == [1, 3]
    assert all(e["replay-name"] == "rp" for e in got)
    assert bus.describe_replay("rp")["State"] == "COMPLETED"
    assert bus.describe_archive("arc")["EventCount"] == 4   # replayed events are not archived again
    with pytest.raises(EventBridgeError, match="EventStartTime must be before EventEndTime"):
        bus.start_replay("arc", t0, t0)
    with pytest.raises(EventBridgeError) as exc:
        bus.start_replay("arc", t0, t0 + timedelta(hours=1), name="rp")
    assert exc.value.code == "ResourceAlreadyExistsException"
    # a rule can refuse replays with the replay-name field, as on AWS
    bus.put_rule("live-only", {"source": ["a"], "replay-name": [{"exists": False}]})
    bus.put_targets("live-only", [{"Id": "t", "Arn": "live"}])
    live = []
    bus.register_handler("live", live.append)
    bus.start_replay("arc", t0, t0 + timedelta(hours=1), name="rp2")
    assert live == []
    bus.delete_archive("arc")
    with pytest.raises(EventBridgeError):
        bus.describe_archive("arc")


def test_records_survive_a_new_engine(tmp_path):
    db = _sqlite(tmp_path)
    first = EventBus(statelang.Engine(db=db, clock="virtual"), "orders")
    first.put_rule("r", {"source": ["a"]})
    first.put_targets("r", [{"Id": "t", "Arn": "h", "InputPath": "$.detail"}])
    first.create_archive("arc")
    second = EventBus(statelang.Engine(db=db, clock="virtual"), "orders")
    got = []
    second.register_handler("h", got.append)
    second.put_events([{"Source": "a", "DetailType": "d", "Detail": {"x": 1}}])
    assert got == [{"x": 1}]
    assert second.describe_archive("arc")["EventCount"] == 1
    assert [b["Name"] for b in second.list_event_buses()["EventBuses"]] == ["default", "orders"]
