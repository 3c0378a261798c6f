"""What SQLite and PostgreSQL do differently, and nothing else: SQL text, connection set-up, value
codecs and error classification. The store's logic (`statelang.store.sql.SqlStore`) is written
once against a `Dialect`, as DBOS writes its system database once and lets each dialect override
only set-up and error classes.

Both talk to their DB-API driver directly (sqlite3, psycopg 3) with parameterised SQL text:
SQLAlchemy Core cost ~1.2 ms of an execution's ~1.5 ms on SQLite in statement compilation, events
and pool checkouts around ~0.1 ms of SQLite work, and ~12 ms of client CPU per workflow on
PostgreSQL. SQLAlchemy still builds the connections (so SQLite's pragmas are set by one connect
hook, see `statelang.store.open_store`) and Alembic still owns the schema.

Values are written as SQLAlchemy's column types wrote them, so files written before read back
the same: SQLite keeps times as naive-UTC text ``2024-03-01 12:00:00.123456`` and JSON as text;
PostgreSQL keeps timestamptz and JSONB, decoded by psycopg.
"""

from __future__ import annotations

import sqlite3
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from statelang.language.jsontext import loads

from .jsoncolumns import json_dumps

if TYPE_CHECKING:
    from sqlalchemy import Engine


class Dialect(ABC):
    """The interface `SqlStore` writes against; the two subclasses below fill it in.

    SQL is written with ``?`` placeholders; `sql` turns a statement into the driver's text."""

    name = ""
    errors: tuple[type[BaseException], ...] = ()
    #: the errors of a write the database refused for its own constraints (a duplicate key)
    integrity: tuple[type[BaseException], ...] = ()
    #: SQL fragments: a list parameter (`in_values`) tested by ``column <in_list>``; the row lock of
    #: a read-then-write; a claim that passes over rows another worker has locked.
    in_list = ""
    for_update = ""
    skip_locked = ""
    no_limit: Any = None
    shared = False   # one connection for the whole store (SQLite's in-memory database)
    #: one writer at a time in the database: the store's threads take turns in the process rather
    #: than in the database's busy handler (SQLite's sleeps 1 ms to 100 ms between tries)
    single_writer = False

    def sql(self, text: str) -> str:
        return text

    # -- values --------------------------------------------------------------------------------
    @abstractmethod
    def in_values(self, values: Sequence) -> Any:
        """A list of values in the form the `in_list` fragment takes."""

    @abstractmethod
    def json(self, value: Any) -> Any:
        """A value as the dialect's JSON column stores it."""

    @abstractmethod
    def read_json(self, raw: Any) -> Any:
        """A JSON column's value, read back."""

    @abstractmethod
    def time(self, value: datetime | None) -> Any:
        """A datetime as the driver stores it (None stays None)."""

    @abstractmethod
    def read_time(self, raw: Any) -> datetime | None:
        """A stored time, read back as an aware UTC datetime."""

    # -- connections and transactions ----------------------------------------------------------
    def setup(self, conn: Any) -> None:  # noqa: B027 - optional: a dialect that needs none keeps this
        """Make a freshly opened driver connection ready for the store."""

    @abstractmethod
    @contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        """One transaction on `conn`: committed when the block ends, rolled back if it raises. It
        yields what the transaction's statements go to: `conn` itself, or a stand-in for it."""

    def may_compose(self, statements: Sequence[str]) -> None:  # noqa: B027 - optional
        """The store's statements (``?`` text) that may run as one statement together, where the
        dialect can send a transaction that way (see `PostgresDialect.transaction`)."""

    def executemany(self, conn: Any, sql: str, rows: list) -> None:
        conn.cursor().executemany(sql, rows)

    @abstractmethod
    def insert_ids(self, conn: Any, sql: str, rows: list) -> Callable[[], list[int]]:
        """Insert `rows` with ``sql`` (an INSERT ... RETURNING id); the returned function hands
        back their ids, in order, once the transaction has committed."""

    @abstractmethod
    def insert_id(self, conn: Any, sql: str, params: list) -> tuple[int | None, Callable[[], int]]:
        """Insert one row with ``sql`` (an INSERT ... RETURNING id): its id now if the driver
        knows it without waiting for the server (else None), and a function that hands it back
        once the transaction has committed."""

    def duplicate_execution(self, e: BaseException | None) -> bool:
        """Whether a driver error is the executions table's unique ARN refusing a second row."""
        return False

    @abstractmethod
    def require(self, conn: Any, sql: str, params: tuple, error: BaseException) -> None:
        """Fail the transaction with `error` unless ``sql`` (a SELECT, ``?`` placeholders) finds a
        row; where the check only answers with the rest of the transaction (PostgreSQL's pipeline),
        the failure reaches the store as a driver error that `guard_failed` recognises."""

    def guard_failed(self, e: BaseException) -> bool:
        return False

    def is_broken(self, conn: Any) -> bool:
        return False

    # -- errors --------------------------------------------------------------------------------
    operational: tuple[type[BaseException], ...] = ()   # DB-API's OperationalError of the driver

    def describe(self, e: BaseException, name: str) -> str:
        return describe(e, name, self.operational)


