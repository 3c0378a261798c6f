"""The services marketplace (seeds 000 and 001) end to end: every path of the booking, payment,
dispute and onboarding workflows on the virtual clock, against the local services' tables, with
the domain events observed on the marketplace bus and one run across a restart on SQLite files."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

import statelang
from statelang.eventbus import EventBus
from statelang.eventbus.integration import run_until_idle
from statelang.handlers.marketplace import BOOKINGS, DISPUTES, PROVIDERS
from statelang.workflows import registry
from statelang.workflows.api import (
    MARKETPLACE_BUS,
    get_workflow_status,
    open_system,
    publish_event,
    start_workflow,
    stop_workflow,
)

DAY = 86400
MARKETPLACE = [r for r in registry.all_workflows() if r["event_source"].startswith("marketplace.")]


@pytest.fixture
def sys_():
    s = open_system()
    s.marketplace.add_service("service-456", "provider-456", 100)
    s.events = []
    bus = EventBus(s.engine, MARKETPLACE_BUS)
    bus.register_handler("event-recorder", s.events.append)
    bus.put_rule("all-marketplace", event_pattern={"source": [{"prefix": "marketplace."}]})
    bus.put_targets("all-marketplace", [{"Id": "rec", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:event-recorder"}])
    return s


def drain(s):
    run_until_idle(s.engine)


def settle(s):
    """Run what is runnable now without jumping the virtual clock (people have not answered yet)."""
    e = s.engine
    while arns := e.store.claim(e.worker_id, e.clock.now(), e.lease_seconds, 64):
        for arn in arns:
            e.process(arn)


def go(s, wtype, data, name=None, wait=False):
    s.engine.clock.advance(0.001)   # the seed's names carry a millisecond timestamp
    started = start_workflow(s.engine, wtype, data, name)
    assert started["success"], started
    settle(s) if wait else drain(s)
    return started["executionArn"], s.engine.store.get_execution(started["executionArn"])


def types(s):
    return [e["detail-type"] for e in s.events]


def booking(n="123", **kw):
    return dict({"action": "CREATE", "bookingId": f"booking-{n}", "serviceId": "service-456",
                 "customerId": "customer-789", "startDateTime": f"2024-01-{10 + int(n) % 20:02d}T10:00:00Z",
                 "endDateTime": f"2024-01-{10 + int(n) % 20:02d}T12:00:00Z", "amount": 100.00}, **kw)


def status_of(s, table, key, value):
    item = s.marketplace.item(table, key, value)
    return item and item["status" if table != PROVIDERS else "onboardingStatus"]["S"]


def children(s, status=None):
    return [r for r in s.engine.store.list_executions(None, status) if ":ecosystem-payment-processing:" in r["executionArn"]]


@pytest.mark.parametrize("row", registry.all_workflows(), ids=lambda r: r["name"])
def test_every_definition_is_valid_asl_with_its_timeout(row):
    definition = registry.load(row["name"])
    assert statelang.validate(definition) == []
    assert definition["TimeoutSeconds"] == row["timeout_seconds"]


def test_machine_timeouts_are_the_seeds():
    assert {r["name"]: r["timeout_seconds"] for r in MARKETPLACE} == {
        "booking-lifecycle": 900, "payment-processing": 600, "dispute-resolution": 7 * DAY, "provider-onboarding": 1800}


# -- booking ---------------------------------------------------------------------------------
def test_booking_create_takes_the_payment_through_the_payment_workflow(sys_):
    arn, row = go(sys_, "BOOKING_LIFECYCLE", booking(), "booking-creation-123")
    assert row["status"] == "SUCCEEDED"
    out = json.loads(row["output"])
    assert out["paymentResult"]["output"] == {"status": "SUCCEEDED", "paymentIntentId": out["payment"]["paymentIntentId"],
                                              "amount": 100.0, "platformFee": 8.0, "providerEarnings": 92.0}
    item = sys_.marketplace.booking("booking-123")
    assert item["status"]["S"] == "CONFIRMED" and item["confirmationCode"]["S"] == out["confirmation"]["confirmationCode"]
    assert sys_.services.payments.payment_intent(out["payment"]["paymentIntentId"])["status"] == "succeeded"
    assert sys_.services.payments.account("acct_platform")["balance"] == 100.0
    assert [c["status"] for c in children(sys_)] == ["SUCCEEDED"]
    assert types(sys_) == ["Payment Succeeded", "Booking Confirmed"]
    [note] = sys_.services.sns.outbox(topic_suffix=":ecosystem-booking-notifications")
    assert note["body"]["event"] == "BOOKING_CONFIRMED"


@pytest.mark.parametrize("change", [{"amount": 50}, {"serviceId": "nope"}, {"endDateTime": "2024-01-13T09:00:00Z"},
                                   {"amount": None}])
def test_booking_create_invalid_is_validation_failed(sys_, change):
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking(**change))
    assert (row["status"], row["error"]) == ("FAILED", "ValidationFailed")
    assert sys_.marketplace.booking("booking-123") is None


def test_booking_overlapping_and_duplicate_bookings_fail_validation(sys_):
    assert go(sys_, "BOOKING_LIFECYCLE", booking())[1]["status"] == "SUCCEEDED"
    clash = booking("143")   # the same day (143 % 20 == 3)
    _, row = go(sys_, "BOOKING_LIFECYCLE", clash)
    assert row["error"] == "ValidationFailed" and "already booked" in json.dumps(sys_.engine.store.history(row["executionArn"]), default=str)
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking(), "booking-123-retry")   # same bookingId: the conditional put fails
    assert row["error"] == "ValidationFailed"
    assert len(children(sys_)) == 1


def test_booking_declined_card_is_payment_failed(sys_):
    sys_.services.payments.decline("customer-789", "insufficient_funds")
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking())
    assert (row["status"], row["error"]) == ("FAILED", "PaymentFailed")
    assert status_of(sys_, BOOKINGS, "bookingId", "booking-123") == "PAYMENT_FAILED"
    assert [c["error"] for c in children(sys_)] == ["PaymentFailed"]
    assert types(sys_) == ["Payment Failed"]


def test_booking_payment_intent_retries_then_succeeds_or_fails(sys_):
    sys_.services.payments.fail_next("create_payment_intent", 2, "RateLimitError")
    arn, row = go(sys_, "BOOKING_LIFECYCLE", booking())
    assert row["status"] == "SUCCEEDED"
    failed = [e for e in sys_.engine.store.history(arn) if e["type"] == "TaskFailed"]
    assert len(failed) == 2
    sys_.services.payments.fail_next("create_payment_intent", 4, "APIConnectionError")
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking("124"))
    assert row["error"] == "PaymentFailed" and status_of(sys_, BOOKINGS, "bookingId", "booking-124") == "PAYMENT_FAILED"


def test_booking_card_authentication_answered_by_the_customer(sys_):
    arn, row = go(sys_, "BOOKING_LIFECYCLE", booking(paymentMethod="pm_card_authenticationRequired"), wait=True)
    assert row["status"] == "RUNNING"
    [ask] = sys_.services.sns.outbox(topic_suffix=":ecosystem-customer-notifications")
    assert sys_.marketplace.customer_authenticates(sys_.engine, ask["body"]["paymentIntentId"], True) == "ok"
    drain(sys_)
    assert sys_.engine.store.get_execution(arn)["status"] == "SUCCEEDED"


def test_booking_card_authentication_refused_is_payment_failed(sys_):
    arn, _ = go(sys_, "BOOKING_LIFECYCLE", booking(paymentMethod="pm_card_authenticationRequired"), wait=True)
    [ask] = sys_.services.sns.outbox(topic_suffix=":ecosystem-customer-notifications")
    sys_.marketplace.customer_authenticates(sys_.engine, ask["body"]["paymentIntentId"], False)
    drain(sys_)
    assert sys_.engine.store.get_execution(arn)["error"] == "PaymentFailed"


def test_booking_payment_not_confirmed_in_time_fails_when_the_payment_workflow_says_so(sys_):
    """Issue 14 item 12: the booking waits the payment workflow's own 10 minutes, so the payment's
    540 s wait for card authentication decides; the booking no longer cuts it short at 300 s."""
    arn, _ = go(sys_, "BOOKING_LIFECYCLE", booking(paymentMethod="pm_card_authenticationRequired"))
    row = sys_.engine.store.get_execution(arn)
    assert (row["status"], row["error"]) == ("FAILED", "PaymentFailed")
    assert (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(540, abs=1)
    assert status_of(sys_, BOOKINGS, "bookingId", "booking-123") == "PAYMENT_FAILED"
    assert [(c["status"], c["error"]) for c in children(sys_)] == [("FAILED", "TimeoutError")]


def test_booking_card_authenticated_after_five_minutes_is_confirmed(sys_):
    arn, row = go(sys_, "BOOKING_LIFECYCLE", booking(paymentMethod="pm_card_authenticationRequired"), wait=True)
    sys_.engine.clock.advance(500)
    settle(sys_)
    assert sys_.engine.store.get_execution(arn)["status"] == "RUNNING"
    [ask] = sys_.services.sns.outbox(topic_suffix=":ecosystem-customer-notifications")
    assert sys_.marketplace.customer_authenticates(sys_.engine, ask["body"]["paymentIntentId"], True) == "ok"
    drain(sys_)
    assert sys_.engine.store.get_execution(arn)["status"] == "SUCCEEDED"


def test_booking_unknown_action_is_invalid_action_error(sys_):
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking(action="ARCHIVE"))
    assert row["error"] == "InvalidActionError"


def test_booking_cancel_of_a_confirmed_booking_refunds_it(sys_):
    go(sys_, "BOOKING_LIFECYCLE", booking())
    _, row = go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    assert row["status"] == "SUCCEEDED" and status_of(sys_, BOOKINGS, "bookingId", "booking-123") == "CANCELLED"
    [refund] = sys_.services.payments.movements("refund")
    assert float(refund["amount"]) == 100.0
    assert types(sys_)[-2:] == ["Refund Processed", "Booking Cancelled"]
    _, again = go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    assert again["error"] == "InvalidActionError"


def test_booking_cancel_without_payment_skips_the_refund_and_unknown_fails(sys_):
    sys_.services.payments.decline("customer-789")
    go(sys_, "BOOKING_LIFECYCLE", booking())
    _, row = go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    assert row["status"] == "SUCCEEDED" and sys_.services.payments.movements("refund") == []
    _, row = go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-999"})
    assert row["error"] == "ValidationFailed"


def test_booking_cancel_whose_refund_fails_is_payment_failed(sys_):
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking())
    sys_.services.payments.refund(json.loads(row["output"])["payment"]["paymentIntentId"])   # refunded elsewhere
    _, row = go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    assert row["error"] == "PaymentFailed" and status_of(sys_, BOOKINGS, "bookingId", "booking-123") == "CONFIRMED"


def test_booking_cancelled_concurrently_is_invalid_action(sys_):
    """Another cancellation lands between the read and the write: the conditional update refuses."""
    sys_.services.payments.decline("customer-789")
    go(sys_, "BOOKING_LIFECYCLE", booking())
    plain = sys_.services.dynamodb.get_item

    def get_then_cancel_elsewhere(params):
        seen = plain(params)
        sys_.services.dynamodb.update_item({"TableName": BOOKINGS, "Key": params["Key"], "UpdateExpression": "SET #s = :c",
                                            "ExpressionAttributeNames": {"#s": "status"},
                                            "ExpressionAttributeValues": {":c": {"S": "CANCELLED"}}})
        return seen
    sys_.engine.resources.register("arn:aws:states:::dynamodb:getItem", get_then_cancel_elsewhere)
    _, row = go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    assert row["error"] == "InvalidActionError"


def test_booking_update_reschedules_or_fails(sys_):
    go(sys_, "BOOKING_LIFECYCLE", booking())
    moved = {"action": "UPDATE", "bookingId": "booking-123", "startDateTime": "2024-02-01T09:00:00Z",
             "endDateTime": "2024-02-01T10:00:00Z"}
    _, row = go(sys_, "BOOKING_LIFECYCLE", moved)
    assert row["status"] == "SUCCEEDED" and types(sys_)[-1] == "Booking Updated"
    assert sys_.marketplace.booking("booking-123")["startDateTime"]["S"].startswith("2024-02-01T09:00")
    _, row = go(sys_, "BOOKING_LIFECYCLE", dict(moved, endDateTime="2024-02-01T08:00:00Z"))
    assert row["error"] == "ValidationFailed"
    go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    _, row = go(sys_, "BOOKING_LIFECYCLE", moved)
    assert row["error"] == "InvalidActionError"


def test_booking_notification_outage_is_processing_failed(sys_):
    sys_.services.sns.fail("arn:aws:sns:us-east-1:123456789012:ecosystem-booking-notifications", 4)
    _, row = go(sys_, "BOOKING_LIFECYCLE", booking())
    assert row["error"] == "ProcessingFailed"


# -- payment ---------------------------------------------------------------------------------
def intent(s, customer="customer-789", method="pm_card_visa", amount=100):
    return s.services.payments.create_payment_intent(amount, customer, method)["id"]


def direct(s, pid, **kw):
    return dict({"paymentType": "DIRECT", "paymentIntentId": pid, "amount": 100.0, "customerId": "customer-789",
                 "providerId": "provider-456", "bookingId": "booking-123"}, **kw)


def test_payment_direct_succeeds_and_records_the_split(sys_):
    pid = intent(sys_)
    _, row = go(sys_, "PAYMENT_PROCESSING", direct(sys_, pid))
    assert json.loads(row["output"])["providerEarnings"] == 92.0
    rec = sys_.marketplace.item("ecosystem-payments", "paymentIntentId", pid)
    assert rec["platformFee"]["N"] == "8.0" and types(sys_) == ["Payment Succeeded"]


@pytest.mark.parametrize("setup,error", [
    (lambda s: s.services.payments.decline("customer-789"), "PaymentFailed"),
    (lambda s: s.services.payments.fail_next("confirm_payment_intent", 4), "PaymentFailed"),
])
def test_payment_direct_failures_publish_payment_failed(sys_, setup, error):
    setup(sys_)
    _, row = go(sys_, "PAYMENT_PROCESSING", direct(sys_, intent(sys_)))
    assert row["error"] == error and types(sys_) == ["Payment Failed"]


def test_payment_direct_unknown_intent_is_validation_failed_and_delayed_method_processing_failed(sys_):
    assert go(sys_, "PAYMENT_PROCESSING", direct(sys_, "pi_missing"))[1]["error"] == "ValidationFailed"
    assert go(sys_, "PAYMENT_PROCESSING", direct(sys_, intent(sys_, method="pm_bank_debit_sepa")))[1]["error"] == "ProcessingFailed"


def test_payment_direct_transient_errors_are_retried_with_backoff(sys_):
    sys_.services.payments.fail_next("confirm_payment_intent", 2)
    arn, row = go(sys_, "PAYMENT_PROCESSING", direct(sys_, intent(sys_)))
    assert row["status"] == "SUCCEEDED"
    assert (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(2 + 4, abs=1)


def test_payment_direct_confirmation_never_comes_is_timeout_error(sys_):
    _, row = go(sys_, "PAYMENT_PROCESSING", direct(sys_, intent(sys_, method="pm_card_authenticationRequired")))
    assert row["error"] == "TimeoutError" and (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(540, abs=1)
    assert types(sys_) == ["Payment Failed"]


def test_payment_payout_and_refund(sys_):
    pid = intent(sys_)
    go(sys_, "PAYMENT_PROCESSING", direct(sys_, pid))
    acct = sys_.services.payments.create_account("p@example.com")["id"]
    _, row = go(sys_, "PAYMENT_PROCESSING", {"paymentType": "PAYOUT", "providerId": "provider-456", "amount": 92.0,
                                              "connectedAccountId": acct})
    assert json.loads(row["output"])["status"] == "PAID" and types(sys_)[-1] == "Payout Completed"
    assert sys_.services.payments.account(acct)["balance"] == 0
    _, row = go(sys_, "PAYMENT_PROCESSING", {"paymentType": "PAYOUT", "providerId": "provider-456", "amount": 92.0,
                                              "connectedAccountId": acct})
    assert row["error"] == "PaymentFailed"   # the platform keeps only its 8.00 fee
    _, row = go(sys_, "PAYMENT_PROCESSING", {"paymentType": "REFUND", "paymentIntentId": pid, "amount": 30})
    assert json.loads(row["output"]) == {"status": "REFUNDED", "refundId": json.loads(row["output"])["refundId"], "amount": 30.0}
    _, row = go(sys_, "PAYMENT_PROCESSING", {"paymentType": "REFUND", "paymentIntentId": pid, "amount": 80})
    assert row["error"] == "PaymentFailed"
    sys_.services.payments.fail_next("refund", 4, "RateLimitError")
    assert go(sys_, "PAYMENT_PROCESSING", {"paymentType": "REFUND", "paymentIntentId": pid})[1]["error"] == "ProcessingFailed"
    sys_.services.payments.fail_next("transfer", 4)
    assert go(sys_, "PAYMENT_PROCESSING", {"paymentType": "PAYOUT", "amount": 1, "connectedAccountId": acct}
              )[1]["error"] == "ProcessingFailed"
    assert go(sys_, "PAYMENT_PROCESSING", {"paymentType": "PAYOUT", "amount": 1})[1]["error"] == "PaymentFailed"
    assert go(sys_, "PAYMENT_PROCESSING", {"paymentType": "CRYPTO"})[1]["error"] == "InvalidActionError"


# -- dispute ---------------------------------------------------------------------------------
def paid_booking(s, n="123"):
    _, row = go(s, "BOOKING_LIFECYCLE", booking(n))
    assert row["status"] == "SUCCEEDED"


def dispute(n="123", **kw):
    return dict({"disputeType": "REFUND_REQUEST", "bookingId": f"booking-{n}", "customerId": "customer-789",
                 "amount": 60.0, "description": "Service not provided as described"}, **kw)


def test_dispute_small_refund_is_granted_after_the_review_period(sys_):
    paid_booking(sys_)
    arn, row = go(sys_, "DISPUTE_RESOLUTION", dispute(), wait=True)
    assert row["status"] == "RUNNING" and status_of(sys_, DISPUTES, "disputeId", "dsp-booking-123") == "UNDER_REVIEW"
    drain(sys_)
    row = sys_.engine.store.get_execution(arn)
    assert (row["stopDate"] - row["startDate"]).total_seconds() >= DAY
    assert json.loads(row["output"]) == {"disputeId": "dsp-booking-123", "status": "RESOLVED", "resolution": "REFUND",
                                         "refundAmount": 60.0, "decidedBy": "AUTOMATIC"}
    assert [float(m["amount"]) for m in sys_.services.payments.movements("refund")] == [60.0]
    assert types(sys_)[-3:] == ["Dispute Created", "Refund Processed", "Dispute Resolved"]


def test_dispute_escalated_and_decided_by_an_admin(sys_):
    paid_booking(sys_)
    arn, _ = go(sys_, "DISPUTE_RESOLUTION", dispute(amount=100.0, disputeType="SERVICE_COMPLAINT"), wait=True)
    sys_.engine.clock.advance(DAY)
    settle(sys_)
    assert status_of(sys_, DISPUTES, "disputeId", "dsp-booking-123") == "ESCALATED"
    assert sys_.marketplace.admin_decides(sys_.engine, "dsp-booking-123", "REFUND", 40.0, "admin-1") == "ok"
    drain(sys_)
    row = sys_.engine.store.get_execution(arn)
    assert json.loads(row["output"])["decidedBy"] == "admin-1"
    assert sys_.marketplace.item(DISPUTES, "disputeId", "dsp-booking-123")["refundAmount"]["N"] == "40.0"


@pytest.mark.parametrize("kind,amount", [("SERVICE_COMPLAINT", 50.0), ("OTHER", 0)])
def test_dispute_admin_rejects(sys_, kind, amount):
    paid_booking(sys_)
    arn, _ = go(sys_, "DISPUTE_RESOLUTION", dispute(disputeType=kind, amount=amount), wait=True)
    sys_.engine.clock.advance(DAY)
    settle(sys_)
    sys_.marketplace.admin_decides(sys_.engine, "dsp-booking-123", "REJECT")
    drain(sys_)
    assert json.loads(sys_.engine.store.get_execution(arn)["output"])["resolution"] == "REJECT"
    assert sys_.services.payments.movements("refund") == []


def test_dispute_large_refund_request_escalates(sys_):
    paid_booking(sys_)
    go(sys_, "BOOKING_LIFECYCLE", booking("125", amount=150.0))
    arn, _ = go(sys_, "DISPUTE_RESOLUTION", dispute("125", amount=150.0), wait=True)
    sys_.engine.clock.advance(DAY)
    settle(sys_)
    assert status_of(sys_, DISPUTES, "disputeId", "dsp-booking-125") == "ESCALATED"


def test_dispute_complaint_without_a_claim_is_closed_automatically(sys_):
    paid_booking(sys_)
    _, row = go(sys_, "DISPUTE_RESOLUTION", dispute(disputeType="SERVICE_COMPLAINT", amount=0))
    assert json.loads(row["output"])["resolution"] == "REJECT"
    [note] = sys_.services.sns.outbox(topic_suffix=":ecosystem-dispute-notifications")
    assert note["body"]["resolution"] == "REJECT"


@pytest.mark.parametrize("answer,error,status", [
    (lambda s: s.marketplace.admin_cannot_decide(s.engine, "dsp-booking-123", "evidence unreadable"),
     "ProcessingFailed", "ESCALATION_FAILED"),
    (lambda s: s.marketplace.admin_decides(s.engine, "dsp-booking-123", "SPLIT"), "InvalidActionError", "ESCALATED"),
    (lambda s: s.marketplace.admin_decides(s.engine, "dsp-booking-123", "REFUND", 500.0), "PaymentFailed", "REFUND_FAILED"),
    (lambda s: None, "TimeoutError", "ESCALATION_TIMED_OUT"),
])
def test_dispute_escalation_outcomes(sys_, answer, error, status):
    paid_booking(sys_)
    arn, _ = go(sys_, "DISPUTE_RESOLUTION", dispute(disputeType="OTHER"), wait=True)
    sys_.engine.clock.advance(DAY)
    settle(sys_)
    answer(sys_)
    drain(sys_)
    row = sys_.engine.store.get_execution(arn)
    assert row["error"] == error and status_of(sys_, DISPUTES, "disputeId", "dsp-booking-123") == status
    if error == "TimeoutError":
        assert (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(6 * DAY, abs=5)


def test_dispute_withdrawn_during_review(sys_):
    paid_booking(sys_)
    arn, _ = go(sys_, "DISPUTE_RESOLUTION", dispute(), wait=True)
    sys_.services.dynamodb.update_item({"TableName": DISPUTES, "Key": {"disputeId": {"S": "dsp-booking-123"}},
                                        "UpdateExpression": "SET #s = :w", "ExpressionAttributeNames": {"#s": "status"},
                                        "ExpressionAttributeValues": {":w": {"S": "WITHDRAWN"}}})
    drain(sys_)
    assert json.loads(sys_.engine.store.get_execution(arn)["output"])["status"] == "WITHDRAWN"


def test_dispute_invalid_duplicate_and_notification_outage(sys_):
    assert go(sys_, "DISPUTE_RESOLUTION", dispute())[1]["error"] == "ValidationFailed"   # no such booking
    paid_booking(sys_)
    assert go(sys_, "DISPUTE_RESOLUTION", dispute(customerId="someone-else"))[1]["error"] == "ValidationFailed"
    go(sys_, "DISPUTE_RESOLUTION", dispute(), wait=True)
    assert go(sys_, "DISPUTE_RESOLUTION", dispute(), wait=True)[1]["error"] == "ValidationFailed"
    sys_.services.sns.fail("arn:aws:sns:us-east-1:123456789012:ecosystem-dispute-notifications", 4)
    drain(sys_)
    [first] = [r for r in sys_.engine.store.list_executions(None, None)
               if ":ecosystem-dispute-resolution:" in r["executionArn"] and r["status"] != "FAILED" or
               (":ecosystem-dispute-resolution:" in r["executionArn"] and r["error"] == "ProcessingFailed")]
    assert first["error"] == "ProcessingFailed"


# -- onboarding ------------------------------------------------------------------------------
def provider(**kw):
    return dict({"providerId": "provider-new-123", "email": "provider@example.com", "businessInfo": {
        "type": "individual", "firstName": "John", "lastName": "Doe", "businessName": "John's Services"}}, **kw)


def test_onboarding_creates_the_account_and_welcomes(sys_):
    _, row = go(sys_, "PROVIDER_ONBOARDING", provider())
    out = json.loads(row["output"])
    assert out["status"] == "ACTIVE" and sys_.services.payments.account(out["accountId"])["external_ref"] == "provider-new-123"
    assert status_of(sys_, PROVIDERS, "providerId", "provider-new-123") == "ACTIVE"
    assert types(sys_) == ["Provider Onboarded"]
    assert sys_.services.sns.outbox(topic_suffix=":ecosystem-provider-notifications")[0]["body"]["email"] == "provider@example.com"


def test_onboarding_retries_after_five_minutes(sys_):
    sys_.services.payments.fail_next("create_account", 1)
    _, row = go(sys_, "PROVIDER_ONBOARDING", provider())
    assert row["status"] == "SUCCEEDED" and (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(300, abs=1)


@pytest.mark.parametrize("faults,error,seconds", [(2, "APIConnectionError", 300), (1, "InvalidRequestError", 0)])
def test_onboarding_marked_failed(sys_, faults, error, seconds):
    sys_.services.payments.fail_next("create_account", faults, error)
    _, row = go(sys_, "PROVIDER_ONBOARDING", provider())
    assert row["error"] == "ProcessingFailed" and status_of(sys_, PROVIDERS, "providerId", "provider-new-123") == "FAILED"
    assert (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(seconds, abs=1)
    assert types(sys_) == ["Onboarding Failed"] and sys_.services.payments.movements() == []


@pytest.mark.parametrize("change", [{"email": "not-an-email"}, {"businessInfo": {"type": "company"}}])
def test_onboarding_invalid_provider(sys_, change):
    assert go(sys_, "PROVIDER_ONBOARDING", provider(**change))[1]["error"] == "ValidationFailed"


def test_onboarding_profile_update_outage_is_processing_failed(sys_):
    sys_.services.dynamodb.fail_next(4)
    assert go(sys_, "PROVIDER_ONBOARDING", provider())[1]["error"] == "ProcessingFailed"


# -- the operations and a restart ----------------------------------------------------------------
def test_operations_shapes_and_errors(sys_):
    r = start_workflow(sys_.engine, "BOOKING_LIFECYCLE", booking(paymentMethod="pm_card_authenticationRequired"))
    assert r["executionArn"].endswith(f":booking-booking-123-{int(sys_.engine.clock.now().timestamp() * 1000)}")
    assert start_workflow(sys_.engine, "NOPE", {})["success"] is False
    assert start_workflow(sys_.engine, "BOOKING_LIFECYCLE", {}, r["executionName"])["error"] == "ExecutionAlreadyExists"
    settle(sys_)
    st = get_workflow_status(sys_.engine, r["executionArn"], "BOOKING_LIFECYCLE")
    assert (st["success"], st["status"], st["output"]) == (True, "RUNNING", None)
    stopped = stop_workflow(sys_.engine, r["executionArn"], "BOOKING_LIFECYCLE")
    assert stopped["status"] == "ABORTED"
    drain(sys_)
    assert [c["status"] for c in children(sys_)] == ["ABORTED"]
    assert get_workflow_status(sys_.engine, r["executionArn"] + "x")["error"] == "ExecutionDoesNotExist"
    with pytest.raises(ValueError, match="needs an event bus"):
        publish_event(None, "marketplace.booking", "Booking Updated", {})
    sent = publish_event(sys_.bus and EventBus(sys_.engine, MARKETPLACE_BUS), "marketplace.booking", "Booking Updated",
                         {"bookingId": "123"})
    drain(sys_)
    assert sent["success"] and sys_.events[-1]["id"] == sent["eventId"]


def test_dispute_across_a_restart_on_sqlite_files(tmp_path):
    flows, domain = f"sqlite:///{tmp_path / 'flows.db'}", f"sqlite:///{tmp_path / 'domain.db'}"
    s = open_system(flows, domain)
    s.marketplace.add_service("service-456", "provider-456", 100)
    s.events = []
    paid_booking(s)
    arn, _ = go(s, "DISPUTE_RESOLUTION", dispute(), wait=True)
    s.engine.close()
    again = open_system(flows, domain)
    again.engine.clock.set(s.engine.clock.now())
    assert again.engine.store.get_execution(arn)["status"] == "RUNNING"
    drain(again)
    row = again.engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED" and again.marketplace.item(DISPUTES, "disputeId", "dsp-booking-123")["status"]["S"] == "RESOLVED"
    assert [float(m["amount"]) for m in again.services.payments.movements("refund")] == [60.0]
    again.engine.close()


# -- the edges of issue 14 (items 8, 10, 12) ----------------------------------------------------------
def test_individual_without_business_name_is_onboarded_and_welcomed_by_name(sys_):
    """Item 8: seed 000's individual has firstName/lastName; businessName is optional for them."""
    _, row = go(sys_, "PROVIDER_ONBOARDING", {"providerId": "p-ind", "email": "john@example.com", "businessInfo": {
        "type": "individual", "firstName": "John", "lastName": "Doe"}})
    assert row["status"] == "SUCCEEDED", row.get("cause")
    welcome = sys_.services.sns.outbox(topic_suffix=":ecosystem-provider-notifications")[-1]["body"]
    assert welcome["businessName"] == "John Doe" and status_of(sys_, PROVIDERS, "providerId", "p-ind") == "ACTIVE"


