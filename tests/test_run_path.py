"""`statelang.run` is an ordinary in-memory Engine: one execution path, content-keyed caches, and
AWS's limits on the virtual clock so that a loop with no exit ends as it would on AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import statelang
from statelang import DefinitionError, Engine, VirtualClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)

DISTRIBUTED = {
    "StartAt": "M",
    "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
                     "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                                       "StartAt": "Double",
                                       "States": {"Double": {"Type": "Task", "Resource": "Double", "End": True}}},
                     "End": True}},
}


def double(value, ctx):
    return value * 2


@pytest.mark.parametrize("clock", ["virtual", "real"])
def test_a_distributed_map_finishes_through_run_as_through_an_engine(clock):
    via_run = statelang.run(DISTRIBUTED, {"items": [1, 2, 3]}, handlers={"Double": double}, clock=clock)
    via_engine = statelang.run(DISTRIBUTED, {"items": [1, 2, 3]},
                               engine=Engine(db="memory", handlers={"Double": double}, clock=clock))
    assert via_run.status == via_engine.status == "SUCCEEDED"
    assert via_run.output == via_engine.output == [2, 4, 6]
    assert [e["type"] for e in via_run.history] == [e["type"] for e in via_engine.history]


def test_a_definition_edited_between_runs_runs_edited():
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}}
    assert statelang.run(definition).output == 1
    definition["States"]["P"]["Result"] = 2
    assert statelang.run(definition).output == 2


def test_an_edited_definition_is_validated_again():
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    assert statelang.run(definition).status == "SUCCEEDED"
    del definition["States"]["P"]["End"]
    definition["States"]["P"]["Next"] = "Missing"
    with pytest.raises(DefinitionError, match="Missing"):
        statelang.run(definition)


def test_a_task_token_answered_from_a_handler_thread_through_run():
    """A handler hands its token to another thread, which answers it: run waits for that."""
    import threading
    engine_box = {}

    def ask(event, ctx):
        threading.Timer(0.01, lambda: engine_box["engine"].send_task_result(ctx.task_token, True,
                                                                            output={"ok": True})).start()

    engine = Engine(db="memory", handlers={"Ask": ask})
    engine_box["engine"] = engine
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke."
                                                   "waitForTaskToken", "Parameters": {"FunctionName": "Ask",
                                                   "Payload": {"t.$": "$$.Task.Token"}}, "End": True}}}
    ex = statelang.run(definition, {}, engine=engine, timeout=10)
    assert ex.status == "SUCCEEDED" and ex.output == {"ok": True}


POLL_FOREVER = {
    "StartAt": "Check",
    "States": {
        "Check": {"Type": "Pass", "Next": "Done?"},
        "Done?": {"Type": "Choice", "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "End"}],
                  "Default": "Sleep"},
        "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "Check"},
        "End": {"Type": "Succeed"},
    },
}


def test_a_poll_loop_with_no_exit_ends_at_the_history_quota():
    """AWS: 'The execution reached the maximum number of history events (25000).', States.Runtime,
    and the failure is event 25,000 itself (recorded AWS history quoted in floci-io/floci#2734;
    quota from the developer guide's 'Step Functions service quotas')."""
    ex = statelang.run(POLL_FOREVER, {"done": False}, clock=VirtualClock(T0))
    assert ex.status == "FAILED"
    assert ex.error == "States.Runtime"
    assert ex.cause == "The execution reached the maximum number of history events (25000)."
    assert ex.history[-1]["id"] == 25_000 and ex.history[-1]["type"] == "ExecutionFailed"
    assert [e["id"] for e in ex.history] == list(range(1, 25_001))


def test_a_wait_beyond_one_year_times_out_at_one_year():
    """AWS: 'Maximum execution time: 1 year. If an execution runs for more than the 1-year maximum,
    it will fail with a States.Timeout error' (developer guide, 'Step Functions service quotas')."""
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 400 * 86400, "End": True}}}
    ex = statelang.run(definition, {}, clock=VirtualClock(T0))
    assert ex.status == "TIMED_OUT" and ex.error == "States.Timeout"
    assert ex.history[-1]["type"] == "ExecutionTimedOut"
    assert ex.history[-1]["timestamp"] == T0 + timedelta(days=365)


