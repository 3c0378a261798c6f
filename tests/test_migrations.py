"""Alembic's revisions build exactly `store.schema`, on SQLite and PostgreSQL, and `open_store`
brings any database it is given to head (or refuses one it cannot).

The schema check is Alembic's own autogenerate comparison: a column, type, index or constraint
added to `store/schema.py` without a revision shows up as a diff and fails here.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from statelang.runtime.storage import Commit
from statelang.store import HEAD, StoreError, alembic_config, make_engine, open_store
from statelang.store.schema import metadata

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"records", "executions", "events", "frames", "messages", "tokens", "workers"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _diffs(url: str) -> list:
    engine, _ = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, metadata)
    finally:
        engine.dispose()


def _revision(url: str) -> set[str]:
    engine, _ = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine, _ = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _head() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_upgrade_head_builds_exactly_the_schema_module(url, monkeypatch):
    monkeypatch.setenv("STATELANG_DB", url)
    assert _diffs(url) != []            # an empty database differs: the comparison can fail
    command.upgrade(alembic_config(), "head")
    assert _revision(url) == _head()
    assert _diffs(url) == []
    assert _tables(url) == TABLES


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(url, monkeypatch):
    monkeypatch.setenv("STATELANG_DB", url)
    cfg = alembic_config()
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    assert _tables(url) == set() and _revision(url) == set()
    command.upgrade(cfg, "head")
    assert _diffs(url) == []


def test_open_store_upgrades_a_fresh_database_and_keeps_an_existing_one(url):
    s = open_store(url)
    assert _revision(url) == _head() and _diffs(url) == []
    s.put_record("stateMachine", "arn:sm", {"name": "sm"})
    s.close()
    again = open_store(url)
    assert again.get_record("stateMachine", "arn:sm") == {"name": "sm"}
    again.close()


def test_open_store_upgrades_a_database_left_at_an_older_revision(url, monkeypatch):
    monkeypatch.setenv("STATELANG_DB", url)
    command.upgrade(alembic_config(), "head")
    command.downgrade(alembic_config(), "base")   # the oldest state there is: version table, no tables
    assert _tables(url) == set()
    s = open_store(url)
    s.create_execution({"executionArn": "arn:e", "stateMachineArn": "arn:sm", "name": "e", "status": "RUNNING",
                        "startDate": datetime.now(UTC),
                        "definition": "{}"}, Commit("arn:e"))
    s.close()
    assert _revision(url) == _head() and _diffs(url) == []


def test_the_head_the_store_checks_is_alembics_head():
    """`open_store` compares a database's revision with `HEAD` before it loads Alembic: a new
    revision without `HEAD` moved to it fails here."""
    assert {HEAD} == _head()


def test_a_database_at_head_opens_without_loading_alembic(url, monkeypatch):
    """Alembic (and the Mako and Pygments it brings) costs ~130 ms to import and ~15,000 objects
    that every full garbage collection walks: a database already at head does without it, one
    behind loads it and upgrades."""
    probe = ("import sys; from statelang.store import open_store; open_store(sys.argv[1]).close(); "
             "print('alembic' in sys.modules)")

    def loads_alembic() -> bool:
        proc = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip() == "True"

    assert loads_alembic()          # a fresh database: Alembic builds it
    assert not loads_alembic()      # at head: opened without Alembic
    assert _revision(url) == _head()
    monkeypatch.setenv("STATELANG_DB", url)
    command.downgrade(alembic_config(), "-1")
    assert _revision(url) != _head()
    assert loads_alembic()          # one revision behind: Alembic upgrades it
    assert _revision(url) == _head() and _diffs(url) == []


def test_a_database_from_a_newer_version_is_refused(url):
    open_store(url).close()
    engine, _ = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    engine.dispose()
    with pytest.raises(StoreError, match="ffff_future"):
        open_store(url)


def test_concurrent_opens_of_a_fresh_database_migrate_once(url):
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def opener():
        try:
            start.wait(30)
            open_store(url).close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _revision(url) == _head() and _diffs(url) == []


def test_opening_waits_for_a_writer_holding_a_file_not_yet_in_wal_mode(tmp_path):
    """Switching a file to WAL needs its exclusive lock, and SQLite refuses the switch at once,
    without its busy handler, while another connection writes (several workers opening one new
    database together saw "database is locked"): the open waits for the writer, as the busy
    timeout promises."""
    path = tmp_path / "shared.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE theirs (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO theirs VALUES (1)")
    done = threading.Timer(0.3, writer.execute, ("COMMIT",))
    done.start()
    try:
        store = open_store(f"sqlite:///{path}")
    finally:
        done.join()
        writer.close()
    store.close()
    assert _revision(f"sqlite:///{path}") == _head()


def test_the_alembic_command_line_runs_our_migrations(sqlite_url):
    proc = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "store" / "alembic.ini"),
                           "-x", f"url={sqlite_url}", "upgrade", "head"],
                          capture_output=True, text=True, cwd=ROOT / "tests", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _revision(sqlite_url) == _head() and _diffs(sqlite_url) == []


def test_events_keyed_by_arn_move_to_execution_ids_and_back_with_every_row(url, monkeypatch):
    """Revision 0002 rebuilds the history table keyed by executions.id: every event of a database
    written at 0001 is there after the upgrade (read through the store), and after a downgrade."""
    monkeypatch.setenv("STATELANG_DB", url)
    cfg = alembic_config()
    command.upgrade(cfg, "0001")
    engine, _ = make_engine(url)
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    arns = [f"arn:aws:states:us-east-1:123456789012:execution:sm:e{i}" for i in range(3)]
    try:
        with engine.begin() as conn:
            for i, arn in enumerate(arns):
                conn.execute(text("INSERT INTO executions (execution_arn, state_machine_arn, name, status, start_date) "
                                  "VALUES (:a, 'arn:sm', :n, 'RUNNING', :t)"), {"a": arn, "n": f"e{i}", "t": t0})
                for eid in range(1, 3 + i):
                    conn.execute(text("INSERT INTO events (execution_arn, event_id, previous_event_id, type, timestamp, "
                                      "details) VALUES (:a, :e, :p, 'PassStateEntered', :t, :d)"),
                                 {"a": arn, "e": eid, "p": eid - 1, "t": t0,
                                  "d": json.dumps({"stateEnteredEventDetails": {"name": f"S{eid}"}})})
    finally:
        engine.dispose()
    command.upgrade(cfg, "head")
    assert _diffs(url) == []
    s = open_store(url)
    try:
        for i, arn in enumerate(arns):
            history = s.history(arn)
            assert [e["id"] for e in history] == list(range(1, 3 + i))
            assert [e["stateEnteredEventDetails"]["name"] for e in history] == [f"S{k}" for k in range(1, 3 + i)]
            assert history[0]["timestamp"] == t0
    finally:
        s.close()
    command.downgrade(cfg, "0001")
    engine, _ = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT execution_arn, count(*) FROM events GROUP BY execution_arn "
                                     "ORDER BY execution_arn")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(arn, 2 + i) for i, arn in enumerate(arns)]