def publish(s, source, detail_type, detail):
    from statelang.workflows.triggers import install_triggers
    install_triggers(s)
    assert publish_event(EventBus(s.engine, MARKETPLACE_BUS), source, detail_type, detail)["success"]
    drain(s)


def test_booking_created_event_in_the_seeds_schema_books(sys_):
    """Item 10: seed 001's "Booking Created" detail has no action field."""
    detail = {k: v for k, v in booking("140").items() if k != "action"}
    publish(sys_, "marketplace.booking", "Booking Created", dict(detail, providerId="provider-456",
                                                                 timestamp="2024-01-01T00:00:00Z"))
    rows = [r for r in sys_.engine.store.list_executions() if ":booking-booking-140-" in r["executionArn"]]
    assert [r["status"] for r in rows] == ["SUCCEEDED"]
    assert status_of(sys_, BOOKINGS, "bookingId", "booking-140") == "CONFIRMED"


def test_payment_intent_created_event_without_payment_type_is_a_direct_payment(sys_):
    pid = intent(sys_)
    publish(sys_, "marketplace.payment", "Payment Intent Created",
            {k: v for k, v in direct(sys_, pid).items() if k != "paymentType"})
    rows = [r for r in sys_.engine.store.list_executions() if f":payment-{pid}-" in r["executionArn"]]
    assert [r["status"] for r in rows] == ["SUCCEEDED"]
    assert sys_.services.payments.payment_intent(pid)["status"] == "succeeded"


