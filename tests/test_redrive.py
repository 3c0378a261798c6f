"""Redrive (AWS RedriveExecution) and fork, on SQLite and PostgreSQL.

AWS behaviour pinned here (RedriveExecution, API reference and the "Redriving executions" guide):
- only Standard executions that did not complete successfully in the last 14 days may be redriven:
  status FAILED, TIMED_OUT or ABORTED; Express executions are not supported;
- a redrive continues from the unsuccessful step with the same input, definition and execution ARN;
  steps that succeeded keep their results and history and are not re-run;
- in an Inline Map or a Parallel state, only the iterations and branches that failed or aborted are
  rescheduled;
- redriveCount counts successful redrives (0 before the first); the history gets an
  ExecutionRedriven event whose executionRedrivenEventDetails carry that count; the execution is
  RUNNING again and ends as any execution does.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest

from statelang import Engine, HandlerError
from statelang.history.redrive import ExecutionNotRedrivable, fork, redrive_status

ACCT = "us-east-1:123456789012"
SM_ARN = f"arn:aws:states:{ACCT}:stateMachine:jobs"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


class Handlers:
    """Counts every call by (handler, input); `broken` inputs fail until repaired."""

    def __init__(self):
        self.calls: Counter = Counter()
        self.broken = True

    def mapping(self) -> dict:
        return {"prepare": self.prepare, "work": self.work, "left": self.left, "right": self.right,
                "finish": self.finish}

    def prepare(self, inp):
        self.calls["prepare"] += 1
        return {"prepared": True}

    def work(self, inp):
        self.calls[f"work:{inp['n']}"] += 1
        if inp["n"] == 2 and self.broken:
            raise HandlerError("WorkFailed", "item 2 is broken")
        return inp["n"] * 10

    def left(self, inp):
        self.calls["left"] += 1
        return "L"

    def right(self, inp):
        self.calls["right"] += 1
        if self.broken:
            raise HandlerError("RightFailed", "right branch is down")
        return "R"

    def finish(self, inp):
        self.calls["finish"] += 1
        return "done"


@pytest.fixture
def h() -> Handlers:
    return Handlers()


@pytest.fixture
def engine(db_url, h):
    e = Engine(db=db_url, handlers=h.mapping(), clock="virtual")
    yield e
    e.close()


def start(engine: Engine, definition: dict, input: dict, name: str) -> str:
    arn = f"arn:aws:states:{ACCT}:execution:jobs:{name}"
    engine.start(definition, input, arn=arn, name=name, state_machine_arn=SM_ARN)
    return arn


def types(engine: Engine, arn: str) -> list[str]:
    return [e["type"] for e in engine.store.history(arn)]


MAP = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Task", "Resource": "prepare", "ResultPath": "$.prep", "Next": "Each"},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "ResultPath": "$.results",
             "Next": "Finish",
             "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "work",
                                                                    "End": True}}}},
    "Finish": {"Type": "Task", "Resource": "finish", "ResultPath": "$.finish", "End": True}}}

PARALLEL = {"StartAt": "Both", "States": {
    "Both": {"Type": "Parallel", "Next": "Finish", "ResultPath": "$.both", "Branches": [
        {"StartAt": "Left", "States": {"Left": {"Type": "Task", "Resource": "left", "End": True}}},
        {"StartAt": "Pause", "States": {
            "Pause": {"Type": "Wait", "Seconds": 10, "Next": "Right"},
            "Right": {"Type": "Task", "Resource": "right", "End": True}}}]},
    "Finish": {"Type": "Task", "Resource": "finish", "ResultPath": "$.finish", "End": True}}}


def test_a_map_with_one_failing_iteration_reruns_only_that_iteration(engine, h):
    arn = start(engine, MAP, {"items": [{"n": 1}, {"n": 3}, {"n": 2}]}, "map1")
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert (row["status"], row["error"], row["redriveCount"]) == ("FAILED", "WorkFailed", 0)
    assert h.calls == Counter({"prepare": 1, "work:1": 1, "work:3": 1, "work:2": 1})
    before = len(engine.store.history(arn))

    h.broken = False
    row = engine.redrive(arn)
    assert (row["status"], row["redriveCount"]) == ("RUNNING", 1)
    assert row["error"] is None and row["stopDate"] is None
    redriven = engine.store.history(arn)[before]
    assert redriven["type"] == "ExecutionRedriven" and redriven["id"] == before + 1
    assert redriven["executionRedrivenEventDetails"] == {"redriveCount": 1}

    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED" and row["redriveCount"] == 1
    out = json.loads(row["output"])
    assert out["results"] == [10, 30, 20] and out["finish"] == "done"
    # only the failed iteration ran again; Prepare and the two good iterations were not re-run
    assert h.calls == Counter({"prepare": 1, "work:1": 1, "work:3": 1, "work:2": 2, "finish": 1})
    ids = [e["id"] for e in engine.store.history(arn)]
    assert ids == list(range(1, len(ids) + 1))


def test_a_parallel_with_one_failing_branch_reruns_only_that_branch(engine, h):
    arn = start(engine, PARALLEL, {}, "par1")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "FAILED"
    assert h.calls == Counter({"left": 1, "right": 1})
    h.broken = False
    engine.redrive(arn)
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED"
    assert json.loads(row["output"]) == {"both": ["L", "R"], "finish": "done"}
    assert h.calls == Counter({"left": 1, "right": 2, "finish": 1})
    assert types(engine, arn).count("ExecutionRedriven") == 1


def test_redriving_again_after_a_second_failure_counts_two(engine, h):
    arn = start(engine, PARALLEL, {}, "par2")
    engine.run_until_idle()
    engine.redrive(arn)
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "FAILED"    # still broken
    h.broken = False
    row = engine.redrive(arn)
    assert row["redriveCount"] == 2
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    counts = [e["executionRedrivenEventDetails"]["redriveCount"] for e in engine.store.history(arn)
              if e["type"] == "ExecutionRedriven"]
    assert counts == [1, 2]
    assert h.calls["left"] == 1 and h.calls["right"] == 3


def test_a_succeeded_execution_is_not_redrivable(engine, h):
    h.broken = False
    arn = start(engine, PARALLEL, {}, "ok1")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    with pytest.raises(ExecutionNotRedrivable, match="SUCCEEDED"):
        engine.redrive(arn)
    assert "ExecutionRedriven" not in types(engine, arn)


def test_a_running_execution_is_not_redrivable(engine):
    arn = start(engine, PARALLEL, {}, "run1")
    engine.run_until_idle(max_rounds=1)
    assert engine.store.get_execution(arn)["status"] == "RUNNING"
    with pytest.raises(ExecutionNotRedrivable, match="RUNNING"):
        engine.redrive(arn)


def test_an_execution_stopped_more_than_14_days_ago_is_not_redrivable(engine, h):
    arn = start(engine, PARALLEL, {}, "old1")
    engine.run_until_idle()
    engine.clock.set(engine.clock.now() + timedelta(days=14) - timedelta(seconds=1))
    row = engine.store.get_execution(arn)
    assert redrive_status(row, engine.clock.now()) == ("REDRIVABLE", None)
    engine.clock.set(engine.clock.now() + timedelta(seconds=2))
    status, reason = redrive_status(row, engine.clock.now())
    assert status == "NOT_REDRIVABLE" and "14 days" in reason
    h.broken = False
    with pytest.raises(ExecutionNotRedrivable, match="14 days"):
        engine.redrive(arn)
    assert h.calls["right"] == 1


def test_an_unknown_execution_cannot_be_redriven(engine):
    """Redrive, export, replay and fork of an ARN the database does not hold raise
    ExecutionDoesNotExist, whose text names the ARN (a bare KeyError('arn...') before; it is still
    a KeyError)."""
    from statelang import ExecutionDoesNotExist, StatelangError
    from statelang.history.redrive import fork

    arn = f"arn:aws:states:{ACCT}:execution:jobs:nope"
    for call in (engine.redrive, engine.export_history, engine.replay, lambda a: fork(engine, a, 3)):
        with pytest.raises(ExecutionDoesNotExist) as caught:
            call(arn)
        assert isinstance(caught.value, KeyError) and isinstance(caught.value, StatelangError)
        assert str(caught.value) == f"Execution Does Not Exist: '{arn}' (not in this engine's database)"


def test_a_history_that_is_not_json_is_named_as_such(engine):
    with pytest.raises(ValueError, match="a history must be JSON text, an exported document or a list of events: "
                                         "Expecting value"):
        engine.import_history("not a history")


def test_express_executions_are_not_redrivable():
    assert redrive_status({"type": "EXPRESS", "status": "FAILED"}, None)[0] == "NOT_REDRIVABLE"


def test_a_timed_out_execution_is_redriven(engine, h):
    definition = {"StartAt": "Prepare", "TimeoutSeconds": 60, "States": {
        "Prepare": {"Type": "Task", "Resource": "prepare", "Next": "Long"},
        "Long": {"Type": "Wait", "Seconds": 90, "Next": "Finish"},
        "Finish": {"Type": "Task", "Resource": "finish", "End": True}}}
    arn = start(engine, definition, {}, "to1")
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert (row["status"], row["error"]) == ("TIMED_OUT", "States.Timeout")
    row = engine.redrive(arn)
    assert (row["status"], row["redriveCount"]) == ("RUNNING", 1)
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED" and json.loads(row["output"]) == "done"
    assert h.calls == Counter({"prepare": 1, "finish": 1})
    t = types(engine, arn)
    assert t.index("ExecutionTimedOut") + 1 == t.index("ExecutionRedriven")


def test_an_aborted_execution_is_redriven(engine, h):
    definition = {"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Task", "Resource": "prepare", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Finish"},
        "Finish": {"Type": "Task", "Resource": "finish", "End": True}}}
    arn = start(engine, definition, {}, "ab1")
    engine.process(arn)
    assert engine.store.get_execution(arn)["status"] == "RUNNING"
    engine.stop_execution(arn, "Operator", "stopped by hand")
    assert engine.store.get_execution(arn)["status"] == "ABORTED"
    row = engine.redrive(arn)
    assert row["status"] == "RUNNING"
    engine.run_until_idle()
    row = engine.store.get_execution(arn)
    assert (row["status"], json.loads(row["output"]), row["redriveCount"]) == ("SUCCEEDED", "done", 1)
    assert h.calls == Counter({"prepare": 1, "finish": 1})


def test_a_redriven_execution_still_replays(engine, h):
    arn = start(engine, PARALLEL, {}, "rp1")
    engine.run_until_idle()
    h.broken = False
    engine.redrive(arn)
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    result = engine.replay(arn)
    assert result.ok, result.divergence


# -- fork -------------------------------------------------------------------------------------
def test_fork_from_an_event_with_other_handlers(db_url, h):
    engine = Engine(db=db_url, handlers=h.mapping(), clock="virtual")
    arn = start(engine, MAP, {"items": [{"n": 1}, {"n": 2}]}, "fk1")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "FAILED"
    entered = next(e["id"] for e in engine.store.history(arn) if e["type"] == "MapStateEntered")
    engine.close()

    fixed = Handlers()
    fixed.broken = False
    other = Engine(db=db_url, handlers=fixed.mapping(), clock="virtual")
    new = fork(other, arn, entered, name="fk1-fixed")
    other.run_until_idle()
    row = other.store.get_execution(new)
    assert new.endswith(":fk1-fixed") and row["status"] == "SUCCEEDED"
    out = json.loads(row["output"])
    assert out["prep"] == {"prepared": True} and out["results"] == [10, 20]
    # the fork starts at the Map with the data it had: Prepare is not run again
    assert fixed.calls == Counter({"work:1": 1, "work:2": 1, "finish": 1})
    first = other.store.history(new)[1]
    assert first["stateEnteredEventDetails"]["name"] == "Each"
    assert engine.store is not other.store and other.store.get_execution(arn)["status"] == "FAILED"
    other.close()


def test_fork_with_a_changed_definition(engine, h):
    arn = start(engine, MAP, {"items": [{"n": 2}]}, "fk2")
    engine.run_until_idle()
    entered = next(e["id"] for e in engine.store.history(arn) if e["type"] == "MapStateEntered")
    changed = json.loads(json.dumps(MAP))
    changed["States"]["Each"]["ItemProcessor"]["States"]["Work"]["Catch"] = [
        {"ErrorEquals": ["WorkFailed"], "ResultPath": "$.error", "Next": "Skip"}]
    changed["States"]["Each"]["ItemProcessor"]["States"]["Skip"] = {"Type": "Pass", "Result": "skipped",
                                                                      "End": True}
    new = fork(engine, arn, entered + 1, definition=changed)
    engine.run_until_idle()
    row = engine.store.get_execution(new)
    assert row["status"] == "SUCCEEDED"
    assert json.loads(row["output"])["results"] == ["skipped"]
    assert h.calls["prepare"] == 1


def test_fork_at_a_state_missing_from_the_new_definition_is_refused(engine):
    arn = start(engine, MAP, {"items": [{"n": 2}]}, "fk3")
    engine.run_until_idle()
    entered = next(e["id"] for e in engine.store.history(arn) if e["type"] == "MapStateEntered")
    other = {"StartAt": "Prepare", "States": {"Prepare": {"Type": "Pass", "End": True}}}
    with pytest.raises(ValueError, match="'Each'"):
        fork(engine, arn, entered, definition=other)


@pytest.mark.parametrize("at", [0, -1, "last+1", 10_000, True])
def test_fork_from_an_event_the_history_does_not_have_is_refused(engine, at):
    """`fork --from-event 999` of a 6-event history started a new execution at the last state,
    and `--from-event 0` one at StartAt, both silently: the event is refused as `history show
    --at` refuses it, and nothing is started."""
    arn = start(engine, MAP, {"items": [{"n": 2}]}, f"fk-out-{at}")
    engine.run_until_idle()
    last = len(engine.store.history(arn))
    at = last + 1 if at == "last+1" else at
    before = len(engine.store.list_executions())
    with pytest.raises(ValueError, match=f"has no event {at} \\(it has {last}\\)"):
        fork(engine, arn, at)
    assert len(engine.store.list_executions()) == before
    fork(engine, arn, last)   # the last event itself is one to fork from
