"""The bus inside the engine: the ``events:putEvents`` task integration, the "Step Functions
Execution Status Change" events, and a loop that runs executions and bus timers on one clock.

``install(engine)`` wires the first two; `run_until_idle` is the engine's own loop with the bus's
timers (schedules, delivery retries) added to the timers it jumps between on a virtual clock, so
an execution that waits until noon and a cron rule firing at ten happen in their true order.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from statelang.interpreter.commands import TaskOutcome

from .bus import EventBus
from .targets import EventBridgeError

PREFIX = "arn:aws:states:::events:putEvents"
STATUS_CHANGE = "Step Functions Execution Status Change"


def install(engine, buses=()) -> EventBus:
    """Register ``events:putEvents`` (and its ``.waitForTaskToken`` form) on ``engine`` and
    publish execution status changes to the default bus. ``buses`` (names or EventBus objects)
    are created if missing. Idempotent; returns the default bus."""
    default = EventBus(engine)
    for bus in buses or ():
        if not isinstance(bus, EventBus):
            EventBus(engine, bus)
    engine.integrations[PREFIX] = _put_events
    if not any(getattr(fn, "_eventbus_status", False) for fn in engine.listeners):
        def on_status(row: dict) -> None:
            publish_status_change(engine, row)
        on_status._eventbus_status = True  # type: ignore[attr-defined]
        engine.listeners.append(on_status)
    return default


def _put_events(engine, run, fid: str, seq: int, spec: dict):
    """Step Functions' optimized PutEvents: ``Detail`` may be an object; the execution's and its
    state machine's ARNs are appended to each entry's ``Resources``; any failed entry fails the
    task with ``EventBridge.FailedEntry`` and the response as its cause, as AWS does. Event ids
    come from the task's idempotency key, so a task run again after a crash sends the same ids."""
    args = spec["input"] if isinstance(spec["input"], dict) else {}
    entries = args.get("Entries")
    if not isinstance(entries, list):
        return TaskOutcome.failed("States.Runtime", "The field 'Entries' is required by events:putEvents.")
    prepared = []
    for entry in entries:
        entry = dict(entry) if isinstance(entry, dict) else {}
        resources = list(entry.get("Resources") or [])
        entry["Resources"] = resources + [run.arn, run.state_machine_arn]
        prepared.append(entry)
    key = spec.get("idempotency_key") or f"{run.arn}#{fid}#{seq}"
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}#{n}")) for n in range(len(prepared))]
    try:
        result = EventBus(engine).put_events(prepared, event_ids=ids)
    except EventBridgeError as exc:
        return TaskOutcome.failed(f"EventBridge.{exc.code}", exc.message)
    if result["FailedEntryCount"]:
        return TaskOutcome.failed("EventBridge.FailedEntry", json.dumps(result))
    return TaskOutcome.succeeded(result)


def _millis(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(value.timestamp() * 1000)


def status_change_event(engine, row: dict) -> dict:
    """The event AWS sends for an execution's status: source ``aws.states``, the execution ARN in
    ``resources``, dates in epoch milliseconds, input and output as JSON text."""
    status = row["status"]
    stop = row.get("stopDate")
    detail = {
        "executionArn": row["executionArn"], "stateMachineArn": row["stateMachineArn"], "name": row["name"],
        "status": status, "startDate": _millis(row.get("startDate")), "stopDate": _millis(stop),
        "input": row.get("input"), "output": row.get("output") if status == "SUCCEEDED" else None,
        "inputDetails": {"included": True}, "outputDetails": {"included": True},
        "error": row.get("error"), "cause": row.get("cause"),
        "redriveCount": row.get("redriveCount") or 0,
    }
    when = stop or row.get("startDate") or engine.clock.now()
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    eid = uuid.uuid5(uuid.NAMESPACE_URL, f"{row['executionArn']}#{status}#{detail['redriveCount']}")
    return {"version": "0", "id": str(eid), "detail-type": STATUS_CHANGE, "source": "aws.states",
            "account": engine.account_id, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": engine.region,
            "resources": [row["executionArn"]], "detail": detail}


def publish_status_change(engine, row: dict | None) -> None:
    """Put the status-change event of ``row`` on the default bus (AWS sends them there)."""
    if row is None:
        return
    EventBus(engine).ingest(status_change_event(engine, row))


def run_until_idle(engine, until: datetime | None = None, max_rounds: int | None = None) -> int:
    """The engine's `run_until_idle` with the bus's timers: run what is runnable, fire what the
    bus has due, and on a virtual clock jump to whichever timer comes first. Returns the number
    of execution steps and bus firings.

    A recurring schedule always has a next fire time, so the virtual clock jumps to schedule
    fire times only up to ``until`` (and then stops there); without it only executions' timers
    and delivery retries are followed, and the loop ends when those run out."""
    bus = EventBus(engine)
    store, clock = engine.store, engine.clock
    steps = 0
    while max_rounds is None or steps < max_rounds:
        now = clock.now()
        arns = store.claim(engine.worker_id, now, engine.lease_seconds, 64)
        if arns:
            for arn in arns:
                engine.process(arn)
                steps += 1
            continue
        fired = bus.tick(now)
        if fired:
            steps += fired
            continue
        if clock.virtual:
            dues = [d for d in (store.next_due(), bus.next_due(until is not None)) if d is not None]
            if until is not None:
                dues = [d for d in dues if d <= until]
            if dues and min(dues) > now:
                clock.set(min(dues))
                continue
            if until is not None and until > now:
                clock.set(until)
                continue
        break
    return steps
