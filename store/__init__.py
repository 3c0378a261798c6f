"""The SQL implementation of `statelang.store.Store`: `open_store(url)` on SQLite or PostgreSQL.

``open_store`` connects, checks the connection works, and brings the schema to Alembic's head
before returning, so callers never see a half-migrated database: a fresh file or database gets
every table, an older one its missing revisions.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, inspect, make_url, pool, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from .dialects import describe
from .jsoncolumns import json_dumps
from .sql import SqlStore, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["open_store", "SqlStore", "StoreError"]

HERE = Path(__file__).resolve().parent
# Store-specific query parameters, removed from the URL before the driver sees it.
_SQLITE_OPTIONS = {"busy_timeout": "10000", "synchronous": "NORMAL", "wal_autocheckpoint": "10000"}
_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}
_MIGRATION_LOCK = 0x5157_4154   # pg_advisory_xact_lock key held while the schema is upgraded
# The newest revision in migrations/versions (a test holds it to Alembic's own head). A database
# already there opens without loading Alembic: Alembic brings Mako and Pygments with it, whose
# ~20,000 objects every full collection of the garbage collector then walks (~16 ms a time, and
# b3 on SQLite triggers one every two or three executions).
HEAD = "0005"


def open_store(url: str) -> SqlStore:
    """``sqlite:///path/to.db`` (the directory is created) or ``postgresql://user@host/db``.

    SQLite options as URL query parameters: ``busy_timeout`` (milliseconds a writer waits for the
    lock before `StoreError`, default 10000), ``synchronous`` (default NORMAL) and
    ``wal_autocheckpoint`` (pages, default 10000): see `_sqlite_engine`. Raises `StoreError`
    naming the database when it cannot be used."""
    engine, name = make_engine(url)
    try:
        _upgrade(engine, name)
    except (sa_exc.DBAPIError, sqlite3.Error) as e:
        engine.dispose()
        raise StoreError(describe(e, name, (sa_exc.OperationalError,))) from e
    except StoreError:
        engine.dispose()
        raise
    return SqlStore(engine, name)


def make_engine(url: str) -> tuple[Engine, str]:
    """The configured SQLAlchemy engine for `url` and the URL without its password; the schema is
    left as it is (Alembic run by hand uses this)."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as e:
        raise StoreError(f"{url!r} is not a database URL: {e}") from e
    name = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed), name
    if backend in ("postgresql", "postgres"):
        return _postgres_engine(parsed), name
    raise StoreError(f"{name}: statelang stores run on sqlite:/// or postgresql:// URLs, not {backend}")


def alembic_config(connection=None) -> Config:
    """Alembic's configuration for our migrations, wherever the package is installed; with a
    connection, the migrations run on it (inside its transaction) instead of opening their own."""
    from alembic.config import Config

    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(engine: Engine, name: str) -> None:
    """Bring the schema to head in one transaction. Two processes opening a fresh database at once
    must not both create it: PostgreSQL serialises them on an advisory lock, SQLite on the write
    lock that BEGIN IMMEDIATE takes. Both then read the revision inside that lock."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        current = _revisions(conn)
        if current != {HEAD}:
            _migrate(conn, name, current)


def _revisions(conn: Connection) -> set[str]:
    """The revisions the database is at, as Alembic's MigrationContext reads them (none without
    its version table)."""
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


def _migrate(conn: Connection, name: str, current: set[str]) -> None:
    """Alembic's upgrade from the `current` revisions to head on `conn`, inside its transaction;
    a revision it does not know (a newer statelang wrote the database) is refused."""
    from alembic import command, util
    from alembic.script import ScriptDirectory

    cfg = alembic_config(conn)
    script = ScriptDirectory.from_config(cfg)
    if current == set(script.get_heads()):
        return
    for rev in current:
        try:
            script.get_revision(rev)
        except util.CommandError as e:
            raise StoreError(f"{name}: the schema is at revision {rev!r}, which this statelang does not "
                             "know (a newer version wrote it)") from e
    command.upgrade(cfg, "head")


def _sqlite_engine(url: URL) -> Engine:
    """WAL lets readers run beside the one writer; every write transaction begins IMMEDIATE so
    that lock waits happen at BEGIN, under busy_timeout, never half-way through a commit.

    synchronous=NORMAL by default: in WAL mode a commit then survives any crash of the process
    (kill -9 included: the WAL is in the OS's page cache), which is the failure statelang promises
    to survive, at a fraction of FULL's cost (no fsync per commit). Only a power loss or kernel
    crash can lose the last commits. ``?synchronous=full`` buys that too, where a commit must
    outlive the machine.

    wal_autocheckpoint=10000 pages (40 MiB of WAL) by default rather than SQLite's 1000: each
    checkpoint costs two fsyncs whatever it copies, and pages rewritten by many commits (index
    leaves, the last page of a table) are copied once. Measured on the 5-state benchmark machine:
    checkpoints took a quarter of the time of a short execution at 1000, ~6% less in all at 10000."""
    opts = {k: url.query.get(k, v) for k, v in _SQLITE_OPTIONS.items()}
    sync = str(opts["synchronous"]).upper()
    if sync not in _SYNCHRONOUS:
        raise StoreError(f"{url}: synchronous must be one of {sorted(_SYNCHRONOUS)}, not {sync!r}")
    try:
        busy = int(opts["busy_timeout"])
    except ValueError as e:
        raise StoreError(f"{url}: busy_timeout must be milliseconds, not {opts['busy_timeout']!r}") from e
    try:
        checkpoint = int(opts["wal_autocheckpoint"])
    except ValueError as e:
        raise StoreError(f"{url}: wal_autocheckpoint must be a number of pages, "
                         f"not {opts['wal_autocheckpoint']!r}") from e
    url = url.difference_update_query(list(_SQLITE_OPTIONS))
    path = url.database
    kwargs: dict = {"connect_args": {"check_same_thread": False}}
    if not path or path == ":memory:":
        kwargs["poolclass"] = pool.StaticPool   # one in-memory database shared by every thread
    else:
        file = Path(path).expanduser()
        url = url.set(database=str(file))
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{url}: cannot create the directory {file.parent} ({e.strerror})") from e
    engine = create_engine(url, json_serializer=json_dumps, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None   # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {busy}")
        _journal_mode_wal(cur, int(busy) / 1000)
        cur.execute(f"PRAGMA synchronous = {sync}")
        cur.execute(f"PRAGMA wal_autocheckpoint = {checkpoint}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):   # SQLAlchemy's own transactions (Alembic's): IMMEDIATE, as the store's
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _journal_mode_wal(cur: sqlite3.Cursor, patience: float) -> None:
    """PRAGMA journal_mode = WAL, waiting as a busy timeout would. Switching a fresh file to WAL
    takes its exclusive lock, and SQLite answers "database is locked" at once, without its busy
    handler, while another connection holds the file (several workers opening one new database
    together): so the switch is tried again until `patience` seconds have passed."""
    deadline = time.monotonic() + patience
    pause = 0.001
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)   # a lock wait, as SQLite's own busy handler sleeps between its tries
        pause = min(pause * 2, 0.05)


def _postgres_engine(url: URL) -> Engine:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")   # psycopg 3, not SQLAlchemy's psycopg2 default
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
    return create_engine(url, json_serializer=json_dumps,
                         pool_pre_ping=True, connect_args=connect_args)
