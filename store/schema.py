"""The SQL schema of a statelang database, one SQLAlchemy Core `MetaData` for SQLite and PostgreSQL.

Alembic's revisions under ``migrations/`` build exactly this schema; a test diffs the migrated
database against it, so a change here without a revision fails the suite.

Tables and how rows move through them:

- ``records``     state machines, versions, aliases, activities, tags, ...: a JSON body per
                  (kind, arn). ``id`` keeps first-insertion order, which listing follows.
- ``executions``  one row per execution; AWS's fields as columns, anything else in ``extra``.
                  ``status`` goes RUNNING -> SUCCEEDED | FAILED | TIMED_OUT | ABORTED (and back to
                  RUNNING on a redrive). ``lease_owner``/``lease_expires``: the worker that
                  claimed it and until when; a NULL or past ``lease_expires`` is a free lease;
                  ``claims`` counts claims since the last completed step.
- ``events``      the history, append-only, keyed by (execution_id, event_id) packed into
                  one integer ``seq`` (see `event_seq`); the id is ``executions.id``.
- ``frames``      the execution's checkpoint: one JSON row per live frame, replaced on change,
                  deleted when the frame ends.
- ``messages``    timers and external inputs with the time they fall due; deleted by the commit
                  that applies them (or cancels them). No foreign key: a message may name an
                  execution the store has not seen, as the in-memory store allows.
- ``tokens``      task tokens: open -> closed (answered, timed out, frame settled, execution
                  ended). ``queued`` is true while an activity task waits for a worker to take it.
- ``workers``     one row per live worker (`statelang worker`), its heartbeat written every few
                  seconds; a lease whose owner's heartbeat has gone stale is free at once. The
                  row goes when the worker stops.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# Constraint names are fixed so that Alembic revisions and the metadata agree on both backends.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on both backends.

    SQLite keeps no zone, so values are normalised to UTC before they are written (which also makes
    the stored text sort in time order) and tagged UTC when read; PostgreSQL's timestamptz comes
    back in the session's zone and is converted, so rows compare equal to what was written."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: statelang stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


records = Table(
    "records", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("body", Json, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "arn"),
)

executions = Table(
    "executions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # creation order, which listing follows
    Column("execution_arn", String(2048), nullable=False, unique=True),
    Column("state_machine_arn", String(2048), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("start_date", UTCDateTime, nullable=False),
    Column("stop_date", UTCDateTime),
    Column("input", Text),
    Column("output", Text),
    Column("error", Text),
    Column("cause", Text),
    Column("redrive_count", Integer, nullable=False, server_default=text("0")),
    Column("role_arn", Text),
    Column("definition", Text),
    Column("extra", Json),
    Column("lease_owner", String(256)),
    Column("lease_expires", UTCDateTime),
    # Claims since the execution last completed a step (a release): a step that keeps killing
    # its worker process is claimed again and again, and quarantined past a bound.
    Column("claims", Integer, nullable=False, server_default=text("0")),
    Index(None, "state_machine_arn", "start_date"),
    # Only the running ones: what recovery looks for across machines. Executions that finish in
    # the transaction that creates them never touch it.
    Index("ix_executions_running", "status", sqlite_where=text("status = 'RUNNING'"),
          postgresql_where=text("status = 'RUNNING'")),
)

_execution_fk = {"ondelete": "CASCADE"}

# One b-tree for the whole history: the key ``seq`` packs (execution id, event id) into one integer,
# ``execution_id * EVENTS_PER_EXECUTION + event_id``, so that it is SQLite's rowid (no second index
# to keep for the (execution, event) key) and one execution's events are one range of it. Ids only
# grow, so a new execution's events are appended at the end of the table, where SQLite fills pages
# whole. Measured on the 5-state benchmark machine, against (execution_arn, event_id) keys: ~40%
# fewer pages written per execution. AWS caps a history at 25,000 events; the store refuses an
# event id at or past EVENTS_PER_EXECUTION rather than let it run into the next execution's range.
EVENTS_PER_EXECUTION = 1 << 24

events = Table(
    "events", metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=False),
    Column("execution_id", Integer, ForeignKey("executions.id", **_execution_fk), nullable=False),
    Column("event_id", Integer, nullable=False),
    Column("previous_event_id", Integer),
    Column("type", String(64), nullable=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("details", Json),
)


def event_seq(execution_id: int, event_id: int) -> int:
    if not 0 <= event_id < EVENTS_PER_EXECUTION:
        raise ValueError(f"event id {event_id} is outside 0..{EVENTS_PER_EXECUTION - 1}")
    return execution_id * EVENTS_PER_EXECUTION + event_id


def event_range(execution_id: int) -> dict:
    """The bounds of one execution's events in ``events.seq``, as ``low``/``high`` parameters."""
    low = event_seq(execution_id, 0)
    return {"low": low, "high": low + EVENTS_PER_EXECUTION - 1}


frames = Table(
    "frames", metadata,
    Column("execution_arn", String(2048), ForeignKey("executions.execution_arn", **_execution_fk),
           primary_key=True),
    Column("frame_id", String(512), primary_key=True),
    Column("body", Json, nullable=False),
)

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_arn", String(2048), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("due", UTCDateTime, nullable=False),
    Column("frame_id", String(512), nullable=False, server_default=text("''")),
    Column("seq", Integer, nullable=False, server_default=text("0")),
    Column("payload", Json),
    Index(None, "due"),
    Index(None, "execution_arn", "due"),
    sqlite_autoincrement=True,  # ids never reused: an id names one message for good
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", String(1024), nullable=False, unique=True),
    Column("execution_arn", String(2048), ForeignKey("executions.execution_arn", **_execution_fk),
           nullable=False),
    Column("frame_id", String(512), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("activity_arn", String(2048)),
    Column("input", Text),
    Column("state", Text),
    Column("closed", Boolean, nullable=False, server_default=text("false")),
    Column("queued", Boolean, nullable=False, server_default=text("false")),
    Index(None, "execution_arn", "frame_id"),
    # The activity queue: only tokens still waiting for a worker, oldest first.
    Index("ix_tokens_activity_queue", "activity_arn", "id",
          sqlite_where=text("queued"), postgresql_where=text("queued")),
    sqlite_autoincrement=True,  # the activity queue is first-in first-out by id
)

workers = Table(
    "workers", metadata,
    Column("worker_id", String(256), primary_key=True),
    Column("host", String(256), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("heartbeat", UTCDateTime, nullable=False),
)
