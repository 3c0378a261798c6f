"""Alembic environment for the statelang store.

`statelang.store.open_store` passes its own connection (already inside a transaction holding the migration
lock) through ``config.attributes["connection"]``; run by hand, the URL comes from ``-x url=...``
or ``STATELANG_DB``. SQLite migrations use batch mode, since SQLite cannot alter most of a table
in place.
"""

from __future__ import annotations

import os

from alembic import context

from statelang.store.schema import metadata

config = context.config


def _configure(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("STATELANG_DB")
    if not url:
        raise SystemExit("give the database as -x url=... or STATELANG_DB")
    from statelang.store import make_engine
    engine, _name = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
