"""Redrive (AWS RedriveExecution) and fork: continue an execution from its stored history.

Both fast-forward a replay engine (`statelang.history.recorded`) over the recorded history: every
step that succeeded is reproduced from its recorded result (no handler runs again), and the run
stops where the record says the execution broke — the task whose failure ended it, the tasks that
never finished. That live state (frames, pending tasks, timers) becomes the execution's new
checkpoint. This is why only the failed Map iterations and Parallel branches run again: the others
are answered from the record.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from statelang.history.recorded import RecordedTasks, ReplayClock, compare, normalize_events, replay_engine
from statelang.interpreter.commands import TimerKind
from statelang.interpreter.step import TASK, ExecutionState
from statelang.runtime.engine import Engine
from statelang.runtime.storage import Commit, ExecutionDoesNotExist, Message, MessageKind

REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")
REDRIVE_WINDOW = timedelta(days=14)
MAX_REDRIVES = 1000


class ExecutionNotRedrivable(Exception):
    """Raised with AWS's reasons: wrong status, too old, Express, too many redrives."""


def redrive_status(row: dict, now: datetime) -> tuple[str, str | None]:
    """(redriveStatus, redriveStatusReason) as DescribeExecution reports them."""
    if row.get("type") == "EXPRESS":
        return "NOT_REDRIVABLE", "Express executions cannot be redriven."
    if row["status"] not in REDRIVABLE:
        return "NOT_REDRIVABLE", f"Execution is {row['status']}."
    stop = row.get("stopDate")
    if stop is not None and now - stop > REDRIVE_WINDOW:
        return "NOT_REDRIVABLE", "Execution stopped more than 14 days ago."
    if (row.get("redriveCount") or 0) >= MAX_REDRIVES:
        return "NOT_REDRIVABLE", "Execution has reached the maximum number of redrives."
    return "REDRIVABLE", None


def _fast_forward(engine: Engine, row: dict, events: list[dict],
                  definition: Any) -> tuple[ExecutionState, Engine, RecordedTasks]:
    """Re-run the record in a replay engine up to its last event, never past it: the record's own
    timeout and stop request are not applied, so the run stops where the execution broke."""
    fwd, tasks = replay_engine(events, None, mode="redrive", skip_messages=frozenset({"execution_timeout", "stop"}),
                               account_id=engine.account_id, region=engine.region)
    clock: ReplayClock = fwd.clock  # type: ignore[assignment]
    arn = row["executionArn"]
    started = next(e for e in events if e["type"] == "ExecutionStarted")
    role = (started.get("executionStartedEventDetails") or {}).get("roleArn", "")
    machine = fwd.compiled(definition)
    clock.run = ExecutionState(machine, arn, row["name"], row["stateMachineArn"], None, clock.now())
    run = fwd.start(definition, json.loads(row["input"]), arn=arn, name=row["name"],
                    state_machine_arn=row["stateMachineArn"], role_arn=role)
    clock.run = run
    fwd.run_until_idle(until=events[-1]["timestamp"])
    return fwd.load(arn) or run, fwd, tasks


def redrive(engine: Engine, arn: str) -> dict:
    """Continue a FAILED, TIMED_OUT or ABORTED execution from where it broke. Returns its row."""
    row = engine.store.get_execution(arn)
    if row is None:
        raise ExecutionDoesNotExist(arn)
    now = engine.clock.now()
    status, reason = redrive_status(row, now)
    if status != "REDRIVABLE":
        raise ExecutionNotRedrivable(f"Execution {arn} cannot be redriven: {reason}")
    events = normalize_events(engine.store.history(arn))
    run, fwd, tasks = _fast_forward(engine, row, events, row["definition"])
    produced = fwd.store.history(arn)
    div = compare(events[:len(produced)], produced)
    if div is not None:
        raise ExecutionNotRedrivable(f"Execution {arn} cannot be redriven: its history does not reproduce "
                                     f"({div.reason} at event {div.event_id})")
    if run.status != "RUNNING" or not run.frames:
        raise ExecutionNotRedrivable(f"Execution {arn} cannot be redriven: nothing is left to run.")
    last = events[-1]["id"]
    count = (row.get("redriveCount") or 0) + 1
    redriven = {"timestamp": now, "type": "ExecutionRedriven", "id": last + 1, "previousEventId": last,
                "executionRedrivenEventDetails": {"redriveCount": count}}
    commit = Commit(arn, [redriven])
    _reschedule(run, tasks.left_pending, events, commit, last + 2, now)
    pending_timers = [m for m in fwd.store.pending_messages(arn)
                      if m.kind in ("wait", "retry", "task_timeout", "heartbeat")]
    for frame in run.frames.values():
        if frame.id in tasks.left_pending and frame.retries:
            frame.retries = [0] * len(frame.retries)   # a redriven state starts its retries afresh
            if frame.invoke_spec:
                frame.invoke_spec = dict(frame.invoke_spec, retry_count=0)
        commit.frames[frame.id] = frame
        token = (frame.invoke_spec or {}).get("token") if frame.phase == TASK else None
        if token:
            spec = frame.invoke_spec
            commit.add_tokens.append({"token": token, "execution_arn": arn, "frame_id": frame.id,
                                      "seq": frame.seq, "activity_arn": spec["resource"] if spec["kind"] == "activity"
                                      else None, "input": json.dumps(spec["input"]), "state": spec["state"]})
    for m in pending_timers:
        commit.add_messages.append(Message(arn, m.kind, max(m.due, now), m.frame_id, m.seq, m.payload))
    commit.add_messages.append(Message(arn, MessageKind.RUN, now))
    timeout = run.machine.timeout_seconds
    if timeout:
        commit.add_messages.append(Message(arn, TimerKind.EXECUTION_TIMEOUT, now + timedelta(seconds=timeout), "0", 0))
    commit.execution = {"status": "RUNNING", "redriveCount": count, "redriveDate": now, "stopDate": None,
                        "error": None, "cause": None, "output": None}
    engine.store.apply(commit)
    engine.wake()
    return engine.store.get_execution(arn)


