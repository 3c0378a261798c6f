"""The services marketplace's Lambda functions (seeds 000 and 001) and the people's answers.

Bookings, services, disputes, providers and payments live in the DynamoDB-like store as the seed
keeps them in DynamoDB; money moves through the payment provider. Every handler that changes the
provider passes the task's idempotency key, so a task re-run after a crash never charges, pays
out or refunds twice. Human answers (a customer authenticating a card payment, an admin deciding
an escalated dispute) are functions here that look up the waiting task's token and answer it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from statelang import HandlerError

from .services import Services

BOOKINGS, SERVICES, PAYMENTS = "ecosystem-bookings", "ecosystem-services", "ecosystem-payments"
DISPUTES, PROVIDERS, CONFIRMATIONS = "ecosystem-disputes", "ecosystem-providers", "ecosystem-payment-confirmations"
MESSAGES, EARNINGS = "ecosystem-messages", "ecosystem-provider-earnings"
NOTIFICATION_TOPIC = "arn:aws:sns:us-east-1:123456789012:ecosystem-notifications"
PLATFORM_FEE = Decimal("0.08")      # 100.00 paid -> 92.00 provider earnings, as in the seed's payout example
AUTO_REFUND_LIMIT = Decimal("100")  # refund requests up to this amount are granted without an admin
ADMIN_TOPIC = "arn:aws:sns:us-east-1:123456789012:ecosystem-dispute-admins"
CUSTOMER_TOPIC = "arn:aws:sns:us-east-1:123456789012:ecosystem-customer-notifications"
OPEN_BOOKING = ("PENDING_PAYMENT", "CONFIRMED")
DISPUTE_TYPES = ("REFUND_REQUEST", "SERVICE_COMPLAINT", "PAYMENT_ISSUE", "OTHER")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DISPUTE_ID = "dsp-{bookingId}"   # a dispute filed without an id is the booking's dispute


def dispute_id_for(event: dict) -> str:
    return event.get("disputeId") or DISPUTE_ID.format(bookingId=event.get("bookingId", ""))


def validation_error(problems: list[str]) -> HandlerError:
    return HandlerError("ValidationError", "; ".join(problems))


def _s(item: dict, name: str, default: Any = None) -> Any:
    value = item.get(name)
    if value is None:
        return default
    (kind, raw), = value.items()
    return float(raw) if kind == "N" else raw


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)


class _EventKey:
    """The key an event's effect is recorded under (what a task's context carries for a task)."""

    def __init__(self, key: str):
        self.idempotency_key = key
        self.task_token = None


def display_name(info: dict) -> str:
    """A provider's name as addressed: the business name, else an individual's own name."""
    return info.get("businessName") or f"{info.get('firstName', '')} {info.get('lastName', '')}".strip()


class Marketplace:
    """``Marketplace(services)``: the tables, the handlers (`handlers()`), and the human answers."""

    def __init__(self, services: Services):
        self.services = services
        self.db = services.dynamodb
        for table, key in ((BOOKINGS, "bookingId"), (SERVICES, "serviceId"), (PAYMENTS, "paymentIntentId"),
                           (DISPUTES, "disputeId"), (PROVIDERS, "providerId"), (CONFIRMATIONS, "paymentIntentId"),
                           (MESSAGES, "messageId"), (EARNINGS, "providerId")):
            self.db.create_table(table, key)

    # -- data ----------------------------------------------------------------------------------
    def add_service(self, service_id: str, provider_id: str, price: float, active: bool = True) -> None:
        self.db.put_item({"TableName": SERVICES, "Item": {
            "serviceId": {"S": service_id}, "providerId": {"S": provider_id}, "price": {"N": str(price)},
            "active": {"BOOL": active}}})

    def item(self, table: str, key: str, value: str) -> dict | None:
        return self.db.get_item({"TableName": table, "Key": {key: {"S": value}}}).get("Item")

    def booking(self, booking_id: str) -> dict | None:
        return self.item(BOOKINGS, "bookingId", booking_id)

    def _overlaps(self, provider_id: str, start: datetime, end: datetime, except_id: str | None) -> list[str]:
        found = self.db.scan({"TableName": BOOKINGS, "FilterExpression": "providerId = :p AND #s IN (:a, :b)",
                              "ExpressionAttributeNames": {"#s": "status"},
                              "ExpressionAttributeValues": {":p": {"S": provider_id}, ":a": {"S": OPEN_BOOKING[0]},
                                                            ":b": {"S": OPEN_BOOKING[1]}}})["Items"]
        clashes = []
        for it in found:
            other_start, other_end = _time(_s(it, "startDateTime")), _time(_s(it, "endDateTime"))
            if _s(it, "bookingId") != except_id and other_start and other_end and start < other_end and other_start < end:
                clashes.append(_s(it, "bookingId"))
        return clashes

    # -- booking -------------------------------------------------------------------------------
    def validate_booking(self, event: dict) -> dict:
        """Checks a booking request; a request that cannot be booked is ``valid: false`` with the reasons."""
        errors = [f"{f} is required" for f in ("bookingId", "serviceId", "customerId", "startDateTime",
                                                "endDateTime", "amount") if event.get(f) in (None, "")]
        start, end = _time(event.get("startDateTime")), _time(event.get("endDateTime"))
        if event.get("startDateTime") and start is None or event.get("endDateTime") and end is None:
            errors.append("startDateTime and endDateTime must be ISO 8601 times")
        elif start and end and end <= start:
            errors.append("endDateTime must be after startDateTime")
        amount = event.get("amount")
        if amount is not None and (not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount <= 0):
            errors.append("amount must be a positive number")
        provider = None
        if event.get("serviceId"):
            service = self.item(SERVICES, "serviceId", event["serviceId"])
            if service is None or not _s(service, "active", False):
                errors.append(f"service {event['serviceId']} is not offered")
            else:
                provider = _s(service, "providerId")
                if not errors and _money(amount) < _money(_s(service, "price")):
                    errors.append(f"amount {amount} is below the service price {_s(service, 'price')}")
                if event.get("providerId") and event["providerId"] != provider:
                    errors.append(f"service {event['serviceId']} is not offered by {event['providerId']}")
        if not errors and provider:
            clashes = self._overlaps(provider, start, end, event["bookingId"])
            if clashes:
                errors.append(f"the provider is already booked then ({', '.join(clashes)})")
        return {"valid": not errors, "errors": errors, "providerId": provider or event.get("providerId") or ""}

    def create_payment_intent(self, event: dict, ctx) -> dict:
        intent = self.services.payments.create_payment_intent(
            event["amount"], event["customerId"], event.get("paymentMethod") or "pm_card_visa",
            metadata={"bookingId": event["bookingId"]}, idempotency_key=ctx.idempotency_key)
        return {"paymentIntentId": intent["id"], "status": intent["status"]}

    def confirm_booking(self, event: dict) -> dict:
        code = "CNF-" + hashlib.sha1(event["bookingId"].encode()).hexdigest()[:8].upper()
        self.db.update_item({"TableName": BOOKINGS, "Key": {"bookingId": {"S": event["bookingId"]}},
                             "UpdateExpression": "SET #s = :s, paymentIntentId = :p, confirmationCode = :c",
                             "ConditionExpression": "#s IN (:pending, :s)",
                             "ExpressionAttributeNames": {"#s": "status"},
                             "ExpressionAttributeValues": {":s": {"S": "CONFIRMED"}, ":pending": {"S": "PENDING_PAYMENT"},
                                                           ":p": {"S": event["paymentIntentId"]}, ":c": {"S": code}}})
        return {"status": "CONFIRMED", "confirmationCode": code}

    def reschedule_booking(self, event: dict) -> dict:
        booking = self.booking(event.get("bookingId") or "")
        if booking is None:
            raise validation_error([f"booking {event.get('bookingId')} does not exist"])
        if _s(booking, "status") not in OPEN_BOOKING:
            raise HandlerError("InvalidBookingState", f"a {_s(booking, 'status')} booking cannot be rescheduled")
        start = _time(event.get("startDateTime", _s(booking, "startDateTime")))
        end = _time(event.get("endDateTime", _s(booking, "endDateTime")))
        if start is None or end is None or end <= start:
            raise validation_error(["the new times must be ISO 8601 with the end after the start"])
        clashes = self._overlaps(_s(booking, "providerId"), start, end, event["bookingId"])
        if clashes:
            raise validation_error([f"the provider is already booked then ({', '.join(clashes)})"])
        out = self.db.update_item({"TableName": BOOKINGS, "Key": {"bookingId": {"S": event["bookingId"]}},
                                   "UpdateExpression": "SET startDateTime = :a, endDateTime = :b",
                                   "ExpressionAttributeValues": {":a": {"S": start.isoformat()},
                                                                 ":b": {"S": end.isoformat()}},
                                   "ReturnValues": "ALL_NEW"})["Attributes"]
        return {"status": _s(out, "status"), "startDateTime": _s(out, "startDateTime"),
                "endDateTime": _s(out, "endDateTime")}

    # -- payments ------------------------------------------------------------------------------
    @staticmethod
    def _split(amount: Any) -> dict:
        total = _money(amount)
        fee = (total * PLATFORM_FEE).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return {"amount": float(total), "platformFee": float(fee), "providerEarnings": float(total - fee)}

    def process_payment(self, event: dict, ctx) -> dict:
        intent = self.services.payments.confirm_payment_intent(event["paymentIntentId"],
                                                               idempotency_key=ctx.idempotency_key)
        return dict(self._split(intent["amount"]), status=intent["status"], paymentIntentId=intent["id"])

    def request_payment_confirmation(self, event: dict, ctx) -> dict:
        """Park the task token with the intent and ask the customer to authenticate."""
        self.db.put_item({"TableName": CONFIRMATIONS, "Item": {
            "paymentIntentId": {"S": event["paymentIntentId"]}, "taskToken": {"S": event["taskToken"]},
            "customerId": {"S": event["customerId"]}}})
        self.services.sns.publish({"TopicArn": CUSTOMER_TOPIC, "Subject": "Confirm your payment", "Message": {
            "event": "PAYMENT_ACTION_REQUIRED", "customerId": event["customerId"],
            "paymentIntentId": event["paymentIntentId"], "amount": event["amount"]}}, ctx)
        return {"requested": True}

    def process_payout(self, event: dict, ctx) -> dict:
        account = event.get("connectedAccountId")
        if not account:
            raise HandlerError("InvalidRequestError", "parameter_missing: connectedAccountId is required")
        pay = self.services.payments
        pay.transfer(event["amount"], account, idempotency_key=f"{ctx.idempotency_key}#transfer")
        payout = pay.payout(account, event["amount"], idempotency_key=f"{ctx.idempotency_key}#payout")
        return {"payoutId": payout["id"], "amount": payout["amount"], "currency": payout["currency"]}

    def process_refund(self, event: dict, ctx) -> dict:
        refund = self.services.payments.refund(event["paymentIntentId"], event.get("amount"),
                                               idempotency_key=ctx.idempotency_key)
        return {"refundId": refund["id"], "amount": refund["amount"], "bookingId": event.get("bookingId", "")}

    # -- disputes ------------------------------------------------------------------------------
    def validate_dispute(self, event: dict) -> dict:
        problems = [f"{f} is required" for f in ("bookingId", "customerId", "disputeType") if not event.get(f)]
        if event.get("disputeType") and event["disputeType"] not in DISPUTE_TYPES:
            problems.append(f"disputeType must be one of {', '.join(DISPUTE_TYPES)}")
        booking = self.booking(event["bookingId"]) if event.get("bookingId") else None
        if event.get("bookingId") and booking is None:
            problems.append(f"booking {event['bookingId']} does not exist")
        if booking is not None:
            if _s(booking, "customerId") != event.get("customerId"):
                problems.append("the booking belongs to another customer")
            if not _s(booking, "paymentIntentId"):
                problems.append("the booking was never paid")
            amount = event.get("amount", 0)
            if not isinstance(amount, (int, float)) or amount < 0 or amount > _s(booking, "amount"):
                problems.append(f"amount must be between 0 and the booking's {_s(booking, 'amount')}")
            elif _s(booking, "paymentIntentId"):
                problems += self._refund_room(_s(booking, "paymentIntentId"), amount, event.get("disputeType"))
        if problems:
            raise validation_error(problems)
        return {"disputeId": dispute_id_for(event), "disputeType": event["disputeType"],
                "bookingId": event["bookingId"], "customerId": event["customerId"],
                "providerId": _s(booking, "providerId"), "amount": event.get("amount", 0),
                "description": event.get("description", ""), "paymentIntentId": _s(booking, "paymentIntentId")}

    def _refund_room(self, payment_intent_id: str, amount: Any, dispute_type: str | None) -> list[str]:
        """A money claim larger than what is left of the payment is refused here, up front, rather
        than after the review when the refund itself fails."""
        try:
            intent = self.services.payments.payment_intent(payment_intent_id)
        except HandlerError:
            return []
        left = _money(intent["amount"]) - _money(intent["amount_refunded"])
        if left <= 0 and (amount or dispute_type == "REFUND_REQUEST"):
            return ["the booking was already refunded in full"]
        if _money(amount) > left:
            return [f"amount {amount} is more than the {float(left):.2f} not yet refunded"]
        return []

    def auto_resolve_dispute(self, event: dict) -> dict:
        """Refund requests up to the limit are granted, once per booking; complaints without a
        money claim are closed with a note to the provider; anything else goes to an admin."""
        amount = _money(event.get("amount", 0))
        if event["disputeType"] == "REFUND_REQUEST":
            if amount <= AUTO_REFUND_LIMIT:
                return {"resolution": "REFUND", "refundAmount": float(amount), "reason": "within the automatic refund limit"}
            return {"resolution": "ESCALATE", "refundAmount": 0, "reason": "above the automatic refund limit"}
        if amount == 0:
            return {"resolution": "REJECT", "refundAmount": 0, "reason": "complaint recorded, no refund claimed"}
        return {"resolution": "ESCALATE", "refundAmount": 0, "reason": "a complaint with a money claim needs an admin"}

    def escalate_dispute(self, event: dict, ctx) -> dict:
        self.db.update_item({"TableName": DISPUTES, "Key": {"disputeId": {"S": event["disputeId"]}},
                             "UpdateExpression": "SET #s = :s, taskToken = :t", "ExpressionAttributeNames": {"#s": "status"},
                             "ExpressionAttributeValues": {":s": {"S": "ESCALATED"}, ":t": {"S": event["taskToken"]}}})
        self.services.sns.publish({"TopicArn": ADMIN_TOPIC, "Subject": "Dispute needs a decision", "Message": {
            "disputeId": event["disputeId"], "disputeType": event["disputeType"], "amount": event["amount"],
            "description": event["description"]}}, ctx)
        return {"escalated": True}

    # -- onboarding ----------------------------------------------------------------------------
    def validate_provider(self, event: dict) -> dict:
        info = event.get("businessInfo") or {}
        problems = [f"{f} is required" for f in ("providerId", "email") if not event.get(f)]
        if event.get("email") and not EMAIL.match(event["email"]):
            problems.append(f"email {event['email']} is not an email address")
        if info.get("type") not in ("individual", "company"):
            problems.append("businessInfo.type must be individual or company")
        elif info["type"] == "individual" and not (info.get("firstName") and info.get("lastName")):
            problems.append("an individual needs firstName and lastName")
        elif info["type"] == "company" and not info.get("businessName"):
            problems.append("a company needs businessName")
        if problems:
            raise validation_error(problems)
        self.db.update_item({"TableName": PROVIDERS, "Key": {"providerId": {"S": event["providerId"]}},
                             "UpdateExpression": "SET onboardingStatus = :s, email = :e",
                             "ExpressionAttributeValues": {":s": {"S": "PENDING"}, ":e": {"S": event["email"]}}})
        return {"valid": True, "displayName": display_name(info)}

    def create_connected_account(self, event: dict, ctx) -> dict:
        info = event.get("businessInfo") or {}
        name = display_name(info)
        account = self.services.payments.create_account(event["email"], info.get("type", "individual"), name,
                                                        external_ref=event["providerId"],
                                                        idempotency_key=ctx.idempotency_key)
        return {"accountId": account["id"]}

    # -- the bus's targets (seed 001's routing rules) ------------------------------------------
    # Each gets the whole event; its id keys the effect, so a redelivery changes nothing.
    def notification_handler(self, event: dict) -> dict:
        """Booking, payment, dispute and provider events -> one notification each."""
        out = self.services.sns.publish({"TopicArn": NOTIFICATION_TOPIC, "Subject": event.get("detail-type", ""),
                                         "Message": {"event": event.get("detail-type"), "source": event.get("source"),
                                                     "detail": event.get("detail") or {}}},
                                        _EventKey(f"notify:{event.get('id')}"))
        return {"messageId": out["MessageId"]}

    def messaging_handler(self, event: dict) -> dict:
        """Booking events -> a message in the booking's conversation."""
        detail = event.get("detail") or {}
        self.db.put_item({"TableName": MESSAGES, "Item": {
            "messageId": {"S": str(event.get("id"))}, "bookingId": {"S": str(detail.get("bookingId", ""))},
            "text": {"S": f"{event.get('detail-type')}: {detail.get('bookingId', '')}"},
            "sentAt": {"S": str(event.get("time", ""))}}}, request_token=f"message:{event.get('id')}")
        return {"messageId": event.get("id")}

    def payout_manager(self, event: dict) -> dict:
        """"Payment Succeeded" -> the provider's earnings wait for the next payout."""
        detail = event.get("detail") or {}
        if event.get("detail-type") != "Payment Succeeded":
            return {"pending": None}
        booking = self.booking(str(detail.get("bookingId", ""))) or {}
        provider = _s(booking, "providerId")
        if not provider:
            return {"pending": None}
        out = self.db.update_item({"TableName": EARNINGS, "Key": {"providerId": {"S": provider}},
                                   "UpdateExpression": "ADD pending :e",
                                   "ExpressionAttributeValues": {":e": {"N": str(detail.get("providerEarnings", 0))}},
                                   "ReturnValues": "UPDATED_NEW"}, request_token=f"earnings:{event.get('id')}")
        return {"providerId": provider, "pending": float(out["Attributes"]["pending"]["N"])}

    def handlers(self) -> dict:
        return {"ecosystem-validate-booking": self.validate_booking,
                "ecosystem-create-payment-intent": self.create_payment_intent,
                "ecosystem-confirm-booking": self.confirm_booking,
                "ecosystem-reschedule-booking": self.reschedule_booking,
                "ecosystem-process-payment": self.process_payment,
                "ecosystem-request-payment-confirmation": self.request_payment_confirmation,
                "ecosystem-process-payout": self.process_payout,
                "ecosystem-process-refund": self.process_refund,
                "ecosystem-validate-dispute": self.validate_dispute,
                "ecosystem-auto-resolve-dispute": self.auto_resolve_dispute,
                "ecosystem-escalate-dispute": self.escalate_dispute,
                "ecosystem-validate-provider": self.validate_provider,
                "ecosystem-create-connected-account": self.create_connected_account}

    # -- people's answers ----------------------------------------------------------------------
    def customer_authenticates(self, engine, payment_intent_id: str, succeeded: bool) -> str:
        """The customer's answer to a card that asked for authentication; answers the waiting task."""
        parked = self.item(CONFIRMATIONS, "paymentIntentId", payment_intent_id)
        if parked is None:
            raise KeyError(f"no payment confirmation is pending for {payment_intent_id}")
        intent = self.services.payments.complete_authentication(payment_intent_id, succeeded)
        token = _s(parked, "taskToken")
        if intent["status"] != "succeeded":
            return engine.send_task_result(token, False, error="CardError",
                                           cause="authentication_required: the customer did not authenticate")
        return engine.send_task_result(token, True, output=dict(self._split(intent["amount"]), status="succeeded",
                                                                paymentIntentId=payment_intent_id))

    def admin_decides(self, engine, dispute_id: str, resolution: str, refund_amount: float = 0,
                      admin_id: str = "admin") -> str:
        """An admin's decision on an escalated dispute: REFUND (with an amount) or REJECT."""
        return engine.send_task_result(self._dispute_token(dispute_id), True, output={
            "resolution": resolution, "refundAmount": refund_amount, "decidedBy": admin_id,
            "reason": "decided by an admin"})

    def admin_cannot_decide(self, engine, dispute_id: str, cause: str) -> str:
        """The admin tool reports a failure (e.g. the evidence is unreadable): the task fails."""
        return engine.send_task_result(self._dispute_token(dispute_id), False, error="AdminReviewFailed", cause=cause)

    def _dispute_token(self, dispute_id: str) -> str:
        dispute = self.item(DISPUTES, "disputeId", dispute_id)
        if dispute is None or not _s(dispute, "taskToken"):
            raise KeyError(f"dispute {dispute_id} is not waiting for an admin")
        return _s(dispute, "taskToken")