def test_dispute_started_by_type_is_named_after_its_dispute(sys_):
    paid_booking(sys_)
    sys_.engine.clock.advance(0.001)
    out = start_workflow(sys_.engine, "DISPUTE_RESOLUTION", dispute())
    assert re.fullmatch(r"dispute-dsp-booking-123-\d{13}", out["executionName"]), out["executionName"]


@pytest.mark.parametrize("claim, problem", [(60.0, "already refunded in full"), (0, None)])
def test_dispute_on_a_refunded_booking_is_refused_up_front(sys_, claim, problem):
    """Item 12: the booking was cancelled and refunded; a refund claim fails validation at once
    instead of passing it and ending PaymentFailed after the review."""
    paid_booking(sys_)
    go(sys_, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "booking-123"})
    _, row = go(sys_, "DISPUTE_RESOLUTION", dispute(amount=claim, disputeType="REFUND_REQUEST" if claim else
                                                    "SERVICE_COMPLAINT"))
    if problem:
        assert row["error"] == "ValidationFailed" and problem in row["cause"]
        assert (row["stopDate"] - row["startDate"]).total_seconds() < 1
    else:
        assert row["status"] == "SUCCEEDED"


def test_partial_claim_beyond_what_is_left_is_refused(sys_):
    paid_booking(sys_)
    pid = sys_.marketplace.booking("booking-123")["paymentIntentId"]["S"]
    sys_.services.payments.refund(pid, 70)
    _, row = go(sys_, "DISPUTE_RESOLUTION", dispute(amount=40.0))
    assert row["error"] == "ValidationFailed" and "30.00 not yet refunded" in row["cause"]


