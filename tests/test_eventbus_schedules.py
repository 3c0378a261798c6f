"""Schedule expressions as EventBridge reads them, and schedules firing on the virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import statelang
from statelang.eventbus import EventBridgeError, EventBus, parse_schedule, run_until_idle
from statelang.runtime.clock import VirtualClock

T0 = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)  # a Monday


def _times(expression: str, start: datetime = T0, n: int = 4, **kw) -> list[datetime]:
    sched = parse_schedule(expression, anchor=start, **kw)
    out, t = [], start
    for _ in range(n):
        t = sched.next_after(t)
        if t is None:
            break
        out.append(t)
    return out


def d(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_rate():
    assert _times("rate(5 minutes)", n=3) == [d(2024, 1, 1, 0, 5), d(2024, 1, 1, 0, 10), d(2024, 1, 1, 0, 15)]
    assert _times("rate(1 hour)", n=2) == [d(2024, 1, 1, 1), d(2024, 1, 1, 2)]
    assert _times("rate(2 days)", n=1) == [d(2024, 1, 3)]


@pytest.mark.parametrize("expression, expected", [
    ("cron(0 10 * * ? *)", [d(2024, 1, 1, 10), d(2024, 1, 2, 10)]),
    ("cron(15 12 ? * MON-FRI *)", [d(2024, 1, 1, 12, 15), d(2024, 1, 2, 12, 15)]),
    ("cron(0 8 ? * 1 *)", [d(2024, 1, 7, 8), d(2024, 1, 14, 8)]),             # 1 is Sunday
    ("cron(0 8 ? * 7 *)", [d(2024, 1, 6, 8), d(2024, 1, 13, 8)]),             # 7 is Saturday
    ("cron(0/30 * * * ? *)", [d(2024, 1, 1, 0, 30), d(2024, 1, 1, 1, 0)]),
    ("cron(0 0 L * ? *)", [d(2024, 1, 31), d(2024, 2, 29)]),
    ("cron(0 9 ? * 6L *)", [d(2024, 1, 26, 9), d(2024, 2, 23, 9)]),           # last Friday
    ("cron(0 9 ? * 3#2 *)", [d(2024, 1, 9, 9), d(2024, 2, 13, 9)]),           # second Tuesday
    ("cron(0 9 15W * ? *)", [d(2024, 1, 15, 9), d(2024, 2, 15, 9), d(2024, 3, 15, 9)]),
    ("cron(0 9 LW * ? *)", [d(2024, 1, 31, 9), d(2024, 2, 29, 9), d(2024, 3, 29, 9)]),
    ("cron(0 12 1 JAN,JUL ? 2024-2025)", [d(2024, 1, 1, 12), d(2024, 7, 1, 12), d(2025, 1, 1, 12),
                                          d(2025, 7, 1, 12)]),
])
def test_cron(expression, expected):
    assert _times(expression, n=6)[:len(expected)] == expected


def test_nearest_weekday():
    # 15 June 2024 is a Saturday (Friday 14th); 1 Sep 2024 a Sunday (Monday 2nd); 30 Nov 2024 a
    # Saturday, and 31W in a 30-day month means the 30th.
    assert _times("cron(0 9 15W * ? *)", d(2024, 6, 1), n=1) == [d(2024, 6, 14, 9)]
    assert _times("cron(0 9 1W * ? *)", d(2024, 8, 20), n=1) == [d(2024, 9, 2, 9)]
    assert _times("cron(0 9 31W * ? *)", d(2024, 11, 20), n=1) == [d(2024, 11, 29, 9)]


def test_cron_year_range_ends():
    assert _times("cron(0 12 1 JAN ? 2024)", n=3) == [d(2024, 1, 1, 12)]


def test_cron_in_a_timezone():
    t = _times("cron(0 9 * * ? *)", timezone="America/New_York", n=1)
    assert t == [d(2024, 1, 1, 14)]


def test_at():
    assert _times("at(2024-03-01T10:30:00)", n=3, allow_at=True) == [d(2024, 3, 1, 10, 30)]
    assert _times("at(2023-03-01T10:30:00)", n=3, allow_at=True) == []


@pytest.mark.parametrize("bad", [
    "rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(5 seconds)", "cron(0 10 * * * *)",
    "cron(0 10 ? * ? *)", "cron(0 10 * *)", "cron(61 10 * * ? *)", "cron(0 10 ? * 8 *)", "at(2024-01-01T00:00:00)",
    "every day", "cron(0 10 32W * ? *)",
])
def test_invalid_expressions(bad):
    with pytest.raises(ValueError, match="Parameter ScheduleExpression is not valid."):
        parse_schedule(bad, anchor=T0)


@pytest.fixture
def engine(backend_url):
    """Every schedule test on memory, a SQLite file and a PostgreSQL database."""
    return statelang.Engine(db=backend_url, clock=VirtualClock(T0))


def test_rate_rule_fires_on_virtual_clock(engine):
    bus = EventBus(engine)
    fired = []
    bus.register_handler("h", fired.append)
    arn = bus.put_rule("tick", schedule_expression="rate(10 minutes)")["RuleArn"]
    bus.put_targets("tick", [{"Id": "t", "Arn": "h"}])
    run_until_idle(engine, until=T0 + timedelta(minutes=35))
    assert [e["time"] for e in fired] == ["2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z", "2024-01-01T00:30:00Z"]
    assert fired[0]["source"] == "aws.events" and fired[0]["detail-type"] == "Scheduled Event"
    assert fired[0]["resources"] == [arn] and fired[0]["detail"] == {}
    assert engine.clock.now() == T0 + timedelta(minutes=35)
    bus.disable_rule("tick")
    run_until_idle(engine, until=T0 + timedelta(hours=2))
    assert len(fired) == 3
    bus.enable_rule("tick")   # a re-enabled rule does not fire what it missed
    run_until_idle(engine, until=T0 + timedelta(hours=2, minutes=15))
    assert [e["time"] for e in fired[3:]] == ["2024-01-01T02:10:00Z"]


def test_tick_catches_up_missed_fires(engine):
    bus = EventBus(engine)
    fired = []
    bus.register_handler("h", fired.append)
    bus.put_rule("c", schedule_expression="cron(0 * * * ? *)")
    bus.put_targets("c", [{"Id": "t", "Arn": "h"}])
    engine.clock.advance(3 * 3600 + 60)
    assert bus.tick() == 3
    assert [e["time"][11:16] for e in fired] == ["01:00", "02:00", "03:00"]
    assert bus.tick() == 0


def test_without_until_schedules_do_not_run_forever(engine):
    bus = EventBus(engine)
    bus.register_handler("h", lambda e: None)
    bus.put_rule("c", schedule_expression="rate(1 minute)")
    bus.put_targets("c", [{"Id": "t", "Arn": "h"}])
    run_until_idle(engine)
    assert engine.clock.now() == T0


def test_one_off_schedule(engine):
    bus = EventBus(engine)
    got = []
    bus.register_handler("h", got.append)
    out = bus.create_schedule("once", "at(2024-01-02T09:00:00)",
                              {"Arn": "h", "Input": '{"at": "<aws.scheduler.scheduled-time>"}'},
                              action_after_completion="DELETE")
    assert out["ScheduleArn"].endswith(":schedule/default/once")
    with pytest.raises(EventBridgeError) as exc:
        bus.create_schedule("once", "at(2024-01-02T09:00:00)", {"Arn": "h"})
    assert exc.value.code == "ConflictException"
    with pytest.raises(EventBridgeError) as exc:
        bus.create_schedule("bad", "at(tomorrow)", {"Arn": "h"})
    assert exc.value.code == "ValidationException"
    run_until_idle(engine, until=T0 + timedelta(days=3))
    assert got == [{"at": "2024-01-02T09:00:00Z"}]
    assert bus.list_schedules() == []


def test_schedule_records_survive_a_new_engine(tmp_path):
    db = f"sqlite:///{tmp_path}/s.db"
    first = EventBus(statelang.Engine(db=db, clock=VirtualClock(T0)))
    first.put_rule("nightly", schedule_expression="cron(0 2 * * ? *)")
    first.put_targets("nightly", [{"Id": "t", "Arn": "h"}])
    second_engine = statelang.Engine(db=db, clock=VirtualClock(T0))
    second = EventBus(second_engine)
    got = []
    second.register_handler("h", got.append)
    assert second.next_due() == d(2024, 1, 1, 2)
    run_until_idle(second_engine, until=d(2024, 1, 2, 3))
    assert [e["time"] for e in got] == ["2024-01-01T02:00:00Z", "2024-01-02T02:00:00Z"]
