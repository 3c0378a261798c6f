"""A recorded history as the engine's inputs, and the comparison of a re-run against it.

Replay and redrive both run an in-memory engine whose clock reads the time of the recorded event
it is about to produce (`ReplayClock`) and whose tasks are answered by the record
(`RecordedTasks`); `compare` finds the first event where a re-run differs from the record.

A task's recorded outcome is found by following the recorded history from the event the replay
has just produced for it (its Started/Scheduled event) along ``previousEventId`` links, which
stay within one thread of control (the top level, a branch, an iteration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from statelang.interpreter.commands import TIMED_OUT, TaskOutcome
from statelang.interpreter.step import ExecutionState
from statelang.runtime.clock import Clock
from statelang.runtime.engine import Engine
from statelang.runtime.storage import Message, MessageKind

__all__ = ["Divergence", "RecordedTasks", "ReplayClock", "compare", "normalize_events", "replay_engine"]

_OUTCOME = {"TaskSucceeded", "TaskFailed", "TaskTimedOut", "LambdaFunctionSucceeded",
            "LambdaFunctionFailed", "LambdaFunctionTimedOut", "LambdaFunctionScheduleFailed",
            "LambdaFunctionStartFailed", "ActivitySucceeded", "ActivityFailed", "ActivityTimedOut",
            "TaskStartFailed", "TaskSubmitFailed"}
_FOLLOW = {"TaskStarted", "TaskSubmitted", "ActivityStarted", "LambdaFunctionStarted"}


@dataclass
class Divergence:
    """The first event where the replay differs from the record."""

    event_id: int
    reason: str
    expected: dict | None = None
    actual: dict | None = None
    state: str | None = None

    def __str__(self) -> str:
        where = f" in state '{self.state}'" if self.state else ""
        exp = _brief(self.expected)
        act = _brief(self.actual)
        return f"event {self.event_id}{where}: {self.reason}\n  recorded: {exp}\n  replayed: {act}"


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def normalize_events(events: list[dict]) -> list[dict]:
    return [dict(ev, timestamp=_ts(ev["timestamp"])) for ev in sorted(events, key=lambda e: e["id"])]


# -- the replay engine ------------------------------------------------------------------------
class ReplayClock(Clock):
    """Reads the time of the recorded event the run is about to produce."""

    virtual = True

    def __init__(self, events: list[dict]):
        self.times = {e["id"]: e["timestamp"] for e in events}
        self.floor = events[0]["timestamp"] if events else datetime.fromtimestamp(0, UTC)
        self.run: ExecutionState | None = None

    def now(self) -> datetime:
        t = self.times.get(self.run.next_id) if self.run is not None else None
        return max(t, self.floor) if t is not None else self.floor

    def set(self, when: datetime) -> None:
        if when > self.floor:
            self.floor = when

    def sleep_until(self, due, wake=None) -> None:
        self.set(due)


class RecordedTasks:
    """Task outcomes answered from a recorded history: the `TaskSource` of a replay engine.

    mode "replay": every task must have a recorded outcome (else it is noted in `missing`);
    mode "redrive": tasks whose recorded outcome ended the execution (or that have none) are left
    pending for live handlers (`left_pending`), and the fast-forward stops there.
    With `live` set, the engine's own handlers answer instead (a changed handler checked against
    the record).
    """

    def __init__(self, events: list[dict], mode: str = "replay", live: bool = False):
        self.after: dict[int, list[dict]] = {}
        for e in events:
            self.after.setdefault(e["previousEventId"], []).append(e)
        self.live = live
        self.mode = mode
        self.left_pending: list[str] = []
        self.missing: list[tuple[str, int]] = []   # (state, event id) of tasks the record never answered

    def _outcome_chain(self, start_id: int) -> tuple[dict | None, dict | None]:
        """(TaskSubmitted event or None, outcome event or None) following start_id's thread."""
        submitted = None
        cur = start_id
        for _ in range(10000):
            nxt = [e for e in self.after.get(cur, ()) if e["type"] in _OUTCOME or e["type"] in _FOLLOW]
            if not nxt:
                return submitted, None
            ev = nxt[0]
            if ev["type"] in _OUTCOME:
                return submitted, ev
            if ev["type"] == "TaskSubmitted":
                submitted = ev
            cur = ev["id"]
        return submitted, None

    def _terminal(self, outcome: dict) -> bool:
        """A failure after which its thread did nothing more (no retry, no catch)."""
        if outcome["type"].endswith("Succeeded"):
            return False
        return not any(not e["type"].startswith("Execution") and not e["type"].startswith("MapIteration")
                       and not e["type"].endswith(("StateFailed", "StateAborted"))
                       for e in self.after.get(outcome["id"], ()))

    def invoke(self, engine: Engine, run: ExecutionState, fid: str, seq: int, spec: dict):
        if self.live:
            return engine.invoke_handler(run, fid, seq, spec)
        frame = run.frames.get(fid)
        if frame is None or frame.seq != seq:
            return None   # its iteration or branch was aborted in the same step
        submitted, outcome = self._outcome_chain(frame.last_id)
        if self.mode == "redrive" and (outcome is None or self._terminal(outcome)):
            self.left_pending.append(fid)
            return None
        if outcome is None and submitted is None:
            # Left pending: a sibling's failure may abort it in the record. If the record really
            # has no result for it, the comparison ends early and this names the reason.
            self.missing.append((spec["state"], frame.last_id))
            return None
        if spec["kind"] == "activity":
            # A worker took it and answered: the messages its GetActivityTask and answer sent.
            started = next((e for e in self.after.get(frame.last_id, ()) if e["type"] == "ActivityStarted"), None)
            if started is not None:
                worker = started.get("activityStartedEventDetails", {}).get("workerName", "")
                engine.store.add_message(Message(run.arn, MessageKind.ACTIVITY_STARTED, started["timestamp"], fid, seq,
                                                 {"workerName": worker}))
            if outcome is not None:
                engine.store.add_message(Message(run.arn, MessageKind.TOKEN, outcome["timestamp"], fid, seq,
                                                 _token_payload(outcome)))
            return None
        if spec.get("wait_for_token") or spec.get("sync") or submitted is not None:
            # the task was submitted (callback, .sync child, ...): its outcome arrives later
            if outcome is not None and not outcome["type"].endswith("TimedOut"):
                engine.store.add_message(Message(run.arn, MessageKind.TOKEN, outcome["timestamp"], fid, seq,
                                                 _token_payload(outcome)))
            if submitted is not None:
                d = submitted.get("taskSubmittedEventDetails", {})
                return TaskOutcome.submitted(json.loads(d["output"]) if d.get("output") else None)
            if outcome is not None and outcome["type"].endswith("Failed"):
                p = _token_payload(outcome)
                return TaskOutcome.failed(p["error"], p.get("cause"))
            return None
        if outcome["type"].endswith("TimedOut"):
            return TIMED_OUT
        p = _token_payload(outcome)
        if p["ok"]:
            value = p["output"]
            if spec["kind"] == "lambda_invoke" and isinstance(value, dict) and "Payload" in value:
                value = value["Payload"]
            return TaskOutcome.succeeded(value)
        return TaskOutcome.failed(p["error"], p.get("cause"))