def test_a_slow_poll_loop_times_out_at_one_year():
    slow = {**POLL_FOREVER, "States": {**POLL_FOREVER["States"],
                                       "Sleep": {"Type": "Wait", "Seconds": 30 * 86400, "Next": "Check"}}}
    ex = statelang.run(slow, {"done": False}, clock=VirtualClock(T0))
    assert ex.status == "TIMED_OUT" and ex.error == "States.Timeout"
    assert T0 + timedelta(days=365) <= ex.history[-1]["timestamp"] <= T0 + timedelta(days=366)


def test_a_parked_token_does_not_make_the_virtual_clock_jump_a_year():
    engine = Engine(db="memory", clock=VirtualClock(T0), handlers={"Ask": lambda e, c: None})
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke."
                                                   "waitForTaskToken", "Parameters": {"FunctionName": "Ask",
                                                   "Payload": {"t.$": "$$.Task.Token"}}, "End": True}}}
    ex = statelang.run(definition, {}, engine=engine)
    assert ex.status == "RUNNING"
    assert engine.clock.now() == T0


def test_run_timeout_is_honoured_on_the_virtual_clock():
    ex = statelang.run(POLL_FOREVER, {"done": False}, clock=VirtualClock(T0), timeout=2 * 3600 + 1)
    assert ex.status == "RUNNING"
    entered = [e for e in ex.history if e["type"] == "WaitStateEntered"]
    assert len(entered) == 3          # at 0 h, 1 h and 2 h; the next one is past the timeout
    assert max(e["timestamp"] for e in ex.history) <= T0 + timedelta(seconds=2 * 3600 + 1)


DYNAMO = {"StartAt": "Put", "States": {
    "Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {"TableName": "Orders", "Item": {"id": {"S": "1"}}}, "Next": "Get"},
    "Get": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
            "Parameters": {"TableName": "Orders", "Key": {"id": {"S": "1"}}}, "End": True}}}


def test_an_unhandled_aws_service_task_is_answered_by_the_local_service():
    """No handler for dynamodb:putItem: the engine's local DynamoDB answers, with AWS's error
    name for a table that does not exist (catchable as on AWS)."""
    ex = statelang.run(DYNAMO, {}, clock="virtual")
    assert ex.status == "FAILED" and ex.error == "DynamoDB.ResourceNotFoundException"


def test_the_local_services_keep_their_state_in_the_engines_store():
    engine = Engine(db="memory", clock="virtual")
    services = engine.resources.services = engine.resources.services_factory()
    services.dynamodb.create_table("Orders", "id")
    ex = statelang.run(DYNAMO, {}, engine=engine)
    assert ex.status == "SUCCEEDED"
    assert ex.output["Item"] == {"id": {"S": "1"}}


@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_a_frame_id_dropped_and_used_again_in_one_round_keeps_its_checkpoint(db, tmp_path):
    """Two Parallel states in a row: the first one's branch frame ends and the second one's branch
    takes the same id in the same round; the checkpoint must hold the new frame, or its Wait's
    timer fires into nothing and the execution stays RUNNING (found by the replay property test)."""
    definition = {"StartAt": "A", "States": {
        "A": {"Type": "Parallel", "Next": "B", "Branches": [
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}]},
        "B": {"Type": "Parallel", "End": True, "Branches": [
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}]}}}
    engine = Engine(db="memory" if db == "memory" else f"sqlite:///{tmp_path}/f.db", clock=VirtualClock(T0))
    arn = "arn:aws:states:us-east-1:123456789012:execution:m:f"
    engine.start(definition, {}, arn=arn, name="f", state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    engine.close()


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
WAIT_THEN_PASS = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "Next": "P"},
                                             "P": {"Type": "Pass", "End": True}}}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"timeout": float("nan")}, ValueError, "timeout must be a finite number of seconds, 0 or more, not nan"),
    ({"timeout": float("inf")}, ValueError, "timeout must be a finite number of seconds, 0 or more, not inf"),
    ({"timeout": -1}, ValueError, "timeout must be a finite number of seconds, 0 or more, not -1"),
    ({"timeout": "5"}, ValueError, "timeout must be a finite number of seconds, 0 or more, not '5'"),
    ({"handlers": [print]}, TypeError, "handlers must be a mapping of resource names to callables, not list"),
    ({"handlers": {"Charge": "charge"}}, TypeError, "the handler for 'Charge' is not callable: 'charge'"),
    ({"handlers": {3: print}}, TypeError, "a handler's name must be a non-empty string"),
])
def test_run_names_an_argument_it_cannot_use(kwargs, error, message):
    """What used to come out of `run` for these: "cannot convert float NaN to integer" and
    OverflowError from inside a timedelta, a TypeError adding a str to a float, "'list' object has
    no attribute 'items'", and a handler that was not callable failing its task at run time."""
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        statelang.run(WAIT_THEN_PASS, {}, clock="virtual", **kwargs)


