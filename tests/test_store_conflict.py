"""A write the database refuses for its own constraints (a duplicate key, a trigger's refusal) is
a fault of the one execution being written, not of the database: the engine fails that
execution, visibly, and goes on. Before, it counted as a transient database fault, and a worker
backed off and retried the same write forever (a stuck worker), on SQLite and PostgreSQL alike.

The refusal is made real with a trigger on the events table that refuses one event type, the
way a constraint refuses a row: SQLite's RAISE(ABORT) and PostgreSQL's unique_violation are the
drivers' integrity errors."""

from __future__ import annotations

import json

import pytest

import statelang
from statelang.store import open_store

MACHINE = {"StartAt": "First", "States": {
    "First": {"Type": "Pass", "Next": "Pause"},
    "Pause": {"Type": "Wait", "Seconds": 10, "Next": "Done"},
    "Done": {"Type": "Succeed"}}}
ROLE = "arn:aws:iam::123456789012:role/r"

_SQLITE_TRIGGER = """CREATE TRIGGER refuse_wait_exit BEFORE INSERT ON events
    WHEN NEW.type = 'WaitStateExited' BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END"""
_PG_TRIGGER = ["""CREATE FUNCTION refuse_wait_exit() RETURNS trigger AS $$ BEGIN
    IF NEW.type = 'WaitStateExited' THEN
        RAISE EXCEPTION 'refused by a constraint' USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW; END $$ LANGUAGE plpgsql""",
               """CREATE TRIGGER refuse_wait_exit BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_wait_exit()"""]


def _refuse_wait_exits(url: str) -> None:
    store = open_store(url)
    try:
        with store.connection() as conn:
            if url.startswith("sqlite"):
                conn.execute(_SQLITE_TRIGGER)
            else:
                for statement in _PG_TRIGGER:
                    conn.execute(statement)
    finally:
        store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request) -> str:
    return request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'sqlite'}_url")


def test_a_refused_write_fails_its_execution_and_the_engine_goes_on(sql_url):
    backend_url = sql_url
    engine = statelang.Engine(db=backend_url, clock="virtual")
    try:
        sfn = engine.client()
        sm = sfn.create_state_machine(name="refused", definition=json.dumps(MACHINE), roleArn=ROLE)["stateMachineArn"]
        healthy = sfn.create_state_machine(name="healthy", definition=json.dumps(
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}), roleArn=ROLE)["stateMachineArn"]
        _refuse_wait_exits(backend_url)
        arn = sfn.start_execution(stateMachineArn=sm, name="one", input="{}")["executionArn"]
        other = sfn.start_execution(stateMachineArn=healthy, name="two", input="{}")["executionArn"]
        engine.run_until_idle()   # raises nothing: the refusal stays with its execution
        described = sfn.describe_execution(executionArn=arn)
        assert described["status"] == "FAILED"
        assert described["error"] == "States.Runtime"
        assert "StoreConflict" in described["cause"] and "refused by a constraint" in described["cause"]
        assert "while executing the state 'Pause'" in described["cause"]
        assert sfn.describe_execution(executionArn=other)["status"] == "SUCCEEDED"
        events = sfn.get_execution_history(executionArn=arn)["events"]
        assert [e["id"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "ExecutionFailed"
        assert "WaitStateExited" not in [e["type"] for e in events]
        assert engine.metrics["poisoned"] == 1
    finally:
        engine.close()


def test_a_duplicate_execution_name_is_still_execution_already_exists(backend_url):
    """The one refusal with a meaning of its own in the API keeps it."""
    engine = statelang.Engine(db=backend_url, clock="virtual")
    try:
        sfn = engine.client()
        sm = sfn.create_state_machine(name="dup", definition=json.dumps(MACHINE), roleArn=ROLE)["stateMachineArn"]
        sfn.start_execution(stateMachineArn=sm, name="same", input="{}")
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=sm, name="same", input='{"other": 1}')
    finally:
        engine.close()
