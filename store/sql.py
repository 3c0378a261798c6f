"""`SqlStore`: the `statelang.store.Store` protocol on SQLite or PostgreSQL through SQLAlchemy Core.

It behaves as `MemoryStore` does, row for row, with two differences the protocol leaves open:
execution rows always carry every AWS field (None when unset), and `claim` takes a lease, so two
workers never hold the same execution at once while a lease is valid.

Every write is one transaction. On SQLite that transaction begins IMMEDIATE, taking the write lock
up front: a deferred one could read, then fail to upgrade its lock mid-way and have to be retried
by hand. On PostgreSQL, `claim` and the token/activity updates lock their rows, and `claim` skips
rows another worker is locking (`FOR UPDATE SKIP LOCKED`) instead of queueing behind it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from statelang.language.errors import StatelangError
from statelang.language.jsontext import encoder
from statelang.runtime.storage import Commit, ExecutionAlreadyExistsError, Message

from .schema import event_range, event_seq, events, executions, frames, messages, records, tokens


class StoreError(StatelangError):
    """The database cannot be used: unreachable, locked past the busy timeout, corrupt, or from
    a newer statelang. The message names the database; nothing committed before is lost."""


# AWS field name -> column. Any other key of an execution row lives in the `extra` JSON column.
COLUMNS = {
    "executionArn": "execution_arn", "stateMachineArn": "state_machine_arn", "name": "name",
    "status": "status", "startDate": "start_date", "stopDate": "stop_date", "input": "input",
    "output": "output", "error": "error", "cause": "cause", "redriveCount": "redrive_count",
    "roleArn": "role_arn", "definition": "definition", "next_event_id": "next_event_id",
}
_EVENT_KEYS = ("timestamp", "type", "id", "previousEventId")
_TIMER_KINDS = ("wait", "retry", "task_timeout", "heartbeat")
_TOKEN_KEYS = ("token", "execution_arn", "frame_id", "seq", "activity_arn", "input", "state")


# -- JSON ---------------------------------------------------------------------------------------
# Records and execution extras carry datetimes (creationDate, redriveDate, ...): they are stored
# tagged as {"$datetime": iso} so that what is read back compares equal to what was put, and a
# dict of the caller's that would read as a tag is wrapped in {"$literal": ...}. Frames, message
# payloads and event details hold the execution's own JSON and are stored as they are.

_TAGS = ("$datetime", "$literal")


def tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dict):
        out = {k: tag(v) for k, v in value.items()}
        return {"$literal": out} if len(value) == 1 and next(iter(value)) in _TAGS else out
    if isinstance(value, list | tuple):
        return [tag(v) for v in value]
    return value


def untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((k, v),) = value.items()
            if k == "$datetime" and isinstance(v, str):
                return datetime.fromisoformat(v)
            if k == "$literal" and isinstance(v, dict):
                return {kk: untag(vv) for kk, vv in v.items()}
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


def _default(value: Any) -> Any:
    """A datetime that strays into a frame or payload is written as ISO text rather than failing
    the commit (the in-memory store would have kept it as is)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# The text of every JSON column (see statelang.jsontext: orjson where it writes what json would).
json_dumps = encoder(default=_default, check_circular=True)


