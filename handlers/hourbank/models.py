"""HourBank's tables: who may trade, what is offered, what is asked, and every hour's whereabouts.

Hours are stored as integer *centi-hours* (1.25 h -> 125). Binary floats do not add exactly, and
the ledger's one promise — no hour is ever created or lost — must hold to the last digit, so
every column that holds an amount is an integer and only the edges (handler input and output)
speak in hours.

Status transitions, as the seeds describe them:

    ServiceRequest  INITIATED -> VALIDATING -> ESCROWED -> AWAITING_RESPONSE
                    AWAITING_RESPONSE -> ACCEPTED | NEGOTIATING | REJECTED | EXPIRED
                    NEGOTIATING -> NEGOTIATING | ACCEPTED | REJECTED | EXPIRED
                    ACCEPTED -> PENDING_START_CONFIRMATION -> IN_PROGRESS
                    IN_PROGRESS -> PENDING_COMPLETION_CONFIRMATION -> COMPLETED -> PAID
                    any open status -> DISPUTED -> (back to where it was) | PAID | REFUNDED
                    before the service starts -> REFUNDED  (the escrow cancellation workflow)
    Escrow          ESCROWED -> RELEASED | CANCELLED  (frozen while a dispute is open)
    Dispute         OPEN -> ESCALATED (7 days of admin silence) -> RESOLVED | DISMISSED; an escalated
                    dispute stays decidable, and a policy decides it after a further deadline
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CENTI = 100  # centi-hours per hour

REQUEST_STATUSES = ("INITIATED", "VALIDATING", "ESCROWED", "AWAITING_RESPONSE", "ACCEPTED",
                    "NEGOTIATING", "PENDING_START_CONFIRMATION", "IN_PROGRESS",
                    "PENDING_COMPLETION_CONFIRMATION", "COMPLETED", "PAID", "REJECTED", "EXPIRED",
                    "DISPUTED", "REFUNDED")
OPEN_REQUEST_STATUSES = ("INITIATED", "VALIDATING", "ESCROWED", "AWAITING_RESPONSE", "ACCEPTED",
                         "NEGOTIATING", "PENDING_START_CONFIRMATION", "IN_PROGRESS",
                         "PENDING_COMPLETION_CONFIRMATION", "COMPLETED", "DISPUTED")
# Seed 002's schema also declares CREATING_ESCROW, VALIDATING_BALANCE, RELEASING, CANCELLING and
# FAILED, and the types REFUND and DISPUTE_RESOLUTION. None is ever observable here: an escrow is
# created, released or cancelled in one ledger transaction (so no in-between status is committed),
# a failed hold creates no escrow, and refunds and dispute settlements close the request's own
# escrow rather than opening another. The statuses and types an escrow really takes:
ESCROW_STATUSES = ("ESCROWED", "RELEASED", "CANCELLED")
ESCROW_TYPES = ("SERVICE_REQUEST",)
TRANSACTION_TYPES = ("ESCROW", "TRANSFER", "REFUND", "WELCOME_BONUS", "DISPUTE_RESOLUTION",
                     "ADMIN_ADJUSTMENT")
MINT_TYPES = ("WELCOME_BONUS", "ADMIN_ADJUSTMENT")
DISPUTE_STATUSES = ("OPEN", "RESOLVED", "DISMISSED", "ESCALATED")
OPEN_DISPUTE_STATUSES = ("OPEN", "ESCALATED")   # both hold the escrow frozen, both await a decision
# The escrow workflows and a live request: hours go back to the requester only before the service
# started (after that, a dispute decides), and to the provider only once the service was confirmed.
CANCELLABLE_REQUEST_STATUSES = ("INITIATED", "VALIDATING", "ESCROWED", "AWAITING_RESPONSE", "NEGOTIATING",
                                "ACCEPTED", "REJECTED", "EXPIRED")
RELEASABLE_REQUEST_STATUSES = ("COMPLETED",)
CLOSED_REQUEST_STATUSES = ("PAID", "REJECTED", "EXPIRED", "REFUNDED")
RESOLUTIONS = ("REFUND_REQUESTER", "PAY_PROVIDER", "PARTIAL_REFUND", "DISMISS")


class Base(DeclarativeBase):
    pass


class User(Base):
    """A member. `response_hours` is the provider's promised answer time (2-72 h)."""

    __tablename__ = "hb_user"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")   # ACTIVE | SUSPENDED
    response_hours: Mapped[int] = mapped_column(Integer, default=24)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Service(Base):
    """An offer of a provider's time."""

    __tablename__ = "hb_service"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("hb_user.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="AVAILABLE")  # AVAILABLE | UNAVAILABLE


class ServiceRequest(Base):
    __tablename__ = "hb_service_request"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64), index=True)
    requester_id: Mapped[str] = mapped_column(String(64), index=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(40), index=True)
    step_function_execution_arn: Mapped[str | None] = mapped_column(String(400))
    estimated_hours: Mapped[int] = mapped_column(Integer)        # centi-hours asked for
    agreed_hours: Mapped[int | None] = mapped_column(Integer)    # centi-hours finally agreed
    offered_hours: Mapped[int | None] = mapped_column(Integer)   # the counter-offer on the table
    offered_by: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    escrow_id: Mapped[str | None] = mapped_column(String(64), index=True)
    negotiation_round: Mapped[int] = mapped_column(Integer, default=0)
    # The task token the workflow waits on now, and for whom: answering it is how an actor moves
    # the workflow, and how a dispute interrupts whatever wait is under way.
    pending_token: Mapped[str | None] = mapped_column(String(200))
    awaiting: Mapped[str | None] = mapped_column(String(40))
    awaiting_actor: Mapped[str | None] = mapped_column(String(64))
    resume_status: Mapped[str | None] = mapped_column(String(40))  # status before a dispute
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Escrow(Base):
    __tablename__ = "hb_escrow"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    from_user_id: Mapped[str] = mapped_column(String(64), index=True)
    to_user_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[int] = mapped_column(Integer)                 # centi-hours held now
    status: Mapped[str] = mapped_column(String(24), index=True)
    escrow_type: Mapped[str] = mapped_column(String(24), default="SERVICE_REQUEST")
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    step_function_execution_arn: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserBalance(Base):
    """Available + escrowed = total. `version` grows by one on every write: a writer updates
    `WHERE version = <what it read>`, so a concurrent writer it did not see makes it retry."""

    __tablename__ = "hb_user_balance"
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    total_balance: Mapped[int] = mapped_column(Integer, default=0)
    available_balance: Mapped[int] = mapped_column(Integer, default=0)
    escrowed_balance: Mapped[int] = mapped_column(Integer, default=0)
    last_transaction_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_by: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TransactionLog(Base):
    """One row per change of one balance bucket ("available" or "escrowed") of one user, so the
    log alone rebuilds every balance: the sum of a bucket's amounts is the bucket."""

    __tablename__ = "hb_transaction_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    transaction_type: Mapped[str] = mapped_column(String(24), index=True)
    bucket: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(Integer)                 # signed centi-hours
    balance_before: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    related_entity_id: Mapped[str | None] = mapped_column(String(64))
    step_function_execution_arn: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_hb_txlog_user_bucket", "user_id", "bucket", "id"),)


class AppliedKey(Base):
    """Idempotency keys of ledger operations already applied, with the result they returned: a
    re-run of the same task entry (a retry after a crash) gets the same answer, moves nothing."""

    __tablename__ = "hb_applied_key"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    operation: Mapped[str] = mapped_column(String(40))
    result: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dispute(Base):
    __tablename__ = "hb_dispute"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    escrow_id: Mapped[str | None] = mapped_column(String(64), index=True)
    raised_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="OPEN")
    resolution: Mapped[str | None] = mapped_column(String(24))
    refund_hours: Mapped[int | None] = mapped_column(Integer)
    admin_id: Mapped[str | None] = mapped_column(String(64))
    pending_token: Mapped[str | None] = mapped_column(String(200))
    step_function_execution_arn: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """The in-app notification outbox: rows a delivery worker sends and marks."""

    __tablename__ = "hb_notification"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    request_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[dict] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_hb_notification_dedupe"),)


class ReconciliationReport(Base):
    __tablename__ = "hb_reconciliation_report"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checked_users: Mapped[int] = mapped_column(Integer)
    discrepancies: Mapped[list] = mapped_column(JSON)
    minted: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    step_function_execution_arn: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
