"""`SqlStore`: the `statelang.store.Store` protocol on SQLite or PostgreSQL, written once.

Every operation below is the whole of its logic; what the two databases do differently (SQL text,
connection set-up, value codecs, error classes) comes from a `Dialect` (store/dialects.py).

It behaves as `MemoryStore` does, row for row, with two differences the protocol leaves open:
execution rows always carry every AWS field (None when unset), and `claim` takes a lease, so two
workers never hold the same execution at once while a lease is valid.

Every write is one transaction: on SQLite it begins IMMEDIATE, taking the write lock up front (a
deferred one could read, then fail to upgrade its lock mid-way); on PostgreSQL it is pipelined,
`claim` and the token/activity updates lock their rows, and `claim` skips rows another worker is
locking (``FOR UPDATE SKIP LOCKED``) instead of queueing behind it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from statelang.runtime.storage import (
    Commit,
    ExecutionAlreadyExistsError,
    Lease,
    LeaseLost,
    Message,
    MessageKind,
    RecordWrite,
    StoreConflict,
    StoreFault,
    WorkerInfo,
    message_kind,
    resolve_record_writes,
)

from .dialects import Dialect, for_engine
from .jsoncolumns import tag, untagged
from .schema import EVENTS_PER_EXECUTION, event_seq, executions

if TYPE_CHECKING:
    from sqlalchemy import Engine


log = logging.getLogger("statelang.store")

# A heartbeat no worker can have: with no `stale_before`, no lease counts as its owner's last.
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class StoreError(StoreFault):
    """The database cannot be used: unreachable, locked past the busy timeout, corrupt, or from
    a newer statelang. The message names the database; nothing committed before is lost."""


class StoreGone(StoreError):
    """The SQLite file this store opened is no longer the file at its path (deleted, replaced).
    Not transient: a worker stops on it rather than backing off."""

    transient = False


def _file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


# AWS field name -> column. Any other key of an execution row lives in the `extra` JSON column.
COLUMNS = {
    "executionArn": "execution_arn", "stateMachineArn": "state_machine_arn", "name": "name",
    "status": "status", "startDate": "start_date", "stopDate": "stop_date", "input": "input",
    "output": "output", "error": "error", "cause": "cause", "redriveCount": "redrive_count",
    "roleArn": "role_arn", "definition": "definition",
}
_TIME_COLUMNS = frozenset({"start_date", "stop_date"})
_EVENT_KEYS = ("timestamp", "type", "id", "previousEventId")
_TIMER_KINDS = ("wait", "retry", "task_timeout", "heartbeat")
_TOKEN_KEYS = ("token", "execution_arn", "frame_id", "seq", "activity_arn", "input", "state")
_ID_CACHE = 100_000   # execution ids remembered (an ARN's id never changes: rows are never deleted)


# -- the statements -----------------------------------------------------------------------------
_EXECUTION_COLUMNS = [c.name for c in executions.columns if c.name not in ("lease_owner", "lease_expires", "claims")]
_EXECUTION_FIELDS = [(api, _EXECUTION_COLUMNS.index(col), col in _TIME_COLUMNS) for api, col in COLUMNS.items()]
_EXTRA_AT = _EXECUTION_COLUMNS.index("extra")
_MESSAGE_COLUMNS = "id, execution_arn, kind, due, frame_id, seq, payload"
_TOKEN_COLUMNS = ", ".join(_TOKEN_KEYS)


class _Statements:
    """Every fixed statement, in the dialect's text, built once per store."""

    def __init__(self, d: Dialect):
        q, inl = d.sql, d.in_list
        timers = ", ".join(f"'{k}'" for k in _TIMER_KINDS)
        self.record = q("SELECT body FROM records WHERE kind = ? AND arn = ?")
        self.record_locked = q(f"SELECT body FROM records WHERE kind = ? AND arn = ?{d.for_update}")
        self.records = q("SELECT body FROM records WHERE kind = ? ORDER BY id")
        self.put_record = q("INSERT INTO records (kind, arn, body, created) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (kind, arn) DO UPDATE SET body = excluded.body")
        self.delete_record = q("DELETE FROM records WHERE kind = ? AND arn = ?")
        self.execution = q(f"SELECT {', '.join(_EXECUTION_COLUMNS)} FROM executions WHERE execution_arn = ?")
        self.execution_id = q("SELECT id FROM executions WHERE execution_arn = ?")
        self.extra = q(f"SELECT extra FROM executions WHERE id = ?{d.for_update}")
        self.frames = q("SELECT frame_id, body FROM frames WHERE execution_arn = ?")
        self.history = q("SELECT timestamp, type, event_id, previous_event_id, details FROM events "
                         "WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?")
        self.history_reversed = q("SELECT timestamp, type, event_id, previous_event_id, details FROM events "
                                  "WHERE seq BETWEEN ? AND ? ORDER BY seq DESC LIMIT ?")
        self.insert_events = q("INSERT INTO events (seq, execution_id, event_id, previous_event_id, type, "
                               "timestamp, details) VALUES (?, ?, ?, ?, ?, ?, ?)")
        self.insert_new_events = q(
            "INSERT INTO events (seq, execution_id, event_id, previous_event_id, type, timestamp, details) "
            f"SELECT CAST(id AS BIGINT) * {EVENTS_PER_EXECUTION} + ?, id, ?, ?, ?, ?, ? FROM executions "
            "WHERE execution_arn = ?")
        self.delete_frames = q(f"DELETE FROM frames WHERE execution_arn = ? AND frame_id {inl}")
        self.upsert_frames = q("INSERT INTO frames (execution_arn, frame_id, body) VALUES (?, ?, ?) "
                               "ON CONFLICT (execution_arn, frame_id) DO UPDATE SET body = excluded.body")
        self.delete_messages = q(f"DELETE FROM messages WHERE id {inl}")
        self.delete_all_messages = q("DELETE FROM messages WHERE execution_arn = ?")
        self.close_tokens = q("UPDATE tokens SET closed = TRUE, queued = FALSE WHERE execution_arn = ?")
        self.cancel_timers = q(f"DELETE FROM messages WHERE execution_arn = ? AND frame_id = ? AND kind IN ({timers}) "
                               "AND (? < 0 OR seq <= ?)")
        self.close_frame_tokens = q("UPDATE tokens SET closed = TRUE, queued = FALSE "
                                    f"WHERE execution_arn = ? AND frame_id {inl}")
        self.insert_messages = q("INSERT INTO messages (execution_arn, kind, due, frame_id, seq, payload) "
                                 "VALUES (?, ?, ?, ?, ?, ?) RETURNING id")
        self.delete_tokens = q(f"DELETE FROM tokens WHERE token {inl}")
        self.insert_tokens = q(f"INSERT INTO tokens ({_TOKEN_COLUMNS}, closed, queued) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, FALSE, ?)")
        self.release = q("UPDATE executions SET lease_owner = NULL, lease_expires = NULL, claims = 0 "
                         "WHERE execution_arn = ? AND lease_owner = ?")
        self.due = q(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE execution_arn = ? AND due <= ? ORDER BY due, id")
        # A message naming no execution can never be claimed: counting it would make a virtual
        # clock spin on it forever.
        self.next_due = q("SELECT min(due) FROM messages WHERE EXISTS "
                          "(SELECT 1 FROM executions WHERE executions.execution_arn = messages.execution_arn)")
        self.any_due = q("SELECT id FROM messages WHERE due <= ? LIMIT 1")
        # Executions with a due message and a free lease, in the order of each one's earliest
        # (due, id) message, as MemoryStore lists them. Grouping by execution reads each due message
        # once (a window over every message did not scale); the id of the earliest message is
        # looked up per candidate on the (execution_arn, due) index.
        self.claim = q(
            "SELECT e.execution_arn, e.lease_owner FROM executions AS e JOIN ("
            "  SELECT execution_arn AS arn, min(due) AS due FROM messages WHERE due <= ? GROUP BY execution_arn"
            ") AS f ON f.arn = e.execution_arn "
            "WHERE (e.lease_expires IS NULL OR e.lease_expires <= ? "
            "       OR e.lease_owner IN (SELECT worker_id FROM workers WHERE heartbeat <= ?)) "
            "ORDER BY f.due, (SELECT min(m.id) FROM messages AS m WHERE m.execution_arn = f.arn AND m.due = f.due) "
            f"LIMIT ?{' FOR UPDATE OF e' if d.for_update else ''}{d.skip_locked}")
        self.lease = q(f"UPDATE executions SET lease_owner = ?, lease_expires = ?, claims = claims + 1 "
                       f"WHERE execution_arn {inl}")
        self.claims = q("SELECT claims FROM executions WHERE execution_arn = ?")
        # One named execution, if its lease is free, already ours, or its owner's heartbeat stale.
        self.claim_one = q("UPDATE executions SET lease_owner = ?, lease_expires = ?, claims = claims + 1 "
                           "WHERE execution_arn = ? AND (lease_owner = ? OR lease_expires IS NULL "
                           "OR lease_expires <= ? OR lease_owner IN (SELECT worker_id FROM workers "
                           "WHERE heartbeat <= ?))")
        # The fence of a commit and a renewal alike: the lease is extended only if still ours.
        self.renew = q("UPDATE executions SET lease_expires = ? WHERE execution_arn = ? AND lease_owner = ?")
        self.lease_of = q("SELECT lease_owner, lease_expires FROM executions WHERE execution_arn = ?")
        self.fence = f"SELECT 1 FROM executions WHERE execution_arn = ? AND lease_owner = ?{d.for_update}"  # for require
        self.leases = q("SELECT execution_arn, lease_owner, lease_expires FROM executions "
                        "WHERE lease_owner IS NOT NULL ORDER BY lease_owner, execution_arn")
        self.heartbeat = q("INSERT INTO workers (worker_id, host, pid, started, heartbeat) VALUES (?, ?, ?, ?, ?) "
                           "ON CONFLICT (worker_id) DO UPDATE SET heartbeat = excluded.heartbeat")
        self.workers = q("SELECT worker_id, host, pid, started, heartbeat FROM workers ORDER BY started")
        self.forget_worker = q("DELETE FROM workers WHERE worker_id = ?")
        self.token = q(f"SELECT id, {_TOKEN_COLUMNS}, closed FROM tokens WHERE token = ?")
        self.token_locked = q(f"SELECT id, {_TOKEN_COLUMNS}, closed FROM tokens WHERE token = ?{d.for_update}")
        self.close_token = q("UPDATE tokens SET closed = TRUE, queued = FALSE WHERE id = ?")
        self.activity = q(f"SELECT id, {_TOKEN_COLUMNS}, closed FROM tokens "
                          "WHERE activity_arn = ? AND queued AND NOT closed ORDER BY id LIMIT 1"
                          f"{d.for_update}{d.skip_locked}")
        self.dequeue = q("UPDATE tokens SET queued = FALSE WHERE id = ?")


@dataclasses.dataclass
class _Tx:
    """One write transaction: its connection, and what to do once it has committed."""

    conn: Any
    later: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    guard: BaseException | None = None   # raised when the dialect reports a failed `require`


class SqlStore:
    """A `Store` over a database; build one with `statelang.store.open_store(url)`.

    `engine` (SQLAlchemy) opens the driver connections, set up by its connect hooks, and is kept
    for Alembic and for tools; the store holds those connections itself and reuses them."""

    def __init__(self, engine: Engine, name: str, dialect: Dialect | None = None):
        self.engine = engine
        self.name = name   # the URL without its password, for error messages
        self.dialect = dialect or for_engine(engine)
        self.s = _Statements(self.dialect)
        # A round's usual writes, which may run as one statement (all seeing the database as it
        # was before any of them): events are only ever inserted, with new keys; a commit's frames
        # are removed or replaced, never both (one entry per frame id); messages are deleted by id
        # and no other message statement is among them; the lease check reads the execution's row,
        # which none of them writes.
        self.dialect.may_compose([self.s.insert_events, self.s.upsert_frames, self.s.delete_frames,
                                  self.s.delete_messages, self.s.fence])
        self._idle: list[Any] = []     # list.pop/append are atomic: no lock needed
        self._opened: list[Any] = []   # detached from SQLAlchemy's pool; closed by close()
        self._shared_lock = threading.RLock()   # only for a dialect with one shared connection
        # A single-writer database (SQLite): this process's writers queue here, not in its busy handler.
        self._write_lock = threading.RLock() if self.dialect.single_writer else nullcontext()
        self._lost = False   # a connection died or would not open: the next one opened says so
        self._ids: dict[str, int] = {}
        self._update_sql: dict[tuple[str, ...], str] = {}
        database = engine.url.database
        self._file = database if engine.dialect.name == "sqlite" and database and database != ":memory:" else None
        self._file_id = _file_id(self._file) if self._file else None

    def __repr__(self) -> str:
        return f"<SqlStore {self.name}>"

    # -- connections ---------------------------------------------------------------------------
    def _checkout(self) -> Any:
        if self.dialect.shared:
            self._shared_lock.acquire()
            if self._opened:
                return self._opened[0]
        else:
            try:
                return self._idle.pop()
            except IndexError:
                pass
        try:
            raw = self.engine.raw_connection()
            conn = raw.driver_connection
            if not self.dialect.shared:
                raw.detach()   # held here rather than pooled
            self.dialect.setup(conn)
        except self.dialect.errors as e:
            self._checkin(None)
            self._lost = True
            raise StoreError(self.dialect.describe(e, self.name)) from e
        except Exception as e:
            self._checkin(None)
            orig = getattr(e, "orig", None)   # SQLAlchemy's wrapping of the driver's error
            if isinstance(orig, self.dialect.errors):
                self._lost = True
                raise StoreError(self.dialect.describe(e, self.name)) from e
            raise
        if self._lost:   # the log that told of the loss tells of the way back too
            self._lost = False
            log.warning("%s: reconnected to the database", self.name)
        self._opened.append(conn)
        return conn

    def _checkin(self, conn: Any, failed: bool = False) -> None:
        if self.dialect.shared:
            self._shared_lock.release()
        elif conn is not None:
            if failed and self.dialect.is_broken(conn):
                self._lost = True
                self._opened.remove(conn)
                conn.close()
            else:
                self._idle.append(conn)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """One of the store's own driver connections (sqlite3 or psycopg), set up as the store
        uses them, for diagnostics and tools; it goes back to the store afterwards."""
        conn = self._checkout()
        try:
            yield conn
        finally:
            self._checkin(conn)

    def _read(self, sql: str, params: tuple | list, every: bool = True) -> Any:
        """A single-statement read: every row, or the first (None when there is none)."""
        conn = self._checkout()
        failed = True
        try:
            cursor = conn.execute(sql, params)
            rows = cursor.fetchall() if every else cursor.fetchone()
            failed = False
            return rows
        except self.dialect.errors as e:
            raise StoreError(self.dialect.describe(e, self.name)) from e
        finally:
            self._checkin(conn, failed)

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        """One write transaction: all of it commits, or none of it."""
        if self._file_id is not None and _file_id(self._file) != self._file_id:
            # Writing on would land in an unlinked file, lost at the last close: stop instead.
            raise StoreGone(f"{self.name}: the database file was deleted or replaced while in use; "
                            f"nothing more is written to it (restart against the file that should be there)")
        conn = self._checkout()
        tx = _Tx(conn)
        failed = True
        try:
            with self._write_lock, self.dialect.transaction(conn) as tx.conn:
                yield tx
            failed = False
        except self.dialect.errors as e:
            if tx.guard is not None and self.dialect.guard_failed(e):
                raise tx.guard from e
            if isinstance(e, self.dialect.integrity):
                raise StoreConflict(self.dialect.describe(e, self.name)) from e
            raise StoreError(self.dialect.describe(e, self.name)) from e
        finally:
            self._checkin(conn, failed)
        for then in tx.later:
            then()

    def close(self) -> None:
        self._idle.clear()
        for conn in self._opened:
            try:
                conn.close()
            except self.dialect.errors:
                pass
        self._opened.clear()
        self.engine.dispose()

    # -- records -------------------------------------------------------------------------------
    def put_record(self, kind: str, arn: str, record: dict) -> None:
        d = self.dialect
        with self._write() as tx:
            tx.conn.execute(self.s.put_record, (kind, arn, d.json(tag(record)), d.time(datetime.now(UTC))))

    def get_record(self, kind: str, arn: str) -> dict | None:
        r = self._read(self.s.record, (kind, arn), every=False)
        return None if r is None else untagged(r[0])

    def list_records(self, kind: str) -> list[dict]:
        return [untagged(b) for (b,) in self._read(self.s.records, (kind,))]

    def delete_record(self, kind: str, arn: str) -> None:
        with self._write() as tx:
            tx.conn.execute(self.s.delete_record, (kind, arn))

    def write_records(self, writes: list[RecordWrite]) -> bool:
        """`Store.write_records`: one transaction; each record an ``expect`` or ``merge`` needs is
        read under a row lock (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction holds the
        whole database), so of two workers expecting the same value only the first writes."""
        d = self.dialect
        with self._write() as tx:
            def read(kind: str, arn: str) -> dict | None:
                found = tx.conn.execute(self.s.record_locked, (kind, arn)).fetchall()
                return untagged(found[0][0]) if found else None

            final = resolve_record_writes(list(writes), read)
            if final is None:
                return False
            now = d.time(datetime.now(UTC))
            for w in final:
                if w.body is None:
                    tx.conn.execute(self.s.delete_record, (w.kind, w.arn))
                else:
                    tx.conn.execute(self.s.put_record, (w.kind, w.arn, d.json(tag(w.body)), now))
        return True

    # -- executions ----------------------------------------------------------------------------
    def create_execution(self, row: dict, commit: Commit) -> None:
        """The row and the first commit in one transaction. Where the driver hands the new row's
        id back only when the transaction's results come back (PostgreSQL's pipeline), the first
        events find it by the ARN inside the transaction, so the whole costs one round trip."""
        arn = row["executionArn"]
        values = creation_values(row, commit)   # so _apply(fresh=True) skips commit.execution
        names = list(values)
        sql = self.dialect.sql(f"INSERT INTO executions ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                               "RETURNING id")
        encoded = [self._encode_column(n, values[n]) for n in names]
        try:
            with self._write() as tx:
                known, new_id = self.dialect.insert_id(tx.conn, sql, encoded)
                self._apply(tx, commit, fresh=True, execution_id=known)
        except (StoreError, StoreConflict) as e:
            if self.dialect.duplicate_execution(e.__cause__):   # the name is taken, or a concurrent start won
                raise ExecutionAlreadyExistsError(arn) from e
            raise
        self._remember(arn, new_id())

    def _encode_column(self, name: str, value: Any) -> Any:
        if name in _TIME_COLUMNS:
            return self.dialect.time(value)
        if name == "extra":
            return self.dialect.json(value)
        return value

    def _execution_row(self, r: tuple) -> dict:
        read_time = self.dialect.read_time
        out = {api: read_time(r[i]) if is_time else r[i] for api, i, is_time in _EXECUTION_FIELDS}
        extra = untagged(r[_EXTRA_AT])
        if extra:
            out.update(extra)
        return out

    def get_execution(self, arn: str) -> dict | None:
        r = self._read(self.s.execution, (arn,), every=False)
        return None if r is None else self._execution_row(r)

    def list_executions(self, state_machine_arn: str | None = None, status: str | None = None) -> list[dict]:
        where, params = [], []
        if state_machine_arn is not None:
            where.append("state_machine_arn = ?")
            params.append(state_machine_arn)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {', '.join(_EXECUTION_COLUMNS)} FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._execution_row(r) for r in self._read(self.dialect.sql(sql + " ORDER BY id"), params)]

    def load_frames(self, arn: str) -> dict[str, dict]:
        read = self.dialect.read_json
        return {fid: read(body) for fid, body in self._read(self.s.frames, (arn,))}

    def history(self, arn: str, after: int | None = None, limit: int | None = None,
                reverse: bool = False) -> list[dict]:
        """The execution's events in id order (newest first when `reverse`), those after the
        event id `after` only (before it when `reverse`), at most `limit` of them. A page costs
        its own rows: the range is a slice of the events' key."""
        xid = self._ids.get(arn)
        if xid is None:
            found = self._read(self.s.execution_id, (arn,), every=False)
            if found is None:
                return []
            xid = self._remember(arn, found[0])
        low = event_seq(xid, 0)
        high = low + EVENTS_PER_EXECUTION - 1
        if after is not None:
            if reverse:
                high = low + max(-1, min(after - 1, EVENTS_PER_EXECUTION - 1))
            else:
                low += max(0, min(after + 1, EVENTS_PER_EXECUTION))
        sql = self.s.history_reversed if reverse else self.s.history
        rows = self._read(sql, (low, high, self.dialect.no_limit if limit is None else limit))
        d = self.dialect
        out = []
        last_raw = last = None
        for ts, type_, eid, prev, details in rows:
            if ts != last_raw:   # the events of one step share their timestamp
                last_raw, last = ts, d.read_time(ts)
            ev = {"timestamp": last, "type": type_, "id": eid, "previousEventId": prev}
            if details is not None:
                more = d.read_json(details)
                if more:
                    ev.update(more)
            out.append(ev)
        return out

    def _remember(self, arn: str, xid: int) -> int:
        if len(self._ids) >= _ID_CACHE:
            self._ids.clear()
        self._ids[arn] = xid
        return xid

    def _execution_id(self, tx: _Tx, arn: str, doing: str) -> int:
        xid = self._ids.get(arn)
        if xid is None:
            found = tx.conn.execute(self.s.execution_id, (arn,)).fetchone()
            if found is None:
                raise StoreError(f"{self.name}: no execution {arn}{doing}")
            xid = found[0]
            tx.later.append(lambda: self._remember(arn, xid))
        return xid

    def apply(self, commit: Commit) -> None:
        with self._write() as tx:
            self._apply(tx, commit)

    def _apply(self, tx: _Tx, c: Commit, fresh: bool = False, execution_id: int | None = None) -> None:
        """The steps run in `MemoryStore.apply`'s order: a message added by the commit that ends
        the execution survives its ``close_all``, as it does in memory. A `fresh` execution has its
        row written by this transaction (its id given when known) and no messages, timers or
        tokens yet."""
        conn, s, d = tx.conn, self.s, self.dialect
        arn = c.execution_arn
        if c.fence is not None:
            # First, inside the transaction: is the lease still the committing worker's? (Its
            # expiry is left as it is: renewals extend it.) If not, nothing here is applied.
            # The row stays locked to the commit, so no claim takes the lease before it ends; on
            # PostgreSQL the check rides in the pipeline with the rest (see Dialect.require).
            tx.guard = LeaseLost(arn, c.fence)
            d.require(conn, s.fence, (arn, c.fence), tx.guard)
        if c.events and fresh and execution_id is None:   # the id is the new row's: found by its ARN
            rows = [(eid, eid, *rest, arn) for _, _, eid, *rest in self._event_rows(arn, 0, c.events)]
            d.executemany(conn, s.insert_new_events, rows)
        elif c.events:
            xid = execution_id if fresh else self._execution_id(tx, arn, " to add history events to")
            d.executemany(conn, s.insert_events, self._event_rows(arn, xid, c.events))
        if c.execution and not fresh:
            self._update_execution(tx, arn, c.execution)
        if c.frames:
            gone = [] if fresh else [fid for fid, f in c.frames.items() if f is None]
            if gone:
                conn.execute(s.delete_frames, (arn, d.in_values(gone)))
            kept = [(arn, fid, d.json(f if isinstance(f, dict) else f.to_dict()))
                    for fid, f in c.frames.items() if f is not None]
            if kept:
                d.executemany(conn, s.upsert_frames, kept)
        if c.consumed:
            conn.execute(s.delete_messages, (d.in_values(c.consumed),))
        if not fresh:
            if c.close_all:
                conn.execute(s.delete_all_messages, (arn,))
                conn.execute(s.close_tokens, (arn,))
            if c.cancel_frames:
                d.executemany(conn, s.cancel_timers, [(arn, fid, seq, seq) for fid, seq in c.cancel_frames])
            if c.close_frames_tokens:
                conn.execute(s.close_frame_tokens, (arn, d.in_values(c.close_frames_tokens)))
        if c.add_messages:
            self._add_messages(tx, c.add_messages)
        if c.add_tokens:
            conn.execute(s.delete_tokens, (d.in_values([t["token"] for t in c.add_tokens]),))  # re-added: afresh
            d.executemany(conn, s.insert_tokens, [(*(t.get(k) for k in _TOKEN_KEYS), bool(t.get("activity_arn")))
                                                  for t in c.add_tokens])
        if c.release:
            conn.execute(s.release, (arn, c.release))

    def _event_rows(self, arn: str, xid: int, events: list[dict]) -> list[tuple]:
        """The rows of `events`: this runs per event, so event_seq's bound check and the
        details split are written inline."""
        d = self.dialect
        rows = []
        last_t = last = None
        base = event_seq(xid, 0)
        for e in events:
            t = e["timestamp"]
            if t is not last_t:   # the events of one step share their timestamp
                last_t, last = t, d.time(t)
            eid = e["id"]
            if not 0 <= eid < EVENTS_PER_EXECUTION:
                try:
                    event_seq(xid, eid)
                except ValueError as exc:
                    raise StoreError(f"{self.name}: execution {arn}: {exc}") from exc
            last_key = next(reversed(e))   # as emitted: the four event keys, then its details'
            if len(e) == 5 and last_key not in _EVENT_KEYS and "previousEventId" in e:
                details = {last_key: e[last_key]}
            else:
                details = {k: v for k, v in e.items() if k not in _EVENT_KEYS}
            rows.append((base + eid, xid, eid, e.get("previousEventId"), e["type"], last,
                         d.json(details) if details else None))
        return rows

    def _update_execution(self, tx: _Tx, arn: str, changes: dict) -> None:
        values, extra = _split(changes)
        xid = self._execution_id(tx, arn, "")
        if extra:
            old = tx.conn.execute(self.s.extra, (xid,)).fetchone()
            before = untagged(old[0]) if old is not None else None
            values["extra"] = tag({**(before or {}), **extra})
        if not values:
            return
        names = tuple(values)
        sql = self._update_sql.get(names)
        if sql is None:
            sql = self._update_sql[names] = self.dialect.sql(
                f"UPDATE executions SET {', '.join(n + ' = ?' for n in names)} WHERE id = ?")
        tx.conn.execute(sql, [*(self._encode_column(n, values[n]) for n in names), xid])

    # -- messages and leases -------------------------------------------------------------------
    def _add_messages(self, tx: _Tx, batch: list[Message]) -> None:
        d = self.dialect
        rows = [(m.execution_arn, m.kind, d.time(m.due), m.frame_id or "", m.seq or 0, d.json(m.payload))
                for m in batch]
        ids = d.insert_ids(tx.conn, self.s.insert_messages, rows)

        def number() -> None:
            for m, mid in zip(batch, ids(), strict=True):
                m.id = mid
        tx.later.append(number)

    def add_message(self, message: Message) -> None:
        with self._write() as tx:
            self._add_messages(tx, [message])

    def due_messages(self, arn: str, now: datetime) -> list[Message]:
        d = self.dialect
        read_time, read_json = d.read_time, d.read_json
        return [Message(a, message_kind(kind), read_time(due), fid, seq, read_json(p), mid)
                for mid, a, kind, due, fid, seq, p in self._read(self.s.due, (arn, d.time(now)))]

    def next_due(self) -> datetime | None:
        r = self._read(self.s.next_due, (), every=False)
        return None if r is None or r[0] is None else self.dialect.read_time(r[0])

    def claim(self, worker: str, now: datetime, lease_seconds: float, limit: int,
              stale_before: datetime | None = None, taken_over: list[str] | None = None) -> list[str]:
        """Lease up to `limit` executions with a due message, in the order of each one's earliest
        (due, id) message, as `MemoryStore` lists them. The select and the lease update share one
        transaction; on PostgreSQL rows another claimer has locked are skipped, and a row leased
        meanwhile fails the re-checked lease condition."""
        d = self.dialect
        at = d.time(now)
        if self._read(self.s.any_due, (at,), every=False) is None:
            return []   # nothing due: no write transaction (and no write lock) at all
        with self._write() as tx:
            stale = d.time(stale_before) if stale_before is not None else d.time(_NEVER)
            rows = tx.conn.execute(self.s.claim, (at, at, stale, limit)).fetchall()
            arns = [r[0] for r in rows]
            if taken_over is not None:   # leases of another worker, expired or of a dead one
                taken_over.extend(arn for arn, owner in rows if owner is not None and owner != worker)
            if arns:
                until = d.time(now + timedelta(seconds=lease_seconds))
                tx.conn.execute(self.s.lease, (worker, until, d.in_values(arns)))
        return arns

    def claim_one(self, arn: str, worker: str, now: datetime, lease_seconds: float,
                  stale_before: datetime | None = None) -> bool:
        d = self.dialect
        stale = d.time(stale_before) if stale_before is not None else d.time(_NEVER)
        with self._write() as tx:
            done = tx.conn.execute(self.s.claim_one, (worker, d.time(now + timedelta(seconds=lease_seconds)),
                                                      arn, worker, d.time(now), stale))
        return done.rowcount == 1   # read once committed (PostgreSQL's pipeline)

    def release(self, arn: str, worker: str) -> None:
        with self._write() as tx:
            tx.conn.execute(self.s.release, (arn, worker))

    def renew(self, arn: str, worker: str, until: datetime) -> bool:
        with self._write() as tx:
            done = tx.conn.execute(self.s.renew, (self.dialect.time(until), arn, worker))
        return done.rowcount == 1   # read once committed: inside PostgreSQL's pipeline it is not known yet

    def claim_count(self, arn: str) -> int:
        r = self._read(self.s.claims, (arn,), every=False)
        return 0 if r is None else r[0]

    def lease_of(self, arn: str) -> tuple[str, datetime] | None:
        r = self._read(self.s.lease_of, (arn,), every=False)
        if r is None or r[0] is None:
            return None
        return r[0], self.dialect.read_time(r[1])

    def list_leases(self) -> list[Lease]:
        d = self.dialect
        return [Lease(arn, owner, d.read_time(until)) for arn, owner, until in self._read(self.s.leases, ())]

    # -- workers ---------------------------------------------------------------------------------
    def heartbeat(self, info: WorkerInfo) -> None:
        d = self.dialect
        with self._write() as tx:
            tx.conn.execute(self.s.heartbeat, (info.worker_id, info.host, info.pid, d.time(info.started),
                                               d.time(info.heartbeat)))

    def list_workers(self) -> list[WorkerInfo]:
        d = self.dialect
        return [WorkerInfo(w, h, pid, d.read_time(s), d.read_time(b))
                for w, h, pid, s, b in self._read(self.s.workers, ())]

    def forget_worker(self, worker_id: str) -> None:
        with self._write() as tx:
            tx.conn.execute(self.s.forget_worker, (worker_id,))

    # -- tokens and activity tasks -------------------------------------------------------------
    def get_token(self, token: str) -> dict | None:
        r = self._read(self.s.token, (token,), every=False)
        return None if r is None else _token_row(r)

    def resolve_token(self, token: str, message: Message) -> str:
        with self._write() as tx:
            r = tx.conn.execute(self.s.token_locked, (token,)).fetchone()
            if r is None:
                return "unknown"
            row = _token_row(r)
            if row["closed"]:
                return "closed"
            if message.kind == "token":
                tx.conn.execute(self.s.close_token, (r[0],))
            message.execution_arn, message.frame_id, message.seq = row["execution_arn"], row["frame_id"], row["seq"]
            self._add_messages(tx, [message])
            return "ok"

    def claim_activity_task(self, activity_arn: str, worker_name: str, now: datetime) -> dict | None:
        with self._write() as tx:
            r = tx.conn.execute(self.s.activity, (activity_arn,)).fetchone()
            if r is None:
                return None
            row = _token_row(r)
            tx.conn.execute(self.s.dequeue, (r[0],))
            self._add_messages(tx, [Message(row["execution_arn"], MessageKind.ACTIVITY_STARTED, now, row["frame_id"],
                                            row["seq"], {"workerName": worker_name})])
            return row


# -- rows <-> dicts ------------------------------------------------------------------------------

def _split(row: dict) -> tuple[dict, dict]:
    values, extra = {}, {}
    for k, v in row.items():
        col = COLUMNS.get(k)
        if col is None:
            extra[k] = v
        else:
            values[col] = v
    return values, extra


def creation_values(row: dict, commit: Commit) -> dict:
    """The columns of a new execution's row: the row's fields, with the first commit's execution
    changes folded in (one insert instead of an insert and an update), extras tagged as JSON."""
    values, extra = _split(row)
    values.setdefault("redrive_count", 0)
    if commit.execution:
        more, more_extra = _split(commit.execution)
        values.update(more)
        extra.update(more_extra)
    values["extra"] = tag(extra) if extra else None
    return values


def _token_row(r: tuple) -> dict:
    """A token row from a ``SELECT id, <token columns>, closed`` read."""
    return {**dict(zip(_TOKEN_KEYS, r[1:-1], strict=True)), "closed": bool(r[-1])}
