"""`SqliteStore`: `SqlStore` on a SQLite file, with the statements of every execution step sent to
the sqlite3 driver directly.

Measured on the 5-state benchmark machine (bench b6), SQLAlchemy Core spent ~1.2 ms of an
execution's ~1.5 ms in statement compilation, events and pool checkouts around SQLite work that
itself takes ~0.1 ms. So the methods an execution calls on every start, step and poll (records,
executions, commits, messages, leases, frames, history) run here as plain SQL over a small set of
driver connections; everything else (listing, tokens, activities) stays on `SqlStore`'s Core
statements. Both write the same bytes: values are converted by the SQLAlchemy column types' own
bind and result processors, so a row written by one path reads back identically through the other.

Transactions are as in `SqlStore`: a write begins IMMEDIATE, takes the write lock up front and
commits or rolls back as a whole; a single-statement read runs in SQLite's implicit transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, Table

from statelang.language.jsontext import loads
from statelang.runtime.storage import Commit, ExecutionAlreadyExistsError, Message

from .schema import (
    EVENTS_PER_EXECUTION,
    UTCDateTime,
    event_range,
    event_seq,
    events,
    executions,
    frames,
    messages,
    records,
    tokens,
)
from .sql import (
    _EVENT_KEYS,
    _TIMER_KINDS,
    _TOKEN_KEYS,
    COLUMNS,
    SqlStore,
    StoreError,
    _split,
    creation_values,
    describe,
    json_dumps,
    tag,
    untag,
)

_IN_CHUNK = 500   # ids per IN (...) list, well under SQLite's bound on host parameters


def _identity(value: Any) -> Any:
    return value


def _codecs(engine: Engine, table: Table) -> tuple[dict[str, Callable], dict[str, Callable]]:
    """Per column: what SQLAlchemy does to a value on its way in and on its way out."""
    d = engine.dialect
    enc, dec = {}, {}
    for c in table.columns:
        impl = c.type.dialect_impl(d)
        enc[c.name] = impl.bind_processor(d) or _identity
        if isinstance(impl, JSON):
            dec[c.name] = _read_json
        elif isinstance(c.type, UTCDateTime):
            dec[c.name] = _time_reader(impl.result_processor(d, None))
        else:
            dec[c.name] = impl.result_processor(d, None) or _identity
    return enc, dec


def _time_reader(slow: Callable) -> Callable:
    """What `UTCDateTime` reads from SQLite ("2024-03-01 12:00:00.123456", naive UTC), by
    datetime.fromisoformat (~8x faster than SQLAlchemy's regex); anything else by SQLAlchemy."""
    def read(text: str | None) -> datetime | None:
        if text is None:
            return None
        try:
            value = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            return slow(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else slow(text)
    return read


def _read_json(text: str | None) -> Any:
    """What SQLAlchemy's JSON column hands back (json.loads), by `jsontext.loads`."""
    return None if text is None else loads(text)


def _untag_text(text: str, load: Callable) -> Any:
    """A tagged JSON column's value; the walk that undoes the tags is skipped when the text holds
    none (records and execution extras seldom do, and the walk costs more than the parse)."""
    value = load(text)
    return untag(value) if '"$datetime"' in text or '"$literal"' in text else value


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(values: list) -> Iterator[list]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i:i + _IN_CHUNK]


_EXECUTION_COLUMNS = [c.name for c in executions.columns]
_EXTRA_AT = _EXECUTION_COLUMNS.index("extra")
_SELECT_EXECUTION = f"SELECT {', '.join(_EXECUTION_COLUMNS)} FROM executions WHERE execution_arn = ?"
_MESSAGE_COLUMNS = "id, execution_arn, kind, due, frame_id, seq, payload"
_CLAIM = (
    "SELECT e.execution_arn FROM executions AS e JOIN ("
    "  SELECT execution_arn AS arn, min(due) AS due, min(id) AS mid FROM messages WHERE due <= ?"
    "  GROUP BY execution_arn) AS f ON f.arn = e.execution_arn "
    "WHERE e.lease_expires IS NULL OR e.lease_expires <= ? ORDER BY f.due, f.mid LIMIT ?")
_NEXT_DUE = ("SELECT min(due) FROM messages WHERE EXISTS "
             "(SELECT 1 FROM executions WHERE executions.execution_arn = messages.execution_arn)")


class SqliteStore(SqlStore):
    """A `Store` on a SQLite file; build one with `store.open_store("sqlite:///path")`."""

    def __init__(self, engine: Engine, name: str):
        super().__init__(engine, name)
        self._idle: list[sqlite3.Connection] = []   # list.pop/append are atomic: no lock needed
        self._opened: list[sqlite3.Connection] = []   # detached from the pool, closed by close()
        codecs = {t.name: _codecs(engine, t) for t in (records, executions, events, frames, messages, tokens)}
        self._enc = {name: enc for name, (enc, _) in codecs.items()}
        self._dec = {name: dec for name, (_, dec) in codecs.items()}
        dec = self._dec["executions"]
        # (AWS field, index in a _SELECT_EXECUTION row, decoder or None where SQLAlchemy has none)
        self._execution_fields = [(api, _EXECUTION_COLUMNS.index(col), None if dec[col] is _identity else dec[col])
                                  for api, col in COLUMNS.items()]
        self._when = self._enc["messages"]["due"]
        self._read_when = self._dec["messages"]["due"]

    # -- connections ---------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        try:
            return self._idle.pop()
        except IndexError:
            pass
        with self._errors():
            # Through the engine's pool, so that its connect hook sets the same pragmas (WAL,
            # busy_timeout, synchronous); then detached, to be held here rather than pooled.
            proxy = self.engine.raw_connection()
            conn = proxy.driver_connection
            proxy.detach()
        self._opened.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE write transaction: all of it commits, or none of it."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except sqlite3.Error as e:
            raise StoreError(describe(e, self.name)) from e
        finally:
            self._idle.append(conn)

    def _fetch(self, sql: str, params: tuple | list, every: bool) -> Any:
        """A single-statement read (SQLite's implicit transaction): every row, or the first."""
        conn = self._connection()
        try:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if every else cursor.fetchone()
        except sqlite3.Error as e:
            raise StoreError(describe(e, self.name)) from e
        finally:
            self._idle.append(conn)

    def _one(self, sql: str, params: tuple | list) -> tuple | None:
        return self._fetch(sql, params, every=False)

    def _all(self, sql: str, params: tuple | list) -> list[tuple]:
        return self._fetch(sql, params, every=True)

    def close(self) -> None:
        self._idle.clear()
        for conn in self._opened:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._opened.clear()
        super().close()

    def __repr__(self) -> str:
        return f"<SqliteStore {self.name}>"

    # -- records and executions ----------------------------------------------------------------
    def get_record(self, kind: str, arn: str) -> dict | None:
        r = self._one("SELECT body FROM records WHERE kind = ? AND arn = ?", (kind, arn))
        return None if r is None else _untag_text(r[0], self._dec["records"]["body"])

    def get_execution(self, arn: str) -> dict | None:
        r = self._one(_SELECT_EXECUTION, (arn,))
        if r is None:
            return None
        out = {api: r[i] if read is None else read(r[i]) for api, i, read in self._execution_fields}
        text = r[_EXTRA_AT]
        extra = text and _untag_text(text, _read_json)
        if extra:
            out.update(extra)
        return out

    def create_execution(self, row: dict, commit: Commit) -> None:
        arn = row["executionArn"]
        values = creation_values(row, commit)   # so _apply_lite(fresh=True) skips commit.execution
        enc = self._enc["executions"]
        names = list(values)
        sql = f"INSERT INTO executions ({', '.join(names)}) VALUES ({_marks(len(names))})"
        with self._tx() as conn:
            try:
                execution_id = conn.execute(sql, [enc[n](values[n]) for n in names]).lastrowid
            except sqlite3.IntegrityError as e:   # the name is taken (or a concurrent start won)
                raise ExecutionAlreadyExistsError(arn) from e
            self._apply_lite(conn, commit, fresh=True, execution_id=execution_id)

    def load_frames(self, arn: str) -> dict[str, dict]:
        body = self._dec["frames"]["body"]
        rows = self._all("SELECT frame_id, body FROM frames WHERE execution_arn = ?", (arn,))
        return {fid: body(b) for fid, b in rows}

    def history(self, arn: str) -> list[dict]:
        dec = self._dec["events"]
        when, details_of = dec["timestamp"], dec["details"]
        found = self._one("SELECT id FROM executions WHERE execution_arn = ?", (arn,))
        if found is None:
            return []
        bounds = event_range(found[0])
        rows = self._all("SELECT timestamp, type, event_id, previous_event_id, details FROM events "
                         "WHERE seq BETWEEN ? AND ? ORDER BY seq", (bounds["low"], bounds["high"]))
        out = []
        last_raw = last = None
        for ts, type_, eid, prev, details in rows:
            if ts != last_raw:   # the events of one step share their timestamp
                last_raw, last = ts, when(ts)
            ev = {"timestamp": last, "type": type_, "id": eid, "previousEventId": prev}
            if details is not None:
                d = details_of(details)
                if d:
                    ev.update(d)
            out.append(ev)
        return out

    def apply(self, commit: Commit) -> None:
        with self._tx() as conn:
            self._apply_lite(conn, commit)

    def _apply_lite(self, conn: sqlite3.Connection, c: Commit, fresh: bool = False,
                    execution_id: int | None = None) -> None:
        """`SqlStore._apply` in plain SQL, step for step in the same order."""
        arn = c.execution_arn
        if c.events:
            xid = execution_id
            if xid is None:
                found = conn.execute("SELECT id FROM executions WHERE execution_arn = ?", (arn,)).fetchone()
                if found is None:
                    raise StoreError(f"{self.name}: no execution {arn} to add history events to")
                xid = found[0]
            ts = self._enc["events"]["timestamp"]
            rows = []
            last_t = last_text = None
            base = event_seq(xid, 0)
            for e in c.events:   # event_seq and event_details written inline: this runs per event
                t = e["timestamp"]
                if t is not last_t:   # the events of one step share their timestamp
                    last_t, last_text = t, ts(t)
                eid = e["id"]
                if not 0 <= eid < EVENTS_PER_EXECUTION:
                    try:
                        event_seq(xid, eid)
                    except ValueError as exc:   # its words, as SqlStore._apply reports them
                        raise StoreError(f"{self.name}: execution {arn}: {exc}") from exc
                details = {k: v for k, v in e.items() if k not in _EVENT_KEYS}
                rows.append((base + eid, xid, eid, e.get("previousEventId"), e["type"], last_text,
                             json_dumps(details) if details else None))
            conn.executemany("INSERT INTO events (seq, execution_id, event_id, previous_event_id, type, "
                             "timestamp, details) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        if c.execution and not fresh:
            self._update_execution_lite(conn, arn, c.execution)
        if c.frames:
            gone = [] if fresh else [fid for fid, f in c.frames.items() if f is None]
            for part in _chunks(gone):
                conn.execute(f"DELETE FROM frames WHERE execution_arn = ? AND frame_id IN ({_marks(len(part))})",
                             [arn, *part])
            body = self._enc["frames"]["body"]
            kept = [(arn, fid, body(f if isinstance(f, dict) else f.to_dict()))
                    for fid, f in c.frames.items() if f is not None]
            if kept:
                conn.executemany("INSERT INTO frames (execution_arn, frame_id, body) VALUES (?, ?, ?) "
                                 "ON CONFLICT (execution_arn, frame_id) DO UPDATE SET body = excluded.body", kept)
        for part in _chunks(list(c.consumed)):
            conn.execute(f"DELETE FROM messages WHERE id IN ({_marks(len(part))})", part)
        if c.close_all and not fresh:   # a fresh execution has no messages or tokens yet
            conn.execute("DELETE FROM messages WHERE execution_arn = ?", (arn,))
            conn.execute("UPDATE tokens SET closed = 1, queued = 0 WHERE execution_arn = ?", (arn,))
        if not fresh:   # a fresh execution has no timers to cancel or tokens to close yet
            kinds = _marks(len(_TIMER_KINDS))
            for fid, seq in c.cancel_frames:
                sql = f"DELETE FROM messages WHERE execution_arn = ? AND frame_id = ? AND kind IN ({kinds})"
                params = [arn, fid, *_TIMER_KINDS]
                if seq >= 0:
                    sql += " AND seq <= ?"
                    params.append(seq)
                conn.execute(sql, params)
            for part in _chunks(list(c.close_frames_tokens)):
                conn.execute("UPDATE tokens SET closed = 1, queued = 0 WHERE execution_arn = ? "
                             f"AND frame_id IN ({_marks(len(part))})", [arn, *part])
        if c.add_messages:
            self._add_messages_lite(conn, c.add_messages)
        if c.add_tokens:
            names = [t["token"] for t in c.add_tokens]
            for part in _chunks(names):   # a re-added token starts afresh
                conn.execute(f"DELETE FROM tokens WHERE token IN ({_marks(len(part))})", part)
            conn.executemany(
                f"INSERT INTO tokens ({', '.join(_TOKEN_KEYS)}, closed, queued) "
                f"VALUES ({_marks(len(_TOKEN_KEYS))}, 0, ?)",
                [(*(t.get(k) for k in _TOKEN_KEYS), 1 if t.get("activity_arn") else 0) for t in c.add_tokens])
        if c.release:
            conn.execute("UPDATE executions SET lease_owner = NULL, lease_expires = NULL "
                         "WHERE execution_arn = ? AND lease_owner = ?", (arn, c.release))

    def _update_execution_lite(self, conn: sqlite3.Connection, arn: str, changes: dict) -> None:
        values, extra = _split(changes)
        enc, dec = self._enc["executions"], self._dec["executions"]
        if extra:
            old = conn.execute("SELECT extra FROM executions WHERE execution_arn = ?", (arn,)).fetchone()
            before = untag(dec["extra"](old[0])) if old is not None else None
            values["extra"] = tag({**(before or {}), **extra})
        if not values:
            return
        names = list(values)
        cur = conn.execute(f"UPDATE executions SET {', '.join(n + ' = ?' for n in names)} WHERE execution_arn = ?",
                           [*(enc[n](values[n]) for n in names), arn])
        if cur.rowcount == 0:
            raise StoreError(f"{self.name}: no execution {arn}")

    # -- messages and leases -------------------------------------------------------------------
    def _add_messages_lite(self, conn: sqlite3.Connection, batch: list[Message]) -> None:
        payload = self._enc["messages"]["payload"]
        sql = "INSERT INTO messages (execution_arn, kind, due, frame_id, seq, payload) VALUES (?, ?, ?, ?, ?, ?)"
        for m in batch:
            m.id = conn.execute(sql, (m.execution_arn, m.kind, self._when(m.due), m.frame_id or "", m.seq or 0,
                                      payload(m.payload))).lastrowid

    def add_message(self, message: Message) -> None:
        with self._tx() as conn:
            self._add_messages_lite(conn, [message])

    def due_messages(self, arn: str, now: datetime) -> list[Message]:
        payload = self._dec["messages"]["payload"]
        rows = self._all(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE execution_arn = ? AND due <= ? "
                         "ORDER BY due, id", (arn, self._when(now)))
        return [Message(a, kind, self._read_when(due), fid, seq, payload(p), mid)
                for mid, a, kind, due, fid, seq, p in rows]

    def next_due(self) -> datetime | None:
        r = self._one(_NEXT_DUE, ())
        return None if r is None or r[0] is None else self._read_when(r[0])

    def claim(self, worker: str, now: datetime, lease_seconds: float, limit: int) -> list[str]:
        at = self._when(now)
        if self._one("SELECT id FROM messages WHERE due <= ? LIMIT 1", (at,)) is None:
            return []   # nothing due: no write transaction (and no write lock) at all
        with self._tx() as conn:
            arns = [r[0] for r in conn.execute(_CLAIM, (at, at, limit))]
            if arns:
                until = self._when(now + timedelta(seconds=lease_seconds))
                conn.execute(f"UPDATE executions SET lease_owner = ?, lease_expires = ? "
                             f"WHERE execution_arn IN ({_marks(len(arns))})", [worker, until, *arns])
        return arns

    def release(self, arn: str, worker: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE executions SET lease_owner = NULL, lease_expires = NULL "
                         "WHERE execution_arn = ? AND lease_owner = ?", (arn, worker))
