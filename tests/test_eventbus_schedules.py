"""Schedule expressions as EventBridge reads them, and schedules firing on the virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statelang
from statelang.eventbus import EventBridgeError, EventBus, parse_schedule, run_until_idle
from statelang.eventbus.integration import attach
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


def _attached_rule(engine, expression: str) -> list:
    """A rule on `expression` whose target records each event, on a bus attached to the engine's
    own loop; returns the record."""
    attach(engine)
    bus = EventBus(engine)
    fired: list = []
    bus.register_handler("h", fired.append)
    bus.put_rule("tick", schedule_expression=expression)
    bus.put_targets("tick", [{"Id": "t", "Arn": "h"}])
    return fired


def test_an_attached_engines_own_loop_fires_schedules_up_to_until(engine):
    """The bus's run_until_idle is the engine's own loop with the bus attached, not a loop of its
    own: `Engine.run_until_idle(until=..., schedules=True)` follows a rate rule's fire times up
    to `until` and stops there; a deadline alone (`until` without `schedules`, as `wait`'s
    timeout) and no `until` at all leave the clock where the executions leave it."""
    fired = _attached_rule(engine, "rate(10 minutes)")
    engine.run_until_idle(until=T0 + timedelta(minutes=25), schedules=True)
    assert [e["time"] for e in fired] == ["2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z"]
    assert engine.clock.now() == T0 + timedelta(minutes=25)
    engine.run_until_idle()
    engine.run_until_idle(until=T0 + timedelta(hours=5))
    assert engine.clock.now() == T0 + timedelta(minutes=25) and len(fired) == 2


def test_waiting_on_an_execution_does_not_run_the_schedules_to_its_deadline(engine):
    """An execution that ends at once, waited on with an hour's timeout, on an engine whose bus
    has a rule firing every minute: the clock stays at the execution's end (60 fires and an hour
    would pass if a deadline were a run "until" it)."""
    fired = _attached_rule(engine, "rate(1 minute)")
    client = engine.client()
    machine = client.create_state_machine(
        name="m", roleArn="arn:aws:iam::123456789012:role/r",
        definition='{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}')["stateMachineArn"]
    arn = client.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    row = engine.wait(arn, timeout=3600)
    assert row["status"] == "SUCCEEDED"
    assert engine.clock.now() < T0 + timedelta(minutes=1) and fired == []


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


# -- several workers on one database ---------------------------------------------------------------
# Issue: several engines ticking one database fired a rate(1 minute) rule two or three times (the
# next fire time was read and written back without a lock), and one worker retried a delivery
# another had in flight. Each due time is now claimed by one conditional write.

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:count"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_db(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _engines(db: str, n: int, calls: list) -> list:
    """``n`` engines on one database, each on its own virtual clock at T0, with a Lambda-style
    handler that records (engine, event id, scheduled time)."""
    out = []
    for i in range(n):
        def count(event, i=i):
            calls.append((i, event["id"], event["time"], event.get("kind", "rule")))
            return {}
        out.append(statelang.Engine(db=db, clock=VirtualClock(T0), handlers={"count": count},
                                    worker_id=f"w{i}"))
    return out


def _ids(calls: list) -> list[str]:
    return [c[1] for c in calls]


def test_engines_ticking_together_fire_each_due_time_once(shared_db):
    """Two engines tick the same instants at once (a barrier lines them up): a rate(1 minute)
    rule and a Scheduler schedule each fire once per due time, one delivery each."""
    import threading
    calls: list = []
    engines = _engines(shared_db, 2, calls)
    bus = EventBus(engines[0])
    bus.put_rule("every-minute", schedule_expression="rate(1 minute)")
    bus.put_targets("every-minute", [{"Id": "fn", "Arn": LAMBDA}])
    bus.create_schedule("sched", "rate(2 minutes)", {"Arn": LAMBDA, "Input": '{"id": "<aws.scheduler.execution-id>", '
                                                     '"time": "<aws.scheduler.scheduled-time>", "kind": "sched"}'})
    instants = [T0 + timedelta(seconds=30 * k) for k in range(1, 21)]   # ten minutes, twice a minute
    barrier = threading.Barrier(2)
    fired = [0, 0]
    errors: list = []

    def work(i: int) -> None:
        try:
            b = EventBus(engines[i])
            for t in instants:
                barrier.wait(timeout=30)
                engines[i].clock.set(t)
                fired[i] += b.tick(t)
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's name
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert len(calls) == len(set(_ids(calls))), "a due time was delivered twice"
    assert sum(fired) == 10 + 5 == len(calls)   # ten minutes of rate(1 minute), five of rate(2 minutes)
    by_kind: dict = {}
    for _, _, time, kind in calls:
        by_kind.setdefault(kind, []).append(time)
    assert sorted(by_kind["rule"]) == [f"2024-01-01T00:{m:02d}:00Z" for m in range(1, 11)]
    assert sorted(by_kind["sched"]) == [f"2024-01-01T00:{m:02d}:00Z" for m in range(2, 11, 2)]
    for e in engines:
        assert EventBus(e).pending_deliveries() == []
        e.close()


def test_a_worker_ticking_while_another_delivers_a_due_time_does_not_fire_it_again(shared_db):
    """The interleaving that fired a rule twice: worker a has read the due time and is delivering
    it (its handler is running) when worker b ticks the same instant. Before the claim, b read the
    same next fire time and fired it again; now a's claim moved it before a delivered anything."""
    import threading
    calls: list = []
    a_in, b_done = threading.Event(), threading.Event()

    def a_handler(event):
        calls.append(("a", event["id"]))
        if not a_in.is_set():
            a_in.set()
            assert b_done.wait(30)

    a = statelang.Engine(db=shared_db, clock=VirtualClock(T0), worker_id="a", handlers={"count": a_handler})
    b = statelang.Engine(db=shared_db, clock=VirtualClock(T0), worker_id="b",
                         handlers={"count": lambda e: calls.append(("b", e["id"]))})
    bus = EventBus(a)
    bus.put_rule("every-minute", schedule_expression="rate(1 minute)")
    bus.put_targets("every-minute", [{"Id": "fn", "Arn": LAMBDA}])
    at = T0 + timedelta(minutes=1)
    fired_by_a: list = []
    worker_a = threading.Thread(target=lambda: fired_by_a.append(EventBus(a).tick(at)))
    worker_a.start()
    try:
        assert a_in.wait(30)
        assert EventBus(b).tick(at) == 0
    finally:
        b_done.set()
        worker_a.join(30)
    assert fired_by_a == [1] and [c[0] for c in calls] == ["a"]
    a.close()
    b.close()


