"""The first schema: records, executions, events, frames, messages, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written out in full rather than imported from `store.schema`, so that this revision keeps
building the same tables when the schema module moves on to later revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
ARN = sa.String(2048)


def _execution_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["execution_arn"], ["executions.execution_arn"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("arn", ARN, nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
        sa.UniqueConstraint("kind", "arn", name="uq_records_kind_arn"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("execution_arn", ARN, nullable=False),
        sa.Column("state_machine_arn", ARN, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("start_date", TIME, nullable=False),
        sa.Column("stop_date", TIME),
        sa.Column("input", sa.Text()),
        sa.Column("output", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("cause", sa.Text()),
        sa.Column("redrive_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("role_arn", sa.Text()),
        sa.Column("definition", sa.Text()),
        sa.Column("next_event_id", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("extra", JSON),
        sa.Column("lease_owner", sa.String(256)),
        sa.Column("lease_expires", TIME),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
        sa.UniqueConstraint("execution_arn", name="uq_executions_execution_arn"),
    )
    op.create_index("ix_executions_state_machine_arn_start_date", "executions", ["state_machine_arn", "start_date"])
    op.create_index("ix_executions_status", "executions", ["status"])
    op.create_table(
        "events",
        sa.Column("execution_arn", ARN, nullable=False),
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("previous_event_id", sa.Integer()),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("timestamp", TIME, nullable=False),
        sa.Column("details", JSON),
        _execution_fk(),
        sa.PrimaryKeyConstraint("execution_arn", "event_id", name="pk_events"),
    )
    op.create_table(
        "frames",
        sa.Column("execution_arn", ARN, nullable=False),
        sa.Column("frame_id", sa.String(512), nullable=False),
        sa.Column("body", JSON, nullable=False),
        _execution_fk(),
        sa.PrimaryKeyConstraint("execution_arn", "frame_id", name="pk_frames"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("execution_arn", ARN, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("due", TIME, nullable=False),
        sa.Column("frame_id", sa.String(512), server_default=sa.text("''"), nullable=False),
        sa.Column("seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("payload", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_due", "messages", ["due"])
    op.create_index("ix_messages_execution_arn_due", "messages", ["execution_arn", "due"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), autoincrement=True),
        sa.Column("token", sa.String(1024), nullable=False),
        sa.Column("execution_arn", ARN, nullable=False),
        sa.Column("frame_id", sa.String(512), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("activity_arn", ARN),
        sa.Column("input", sa.Text()),
        sa.Column("state", sa.Text()),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("queued", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _execution_fk(),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("token", name="uq_tokens_token"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tokens_execution_arn_frame_id", "tokens", ["execution_arn", "frame_id"])
    op.create_index("ix_tokens_activity_queue", "tokens", ["activity_arn", "id"],
                    sqlite_where=sa.text("queued"), postgresql_where=sa.text("queued"))


def downgrade() -> None:
    for table in ("tokens", "messages", "frames", "events", "executions", "records"):
        op.drop_table(table)
