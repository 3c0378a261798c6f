"""Keeping a claimed execution's lease while its handlers run."""

from __future__ import annotations

import threading
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
            eng.metrics["renewals"] += 1
            if not kept:
                return