# -- seed 001's routing (item 9) --------------------------------------------------------------------
@pytest.fixture
def routed(sys_):
    from statelang.workflows.triggers import install_triggers
    install_triggers(sys_)
    return sys_


def test_seed_routing_rules_and_their_targets(routed):
    bus = EventBus(routed.engine, MARKETPLACE_BUS)
    targets = {r: sorted(t["Arn"].rsplit(":", 1)[-1] for t in bus.list_targets_by_rule(r)["Targets"])
               for r in ("BookingEvents", "PaymentEvents", "DisputeEvents", "ProviderEvents")}
    assert targets == {"BookingEvents": ["ecosystem-messaging-handler", "ecosystem-notification-handler"],
                       "PaymentEvents": ["ecosystem-booking-lifecycle", "ecosystem-payout-manager"],
                       "DisputeEvents": ["ecosystem-notification-handler"],
                       "ProviderEvents": ["ecosystem-notification-handler"]}
    for rule in targets:
        for t in bus.list_targets_by_rule(rule)["Targets"]:
            assert t["DeadLetterConfig"]["Arn"].endswith(":ecosystem-marketplace-dlq") and t["RetryPolicy"]


def test_a_booking_flows_through_every_route(routed):
    from statelang.handlers.marketplace import EARNINGS, MESSAGES
    arn, row = go(routed, "BOOKING_LIFECYCLE", booking())
    assert row["status"] == "SUCCEEDED"
    notified = [m["body"]["event"] for m in routed.services.sns.outbox(topic_suffix=":ecosystem-notifications")]
    assert "Booking Confirmed" in notified and "Workflow Status Changed" in notified          # booking, workflow
    assert routed.services.dynamodb.scan({"TableName": MESSAGES})["Count"] >= 1              # messaging
    assert routed.marketplace.item(EARNINGS, "providerId", "provider-456")["pending"]["N"] == "92"  # payouts
    assert routed.marketplace.booking("booking-123")["lastPaymentEvent"]["S"] == "Payment Succeeded"
    assert "marketplace.workflow" in {e["source"] for e in routed.events}
    archive = EventBus(routed.engine, MARKETPLACE_BUS).describe_archive("ecosystem-marketplace-archive")
    assert archive["EventCount"] >= 3


