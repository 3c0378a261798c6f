"""Frames and runs: the state of an execution, as the interpreter folds it and a checkpoint stores it.

An execution is a set of *frames*: the top level, each running Parallel branch and each running
Map iteration is one. A frame sits on one state of one states table and is in one phase:

    enter     about to enter its state (runnable)
    task      a task was scheduled; waits for its result, a token, or a timeout
    timer     a Wait state waits for its timer
    retry     a failed state waits for its retry delay
    children  a Parallel/Map waits for its branches or iterations
    resume    a result arrived; runnable, `pending` says which
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from datetime import datetime
from typing import Any

from statelang.interpreter.commands import Command, Pending
from statelang.language.compiler import CompiledMachine

ENTER, TASK, TIMER, RETRY, CHILDREN, RESUME, DONE = "enter", "task", "timer", "retry", "children", "resume", "done"


class Frame:
    """One thread of control. Everything here is JSON-serialisable (see `to_dict`)."""

    __slots__ = ("id", "parent", "table", "state", "input", "phase", "entered_id", "entered_time",
                 "last_id", "retries", "data", "index", "variables", "pending", "seq")

    def __init__(self, id: str, parent: str | None, table: str, state: str, input: Any,
                 last_id: int, index: int | None = None):
        self.id = id
        self.parent = parent
        self.table = table
        self.state = state
        self.input = input
        self.phase = ENTER
        self.entered_id = 0
        self.entered_time: datetime | None = None
        self.last_id = last_id
        self.retries: list[int] = []
        self.data: dict[str, Any] = {}
        self.index = index
        self.variables: dict[str, Any] | None = None
        self.pending: Pending | None = None
        self.seq = 0  # bumped whenever the frame starts waiting: stale results/timers are ignored

    # What the runtime reads and writes of a frame's data, named once here rather than as string
    # keys spread over the engine, the map runner and redrive. The rest of `data` is the
    # interpreter's own scratch for the state the frame is in.
    @property
    def invoke_spec(self) -> dict | None:
        """The task invocation the frame has out: a recovery calls it again."""
        return self.data.get("invoke")

    @invoke_spec.setter
    def invoke_spec(self, spec: dict | None) -> None:
        if spec is None:
            self.data.pop("invoke", None)
        else:
            self.data["invoke"] = spec

    @property
    def map_run_arn(self) -> str | None:
        """The distributed Map run the frame waits on."""
        return self.data.get("map_run")

    @property
    def map_run_spec(self) -> dict | None:
        """What that map run was started with (its items' source, its processor, ...)."""
        return self.data.get("spec")

    @property
    def heartbeat_seconds(self) -> float | None:
        """The task's HeartbeatSeconds, when it has one."""
        return self.data.get("heartbeat")

    @property
    def last_beat(self) -> datetime | None:
        """When the task last sent a heartbeat."""
        beat = self.data.get("last_beat")
        return datetime.fromisoformat(beat) if beat else None

    @last_beat.setter
    def last_beat(self, at: datetime) -> None:
        self.data["last_beat"] = at.isoformat()

    def to_dict(self) -> dict:
        d = {s: getattr(self, s) for s in self.__slots__}
        d["entered_time"] = self.entered_time.isoformat() if self.entered_time else None
        if self.pending is not None:
            d["pending"] = self.pending.to_json()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Frame:
        f = cls.__new__(cls)
        for s in cls.__slots__:
            setattr(f, s, d.get(s))
        if f.entered_time:
            f.entered_time = datetime.fromisoformat(f.entered_time)
        if f.pending is not None:
            f.pending = Pending.from_json(f.pending)
        f.retries = list(f.retries or [])
        f.data = dict(f.data or {})
        return f


MAX_HISTORY_EVENTS = 25_000   # AWS's hard quota for a Standard execution's history


class HistoryLimitReached(Exception):  # noqa: N818 - a signal, not an error a caller sees
    """Raised by `ExecutionState.emit` in place of the event that would take the history to AWS's
    quota: the interpreter then fails the execution with that event id. Not a `StatesError`, so
    no Catch of the machine can take it."""


class ExecutionState:
    """The live state of one execution: what a checkpoint stores, plus unflushed output."""

    def __init__(self, machine: CompiledMachine, arn: str, name: str, state_machine_arn: str,
                 input: Any, start: datetime, role_arn: str = "", region: str = "us-east-1",
                 account: str = "123456789012", redrive_count: int = 0):
        self.machine = machine
        self.arn = arn
        self.name = name
        self.state_machine_arn = state_machine_arn
        self.input = input
        self.start = start
        self.role_arn = role_arn
        self.region = region
        self.account = account
        self.redrive_count = redrive_count
        self.next_id = 1
        self.status = "RUNNING"
        self.output: Any = None
        self.error: str | None = None
        self.cause: str | None = None
        self.stop_time: datetime | None = None
        self.frames: dict[str, Frame] = {}
        self.runnable: deque[str] = deque()
        self.events: list[dict] = []      # produced since the last flush
        self.dirty: set[str] = set()      # frames changed since the last flush
        self.removed: set[str] = set()    # frames gone since the last flush
        self.commands: list[Command] = []   # left for the engine
        self.keep_history: list[dict] | None = None
        self.released = False                # this pass's lease already given back by a commit
        self.lease_holder: str | None = None # the worker whose lease fences this step's commits
        self.hold_lease = False              # keep the lease through this drive (more follows)
        self.kick = None                     # the safety-net message of in-flight invocations
        self.dumped: dict[str, tuple] = {}  # frame id -> (value, its JSON text): not persisted
        self.started_with: dict = {}      # stateMachineVersionArn / stateMachineAliasArn, if any
        self.parent: dict | None = None   # {executionArn, frame, seq, mode} of a nested execution

    # -- bookkeeping -----------------------------------------------------------------------
    def emit(self, frame: Frame | None, type_: str, details: dict | None, now: datetime,
             key: str | None = None) -> int:
        eid = self.next_id
        if eid >= MAX_HISTORY_EVENTS and not type_.startswith("Execution"):
            raise HistoryLimitReached(type_)
        self.next_id = eid + 1
        ev = {"timestamp": now, "type": type_, "id": eid,
              "previousEventId": frame.last_id if frame is not None else eid - 1}
        if details is not None:
            ev[key or _KEYS.get(type_) or _details_key(type_)] = details
        self.events.append(ev)
        if frame is not None:
            frame.last_id = eid
        return eid

    def touch(self, frame: Frame) -> None:
        self.dirty.add(frame.id)

    def drop(self, frame: Frame) -> None:
        self.frames.pop(frame.id, None)
        self.dumped.pop(frame.id, None)
        self.dirty.discard(frame.id)
        self.removed.add(frame.id)


_KEYS: dict[str, str] = {}


def _details_key(type_: str) -> str:
    k = _KEYS.get(type_)
    if k is None:
        from statelang.interpreter.events import details_key
        k = _KEYS[type_] = details_key(type_)
    return k


def _join(parent: str, child: str) -> str:
    return f"{parent}/{child}" if parent else child


def _map_path(run: ExecutionState, frame: Frame) -> list[int] | None:
    idx = []
    f: Frame | None = frame
    while f is not None and f.parent is not None:
        idx.append(f.index)
        f = run.frames.get(f.parent)
    return idx[::-1] or None


def _seed(run: ExecutionState, frame: Frame) -> str:
    return f"{run.arn}#{frame.id}#{frame.last_id}"


def _rng(run: ExecutionState, frame: Frame) -> random.Random:
    """A random source fixed by (execution, event): a re-run draws the same numbers."""
    return random.Random(_seed(run, frame))


def _token(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
