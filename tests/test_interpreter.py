"""The pure step (statelang.interpreter, frames, branches), driven by hand: events and their
previousEventId links, commands, stale results and timers, stop, Parallel and Map children.

No engine and no clock here: the test plays the engine, feeding task results and timers in.
Sources: AWS Step Functions API reference, GetExecutionHistory / HistoryEvent (id, previousEventId,
event types); developer guide, "Map state" (MaxConcurrency: at most that many iterations run at
once; ToleratedFailureCount / ToleratedFailurePercentage; States.ExceedToleratedFailureThreshold)
and "Parallel state" (if any branch fails, the whole Parallel state fails and the other branches
are stopped); "Handling errors" (Retry).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statelang.interpreter.commands import (
    CancelFrame,
    ExecutionEnded,
    Invoke,
    Pending,
    Resume,
    SettleFrame,
    StartMapRun,
    StartTimer,
)
from statelang.interpreter.frames import ExecutionState, Frame
from statelang.interpreter.step import RETRY, TASK, Interpreter
from statelang.runtime.machines import compiled

T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:sm"
ARN = "arn:aws:states:us-east-1:123456789012:execution:sm:e1"
IT = Interpreter()


def start(definition: dict, input=None) -> ExecutionState:
    run = ExecutionState(compiled(definition), ARN, "e1", SM, {} if input is None else input, T0)
    IT.start(run, T0)
    IT.advance(run, T0)
    return run


def brief(c) -> tuple:
    """A command as a short tuple, for assertions: (op, fields...)."""
    match c:
        case StartTimer():
            return ("timer", c.frame_id, c.due, str(c.kind), c.seq)
        case Invoke():
            return ("invoke", c.frame_id, c.seq, c.spec)
        case CancelFrame():
            return ("cancel", c.frame_id)
        case SettleFrame():
            return ("settle", c.frame_id, c.seq)
        case StartMapRun():
            return ("map_run", c.frame_id, c.seq, c.spec)
        case ExecutionEnded():
            return ("done",)
    raise AssertionError(f"not a command: {c!r}")


def cmds(run: ExecutionState) -> list[tuple]:
    return [brief(c) for c in run.commands]


def take(run: ExecutionState, op: str) -> list[tuple]:
    """The commands of one kind left for the engine (and forget all commands, as a flush does)."""
    out = [c for c in cmds(run) if c[0] == op]
    run.commands = []
    return out


def types(run: ExecutionState) -> list[str]:
    return [e["type"] for e in run.events]


def task(resource="F", **kw) -> dict:
    return {"Type": "Task", "Resource": resource, **kw}


ONE_TASK = {"StartAt": "T", "States": {"T": task(End=True)}}


# -- events and their links ---------------------------------------------------------------------

def test_pass_chain_events_ids_and_links():
    run = start({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
                                            "B": {"Type": "Pass", "Result": 7, "End": True}}}, {"x": 1})
    assert types(run) == ["ExecutionStarted", "PassStateEntered", "PassStateExited", "PassStateEntered",
                          "PassStateExited", "ExecutionSucceeded"]
    assert [e["id"] for e in run.events] == list(range(1, 7))
    # AWS: ExecutionStarted and the first state's entry both have previousEventId 0; each later
    # event points at the one before it in its thread.
    assert [e["previousEventId"] for e in run.events] == [0, 0, 2, 3, 4, 5]
    assert json.loads(run.events[0]["executionStartedEventDetails"]["input"]) == {"x": 1}
    assert run.events[1]["stateEnteredEventDetails"]["name"] == "A"
    assert json.loads(run.events[-1]["executionSucceededEventDetails"]["output"]) == 7
    assert run.status == "SUCCEEDED" and run.output == 7 and run.stop_time == T0
    assert run.frames == {} and ("done",) in cmds(run)


def test_task_schedules_an_invoke_and_waits():
    run = start(ONE_TASK, {"a": 1})
    assert types(run) == ["ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled",
                          "LambdaFunctionStarted"]
    (inv,) = take(run, "invoke")
    _, fid, seq, spec = inv
    assert spec["input"] == {"a": 1} and spec["state"] == "T" and spec["retry_count"] == 0
    frame = run.frames[fid]
    assert frame.phase == TASK and frame.seq == seq
    assert run.status == "RUNNING" and not run.runnable


def test_task_result_moves_on_and_links_events():
    run = start(ONE_TASK)
    _, fid, seq, _ = take(run, "invoke")[0]
    assert IT.task_result(run, fid, seq, True, {"r": 1}, None, T0 + timedelta(seconds=2))
    IT.advance(run, T0 + timedelta(seconds=2))
    assert types(run)[-3:] == ["LambdaFunctionSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    ids = [e["id"] for e in run.events]
    assert ids == list(range(1, len(ids) + 1))
    for e in run.events[2:]:
        assert e["previousEventId"] == e["id"] - 1
    assert run.output == {"r": 1}


@pytest.mark.parametrize("delta", [-1, 1, 5])
def test_a_result_with_a_wrong_seq_changes_nothing(delta):
    run = start(ONE_TASK)
    _, fid, seq, _ = take(run, "invoke")[0]
    before = (len(run.events), run.frames[fid].to_dict(), list(run.runnable))
    assert IT.task_result(run, fid, seq + delta, True, "late", None, T0) is False
    IT.advance(run, T0)
    assert (len(run.events), run.frames[fid].to_dict(), list(run.runnable)) == before
    assert IT.task_result(run, "no-such-frame", seq, True, "x", None, T0) is False
    assert IT.timer_fired(run, fid, "task_timeout", seq + delta, T0) is False
    assert IT.heartbeat(run, fid, seq + delta, T0) is False
    assert (len(run.events), run.frames[fid].to_dict()) == before[:2]


def test_a_timer_of_the_wrong_kind_is_ignored():
    run = start(ONE_TASK)
    _, fid, seq, _ = take(run, "invoke")[0]
    assert IT.timer_fired(run, fid, "wait", seq, T0) is False
    assert IT.timer_fired(run, fid, "retry", seq, T0) is False
    assert run.frames[fid].phase == TASK


def test_retry_waits_then_reschedules_and_ignores_the_old_attempt():
    d = {"StartAt": "T", "States": {"T": task(End=True, Retry=[{"ErrorEquals": ["Boom"], "IntervalSeconds": 3,
                                                               "BackoffRate": 2}])}}
    run = start(d)
    _, fid, seq, _ = take(run, "invoke")[0]
    IT.task_result(run, fid, seq, False, "Boom", "once", T0)
    IT.advance(run, T0)
    assert types(run)[-1] == "LambdaFunctionFailed"
    (timer,) = take(run, "timer")
    assert timer[2] == T0 + timedelta(seconds=3) and timer[3] == "retry"
    frame = run.frames[fid]
    assert frame.phase == RETRY and frame.seq == timer[4] != seq
    # the failed attempt answering again is stale
    assert IT.task_result(run, fid, seq, True, "late", None, T0) is False
    assert IT.timer_fired(run, fid, "retry", timer[4], T0 + timedelta(seconds=3))
    IT.advance(run, T0 + timedelta(seconds=3))
    (inv,) = take(run, "invoke")
    assert inv[3]["retry_count"] == 1 and inv[2] > timer[4] - 1
    # the same state entry: the idempotency key is stable across retries
    IT.task_result(run, fid, inv[2], False, "Boom", "twice", T0)
    IT.advance(run, T0)
    (timer2,) = take(run, "timer")
    assert timer2[2] == T0 + timedelta(seconds=6)


def test_uncaught_task_failure_fails_the_execution():
    run = start(ONE_TASK)
    _, fid, seq, _ = take(run, "invoke")[0]
    IT.task_result(run, fid, seq, False, "Boom", "bad", T0)
    IT.advance(run, T0)
    assert types(run)[-2:] == ["LambdaFunctionFailed", "ExecutionFailed"]
    assert run.events[-1]["executionFailedEventDetails"] == {"error": "Boom", "cause": "bad"}
    assert (run.status, run.error, run.cause) == ("FAILED", "Boom", "bad")


# -- stop / abort ---------------------------------------------------------------------------------

def test_stop_aborts_drops_frames_and_later_inputs_are_ignored():
    run = start(ONE_TASK)
    _, fid, seq, _ = take(run, "invoke")[0]
    IT.stop(run, "Ops.Stop", "by hand", T0)
    assert run.status == "ABORTED"
    assert run.events[-1]["type"] == "ExecutionAborted"
    assert run.events[-1]["executionAbortedEventDetails"] == {"error": "Ops.Stop", "cause": "by hand"}
    assert ("cancel", fid) in cmds(run) and ("done",) in cmds(run)
    assert run.frames == {}
    n = len(run.events)
    assert IT.task_result(run, fid, seq, True, 1, None, T0) is False
    assert IT.timer_fired(run, "0", "execution_timeout", 0, T0) is False
    IT.stop(run, None, None, T0)
    IT.fail_execution(run, "X", None, T0)
    IT.advance(run, T0)
    assert len(run.events) == n and run.status == "ABORTED"


def test_stop_without_error_or_cause_has_empty_details():
    run = start(ONE_TASK)
    IT.stop(run, None, None, T0)
    assert run.events[-1]["executionAbortedEventDetails"] == {}


def test_execution_timeout_timer_and_timing_out():
    d = {"StartAt": "T", "TimeoutSeconds": 30, "States": {"T": task(End=True)}}
    run = ExecutionState(compiled(d), ARN, "e1", SM, {}, T0)
    IT.start(run, T0)
    timers = [c for c in cmds(run) if c[0] == "timer"]
    assert timers == [("timer", "0", T0 + timedelta(seconds=30), "execution_timeout", 0)]
    IT.advance(run, T0)
    IT.timer_fired(run, "0", "execution_timeout", 0, T0 + timedelta(seconds=30))
    assert run.status == "TIMED_OUT" and run.events[-1]["type"] == "ExecutionTimedOut"
    assert run.error == "States.Timeout"


def test_task_timeout_and_heartbeat_timers():
    d = {"StartAt": "T", "States": {"T": task("arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                                               TimeoutSeconds=100, HeartbeatSeconds=10, End=True)}}
    run = start(d)
    timers = {c[3]: c for c in cmds(run) if c[0] == "timer"}
    assert timers["task_timeout"][2] == T0 + timedelta(seconds=100)
    assert timers["heartbeat"][2] == T0 + timedelta(seconds=10)
    _, fid, seq, spec = take(run, "invoke")[0]
    assert spec["token"]
    assert IT.heartbeat(run, fid, seq, T0 + timedelta(seconds=5))
    assert cmds(run) == [("timer", fid, T0 + timedelta(seconds=15), "heartbeat", seq)]
    run.commands = []
    IT.timer_fired(run, fid, "heartbeat", seq, T0 + timedelta(seconds=15))
    IT.advance(run, T0 + timedelta(seconds=15))
    assert types(run)[-2:] == ["TaskTimedOut", "ExecutionFailed"]
    assert run.error == "States.HeartbeatTimeout"


# -- Parallel -------------------------------------------------------------------------------------

PARALLEL = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
    {"StartAt": "A", "States": {"A": task("FA", End=True)}},
    {"StartAt": "B", "States": {"B": task("FB", End=True)}},
    {"StartAt": "C", "States": {"C": task("FC", End=True)}}]}}}


def test_parallel_collects_branch_outputs_in_branch_order():
    run = start(PARALLEL, {"n": 1})
    invokes = take(run, "invoke")
    assert [c[3]["resource"] for c in invokes] == ["FA", "FB", "FC"]
    for (_, fid, seq, spec) in reversed(invokes):
        IT.task_result(run, fid, seq, True, spec["resource"], None, T0)
        IT.advance(run, T0)
    assert run.status == "SUCCEEDED" and run.output == ["FA", "FB", "FC"]
    assert "ParallelStateSucceeded" in types(run)


def test_parallel_failure_aborts_the_other_branches():
    run = start(PARALLEL)
    invokes = take(run, "invoke")
    (_, fa, sa, _), (_, fb, sb, _), (_, fc, sc, _) = invokes
    IT.task_result(run, fc, sc, True, "c done", None, T0)
    IT.advance(run, T0)
    IT.task_result(run, fa, sa, False, "Boom", "A broke", T0)
    IT.advance(run, T0)
    assert ("cancel", fb) in cmds(run)
    assert fb not in run.frames and fa not in run.frames
    assert types(run)[-2:] == ["ParallelStateFailed", "ExecutionFailed"]
    assert (run.error, run.cause) == ("Boom", "A broke")
    n = len(run.events)
    assert IT.task_result(run, fb, sb, True, "too late", None, T0) is False
    assert len(run.events) == n


def test_parallel_failure_can_be_caught():
    d = json.loads(json.dumps(PARALLEL))
    d["States"]["P"].update({"End": None, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}]})
    del d["States"]["P"]["End"]
    d["States"]["H"] = {"Type": "Pass", "End": True}
    run = start(d, {"in": 1})
    _, fa, sa, _ = take(run, "invoke")[0]
    IT.task_result(run, fa, sa, False, "Boom", "x", T0)
    IT.advance(run, T0)
    assert run.status == "SUCCEEDED" and run.output == {"Error": "Boom", "Cause": "x"}
    assert [f for f in run.frames] == []


# -- Map ------------------------------------------------------------------------------------------

def map_machine(max_concurrency: int | None = None, **extra) -> dict:
    m = {"Type": "Map", "End": True, "ItemProcessor": {"StartAt": "W", "States": {"W": task("Work", End=True)}},
         **extra}
    if max_concurrency is not None:
        m["MaxConcurrency"] = max_concurrency
    return {"StartAt": "M", "States": {"M": m}}


def started(run: ExecutionState) -> list[int]:
    return [e["mapIterationStartedEventDetails"]["index"] for e in run.events if e["type"] == "MapIterationStarted"]


def test_map_max_concurrency_launches_at_most_n():
    run = start(map_machine(2), [10, 11, 12, 13, 14])
    assert started(run) == [0, 1]
    invokes = take(run, "invoke")
    assert [c[3]["input"] for c in invokes] == [10, 11]
    _, fid, seq, _ = invokes[1]
    IT.task_result(run, fid, seq, True, "r1", None, T0)
    IT.advance(run, T0)
    assert started(run) == [0, 1, 2]
    assert [c[3]["input"] for c in take(run, "invoke")] == [12]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=8), st.integers(min_value=0, max_value=4), st.randoms())
def test_map_never_runs_more_than_max_concurrency(n, mc, rnd):
    # "Map state": MaxConcurrency 0 means no limit; otherwise at most MaxConcurrency iterations
    # run at once. Results come back in item order whatever the completion order.
    run = start(map_machine(mc), list(range(100, 100 + n)))
    in_flight: list[tuple] = []
    peak = 0
    while run.status == "RUNNING":
        in_flight += take(run, "invoke")
        peak = max(peak, len(in_flight))
        assert in_flight, "a running Map must have work in flight"
        _, fid, seq, spec = in_flight.pop(rnd.randrange(len(in_flight)))
        assert IT.task_result(run, fid, seq, True, spec["input"] * 2, None, T0)
        IT.advance(run, T0)
    assert run.status == "SUCCEEDED"
    assert run.output == [2 * (100 + i) for i in range(n)]
    assert peak <= (mc or n)
    if n:
        assert peak == min(mc or n, n)
    assert sorted(started(run)) == list(range(n)) and started(run) == sorted(started(run))


def test_map_iteration_failure_aborts_the_running_iterations():
    run = start(map_machine(0), [1, 2, 3])
    invokes = take(run, "invoke")
    _, f0, s0, _ = invokes[0]
    IT.task_result(run, f0, s0, False, "Bad", "item 1", T0)
    IT.advance(run, T0)
    t = types(run)
    assert t.count("MapIterationFailed") == 1 and t.count("MapIterationAborted") == 2
    assert t[-2:] == ["MapStateFailed", "ExecutionFailed"]
    assert run.error == "Bad"
    aborted = {c[1] for c in cmds(run) if c[0] == "cancel"}
    assert {invokes[1][1], invokes[2][1]} <= aborted


def test_map_tolerated_failures_within_the_count():
    run = start(map_machine(0, ToleratedFailureCount=1), [1, 2, 3])
    invokes = take(run, "invoke")
    for i, (_, fid, seq, spec) in enumerate(invokes):
        ok = i != 1
        IT.task_result(run, fid, seq, ok, spec["input"] if ok else "Bad", None if ok else "no", T0)
        IT.advance(run, T0)
    assert run.status == "SUCCEEDED"
    assert run.output == [1, {"Error": "Bad", "Cause": "no"}, 3]


def test_map_beyond_the_tolerated_count_fails_with_the_threshold_error():
    run = start(map_machine(0, ToleratedFailureCount=1), [1, 2, 3])
    invokes = take(run, "invoke")
    for (_, fid, seq, _) in invokes[:2]:
        IT.task_result(run, fid, seq, False, "Bad", None, T0)
        IT.advance(run, T0)
    assert run.status == "FAILED"
    assert run.error == "States.ExceedToleratedFailureThreshold"


def test_map_tolerated_percentage():
    run = start(map_machine(0, ToleratedFailurePercentage=50), [1, 2, 3, 4])
    invokes = take(run, "invoke")
    for i, (_, fid, seq, _) in enumerate(invokes):
        IT.task_result(run, fid, seq, i >= 2, "ok" if i >= 2 else "Bad", None, T0)
        IT.advance(run, T0)
    assert run.status == "SUCCEEDED"     # 2 of 4 failed: 50 % does not exceed 50 %


def test_empty_map_succeeds_with_an_empty_list():
    run = start(map_machine(3), [])
    assert run.status == "SUCCEEDED" and run.output == []


# -- frames: checkpoint round trip --------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(min_value=-2**53, max_value=2**53) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=10)


@given(id=st.text(min_size=1, max_size=6), parent=st.none() | st.text(max_size=6), state=st.text(max_size=10),
       input=JSON, phase=st.sampled_from(["enter", "task", "timer", "retry", "children", "resume"]),
       last_id=st.integers(min_value=0, max_value=10**6), index=st.none() | st.integers(min_value=0, max_value=999),
       retries=st.lists(st.integers(min_value=0, max_value=9), max_size=3),
       data=st.dictionaries(st.text(max_size=5), JSON, max_size=3),
       variables=st.none() | st.dictionaries(st.text(min_size=1, max_size=5), JSON, max_size=3),
       pending=st.none() | st.builds(Pending, st.sampled_from(list(Resume)), JSON).map(
           lambda p: Pending.from_json(p.to_json()) if p.kind not in (Resume.WAITED, Resume.RETRY) else Pending(p.kind))
       | st.builds(Pending.failed, st.sampled_from([Resume.TASK_FAILED, Resume.CHILDREN_FAILED, Resume.MAP_RUN_FAILED]),
                   st.text(max_size=5), st.none() | st.text(max_size=5)),
       seq=st.integers(min_value=0, max_value=1000),
       entered=st.none() | st.datetimes(timezones=st.just(UTC)))
def test_frame_round_trips_through_a_json_checkpoint(id, parent, state, input, phase, last_id, index, retries,
                                                     data, variables, pending, seq, entered):
    f = Frame(id, parent, "tbl", state, input, last_id, index)
    f.phase, f.retries, f.data, f.variables, f.pending, f.seq = phase, retries, data, variables, pending, seq
    f.entered_time, f.entered_id = entered, last_id
    text = json.dumps(f.to_dict())
    g = Frame.from_dict(json.loads(text))
    assert g.to_dict() == f.to_dict()
    assert g.entered_time == entered and g.pending == pending and isinstance(g.retries, list)


def test_a_pending_result_keeps_the_checkpoint_form_stored_checkpoints_hold():
    """Checkpoints written before pending results were typed hold them as JSON lists: the same
    lists are read, and written, now."""
    stored = [["ok", {"a": 1}], ["ok_whole", [1]], ["err", "E", "cause"], ["err", "E", None],
              ["timeout", "States.Timeout"], ["waited"], ["retry"], ["children_ok", [1, 2]],
              ["children_err", "E", None], ["map_run_ok", {"x": 1}], ["map_run_err", "E", "c"]]
    for form in stored:
        assert Pending.from_json(form).to_json() == form
    assert Pending.from_json(["timeout", "States.HeartbeatTimeout"]).error == "States.HeartbeatTimeout"
    assert Pending.from_json(["err", "E", "c"]) == Pending.failed(Resume.TASK_FAILED, "E", "c")
    with pytest.raises(ValueError, match="'later'"):
        Pending.from_json(["later", 1])


def rebuild(run: ExecutionState) -> ExecutionState:
    """A fresh Run from what a checkpoint holds: frames as JSON and the next event id."""
    copy = ExecutionState(run.machine, run.arn, run.name, run.state_machine_arn, run.input, run.start)
    copy.next_id = run.next_id
    for fid, f in run.frames.items():
        copy.frames[fid] = Frame.from_dict(json.loads(json.dumps(f.to_dict())))
    return copy


def test_a_run_resumed_from_its_checkpoint_continues_identically():
    d = {"StartAt": "T", "States": {
        "T": task(Retry=[{"ErrorEquals": ["States.ALL"], "JitterStrategy": "FULL", "IntervalSeconds": 10}],
                  Next="P"),
        "P": {"Type": "Parallel", "End": True, "Branches": [
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}},
            {"StartAt": "X", "States": {"X": task("FX", End=True)}}]}}}
    live = start(d, {"k": 1})

    def script(run: ExecutionState) -> list:
        log = []
        _, fid, seq, _ = take(run, "invoke")[0]
        IT.task_result(run, fid, seq, False, "Flaky", None, T0)
        IT.advance(run, T0)
        timer = take(run, "timer")[0]
        log.append(timer[2])           # the jittered delay is the same for both
        IT.timer_fired(run, fid, "retry", timer[4], timer[2])
        IT.advance(run, timer[2])
        _, fid, seq, _ = take(run, "invoke")[0]
        IT.task_result(run, fid, seq, True, {"v": 2}, None, timer[2])
        IT.advance(run, timer[2])
        left = cmds(run)
        run.commands = []
        wait = next(c for c in left if c[0] == "timer")
        inv = next(c for c in left if c[0] == "invoke")
        IT.task_result(run, inv[1], inv[2], True, "x", None, timer[2])
        IT.advance(run, timer[2])
        IT.timer_fired(run, wait[1], "wait", wait[4], wait[2])
        IT.advance(run, wait[2])
        log.append(run.output)
        return log

    resumed = rebuild(live)         # nothing runnable: the task waits on its result
    resumed.commands = list(live.commands)
    live_events_before = len(live.events)
    a = script(live)
    b = script(resumed)
    assert a == b and a[1] == [{"v": 2}, "x"]
    assert live.events[live_events_before:] == resumed.events
