"""History events keyed by one packed integer; only running executions indexed by status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

``events.seq = execution_id * 2**24 + event_id`` becomes the key (SQLite's rowid), replacing the
(execution_id, event_id) primary key and the second b-tree SQLite kept for it. The table is
rebuilt as in 0002: set aside, created under the final names, copied, dropped. The status index
becomes a partial index of RUNNING executions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
SHIFT = 1 << 24
_FK = "fk_events_execution_id_executions"
_COPIED = "execution_id, event_id, previous_event_id, type, timestamp, details"


def _set_aside() -> None:
    op.rename_table("events", "events_old")
    if op.get_bind().dialect.name == "postgresql":
        for name in ("pk_events", _FK):
            op.execute(f'ALTER TABLE events_old RENAME CONSTRAINT "{name}" TO "{name}_old"')


def _columns(*key: sa.Column) -> list:
    return [*key,
            sa.Column("execution_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("previous_event_id", sa.Integer()),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("timestamp", TIME, nullable=False),
            sa.Column("details", JSON),
            sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE", name=_FK)]


def upgrade() -> None:
    _set_aside()
    op.create_table("events",
                    *_columns(sa.Column("seq", sa.Integer().with_variant(sa.BigInteger(), "postgresql"),
                                        autoincrement=False, nullable=False)),
                    sa.PrimaryKeyConstraint("seq", name="pk_events"))
    op.execute(f"INSERT INTO events (seq, {_COPIED}) SELECT execution_id * {SHIFT} + event_id, {_COPIED} "
               f"FROM events_old")
    op.drop_table("events_old")
    op.drop_index("ix_executions_status", table_name="executions")
    op.create_index("ix_executions_running", "executions", ["status"],
                    sqlite_where=sa.text("status = 'RUNNING'"), postgresql_where=sa.text("status = 'RUNNING'"))


def downgrade() -> None:
    op.drop_index("ix_executions_running", table_name="executions")
    op.create_index("ix_executions_status", "executions", ["status"])
    _set_aside()
    op.create_table("events", *_columns(),
                    sa.PrimaryKeyConstraint("execution_id", "event_id", name="pk_events"))
    op.execute(f"INSERT INTO events ({_COPIED}) SELECT {_COPIED} FROM events_old")
    op.drop_table("events_old")
