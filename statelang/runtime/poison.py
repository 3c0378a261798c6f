"""Poison contained: an execution whose step raises what nothing expected, or whose step keeps
killing the worker that runs it, fails with States.Runtime instead of taking workers down.
Functions of the engine they serve (``engine``), kept apart from its stepping of executions, as
the worker loop's are (`statelang.runtime.worker`)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from statelang.interpreter.step import ExecutionState
from statelang.runtime.storage import LeaseLost, StoreFault

log = logging.getLogger("statelang.engine")


def quarantine(engine: Any, run: ExecutionState, claims: int) -> None:
    """A step claimed again and again without ever completing kills its worker process (a
    handler that exits, a crash in native code): the execution fails, visibly, instead of
    taking down worker after worker."""
    engine.count("quarantined")
    log.error("execution %s: claimed %d times without completing a step; quarantined", run.arn, claims)
    consumed = [m.id for m in engine.store.due_messages(run.arn, engine.clock.now())]
    run.lease_holder = engine.worker_id
    run.commands.clear()
    run.runnable.clear()
    engine.interpreter.fail_execution(run, "States.Runtime", (
        f"The execution was quarantined: it was claimed {claims} times and its step never completed "
        f"(the worker running it died each time)."), engine.clock.now())
    engine._flush(run, consumed)


def fail_poisoned(engine: Any, arn: str, exc: Exception) -> None:
    """Fail an execution whose step raised what nothing expected, from its last checkpoint:
    States.Runtime, the cause naming the exception (the traceback goes to the log). The due
    messages are consumed with it, so the poison is not claimed again."""
    log.error("execution %s: unexpected error, the execution fails", arn, exc_info=exc)
    try:
        now = engine.clock.now()
        # The failed step may have given its lease back on the way out: take it again (unless
        # another live worker has the execution by now), so that the failure commits fenced.
        if not engine.store.claim_one(arn, engine.worker_id, now, engine.lease_seconds,
                                    stale_before=now - timedelta(seconds=engine.takeover_seconds)):
            return
        run = engine._load(arn)
        if run is None or run.status != "RUNNING":
            engine.store.release(arn, engine.worker_id)
            return
        now = engine.clock.now()
        consumed = [m.id for m in engine.store.due_messages(arn, now)]
        run.lease_holder = engine.worker_id   # fenced: if the lease was lost, so is this failure
        state = next((f.state for f in sorted(run.frames.values(), key=lambda f: -f.last_id)), None)
        where = f"while executing the state '{state}'" if state else "while running the execution"
        run.commands.clear()
        run.runnable.clear()
        engine.interpreter.fail_execution(run, "States.Runtime", f"An unexpected error occurred {where}: "
                                                               f"{type(exc).__name__}: {exc}", now)
        engine._flush(run, consumed)
    except (StoreFault, LeaseLost):
        raise
    except Exception:  # noqa: BLE001 - the failure itself failed: give the lease back, log it
        log.exception("execution %s: could not record its failure", arn)
        engine.store.release(arn, engine.worker_id)
