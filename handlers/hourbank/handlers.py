"""HourBank's Lambda-style task handlers: each reads and writes the HourBank tables; hours move
only through `Ledger`.

Handlers run at least once. Ledger moves are keyed by the task's idempotency key (stable across
retries and a crash's re-run), status updates are plain overwrites that a re-run repeats
harmlessly, and notifications carry a dedupe key so a re-run does not notify twice.

A `.waitForTaskToken` handler stores its token on the request (or dispute) row: answering that
token is how the provider, the requester or an admin moves the workflow (see `actions`), and how
a dispute interrupts whichever wait is under way.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from statelang import HandlerError

from .db import Database
from .ledger import EscrowUnavailable, Ledger
from .models import (
    CANCELLABLE_REQUEST_STATUSES,
    CENTI,
    CLOSED_REQUEST_STATUSES,
    OPEN_DISPUTE_STATUSES,
    OPEN_REQUEST_STATUSES,
    RELEASABLE_REQUEST_STATUSES,
    AppliedKey,
    Dispute,
    Escrow,
    Notification,
    ReconciliationReport,
    Service,
    ServiceRequest,
    TransactionLog,
    User,
    UserBalance,
)

MIN_RESPONSE_HOURS, MAX_RESPONSE_HOURS = 2, 72
MAX_REQUEST_HOURS = 40 * CENTI
MAX_NEGOTIATION_ROUNDS = 3
WELCOME_BONUS = 5 * CENTI
ADMIN = "admin"
# What the platform decides when an escalated dispute still has no admin decision at its deadline:
# the hours go back to whoever paid them in; the provider may claim them in a new request.
POLICY_DECISION = {"resolution": "REFUND_REQUESTER", "refundHours": None, "adminId": "policy"}


def centi(hours: Any) -> int:
    """Hours as given by a client (a JSON number) -> integer centi-hours."""
    try:
        return int(round(float(hours) * CENTI))
    except (TypeError, ValueError):
        raise HandlerError("HourBank.InvalidInput", f"{hours!r} is not a number of hours.") from None


def _centi_or_zero(value: Any) -> int:
    """The estimate as recorded before validation: a malformed one is 0 (validation rejects it)."""
    try:
        return centi(value)
    except HandlerError:
        return 0


def hours(c: int | None) -> float | None:
    return None if c is None else c / CENTI


def request_id_for(inp: dict, ctx) -> str:
    """The request's id: the client's, or one derived from the execution so a re-run finds it."""
    given = inp.get("requestId") or (inp.get("request") or {}).get("requestId")
    return given or "req-" + hashlib.sha1(ctx.execution_arn.encode()).hexdigest()[:20]


class HourBankHandlers:
    def __init__(self, db: Database, ledger: Ledger | None = None):
        self.db = db
        self.ledger = ledger or Ledger(db)

    # -- helpers ------------------------------------------------------------------------------
    def _request(self, s: Session, request_id: str) -> ServiceRequest:
        req = s.get(ServiceRequest, request_id)
        if req is None:
            raise HandlerError("HourBank.RequestNotFound", f"Service request {request_id} does not exist.")
        return req

    def _notify(self, s: Session, user_id: str, kind: str, request_id: str | None, ctx, **body) -> None:
        key = f"{kind}:{user_id}:{request_id}:{ctx.idempotency_key}"
        if s.execute(select(Notification.id).where(Notification.dedupe_key == key)).first() is None:
            s.add(Notification(user_id=user_id, kind=kind, request_id=request_id, body=body, dedupe_key=key,
                               created_at=self.db.now()))

    def _status(self, request_id: str, status: str, ctx, notify: tuple = (), **fields) -> dict:
        """Move the request on, unless the escrow cancellation already closed it (REFUNDED): the
        request's workflow then learns so at its next wait and ends there."""
        with self.db.session() as s:
            req = self._request(s, request_id)
            if req.status == "REFUNDED" and status != "REFUNDED":
                return _request_view(req)
            req.status = status
            req.updated_at = self.db.now()
            for k, v in fields.items():
                setattr(req, k, v)
            for user_id, kind in notify:
                self._notify(s, user_id, kind, request_id, ctx, status=status)
            s.commit()
            return _request_view(req)

    def _await(self, inp: dict, ctx, awaiting: str, actor_field: str, status: str | None,
               timeout_seconds: int, kind: str) -> None:
        """Record the token the workflow now waits on, for whom, and until when."""
        if not ctx.task_token:
            raise HandlerError("States.Runtime", f"{ctx.state_name} must be a .waitForTaskToken task.")
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            open_dispute = s.execute(select(Dispute.id).where(Dispute.request_id == req.id,
                                                              Dispute.status.in_(OPEN_DISPUTE_STATUSES))).first()
            if open_dispute is not None:
                raise HandlerError("HourBank.DisputeRaised",
                                   f"Dispute {open_dispute[0]} was raised while no answer was awaited.")
            esc = s.get(Escrow, req.escrow_id) if req.escrow_id else None
            if req.status == "REFUNDED" or (esc is not None and esc.status != "ESCROWED"):
                raise HandlerError("HourBank.EscrowCancelled",
                                   f"The escrow of request {req.id} was closed outside its workflow.")
            now = self.db.now()
            actor = getattr(req, actor_field) if actor_field in ("provider_id", "requester_id") else actor_field
            if status:
                req.status = status
            req.pending_token, req.awaiting, req.awaiting_actor = ctx.task_token, awaiting, actor
            req.expires_at = now + timedelta(seconds=timeout_seconds)
            req.updated_at = now
            self._notify(s, actor, kind, req.id, ctx, awaiting=awaiting, expiresAt=req.expires_at.isoformat())
            s.commit()

    # -- service request: validation and escrow -------------------------------------------------
    def initiate_request(self, inp: dict, ctx) -> dict:
        """The request's row, INITIATED, before anything is checked (the seed's step 1)."""
        rid = request_id_for(inp, ctx)
        with self.db.session() as s:
            req = s.get(ServiceRequest, rid)
            if req is None:
                now = self.db.now()
                req = ServiceRequest(id=rid, service_id=inp.get("serviceId") or "",
                                     requester_id=inp.get("requesterId") or "", provider_id=inp.get("providerId") or "",
                                     status="INITIATED", step_function_execution_arn=ctx.execution_arn,
                                     estimated_hours=_centi_or_zero(inp.get("estimatedHours")),
                                     message=inp.get("message") or "", negotiation_round=0, created_at=now,
                                     updated_at=now)
                s.add(req)
                s.commit()
            return _request_view(req)

    def validate_request(self, inp: dict, ctx) -> dict:
        """Create the request (INITIATED), then check everything the seed lists (VALIDATING)."""
        rid = request_id_for(inp, ctx)
        want = centi(inp.get("estimatedHours"))
        with self.db.session() as s:
            req = s.get(ServiceRequest, rid)
            now = self.db.now()
            if req is None:
                req = ServiceRequest(id=rid, service_id=inp.get("serviceId", ""), requester_id=inp.get("requesterId", ""),
                                     provider_id=inp.get("providerId", ""), status="INITIATED",
                                     step_function_execution_arn=ctx.execution_arn, estimated_hours=want,
                                     message=inp.get("message", ""), negotiation_round=0, created_at=now)
                s.add(req)
                s.flush()
            req.status, req.updated_at = "VALIDATING", now
            requester = s.get(User, req.requester_id)
            provider = s.get(User, req.provider_id)
            service = s.get(Service, req.service_id)
            balance = s.get(UserBalance, req.requester_id)
            duplicate = s.execute(select(ServiceRequest.id).where(
                ServiceRequest.requester_id == req.requester_id, ServiceRequest.service_id == req.service_id,
                ServiceRequest.id != rid, ServiceRequest.status.in_(OPEN_REQUEST_STATUSES))).first()
            reason = None
            if not 0 < want <= MAX_REQUEST_HOURS:
                reason = f"Estimated hours must be between 0 and {MAX_REQUEST_HOURS / CENTI:g}."
            elif requester is None or requester.status != "ACTIVE":
                reason = "Requester account is not active."
            elif provider is None or provider.status != "ACTIVE":
                reason = "Provider is not active."
            elif req.requester_id == req.provider_id:
                reason = "A member cannot request their own service."
            elif service is None or service.status != "AVAILABLE" or service.provider_id != req.provider_id:
                reason = "Service is not available from this provider."
            elif duplicate is not None:
                reason = f"A pending request for this service already exists ({duplicate[0]})."
            elif balance is None or balance.available_balance < want:
                have = balance.available_balance if balance else 0
                reason = f"Insufficient bank hours: {have / CENTI:.2f} available, {want / CENTI:.2f} needed."
            response_hours = min(MAX_RESPONSE_HOURS, max(MIN_RESPONSE_HOURS, provider.response_hours if provider else 24))
            s.commit()
        return {"valid": reason is None, "reason": reason, "requestId": rid, "hours": want,
                "responseTimeoutSeconds": response_hours * 3600}

    def reject_request(self, inp: dict, ctx) -> dict:
        reason = inp.get("reason") or "Request rejected."
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            req.status, req.outcome_reason, req.updated_at = "REJECTED", reason, self.db.now()
            self._notify(s, req.requester_id, "REQUEST_REJECTED", req.id, ctx, reason=reason)
            s.commit()
            return _request_view(req)

    def escrow_hours(self, inp: dict, ctx) -> dict:
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            frm, to, amount = req.requester_id, req.provider_id, req.estimated_hours
        held = self.ledger.hold(frm, to, amount, key=ctx.idempotency_key, request_id=inp["requestId"],
                                arn=ctx.execution_arn)
        self._status(inp["requestId"], "ESCROWED", ctx, escrow_id=held["escrowId"])
        return {"escrowId": held["escrowId"], "hours": amount}

    # -- provider response and negotiation ----------------------------------------------------
    def notify_provider(self, inp: dict, ctx) -> None:
        self._await(inp, ctx, "PROVIDER_RESPONSE", "provider_id", "AWAITING_RESPONSE",
                    int(inp["timeoutSeconds"]), "SERVICE_REQUEST_RECEIVED")

    def process_negotiation(self, inp: dict, ctx) -> dict:
        """A counter-offer: store the terms, count the round, and say who must answer next."""
        offer = inp.get("offer") or {}
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            by = offer.get("by") or req.provider_id
            if req.offered_by != by or req.offered_hours != centi(offer.get("hours")) or req.status != "NEGOTIATING":
                req.negotiation_round += 1
            req.offered_hours, req.offered_by = centi(offer.get("hours")), by
            req.status, req.updated_at = "NEGOTIATING", self.db.now()
            respondent = req.requester_id if by == req.provider_id else req.provider_id
            exhausted = req.negotiation_round > MAX_NEGOTIATION_ROUNDS
            s.commit()
            return {"round": req.negotiation_round, "exhausted": exhausted, "offeredHours": req.offered_hours,
                    "respondent": respondent}

    def await_negotiation_response(self, inp: dict, ctx) -> None:
        self._await(inp, ctx, "NEGOTIATION_RESPONSE", inp["respondent"], None, 24 * 3600, "COUNTER_OFFER_RECEIVED")

    def accept_terms(self, inp: dict, ctx) -> dict:
        """Both sides agreed on the counter-offer: the escrow follows the agreed hours."""
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            escrow_id, agreed = req.escrow_id, req.offered_hours or req.estimated_hours
        self.ledger.resize(escrow_id, agreed, key=ctx.idempotency_key, arn=ctx.execution_arn)
        self._status(inp["requestId"], "ACCEPTED", ctx, agreed_hours=agreed)
        return {"agreedHours": agreed}

    # -- service execution --------------------------------------------------------------------
    def start_service_execution(self, inp: dict, ctx) -> dict:
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            agreed = req.agreed_hours or req.estimated_hours
            parties = ((req.requester_id, "REQUEST_ACCEPTED"), (req.provider_id, "REQUEST_ACCEPTED"))
        return self._status(inp["requestId"], "ACCEPTED", ctx, notify=parties, agreed_hours=agreed)

    def await_provider_start(self, inp: dict, ctx) -> None:
        self._await(inp, ctx, "SERVICE_START", "provider_id", None, 7 * 86400, "MARK_SERVICE_STARTED")

    def await_start_confirmation(self, inp: dict, ctx) -> None:
        self._await(inp, ctx, "START_CONFIRMATION", "requester_id", "PENDING_START_CONFIRMATION", 48 * 3600,
                    "CONFIRM_SERVICE_START")

    def record_service_start(self, inp: dict, ctx) -> dict:
        """IN_PROGRESS; after 48 h of requester silence both parties learn it was automatic."""
        kind = "SERVICE_START_AUTO_CONFIRMED" if inp.get("autoConfirmed") else "SERVICE_STARTED"
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            parties = ((req.requester_id, kind), (req.provider_id, kind))
            started = req.started_at or self.db.now()
        view = self._status(inp["requestId"], "IN_PROGRESS", ctx, notify=parties, started_at=started)
        return dict(view, autoConfirmed=bool(inp.get("autoConfirmed")))

    def await_provider_completion(self, inp: dict, ctx) -> None:
        self._await(inp, ctx, "SERVICE_COMPLETION", "provider_id", None, 30 * 86400, "MARK_SERVICE_COMPLETED")

    def await_completion_confirmation(self, inp: dict, ctx) -> None:
        self._await(inp, ctx, "COMPLETION_CONFIRMATION", "requester_id", "PENDING_COMPLETION_CONFIRMATION",
                    48 * 3600, "CONFIRM_SERVICE_COMPLETION")

    def record_service_completion(self, inp: dict, ctx) -> dict:
        kind = "SERVICE_COMPLETION_AUTO_CONFIRMED" if inp.get("autoConfirmed") else "SERVICE_COMPLETED"
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            parties = ((req.requester_id, kind), (req.provider_id, kind))
            done = req.completed_at or self.db.now()
        view = self._status(inp["requestId"], "COMPLETED", ctx, notify=parties, completed_at=done)
        return dict(view, autoConfirmed=bool(inp.get("autoConfirmed")))

    # -- payment, refunds, completion ---------------------------------------------------------
    def process_payment(self, inp: dict, ctx) -> dict:
        """Release the escrow to the provider (by request, or by escrow id alone)."""
        escrow_id, request_id = inp.get("escrowId"), inp.get("requestId")
        if request_id and not escrow_id:
            with self.db.session() as s:
                escrow_id = self._request(s, request_id).escrow_id
        with self.db.session() as s:
            esc = s.get(Escrow, escrow_id) if escrow_id else None
            request_id = request_id or (esc.request_id if esc else None)
        try:
            paid = self.ledger.release(escrow_id, key=ctx.idempotency_key, arn=ctx.execution_arn)
        except EscrowUnavailable:
            if not inp.get("requestId"):
                raise
            paid = self._released_already(escrow_id)
        if request_id:
            self._status(request_id, "PAID", ctx)
        return {"escrowId": escrow_id, "paidHours": paid["paid"], "transactionId": paid["transactionId"]}

    def _released_already(self, escrow_id: str | None) -> dict:
        """The escrow release workflow paid this escrow first: the request is paid, not failed."""
        with self.db.session() as s:
            esc = s.get(Escrow, escrow_id) if escrow_id else None
            if esc is None or esc.status != "RELEASED":
                raise EscrowUnavailable(f"Escrow {escrow_id} is {esc.status if esc else 'missing'}, not ESCROWED.")
            return {"paid": esc.amount, "transactionId": None}

    def complete_workflow(self, inp: dict, ctx) -> dict:
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            self._notify(s, req.requester_id, "RATE_SERVICE", req.id, ctx)
            self._notify(s, req.provider_id, "PAYMENT_RECEIVED", req.id, ctx, hours=hours(req.agreed_hours))
            req.pending_token = req.awaiting = req.awaiting_actor = None
            s.commit()
            return _request_view(req)

    def refund_escrow(self, inp: dict, ctx) -> dict:
        """Close the request with `outcome` (REJECTED, EXPIRED, ...) and give the hours back."""
        outcome, reason = inp.get("outcome") or "REJECTED", inp.get("reason") or ""
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            escrow_id = req.escrow_id
        refunded = 0
        if escrow_id:
            try:
                refunded = self.ledger.refund(escrow_id, key=ctx.idempotency_key, arn=ctx.execution_arn)["refunded"]
            except EscrowUnavailable:
                if not inp.get("compensating"):
                    raise
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            if req.status in ("REFUNDED", "PAID"):   # settled outside this workflow: keep its outcome
                outcome, reason = req.status, req.outcome_reason or reason
            req.status, req.outcome_reason, req.updated_at = outcome, reason, self.db.now()
            req.pending_token = req.awaiting = req.awaiting_actor = None
            for user in (req.requester_id, req.provider_id):
                self._notify(s, user, f"REQUEST_{outcome}", req.id, ctx, reason=reason)
            s.commit()
            return dict(_request_view(req), refundedHours=refunded)

    # -- disputes -----------------------------------------------------------------------------
    def handle_dispute(self, inp: dict, ctx) -> dict:
        """Pause the request: remember where it was, mark it DISPUTED, find or open the dispute."""
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            dispute = s.execute(select(Dispute).where(Dispute.request_id == req.id,
                                                      Dispute.status.in_(OPEN_DISPUTE_STATUSES))).scalar()
            if dispute is None:
                dispute = Dispute(id="dsp-" + hashlib.sha1(ctx.idempotency_key.encode()).hexdigest()[:20],
                                  request_id=req.id, escrow_id=req.escrow_id, raised_by=inp.get("raisedBy") or "SYSTEM",
                                  reason=inp.get("reason") or "Raised by the workflow", status="OPEN",
                                  created_at=self.db.now())
                s.merge(dispute)
            if req.status != "DISPUTED":
                req.resume_status = req.status
            req.status, req.updated_at = "DISPUTED", self.db.now()
            req.pending_token = req.awaiting = req.awaiting_actor = None
            s.commit()
            return {"disputeId": dispute.id, "escrowId": req.escrow_id, "requestId": req.id,
                    "resumeAt": req.resume_status}

    def initiate_dispute(self, inp: dict, ctx) -> dict:
        """Open the dispute, or adopt the open one that already holds this escrow (its own run
        ended before a decision): a new run is how such a dispute gets decided."""
        did = inp.get("disputeId")
        if not did and inp.get("escrowId"):
            with self.db.session() as s:
                did = s.scalar(select(Dispute.id).where(Dispute.escrow_id == inp["escrowId"],
                                                        Dispute.status.in_(OPEN_DISPUTE_STATUSES)))
        did = did or "dsp-" + hashlib.sha1(ctx.execution_arn.encode()).hexdigest()[:20]
        with self.db.session() as s:
            d = s.get(Dispute, did)
            if d is None:
                d = Dispute(id=did, request_id=inp.get("requestId"), escrow_id=inp.get("escrowId"),
                            raised_by=inp.get("raisedBy") or "SYSTEM", reason=inp.get("reason") or "", status="OPEN",
                            created_at=self.db.now())
                s.add(d)
            if d.escrow_id is None and d.request_id:
                d.escrow_id = self._request(s, d.request_id).escrow_id
            d.step_function_execution_arn = ctx.execution_arn
            d.status = "OPEN" if d.status == "ESCALATED" else d.status
            esc = s.get(Escrow, d.escrow_id) if d.escrow_id else None
            if esc is None or esc.status != "ESCROWED":
                s.rollback()
                raise EscrowUnavailable(f"Dispute {did}: no open escrow to dispute.")
            s.commit()
            return {"disputeId": d.id, "escrowId": d.escrow_id, "requestId": d.request_id,
                    "escrowedHours": esc.amount}

    def freeze_related_transactions(self, inp: dict, ctx) -> dict:
        return self.ledger.freeze(inp["escrowId"], True, key=ctx.idempotency_key)

    def notify_admin(self, inp: dict, ctx) -> None:
        with self.db.session() as s:
            d = s.get(Dispute, inp["disputeId"])
            d.pending_token = ctx.task_token
            self._notify(s, ADMIN, "DISPUTE_NEEDS_DECISION", d.request_id, ctx, disputeId=d.id, reason=d.reason)
            s.commit()

    def resolve_dispute(self, inp: dict, ctx) -> dict:
        """Carry out the admin's decision: who gets the frozen hours, or thaw them (dismiss)."""
        decision = inp["decision"]
        resolution = decision["resolution"]
        with self.db.session() as s:
            d = s.get(Dispute, inp["disputeId"])
            esc = s.get(Escrow, d.escrow_id)
            amount = esc.amount
        if resolution == "DISMISS":
            self.ledger.freeze(d.escrow_id, False, key=ctx.idempotency_key)
            moved = {"refunded": 0, "paid": 0}
        else:
            back = {"REFUND_REQUESTER": amount, "PAY_PROVIDER": 0}.get(resolution)
            if back is None:
                back = centi(decision.get("refundHours"))
            moved = self.ledger.settle(d.escrow_id, back, key=ctx.idempotency_key, arn=ctx.execution_arn,
                                       allow_frozen=True)
        with self.db.session() as s:
            d = s.get(Dispute, inp["disputeId"])
            now = self.db.now()
            d.status = "DISMISSED" if resolution == "DISMISS" else "RESOLVED"
            d.resolution, d.refund_hours, d.admin_id = resolution, moved["refunded"], decision.get("adminId")
            d.resolved_at, d.pending_token = now, None
            resume = None
            if d.request_id:
                req = self._request(s, d.request_id)
                resume = req.resume_status
                if resolution == "DISMISS":
                    req.status = req.resume_status or req.status
                else:
                    req.status = "REFUNDED" if moved["paid"] == 0 else "PAID"
                    req.outcome_reason = f"Dispute {d.id}: {resolution}"
                req.updated_at = now
                for user in (req.requester_id, req.provider_id):
                    self._notify(s, user, "DISPUTE_" + d.status, req.id, ctx, resolution=resolution)
            s.commit()
        return {"disputeId": inp["disputeId"], "resolution": resolution, "refundedHours": moved["refunded"],
                "paidHours": moved["paid"], "resumeAt": resume}

    def reject_decision(self, inp: dict, ctx) -> dict:
        """An unusable decision goes back to whoever must decide: the admins, or, once escalated,
        the escalation (with its own deadline)."""
        with self.db.session() as s:
            d = s.get(Dispute, inp["disputeId"])
            self._notify(s, ADMIN, "DISPUTE_DECISION_INVALID", d.request_id, ctx, disputeId=d.id,
                         decision=inp.get("decision"))
            s.commit()
            escalated = d.status == "ESCALATED"
        return {"disputeId": inp["disputeId"], "invalid": inp.get("decision"), "escalated": escalated}

    def escalate_dispute(self, inp: dict, ctx) -> None:
        """7 days without a decision: escalate, and keep waiting for one (a ``.waitForTaskToken``
        task) until the escalation deadline, when the platform's policy decides."""
        if not ctx.task_token:
            raise HandlerError("States.Runtime", f"{ctx.state_name} must be a .waitForTaskToken task.")
        with self.db.session() as s:
            d = s.get(Dispute, inp["disputeId"])
            d.status, d.pending_token = "ESCALATED", ctx.task_token
            self._notify(s, ADMIN, "DISPUTE_ESCALATED", d.request_id, ctx, disputeId=d.id,
                         policy=POLICY_DECISION["resolution"], deadlineSeconds=inp.get("deadlineSeconds"))
            s.commit()

    def policy_decision(self, inp: dict, ctx) -> dict:
        """The default outcome of a dispute nobody decided in time (see `POLICY_DECISION`)."""
        with self.db.session() as s:
            d = s.get(Dispute, inp["disputeId"])
            if d is not None:
                d.pending_token = None
                self._notify(s, ADMIN, "DISPUTE_DECIDED_BY_POLICY", d.request_id, ctx, disputeId=d.id)
            s.commit()
        return dict(POLICY_DECISION)

    def apply_dispute_policy(self, inp: dict, ctx) -> dict:
        """The dispute workflow ended without settling (failed or timed out): the request's own
        workflow applies the policy so no hour stays frozen. A dispute already settled is kept."""
        did = inp["disputeId"]
        with self.db.session() as s:
            d = s.get(Dispute, did)
            if d is None:
                raise HandlerError("HourBank.DisputeNotFound", f"Dispute {did} does not exist.")
            settled_elsewhere = d.status not in OPEN_DISPUTE_STATUSES and s.get(AppliedKey, ctx.idempotency_key) is None
        if settled_elsewhere:   # (a re-run of this task replays its own settlement below instead)
            return {"disputeId": did, "resolution": d.resolution, "refundedHours": d.refund_hours,
                    "paidHours": None, "resumeAt": None}
        return self.resolve_dispute({"disputeId": did, "decision": dict(POLICY_DECISION)}, ctx)

    # -- escrow release / cancellation ----------------------------------------------------------
    def validate_escrow(self, inp: dict, ctx) -> dict:
        """May the escrow be released (``operation: RELEASE``) or cancelled (``CANCEL``) now? An
        escrow behind a service request follows the request: hours go to the provider only for
        a confirmed service, back to the requester only before the service started."""
        with self.db.session() as s:
            esc = s.get(Escrow, inp.get("escrowId") or "")
            if esc is None:
                return {"ok": False, "reason": "No such escrow."}
            return {"ok": (reason := self._escrow_refusal(s, esc, inp.get("operation") or "RELEASE")) is None,
                    "reason": reason, "amount": esc.amount, "requestId": esc.request_id}

    def _escrow_refusal(self, s: Session, esc: Escrow, operation: str) -> str | None:
        if esc.status != "ESCROWED":
            return f"Escrow is {esc.status}."
        if esc.frozen:
            did = s.scalar(select(Dispute.id).where(Dispute.escrow_id == esc.id,
                                                    Dispute.status.in_(OPEN_DISPUTE_STATUSES)))
            return f"Escrow is frozen by dispute {did}; the dispute's decision settles it."
        req = s.get(ServiceRequest, esc.request_id) if esc.request_id else None
        if req is None:
            return None
        allowed = RELEASABLE_REQUEST_STATUSES if operation == "RELEASE" else CANCELLABLE_REQUEST_STATUSES
        if req.status in allowed:
            return None
        if operation == "RELEASE":
            return f"Request {req.id} is {req.status}: the provider is paid once the service is confirmed."
        return f"Request {req.id} is {req.status}: after the service started, only a dispute can refund it."

    def process_escrow_release(self, inp: dict, ctx) -> dict:
        """Pay the provider, re-checking the request in the same breath as the validation did."""
        with self.db.session() as s:
            esc = s.get(Escrow, inp["escrowId"])
            reason = self._escrow_refusal(s, esc, "RELEASE") if esc is not None else "No such escrow."
        if reason is not None and not self._applied(ctx.idempotency_key):
            raise HandlerError("HourBank.ReleaseRefused", reason)
        return self.process_payment({"escrowId": inp["escrowId"]}, ctx)

    def _applied(self, key: str) -> bool:
        with self.db.session() as s:
            return s.get(AppliedKey, key) is not None

    def process_escrow_cancellation(self, inp: dict, ctx) -> dict:
        """Refund the requester and close the request; return the task token its workflow waits
        on (if any), which the cancellation workflow answers with HourBank.EscrowCancelled so
        the request's execution ends at once instead of carrying on without its hours. The
        token stays on the row (its wait marked ESCROW_CANCELLED, so no member can answer it)
        and a re-run returns it again."""
        with self.db.session() as s:
            esc = s.get(Escrow, inp["escrowId"])
            reason = self._escrow_refusal(s, esc, "CANCEL") if esc is not None else "No such escrow."
        if reason is not None and not self._applied(ctx.idempotency_key):
            raise HandlerError("HourBank.CancellationRefused", reason)
        r = self.ledger.refund(inp["escrowId"], key=ctx.idempotency_key, arn=ctx.execution_arn)
        token = None
        with self.db.session() as s:
            esc = s.get(Escrow, inp["escrowId"])
            if esc.request_id:
                req = self._request(s, esc.request_id)
                if req.status not in CLOSED_REQUEST_STATUSES:
                    req.status = "REFUNDED"
                if req.status == "REFUNDED":
                    req.outcome_reason = inp.get("reason") or "Escrow cancelled"
                req.awaiting, req.awaiting_actor, req.updated_at = "ESCROW_CANCELLED", None, self.db.now()
                token = req.pending_token
                for user in (req.requester_id, req.provider_id):
                    self._notify(s, user, "REQUEST_CANCELLED", req.id, ctx, escrowId=esc.id)
            s.commit()
        return {"escrowId": inp["escrowId"], "refundedHours": r["refunded"], "transactionId": r["transactionId"],
                "requestToken": token}

    def close_cancelled_request(self, inp: dict, ctx) -> dict:
        """The request's workflow learned its escrow was cancelled: clear its wait, keep REFUNDED."""
        with self.db.session() as s:
            req = self._request(s, inp["requestId"])
            if req.status not in CLOSED_REQUEST_STATUSES:
                req.status = "REFUNDED"
            req.pending_token = req.awaiting = req.awaiting_actor = None
            req.updated_at = self.db.now()
            s.commit()
            return _request_view(req)

    def complete_escrow(self, inp: dict, ctx) -> dict:
        with self.db.session() as s:
            esc = s.get(Escrow, inp["escrowId"])
            for user in (esc.from_user_id, esc.to_user_id):
                self._notify(s, user, "ESCROW_" + esc.status, esc.request_id, ctx, escrowId=esc.id)
            s.commit()
            return {"escrowId": esc.id, "status": esc.status}

    # -- transactions -------------------------------------------------------------------------
    def process_welcome_bonus(self, inp: dict, ctx) -> dict:
        """One welcome bonus per member, ever: the key is the member, not the execution."""
        user = inp["userId"]
        with self.db.session() as s:
            if s.get(User, user) is None:
                s.add(User(id=user, status="ACTIVE", response_hours=24, created_at=self.db.now()))
                s.commit()
        self.ledger.open_account(user)
        amount = centi(inp["hours"]) if inp.get("hours") is not None else WELCOME_BONUS
        r = self.ledger.mint(user, amount, key=f"welcome-bonus:{user}", transaction_type="WELCOME_BONUS",
                             arn=ctx.execution_arn, description=f"Welcome bonus ({ctx.idempotency_key})")
        with self.db.session() as s:   # granted by this task (perhaps in its first run), or by another?
            by = s.scalar(select(TransactionLog.description).where(TransactionLog.transaction_id == r["transactionId"]))
        return {"userId": user, "grantedHours": r["amount"],
                "alreadyGranted": by != f"Welcome bonus ({ctx.idempotency_key})"}

    def process_admin_adjustment(self, inp: dict, ctx) -> dict:
        r = self.ledger.mint(inp["userId"], centi(inp["hours"]), key=ctx.idempotency_key,
                             transaction_type="ADMIN_ADJUSTMENT", arn=ctx.execution_arn,
                             description=f"{inp.get('adminId', ADMIN)}: {inp.get('reason', '')}")
        return {"userId": inp["userId"], "adjustedHours": r["amount"], "transactionId": r["transactionId"]}

    def process_direct_transfer(self, inp: dict, ctx) -> dict:
        key = f"transfer:{inp['transferId']}" if inp.get("transferId") else ctx.idempotency_key
        r = self.ledger.transfer(inp["fromUserId"], inp["toUserId"], centi(inp["hours"]), key=key,
                                 arn=ctx.execution_arn, description=inp.get("description") or "")
        return {"transactionId": r["transactionId"], "hours": r["amount"]}

    def reconcile_balances(self, inp: dict, ctx) -> dict:
        audit = self.ledger.audit()
        rid = "rec-" + hashlib.sha1(ctx.idempotency_key.encode()).hexdigest()[:20]
        with self.db.session() as s:
            s.merge(ReconciliationReport(id=rid, checked_users=audit["users"], discrepancies=audit["discrepancies"],
                                         minted=audit["minted"], held=audit["held"],
                                         step_function_execution_arn=ctx.execution_arn, created_at=self.db.now()))
            s.commit()
        return {"reportId": rid, "discrepancyCount": len(audit["discrepancies"]), "checkedUsers": audit["users"],
                "mintedHours": audit["minted"], "heldHours": audit["held"]}

    def report_discrepancies(self, inp: dict, ctx) -> dict:
        with self.db.session() as s:
            self._notify(s, ADMIN, "LEDGER_DISCREPANCIES", None, ctx, reportId=inp["reportId"],
                         count=inp["discrepancyCount"])
            s.commit()
        return {"reportId": inp["reportId"], "reported": True}


