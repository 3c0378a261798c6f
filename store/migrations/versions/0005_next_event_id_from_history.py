"""The executions row no longer keeps the next event id: it follows the history's last event, so
a step's commit writes its events and checkpoint and leaves the row (and its index on the running
ones) alone until the execution ends.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35; the column is in no index or constraint): a
    # batch rebuild of executions would cascade to events.
    op.drop_column("executions", "next_event_id")


def downgrade() -> None:
    op.add_column("executions", sa.Column("next_event_id", sa.Integer(), nullable=False,
                                          server_default=sa.text("1")))
    op.execute("UPDATE executions SET next_event_id = 1 + COALESCE("
               "(SELECT MAX(event_id) FROM events WHERE events.execution_id = executions.id), 0)")
