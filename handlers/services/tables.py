"""The local services' tables, one SQLAlchemy metadata, and the transactions they run in.

Every local service (the DynamoDB-like item store, the SNS outbox, the payment provider, the video
recorder) keeps its state in these tables, so a workflow's effects survive a restart exactly as
the workflow's own history does and the CLI can show them. An in-memory SQLite database is a
single shared connection (StaticPool): its transactions take a process lock instead of relying on
SQLite's write lock, because handlers run on the engine's thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.pool import StaticPool

metadata = MetaData()

# -- DynamoDB ------------------------------------------------------------------------------------
ddb_tables = Table(
    "svc_ddb_tables", metadata,
    Column("name", String(255), primary_key=True),
    Column("hash_key", String(255), nullable=False),
    Column("range_key", String(255)),
)
ddb_items = Table(
    "svc_ddb_items", metadata,
    Column("table_name", String(255), primary_key=True),
    Column("hash_value", String(1024), primary_key=True),   # canonical text of the typed key value
    Column("range_value", String(1024), primary_key=True),  # "" when the table has no range key
    Column("item", JSON, nullable=False),
)

# A write integration's task idempotency key and the response it returned: a task re-run after a
# crash (same key) gets that response back instead of applying the write again, so a conditional
# put cannot fail on its own first write. DynamoDB keeps ClientRequestToken the same way for
# TransactWriteItems; here every write the workflows make through the integration is covered.
ddb_requests = Table(
    "svc_ddb_requests", metadata,
    Column("token", String(512), primary_key=True),
    Column("operation", String(32), nullable=False),
    Column("response", JSON, nullable=False),
)

# -- SNS -----------------------------------------------------------------------------------------
sns_outbox = Table(
    "svc_sns_outbox", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("dedup_key", String(512), unique=True),   # the task's idempotency key: one message per task
    Column("topic_arn", String(512), nullable=False),
    Column("subject", String(255)),
    Column("message", Text, nullable=False),
    Column("attributes", JSON),
    Column("task_token", Text),
    Column("published_at", DateTime(timezone=True), nullable=False),
)
Index("ix_sns_outbox_topic", sns_outbox.c.topic_arn, sns_outbox.c.seq)

# -- payment provider ----------------------------------------------------------------------------
pay_accounts = Table(
    "svc_pay_accounts", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),          # platform | connected
    Column("email", String(255)),
    Column("business_type", String(32)),
    Column("business_name", String(255)),
    Column("external_ref", String(255)),                  # e.g. the marketplace provider id
    Column("balance", Numeric(18, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),         # enabled | restricted
    Column("created_at", DateTime(timezone=True), nullable=False),
)
pay_intents = Table(
    "svc_pay_intents", metadata,
    Column("id", String(64), primary_key=True),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("customer", String(255)),
    Column("payment_method", String(64)),
    Column("status", String(32), nullable=False),  # requires_confirmation|requires_action|succeeded|canceled
    Column("amount_refunded", Numeric(18, 2), nullable=False),
    Column("last_error", String(64)),
    Column("metadata", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
pay_movements = Table(
    "svc_pay_movements", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),          # transfer | refund | payout
    Column("amount", Numeric(18, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source", String(64)),                         # account or intent it draws on
    Column("destination", String(64)),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
pay_idempotency = Table(
    "svc_pay_idempotency", metadata,
    Column("key", String(512), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("response", JSON, nullable=False),
)

# -- video recording -----------------------------------------------------------------------------
video_sessions = Table(
    "svc_video_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("vehicle_id", String(128), nullable=False),
    Column("incident_id", String(255)),
    Column("cameras", JSON, nullable=False),
    Column("status", String(16), nullable=False),          # recording | stopped
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("stop_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
    Column("dedup_key", String(512)),
    UniqueConstraint("dedup_key", name="uq_video_dedup"),
)
Index("ix_video_vehicle", video_sessions.c.vehicle_id, video_sessions.c.status)


def create_tables(engine: SAEngine) -> None:
    """Create every local service table that does not exist yet (idempotent)."""
    metadata.create_all(engine)


def domain_engine(url: str | SAEngine = "sqlite://") -> SAEngine:
    """A SQLAlchemy engine for the services' data, with its tables created.

    ``"sqlite://"`` (or ``"memory"``) is one in-memory database shared by all threads through a
    StaticPool; a file URL gets a busy timeout so that handler threads queue for the write lock
    instead of failing; any other URL (PostgreSQL) is used as given."""
    if isinstance(url, SAEngine):
        engine = url
    elif url in ("sqlite://", "sqlite:///:memory:", "memory"):
        engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _immediate(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    create_tables(engine)
    return engine


def _immediate(engine: SAEngine) -> None:
    """Take pysqlite's transaction handling over so a read-then-write holds the write lock from
    its first statement (the SQLAlchemy-documented recipe); a balance read cannot go stale."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_locks: dict[int, threading.RLock] = {}
_locks_guard = threading.Lock()


@contextmanager
def transaction(engine: SAEngine) -> Iterator[Connection]:
    """One transaction, committed on exit, rolled back if the block raises."""
    if isinstance(engine.pool, StaticPool):
        with _locks_guard:
            lock = _locks.setdefault(id(engine), threading.RLock())
        with lock, engine.begin() as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn
