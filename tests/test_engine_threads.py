"""Client threads sharing one engine: steps of different executions run side by side (their
handlers, and their commits' waits on the database, overlap); steps of one execution never do.

Each test would hang on the barrier, then fail, if the engine stepped one execution at a time."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import statelang

TASKS = {
    "StartAt": "Meet",
    "States": {
        "Meet": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:meet",
                 "Next": "Again"},
        "Again": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:meet",
                  "End": True},
    },
}
THREADS = 4


def _engine(url: str, barrier: threading.Barrier) -> statelang.Engine:
    def meet(event):
        barrier.wait(timeout=20)   # every thread's handler runs at the same time, or this breaks
        return {"n": event["n"], "met": True}
    return statelang.Engine(db=url, handlers={"meet": meet}, eager="always")


def _run(engine: statelang.Engine, client, machine_arn: str, n: int) -> dict:
    started = client.start_execution(stateMachineArn=machine_arn, name=f"e{n}", input=json.dumps({"n": n}))
    return engine.wait(started["executionArn"], timeout=30)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_threads_step_their_executions_side_by_side(backend, request):
    url = {"memory": "memory", "sqlite": None, "postgres": None}[backend]
    if backend == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    elif backend == "postgres":
        url = request.getfixturevalue("pg_url")
    barrier = threading.Barrier(THREADS)
    engine = _engine(url, barrier)
    try:
        client = engine.client()
        arn = client.create_state_machine(name="meet", definition=json.dumps(TASKS),
                                          roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
        with ThreadPoolExecutor(THREADS) as pool:
            rows = list(pool.map(lambda n: _run(engine, client, arn, n), range(THREADS)))
        assert [r["status"] for r in rows] == ["SUCCEEDED"] * THREADS, [r.get("cause") for r in rows]
        assert [json.loads(r["output"]) for r in rows] == [{"n": n, "met": True} for n in range(THREADS)]
        assert not barrier.broken
    finally:
        engine.close()


def test_one_execution_is_never_stepped_by_two_threads_at_once(tmp_path):
    """Two threads of one engine processing the same execution take turns: the second finds the
    step done and the history has each event once."""
    inside = threading.Event()
    go_on = threading.Event()
    calls = []

    def slow(event):
        calls.append(event)
        inside.set()
        assert go_on.wait(timeout=20)
        return event

    engine = statelang.Engine(db=f"sqlite:///{tmp_path / 'one.db'}", handlers={"meet": slow})
    try:
        client = engine.client()
        arn = client.create_state_machine(name="one", definition=json.dumps(TASKS),
                                          roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
        execution = client.start_execution(stateMachineArn=arn, name="x", input="{\"n\": 1}")["executionArn"]
        first = threading.Thread(target=engine.process, args=(execution,))
        first.start()
        assert inside.wait(timeout=20)
        second = threading.Thread(target=engine.process, args=(execution,))
        second.start()
        second.join(timeout=0.5)
        assert second.is_alive()   # waiting for the first thread's step, not stepping beside it
        go_on.set()
        first.join(timeout=20)
        second.join(timeout=20)
        engine.run_until_idle()
        row = engine.store.get_execution(execution)
        assert row["status"] == "SUCCEEDED"
        assert len(calls) == 2   # one call per Task state: no step ran twice
        ids = [e["id"] for e in engine.store.history(execution)]
        assert ids == list(range(1, len(ids) + 1))
    finally:
        go_on.set()
        engine.close()


def test_the_worker_loop_steps_its_claimed_executions_side_by_side(tmp_path):
    """`statelang worker --concurrency N` (the engine's max_workers): the executions one claim
    leases are stepped on N threads, so their handlers run at once. The four handlers meet at a
    barrier: stepped in turn, the first would wait there alone and the barrier break."""
    barrier = threading.Barrier(THREADS)
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    worker = _engine(url, barrier)
    worker.eager = False
    worker.max_workers = THREADS
    client = worker.client()
    arn = client.create_state_machine(name="meet", definition=json.dumps(TASKS),
                                      roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    started = [client.start_execution(stateMachineArn=arn, name=f"w{n}", input=json.dumps({"n": n}))["executionArn"]
               for n in range(THREADS)]
    ended, all_ended = set(), threading.Event()

    def on_change(row):   # the engine tells its listeners of every status change
        if row["status"] != "RUNNING":
            ended.add(row["executionArn"])
            if len(ended) == THREADS:
                all_ended.set()
    worker.listeners.append(on_change)
    loop = threading.Thread(target=worker.serve_forever, kwargs={"poll_seconds": 0.05}, daemon=True)
    loop.start()
    try:
        assert all_ended.wait(timeout=60)
        rows = [worker.store.get_execution(a) for a in started]
    finally:
        worker.shutdown()
        loop.join(timeout=30)
        worker.close()
    assert [r["status"] for r in rows] == ["SUCCEEDED"] * THREADS, [r.get("cause") for r in rows]
    assert not barrier.broken


def test_events_made_on_first_use_keep_a_shutdown():
    """An engine makes its wake-up and stop events on first use (statelang.run never needs
    them); one shut down before that hands them out set, so no loop waits on a stopped engine."""
    engine = statelang.Engine(db="memory")
    engine.shutdown()
    assert engine._stopping.is_set() and engine._wake.is_set()
    live = statelang.Engine(db="memory")
    stopping = live._stopping          # made now, unset
    assert not stopping.is_set()
    live.shutdown()
    assert stopping.is_set() and live._stopping is stopping
    live.close()
    engine.close()
