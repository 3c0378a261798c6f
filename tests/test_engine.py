"""The engine (statelang.runtime.engine): virtual time, group commit on SQLite, eager start, stop,
heartbeats and timeouts, driven through Engine's own methods on real stores.

Sources: AWS Step Functions developer guide — "Wait for a Callback with Task Token" and
"Handling errors" (HeartbeatSeconds: a task that sends no heartbeat for that long fails with
States.HeartbeatTimeout; TimeoutSeconds: States.Timeout); "State machine structure"
(TimeoutSeconds of the machine: the execution times out, status TIMED_OUT, ExecutionTimedOut);
API reference StopExecution (status ABORTED, ExecutionAborted with the given error and cause) and
SendTaskSuccess (TaskTimedOut once the task is over).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from statelang import Engine, VirtualClock
from statelang.store import SqlStore, open_store

T0 = datetime(2024, 6, 1, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:sm"


class CountingStore(SqlStore):
    """A real SQLite store that counts its transactions (`apply` calls)."""

    applies = 0

    def apply(self, commit):
        self.applies += 1
        return super().apply(commit)


@pytest.fixture
def counting_store(sqlite_url):
    base = open_store(sqlite_url)
    s = CountingStore(base.engine, base.name)
    yield s
    s.close()


def start(engine: Engine, definition, input=None, name="e1"):
    arn = f"arn:aws:states:us-east-1:123456789012:execution:sm:{name}"
    engine.start(definition, {} if input is None else input, arn=arn, name=name, state_machine_arn=SM)
    return arn


def history_types(engine, arn):
    return [e["type"] for e in engine.store.history(arn)]


def chain(n: int, resource="Inc") -> dict:
    states = {f"S{i}": {"Type": "Task", "Resource": resource, "Next": f"S{i + 1}"} for i in range(n)}
    states[f"S{n - 1}"] = {"Type": "Task", "Resource": resource, "End": True}
    return {"StartAt": "S0", "States": states}


def inc(event):
    return {"n": event.get("n", 0) + 1}


# -- virtual time ----------------------------------------------------------------------------------

@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_a_week_of_waiting_runs_at_once_on_the_virtual_clock(db, sqlite_url):
    clock = VirtualClock(T0)
    engine = Engine(db="memory" if db == "memory" else sqlite_url, clock=clock)
    d = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 7 * 86400, "Next": "W2"},
                                    "W2": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    arn = start(engine, d, {"k": 1})
    started = time.monotonic()
    steps = engine.run_until_idle()
    assert time.monotonic() - started < 10
    assert steps >= 3
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED"
    assert clock.now() == T0 + timedelta(days=7, hours=1)
    events = engine.store.history(arn)
    assert events[-1]["timestamp"] - events[0]["timestamp"] == timedelta(days=7, hours=1)
    engine.close()


def test_run_until_idle_with_nothing_to_do():
    engine = Engine(db="memory", clock=VirtualClock(T0))
    assert engine.run_until_idle() == 0
    assert engine.clock.now() == T0


# -- one commit per round ---------------------------------------------------------------------------

def test_each_round_of_sequential_tasks_commits_before_the_next_is_called(counting_store):
    """Exactly-once transitions: a task's outcome is durable before the task after it is called,
    so a crash repeats only the invocation in flight (AWS: Standard workflows run each state
    transition exactly once; handlers are at-least-once)."""
    seen = []

    def inc_and_look(event):
        seen.append(counting_store.applies)
        return inc(event)

    engine = Engine(db=counting_store, handlers={"Inc": inc_and_look}, clock=VirtualClock(T0))
    arn = start(engine, chain(30))
    after_start = counting_store.applies
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    assert history_types(engine, arn).count("LambdaFunctionSucceeded") == 30
    assert counting_store.applies - after_start == 31     # a round per task, and the last
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False))   # a commit between any two calls
    engine.close()


def test_concurrent_invocations_of_one_round_share_its_commit(counting_store):
    engine = Engine(db=counting_store, handlers={"Inc": inc}, clock=VirtualClock(T0))
    d = {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "End": True,
                                          "ItemProcessor": {"StartAt": "I", "States": {
                                              "I": {"Type": "Task", "Resource": "Inc", "End": True}}}}}}
    arn = start(engine, d, {"items": [{"n": i} for i in range(25)]})
    after_start = counting_store.applies
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    assert history_types(engine, arn).count("LambdaFunctionSucceeded") == 25
    assert counting_store.applies - after_start == 2      # the round that calls all 25, then the end
    engine.close()


def test_a_task_token_is_committed_before_its_handler_runs(counting_store):
    seen = {}
    engine = Engine(db=counting_store, clock=VirtualClock(T0))

    def callback(event, ctx):
        seen["token_row"] = engine.store.get_token(ctx.task_token)
        seen["token"] = ctx.task_token
        return None

    engine.resources.register("arn:aws:states:::sqs:sendMessage.waitForTaskToken", callback)
    d = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                                          "Parameters": {"t.$": "$$.Task.Token"}, "End": True}}}
    arn = start(engine, d)
    engine.run_until_idle()
    assert seen["token_row"] is not None      # durable before anyone outside could answer it
    assert engine.send_task_result(seen["token"], True, output={"done": 1}) == "ok"
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED" and row["output"] == '{"done":1}'
    assert engine.send_task_result(seen["token"], True, output={}) == "closed"
    assert engine.send_task_result("no-such-token", True, output={}) == "unknown"
    engine.close()


# -- eager start -----------------------------------------------------------------------------------

def test_without_eager_start_nothing_runs_until_a_worker_pass():
    calls = []
    engine = Engine(db="memory", handlers={"Inc": lambda e: calls.append(e) or inc(e)})
    arn = start(engine, chain(2))
    assert calls == [] and engine.store.get_execution(arn)["status"] == "RUNNING"
    engine.run_until_idle()
    assert len(calls) == 2 and engine.store.get_execution(arn)["status"] == "SUCCEEDED"


def test_eager_start_runs_in_the_calling_thread(sqlite_url):
    engine = Engine(db=sqlite_url, handlers={"Inc": inc}, eager=True)
    arn = start(engine, chain(3))
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED" and row["output"] == '{"n":3}'
    engine.close()


def test_eager_is_off_on_a_virtual_clock_unless_always():
    e1 = Engine(db="memory", handlers={"Inc": inc}, clock=VirtualClock(T0), eager=True)
    assert e1.store.get_execution(start(e1, chain(1)))["status"] == "RUNNING"
    e2 = Engine(db="memory", handlers={"Inc": inc}, clock=VirtualClock(T0), eager="always")
    assert e2.store.get_execution(start(e2, chain(1)))["status"] == "SUCCEEDED"


# -- stop ------------------------------------------------------------------------------------------

CALLBACK = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                                             "Parameters": {"t.$": "$$.Task.Token"}, "End": True}}}


def callback_engine(db, **kw):
    tokens = []
    engine = Engine(db=db, clock=VirtualClock(T0), **kw)
    engine.resources.register("sqs:sendMessage", lambda e, ctx: tokens.append(ctx.task_token))
    return engine, tokens


@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_stop_execution_aborts_and_closes_the_token(db, sqlite_url):
    engine, tokens = callback_engine("memory" if db == "memory" else sqlite_url)
    arn = start(engine, CALLBACK)
    engine.run_until_idle()
    assert len(tokens) == 1
    row = engine.stop_execution(arn, "Ops.Cancelled", "by request")
    assert row["status"] == "ABORTED" and row["stopDate"] is not None
    last = engine.store.history(arn)[-1]
    assert last["type"] == "ExecutionAborted"
    assert last["executionAbortedEventDetails"] == {"error": "Ops.Cancelled", "cause": "by request"}
    assert engine.send_task_result(tokens[0], True, output={}) == "closed"
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "ABORTED"
    engine.close()


def test_stopping_a_finished_execution_changes_nothing():
    engine = Engine(db="memory", handlers={"Inc": inc}, clock=VirtualClock(T0))
    arn = start(engine, chain(1))
    engine.run_until_idle()
    n = len(engine.store.history(arn))
    assert engine.stop_execution(arn)["status"] == "SUCCEEDED"
    assert len(engine.store.history(arn)) == n


# -- heartbeats and timeouts -----------------------------------------------------------------------

def heartbeat_machine(hb=10, timeout=100):
    d = {"StartAt": "T", "States": {"T": dict(CALLBACK["States"]["T"], HeartbeatSeconds=hb, TimeoutSeconds=timeout)}}
    return d


def test_no_heartbeat_times_the_task_out_after_heartbeat_seconds(sqlite_url):
    engine, tokens = callback_engine(sqlite_url)
    arn = start(engine, heartbeat_machine(10, 100))
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert (row["status"], row["error"]) == ("FAILED", "States.HeartbeatTimeout")
    events = {e["type"]: e for e in engine.store.history(arn)}
    assert events["TaskTimedOut"]["timestamp"] - events["TaskScheduled"]["timestamp"] == timedelta(seconds=10)
    assert events["TaskTimedOut"]["taskTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"
    engine.close()


def test_heartbeats_keep_the_task_alive_until_its_answer(sqlite_url):
    engine, tokens = callback_engine(sqlite_url)
    arn = start(engine, heartbeat_machine(10, 100))
    engine.run_until_idle(max_rounds=1)
    for _ in range(4):                 # a beat every 8 s: 32 s in all, beyond HeartbeatSeconds
        engine.clock.advance(8)
        assert engine.send_task_heartbeat(tokens[0]) == "ok"
        engine.run_until_idle(max_rounds=1)
        assert engine.store.get_execution(arn)["status"] == "RUNNING"
    assert engine.send_task_result(tokens[0], True, output={"ok": True}) == "ok"
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED", row
    assert engine.send_task_heartbeat(tokens[0]) == "closed"
    engine.close()


def test_task_timeout_fails_with_states_timeout():
    engine, tokens = callback_engine("memory")
    d = {"StartAt": "T", "States": {"T": dict(CALLBACK["States"]["T"], TimeoutSeconds=30)}}
    arn = start(engine, d)
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert (row["status"], row["error"]) == ("FAILED", "States.Timeout")
    assert engine.clock.now() == T0 + timedelta(seconds=30)


@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_execution_timeout_seconds(db, sqlite_url):
    engine = Engine(db="memory" if db == "memory" else sqlite_url, clock=VirtualClock(T0))
    d = {"StartAt": "W", "TimeoutSeconds": 10,
         "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    arn = start(engine, d)
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert row["status"] == "TIMED_OUT" and row["error"] == "States.Timeout"
    events = engine.store.history(arn)
    assert events[-1]["type"] == "ExecutionTimedOut"
    assert events[-1]["timestamp"] == T0 + timedelta(seconds=10)
    assert "WaitStateExited" not in [e["type"] for e in events]
    engine.close()


def test_retries_wait_on_the_virtual_clock():
    calls = []

    def flaky(event):
        calls.append(engine.clock.now())
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return "ok"

    engine = Engine(db="memory", handlers={"F": flaky}, clock=VirtualClock(T0))
    d = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "F", "End": True,
                                          "Retry": [{"ErrorEquals": ["RuntimeError"], "IntervalSeconds": 5}]}}}
    arn = start(engine, d)
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    assert [(c - T0).total_seconds() for c in calls] == [0, 5, 15]   # 5 * 2**0, then 5 * 2**1
