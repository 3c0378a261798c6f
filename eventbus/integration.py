"""The bus inside the engine: the ``events:putEvents`` task integration, the "Step Functions
Execution Status Change" events, and a loop that runs executions and bus timers on one clock.

``install(engine)`` wires the first two; `attach(engine)` adds the bus's timers (schedules,
delivery retries) to the engine's own loop (a worker, a server, `Engine.run_until_idle`), and
`run_until_idle` here is that loop, attached, for tests and scripts on a virtual clock: an
execution that waits until noon and a cron rule firing at ten happen in their true order.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from statelang.interpreter.commands import TaskOutcome

from .bus import EventBus
from .schedules import next_due, tick
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


@dataclass(frozen=True)
class Ticker:
    """The bus's due work as one of the engine's ``tickers``: see `attach`."""

    bus: Any

    def __call__(self, now: datetime) -> int:
        return tick(self.bus, now)


def attach(engine) -> None:
    """Make the engine's own loop (`Engine.run_until_idle`, `Engine.serve_forever`, so `statelang
    worker`) fire the default bus's schedules and retry its deliveries, and wake for their next
    due time. Any number of engines on one database may be attached: each due time still fires
    once. Idempotent."""
    if any(isinstance(t, Ticker) for t in engine.tickers):
        return
    engine.tickers.append(Ticker(EventBus(engine)))
    engine.timer_sources.append(lambda: next_due(engine, schedules=False))   # delivery retries
    engine.recurring_sources.append(lambda: next_due(engine))                # and schedules


def run_until_idle(engine, until: datetime | None = None, max_rounds: int | None = None) -> int:
    """`Engine.run_until_idle` with the default bus's timers (`attach`): run what is runnable, fire
    what the bus has due, and on a virtual clock jump to whichever timer comes first. Returns the
    number of execution steps.

    A recurring schedule always has a next fire time, so the virtual clock follows schedule fire
    times on their own only up to ``until``, and then stands at ``until``; without it only
    executions' timers, delivery retries and the schedules that fall before those are followed,
    and the loop ends when those run out."""
    attach(engine)
    return engine.run_until_idle(max_rounds=max_rounds, until=until, schedules=True)
