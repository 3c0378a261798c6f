"""The Store protocol the engine writes through, and the in-memory store `statelang.run` uses.

Everything an execution does reaches the store as one `Commit`: the new history events, the
execution's changed columns, the changed frames (the checkpoint), the messages it starts waiting
for (timers: due later; nothing else) and the messages it consumed. A store applies a commit in one
transaction, so a crash leaves either all of a step or none of it.

External inputs — a task token answered, a heartbeat, a stop request, an activity worker picking a
task — are *messages* too, due now: whoever holds the execution's lease consumes them in the
commit that records their effect, so each is applied exactly once.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from statelang.interpreter.commands import TimerKind
from statelang.language.errors import StatelangError


class MessageKind(StrEnum):
    """What a message tells its execution, beside the timers (`TimerKind`). Stored as its text."""
    RUN = "run"                             # step it: a start, a crash's safety net, a redrive
    STOP = "stop"                           # StopExecution, or a parent that ended
    TOKEN = "token"                         # a task token answered (success or failure)
    BEAT = "beat"                           # SendTaskHeartbeat
    ACTIVITY_STARTED = "activity_started"   # a worker took an activity task
    CHILD_DONE = "child_done"               # a .sync child execution ended
    MAP_CHILD_DONE = "map_child_done"       # a distributed Map's child execution ended


_KINDS: dict[str, MessageKind | TimerKind] = {k.value: k for k in (*MessageKind, *TimerKind)}


def message_kind(text: str) -> MessageKind | TimerKind:
    """A stored kind's text as its member; an unknown one is refused, naming it."""
    try:
        return _KINDS[text]
    except KeyError:
        raise ValueError(f"unknown message kind {text!r}") from None


@dataclass
class Message:
    execution_arn: str
    kind: MessageKind | TimerKind
    due: datetime
    frame_id: str = ""
    seq: int = 0
    payload: Any = None
    id: int = 0


@dataclass
class Commit:
    execution_arn: str
    events: list[dict] = field(default_factory=list)
    execution: dict[str, Any] = field(default_factory=dict)   # changed execution columns
    frames: dict[str, Any] = field(default_factory=dict)      # frame id -> Frame (None: removed)
    add_messages: list[Message] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)         # message ids applied by this commit
    cancel_frames: list[tuple[str, int]] = field(default_factory=list)  # (frame id, seq): drop its timers with seq <= it (seq -1: all)
    add_tokens: list[dict] = field(default_factory=list)      # {token, execution_arn, frame_id, seq, activity_arn?, input?}
    close_frames_tokens: list[str] = field(default_factory=list)  # frame ids whose tokens close
    close_all: bool = False  # the execution ended: drop every message and token of it
    release: str | None = None  # worker whose lease on the execution this commit gives up
    # The worker that must still hold the execution's lease for this commit to apply (None: an
    # execution being created, or run eagerly by the thread that created it). The store checks
    # it inside the commit's transaction and raises LeaseLost, applying nothing, when another
    # worker took the execution over: a stale writer's step is refused, never interleaved.
    fence: str | None = None
    # For the engine, after the commit (the store ignores them): the task invocations it recorded
    # and the distributed Map runs it started.
    invokes: list = field(default_factory=list)
    map_runs: list = field(default_factory=list)


@dataclass(frozen=True)
class RecordWrite:
    """One record's part of `Store.write_records`.

    ``body`` replaces the record (None deletes it); with ``merge`` its fields are written over the
    stored record's instead. ``expect``, when given, names fields the stored record must hold for
    the batch to be written at all (a missing field holds None; a missing record holds nothing, so
    ``expect={}`` asks only that it exists). This is how two workers sharing a database agree on
    who fires a schedule's due time: each writes the next fire time expecting the one it read, and
    only the first write finds it."""

    kind: str
    arn: str
    body: dict | None
    expect: dict | None = None
    merge: bool = False


def resolve_record_writes(writes: list[RecordWrite], read) -> list[RecordWrite] | None:
    """The plain writes (whole bodies or deletions) that ``writes`` come to, given ``read(kind, arn)``
    -> the stored record (read under the store's write lock); None when an ``expect`` fails.
    The one copy of `write_records`' rule, shared by every store."""
    out = []
    for w in writes:
        current = read(w.kind, w.arn) if (w.expect is not None or w.merge) else None
        if w.expect is not None and (current is None
                                     or any(current.get(k) != v for k, v in w.expect.items())):
            return None
        body = w.body
        if w.merge and body is not None and current is not None:
            body = {**current, **body}
        out.append(RecordWrite(w.kind, w.arn, body))
    return out


