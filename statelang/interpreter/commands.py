"""What the interpreter asks of the engine, and what the engine answers: typed values.

The interpreter is pure: it leaves commands in ``ExecutionState.commands`` (start a timer, invoke
a task, drop a frame's timers, start a map run, the execution ended) and the engine carries them
out, then feeds each task's `TaskOutcome` back. Timer kinds are also the kinds of the messages the
store keeps, so `TimerKind` is a `StrEnum`: its members are the strings the store writes.

Inside the interpreter, a waiting frame is woken by a `Pending` result (what woke it: `Resume`),
and each state's step comes to a `StepOutcome`: `MOVED` on to the next state, `FrameEnded`,
`FrameFailed`, or None while the frame waits on something outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class TimerKind(StrEnum):
    WAIT = "wait"                            # a Wait state's end
    RETRY = "retry"                          # a retrier's interval has passed
    TASK_TIMEOUT = "task_timeout"            # a task's TimeoutSeconds
    HEARTBEAT = "heartbeat"                  # a task's HeartbeatSeconds without a heartbeat
    EXECUTION_TIMEOUT = "execution_timeout"  # the machine's TimeoutSeconds


@dataclass(frozen=True, slots=True)
class StartTimer:
    frame_id: str
    due: datetime
    kind: TimerKind
    seq: int


@dataclass(frozen=True, slots=True)
class Invoke:
    """Call a task's resource. `spec` is the invocation as the checkpoint records it (resource,
    kind, input, token, timeout, idempotency key, ...): plain JSON, so that a recovering worker
    can re-issue it."""

    frame_id: str
    seq: int
    spec: dict


@dataclass(frozen=True, slots=True)
class CancelFrame:
    """The frame is gone (aborted or ended): drop all its timers and close its tokens."""

    frame_id: str


@dataclass(frozen=True, slots=True)
class SettleFrame:
    """The frame's task attempt `seq` is settled: drop its timers up to that attempt."""

    frame_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class StartMapRun:
    """A distributed Map's run was recorded (MapRunStarted): read its items and start children."""

    frame_id: str
    seq: int
    spec: dict


@dataclass(frozen=True, slots=True)
class ExecutionEnded:
    """The execution reached a terminal status: every message and token of it closes."""


Command = StartTimer | Invoke | CancelFrame | SettleFrame | StartMapRun | ExecutionEnded

EXECUTION_ENDED = ExecutionEnded()


class OutcomeKind(StrEnum):
    SUCCEEDED = "ok"           # the task's result
    RESPONSE = "ok_whole"      # a mocked service response: already the service's whole answer
    SUBMITTED = "submitted"    # a callback or .sync task was accepted; the outcome comes later
    FAILED = "err"             # the task failed with (error, cause)
    TIMED_OUT = "timeout"      # it ran past its TimeoutSeconds


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    kind: OutcomeKind
    value: Any = None
    error: str | None = None
    cause: str | None = None

    @classmethod
    def succeeded(cls, value: Any) -> TaskOutcome:
        return cls(OutcomeKind.SUCCEEDED, value)

    @classmethod
    def failed(cls, error: str, cause: str | None) -> TaskOutcome:
        return cls(OutcomeKind.FAILED, None, error, cause)

    @classmethod
    def submitted(cls, value: Any) -> TaskOutcome:
        return cls(OutcomeKind.SUBMITTED, value)


TIMED_OUT = TaskOutcome(OutcomeKind.TIMED_OUT)


# -- inside the interpreter: what woke a frame, and what one state's step came to --------------

class Resume(StrEnum):
    """What made a waiting frame runnable again. The values are the first item of the pending
    result's checkpoint form (`Pending.to_json`), as stored checkpoints hold it."""

    TASK_SUCCEEDED = "ok"                 # value: the task's result
    TASK_RESPONSE = "ok_whole"            # value: a mocked service's whole response
    TASK_FAILED = "err"                   # error, cause
    TASK_TIMED_OUT = "timeout"            # error: States.Timeout or States.HeartbeatTimeout
    WAITED = "waited"                     # a Wait state's time has come
    RETRY = "retry"                       # a retrier's interval has passed
    CHILDREN_SUCCEEDED = "children_ok"    # value: the branches' or iterations' results
    CHILDREN_FAILED = "children_err"      # error, cause
    MAP_RUN_SUCCEEDED = "map_run_ok"      # value: the distributed Map's result
    MAP_RUN_FAILED = "map_run_err"        # error, cause


_FAILURES = frozenset({Resume.TASK_FAILED, Resume.CHILDREN_FAILED, Resume.MAP_RUN_FAILED})
_BARE = frozenset({Resume.WAITED, Resume.RETRY})


@dataclass(frozen=True, slots=True)
class Pending:
    """A frame's pending result (`Frame.pending`): what woke it, with its value or error."""

    kind: Resume
    value: Any = None
    error: str | None = None
    cause: str | None = None

    @classmethod
    def failed(cls, kind: Resume, error: str | None, cause: str | None) -> Pending:
        return cls(kind, None, error, cause)

    def to_json(self) -> list:
        """The checkpoint's form: ``[kind]`` for a timer, ``[kind, error]`` for a timeout,
        ``[kind, error, cause]`` for a failure, ``[kind, value]`` otherwise."""
        kind = self.kind
        if kind in _BARE:
            return [kind.value]
        if kind is Resume.TASK_TIMED_OUT:
            return [kind.value, self.error]
        if kind in _FAILURES:
            return [kind.value, self.error, self.cause]
        return [kind.value, self.value]

    @classmethod
    def from_json(cls, items: list | tuple) -> Pending:
        """Read `to_json`'s form back; an unknown kind is refused by name (ValueError)."""
        kind = Resume(items[0])
        if kind in _BARE:
            return cls(kind)
        if kind is Resume.TASK_TIMED_OUT:
            return cls(kind, None, items[1])
        if kind in _FAILURES:
            return cls(kind, None, items[1], items[2] if len(items) > 2 else None)
        return cls(kind, items[1] if len(items) > 1 else None)


class Moved:
    """A state's step moved its frame on to the next state (already set on the frame)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MOVED"


MOVED = Moved()


@dataclass(slots=True)
class FrameEnded:
    """The frame's last state succeeded with `output` (the branch, iteration or execution ends)."""

    output: Any


@dataclass(slots=True)
class FrameFailed:
    """A state failed with `error` and `cause`, and no retrier or catcher of it took the error."""

    error: str | None
    cause: str | None


# What one state's step comes to; None: the frame waits on something outside (a task, a timer).
StepOutcome = Moved | FrameEnded | FrameFailed | None
