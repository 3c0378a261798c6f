"""A `statelang worker` process rides out restarts of the PostgreSQL server under it.

The test runs a real server of its own (`own_pg_server`: its own data directory and port) and one
real worker process whose handlers take real time, so that calls and commits are in flight when
the server goes away. It stops the server twice while work is in flight: ``pg_ctl stop -m
immediate`` kept down 1.5 s (a crash: every connection cut, no goodbye), then a fast restart
down 0.4 s (``-m fast``: the server terminates the sessions itself). Each time it starts the
server again on the same port.

Checks: the worker process never exits (during the outage and after); every execution ends
SUCCEEDED with the output of its uninterrupted run; every history's event ids are 1..n; the
worker's log names the lost connection and the reconnect in plain lines, without a traceback.

A restart can also land between two of the worker loop's queries (the steps it ran, then the next
due time): `test_fault_between_the_loops_queries` puts a fault exactly there.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

import statelang
from statelang.runtime.storage import MemoryStore, StoreFault
from tests.fleet_helpers import TERMINAL, Fleet, history_problems, lam

EXECUTIONS = 20   # per outage
HANDLER_SECONDS = 0.25


def _machine() -> dict:
    """Task, a 1 s Wait on the real clock, Task: each execution is in flight across an outage."""
    work = {"Type": "Task", "Resource": lam("Work"), "Parameters": {"n.$": "$.n", "sleep": HANDLER_SECONDS},
            "ResultSelector": {"n.$": "$.n"}}
    return {"StartAt": "First", "States": {
        "First": {**work, "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Second"},
        "Second": {**work, "Next": "Done"},
        "Done": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "End": True}}}


def _wait_for(what: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _in_flight(fleet: Fleet) -> int:
    """Handler calls started and not yet ended (the calls file lives outside the database)."""
    return sum(1 for c in fleet.calls() if c.ended is None)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize(("mode", "down_seconds"), [("immediate", 1.5), ("fast", 0.4)])
def test_worker_survives_postgres_restart(own_pg_server, tmp_path, mode, down_seconds):
    server = own_pg_server
    fleet = Fleet(server.url(server.create_database()), tmp_path / "fleet", lease_seconds=10, concurrency=8)
    try:
        machine = fleet.machine("restart", _machine())
        worker = fleet.start_worker()
        fleet.worker_id(worker)
        expected = {fleet.start(machine, f"run{i}", {"n": i}): {"n": i + 2} for i in range(EXECUTIONS)}

        # The outage begins while handlers run, so that their results come back to no database.
        _wait_for("a handler call in flight", lambda: _in_flight(fleet) >= 1 and len(fleet.calls()) >= 5, timeout=20)
        server.halt(mode)
        down_until = time.monotonic() + down_seconds
        while time.monotonic() < down_until:
            assert worker.poll() is None, f"the worker exited while the server was down:\n{fleet.log_of(worker)}"
            time.sleep(0.05)
        server.resume()
        assert worker.poll() is None, f"the worker exited with the server down:\n{fleet.log_of(worker)}"

        # A reader of its own: the fleet's engine kept connections the restart cut.
        reader = statelang.Engine(db=fleet.db)
        try:
            deadline = time.monotonic() + 40
            while True:
                assert worker.poll() is None, f"the worker exited after the restart:\n{fleet.log_of(worker)}"
                rows = {arn: reader.store.get_execution(arn) for arn in expected}
                if all(r["status"] in TERMINAL for r in rows.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            got = {arn: (r["status"], r["output"] and json.loads(r["output"])) for arn, r in rows.items()}
            wrong = {arn: g for arn, g in got.items() if g != ("SUCCEEDED", expected[arn])}
            assert not wrong, (wrong, fleet.log_of(worker)[-3000:])
            bad = {a: p for a in expected if (p := history_problems(reader.store.history(a)))}
            assert not bad, bad
        finally:
            reader.close()

        log = fleet.log_of(worker)
        assert "Traceback" not in log, log
        assert "the connection to the database was lost" in log, log
        assert "reconnected to the database" in log, log
        assert worker.poll() is None
    finally:
        fleet.stop()


class _RestartingStore(MemoryStore):
    """A store whose database goes away once, just after the worker loop has run its steps: the
    loop's next query (`next_due`) is the first to find it gone."""

    def __init__(self):
        super().__init__()
        self.faults = 1
        self.asked_again = threading.Event()

    def next_due(self):
        if self.faults:
            self.faults -= 1
            raise StoreFault("the database restarts")
        self.asked_again.set()
        return super().next_due()


def test_fault_between_the_loops_queries():
    store = _RestartingStore()
    engine = statelang.Engine(db=store)
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            engine.serve_forever(poll_seconds=0.05)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failed.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while thread.is_alive() and not store.asked_again.wait(0.05) and time.monotonic() < deadline:
            pass
        assert store.asked_again.is_set(), f"the worker loop did not come back after the fault: {failed}"
    finally:
        engine.shutdown()
        thread.join(10)
    assert not failed and not thread.is_alive()