class Died(BaseException):
    """The worker process dying inside a handler: nothing after it in that worker runs."""


def test_a_delivery_in_flight_is_not_retried_by_another_worker(shared_db):
    """While one worker's delivery is in flight, another worker ticking past its due time leaves
    it alone; when the first dies mid-delivery, the other retries it once its claim (the engine's
    lease, 60 s) has run out, and exactly once."""
    calls: list = []
    first, second = _engines(shared_db, 2, calls)
    seen_by_second: list = []

    def slow(event):
        calls.append(("first", event["id"]))
        seen_by_second.append(EventBus(second).tick(T0 + timedelta(seconds=30)))
        raise Died

    def fine(event):
        calls.append(("second", event["id"]))

    bus = EventBus(first)
    bus.register_handler("h", slow)
    EventBus(second).register_handler("h", fine)
    bus.put_rule("r", {"source": ["app"]})
    bus.put_targets("r", [{"Id": "t", "Arn": "h"}])
    with pytest.raises(Died):
        bus.put_events([{"Source": "app", "DetailType": "d", "Detail": {}}])
    assert seen_by_second == [0]
    (pending,) = bus.pending_deliveries()
    assert pending["Owner"] == "w0" and pending["Due"] == (T0 + timedelta(seconds=60)).isoformat()
    assert EventBus(second).tick(T0 + timedelta(seconds=59)) == 0
    late = T0 + timedelta(seconds=61)
    assert EventBus(second).tick(late) == 1 and EventBus(second).tick(late) == 0
    assert [c[0] for c in calls] == ["first", "second"] and calls[0][1] == calls[1][1]
    assert bus.pending_deliveries() == [] and bus.dead_letters() == []
    first.close()
    second.close()


def test_a_fire_claimed_by_a_worker_that_died_is_delivered_once_and_not_refired(shared_db):
    calls: list = []

    def dies(event):
        raise Died

    first = statelang.Engine(db=shared_db, clock=VirtualClock(T0), handlers={"count": dies}, worker_id="w0")
    second = statelang.Engine(db=shared_db, clock=VirtualClock(T0), worker_id="w1",
                              handlers={"count": lambda e: calls.append((e["id"], e["time"]))})
    bus = EventBus(first)
    bus.put_rule("every-minute", schedule_expression="rate(1 minute)")
    bus.put_targets("every-minute", [{"Id": "fn", "Arn": LAMBDA}])
    with pytest.raises(Died):   # first claims 00:01 and dies delivering it
        bus.tick(T0 + timedelta(minutes=1))
    other = EventBus(second)
    assert other.tick(T0 + timedelta(minutes=1, seconds=30)) == 0 and calls == []   # not refired
    assert other.tick(T0 + timedelta(minutes=2, seconds=1)) == 2   # the orphan, and the 00:02 fire
    assert sorted(c[1] for c in calls) == ["2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"]
    assert other.tick(T0 + timedelta(minutes=2, seconds=1)) == 0
    assert other.pending_deliveries() == []
    first.close()
    second.close()