# What a driver says when a connection it had dies under it (a server restart or crash, a
# terminated session, a cut network), as against a connection it cannot open.
_CONNECTION_LOST = ("server closed the connection", "connection is lost", "terminating connection",
                    "connection is closed", "connection reset", "broken pipe", "eof detected")


def describe(e: BaseException, name: str, operational: tuple[type[BaseException], ...] = ()) -> str:
    """One line that says which database failed and why, without a driver traceback. `operational`:
    the classes of a failure to reach the server (SQLAlchemy wraps the driver's error at open_store:
    its `orig` is the driver's)."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    low = text.lower()
    if "database is locked" in low or "database table is locked" in low:
        return f"{name}: the database is locked by another process beyond the busy timeout ({text})"
    if "file is not a database" in low or "malformed" in low:
        return f"{name}: the file is not a usable SQLite database ({text})"
    if "unable to open" in low:
        return f"{name}: cannot open the database file ({text})"
    reaching = isinstance(e, operational) or isinstance(orig, operational)
    if reaching and any(m in low for m in _CONNECTION_LOST):
        return f"{name}: the connection to the database was lost ({text})"
    if "connect" in low and reaching:
        return f"{name}: cannot connect to the database ({text})"
    return f"{name}: {text}"


def _identity(value: Any) -> Any:
    return value


class SqliteDialect(Dialect):
    """sqlite3 in autocommit mode: a write transaction is an explicit BEGIN IMMEDIATE, so the
    write lock is taken up front (under busy_timeout) and never half-way through a commit; a read
    is one statement in SQLite's implicit transaction."""

    name = "sqlite"
    errors = (sqlite3.Error,)
    operational = (sqlite3.OperationalError,)
    integrity = (sqlite3.IntegrityError,)
    # A JSON array parameter: one statement text whatever the list's length (so sqlite3's
    # statement cache keeps it prepared) and no bound on the number of host parameters.
    in_list = "IN (SELECT value FROM json_each(?))"
    no_limit = -1

    single_writer = True

    def __init__(self, memory: bool = False):
        self.shared = memory

    def in_values(self, values: Sequence) -> Any:
        return json_dumps(list(values))

    def json(self, value: Any) -> Any:
        return None if value is None else json_dumps(value)

    def read_json(self, raw: Any) -> Any:
        """A JSON column's value. Its text comes back as a number when it is one: the column's
        declared type (JSON) gives it numeric affinity, so SQLite stores the text ``0`` as 0."""
        return loads(raw) if isinstance(raw, str) else raw

    def time(self, value: datetime | None) -> Any:
        """SQLAlchemy's text for a naive-UTC DATETIME on SQLite: it sorts in time order."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: statelang stores aware UTC times only")
        return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]   # less its "+00:00"

    def read_time(self, raw: Any) -> datetime | None:
        """The aware time of a column's text. What `time` wrote (naive UTC) is read with the UTC
        offset appended: a seventh of the cost of reading it naive and replacing its tzinfo
        (``replace`` takes keywords), which a history page pays per event."""
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw + "+00:00")
            if value.tzinfo is not None:   # (a date alone reads naive, offset and all)
                return value
        except ValueError:   # text with an offset of its own
            pass
        value = datetime.fromisoformat(raw)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """COMMIT as a statement, not ``conn.commit()``: the statement stays prepared in sqlite3's
        cache, where ``commit()`` prepares it afresh each time (11 µs of a 60 µs round here). A
        COMMIT that fails (a full disk) leaves the transaction open: it is rolled back."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    def executemany(self, conn: sqlite3.Connection, sql: str, rows: list) -> None:
        conn.executemany(sql, rows)

    def insert_ids(self, conn: sqlite3.Connection, sql: str, rows: list) -> Callable[[], list[int]]:
        plain = sql[:sql.rindex(" RETURNING ")]   # lastrowid answers without a result row
        ids = [conn.execute(plain, row).lastrowid for row in rows]
        return lambda: ids

    def insert_id(self, conn: sqlite3.Connection, sql: str, params: list) -> tuple[int | None, Callable[[], int]]:
        new = conn.execute(sql[:sql.rindex(" RETURNING ")], params).lastrowid
        return new, lambda: new

    def duplicate_execution(self, e: BaseException | None) -> bool:
        return isinstance(e, sqlite3.IntegrityError) and "executions.execution_arn" in str(e)

    def require(self, conn: sqlite3.Connection, sql: str, params: tuple, error: BaseException) -> None:
        if conn.execute(sql, params).fetchone() is None:   # local: no round trip to save
            raise error