class ExecutionAlreadyExistsError(StatelangError):
    pass


class StoreFault(StatelangError):
    """The database itself failed (unreachable, locked, full, gone): not the fault of any one
    execution. The engine lets it reach the worker's loop, which backs off and tries again while
    the fault is `transient`, and stops otherwise (a database file deleted under it)."""

    transient = True


class StoreConflict(StatelangError):
    """The database refused one write for its own constraints (a duplicate key): a fault of the
    execution being written, not of the database, so not a `StoreFault`. The engine contains it
    as it contains any fault of one execution (it fails that execution, visibly), instead of
    backing off and retrying the same write forever."""


class LeaseLost(StatelangError):
    """A commit fenced by a worker's lease found the lease held by another worker (or by none):
    nothing of the commit was applied. The step that made it is discarded; its new owner redoes
    it from the last checkpoint."""

    def __init__(self, arn: str, worker: str):
        super().__init__(f"worker {worker} no longer holds the lease on execution {arn}: its step was discarded")
        self.arn = arn
        self.worker = worker


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker as `statelang workers` lists it: its id, where it runs, its last heartbeat."""

    worker_id: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime


@dataclass(frozen=True)
class Lease:
    """An execution leased by a worker until `expires`, as `statelang workers` and the console
    show it: which worker holds which execution right now."""

    execution_arn: str
    owner: str
    expires: datetime


class StoreUnavailableError(StatelangError, ValueError):
    """A database URL that no installed store answers."""


class ExecutionDoesNotExist(StatelangError, KeyError):  # noqa: N818 - AWS's own name for it
    """No execution of that ARN in this engine's database (export, replay, redrive, fork). A
    KeyError too, as these raised before; its text is the message, not KeyError's quoted key."""

    def __init__(self, arn: str):
        super().__init__(arn)
        self.arn = arn

    def __str__(self) -> str:
        return f"Execution Does Not Exist: '{self.arn}' (not in this engine's database)"


class Store(Protocol):
    """What the engine needs from persistence. Rows are plain dicts with AWS's field names
    (executionArn, stateMachineArn, name, status, startDate, stopDate, input, output, error, cause,
    redriveCount, ...) plus ``definition`` (the text the execution runs). The next event id is not
    kept on the row: it follows the last event of the history."""

    # state machines, versions, aliases, activities, tags: plain records keyed by ARN
    def put_record(self, kind: str, arn: str, record: dict) -> None: ...
    def get_record(self, kind: str, arn: str) -> dict | None: ...
    def list_records(self, kind: str) -> list[dict]: ...
    def delete_record(self, kind: str, arn: str) -> None: ...
    def write_records(self, writes: list[RecordWrite]) -> bool: ...   # all or none; see RecordWrite

    # executions
    def create_execution(self, row: dict, commit: Commit) -> None: ...      # raises ExecutionAlreadyExistsError
    def get_execution(self, arn: str) -> dict | None: ...
    def list_executions(self, state_machine_arn: str | None = None, status: str | None = None) -> list[dict]: ...
    def load_frames(self, arn: str) -> dict[str, dict]: ...
    def history(self, arn: str, after: int | None = None, limit: int | None = None,
                reverse: bool = False) -> list[dict]: ...
    # ^ events in id order (newest first when `reverse`), after the event id `after` (before it
    #   when `reverse`), at most `limit`: keyset paging, a page costs its own events only
    def apply(self, commit: Commit) -> None: ...

    # messages and leases
    def add_message(self, message: Message) -> None: ...
    def due_messages(self, arn: str, now: datetime) -> list[Message]: ...
    def next_due(self) -> datetime | None: ...
    def claim(self, worker: str, now: datetime, lease_seconds: float, limit: int,
              stale_before: datetime | None = None,
              taken_over: list[str] | None = None) -> list[str]: ...   # taken_over: gets the takeovers
    def claim_one(self, arn: str, worker: str, now: datetime, lease_seconds: float,
                  stale_before: datetime | None = None) -> bool: ...   # that execution, if free or ours
    def renew(self, arn: str, worker: str, until: datetime) -> bool: ...   # False: the lease is lost
    def release(self, arn: str, worker: str) -> None: ...

    # workers: a heartbeat per live worker; a lease of one whose heartbeat is older than
    # `stale_before` (given to claim) is free at once, without waiting for it to expire.
    def heartbeat(self, info: WorkerInfo) -> None: ...
    def list_workers(self) -> list[WorkerInfo]: ...
    def forget_worker(self, worker_id: str) -> None: ...
    def lease_of(self, arn: str) -> tuple[str, datetime] | None: ...   # (owner, expires) if leased
    def claim_count(self, arn: str) -> int: ...   # claims since the execution last completed a step
    def list_leases(self) -> list[Lease]: ...   # every lease held now, by owner then execution

    # tokens and activity tasks
    def get_token(self, token: str) -> dict | None: ...
    def resolve_token(self, token: str, message: Message) -> str: ...     # "ok" | "unknown" | "closed"
    def claim_activity_task(self, activity_arn: str, worker_name: str, now: datetime) -> dict | None: ...