# -- `statelang worker` processes ------------------------------------------------------------------

WORKER_HANDLERS = '''
import json, os, time

def count(event):
    """Appends one line per delivery; slow enough that two workers overlap."""
    time.sleep(0.02)
    with open(os.environ["STATELANG_TEST_DELIVERIES"], "a") as f:
        f.write(json.dumps({"id": event["id"], "rule": event["resources"][0], "pid": os.getpid()}) + "\\n")
    return {}

HANDLERS = {"count": count}
'''


def test_two_worker_processes_fire_each_due_time_once(shared_db, tmp_path):
    """Two `statelang worker` processes on one database, with ten rate(1 minute) rules each five
    fires behind (a fleet that was down for five minutes): every due time is delivered exactly
    once. Real processes on the real clock, so the test waits (bounded) for the deliveries."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from statelang.eventbus.schedules import RULE
    from statelang.runtime.clock import RealClock
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "sched_handlers.py").write_text(WORKER_HANDLERS)
    out = tmp_path / "deliveries.jsonl"
    engine = statelang.Engine(db=shared_db)
    bus = EventBus(engine)
    now = RealClock().now()
    for n in range(10):
        bus.put_rule(f"r{n}", schedule_expression="rate(1 minute)")
        bus.put_targets(f"r{n}", [{"Id": "fn", "Arn": LAMBDA}])
        rule = engine.store.get_record(RULE, bus.rule_arn(f"r{n}"))
        back = now - timedelta(minutes=5)   # created five minutes ago: fires at -4 ... 0 minutes are due
        engine.store.put_record(RULE, rule["Arn"], dict(rule, Anchor=back.isoformat(),
                                                        NextFire=(back + timedelta(minutes=1)).isoformat()))
    engine.close()
    exe = Path(sys.executable).parent / "statelang"
    env = dict(os.environ, STATELANG_TEST_DELIVERIES=str(out))
    workers = [subprocess.Popen([str(exe), "worker", "--db", shared_db, "--handlers", "sched_handlers",
                                 "--poll", "0.1"], cwd=folder, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) >= 50 or any(w.poll() is not None for w in workers):
                break
            time.sleep(0.2)
        time.sleep(1.0)   # long enough for a duplicate to show: both workers poll every 0.1 s
    finally:
        for w in workers:
            w.terminate()
        logs = [w.communicate(timeout=30) for w in workers]
    assert all(w.returncode in (-15, 0) for w in workers), logs
    deliveries = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [d["id"] for d in deliveries]
    assert len(ids) == 50 and len(set(ids)) == 50, f"{len(ids)} deliveries of {len(set(ids))} fires"
    assert {d["rule"] for d in deliveries} == {bus.rule_arn(f"r{n}") for n in range(10)}


# -- many workers agree with one -------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 600)), min_size=1, max_size=25),
       st.sampled_from(["rate(1 minute)", "rate(5 minutes)", "cron(0/2 * * * ? *)"]))
def test_workers_ticking_at_any_instants_fire_what_one_worker_fires(ticks, expression):
    """Three workers on one store, each on its own clock, tick at arbitrary instants in any order
    (a worker whose clock lags ticks an earlier instant after another ticked a later one): the
    fires delivered are exactly those one worker ticking at the latest instant delivers, each once."""
    from statelang.runtime.storage import MemoryStore
    store = MemoryStore()
    calls: list = []
    engines = [statelang.Engine(db=store, clock=VirtualClock(T0), worker_id=f"w{i}",
                                handlers={"count": lambda e: calls.append(e["time"])}) for i in range(3)]
    bus = EventBus(engines[0])
    bus.put_rule("r", schedule_expression=expression)
    bus.put_targets("r", [{"Id": "fn", "Arn": LAMBDA}])
    for worker, seconds in ticks:
        EventBus(engines[worker]).tick(T0 + timedelta(seconds=seconds))
    latest = T0 + timedelta(seconds=max(s for _, s in ticks))

    alone: list = []
    one = statelang.Engine(db="memory", clock=VirtualClock(T0), handlers={"count": lambda e: alone.append(e["time"])})
    solo = EventBus(one)
    solo.put_rule("r", schedule_expression=expression)
    solo.put_targets("r", [{"Id": "fn", "Arn": LAMBDA}])
    solo.tick(latest)
    assert sorted(calls) == sorted(alone) and len(set(calls)) == len(calls)
