"""The escrow release and cancellation workflows against a live service request (issue 14, item 2).

Hours go to the provider only for a confirmed service, back to the requester only before the
service started; a cancellation ends the request's live wait (HourBank.EscrowCancelled) so its
workflow stops instead of carrying on without its hours. Every test ends with a clean audit and
a request whose status agrees with its escrow.
"""

from __future__ import annotations

import pytest

from statelang.handlers.hourbank import ActionRejected
from statelang.handlers.hourbank.models import Escrow
from statelang.workflows.hourbank.sandbox import HourBankSandbox

STAGES = {
    "PROVIDER_RESPONSE": [],
    "NEGOTIATION_RESPONSE": [("provider_respond", "bob", "COUNTER_OFFER", 4)],
    "SERVICE_START": [("provider_respond", "bob", "ACCEPT")],
    "START_CONFIRMATION": [("provider_respond", "bob", "ACCEPT"), ("mark_started", "bob")],
    "SERVICE_COMPLETION": [("provider_respond", "bob", "ACCEPT"), ("mark_started", "bob"), ("confirm_start", "alice")],
    "COMPLETION_CONFIRMATION": [("provider_respond", "bob", "ACCEPT"), ("mark_started", "bob"),
                                ("confirm_start", "alice"), ("mark_completed", "bob")],
}
BEFORE_SERVICE = ["PROVIDER_RESPONSE", "NEGOTIATION_RESPONSE", "SERVICE_START"]
SERVICE_STARTED = ["START_CONFIRMATION", "SERVICE_COMPLETION", "COMPLETION_CONFIRMATION"]


@pytest.fixture
def sb(tmp_path):
    bank = HourBankSandbox(bank_db=f"sqlite:///{tmp_path / 'bank.db'}")
    bank.add_member("alice", 10)
    bank.add_member("bob", 2, response_hours=4)
    bank.add_service("garden", "bob")
    yield bank
    assert bank.ledger.audit()["discrepancies"] == []


def at(sb, stage):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    for action, *args in STAGES[stage]:
        getattr(sb.actions, action)(rid, *args)
        sb.drain()
    assert sb.row(rid).awaiting == stage
    return arn, rid, sb.row(rid).escrow_id


def escrow_status(sb, esc):
    with sb.db.session() as s:
        return s.get(Escrow, esc).status


def error_of(sb, arn):
    row = sb.execution(arn)
    return row["status"], row.get("error")


@pytest.mark.parametrize("stage", list(STAGES))
def test_release_before_the_service_is_confirmed_is_refused(sb, stage):
    arn, rid, esc = at(sb, stage)
    release = sb.start("HourBankEscrowRelease", {"escrowId": esc})
    assert error_of(sb, release) == ("FAILED", "HourBank.ReleaseRejected")
    assert sb.available("bob") == 2 and escrow_status(sb, esc) == "ESCROWED"
    assert sb.status(arn) == "RUNNING" and sb.row(rid).awaiting == stage


@pytest.mark.parametrize("stage", BEFORE_SERVICE)
def test_cancellation_before_the_service_ends_the_request_workflow(sb, stage):
    arn, rid, esc = at(sb, stage)
    cancel = sb.start("HourBankEscrowCancellation", {"escrowId": esc})
    assert sb.status(cancel) == "SUCCEEDED" and "SignalRequestWorkflow" in sb.states_entered(cancel)
    assert sb.status(arn) == "SUCCEEDED" and sb.states_entered(arn)[-2:] == ["RequestCancelled", "Cancelled"]
    assert sb.row(rid).status == "REFUNDED" and sb.row(rid).pending_token is None
    assert (sb.available("alice"), sb.escrowed("alice")) == (10, 0) and escrow_status(sb, esc) == "CANCELLED"
    with pytest.raises(ActionRejected):   # the provider's late answer finds nothing to answer
        sb.actions.provider_respond(rid, "bob", "ACCEPT")
    sb.finish()
    assert sb.row(rid).status == "REFUNDED" and sb.available("bob") == 2


@pytest.mark.parametrize("stage", SERVICE_STARTED)
def test_cancellation_after_the_service_started_is_refused(sb, stage):
    arn, rid, esc = at(sb, stage)
    cancel = sb.start("HourBankEscrowCancellation", {"escrowId": esc})
    assert error_of(sb, cancel) == ("FAILED", "HourBank.CancellationRejected")
    assert sb.status(arn) == "RUNNING" and sb.row(rid).awaiting == stage and sb.escrowed("alice") == 3
    if stage != "COMPLETION_CONFIRMATION":   # the provider finishes the work ...
        if stage == "START_CONFIRMATION":
            sb.actions.confirm_start(rid, "alice")
            sb.drain()
        sb.actions.mark_completed(rid, "bob")
        sb.drain()
    sb.finish()   # ... and the requester's silence confirms it: paid
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "PAID" and sb.available("bob") == 5


def test_cancellation_of_a_disputed_escrow_is_refused_and_names_the_dispute(sb):
    arn, rid, esc = at(sb, "SERVICE_START")
    did = sb.actions.raise_dispute(rid, "alice", "changed my mind")
    sb.drain()
    cancel = sb.start("HourBankEscrowCancellation", {"escrowId": esc})
    assert error_of(sb, cancel) == ("FAILED", "HourBank.CancellationRejected")
    assert did in sb.execution(cancel)["cause"]
    sb.actions.admin_decide(did, "admin-1", "REFUND_REQUESTER")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REFUNDED"


def test_release_after_the_request_could_not_pay_marks_it_paid(sb):
    arn, rid, esc = at(sb, "COMPLETION_CONFIRMATION")
    pay = sb.handlers.process_payment

    def unreachable(*_args):
        raise RuntimeError("ledger unreachable")
    sb.engine.resources.register("hourbank-ProcessPayment", unreachable)
    sb.actions.confirm_completion(rid, "alice")
    sb.finish()
    assert error_of(sb, arn) == ("FAILED", "HourBank.PaymentFailed") and sb.row(rid).status == "COMPLETED"
    sb.engine.resources.register("hourbank-ProcessPayment", pay)
    release = sb.start("HourBankEscrowRelease", {"escrowId": esc})
    assert sb.status(release) == "SUCCEEDED" and sb.row(rid).status == "PAID" and sb.available("bob") == 5
    cancel = sb.start("HourBankEscrowCancellation", {"escrowId": esc})
    assert error_of(sb, cancel) == ("FAILED", "HourBank.CancellationRejected")


def test_cancellation_between_waits_is_seen_at_the_next_wait(sb):
    """The request's wait was already answered when the cancellation signalled it: the signal
    finds a closed task (Sfn.TaskTimedOutException, caught), and the request's next wait sees the
    cancelled escrow and ends the workflow there."""
    arn, rid, esc = at(sb, "PROVIDER_RESPONSE")
    token = sb.row(rid).pending_token
    assert sb.engine.send_task_result(token, True, output={"action": "ACCEPT", "by": "bob"}) == "ok"
    cancel = sb.start("HourBankEscrowCancellation", {"escrowId": esc})   # drains both executions
    assert sb.status(cancel) == "SUCCEEDED"
    assert sb.status(arn) == "SUCCEEDED" and sb.states_entered(arn)[-2:] == ["RequestCancelled", "Cancelled"]
    assert sb.row(rid).status == "REFUNDED" and sb.available("alice") == 10