def test_run_with_no_timeout_left_returns_the_execution_running():
    """A timeout of 0 seconds is a timeout that has passed: the execution comes back as it is."""
    assert statelang.run(WAIT_THEN_PASS, {}, clock="virtual", timeout=0).status == "RUNNING"


@pytest.mark.parametrize("value, where", [({1, 2}, "set"), ({"a": object()}, "object"), ([float("nan")], None)])
def test_an_input_that_is_no_json_value_is_named_as_the_input(value, where):
    """A Python value JSON cannot hold came out as json's own "Object of type set is not JSON
    serializable", naming neither the input nor the call. NaN is a float json writes (as NaN), and
    runs as before."""
    if where is None:
        assert statelang.run(PASS, value, clock="virtual").status == "SUCCEEDED"
        return
    with pytest.raises(TypeError, match=f"the execution's input is not a JSON value: .*{where}"):
        statelang.run(PASS, value, clock="virtual")


def test_an_input_holding_itself_is_named_as_the_input():
    value: dict = {}
    value["self"] = value
    with pytest.raises(TypeError, match="the execution's input is not a JSON value"):
        statelang.run(PASS, value, clock="virtual")


def test_an_engine_refuses_a_db_that_is_neither_a_url_nor_a_store():
    with pytest.raises(TypeError, match=r"db must be a database URL \('memory', 'sqlite:///file.db'"):
        Engine(db=5)


@pytest.mark.parametrize("kwargs, message", [
    ({"until": "tomorrow"}, "until must be an aware datetime"),
    ({"until": datetime(2026, 1, 2)}, "until must be an aware datetime"),
    ({"max_rounds": -1}, "max_rounds must be a whole number, 0 or more"),
    ({"max_rounds": "a"}, "max_rounds must be a whole number, 0 or more"),
    ({"concurrency": 0}, "concurrency must be a whole number of at least 1"),
    ({"concurrency": "2"}, "concurrency must be a whole number of at least 1"),
])
def test_run_until_idle_names_an_argument_it_cannot_use(kwargs, message):
    """They ended in "'>' not supported between instances of 'datetime.datetime' and 'str'" and
    the like, or (a negative max_rounds) returned having done nothing."""
    engine = Engine(db="memory", clock=VirtualClock(T0))
    with pytest.raises(ValueError, match=message):
        engine.run_until_idle(**kwargs)


@pytest.mark.parametrize("definition, value", [
    ({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}}, {"s": 10**15}),
    ({"StartAt": "T", "States": {"T": {"Type": "Task", "End": True, "TimeoutSecondsPath": "$.t",
                                       "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                                       "Parameters": {"FunctionName": "f", "Payload": {}}}}}, {"t": 10**12}),
])
def test_a_timer_longer_than_the_execution_may_run_times_the_execution_out_at_one_year(definition, value):
    """10**15 seconds is a valid long on AWS, so the wait (or the task's timeout) is taken, and the
    execution times out at its one-year limit first. The due time overflowed Python's datetime and
    failed the state with "OverflowError: Python int too large to convert to C int"."""
    ex = statelang.run(definition, value, handlers={"f": lambda payload: None}, clock=VirtualClock(T0))
    assert ex.status == "TIMED_OUT"
    assert ex.stop_date - ex.start_date == timedelta(days=365)