def history_pages(store: Store, arn: str, after: int = 0, limit: int | None = None,
                  page: int = 1000) -> Iterator[list[dict]]:
    """The events after event id `after`, at most `limit` in all, as pages of at most `page`:
    one keyset read each, so a long history is read without holding it whole."""
    left = limit
    while left is None or left > 0:
        n = page if left is None else min(page, left)
        events = store.history(arn, after=after, limit=n)
        if events:
            yield events
            after = events[-1]["id"]
        if len(events) < n:
            return
        if left is not None:
            left -= len(events)


class MemoryStore:
    """Dicts and a heap. Single process; the fastest path for `statelang.run` and unit tests."""

    def __init__(self):
        self.records: dict[str, dict[str, dict]] = {}
        self.executions: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.frames: dict[str, dict[str, Any]] = {}
        self._heap: list[tuple[datetime, int, Message]] = []
        self._ids = itertools.count(1)
        self._live: dict[int, Message] = {}
        self._by_arn: dict[str, dict[int, Message]] = {}   # the same messages, by execution
        self.tokens: dict[str, dict] = {}
        self.activity_queue: dict[str, list[str]] = {}
        self.leases: dict[str, tuple[str, datetime]] = {}
        self.claims: dict[str, int] = {}
        self.workers: dict[str, WorkerInfo] = {}
        self.lock = threading.RLock()

    # records
    def put_record(self, kind, arn, record):
        self.records.setdefault(kind, {})[arn] = record

    def get_record(self, kind, arn):
        return self.records.get(kind, {}).get(arn)

    def list_records(self, kind):
        return list(self.records.get(kind, {}).values())

    def delete_record(self, kind, arn):
        self.records.get(kind, {}).pop(arn, None)

    def write_records(self, writes):
        with self.lock:
            final = resolve_record_writes(writes, self.get_record)
            if final is None:
                return False
            for w in final:
                if w.body is None:
                    self.delete_record(w.kind, w.arn)
                else:
                    self.put_record(w.kind, w.arn, w.body)
            return True

    # executions
    def create_execution(self, row, commit):
        with self.lock:
            if row["executionArn"] in self.executions:
                raise ExecutionAlreadyExistsError(row["executionArn"])
            self.executions[row["executionArn"]] = dict(row)
            self.events[row["executionArn"]] = []
            self.frames[row["executionArn"]] = {}
            self.apply(commit)

    def get_execution(self, arn):
        return self.executions.get(arn)

    def list_executions(self, state_machine_arn=None, status=None):
        return [e for e in self.executions.values()
                if (state_machine_arn is None or e["stateMachineArn"] == state_machine_arn)
                and (status is None or e["status"] == status)]

    def load_frames(self, arn):
        return {k: v.to_dict() for k, v in self.frames.get(arn, {}).items()}

    def history(self, arn, after=None, limit=None, reverse=False):
        events = self.events.get(arn, [])
        if after is None and limit is None and not reverse:
            return events
        if after is None:
            lo, hi = 0, len(events)
        elif reverse:
            lo, hi = 0, bisect.bisect_left(events, after, key=_event_id)
        else:
            lo, hi = bisect.bisect_right(events, after, key=_event_id), len(events)
        if reverse:
            return events[max(lo, hi - limit) if limit is not None else lo:hi][::-1]
        return events[lo:hi if limit is None else min(hi, lo + limit)]

    def apply(self, commit: Commit) -> None:
        with self.lock:
            arn = commit.execution_arn
            if commit.fence is not None:
                held = self.leases.get(arn)
                if held is None or held[0] != commit.fence:
                    raise LeaseLost(arn, commit.fence)
            if commit.events:
                self.events[arn].extend(commit.events)
            if commit.execution:
                self.executions[arn].update(commit.execution)
            frames = self.frames[arn]
            for fid, f in commit.frames.items():
                if f is None:
                    frames.pop(fid, None)
                else:
                    frames[fid] = f
            for mid in commit.consumed:
                self._forget(mid)
            if commit.close_all:
                for mid in list(self._by_arn.get(arn) or ()):
                    self._forget(mid)
                for row in self.tokens.values():
                    if row["execution_arn"] == arn:
                        row["closed"] = True
            for fid, seq in commit.cancel_frames:
                for mid, m in list((self._by_arn.get(arn) or {}).items()):
                    if m.frame_id == fid and (seq < 0 or m.seq <= seq) \
                            and m.kind in ("wait", "retry", "task_timeout", "heartbeat"):
                        self._forget(mid)
            for fid in commit.close_frames_tokens:
                for row in self.tokens.values():
                    if row["execution_arn"] == arn and row["frame_id"] == fid:
                        row["closed"] = True
            for m in commit.add_messages:
                self.add_message(m)
            if commit.release and self.leases.get(arn, ("",))[0] == commit.release:
                del self.leases[arn]
                self.claims.pop(arn, None)
            for t in commit.add_tokens:
                self.tokens[t["token"]] = dict(t, closed=False)
                if t.get("activity_arn"):
                    self.activity_queue.setdefault(t["activity_arn"], []).append(t["token"])

    # messages
    def add_message(self, message: Message) -> None:
        with self.lock:
            message.id = next(self._ids)
            self._live[message.id] = message
            self._by_arn.setdefault(message.execution_arn, {})[message.id] = message
            heapq.heappush(self._heap, (message.due, message.id, message))

    def due_messages(self, arn, now):
        with self.lock:
            mine = self._by_arn.get(arn) or {}
            return sorted((m for m in mine.values() if m.due <= now), key=lambda m: (m.due, m.id))

    def pending_messages(self, arn: str) -> list[Message]:
        """Every message of the execution not yet consumed, due or not."""
        with self.lock:
            return sorted((self._by_arn.get(arn) or {}).values(), key=lambda m: (m.due, m.id))

    def _forget(self, mid: int) -> None:
        m = self._live.pop(mid, None)
        if m is not None:
            mine = self._by_arn.get(m.execution_arn)
            if mine is not None:
                mine.pop(mid, None)
                if not mine:
                    del self._by_arn[m.execution_arn]

    def _prune(self):
        while self._heap and self._heap[0][1] not in self._live:
            heapq.heappop(self._heap)

    def next_due(self):
        with self.lock:
            self._prune()
            return self._heap[0][0] if self._heap else None

    def claim(self, worker, now, lease_seconds, limit, stale_before=None, taken_over=None):
        with self.lock:
            self._prune()
            out: list[str] = []
            seen = set()
            dead = {w.worker_id for w in self.workers.values()
                    if stale_before is not None and w.heartbeat <= stale_before}
            # The earliest entries usually hold `limit` executions: sort all only when they do not.
            head = heapq.nsmallest(min(len(self._heap), limit * 8), self._heap)
            if len({m.execution_arn for _, mid, m in head if mid in self._live}) < limit:
                head = sorted(self._heap)
            until = now + timedelta(seconds=lease_seconds)
            for due, mid, m in head:
                if due > now or len(out) >= limit:
                    break
                arn = m.execution_arn
                if mid not in self._live or arn in seen:
                    continue
                seen.add(arn)
                held = self.leases.get(arn)
                if held is not None and held[1] > now and held[0] not in dead:
                    continue
                if held is not None and held[0] != worker and taken_over is not None:
                    taken_over.append(arn)
                self.leases[arn] = (worker, until)
                self.claims[arn] = self.claims.get(arn, 0) + 1
                out.append(arn)
            return out

    def claim_one(self, arn, worker, now, lease_seconds, stale_before=None):
        with self.lock:
            held = self.leases.get(arn)
            dead = held is not None and stale_before is not None and held[0] in self.workers \
                and self.workers[held[0]].heartbeat <= stale_before
            if held is not None and held[0] != worker and held[1] > now and not dead:
                return False
            self.leases[arn] = (worker, now + timedelta(seconds=lease_seconds))
            self.claims[arn] = self.claims.get(arn, 0) + 1
            return True

    def renew(self, arn, worker, until):
        with self.lock:
            held = self.leases.get(arn)
            if held is None or held[0] != worker:
                return False
            self.leases[arn] = (worker, until)
            return True

    def release(self, arn, worker):
        with self.lock:
            held = self.leases.get(arn)
            if held is not None and held[0] == worker:
                del self.leases[arn]
                self.claims.pop(arn, None)

    def claim_count(self, arn):
        return self.claims.get(arn, 0)

    def lease_of(self, arn):
        return self.leases.get(arn)

    def list_leases(self):
        with self.lock:
            held = list(self.leases.items())
        return sorted((Lease(arn, owner, until) for arn, (owner, until) in held),
                      key=lambda lease: (lease.owner, lease.execution_arn))

    # workers
    def heartbeat(self, info):
        with self.lock:
            self.workers[info.worker_id] = info

    def list_workers(self):
        return sorted(self.workers.values(), key=lambda w: w.started)

    def forget_worker(self, worker_id):
        with self.lock:
            self.workers.pop(worker_id, None)

    # tokens
    def get_token(self, token):
        return self.tokens.get(token)

    def resolve_token(self, token, message):
        with self.lock:
            row = self.tokens.get(token)
            if row is None:
                return "unknown"
            if row["closed"]:
                return "closed"
            if message.kind == "token":
                row["closed"] = True
            message.execution_arn, message.frame_id, message.seq = row["execution_arn"], row["frame_id"], row["seq"]
            self.add_message(message)
            return "ok"

    def claim_activity_task(self, activity_arn, worker_name, now):
        with self.lock:
            queue = self.activity_queue.get(activity_arn) or []
            while queue:
                token = queue.pop(0)
                row = self.tokens.get(token)
                if row and not row["closed"]:
                    self.add_message(Message(row["execution_arn"], MessageKind.ACTIVITY_STARTED, now, row["frame_id"],
                                             row["seq"], {"workerName": worker_name}))
                    return row
            return None