class SqlStore:
    """A `Store` over a SQLAlchemy engine; build one with `store.open_store(url)`."""

    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.name = name   # the URL without its password, for error messages
        self.dialect = engine.dialect.name
        # Reads need no write lock: on SQLite they begin DEFERRED (see `store.open_store`).
        self._reader = engine.execution_options(statelang_read=True)
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self._prepare()

    def _prepare(self) -> None:
        """Build the hot statements once: constructing a SQLAlchemy statement costs more than
        SQLite takes to run it, and these run several times per execution step."""
        arn = bindparam("arn")
        self._q_execution = select(executions).where(executions.c.execution_arn == arn)
        self._q_id = select(executions.c.id).where(executions.c.execution_arn == arn)
        self._q_history = (select(events.c.timestamp, events.c.type, events.c.event_id, events.c.previous_event_id,
                                  events.c.details)
                           .where(events.c.seq.between(bindparam("low"), bindparam("high"))).order_by(events.c.seq))
        self._q_record = select(records.c.body).where(records.c.kind == bindparam("kind"),
                                                      records.c.arn == bindparam("rarn"))
        self._q_due = (select(messages).where(messages.c.execution_arn == arn, messages.c.due <= bindparam("now"))
                       .order_by(messages.c.due, messages.c.id))
        self._q_frames = select(frames.c.frame_id, frames.c.body).where(frames.c.execution_arn == arn)
        self._i_events = insert(events)
        self._i_executions = insert(executions)
        up = self._insert(frames)
        self._u_frames = up.on_conflict_do_update(index_elements=["execution_arn", "frame_id"],
                                                  set_={"body": up.excluded.body})
        self._d_frames = delete(frames).where(frames.c.execution_arn == arn,
                                              frames.c.frame_id.in_(bindparam("fids", expanding=True)))
        self._d_consumed = delete(messages).where(messages.c.id.in_(bindparam("ids", expanding=True)))
        self._d_all_messages = delete(messages).where(messages.c.execution_arn == arn)
        self._u_close_tokens = update(tokens).where(tokens.c.execution_arn == arn).values(closed=True, queued=False)
        self._u_release = (update(executions).where(executions.c.execution_arn == arn,
                                                    executions.c.lease_owner == bindparam("worker"))
                           .values(lease_owner=None, lease_expires=None))
        self._i_messages = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
        # Executions with a due message and a free lease, by their earliest due message. Grouping
        # by execution reads each due message once (a window over every message did not scale).
        now = bindparam("now")
        first = (select(messages.c.execution_arn.label("arn"), func.min(messages.c.due).label("due"),
                        func.min(messages.c.id).label("mid"))
                 .where(messages.c.due <= now).group_by(messages.c.execution_arn).subquery())
        self._q_any_due = select(messages.c.id).where(messages.c.due <= now).limit(1)
        self._q_next_due = select(func.min(messages.c.due)).where(
            select(executions.c.id).where(executions.c.execution_arn == messages.c.execution_arn).exists())
        self._q_claim = (select(executions.c.execution_arn)
                         .join(first, first.c.arn == executions.c.execution_arn)
                         .where(or_(executions.c.lease_expires.is_(None), executions.c.lease_expires <= now))
                         .order_by(first.c.due, first.c.mid).limit(bindparam("limit"))
                         .with_for_update(of=executions, skip_locked=True))

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<SqlStore {self.name}>"

    # -- transactions --------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sa_exc.DBAPIError, sqlite3.Error) as e:
            raise StoreError(describe(e, self.name)) from e

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._errors(), self._reader.begin() as conn:
            yield conn

    # -- records -------------------------------------------------------------------------------
    def put_record(self, kind: str, arn: str, record: dict) -> None:
        stmt = self._insert(records).values(kind=kind, arn=arn, body=tag(record), created=datetime.now(UTC))
        stmt = stmt.on_conflict_do_update(index_elements=["kind", "arn"], set_={"body": stmt.excluded.body})
        with self._write() as conn:
            conn.execute(stmt)

    def get_record(self, kind: str, arn: str) -> dict | None:
        with self._read() as conn:
            body = conn.scalar(self._q_record, {"kind": kind, "rarn": arn})
        return None if body is None else untag(body)

    def list_records(self, kind: str) -> list[dict]:
        with self._read() as conn:
            bodies = conn.scalars(select(records.c.body).where(records.c.kind == kind).order_by(records.c.id))
            return [untag(b) for b in bodies]

    def delete_record(self, kind: str, arn: str) -> None:
        with self._write() as conn:
            conn.execute(delete(records).where(records.c.kind == kind, records.c.arn == arn))

    # -- executions ----------------------------------------------------------------------------
    def create_execution(self, row: dict, commit: Commit) -> None:
        arn = row["executionArn"]
        values = creation_values(row, commit)
        commit = dataclasses.replace(commit, execution={})   # its columns are in the insert
        with self._write() as conn:
            if conn.scalar(self._q_id, {"arn": arn}) is not None:
                raise ExecutionAlreadyExistsError(arn)
            try:
                done = conn.execute(self._i_executions, values)
            except sa_exc.IntegrityError as e:   # a concurrent start of the same ARN won the race
                raise ExecutionAlreadyExistsError(arn) from e
            self._apply(conn, commit, fresh=True, execution_id=done.inserted_primary_key[0])

    def get_execution(self, arn: str) -> dict | None:
        with self._read() as conn:
            r = conn.execute(self._q_execution, {"arn": arn}).first()
        return None if r is None else _execution_row(r)

    def list_executions(self, state_machine_arn: str | None = None, status: str | None = None) -> list[dict]:
        q = select(executions).order_by(executions.c.id)
        if state_machine_arn is not None:
            q = q.where(executions.c.state_machine_arn == state_machine_arn)
        if status is not None:
            q = q.where(executions.c.status == status)
        with self._read() as conn:
            return [_execution_row(r) for r in conn.execute(q)]

    def load_frames(self, arn: str) -> dict[str, dict]:
        with self._read() as conn:
            return {fid: body for fid, body in conn.execute(self._q_frames, {"arn": arn})}

    def history(self, arn: str) -> list[dict]:
        with self._read() as conn:
            xid = conn.scalar(self._q_id, {"arn": arn})
            rows = [] if xid is None else conn.execute(self._q_history, event_range(xid)).all()
        out = []
        for ts, type_, eid, prev, details in rows:
            ev = {"timestamp": ts, "type": type_, "id": eid, "previousEventId": prev}
            if details:
                ev.update(details)
            out.append(ev)
        return out

    def apply(self, commit: Commit) -> None:
        with self._write() as conn:
            self._apply(conn, commit)

    def _apply(self, conn: Connection, c: Commit, fresh: bool = False, execution_id: int | None = None) -> None:
        """The steps run in `MemoryStore.apply`'s order: a message added by the commit that ends
        the execution survives its ``close_all``, as it does in memory."""
        arn = c.execution_arn
        p = {"arn": arn}
        if c.events:
            xid = execution_id if execution_id is not None else conn.scalar(self._q_id.params(arn=arn))
            if xid is None:
                raise StoreError(f"{self.name}: no execution {arn} to add history events to")
            try:
                rows = [_event_row(xid, e) for e in c.events]
            except ValueError as e:
                raise StoreError(f"{self.name}: execution {arn}: {e}") from e
            conn.execute(self._i_events, rows)
        if c.execution:
            self._update_execution(conn, arn, c.execution)
        if c.frames:
            gone = [] if fresh else [fid for fid, f in c.frames.items() if f is None]
            if gone:
                conn.execute(self._d_frames, {"arn": arn, "fids": gone})
            kept = [{"execution_arn": arn, "frame_id": fid, "body": f if isinstance(f, dict) else f.to_dict()}
                    for fid, f in c.frames.items() if f is not None]
            if kept:
                conn.execute(self._u_frames, kept)
        if c.consumed:
            conn.execute(self._d_consumed, {"ids": list(c.consumed)})
        if c.close_all and not fresh:   # a fresh execution has no messages or tokens yet
            conn.execute(self._d_all_messages, p)
            conn.execute(self._u_close_tokens, p)
        for fid, seq in c.cancel_frames:
            cond = [messages.c.execution_arn == arn, messages.c.frame_id == fid, messages.c.kind.in_(_TIMER_KINDS)]
            if seq >= 0:
                cond.append(messages.c.seq <= seq)
            conn.execute(delete(messages).where(*cond))
        if c.close_frames_tokens:
            conn.execute(update(tokens).where(tokens.c.execution_arn == arn,
                                              tokens.c.frame_id.in_(c.close_frames_tokens))
                         .values(closed=True, queued=False))
        if c.add_messages:
            self._add_messages(conn, c.add_messages)
        if c.add_tokens:
            names = [t["token"] for t in c.add_tokens]
            conn.execute(delete(tokens).where(tokens.c.token.in_(names)))   # a re-added token starts afresh
            conn.execute(insert(tokens), [
                {**{k: t.get(k) for k in _TOKEN_KEYS}, "closed": False, "queued": bool(t.get("activity_arn"))}
                for t in c.add_tokens])
        if getattr(c, "release", None):
            conn.execute(self._u_release, {"arn": arn, "worker": c.release})

    def _update_execution(self, conn: Connection, arn: str, changes: dict) -> None:
        values, extra = _split(changes)
        where = executions.c.execution_arn == arn
        if extra:
            old = conn.scalar(select(executions.c.extra).where(where).with_for_update())
            values["extra"] = tag({**(untag(old) or {}), **extra})
        if values and conn.execute(update(executions).where(where).values(**values)).rowcount == 0:
            raise StoreError(f"{self.name}: no execution {arn}")

    # -- messages and leases -------------------------------------------------------------------
    def _add_messages(self, conn: Connection, batch: list[Message]) -> None:
        rows = [{"execution_arn": m.execution_arn, "kind": m.kind, "due": m.due, "frame_id": m.frame_id or "",
                 "seq": m.seq or 0, "payload": m.payload} for m in batch]
        ids = conn.scalars(self._i_messages, rows).all()
        for m, mid in zip(batch, ids, strict=True):
            m.id = mid

    def add_message(self, message: Message) -> None:
        with self._write() as conn:
            self._add_messages(conn, [message])

    def due_messages(self, arn: str, now: datetime) -> list[Message]:
        with self._read() as conn:
            return [Message(r.execution_arn, r.kind, r.due, r.frame_id, r.seq, r.payload, r.id)
                    for r in conn.execute(self._q_due, {"arn": arn, "now": now})]

    def next_due(self) -> datetime | None:
        """The earliest message of an execution the store holds. A message naming no execution
        can never be claimed; counting it would make a virtual clock spin on it forever."""
        with self._read() as conn:
            due = conn.scalar(self._q_next_due)
        if isinstance(due, str):   # SQLite's min() returns the stored text, untyped
            due = datetime.fromisoformat(due)
        if due is not None and due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        return due

    def claim(self, worker: str, now: datetime, lease_seconds: float, limit: int) -> list[str]:
        """Lease up to `limit` executions with a due message, in the order of each one's earliest
        (due, id) message, as `MemoryStore` lists them. The select
        and the lease update share one transaction; on PostgreSQL rows another claimer has locked
        are skipped, and a row leased meanwhile fails the re-checked lease condition."""
        q = self._q_claim
        with self._read() as conn:   # nothing due: no write transaction (and no write lock) at all
            if conn.scalar(self._q_any_due, {"now": now}) is None:
                return []
        with self._write() as conn:
            arns = list(conn.scalars(q, {"now": now, "limit": limit}))
            if arns:
                conn.execute(update(executions).where(executions.c.execution_arn.in_(arns))
                             .values(lease_owner=worker, lease_expires=now + timedelta(seconds=lease_seconds)))
        return arns

    def release(self, arn: str, worker: str) -> None:
        with self._write() as conn:
            conn.execute(self._u_release, {"arn": arn, "worker": worker})

    # -- tokens and activity tasks -------------------------------------------------------------
    def get_token(self, token: str) -> dict | None:
        with self._read() as conn:
            r = conn.execute(select(tokens).where(tokens.c.token == token)).first()
        return None if r is None else _token_row(r)

    def resolve_token(self, token: str, message: Message) -> str:
        with self._write() as conn:
            r = conn.execute(select(tokens).where(tokens.c.token == token).with_for_update()).first()
            if r is None:
                return "unknown"
            if r.closed:
                return "closed"
            if message.kind == "token":
                conn.execute(update(tokens).where(tokens.c.id == r.id).values(closed=True, queued=False))
            message.execution_arn, message.frame_id, message.seq = r.execution_arn, r.frame_id, r.seq
            self._add_messages(conn, [message])
            return "ok"

    def claim_activity_task(self, activity_arn: str, worker_name: str, now: datetime) -> dict | None:
        q = (select(tokens).where(tokens.c.activity_arn == activity_arn, tokens.c.queued,
                                  tokens.c.closed.is_(False))
             .order_by(tokens.c.id).limit(1).with_for_update(skip_locked=True))
        with self._write() as conn:
            r = conn.execute(q).first()
            if r is None:
                return None
            conn.execute(update(tokens).where(tokens.c.id == r.id).values(queued=False))
            self._add_messages(conn, [Message(r.execution_arn, "activity_started", now, r.frame_id, r.seq,
                                              {"workerName": worker_name})])
            return _token_row(r)


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


