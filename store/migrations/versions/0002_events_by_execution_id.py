"""History events keyed by the execution's integer id instead of its ARN (WITHOUT ROWID on SQLite).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

The table is rebuilt rather than altered: SQLite cannot change a table's key or its rowid-ness in
place. The old table is renamed aside (its constraints too, on PostgreSQL, whose constraint
names are schema-wide), the new one created under the final names, the rows copied across
through a join on the executions table, and the old one dropped. Downgrade does the reverse.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
_REST = "previous_event_id, type, timestamp, details"


def _set_aside(fk_name: str) -> None:
    """Rename the current events table (and, on PostgreSQL, its key and foreign key) out of the way."""
    op.rename_table("events", "events_old")
    if op.get_bind().dialect.name == "postgresql":
        for name in ("pk_events", fk_name):
            op.execute(f'ALTER TABLE events_old RENAME CONSTRAINT "{name}" TO "{name}_old"')


def upgrade() -> None:
    _set_aside("fk_events_execution_arn_executions")
    op.create_table(
        "events",
        sa.Column("execution_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("previous_event_id", sa.Integer()),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("details", JSON),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE",
                                name="fk_events_execution_id_executions"),
        sa.PrimaryKeyConstraint("execution_id", "event_id", name="pk_events"),
    )
    op.execute(f"INSERT INTO events (execution_id, event_id, {_REST}) "
               f"SELECT x.id, o.event_id, o.previous_event_id, o.type, o.timestamp, o.details "
               f"FROM events_old AS o JOIN executions AS x ON x.execution_arn = o.execution_arn")
    op.drop_table("events_old")


def downgrade() -> None:
    _set_aside("fk_events_execution_id_executions")
    op.create_table(
        "events",
        sa.Column("execution_arn", sa.String(2048), nullable=False),
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("previous_event_id", sa.Integer()),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("details", JSON),
        sa.ForeignKeyConstraint(["execution_arn"], ["executions.execution_arn"], ondelete="CASCADE",
                                name="fk_events_execution_arn_executions"),
        sa.PrimaryKeyConstraint("execution_arn", "event_id", name="pk_events"),
    )
    op.execute(f"INSERT INTO events (execution_arn, event_id, {_REST}) "
               f"SELECT x.execution_arn, o.event_id, o.previous_event_id, o.type, o.timestamp, o.details "
               f"FROM events_old AS o JOIN executions AS x ON x.id = o.execution_id")
    op.drop_table("events_old")
