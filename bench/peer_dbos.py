"""DBOS, the durable-workflow peer of ``bench.bench_durable``: a 5-step workflow in one process.

The workload is the one of bench/README.md ("Other peers"): ``@DBOS.workflow`` calling five
``@DBOS.step``s, each step adding its result to the value as b6's Pass states add theirs under
``$.s0`` .. ``$.s4``. A workflow runs in the calling thread; client threads call it side by side.

DBOS commits once per step (the workflow's row, each step's output, the result): that is its
durability model, and the only one it has. Its system database is configured as statelang's store
is, for equal durability:

* SQLite: DBOS's own connection setup (IMMEDIATE transactions, busy_timeout, foreign keys) plus
  ``journal_mode=WAL`` and ``synchronous=NORMAL``, statelang's defaults. DBOS's defaults are a
  rollback journal with synchronous=FULL (an fsync per commit), which would measure the disk.
  The engine is DBOS's own settings passed as ``system_database_engine``.
* PostgreSQL: the URL as given (``postgresql+psycopg://``); the server's synchronous_commit holds.

DBOS is a process-wide singleton: one ``DbosPeer`` at a time (``__enter__`` launches it,
``__exit__`` destroys it, keeping the registered functions for the next).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID

STEPS = 5


@DBOS.step()
def _step(i: int, value: dict) -> dict:
    return {**value, f"s{i}": {"i": i}}


@DBOS.workflow()
def five_steps(value: dict) -> dict:
    for i in range(STEPS):
        value = _step(i, value)
    return value


def _sqlite_engine(url: str) -> sa.Engine:
    """DBOS's SQLite engine (its _sys_db_sqlite connect hook and pool) with WAL + NORMAL."""
    engine = sa.create_engine(url, pool_size=20, max_overflow=0, pool_timeout=30, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


class DbosPeer:
    """DBOS launched on one system database; ``run(value)`` runs one workflow to its end."""

    name = "dbos"

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        config: DBOSConfig = {"name": "statelang-bench", "system_database_url": url, "log_level": "WARNING"}
        if url.startswith("sqlite"):
            self._engine = config["system_database_engine"] = _sqlite_engine(url)
            self.settings = "SQLite WAL, synchronous=NORMAL"
        else:
            self.settings = "PostgreSQL"
        self._config = config

    def __enter__(self) -> DbosPeer:
        logging.getLogger("dbos").setLevel(logging.WARNING)
        DBOS(config=self._config)
        DBOS.launch()
        return self

    def __exit__(self, *exc_info: object) -> None:
        DBOS.destroy(destroy_registry=False)
        if self._engine is not None:
            self._engine.dispose()

    def run(self, value: dict) -> tuple[str, dict]:
        """(status, output) of one workflow, read back from the system database as a client would."""
        workflow_id = uuid.uuid4().hex
        with SetWorkflowID(workflow_id):
            output = five_steps(value)
        return self.status(workflow_id), output

    def status(self, workflow_id: str) -> str:
        found = DBOS.get_workflow_status(workflow_id)
        return "MISSING" if found is None else str(found.status)
