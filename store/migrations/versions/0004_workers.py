"""Live workers and their heartbeats (a dead worker's leases are taken over at once), and the
claims of an execution since its last completed step (poison that kills workers is quarantined).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it): a batch rebuild of executions would cascade to events.
    op.add_column("executions", sa.Column("claims", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(256), primary_key=True),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", TIME, nullable=False),
        sa.Column("heartbeat", TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_column("executions", "claims")
