"""The only code that moves hours.

Every operation — mint, hold in escrow, release, refund, split, freeze, transfer — is one
database transaction that

1. returns the recorded result at once if its idempotency key was applied before (handlers run
   at least once; a crash's re-run must move nothing twice),
2. reads the balances it touches with their versions,
3. writes them back ``WHERE version = <read>`` — zero rows updated means another writer got
   there first, and the whole transaction is retried on fresh data,
4. appends one TransactionLog row per balance bucket it changed, and records its key,

so that at every commit, for every user, the available and escrowed buckets equal the sums of
their log rows, the escrowed bucket equals the user's open escrows, and all buckets together
equal what was minted. `audit` checks exactly that; the reconciliation workflow runs it.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from statelang import HandlerError

from .db import Database
from .models import MINT_TYPES, AppliedKey, Escrow, TransactionLog, UserBalance

_BAL = UserBalance.__table__
_ESC = Escrow.__table__


class LedgerError(HandlerError):
    """A ledger refusal; its `error` is the name a workflow's Catch matches."""

    error_name = "HourBank.LedgerError"

    def __init__(self, cause: str):
        super().__init__(self.error_name, cause)


class InsufficientBalance(LedgerError):
    error_name = "HourBank.InsufficientBalance"


class UnknownAccount(LedgerError):
    error_name = "HourBank.UnknownAccount"


class EscrowUnavailable(LedgerError):
    error_name = "HourBank.EscrowUnavailable"


class InvalidAmount(LedgerError):
    error_name = "HourBank.InvalidAmount"


class ConcurrentUpdate(LedgerError):
    """Raised when a transaction kept losing the race for its balances; workflows retry it."""

    error_name = "HourBank.ConcurrentUpdate"


class _Stale(Exception):
    """A conditional write matched no row: someone else wrote first. Retry the transaction."""


class _Moves:
    """The balance changes of one transaction, applied together with one versioned write per user."""

    def __init__(self, ledger: Ledger, s: Session, ttype: str, related: str | None, arn: str | None,
                 description: str):
        self.ledger, self.s, self.ttype = ledger, s, ttype
        self.related, self.arn, self.description = related, arn, description
        self.txid = uuid.uuid4().hex
        self.deltas: dict[str, dict[str, int]] = defaultdict(lambda: {"available": 0, "escrowed": 0})
        self.order: list[tuple[str, str, int]] = []

    def add(self, user_id: str, bucket: str, amount: int) -> None:
        self.deltas[user_id][bucket] += amount
        self.order.append((user_id, bucket, amount))

    def apply(self) -> dict[str, dict]:
        s = self.s
        users = sorted(self.deltas)
        rows = {r["user_id"]: dict(r) for r in s.execute(
            select(_BAL).where(_BAL.c.user_id.in_(users))).mappings()}
        for u in users:
            if u not in rows:
                raise UnknownAccount(f"User {u} has no HourBank account.")
        if self.ledger.before_write is not None:
            self.ledger.before_write(s)
        now = self.ledger.db.now()
        running = {u: {"available": rows[u]["available_balance"], "escrowed": rows[u]["escrowed_balance"]}
                   for u in users}
        for user_id, bucket, amount in self.order:
            before = running[user_id][bucket]
            running[user_id][bucket] = before + amount
            s.add(TransactionLog(transaction_id=self.txid, user_id=user_id, transaction_type=self.ttype,
                                 bucket=bucket, amount=amount, balance_before=before,
                                 balance_after=before + amount, description=self.description,
                                 related_entity_id=self.related, step_function_execution_arn=self.arn,
                                 created_at=now))
        for u in users:
            avail, esc = running[u]["available"], running[u]["escrowed"]
            if avail < 0:
                raise InsufficientBalance(
                    f"User {u} has {rows[u]['available_balance'] / 100:.2f} h available, "
                    f"{-self.deltas[u]['available'] / 100:.2f} h needed.")
            if esc < 0:
                raise EscrowUnavailable(f"User {u} has only {rows[u]['escrowed_balance']} centi-hours in escrow.")
            done = s.execute(update(_BAL).where(_BAL.c.user_id == u, _BAL.c.version == rows[u]["version"])
                             .values(available_balance=avail, escrowed_balance=esc, total_balance=avail + esc,
                                     version=rows[u]["version"] + 1, last_transaction_id=self.txid,
                                     locked_at=None, locked_by=None, updated_at=now))
            if done.rowcount != 1:
                raise _Stale(u)
        return {u: {"available": running[u]["available"], "escrowed": running[u]["escrowed"]} for u in users}


