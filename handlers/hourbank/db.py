"""The HourBank database: one SQLAlchemy engine, its tables, and units of work.

SQLite connections begin with ``BEGIN IMMEDIATE`` and wait (``busy_timeout``) for the write lock
instead of failing: handlers run on the engine's thread pool, and a ledger transaction that reads
a balance must not be overtaken by another writer between its read and its write without noticing.
On PostgreSQL the same protection comes from the version column (see `ledger`). An in-memory
SQLite database is one shared connection, so its units of work take a process lock instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .models import Base


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """`Database("sqlite:///hourbank.db")`, `Database(sqlalchemy_engine)` or `Database("sqlite://")`.

    `now` is the clock the rows' timestamps come from: pass the statelang engine's clock so a
    virtual-clock run stamps virtual times."""

    def __init__(self, url_or_engine: str | SAEngine, now: Callable[[], datetime] | None = None):
        if isinstance(url_or_engine, SAEngine):
            self.engine = url_or_engine
        else:
            url = url_or_engine
            memory = url in ("sqlite://", "sqlite:///:memory:", "memory")
            if memory:
                self.engine = create_engine("sqlite://", poolclass=StaticPool,
                                            connect_args={"check_same_thread": False})
            elif url.startswith("sqlite"):
                self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        self.dialect = self.engine.dialect.name
        self.shared_connection = isinstance(self.engine.pool, StaticPool)
        if self.dialect == "sqlite":
            _sqlite_immediate(self.engine, wal=not self.shared_connection)
        self._lock = threading.RLock()
        self.now = now or _utcnow
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed by the caller, rolled back if it raises or forgets."""
        if self.shared_connection:
            with self._lock, self.sessions() as s:
                yield s
        else:
            with self.sessions() as s:
                yield s

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_immediate(engine: SAEngine, wal: bool) -> None:
    """pysqlite's own transaction handling begins lazily and DEFERRED; take it over so every
    transaction holds the write lock from its first read (the SQLAlchemy-documented recipe)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA foreign_keys = ON")
        if wal:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