_MULTI_ROWS = 64   # rows of one multi-row INSERT; more go through executemany


class PostgresDialect(Dialect):
    """psycopg 3 in autocommit mode with every statement prepared on first use.

    A write transaction runs in pipeline mode: its statements (BEGIN, the inserts, updates and
    deletes, COMMIT) go to the server together and their results come back together, so a commit
    that needs no answer half-way costs one round trip. Reads are single statements."""

    name = "postgresql"
    in_list = "= ANY(?)"
    for_update = " FOR UPDATE"
    skip_locked = " SKIP LOCKED"
    no_limit = None

    def __init__(self):
        import psycopg
        from psycopg.types.json import Jsonb
        self._psycopg = psycopg
        self._jsonb = Jsonb
        self.errors = (psycopg.Error,)
        self.operational = (psycopg.OperationalError,)
        self.integrity = (psycopg.errors.IntegrityError,)
        self._texts: dict[str, str] = {}
        self._many: dict[tuple[str, int], str] = {}
        self._composable: frozenset[str] = frozenset()

    def sql(self, text: str) -> str:
        out = self._texts.get(text)
        if out is None:
            out = self._texts[text] = text.replace("?", "%s")
        return out

    def in_values(self, values: Sequence) -> Any:
        return list(values)

    def json(self, value: Any) -> Any:
        return None if value is None else self._jsonb(value)

    read_json = staticmethod(_identity)   # psycopg decodes JSONB (with jsontext.loads, see setup)

    def time(self, value: datetime | None) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: statelang stores aware UTC times only")
        return value

    def read_time(self, raw: Any) -> datetime | None:
        if raw is None:
            return None
        return raw if raw.tzinfo is UTC else raw.astimezone(UTC)

    def setup(self, conn: Any) -> None:
        from psycopg.types.json import set_json_dumps, set_json_loads
        if conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()   # the pool's liveness probe may have left a transaction open
        conn.autocommit = True
        conn.prepare_threshold = 0   # prepare every statement on first use: they all recur
        set_json_dumps(json_dumps, context=conn)
        set_json_loads(loads, context=conn)
        conn.execute("SET TIME ZONE 'UTC'")

    def may_compose(self, statements: Sequence[str]) -> None:
        self._composable = frozenset(self.sql(t) for t in statements)

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[_Held]:
        """The transaction's statements are held until it ends, as long as each is one the store
        declared composable (`may_compose`) and none repeats; then they go to the server as one
        statement of data-modifying CTEs. In autocommit mode a single statement is a transaction
        of its own, so BEGIN and COMMIT need not be sent, and the client's CPU per statement is
        paid once (measured: a round of five events and a frame took 234 µs of client CPU and
        430 µs in all as four pipelined statements, 98 µs and 237 µs as one).

        Any other statement, or a repeated one, sends BEGIN and what is held ahead of it in a
        pipeline, and the rest follows there: BEGIN ... COMMIT as plain statements, since
        psycopg's own `Connection.transaction` syncs the pipeline at its ends (measured: ~3 round
        trips for a two-insert commit against ~1.7 this way). An error anywhere rolls the whole
        of it back."""
        held = _Held(conn, self._composable)
        try:
            yield held
            held.send()
        except BaseException:
            held.abandon()
            if not conn.closed and conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            raise

    def insert_ids(self, conn: Any, sql: str, rows: list) -> Callable[[], list[int]]:
        cur = conn.cursor()
        cur.executemany(sql, rows, returning=True)

        def ids() -> list[int]:
            out = []
            for _ in rows:
                out.append(cur.fetchone()[0])
                cur.nextset()
            return out
        return ids

    def executemany(self, conn: _Held, sql: str, rows: list) -> None:
        """An INSERT ... VALUES of several rows as one statement of several VALUES rows: psycopg's
        executemany sends each row as a message of its own (measured: ~30% of a 12-event commit's
        client CPU). Statement texts are cached by row count, so each is prepared once. One row is
        one plain execute (a round's frame): executemany's machinery costs more than the row."""
        if len(rows) == 1:
            conn.execute(sql, rows[0])
            return None
        if 1 < len(rows) <= _MULTI_ROWS:
            many = self._many.get((sql, len(rows)))
            if many is None:
                at = sql.find(" VALUES (")
                end = sql.find(")", at) + 1
                if at < 0 or end <= 0:
                    self._many[(sql, len(rows))] = ""
                    return conn.cursor().executemany(sql, rows)
                one = sql[at + 8:end]
                many = self._many[(sql, len(rows))] = f"{sql[:at]} VALUES {', '.join([one] * len(rows))}{sql[end:]}"
            if many:
                conn.execute(many, [v for row in rows for v in row], key=sql)
                return None
        conn.cursor().executemany(sql, rows)
        return None

    def insert_id(self, conn: Any, sql: str, params: list) -> tuple[int | None, Callable[[], int]]:
        cur = conn.execute(sql, params)   # its result arrives with the rest of the pipeline's
        return None, lambda: cur.fetchone()[0]

    def duplicate_execution(self, e: BaseException | None) -> bool:
        return (isinstance(e, self._psycopg.errors.UniqueViolation)
                and e.diag.constraint_name == "uq_executions_execution_arn")

    def require(self, conn: _Held, sql: str, params: tuple, error: BaseException) -> None:
        """No row: a division by zero, which aborts the transaction inside the pipeline (or the
        one statement it is sent as), so the check costs no round trip of its own (fetching its
        answer would cost one per commit)."""
        conn.execute(self.sql(f"SELECT 1 / (SELECT count(*) FROM ({sql}) AS g)::int"), params, key=self.sql(sql))

    def guard_failed(self, e: BaseException) -> bool:
        return isinstance(e, self._psycopg.errors.DivisionByZero)

    def is_broken(self, conn: Any) -> bool:
        return conn.closed or conn.broken