def _request_view(req: ServiceRequest) -> dict:
    return {"requestId": req.id, "status": req.status, "escrowId": req.escrow_id,
            "estimatedHours": hours(req.estimated_hours), "agreedHours": hours(req.agreed_hours),
            "negotiationRound": req.negotiation_round}


FUNCTIONS = {
    "InitiateRequest": "initiate_request", "ValidateRequest": "validate_request", "RejectRequest": "reject_request", "EscrowHours": "escrow_hours",
    "NotifyProvider": "notify_provider", "ProcessNegotiation": "process_negotiation",
    "AwaitNegotiationResponse": "await_negotiation_response", "AcceptTerms": "accept_terms",
    "StartServiceExecution": "start_service_execution", "AwaitProviderStart": "await_provider_start",
    "AwaitStartConfirmation": "await_start_confirmation", "RecordServiceStart": "record_service_start",
    "AwaitProviderCompletion": "await_provider_completion",
    "AwaitCompletionConfirmation": "await_completion_confirmation",
    "RecordServiceCompletion": "record_service_completion", "ProcessPayment": "process_payment",
    "CompleteWorkflow": "complete_workflow", "RefundEscrow": "refund_escrow", "HandleDispute": "handle_dispute",
    "InitiateDispute": "initiate_dispute", "FreezeRelatedTransactions": "freeze_related_transactions",
    "NotifyAdmin": "notify_admin", "ProcessDisputeResolution": "resolve_dispute",
    "RejectDecision": "reject_decision", "EscalateDispute": "escalate_dispute",
    "PolicyDecision": "policy_decision", "ApplyDisputePolicy": "apply_dispute_policy",
    "ValidateEscrow": "validate_escrow", "ProcessEscrowRelease": "process_escrow_release",
    "ProcessEscrowCancellation": "process_escrow_cancellation", "CloseCancelledRequest": "close_cancelled_request",
    "CompleteEscrow": "complete_escrow", "ProcessWelcomeBonus": "process_welcome_bonus",
    "ProcessAdminAdjustment": "process_admin_adjustment", "ProcessDirectTransfer": "process_direct_transfer",
    "ReconcileBalances": "reconcile_balances", "ReportDiscrepancies": "report_discrepancies",
}
