"""A payment provider with Stripe's shapes and error classes, over SQL tables.

It has a platform account and connected accounts (the marketplace's providers), payment intents
that are confirmed (and may require the customer's authentication first), transfers to connected
accounts, refunds and payouts, with balances that must add up. Failures are the provider's own:
``CardError`` for a decline, ``InvalidRequestError`` for a request that cannot succeed (so a
workflow fails fast), ``APIConnectionError``/``RateLimitError`` for transient trouble (so a workflow
retries). Payment methods follow the provider's test conventions (``pm_card_declined``,
``pm_card_authenticationRequired``); declines, injected errors and latency are configurable so that
every retry and failure path of a workflow can be driven. Every call may carry an idempotency key:
a key seen before returns the first response, so a task re-run never charges twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine as SAEngine

from statelang import HandlerError

from .tables import pay_accounts, pay_idempotency, pay_intents, pay_movements, transaction

PLATFORM = "acct_platform"
DECLINE_METHOD = "pm_card_declined"
AUTH_METHOD = "pm_card_authenticationRequired"
DELAYED_PREFIX = "pm_bank_debit"


class PaymentError(HandlerError):
    """A provider error: `error` is the provider's exception class, `code` its decline/error code."""

    def __init__(self, error: str, code: str, message: str):
        super().__init__(error, f"{code}: {message}")
        self.code = code


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    except ArithmeticError as exc:
        raise PaymentError("InvalidRequestError", "parameter_invalid_amount", f"Invalid amount: {value}") from exc
    if amount <= 0:
        raise PaymentError("InvalidRequestError", "parameter_invalid_amount", "Amount must be positive")
    return amount


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PaymentProvider:
    """``PaymentProvider(sqlalchemy_engine)``; configure with `decline`, `fail_next`, `latency`."""

    def __init__(self, engine: SAEngine, now: Callable[[], datetime] | None = None, currency: str = "usd"):
        self.engine = engine
        self.now = now or _utcnow
        self.currency = currency
        self.latency = 0.0                       # seconds every call takes (real time)
        self._declines: dict[str, str] = {}      # customer -> decline code
        self._faults: dict[str, list[str]] = {}  # operation -> pending error classes
        self._guard = threading.Lock()
        with transaction(engine) as conn:
            if conn.execute(select(pay_accounts.c.id).where(pay_accounts.c.id == PLATFORM)).first() is None:
                conn.execute(insert(pay_accounts).values(
                    id=PLATFORM, kind="platform", balance=Decimal(0), currency=currency, status="enabled",
                    created_at=self.now()))

    # -- configuration -------------------------------------------------------------------------
    def decline(self, customer: str, code: str = "card_declined") -> None:
        """Every payment by `customer` is declined with `code` (e.g. insufficient_funds)."""
        self._declines[customer] = code

    def fail_next(self, operation: str, times: int = 1, error: str = "APIConnectionError") -> None:
        """The next `times` calls of `operation` (e.g. "create_account") fail with `error`."""
        with self._guard:
            self._faults.setdefault(operation, []).extend([error] * times)

    def _enter(self, operation: str) -> None:
        if self.latency:
            time.sleep(self.latency)
        with self._guard:
            pending = self._faults.get(operation)
            fault = pending.pop(0) if pending else None
        if fault:
            code = "rate_limit" if fault == "RateLimitError" else "api_connection_error"
            raise PaymentError(fault, code, f"{operation} failed: the provider could not be reached")

    def _idempotent(self, key: str | None, operation: str, fn: Callable[[Any], dict]) -> dict:
        self._enter(operation)
        with transaction(self.engine) as conn:
            if key:
                seen = conn.execute(select(pay_idempotency).where(pay_idempotency.c.key == key)).first()
                if seen is not None:
                    if seen.operation != operation:
                        raise PaymentError("IdempotencyError", "idempotency_key_in_use",
                                           f"Key {key} was used for {seen.operation}")
                    return seen.response
            response = fn(conn)
            if key:
                conn.execute(insert(pay_idempotency).values(key=key, operation=operation, response=response))
        return response

    # -- accounts ------------------------------------------------------------------------------
    def create_account(self, email: str, business_type: str = "individual", business_name: str | None = None,
                       external_ref: str | None = None, idempotency_key: str | None = None) -> dict:
        """A connected account (a provider that can receive transfers and payouts)."""
        if not email or "@" not in email:
            raise PaymentError("InvalidRequestError", "email_invalid", f"Invalid email address: {email}")
        if business_type not in ("individual", "company"):
            raise PaymentError("InvalidRequestError", "parameter_invalid", f"Invalid business_type: {business_type}")

        def create(conn) -> dict:
            acct = "acct_" + uuid.uuid4().hex[:16]
            conn.execute(insert(pay_accounts).values(
                id=acct, kind="connected", email=email, business_type=business_type, business_name=business_name,
                external_ref=external_ref, balance=Decimal(0), currency=self.currency, status="enabled",
                created_at=self.now()))
            return {"id": acct, "object": "account", "email": email, "type": "express",
                    "business_type": business_type, "charges_enabled": True, "payouts_enabled": True}
        return self._idempotent(idempotency_key, "create_account", create)

    def account(self, account_id: str) -> dict:
        with transaction(self.engine) as conn:
            row = conn.execute(select(pay_accounts).where(pay_accounts.c.id == account_id)).first()
        if row is None:
            raise PaymentError("InvalidRequestError", "resource_missing", f"No such account: '{account_id}'")
        return {"id": row.id, "balance": float(row.balance), "currency": row.currency, "status": row.status,
                "email": row.email, "external_ref": row.external_ref}

    def _adjust(self, conn, account_id: str, delta: Decimal, may_go_negative: bool = False) -> None:
        row = conn.execute(select(pay_accounts.c.balance).where(pay_accounts.c.id == account_id)).first()
        if row is None:
            raise PaymentError("InvalidRequestError", "resource_missing", f"No such account: '{account_id}'")
        if row.balance + delta < 0 and not may_go_negative:
            raise PaymentError("InvalidRequestError", "balance_insufficient",
                               f"Account {account_id} has {row.balance} available, {-delta} needed")
        conn.execute(update(pay_accounts).where(pay_accounts.c.id == account_id)
                     .values(balance=row.balance + delta))

    # -- payment intents -----------------------------------------------------------------------
    def create_payment_intent(self, amount: Any, customer: str, payment_method: str = "pm_card_visa",
                              metadata: dict | None = None, idempotency_key: str | None = None) -> dict:
        value = _money(amount)

        def create(conn) -> dict:
            pid = "pi_" + uuid.uuid4().hex[:24]
            conn.execute(insert(pay_intents).values(
                id=pid, amount=value, currency=self.currency, customer=customer, payment_method=payment_method,
                status="requires_confirmation", amount_refunded=Decimal(0), metadata=metadata or {},
                created_at=self.now()))
            return self._intent_view(pid, value, "requires_confirmation", customer)
        return self._idempotent(idempotency_key, "create_payment_intent", create)

    def _intent_view(self, pid: str, amount: Decimal, status: str, customer: str | None,
                     refunded: Decimal = Decimal(0)) -> dict:
        return {"id": pid, "object": "payment_intent", "amount": float(amount), "currency": self.currency,
                "customer": customer, "status": status, "amount_refunded": float(refunded)}

    def _intent(self, conn, pid: str):
        row = conn.execute(select(pay_intents).where(pay_intents.c.id == pid)).first()
        if row is None:
            raise PaymentError("InvalidRequestError", "resource_missing", f"No such payment_intent: '{pid}'")
        return row

    def confirm_payment_intent(self, pid: str, idempotency_key: str | None = None) -> dict:
        """Charge the intent: ``succeeded``, ``requires_action`` (the customer must authenticate,
        then `complete_authentication`), or a ``CardError`` decline recorded on the intent."""
        def confirm(conn) -> dict:
            row = self._intent(conn, pid)
            if row.status == "succeeded":
                return self._intent_view(pid, row.amount, row.status, row.customer, row.amount_refunded)
            if row.status not in ("requires_confirmation", "requires_payment_method"):
                raise PaymentError("InvalidRequestError", "payment_intent_unexpected_state",
                                   f"PaymentIntent {pid} has status {row.status}")
            code = self._declines.get(row.customer or "") or (
                "card_declined" if row.payment_method == DECLINE_METHOD else None)
            if code:
                raise PaymentError("CardError", code, f"Your card was declined ({pid})")
            if row.payment_method.startswith(DELAYED_PREFIX):
                # Bank debits settle days later: the intent stays "processing" until then.
                conn.execute(update(pay_intents).where(pay_intents.c.id == pid).values(status="processing"))
                return self._intent_view(pid, row.amount, "processing", row.customer)
            if row.payment_method == AUTH_METHOD:
                conn.execute(update(pay_intents).where(pay_intents.c.id == pid).values(status="requires_action"))
                return self._intent_view(pid, row.amount, "requires_action", row.customer)
            self._settle(conn, row)
            return self._intent_view(pid, row.amount, "succeeded", row.customer)
        return self._idempotent(idempotency_key, "confirm_payment_intent", confirm)

    def _settle(self, conn, row) -> None:
        conn.execute(update(pay_intents).where(pay_intents.c.id == row.id).values(status="succeeded"))
        self._adjust(conn, PLATFORM, row.amount)

    def complete_authentication(self, pid: str, succeeded: bool) -> dict:
        """The customer's answer to a ``requires_action`` intent."""
        with transaction(self.engine) as conn:
            row = self._intent(conn, pid)
            if row.status != "requires_action":
                raise PaymentError("InvalidRequestError", "payment_intent_unexpected_state",
                                   f"PaymentIntent {pid} has status {row.status}")
            if not succeeded:
                conn.execute(update(pay_intents).where(pay_intents.c.id == pid).values(
                    status="requires_payment_method", last_error="authentication_required"))
                return self._intent_view(pid, row.amount, "requires_payment_method", row.customer)
            self._settle(conn, row)
            return self._intent_view(pid, row.amount, "succeeded", row.customer)

    def payment_intent(self, pid: str) -> dict:
        with transaction(self.engine) as conn:
            row = self._intent(conn, pid)
        return self._intent_view(pid, row.amount, row.status, row.customer, row.amount_refunded)

    # -- money movements -----------------------------------------------------------------------
    def _movement(self, conn, kind: str, amount: Decimal, source: str, destination: str | None) -> dict:
        mid = {"transfer": "tr_", "refund": "re_", "payout": "po_"}[kind] + uuid.uuid4().hex[:16]
        status = "succeeded" if kind == "refund" else "paid" if kind == "payout" else "created"
        conn.execute(insert(pay_movements).values(id=mid, kind=kind, amount=amount, currency=self.currency,
                                                  source=source, destination=destination, status=status,
                                                  created_at=self.now()))
        return {"id": mid, "object": kind, "amount": float(amount), "currency": self.currency,
                "source": source, "destination": destination, "status": status}

    def transfer(self, amount: Any, destination: str, source_transaction: str | None = None,
                 idempotency_key: str | None = None) -> dict:
        """Platform balance -> a connected account's balance."""
        value = _money(amount)

        def move(conn) -> dict:
            self._adjust(conn, PLATFORM, -value)
            self._adjust(conn, destination, value)
            return self._movement(conn, "transfer", value, source_transaction or PLATFORM, destination)
        return self._idempotent(idempotency_key, "transfer", move)

    def refund(self, pid: str, amount: Any = None, idempotency_key: str | None = None) -> dict:
        """Refund all or part of a succeeded intent, never more than what is left of it."""
        def give_back(conn) -> dict:
            row = self._intent(conn, pid)
            if row.status != "succeeded":
                raise PaymentError("InvalidRequestError", "charge_not_refundable",
                                   f"PaymentIntent {pid} has status {row.status}")
            left = row.amount - row.amount_refunded
            value = left if amount is None else _money(amount)
            if left <= 0:
                raise PaymentError("InvalidRequestError", "charge_already_refunded", f"{pid} is fully refunded")
            if value > left:
                raise PaymentError("InvalidRequestError", "amount_too_large",
                                   f"Refund {value} is greater than the unrefunded amount {left}")
            # As with the real provider, a refund may take the platform balance below zero.
            self._adjust(conn, PLATFORM, -value, may_go_negative=True)
            conn.execute(update(pay_intents).where(pay_intents.c.id == pid)
                         .values(amount_refunded=row.amount_refunded + value))
            return self._movement(conn, "refund", value, pid, row.customer)
        return self._idempotent(idempotency_key, "refund", give_back)

    def payout(self, account_id: str, amount: Any, idempotency_key: str | None = None) -> dict:
        """A connected account's balance -> its bank account."""
        value = _money(amount)

        def pay(conn) -> dict:
            self._adjust(conn, account_id, -value)
            return self._movement(conn, "payout", value, account_id, "bank_account")
        return self._idempotent(idempotency_key, "payout", pay)

    def movements(self, kind: str | None = None) -> list[dict]:
        q = select(pay_movements).order_by(pay_movements.c.created_at)
        if kind:
            q = q.where(pay_movements.c.kind == kind)
        with transaction(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