class _Held:
    """A PostgreSQL write transaction's connection as the store sees it (see
    `PostgresDialect.transaction`): composable statements are held, and anything else opens the
    transaction on the connection itself, in a pipeline."""

    def __init__(self, conn: Any, composable: frozenset[str]):
        self._conn = conn
        self._composable = composable
        self._held: list[tuple[str, str, Sequence]] = []   # (key, text, parameters)
        self._pipeline: Any = None   # once open: the pipeline, whose statements follow BEGIN

    def execute(self, sql: str, params: Sequence | None = None, *, key: str | None = None) -> Any:
        """Hold a composable statement (`key`: the store's text it was made from, where the text
        sent differs) and answer None, as nothing reads a held statement's result; run any other."""
        if self._pipeline is None:
            key = key or sql
            if key in self._composable and all(k != key for k, _, _ in self._held):
                self._held.append((key, sql, params or ()))
                return None
            self._open()
        return self._conn.execute(sql, params)

    def cursor(self) -> Any:
        self._open()
        return self._conn.cursor()

    def _open(self) -> None:
        if self._pipeline is not None:
            return
        self._pipeline = self._conn.pipeline()
        self._pipeline.__enter__()
        self._conn.execute("BEGIN")
        held, self._held = self._held, []
        for _, text, params in held:
            self._conn.execute(text, params)

    def send(self) -> None:
        """End the transaction: COMMIT in the open pipeline, or what is held as one statement."""
        if self._pipeline is not None:
            self._conn.execute("COMMIT")
            pipeline, self._pipeline = self._pipeline, None
            pipeline.__exit__(None, None, None)
            return
        held, self._held = self._held, []
        if len(held) == 1:
            self._conn.execute(held[0][1], held[0][2])
        elif held:
            # Data-modifying CTEs run once each, to completion, whether or not the final SELECT
            # reads them; a plain SELECT (the lease check) runs only if read, so it is read there.
            ctes = ", ".join(f"s{i} AS ({text})" for i, (_, text, _) in enumerate(held))
            checks = [f"s{i}" for i, (_, text, _) in enumerate(held) if text.startswith("SELECT")]
            final = f"SELECT count(*) FROM {', '.join(checks)}" if checks else "SELECT 1"
            self._conn.execute(f"WITH {ctes} {final}", [v for _, _, params in held for v in params])

    def abandon(self) -> None:
        """The block raised: nothing held is sent, and an open pipeline is closed (its results,
        an error among them, come back to `PostgresDialect.transaction`, which rolls back)."""
        self._held = []
        if self._pipeline is not None:
            pipeline, self._pipeline = self._pipeline, None
            pipeline.__exit__(*sys.exc_info())


def for_engine(engine: Engine) -> Dialect:
    """The dialect of a SQLAlchemy engine built by `statelang.store.make_engine`."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        return SqliteDialect(memory=not database or database == ":memory:")
    if engine.dialect.name == "postgresql":
        return PostgresDialect()
    raise ValueError(f"no statelang dialect for {engine.dialect.name}")
