"""The one clock every wait, timeout, heartbeat and retry delay goes through.

The interpreter never reads the time itself: the engine passes ``now`` in. `VirtualClock` lets a
test or the CLI run a seven-day workflow in milliseconds: when nothing is runnable, the engine
jumps it to the next due timer instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock(ABC):
    virtual = False

    @abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    @abstractmethod
    def sleep_until(self, due: datetime, wake: threading.Event | None = None) -> None:
        """Return at `due` (or when `wake` is set); a virtual clock jumps there instead."""

    def elapsed(self) -> float:
        """A stopwatch of the worker's own real time, in seconds, on every kind of clock.

        Never an execution's time: it bounds how long the engine batches commits, how long a
        caller waits, and how long a handler actually ran (a handler runs in real time even when
        the execution's time is virtual)."""
        return time.monotonic()


class RealClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, due: datetime, wake: threading.Event | None = None) -> None:
        delay = (due - self.now()).total_seconds()
        if delay <= 0:
            return
        if wake is not None:
            wake.wait(delay)
        else:
            time.sleep(delay)


class VirtualClock(Clock):
    """Time that moves only when told to: `advance`, or the engine jumping to the next timer."""

    virtual = True

    def __init__(self, start: datetime | None = None):
        start = start or datetime.now(UTC)
        # Millisecond precision, as AWS timestamps have.
        self._now = start.replace(microsecond=(start.microsecond // 1000) * 1000)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            if when > self._now:
                self._now = when

    def sleep_until(self, due: datetime, wake: threading.Event | None = None) -> None:
        self.set(due)


def make_clock(clock: str | Clock | None) -> Clock:
    if clock == "virtual":   # the names first: they are what most callers pass
        return VirtualClock()
    if clock in (None, "real", "wall"):
        return RealClock()
    if isinstance(clock, Clock):
        return clock
    raise ValueError(f"clock must be 'real', 'virtual' or a Clock, not {clock!r}")