def replay_engine(events: list[dict], handlers: dict | None = None, mode: str = "replay",
                  skip_messages: frozenset[str] = frozenset(), **kw) -> tuple[Engine, RecordedTasks]:
    """An in-memory engine on a clock that reads the recorded times, answered by the record."""
    tasks = RecordedTasks(events, mode, live=handlers is not None and mode == "replay")
    engine = Engine(db="memory", handlers=handlers, clock=ReplayClock(events), max_workers=1, tasks=tasks,
                    skip_messages=skip_messages, **kw)
    return engine, tasks


def _token_payload(outcome: dict) -> dict:
    d = next((v for k, v in outcome.items() if k.endswith("EventDetails")), {}) or {}
    if outcome["type"].endswith("Succeeded"):
        return {"ok": True, "output": json.loads(d["output"]) if d.get("output") is not None else None}
    return {"ok": False, "error": d.get("error"), "cause": d.get("cause")}


# -- comparing --------------------------------------------------------------------------------
def _details(ev: dict) -> dict:
    return next((v for k, v in ev.items() if k.endswith("EventDetails")), {}) or {}


def _brief(ev: dict | None) -> str:
    if ev is None:
        return "(none)"
    d = _details(ev)
    extra = ", ".join(f"{k}={str(v)[:80]}" for k, v in d.items() if k in ("name", "index", "input", "output",
                                                                          "error", "cause"))
    return f"#{ev['id']} {ev['type']}" + (f" ({extra})" if extra else "")


_IGNORED = {"inputDetails", "outputDetails", "roleArn", "stateMachineArn", "assignedVariablesDetails"}


def _state_of(events: list[dict], ev: dict | None) -> str | None:
    """The state an event belongs to: its own name, or that of the StateEntered it follows."""
    if ev is None:
        return None
    by_id = {e["id"]: e for e in events}
    cur: dict | None = ev
    for _ in range(10000):
        if cur is None:
            return None
        d = cur.get("stateEnteredEventDetails")
        if d is not None:
            return d.get("name")
        cur = by_id.get(cur.get("previousEventId"))
    return None


def compare(recorded: list[dict], produced: list[dict]) -> Divergence | None:
    """The first differing event, ignoring timestamps and ARNs that name the replay itself."""
    div = _compare(recorded, produced)
    if div is not None and div.state is None:
        div.state = _state_of(recorded, div.expected) or _state_of(produced, div.actual)
    return div


def _compare(recorded: list[dict], produced: list[dict]) -> Divergence | None:
    for i in range(max(len(recorded), len(produced))):
        exp = recorded[i] if i < len(recorded) else None
        act = produced[i] if i < len(produced) else None
        if exp is None:
            return Divergence(act["id"], "the replay produced an event the recorded history does not have",
                              None, act, _details(act).get("name"))
        if act is None:
            return Divergence(exp["id"], "the replay ended before the recorded history",
                              exp, None, _details(exp).get("name"))
        de, da = _details(exp), _details(act)
        if exp["type"] != act["type"]:
            reason = "a different state was taken" if (exp["type"].endswith("StateEntered")
                                                      or act["type"].endswith("StateEntered")) \
                else f"a different event ({exp['type']} recorded, {act['type']} replayed)"
            return Divergence(exp["id"], reason, exp, act, de.get("name") or da.get("name"))
        if de.get("name") != da.get("name"):
            return Divergence(exp["id"], "a different state was taken", exp, act, de.get("name"))
        if exp.get("previousEventId") != act.get("previousEventId"):
            return Divergence(exp["id"], "the event follows a different event", exp, act, de.get("name"))
        for key in sorted(set(de) | set(da)):
            if key in _IGNORED:
                continue
            ve, va = de.get(key), da.get(key)
            if key in ("input", "output", "parameters") and isinstance(ve, str) and isinstance(va, str):
                try:
                    ve, va = json.loads(ve), json.loads(va)
                except ValueError:
                    pass
            if ve != va:
                return Divergence(exp["id"], f"different data ({key})", exp, act, de.get("name"))
    return None
