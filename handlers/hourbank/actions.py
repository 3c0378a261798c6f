"""What members and admins do to a running request: each action answers the task token the
workflow waits on (see `handlers.HourBankHandlers._await`).

The token is taken off the row with a conditional update before it is answered, so two
answers racing for one wait (the provider accepting while the requester disputes) cannot both
be delivered: the loser gets `ActionRejected`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from .db import Database
from .models import OPEN_DISPUTE_STATUSES, Dispute, ServiceRequest

_REQ = ServiceRequest.__table__


class ActionRejected(Exception):
    """The action does not fit what the request waits for now, or came too late."""


class HourBankActions:
    def __init__(self, engine, db: Database):
        self.engine = engine
        self.db = db

    def _take(self, request_id: str, awaiting: tuple[str, ...], actor: str | None) -> str:
        with self.db.session() as s:
            req = s.get(ServiceRequest, request_id)
            if req is None or req.pending_token is None or req.awaiting not in awaiting:
                raise ActionRejected(f"Request {request_id} is not waiting for {'/'.join(awaiting)}.")
            if actor is not None and req.awaiting_actor != actor:
                raise ActionRejected(f"Request {request_id} waits for {req.awaiting_actor}, not {actor}.")
            token = req.pending_token
            done = s.execute(update(_REQ).where(_REQ.c.id == request_id, _REQ.c.pending_token == token)
                             .values(pending_token=None))
            if done.rowcount != 1:
                raise ActionRejected(f"Request {request_id} was answered by someone else.")
            s.commit()
            return token

    def _send(self, token: str, output: dict | None = None, error: str | None = None, cause: str = "") -> None:
        status = self.engine.send_task_result(token, error is None, output=output, error=error, cause=cause)
        if status != "ok":
            raise ActionRejected(f"The wait is over ({status}).")

    def provider_respond(self, request_id: str, provider_id: str, action: str, hours: float | None = None) -> None:
        """ACCEPT, REJECT or COUNTER_OFFER (with `hours`) a new request."""
        token = self._take(request_id, ("PROVIDER_RESPONSE",), provider_id)
        self._send(token, {"action": action, "hours": hours, "by": provider_id})

    def negotiate(self, request_id: str, user_id: str, action: str, hours: float | None = None) -> None:
        """Answer the counter-offer on the table: ACCEPT, REJECT or COUNTER_OFFER again."""
        token = self._take(request_id, ("NEGOTIATION_RESPONSE",), user_id)
        self._send(token, {"action": action, "hours": hours, "by": user_id})

    def mark_started(self, request_id: str, provider_id: str) -> None:
        self._send(self._take(request_id, ("SERVICE_START",), provider_id), {"started": True})

    def confirm_start(self, request_id: str, requester_id: str) -> None:
        self._send(self._take(request_id, ("START_CONFIRMATION",), requester_id), {"confirmed": True})

    def mark_completed(self, request_id: str, provider_id: str) -> None:
        self._send(self._take(request_id, ("SERVICE_COMPLETION",), provider_id), {"completed": True})

    def confirm_completion(self, request_id: str, requester_id: str) -> None:
        self._send(self._take(request_id, ("COMPLETION_CONFIRMATION",), requester_id), {"confirmed": True})

    def raise_dispute(self, request_id: str, user_id: str, reason: str) -> str:
        """Open a dispute. If the workflow waits for anyone, that wait ends with
        HourBank.DisputeRaised now; otherwise its next wait does."""
        did = "dsp-" + uuid.uuid4().hex[:20]   # a dismissed dispute may be followed by another
        with self.db.session() as s:
            req = s.get(ServiceRequest, request_id)
            if req is None or req.status in ("PAID", "REJECTED", "EXPIRED", "REFUNDED", "DISPUTED"):
                raise ActionRejected(f"Request {request_id} cannot be disputed now.")
            if user_id not in (req.requester_id, req.provider_id):
                raise ActionRejected(f"{user_id} is not a party to request {request_id}.")
            s.add(Dispute(id=did, request_id=request_id, escrow_id=req.escrow_id, raised_by=user_id, reason=reason,
                          status="OPEN", created_at=self.db.now()))
            token = req.pending_token
            req.pending_token = None
            s.commit()
        if token:
            self.engine.send_task_result(token, False, error="HourBank.DisputeRaised", cause=reason)
        return did

    def admin_decide(self, dispute_id: str, admin_id: str, resolution: str, refund_hours: float | None = None) -> None:
        """REFUND_REQUESTER, PAY_PROVIDER, PARTIAL_REFUND (with `refund_hours`) or DISMISS; an
        escalated dispute is decided the same way until its policy deadline."""
        with self.db.session() as s:
            d = s.get(Dispute, dispute_id)
            if d is None or d.pending_token is None or d.status not in OPEN_DISPUTE_STATUSES:
                raise ActionRejected(f"Dispute {dispute_id} awaits no decision.")
            token, d.pending_token = d.pending_token, None
            s.commit()
        self._send(token, {"resolution": resolution, "refundHours": refund_hours, "adminId": admin_id})

    def open_dispute_id(self, request_id: str) -> str | None:
        with self.db.session() as s:
            row = s.execute(select(Dispute.id).where(Dispute.request_id == request_id,
                                                     Dispute.status.in_(OPEN_DISPUTE_STATUSES))).first()
            return row[0] if row else None

