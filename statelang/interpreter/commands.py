"""What the interpreter asks of the engine, and what the engine answers: typed values.

The interpreter is pure: it leaves commands in ``ExecutionState.commands`` (start a timer, invoke
a task, drop a frame's timers, start a map run, the execution ended) and the engine carries them
out, then feeds each task's `TaskOutcome` back. Timer kinds are also the kinds of the messages the
store keeps, so `TimerKind` is a `StrEnum`: its members are the strings the store writes.
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