def _event_id(event: dict) -> int:
    return event["id"]


DEFAULT_DB = "sqlite:///.statelang/statelang.db"
MEMORY_URLS = ("memory", ":memory:", "memory://")
STORE_ENTRY_POINTS = "statelang.stores"


def open_store(db: str | Store | None) -> Store:
    """The store for `db`: a Store as given, the memory store, or the SQL store its URL names.

    SQL stores are found by the URL's scheme among the ``statelang.stores`` entry points (this
    package declares ``sqlite`` and ``postgresql``), so the runtime depends on the protocol alone
    and the store package depends on the runtime, never the other way round."""
    if db is None:
        db = DEFAULT_DB
    if not isinstance(db, str):
        if not all(callable(getattr(db, name, None)) for name in ("create_execution", "apply", "history")):
            raise TypeError(f"db must be a database URL ('memory', 'sqlite:///file.db', 'postgresql://...') "
                            f"or a Store, not {db!r}")
        return db
    if db in MEMORY_URLS:
        return MemoryStore()
    scheme = db.split(":", 1)[0].split("+", 1)[0]
    opener = _store_openers().get(scheme)
    if opener is None:
        known = ", ".join(sorted(_store_openers())) or "none installed"
        raise StoreUnavailableError(
            f"no store for database URL {db.split('://')[0]}://...: known schemes are memory, {known}")
    return opener(db)


_OPENERS: dict[str, Any] = {}


def _store_openers() -> dict[str, Any]:
    if not _OPENERS:
        from importlib.metadata import entry_points
        for ep in entry_points(group=STORE_ENTRY_POINTS):
            _OPENERS.setdefault(ep.name, _LazyOpener(ep))
    return _OPENERS


class _LazyOpener:
    """An entry point loaded on its first use: SQLAlchemy is imported only by a SQL store."""

    def __init__(self, entry_point: Any):
        self.entry_point = entry_point

    def __call__(self, url: str) -> Store:
        return self.entry_point.load()(url)
