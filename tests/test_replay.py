"""Replay (statelang.history.replay): a stored history re-runs exactly, from the database on SQLite and
PostgreSQL and from an exported file; every kind of change to the definition or the handlers is
reported at the first event where the new run differs, with that event's id, state and reason.

The seed machine below has every construct replay must feed back: Pass, Task, Retry (two failed
attempts, then success), Choice, Wait, Parallel (with a Wait in one branch), Map (one iteration
caught by Catch), a task token (.waitForTaskToken) and a nested `startExecution.sync:2` child.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from statelang import Engine, HandlerError
from statelang.history.replay import dumps_document, export_document, load_document, replay
from statelang.history.testing import assert_replays

GOLDEN = Path(__file__).parent / "golden"
REGION_ACCOUNT = "us-east-1:123456789012"
SM_ARN = f"arn:aws:states:{REGION_ACCOUNT}:stateMachine:orders"

CHILD = {"StartAt": "Double", "States": {"Double": {
    "Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.n, $.n)"}, "End": True}}}

SEED = {"Comment": "an order: charge, retry a flaky call, hold big ones, reserve items, ask, audit",
        "StartAt": "Init", "States": {
            "Init": {"Type": "Pass", "Result": {"ok": 1}, "ResultPath": "$.init", "Next": "Charge"},
            "Charge": {"Type": "Task", "Resource": "charge", "ResultPath": "$.charge", "Next": "Flaky"},
            "Flaky": {"Type": "Task", "Resource": "flaky", "ResultPath": "$.flaky", "Next": "Big?",
                      "Retry": [{"ErrorEquals": ["Unavailable"], "IntervalSeconds": 2, "MaxAttempts": 3}]},
            "Big?": {"Type": "Choice", "Default": "Both",
                     "Choices": [{"Variable": "$.amount", "NumericGreaterThan": 100, "Next": "Hold"}]},
            "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Both"},
            "Both": {"Type": "Parallel", "ResultPath": "$.both", "Next": "Each", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": True}}},
                {"StartAt": "B", "States": {
                    "B": {"Type": "Wait", "Seconds": 5, "Next": "B2"},
                    "B2": {"Type": "Task", "Resource": "charge", "End": True}}}]},
            "Each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.reserved", "Next": "Ask",
                     "ItemProcessor": {"StartAt": "Reserve", "States": {
                         "Reserve": {"Type": "Task", "Resource": "reserve", "End": True,
                                     "Catch": [{"ErrorEquals": ["Declined"], "ResultPath": "$.error",
                                                "Next": "Skip"}]},
                         "Skip": {"Type": "Pass", "End": True}}}},
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": "notify", "Payload": {"t.$": "$$.Task.Token"}},
                    "ResultPath": "$.answer", "Next": "Child"},
            "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                      "Parameters": {"StateMachineArn": f"arn:aws:states:{REGION_ACCOUNT}:stateMachine:child",
                                     "Input": {"n": 21}},
                      "ResultSelector": {"v.$": "$.Output.v"}, "ResultPath": "$.child", "End": True}}}

SEED_INPUT = {"amount": 150, "items": [{"sku": "x"}, {"sku": "bad"}]}


def make_handlers(tokens: list | None = None, charge_factor: int = 1, calls: list | None = None) -> dict:
    """Deterministic handlers; `flaky` fails twice per engine, then succeeds. `calls` collects
    the name of every handler call."""
    attempts = {"flaky": 0}
    tokens = tokens if tokens is not None else []
    calls = calls if calls is not None else []

    def charge(inp):
        calls.append("charge")
        return {"charged": inp["amount"] * charge_factor}

    def flaky(inp):
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise HandlerError("Unavailable", "try again")
        return {"ok": True}

    def reserve(inp):
        if inp.get("sku") == "bad":
            raise HandlerError("Declined", "out of stock")
        return {"sku": inp["sku"], "held": True}

    def notify(inp, ctx):
        tokens.append(ctx.task_token)

    return {"charge": charge, "flaky": flaky, "reserve": reserve, "notify": notify}


def record_seed(db: str, name: str = "o1", answer=None) -> tuple[Engine, str]:
    """Run the seed machine to the end (answering its token) in the database `db`."""
    tokens: list = []
    engine = Engine(db=db, handlers=make_handlers(tokens), clock="virtual", state_machines={"child": CHILD})
    arn = f"arn:aws:states:{REGION_ACCOUNT}:execution:orders:{name}"
    engine.start(SEED, SEED_INPUT, arn=arn, name=name, state_machine_arn=SM_ARN)
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "RUNNING" and len(tokens) == 1
    engine.send_task_result(tokens[0], True, answer if answer is not None else {"yes": 1})
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "SUCCEEDED"
    return engine, arn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def recorded(db_url):
    engine, arn = record_seed(db_url)
    yield engine, arn
    engine.close()


@pytest.fixture(scope="module")
def seed_doc() -> dict:
    """The seed run exported once (in memory) for the divergence tests."""
    engine, arn = record_seed("memory")
    return engine.export_history(arn)


def event_id(events: list[dict], type_: str, name: str | None = None, nth: int = 0) -> int:
    found = [e["id"] for e in events if e["type"] == type_
             and (name is None or next((v for k, v in e.items() if k.endswith("EventDetails")), {}).get("name") == name)]
    return found[nth]


# -- reproducing ------------------------------------------------------------------------------
def test_the_seed_run_uses_every_construct(seed_doc):
    types = {e["type"] for e in seed_doc["events"]}
    assert {"PassStateEntered", "ChoiceStateEntered", "WaitStateEntered", "ParallelStateStarted",
            "MapIterationStarted", "LambdaFunctionFailed", "TaskSubmitted", "TaskSucceeded"} <= types
    assert sum(e["type"] == "LambdaFunctionFailed" for e in seed_doc["events"]) == 3   # 2 retried, 1 caught
    assert any(e.get("taskScheduledEventDetails", {}).get("resource") == "startExecution.sync:2"
               for e in seed_doc["events"])


def test_replay_from_the_database_reproduces_every_event(recorded):
    engine, arn = recorded
    stored = engine.store.history(arn)
    row = engine.store.get_execution(arn)
    result = engine.replay(arn)
    assert result.ok, result.divergence
    assert result.divergence is None and bool(result)
    assert [(e["id"], e["type"], e["previousEventId"]) for e in result.events] == \
        [(e["id"], e["type"], e["previousEventId"]) for e in stored]
    assert result.status == "SUCCEEDED"
    assert result.output == json.loads(row["output"])
    assert result.output["child"] == {"v": 42} and result.output["answer"] == {"yes": 1}


def test_replay_reads_times_from_the_record(recorded):
    engine, arn = recorded
    stored = engine.store.history(arn)
    result = engine.replay(arn)
    assert [e["timestamp"] for e in result.events] == [e["timestamp"] for e in stored]
    held = event_id(stored, "WaitStateExited", "Hold")
    assert (result.events[held - 1]["timestamp"] - stored[0]["timestamp"]).total_seconds() >= 3600


def test_replay_from_an_exported_file(recorded, tmp_path):
    engine, arn = recorded
    path = tmp_path / "order.history.json"
    path.write_text(dumps_document(engine.export_history(arn)))
    result = replay(path.read_text())
    assert result.ok, result.divergence
    assert result.status == "SUCCEEDED" and len(result.events) == len(engine.store.history(arn))
    assert assert_replays(path).ok
    assert assert_replays(str(path)).ok


def test_bare_event_lists_and_get_execution_history_shapes_replay_with_a_definition():
    # GetExecutionHistory's events carry no execution ARN, so this uses a history whose data does not
    # depend on it (the seed's task token does)
    doc = json.loads((GOLDEN / "booking-failed.history.json").read_text())
    events = doc["events"]
    assert replay(events, doc["definition"]).ok
    assert replay({"events": events}, json.dumps(doc["definition"])).status == "FAILED"
    with pytest.raises(ValueError, match="definition"):
        replay(events)


def test_replay_calls_no_handler():
    calls: list = []
    engine = Engine(db="memory", handlers=make_handlers(calls=calls), clock="virtual", state_machines={"child": CHILD})
    arn = f"arn:aws:states:{REGION_ACCOUNT}:execution:orders:c1"
    engine.start(SEED, SEED_INPUT, arn=arn, name="c1", state_machine_arn=SM_ARN)
    engine.run_until_idle()
    engine.send_task_result(_token_of(engine, arn), True, {"yes": 1})
    engine.run_until_idle()
    assert "charge" in calls
    calls.clear()
    assert engine.replay(arn).ok
    assert calls == []


def _token_of(engine: Engine, arn: str) -> str:
    scheduled = [e for e in engine.store.history(arn) if e["type"] == "TaskScheduled"][-1]
    return json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"]["t"]


def test_a_failed_execution_replays_with_its_error():
    engine = Engine(db="memory", handlers={"charge": lambda i: (_ for _ in ()).throw(HandlerError("Nope", "no"))},
                    clock="virtual")
    arn = f"arn:aws:states:{REGION_ACCOUNT}:execution:orders:f1"
    engine.start({"StartAt": "C", "States": {"C": {"Type": "Task", "Resource": "charge", "End": True}}},
                 {"amount": 1}, arn=arn, name="f1", state_machine_arn=SM_ARN)
    engine.run_until_idle()
    result = engine.replay(arn)
    assert result.ok and result.status == "FAILED"
    assert (result.error, result.cause) == ("Nope", "no")


def test_a_running_execution_waiting_for_its_token_replays_as_running():
    tokens: list = []
    engine = Engine(db="memory", handlers=make_handlers(tokens), clock="virtual", state_machines={"child": CHILD})
    arn = f"arn:aws:states:{REGION_ACCOUNT}:execution:orders:w1"
    engine.start(SEED, SEED_INPUT, arn=arn, name="w1", state_machine_arn=SM_ARN)
    engine.run_until_idle()
    result = engine.replay(arn)
    assert result.ok, result.divergence
    assert result.status == "RUNNING" and result.events[-1]["type"] == "TaskSubmitted"


def test_load_document_rejects_foreign_and_future_documents():
    with pytest.raises(ValueError):
        load_document('{"no": "events"}')
    with pytest.raises(ValueError, match="format"):
        load_document({"format": "other", "events": []})
    with pytest.raises(ValueError, match="newer"):
        load_document({"format": "statelang.history", "version": 99, "events": []})


def test_export_document_round_trips(seed_doc):
    doc = load_document(dumps_document(seed_doc))
    assert doc["input"] == SEED_INPUT
    assert [e["id"] for e in doc["events"]] == list(range(1, len(seed_doc["events"]) + 1))
    assert export_document({"input": None}, [])["input"] == {}


# -- divergences ------------------------------------------------------------------------------
def changed(**edits) -> dict:
    d = copy.deepcopy(SEED)
    for path, value in edits.items():
        *keys, last = path.split("/")
        node = d
        for k in keys:
            node = node[k]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return d


def test_a_changed_choice_threshold_diverges_where_the_choice_led(seed_doc):
    definition = changed(**{"States/Big?/Choices": [{"Variable": "$.amount", "NumericGreaterThan": 200,
                                                     "Next": "Hold"}]})
    result = replay(seed_doc, definition)
    assert not result.ok
    d = result.divergence
    assert d.event_id == event_id(seed_doc["events"], "WaitStateEntered", "Hold")
    assert d.reason == "a different state was taken" and d.state == "Hold"
    assert d.expected["type"] == "WaitStateEntered" and d.actual["type"] == "ParallelStateEntered"
    assert f"event {d.event_id} in state 'Hold'" in str(d)


def test_a_renamed_state_diverges_at_its_entry(seed_doc):
    definition = changed(**{"States/Init/Next": "Bill"})
    definition["States"]["Bill"] = definition["States"].pop("Charge")
    d = replay(seed_doc, definition).divergence
    assert d.event_id == event_id(seed_doc["events"], "TaskStateEntered", "Charge") == 4
    assert (d.reason, d.state) == ("a different state was taken", "Charge")
    assert d.actual["stateEnteredEventDetails"]["name"] == "Bill"


def test_an_added_state_diverges_where_it_is_entered(seed_doc):
    definition = changed(**{"States/Init/Next": "Audit", "States/Audit": {"Type": "Pass", "Next": "Charge"}})
    d = replay(seed_doc, definition).divergence
    assert d.event_id == 4
    assert (d.reason, d.state) == ("a different state was taken", "Charge")
    assert d.actual["type"] == "PassStateEntered"


def test_a_removed_catch_diverges_where_the_error_was_caught(seed_doc):
    definition = changed(**{"States/Each/ItemProcessor/States/Reserve/Catch": None})
    d = replay(seed_doc, definition).divergence
    failed = event_id(seed_doc["events"], "LambdaFunctionFailed", nth=2)
    assert d.event_id == failed + 1
    assert d.expected["type"] == "TaskStateExited" and d.actual["type"] == "MapIterationFailed"
    assert d.state == "Reserve" and d.reason.startswith("a different event")


def test_a_changed_pass_result_diverges_with_different_data(seed_doc):
    d = replay(seed_doc, changed(**{"States/Init/Result": {"ok": 2}})).divergence
    assert (d.event_id, d.reason, d.state) == (3, "different data (output)", "Init")


def test_a_handler_returning_other_data_diverges_at_its_result(seed_doc):
    handlers = make_handlers(charge_factor=2)
    d = replay(seed_doc, handlers=handlers).divergence
    assert d is not None
    assert d.event_id == event_id(seed_doc["events"], "LambdaFunctionSucceeded") == 7
    assert d.reason == "different data (output)"
    assert json.loads(d.expected["lambdaFunctionSucceededEventDetails"]["output"]) == {"charged": 150}
    assert json.loads(d.actual["lambdaFunctionSucceededEventDetails"]["output"]) == {"charged": 300}


def test_a_handler_divergence_names_the_task_state(seed_doc):
    d = replay(seed_doc, handlers=make_handlers(charge_factor=2)).divergence
    assert d.state == "Charge"


def test_a_handler_that_no_longer_fails_diverges_at_the_first_retried_attempt(seed_doc):
    handlers = make_handlers()
    handlers["flaky"] = lambda inp: {"ok": True}
    d = replay(seed_doc, handlers=handlers).divergence
    assert d.event_id == event_id(seed_doc["events"], "LambdaFunctionFailed")
    assert d.reason == "a different event (LambdaFunctionFailed recorded, LambdaFunctionSucceeded replayed)"


def test_a_task_with_no_recorded_result(seed_doc):
    started = event_id(seed_doc["events"], "LambdaFunctionStarted")
    truncated = [e for e in seed_doc["events"] if e["id"] <= started]
    result = replay(truncated, SEED)
    assert not result.ok and result.status is None
    d = result.divergence
    assert (d.event_id, d.reason, d.state) == (started, "a task with no recorded result", "Charge")


def test_golden_histories_still_replay():
    assert_replays(GOLDEN / "orders.history.json")
    assert_replays(GOLDEN / "booking-failed.history.json")


def test_a_golden_history_against_a_changed_definition_fails_the_test():
    doc = json.loads((GOLDEN / "orders.history.json").read_text())
    definition = json.loads(doc["definition"]) if isinstance(doc["definition"], str) else doc["definition"]
    definition["States"]["Big?"]["Choices"][0]["NumericGreaterThan"] = 10_000
    with pytest.raises(AssertionError, match="replay diverged: event .* in state 'Hold'"):
        assert_replays(GOLDEN / "orders.history.json", definition=definition)