def test_a_target_that_keeps_failing_is_dead_lettered(routed):
    from statelang.handlers.marketplace import NOTIFICATION_TOPIC
    routed.services.sns.fail(NOTIFICATION_TOPIC, 1000)
    publish_event(EventBus(routed.engine, MARKETPLACE_BUS), "marketplace.dispute", "Dispute Created",
                  {"disputeId": "d-1", "bookingId": "b-1"})
    drain(routed)
    dead = EventBus(routed.engine, MARKETPLACE_BUS).dead_letters()
    assert [d["DeadLetterArn"].rsplit(":", 1)[-1] for d in dead if d["RuleArn"].endswith("/DisputeEvents")] == [
        "ecosystem-marketplace-dlq"]


def test_archived_events_replay_to_the_rules(routed):
    bus = EventBus(routed.engine, MARKETPLACE_BUS)
    start = routed.engine.clock.now() - timedelta(seconds=1)   # event times are whole seconds
    publish_event(bus, "marketplace.provider", "Provider Onboarded", {"providerId": "p-1"})
    drain(routed)
    notes = len(routed.services.sns.outbox(topic_suffix=":ecosystem-notifications"))
    routed.engine.clock.advance(60)
    bus.start_replay("ecosystem-marketplace-archive", start, routed.engine.clock.now(), name="again")
    drain(routed)
    assert [e["detail-type"] for e in routed.events].count("Provider Onboarded") == 2   # replayed to the rules
    # the notification target keys its message by the event's id: a replay does not notify twice
    assert len(routed.services.sns.outbox(topic_suffix=":ecosystem-notifications")) == notes