def _execution_row(r) -> dict:
    m = r._mapping
    out = {api: m[col] for api, col in COLUMNS.items()}
    if m["extra"]:
        out.update(untag(m["extra"]))
    return out


def creation_values(row: dict, commit: Commit) -> dict:
    """The columns of a new execution's row: the row's fields, with the first commit's execution
    changes folded in (one insert instead of an insert and an update), extras tagged as JSON."""
    values, extra = _split(row)
    values.setdefault("next_event_id", 1)
    values.setdefault("redrive_count", 0)
    if commit.execution:
        more, more_extra = _split(commit.execution)
        values.update(more)
        extra.update(more_extra)
    values["extra"] = tag(extra) if extra else None
    return values


def event_details(e: dict) -> dict:
    """An event's detail members: everything but its timestamp, type and ids."""
    return {k: v for k, v in e.items() if k not in _EVENT_KEYS}


def _event_row(execution_id: int, e: dict) -> dict:
    return {"seq": event_seq(execution_id, e["id"]), "execution_id": execution_id, "event_id": e["id"],
            "previous_event_id": e.get("previousEventId"), "type": e["type"], "timestamp": e["timestamp"],
            "details": event_details(e) or None}


def _token_row(r) -> dict:
    m = r._mapping
    return {**{k: m[k] for k in _TOKEN_KEYS}, "closed": bool(m["closed"])}


def describe(e: BaseException, name: str) -> str:
    """One line that says which database failed and why, without a driver traceback."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    low = text.lower()
    if "database is locked" in low or "database table is locked" in low:
        return f"{name}: the database is locked by another process beyond the busy timeout ({text})"
    if "file is not a database" in low or "malformed" in low:
        return f"{name}: the file is not a usable SQLite database ({text})"
    if "unable to open" in low:
        return f"{name}: cannot open the database file ({text})"
    if isinstance(e, sa_exc.OperationalError) and "connect" in low:
        return f"{name}: cannot connect to the database ({text})"
    return f"{name}: {text}"
