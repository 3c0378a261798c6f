"""Owning an execution while it is stepped: the lease kept while its handlers run, and the lock
that keeps one engine's threads from stepping one execution twice at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from statelang.runtime.storage import StoreFault


class LeaseKeeper:
    """Renews an execution's lease while its handlers run (every third of the lease), so that a
    long handler keeps the execution its own. A renewal that finds the lease taken stops: the
    step's commit will be refused by its fence."""

    def __init__(self, engine: Any, arn: str):
        self.engine = engine
        self.arn = arn
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{arn[-12:]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        eng = self.engine
        while not self._done.wait(eng.lease_seconds / 3):
            try:
                kept = eng.store.renew(self.arn, eng.worker_id, eng.clock.now() + timedelta(seconds=eng.lease_seconds))
            except StoreFault:
                continue   # the database is away: try again; the fence decides at the commit
            eng.count("renewals")
            if not kept:
                return


class ExecutionLocks:
    """One re-entrant lock per execution, held while an engine's thread steps it. Steps of
    different executions run side by side, so their handlers and their commits' waits overlap;
    two steps of one execution never do. A lock lives only while some thread holds or awaits it.

    Lock order: a step may start (and so lock) another execution — a child, a Map run's items —
    but never one that started it: children tell their parents through messages only."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, list] = {}   # arn -> [its RLock, threads holding or awaiting it]

    @contextmanager
    def hold(self, arn: str) -> Iterator[None]:
        with self._guard:
            entry = self._held.get(arn)
            if entry is None:
                entry = self._held[arn] = [threading.RLock(), 0]
            entry[1] += 1
        lock = entry[0]
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[arn]
