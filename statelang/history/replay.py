"""Replay: re-run an execution from its stored history and report where it diverges.

The interpreter is deterministic once task outcomes and times are fixed, so replay is a fold over
the history: run the definition (the recorded one or a new one) on the recorded input, answer
every task with the outcome recorded for it instead of calling a handler, read every time from
the recorded event being reproduced, and compare the produced events with the recorded ones.

How a record answers the run (its times, its task outcomes) and how produced events are compared
with it is `statelang.history.recorded`, which redrive builds on too; a record that goes on with
ExecutionRedriven is redriven where it was, so this module sits above `redrive`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from statelang.history.recorded import Divergence, ReplayClock, compare, normalize_events, replay_engine
from statelang.history.redrive import redrive
from statelang.interpreter.step import ExecutionState
from statelang.language import jsontext
from statelang.runtime.engine import Engine
from statelang.runtime.storage import Message, MessageKind

FORMAT = "statelang.history"
VERSION = 1


class NoRecordedResult(Exception):
    def __init__(self, state: str, event_id: int):
        super().__init__(f"the task of state '{state}' (event {event_id}) has no recorded result")
        self.state = state
        self.event_id = event_id


@dataclass
class ReplayResult:
    ok: bool
    divergence: Divergence | None
    events: list[dict] = field(default_factory=list)
    status: str | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None

    def __bool__(self) -> bool:
        return self.ok


# -- history documents ------------------------------------------------------------------------
def export_document(row: dict, events: list[dict]) -> dict:
    """The portable form of one execution: definition, input, execution row and events."""
    execution = {k: row.get(k) for k in ("executionArn", "stateMachineArn", "name", "status", "startDate",
                                         "stopDate", "output", "error", "cause", "redriveCount")}
    return {"format": FORMAT, "version": VERSION, "execution": execution,
            "definition": row.get("definition"), "input": json.loads(row["input"]) if row.get("input") else {},
            "events": events}


def dumps_document(doc: dict) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return o.astimezone(UTC).isoformat().replace("+00:00", "Z")
        raise TypeError(type(o).__name__)
    return json.dumps(doc, indent=1, default=default, ensure_ascii=False)


def load_document(source: str | bytes | dict | list) -> dict:
    """An exported document, a bare list of events, or GetExecutionHistory's {"events": [...]}."""
    if isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except ValueError as exc:
            raise ValueError(f"a history must be JSON text, an exported document or a list of events: "
                             f"{exc}") from None
    if isinstance(source, list):
        source = {"events": source}
    if not isinstance(source, dict) or "events" not in source:
        raise ValueError("a history must be an exported document or a list of events")
    if source.get("format") not in (None, FORMAT):
        raise ValueError(f"unknown history format {source.get('format')!r}")
    if source.get("version", VERSION) > VERSION:
        raise ValueError(f"history format version {source['version']} is newer than this statelang "
                         f"understands ({VERSION})")
    doc = dict(source)
    doc["events"] = normalize_events(source["events"])
    if "input" not in doc:
        started = next((e for e in doc["events"] if e["type"] == "ExecutionStarted"), None)
        details = (started or {}).get("executionStartedEventDetails", {})
        doc["input"] = json.loads(details["input"]) if details.get("input") else {}
    return doc


# -- entry points -----------------------------------------------------------------------------
def replay(history: Any, definition: str | dict | None = None, handlers: dict | None = None,
           *, account_id: str = "123456789012", region: str = "us-east-1") -> ReplayResult:
    """Re-run a recorded execution; ``result.ok`` or ``result.divergence``.

    `history`: an exported document (see `export_document`), GetExecutionHistory's response, or a
    list of events (then `definition` is required). `definition`: run this one instead of the
    recorded one. `handlers`: call these instead of feeding recorded results (to check a changed
    handler against the record).
    """
    doc = load_document(history)
    definition = definition if definition is not None else doc.get("definition")
    if definition is None:
        raise ValueError("replay needs the definition: the history document holds none")
    events = doc["events"]
    execution = doc.get("execution") or {}
    arn = execution.get("executionArn") or f"arn:aws:states:{region}:{account_id}:execution:replay:replay"
    sm_arn = execution.get("stateMachineArn") or arn.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
    started = next((e for e in events if e["type"] == "ExecutionStarted"), None)
    role = ((started or {}).get("executionStartedEventDetails") or {}).get("roleArn", "")
    engine, tasks = replay_engine(events, handlers, account_id=account_id, region=region)
    _schedule_external(engine, events, arn)
    clock: ReplayClock = engine.clock  # type: ignore[assignment]
    try:
        run = _start(engine, clock, definition, doc["input"], arn, execution.get("name") or arn.rsplit(":", 1)[-1],
                     sm_arn, role)
        engine.run_until_idle()
        _redrive_as_recorded(engine, clock, events, arn)
    except NoRecordedResult as exc:
        produced = engine.store.history(arn)
        div = compare(events[:len(produced)], produced) or Divergence(
            exc.event_id, "a task with no recorded result", None, produced[-1] if produced else None, exc.state)
        return ReplayResult(False, div, produced)
    produced = engine.store.history(arn)
    div = compare(events, produced)
    closed = bool(events) and events[-1]["type"] in ("ExecutionSucceeded", "ExecutionFailed",
                                                      "ExecutionTimedOut", "ExecutionAborted")
    # A task without a recorded result: abandoned if the record closed anyway (a sibling's failure
    # ended its state), else the record stops short of what the replay needs.
    if tasks.missing and ((div is not None and div.reason.startswith("the replay ended"))
                           or (div is None and not closed)):
        state, event_id = tasks.missing[0]
        div = Divergence(event_id, "a task with no recorded result", None,
                         next((e for e in produced if e["id"] == event_id), None), state)
        return ReplayResult(False, div, produced)
    row = engine.store.get_execution(run.arn)
    output = jsontext.loads(row["output"]) if row.get("output") is not None else None
    return ReplayResult(div is None, div, produced, row["status"], output, row.get("error"), row.get("cause"))


def _redrive_as_recorded(engine: Engine, clock: ReplayClock, events: list[dict], arn: str) -> None:
    """Where the record goes on with ExecutionRedriven, redrive the replayed execution there too
    and run on: the re-run tasks are answered by the record after the redrive."""
    produced = engine.store.history(arn)
    while len(produced) < len(events) and events[len(produced)]["type"] == "ExecutionRedriven":
        clock.run = engine.load(arn)
        redrive(engine, arn)
        clock.run = engine.load(arn)
        engine.run_until_idle()
        produced = engine.store.history(arn)


def _start(engine: Engine, clock: ReplayClock, definition, input, arn, name, sm_arn, role) -> ExecutionState:
    machine = engine.compiled(definition)
    probe = ExecutionState(machine, arn, name, sm_arn, input, clock.now(), role)
    clock.run = probe  # next_id 1: ExecutionStarted's time
    run = engine.start(definition, input, arn=arn, name=name, state_machine_arn=sm_arn, role_arn=role)
    clock.run = run
    return run


def _schedule_external(engine: Engine, events: list[dict], arn: str) -> None:
    """Inputs that came from outside the execution: a stop request."""
    for e in events:
        if e["type"] == "ExecutionAborted":
            d = e.get("executionAbortedEventDetails") or {}
            engine.store.add_message(Message(arn, MessageKind.STOP, e["timestamp"], payload={
                "error": d.get("error"), "cause": d.get("cause")}))