class Ledger:
    """`Ledger(Database(...))`. Amounts are integer centi-hours (see `models`)."""

    def __init__(self, db: Database, max_attempts: int = 20):
        self.db = db
        self.max_attempts = max_attempts
        # Called between a transaction's reads and its writes; tests use it to slip a concurrent
        # write in and prove the version check catches it.
        self.before_write: Callable[[Session], None] | None = None
        self.stale_retries = 0

    # -- the unit of work ---------------------------------------------------------------------
    def _apply(self, key: str | None, operation: str, body: Callable[[Session], dict]) -> dict:
        for attempt in range(self.max_attempts):
            try:
                with self.db.session() as s:
                    if key is not None:
                        prior = s.get(AppliedKey, key)
                        if prior is not None:
                            s.rollback()
                            return dict(prior.result, replayed=True)
                    result = body(s)
                    if key is not None:
                        s.add(AppliedKey(key=key, operation=operation, result=result, created_at=self.db.now()))
                    s.commit()
                    return result
            except _Stale:
                self.stale_retries += 1
            except IntegrityError:
                # The same key committed by a racing re-run: its result is ours.
                if key is None:
                    raise
                with self.db.session() as s:
                    prior = s.get(AppliedKey, key)
                    if prior is None:
                        raise
                    return dict(prior.result, replayed=True)
            except OperationalError as exc:
                if "locked" not in str(exc) and "could not serialize" not in str(exc):
                    raise
            time.sleep(min(0.05, 0.001 * 2 ** attempt))
        raise ConcurrentUpdate(f"{operation} lost the race for its balances {self.max_attempts} times.")

    # -- accounts -----------------------------------------------------------------------------
    def open_account(self, user_id: str) -> dict:
        """Create a zero balance for `user_id` if it has none (safe to repeat)."""
        def body(s: Session) -> dict:
            if s.get(UserBalance, user_id) is None:
                now = self.db.now()
                s.add(UserBalance(user_id=user_id, total_balance=0, available_balance=0, escrowed_balance=0,
                                  version=0, created_at=now, updated_at=now))
            return {"userId": user_id}
        return self._apply(f"open-account:{user_id}", "OPEN_ACCOUNT", body)

    def balance(self, user_id: str) -> dict | None:
        with self.db.session() as s:
            row = s.execute(select(_BAL).where(_BAL.c.user_id == user_id)).mappings().first()
            return dict(row) if row else None

    # -- moves --------------------------------------------------------------------------------
    def mint(self, user_id: str, amount: int, *, key: str, transaction_type: str = "WELCOME_BONUS",
             description: str = "", arn: str | None = None) -> dict:
        """Hours from outside the system: a welcome bonus, or an admin adjustment (may be negative)."""
        if transaction_type not in MINT_TYPES:
            raise InvalidAmount(f"{transaction_type} does not create hours.")
        if amount == 0 or (amount < 0 and transaction_type != "ADMIN_ADJUSTMENT"):
            raise InvalidAmount(f"Cannot mint {amount} centi-hours as {transaction_type}.")

        def body(s: Session) -> dict:
            m = _Moves(self, s, transaction_type, user_id, arn, description or transaction_type)
            m.add(user_id, "available", amount)
            return {"transactionId": m.txid, "balances": m.apply(), "amount": amount}
        return self._apply(key, transaction_type, body)

    def transfer(self, from_user: str, to_user: str, amount: int, *, key: str, description: str = "",
                 arn: str | None = None) -> dict:
        """Available hours from one user straight to another."""
        _positive(amount)
        if from_user == to_user:
            raise InvalidAmount("A transfer needs two different users.")

        def body(s: Session) -> dict:
            m = _Moves(self, s, "TRANSFER", to_user, arn, description or "Direct transfer")
            m.add(from_user, "available", -amount)
            m.add(to_user, "available", amount)
            return {"transactionId": m.txid, "balances": m.apply(), "amount": amount}
        return self._apply(key, "TRANSFER", body)

    def hold(self, from_user: str, to_user: str, amount: int, *, key: str, request_id: str | None = None,
             arn: str | None = None, escrow_type: str = "SERVICE_REQUEST") -> dict:
        """Move `amount` from the requester's available hours into a new escrow."""
        _positive(amount)

        def body(s: Session) -> dict:
            escrow_id = "esc-" + uuid.uuid4().hex[:20]
            m = _Moves(self, s, "ESCROW", escrow_id, arn, f"Escrow for request {request_id}")
            m.add(from_user, "available", -amount)
            m.add(from_user, "escrowed", amount)
            balances = m.apply()
            now = self.db.now()
            s.add(Escrow(id=escrow_id, request_id=request_id, from_user_id=from_user, to_user_id=to_user,
                         amount=amount, status="ESCROWED", escrow_type=escrow_type, frozen=False,
                         step_function_execution_arn=arn, created_at=now, updated_at=now))
            return {"escrowId": escrow_id, "transactionId": m.txid, "balances": balances, "amount": amount}
        return self._apply(key, "ESCROW", body)

    def resize(self, escrow_id: str, new_amount: int, *, key: str, arn: str | None = None) -> dict:
        """Agreed terms changed the hours: hold more from the requester, or give the excess back."""
        _positive(new_amount)

        def body(s: Session) -> dict:
            esc = _open_escrow(s, escrow_id)
            diff = new_amount - esc["amount"]
            m = _Moves(self, s, "ESCROW" if diff > 0 else "REFUND", escrow_id, arn, "Escrow resized to agreed hours")
            if diff:
                m.add(esc["from_user_id"], "available", -diff)
                m.add(esc["from_user_id"], "escrowed", diff)
            balances = m.apply() if diff else {}
            _set_escrow(s, esc, self.db.now(), amount=new_amount)
            return {"escrowId": escrow_id, "amount": new_amount, "difference": diff, "balances": balances}
        return self._apply(key, "RESIZE", body)

    def release(self, escrow_id: str, *, key: str, arn: str | None = None,
                transaction_type: str = "TRANSFER", allow_frozen: bool = False) -> dict:
        """Pay the provider the whole escrow."""
        return self.settle(escrow_id, 0, key=key, arn=arn, transaction_type=transaction_type,
                           allow_frozen=allow_frozen)

    def refund(self, escrow_id: str, *, key: str, arn: str | None = None,
               transaction_type: str = "REFUND", allow_frozen: bool = False) -> dict:
        """Give the requester the whole escrow back."""
        return self.settle(escrow_id, None, key=key, arn=arn, transaction_type=transaction_type,
                           allow_frozen=allow_frozen)

    def settle(self, escrow_id: str, refund_amount: int | None, *, key: str, arn: str | None = None,
               transaction_type: str = "DISPUTE_RESOLUTION", allow_frozen: bool = False) -> dict:
        """Close an escrow: `refund_amount` back to the requester (None = all), the rest to the
        provider. A frozen escrow moves only when the caller is the dispute's resolution."""
        def body(s: Session) -> dict:
            esc = _open_escrow(s, escrow_id)
            if esc["frozen"] and not allow_frozen:
                raise EscrowUnavailable(f"Escrow {escrow_id} is frozen by a dispute.")
            amount = esc["amount"]
            back = amount if refund_amount is None else refund_amount
            if not 0 <= back <= amount:
                raise InvalidAmount(f"Refund {back} is outside 0..{amount} centi-hours.")
            m = _Moves(self, s, transaction_type, escrow_id, arn, f"Escrow {escrow_id} settled")
            m.add(esc["from_user_id"], "escrowed", -amount)
            if back:
                m.add(esc["from_user_id"], "available", back)
            if amount - back:
                m.add(esc["to_user_id"], "available", amount - back)
            balances = m.apply()
            now = self.db.now()
            if back == amount:
                _set_escrow(s, esc, now, status="CANCELLED", cancelled_at=now, frozen=False)
            else:
                _set_escrow(s, esc, now, status="RELEASED", released_at=now, frozen=False)
            return {"escrowId": escrow_id, "refunded": back, "paid": amount - back, "transactionId": m.txid,
                    "balances": balances}
        return self._apply(key, "SETTLE", body)

    def freeze(self, escrow_id: str, frozen: bool = True, *, key: str) -> dict:
        """Freeze (dispute opened) or thaw (dispute dismissed) an open escrow. No hour moves, but
        the escrow row's write is versioned like a balance so a racing release cannot slip by."""
        def body(s: Session) -> dict:
            esc = _open_escrow(s, escrow_id)
            _set_escrow(s, esc, self.db.now(), frozen=frozen)
            return {"escrowId": escrow_id, "frozen": frozen, "amount": esc["amount"]}
        return self._apply(key, "FREEZE" if frozen else "THAW", body)

    # -- the invariant ------------------------------------------------------------------------
    def audit(self) -> dict:
        """Everything the ledger promises, checked from the tables: a list of discrepancies
        (empty when all is well), the hours minted and the hours held."""
        with self.db.session() as s:
            bal = {r["user_id"]: r for r in s.execute(select(_BAL)).mappings()}
            sums: dict[tuple[str, str], int] = defaultdict(int)
            for u, b, total in s.execute(select(TransactionLog.user_id, TransactionLog.bucket,
                                                func.sum(TransactionLog.amount))
                                         .group_by(TransactionLog.user_id, TransactionLog.bucket)):
                sums[(u, b)] = int(total)
            minted = int(s.execute(select(func.coalesce(func.sum(TransactionLog.amount), 0))
                                   .where(TransactionLog.transaction_type.in_(MINT_TYPES))).scalar())
            held_in_escrow: dict[str, int] = defaultdict(int)
            for u, total in s.execute(select(Escrow.from_user_id, func.sum(Escrow.amount))
                                      .where(Escrow.status == "ESCROWED").group_by(Escrow.from_user_id)):
                held_in_escrow[u] = int(total)
            broken_chain = s.execute(select(func.count()).select_from(TransactionLog).where(
                TransactionLog.balance_after != TransactionLog.balance_before + TransactionLog.amount)).scalar()
        problems: list[dict[str, Any]] = []
        users = set(bal) | {u for u, _ in sums} | set(held_in_escrow)
        for u in sorted(users):
            r = bal.get(u)
            if r is None:
                problems.append({"userId": u, "problem": "log or escrow rows without a balance"})
                continue
            checks = (("available", r["available_balance"], sums[(u, "available")]),
                      ("escrowed", r["escrowed_balance"], sums[(u, "escrowed")]),
                      ("escrowed vs open escrows", r["escrowed_balance"], held_in_escrow[u]),
                      ("total", r["total_balance"], r["available_balance"] + r["escrowed_balance"]))
            for what, have, want in checks:
                if have != want:
                    problems.append({"userId": u, "problem": what, "balance": have, "expected": want})
            if r["available_balance"] < 0 or r["escrowed_balance"] < 0:
                problems.append({"userId": u, "problem": "negative balance"})
        held = sum(r["available_balance"] + r["escrowed_balance"] for r in bal.values())
        if held != minted:
            problems.append({"problem": "hours held differ from hours minted", "held": held, "minted": minted})
        if broken_chain:
            problems.append({"problem": "log rows whose before + amount != after", "count": broken_chain})
        return {"discrepancies": problems, "minted": minted, "held": held, "users": len(bal)}


def _positive(amount: int) -> None:
    if not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount(f"Amount must be a positive number of centi-hours, not {amount!r}.")


def _open_escrow(s: Session, escrow_id: str) -> dict:
    row = s.execute(select(_ESC).where(_ESC.c.id == escrow_id)).mappings().first()
    if row is None:
        raise EscrowUnavailable(f"Escrow {escrow_id} does not exist.")
    if row["status"] != "ESCROWED":
        raise EscrowUnavailable(f"Escrow {escrow_id} is {row['status']}, not ESCROWED.")
    return dict(row)


def _set_escrow(s: Session, esc: dict, now, **values) -> None:
    """Write an escrow only if it is still as read (status, amount, frozen): the escrow's own
    optimistic lock, so a freeze and a release racing on one escrow cannot both win."""
    done = s.execute(update(_ESC).where(_ESC.c.id == esc["id"], _ESC.c.status == esc["status"],
                                        _ESC.c.amount == esc["amount"], _ESC.c.frozen == esc["frozen"])
                     .values(updated_at=now, **values))
    if done.rowcount != 1:
        raise _Stale(esc["id"])
