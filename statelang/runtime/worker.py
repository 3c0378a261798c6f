"""The worker loop of `statelang worker`: run what is due, sleep until the next timer or a
wake-up, write a heartbeat, and ride out database faults. Functions of the engine they serve
(``engine``), kept apart from its stepping of executions."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import as_completed
from datetime import datetime
from typing import Any

from statelang.runtime.storage import StoreFault, WorkerInfo

log = logging.getLogger("statelang.engine")
MAX_BACKOFF = 5.0   # seconds a worker waits at most before trying a failing database again
HEARTBEAT_SECONDS = 2.0   # how often a serving worker says it is alive
MIN_POLL_SECONDS = 0.01   # a shorter poll (or none) turns the waiting loop into a spin that holds a core


def _beat(engine: Any, started: datetime) -> None:
    """Write this worker's heartbeat (every HEARTBEAT_SECONDS of the serve loop)."""
    now = engine.clock.now()
    engine.store.heartbeat(WorkerInfo(engine.worker_id, socket.gethostname(), os.getpid(), started, now))
    engine._last_beat = now


def serve_forever(engine: Any, poll_seconds: float = 1.0) -> None:
    """The worker loop: run what is due, sleep until the next timer or a wake-up.

    The worker announces itself with a heartbeat every HEARTBEAT_SECONDS; if it dies, others
    take its executions over after `takeover_seconds` instead of waiting out its leases."""
    check_poll(poll_seconds)
    engine._stopping.clear()
    started = engine.clock.now()
    engine._heartbeating = True
    engine._fatal = None   # a StoreFault the heartbeat thread found fatal
    # The heartbeat has a thread of its own: a worker inside a long step is alive, and must
    # not look dead to the others (who would take its executions over, again and again).
    beating = threading.Thread(target=_heartbeat_loop, args=(engine, started), daemon=True,
                               name=f"heartbeat-{engine.worker_id}")
    beating.start()
    try:
        _serve(engine, poll_seconds, started)
        if engine._fatal is not None:
            log.error("worker %s stops: %s", engine.worker_id, engine._fatal)
            raise engine._fatal
    finally:
        engine._stopping.set()
        beating.join()
        engine._heartbeating = False
        try:
            engine.store.forget_worker(engine.worker_id)
        except StoreFault:
            pass


def check_poll(poll_seconds: float) -> None:
    """A poll interval a waiting loop can sleep: at least MIN_POLL_SECONDS (0, a negative number
    or NaN would have it spin on a core), or ValueError naming the value."""
    if not poll_seconds >= MIN_POLL_SECONDS:
        raise ValueError(f"poll_seconds must be at least {MIN_POLL_SECONDS} (got {poll_seconds!r}): "
                         "a worker that polls without pausing spins on a core")


def _heartbeat_loop(engine: Any, started: datetime) -> None:
    while True:
        try:
            _beat(engine, started)
        except StoreFault as exc:
            if not exc.transient:   # the database is gone: the worker loop stops on it
                engine._fatal = exc
                engine._stopping.set()
                engine._wake.set()
                return
            log.debug("worker %s: heartbeat not written: %s", engine.worker_id, exc)
        if engine._stopping.wait(HEARTBEAT_SECONDS):
            return


def _serve(engine: Any, poll_seconds: float, started: datetime) -> None:
    backoff = 0.0
    while not engine._stopping.is_set():
        try:   # every query of the loop: a restart can fall between any two of them
            steps = engine.run_until_idle(concurrency=engine.max_workers)
            engine._wake.clear()
            due = engine.next_timer(engine.store.next_due(), recurring_alone=True)
        except StoreFault as exc:
            if not exc.transient:
                log.error("worker %s stops: %s", engine.worker_id, exc)
                raise
            # The database failed (restarting, locked, full): nothing of any execution is
            # lost, so wait and try again, longer each time up to MAX_BACKOFF seconds.
            backoff = min(MAX_BACKOFF, backoff * 2 or 0.1)
            log.warning("worker %s: database fault, retrying in %.1f s: %s", engine.worker_id, backoff, exc)
            engine._wake.wait(backoff)
            engine._wake.clear()
            continue
        backoff = 0.0
        delay = min(poll_seconds, HEARTBEAT_SECONDS)
        if due is not None:
            delay = max(0.0, min(delay, (due - engine.clock.now()).total_seconds()))
            if delay == 0.0 and steps == 0:
                # Due but not ours to claim (another live worker holds it): poll, do not spin.
                delay = min(poll_seconds, HEARTBEAT_SECONDS)
        if engine.clock.virtual and due is not None:
            continue
        engine._wake.wait(delay)


_WORKER_COUNT = itertools.count(1)   # next() on it is atomic: no two engines draw one number
_WORKER_TAG: list = [None, ""]        # [pid, this process's random tag]


def new_worker_id() -> str:
    """worker-<tag>-<n>: a random tag per process (drawn again in a forked child) and a count,
    unique without a UUID drawn per engine (statelang.run makes an engine per call)."""
    tag = _WORKER_TAG
    pid = os.getpid()
    if tag[0] != pid:
        tag[:] = [pid, uuid.uuid4().hex[:8]]
    return f"worker-{tag[1]}-{next(_WORKER_COUNT)}"


def side_by_side(engine: Any, pool: Any, arns: list[str]) -> None:
    """Step the claimed executions on `pool`'s threads, each under its own lock. Once all are
    done, the first database fault (`process` lets no other error out) reaches the caller; the
    others are logged."""
    faults = []
    for f in as_completed([pool.submit(engine.process, arn) for arn in arns]):
        if f.exception() is not None:
            faults.append(f.exception())
    for other in dict.fromkeys(str(f) for f in faults[1:]):   # the first is the caller's to log
        if other != str(faults[0]):
            log.warning("worker %s: database fault in a step: %s", engine.worker_id, other)
    if faults:
        raise faults[0]