_RESCHEDULED = ("Scheduled", "Started")


def _reschedule(run: ExecutionState, pending: list[str], events: list[dict], commit: Commit, next_id: int,
                now: datetime) -> None:
    """A task that runs again after a redrive is scheduled (and started) again: AWS records new
    Scheduled/Started events for it after ExecutionRedriven, and its outcome follows them. The
    events repeat the recorded ones of its last attempt (an activity's Started comes again when a
    worker takes it)."""
    by_id = {e["id"]: e for e in events}
    for fid in pending:
        frame = run.frames.get(fid)
        if frame is None or frame.phase != TASK:
            continue
        chain, cur = [], by_id.get(frame.last_id)
        while cur is not None and cur["type"].endswith(_RESCHEDULED) and not cur["type"].endswith("StateStarted"):
            chain.append(cur)
            cur = by_id.get(cur["previousEventId"])
        chain.reverse()
        if chain and chain[0]["type"] == "ActivityScheduled":
            chain = chain[:1]
        previous = commit.events[0]["id"]
        for ev in chain:
            copy = {k: v for k, v in ev.items() if k not in ("id", "previousEventId", "timestamp")}
            commit.events.append({"timestamp": now, "id": next_id, "previousEventId": previous, **copy})
            previous = next_id
            next_id += 1
        if chain:
            frame.last_id = previous


def top_level_state_at(events: list[dict], definition: dict, event_id: int) -> tuple[str, Any]:
    """(state name, its input) of the top-level state running at `event_id`: the last top-level
    StateEntered at or before it (a nested state forks at the Parallel/Map that holds it)."""
    top = set(definition["States"])
    found = None
    for ev in events:
        if ev["id"] > event_id:
            break
        if ev["type"].endswith("StateEntered"):
            d = ev.get("stateEnteredEventDetails") or {}
            if d.get("name") in top:
                found = (d["name"], json.loads(d["input"]) if d.get("input") else {})
    if found is None:
        return definition["StartAt"], None
    return found


def fork(engine: Engine, arn: str, from_event: int, *, definition: str | dict | None = None,
         name: str | None = None) -> str:
    """Start a new execution at the state that was running at `from_event`, with the data it had."""
    row = engine.store.get_execution(arn)
    if row is None:
        raise ExecutionDoesNotExist(arn)
    events = normalize_events(engine.store.history(arn))
    last = events[-1]["id"] if events else 0
    if isinstance(from_event, bool) or not isinstance(from_event, int) or not 1 <= from_event <= last:
        # An event past the end (or before the first) forked silently at the last state, or at StartAt
        raise ValueError(f"execution {arn} has no event {from_event} (it has {last})")
    recorded = row["definition"] if isinstance(row["definition"], dict) else json.loads(row["definition"])
    state, data = top_level_state_at(events, recorded, from_event)
    new_def = definition if definition is not None else recorded
    if isinstance(new_def, str):
        new_def = json.loads(new_def)
    if state not in new_def["States"]:
        raise ValueError(f"state '{state}' (running at event {from_event}) is not in the new definition")
    new_def = dict(new_def, StartAt=state)
    if data is None:
        data = json.loads(row["input"])
    name = name or f"{row['name']}-fork-{from_event}-{engine.clock.now().strftime('%H%M%S%f')}"
    new_arn = row["executionArn"].rsplit(":", 1)[0] + ":" + name
    engine.start(new_def, data, arn=new_arn, name=name, state_machine_arn=row["stateMachineArn"],
                 role_arn=row.get("roleArn") or "", extra={"forkedFrom": arn, "forkedAtEvent": from_event})
    return new_arn
