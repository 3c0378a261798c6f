"""HourBank's workflows, every path, on the virtual clock (seeds 002 and 004).

Each test drives real handlers against real tables through the engine; members answer through
`HourBankActions`, which answers the task tokens the workflows wait on. After every scenario the
ledger audit must come back clean.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

import statelang
from statelang.handlers.hourbank import ActionRejected
from statelang.handlers.hourbank.models import (
    Dispute,
    Escrow,
    Notification,
    ReconciliationReport,
    UserBalance,
)
from statelang.workflows.hourbank import WORKFLOWS, definition
from statelang.workflows.hourbank.sandbox import HourBankSandbox

HOUR = 3600
DAY = 86400
SR = "HourBankServiceRequest"


@pytest.fixture
def sb(tmp_path):
    bank = HourBankSandbox(bank_db=f"sqlite:///{tmp_path / 'bank.db'}")
    bank.add_member("alice", 10)
    bank.add_member("bob", 2, response_hours=4)
    bank.add_member("carol", 1)
    bank.add_service("garden", "bob")
    yield bank
    assert bank.ledger.audit()["discrepancies"] == []


def error_of(sb, arn):
    row = sb.execution(arn)
    return row["status"], row.get("error")


def accept_and_start(sb, rid):
    sb.actions.provider_respond(rid, "bob", "ACCEPT")
    sb.drain()
    sb.actions.mark_started(rid, "bob")
    sb.drain()
    sb.actions.confirm_start(rid, "alice")
    sb.drain()


@pytest.mark.parametrize("row", WORKFLOWS, ids=lambda r: r["name"])
def test_definitions_are_valid_asl(row):
    assert statelang.validate(definition(row["name"])) == []


def test_happy_path_pays_the_provider(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    assert sb.row(rid).status == "AWAITING_RESPONSE" and sb.escrowed("alice") == 3
    accept_and_start(sb, rid)
    assert sb.row(rid).status == "IN_PROGRESS" and sb.row(rid).started_at is not None
    sb.actions.mark_completed(rid, "bob")
    sb.drain()
    assert sb.row(rid).status == "PENDING_COMPLETION_CONFIRMATION"
    sb.actions.confirm_completion(rid, "alice")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "PAID"
    assert (sb.available("alice"), sb.escrowed("alice"), sb.available("bob")) == (7, 0, 5)
    assert sb.states_entered(arn)[-1] == "Completed"
    with sb.db.session() as s:
        kinds = set(s.scalars(select(Notification.kind).where(Notification.request_id == rid)))
    assert {"SERVICE_REQUEST_RECEIVED", "RATE_SERVICE", "PAYMENT_RECEIVED", "SERVICE_STARTED"} <= kinds


@pytest.mark.parametrize("setup, args, reason", [
    (None, ("alice", "bob", "garden", 11), "Insufficient bank hours"),
    (None, ("alice", "bob", "garden", 0), "between 0 and"),
    (None, ("alice", "bob", "garden", 41), "between 0 and"),
    ("suspend-alice", ("alice", "bob", "garden", 1), "Requester account is not active"),
    ("suspend-bob", ("alice", "bob", "garden", 1), "Provider is not active"),
    (None, ("bob", "bob", "garden", 1), "own service"),
    ("unavailable", ("alice", "bob", "garden", 1), "Service is not available"),
    (None, ("alice", "carol", "garden", 1), "Service is not available"),
    ("duplicate", ("alice", "bob", "garden", 1), "pending request"),
])
def test_validation_failures_reject_without_escrow(sb, setup, args, reason):
    if setup == "suspend-alice":
        sb.add_member("alice", status="SUSPENDED")
    elif setup == "suspend-bob":
        sb.add_member("bob", status="SUSPENDED", response_hours=4)
    elif setup == "unavailable":
        sb.add_service("garden", "bob", status="UNAVAILABLE")
    elif setup == "duplicate":
        sb.request("alice", "bob", "garden", 1)
    before = sb.available(args[0])
    arn, rid = sb.request(*args)
    assert error_of(sb, arn) == ("FAILED", "HourBank.RequestRejected")
    assert sb.row(rid).status == "REJECTED" and reason in sb.row(rid).outcome_reason
    assert sb.row(rid).escrow_id is None and sb.available(args[0]) == before


def test_balance_spent_between_validation_and_escrow_rejects(sb):
    validate = sb.handlers.validate_request

    def validate_then_spend(inp, ctx):
        out = validate(inp, ctx)
        sb.ledger.transfer("alice", "carol", 900, key="meanwhile")
        return out
    sb.engine.resources.register("hourbank-ValidateRequest", validate_then_spend)
    arn, rid = sb.request("alice", "bob", "garden", 3)
    assert error_of(sb, arn) == ("FAILED", "HourBank.RequestRejected")
    assert "EscrowFailed" in sb.states_entered(arn)
    assert "has 1.00 h available" in sb.row(rid).outcome_reason and sb.escrowed("alice") == 0


def test_provider_rejection_refunds(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "REJECT")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REJECTED"
    assert (sb.available("alice"), sb.escrowed("alice")) == (10, 0)
    with sb.db.session() as s:
        assert s.get(Escrow, sb.row(rid).escrow_id).status == "CANCELLED"


@pytest.mark.parametrize("response_hours, deadline", [(4, 4), (1, 2), (100, 72)])
def test_provider_silence_expires_at_their_own_deadline(sb, response_hours, deadline):
    sb.add_member("bob", response_hours=response_hours)
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.advance(deadline * HOUR - 1)
    assert sb.status(arn) == "RUNNING" and sb.row(rid).status == "AWAITING_RESPONSE"
    sb.advance(2)
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "EXPIRED"
    assert sb.available("alice") == 10
    with pytest.raises(ActionRejected):
        sb.actions.provider_respond(rid, "bob", "ACCEPT")


def test_answer_from_the_wrong_member_is_refused(sb):
    _, rid = sb.request("alice", "bob", "garden", 3)
    with pytest.raises(ActionRejected):
        sb.actions.provider_respond(rid, "alice", "ACCEPT")
    with pytest.raises(ActionRejected):
        sb.actions.confirm_start(rid, "alice")


@pytest.mark.parametrize("agreed, alice_after", [(5, 5), (2, 8)])
def test_counter_offer_accepted_resizes_escrow_and_pays_agreed_hours(sb, agreed, alice_after):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=agreed)
    sb.drain()
    assert sb.row(rid).status == "NEGOTIATING" and sb.row(rid).awaiting_actor == "alice"
    sb.actions.negotiate(rid, "alice", "ACCEPT")
    sb.drain()
    assert sb.row(rid).status == "ACCEPTED" and sb.escrowed("alice") == agreed
    sb.actions.mark_started(rid, "bob")
    sb.drain()
    sb.actions.confirm_start(rid, "alice")
    sb.drain()
    sb.actions.mark_completed(rid, "bob")
    sb.drain()
    sb.actions.confirm_completion(rid, "alice")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED"
    assert (sb.available("alice"), sb.available("bob")) == (alice_after, 2 + agreed)


def test_counter_offer_rejected_refunds(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=4)
    sb.drain()
    sb.actions.negotiate(rid, "alice", "REJECT")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REJECTED"
    assert "NegotiationFailed" in sb.states_entered(arn) and sb.available("alice") == 10


def test_negotiation_stops_after_three_rounds(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=6)
    sb.drain()
    offers = [("alice", 4), ("bob", 5), ("alice", 4.5)]
    for who, h in offers:
        sb.actions.negotiate(rid, who, "COUNTER_OFFER", hours=h)
        sb.drain()
    assert sb.row(rid).negotiation_round == 4
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REJECTED"
    assert sb.states_entered(arn).count("ProcessNegotiation") == 4


def test_negotiation_answer_expires_after_24_hours(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=4)
    sb.drain()
    sb.advance(24 * HOUR - 1)
    assert sb.status(arn) == "RUNNING"
    sb.advance(1)
    assert sb.row(rid).status == "EXPIRED" and sb.available("alice") == 10


def test_agreed_hours_beyond_balance_end_the_negotiation(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=12)
    sb.drain()
    sb.actions.negotiate(rid, "alice", "ACCEPT")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REJECTED"
    assert "AcceptTerms" in sb.states_entered(arn) and sb.available("alice") == 10


@pytest.mark.parametrize("wait", ["NotifyProvider", "AwaitNegotiationResponse"])
def test_unknown_answer_compensates_and_fails(sb, wait):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    if wait == "AwaitNegotiationResponse":
        sb.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=4)
        sb.drain()
    token = sb.row(rid).pending_token
    assert sb.engine.send_task_result(token, True, output={"action": "MAYBE"}) == "ok"
    sb.drain()
    assert error_of(sb, arn) == ("FAILED", "HourBank.WorkflowError")
    assert "HandleWorkflowError" in sb.states_entered(arn) and sb.available("alice") == 10


def test_provider_never_starts_expires_after_seven_days(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "ACCEPT")
    sb.drain()
    sb.advance(7 * 86400 - 1)
    assert sb.status(arn) == "RUNNING"
    sb.advance(1)
    assert sb.row(rid).status == "EXPIRED" and sb.available("alice") == 10


def test_silent_requester_auto_confirms_start_and_completion_after_48_hours(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "ACCEPT")
    sb.drain()
    sb.actions.mark_started(rid, "bob")
    sb.drain()
    assert sb.row(rid).status == "PENDING_START_CONFIRMATION"
    sb.advance(48 * HOUR - 1)
    assert sb.row(rid).status == "PENDING_START_CONFIRMATION"
    sb.advance(1)
    assert sb.row(rid).status == "IN_PROGRESS"
    sb.actions.mark_completed(rid, "bob")
    sb.drain()
    sb.advance(48 * HOUR)
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "PAID"
    entered = sb.states_entered(arn)
    assert "AutoConfirmStart" in entered and "AutoConfirmCompletion" in entered
    assert sb.available("bob") == 5


def dispute_to_admin(sb, rid, by="alice"):
    did = sb.actions.raise_dispute(rid, by, "Not as agreed")
    sb.drain()
    with sb.db.session() as s:
        d = s.get(Dispute, did)
        esc = s.get(Escrow, d.escrow_id)
        assert d.pending_token and esc.frozen
    assert sb.row(rid).status == "DISPUTED"
    return did


STAGES = {
    "PROVIDER_RESPONSE": [],
    "NEGOTIATION_RESPONSE": [("provider_respond", "bob", "COUNTER_OFFER", 4)],
    "SERVICE_START": [("provider_respond", "bob", "ACCEPT")],
    "START_CONFIRMATION": [("provider_respond", "bob", "ACCEPT"), ("mark_started", "bob")],
    "SERVICE_COMPLETION": [("provider_respond", "bob", "ACCEPT"), ("mark_started", "bob"), ("confirm_start", "alice")],
    "COMPLETION_CONFIRMATION": [("provider_respond", "bob", "ACCEPT"), ("mark_started", "bob"),
                                ("confirm_start", "alice"), ("mark_completed", "bob")],
}


def reach(sb, rid, stage):
    for action, *args in STAGES[stage]:
        getattr(sb.actions, action)(rid, *args)
        sb.drain()
    assert sb.row(rid).awaiting == stage


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("resolution, refund, alice, bob", [
    ("REFUND_REQUESTER", None, 10, 2), ("PAY_PROVIDER", None, 7, 5), ("PARTIAL_REFUND", 1, 8, 4)])
def test_dispute_at_any_wait_is_settled_by_the_admin(sb, stage, resolution, refund, alice, bob):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    reach(sb, rid, stage)
    did = dispute_to_admin(sb, rid)
    with pytest.raises(ActionRejected):
        sb.actions.raise_dispute(rid, "bob", "again")
    sb.actions.admin_decide(did, "admin-1", resolution, refund)
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.states_entered(arn)[-1] == "DisputeSettled"
    assert (sb.available("alice"), sb.escrowed("alice"), sb.available("bob")) == (alice, 0, bob)
    assert sb.row(rid).status == ("REFUNDED" if resolution == "REFUND_REQUESTER" else "PAID")


@pytest.mark.parametrize("stage, resumed_at", [
    ("PROVIDER_RESPONSE", "NotifyProvider"), ("NEGOTIATION_RESPONSE", "AwaitNegotiationResponse"),
    ("SERVICE_START", "AwaitProviderStart"), ("START_CONFIRMATION", "AwaitProviderStart"),
    ("SERVICE_COMPLETION", "AwaitProviderCompletion"), ("COMPLETION_CONFIRMATION", "AwaitProviderCompletion")])
def test_dismissed_dispute_resumes_the_interrupted_wait(sb, stage, resumed_at):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    reach(sb, rid, stage)
    before = sb.row(rid).status
    did = dispute_to_admin(sb, rid, by="bob")
    sb.actions.admin_decide(did, "admin-1", "DISMISS")
    sb.drain()
    entered = sb.states_entered(arn)
    assert entered[entered.index("ResumeAfterDismissal") + 1] == resumed_at
    assert sb.status(arn) == "RUNNING" and sb.row(rid).status == before and sb.escrowed("alice") == 3
    with sb.db.session() as s:
        assert not s.get(Escrow, sb.row(rid).escrow_id).frozen


def test_dispute_raised_between_waits_interrupts_the_next_wait(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "ACCEPT")   # answered, not yet processed
    did = sb.actions.raise_dispute(rid, "alice", "Changed my mind")
    sb.drain()
    with sb.db.session() as s:
        assert s.get(Dispute, did).pending_token is not None
    assert sb.row(rid).status == "DISPUTED"
    sb.actions.admin_decide(did, "admin-1", "REFUND_REQUESTER")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.available("alice") == 10


def test_stalled_service_opens_a_system_dispute_after_30_days(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    accept_and_start(sb, rid)
    sb.advance(30 * 86400)
    assert sb.row(rid).status == "DISPUTED"
    did = sb.actions.open_dispute_id(rid)
    with sb.db.session() as s:
        assert s.get(Dispute, did).raised_by == "SYSTEM"
    sb.actions.admin_decide(did, "admin-1", "PAY_PROVIDER")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.available("bob") == 5


def escalated(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    accept_and_start(sb, rid)
    did = dispute_to_admin(sb, rid)
    sb.advance(7 * DAY)
    with sb.db.session() as s:
        d = s.get(Dispute, did)
        assert d.status == "ESCALATED" and d.pending_token is not None
    assert sb.status(arn) == "RUNNING" and sb.row(rid).status == "DISPUTED" and sb.escrowed("alice") == 3
    return arn, rid, did


def test_escalated_dispute_stays_decidable_by_an_admin(sb):
    arn, rid, did = escalated(sb)
    release = sb.start("HourBankEscrowRelease", {"escrowId": sb.row(rid).escrow_id})
    assert error_of(sb, release) == ("FAILED", "HourBank.ReleaseRejected")   # the dispute holds the hours
    sb.advance(3 * DAY - 1)
    sb.actions.admin_decide(did, "admin-2", "PAY_PROVIDER")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "PAID"
    assert (sb.available("alice"), sb.escrowed("alice"), sb.available("bob")) == (7, 0, 5)
    with sb.db.session() as s:
        assert (s.get(Dispute, did).status, s.get(Dispute, did).admin_id) == ("RESOLVED", "admin-2")


def test_escalated_dispute_is_decided_by_policy_at_its_deadline(sb):
    arn, rid, did = escalated(sb)
    sb.advance(3 * DAY - 1)
    assert sb.row(rid).status == "DISPUTED"
    sb.advance(1)
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REFUNDED"
    assert (sb.available("alice"), sb.escrowed("alice"), sb.available("bob")) == (10, 0, 2)
    with sb.db.session() as s:
        d = s.get(Dispute, did)
        assert (d.status, d.resolution, d.admin_id) == ("RESOLVED", "REFUND_REQUESTER", "policy")
        assert s.get(Escrow, d.escrow_id).status == "CANCELLED" and not s.get(Escrow, d.escrow_id).frozen
        kinds = set(s.scalars(select(Notification.kind).where(Notification.user_id == "admin")))
    assert {"DISPUTE_ESCALATED", "DISPUTE_DECIDED_BY_POLICY"} <= kinds
    with pytest.raises(ActionRejected):
        sb.actions.admin_decide(did, "admin-2", "PAY_PROVIDER")


def test_unusable_decision_during_escalation_keeps_the_escalation_deadline_path(sb):
    arn, rid, did = escalated(sb)
    sb.actions.admin_decide(did, "admin-2", "SPLIT")
    sb.drain()
    entered = sb.states_entered(sb.output_of_nested(arn))
    assert entered[entered.index("RejectDecision") + 2] == "EscalateDispute"
    sb.advance(3 * DAY)
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REFUNDED"


def test_a_failed_dispute_workflow_is_settled_by_the_request_workflow(sb):
    """The nested dispute execution fails while escalating: the request applies the policy."""
    sb.engine.resources.register("hourbank-EscalateDispute", failing)
    arn, rid = sb.request("alice", "bob", "garden", 3)
    did = dispute_to_admin(sb, rid)
    sb.advance(7 * DAY)
    assert sb.status(arn) == "SUCCEEDED" and "ApplyDisputePolicy" in sb.states_entered(arn)
    assert sb.row(rid).status == "REFUNDED" and sb.available("alice") == 10
    with sb.db.session() as s:
        assert s.get(Dispute, did).admin_id == "policy"


def test_a_new_dispute_run_settles_a_dispute_whose_run_was_stopped(sb):
    esc = direct_escrow(sb)
    first = sb.start("HourBankDisputeResolution", {"escrowId": esc, "raisedBy": "alice", "reason": "late"})
    sb.engine.stop_execution(first, "Operator", "stopped by hand")
    sb.drain()
    with sb.db.session() as s:
        did = s.scalars(select(Dispute.id).where(Dispute.escrow_id == esc)).one()
        assert s.get(Escrow, esc).frozen
    assert sb.status(first) == "ABORTED"
    second = sb.start("HourBankDisputeResolution", {"escrowId": esc, "raisedBy": "alice"})
    sb.actions.admin_decide(did, "admin-1", "REFUND_REQUESTER")
    sb.drain()
    assert sb.status(second) == "SUCCEEDED" and sb.output(second)["disputeId"] == did
    assert sb.escrowed("alice") == 0 and sb.available("alice") == 10


@pytest.mark.parametrize("decision", [("SPLIT", None), ("PARTIAL_REFUND", 9)])
def test_unusable_decision_goes_back_to_the_admin(sb, decision):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    did = dispute_to_admin(sb, rid)
    sb.actions.admin_decide(did, "admin-1", *decision)
    sb.drain()
    assert sb.status(arn) == "RUNNING" and sb.escrowed("alice") == 3
    sb.actions.admin_decide(did, "admin-1", "REFUND_REQUESTER")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED" and sb.available("alice") == 10


def failing(*_args):
    raise RuntimeError("database unreachable")


@pytest.mark.parametrize("broken, stage, error, last", [
    ("ValidateRequest", None, "HourBank.WorkflowError", "WorkflowFailed"),
    ("StartServiceExecution", "ACCEPT", "HourBank.WorkflowError", "WorkflowFailed"),
    ("RecordServiceStart", "SERVICE_COMPLETION", "HourBank.WorkflowError", "WorkflowFailed"),
    ("ProcessPayment", "PAID", "HourBank.PaymentFailed", "PaymentFailed"),
    ("CompleteWorkflow", "PAID", "HourBank.WorkflowError", "WorkflowFailed"),
    ("RefundEscrow", "REJECT", "HourBank.WorkflowError", "WorkflowFailed"),
    ("HandleDispute", "DISPUTE", "HourBank.WorkflowError", "WorkflowFailed"),
    ("InitiateDispute", "DISPUTE", None, "DisputeSettled"),
])
def test_failing_handlers_end_in_their_failure_states(sb, broken, stage, error, last):
    sb.engine.resources.register("hourbank-" + broken, failing)
    arn, rid = sb.request("alice", "bob", "garden", 3)
    if stage in ("REJECT", "ACCEPT"):
        sb.actions.provider_respond(rid, "bob", stage)
    elif stage == "DISPUTE":
        sb.actions.raise_dispute(rid, "alice", "x")
    elif stage == "PAID":
        accept_and_start(sb, rid)
        sb.actions.mark_completed(rid, "bob")
        sb.drain()
        sb.actions.confirm_completion(rid, "alice")
    elif stage == "SERVICE_COMPLETION":
        reach(sb, rid, "SERVICE_START")
        sb.actions.mark_started(rid, "bob")
        sb.drain()
        sb.actions.confirm_start(rid, "alice")
    sb.finish()
    assert error_of(sb, arn) == ("FAILED", error) if error else sb.status(arn) == "SUCCEEDED"
    assert sb.states_entered(arn)[-1] == last
    if broken == "ProcessPayment":
        assert sb.escrowed("alice") == 3
        sb.engine.resources.register("hourbank-ProcessPayment", sb.handlers.process_payment)
        release = sb.start("HourBankEscrowRelease", {"escrowId": sb.row(rid).escrow_id})
        assert sb.status(release) == "SUCCEEDED" and sb.available("bob") == 5
    elif broken == "CompleteWorkflow":      # paid before the failure: nothing to give back
        assert (sb.available("alice"), sb.available("bob")) == (7, 5)
    elif broken == "InitiateDispute":     # the dispute never ran: the request's policy refunds
        assert sb.row(rid).status == "REFUNDED" and sb.available("alice") == 10
    elif broken not in ("RefundEscrow", "HandleDispute"):
        assert sb.escrowed("alice") == 0 and sb.available("alice") == 10


def test_lost_race_for_a_balance_is_retried_on_the_virtual_clock(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    accept_and_start(sb, rid)
    pay, calls = sb.handlers.process_payment, []

    def busy_once(inp, ctx):
        calls.append(ctx.retry_count)
        if len(calls) == 1:
            raise statelang.HandlerError("HourBank.ConcurrentUpdate", "lost the race")
        return pay(inp, ctx)
    sb.engine.resources.register("hourbank-ProcessPayment", busy_once)
    sb.actions.mark_completed(rid, "bob")
    sb.drain()
    sb.actions.confirm_completion(rid, "alice")
    sb.drain()
    assert sb.status(arn) == "RUNNING"
    sb.advance(2)
    assert sb.status(arn) == "SUCCEEDED" and calls == [0, 1] and sb.available("bob") == 5


# -- the other workflows ----------------------------------------------------------------------------

def held_escrow(sb):
    _, rid = sb.request("alice", "bob", "garden", 3)
    return rid, sb.row(rid).escrow_id


def test_escrow_release_and_cancellation(sb):
    rid, esc = held_escrow(sb)
    arn = sb.start("HourBankEscrowCancellation", {"escrowId": esc})
    assert sb.status(arn) == "SUCCEEDED" and sb.output(arn)["completed"]["status"] == "CANCELLED"
    assert sb.available("alice") == 10 and sb.row(rid).status == "REFUNDED"
    again = sb.start("HourBankEscrowCancellation", {"escrowId": esc})
    assert error_of(sb, again) == ("FAILED", "HourBank.CancellationRejected")
    esc2 = direct_escrow(sb)
    rel = sb.start("HourBankEscrowRelease", {"escrowId": esc2})
    assert sb.output(rel)["completed"]["status"] == "RELEASED" and sb.available("bob") == 5
    missing = sb.start("HourBankEscrowRelease", {"escrowId": "esc-none"})
    assert error_of(sb, missing) == ("FAILED", "HourBank.ReleaseRejected")


@pytest.mark.parametrize("flow, fn, error", [
    ("HourBankEscrowRelease", "ProcessEscrowRelease", "HourBank.ReleaseFailed"),
    ("HourBankEscrowCancellation", "ProcessEscrowCancellation", "HourBank.CancellationFailed"),
    ("HourBankEscrowRelease", "ValidateEscrow", "HourBank.ReleaseFailed")])
def test_escrow_workflows_fail_when_the_ledger_refuses(sb, flow, fn, error):
    esc = direct_escrow(sb)
    sb.engine.resources.register("hourbank-" + fn, failing)
    arn = sb.start(flow, {"escrowId": esc})
    assert error_of(sb, arn) == ("FAILED", error) and sb.escrowed("alice") == 3


def tx(sb, **inp):
    return sb.start("HourBankTransactionProcessing", inp)


def direct_escrow(sb):
    """An escrow with no service request behind it, so no other workflow's timer touches it."""
    return sb.ledger.hold("alice", "bob", 300, key="direct-escrow")["escrowId"]


def test_welcome_bonus_is_granted_once(sb):
    first = tx(sb, transactionType="WELCOME_BONUS", userId="dave")
    second = tx(sb, transactionType="WELCOME_BONUS", userId="dave")
    assert sb.output(first)["result"] == {"grantedHours": 500, "alreadyGranted": False}
    assert sb.output(second)["result"]["alreadyGranted"] is True and sb.available("dave") == 5


def test_direct_transfer_and_admin_adjustment(sb):
    ok = tx(sb, transactionType="DIRECT_TRANSFER", fromUserId="alice", toUserId="carol", hours=2.5, transferId="t1")
    dup = tx(sb, transactionType="DIRECT_TRANSFER", fromUserId="alice", toUserId="carol", hours=2.5, transferId="t1")
    assert sb.status(ok) == sb.status(dup) == "SUCCEEDED"
    assert (sb.available("alice"), sb.available("carol")) == (7.5, 3.5)
    broke = tx(sb, transactionType="DIRECT_TRANSFER", fromUserId="carol", toUserId="alice", hours=9)
    assert error_of(sb, broke) == ("FAILED", "HourBank.InsufficientBalance")
    adj = tx(sb, transactionType="ADMIN_ADJUSTMENT", userId="carol", hours=-1.5, adminId="a", reason="correction")
    assert sb.status(adj) == "SUCCEEDED" and sb.available("carol") == 2
    bad = tx(sb, transactionType="ADMIN_ADJUSTMENT", userId="carol", hours=-5)
    assert error_of(sb, bad) == ("FAILED", "HourBank.TransactionFailed") and sb.available("carol") == 2


def test_service_payment_transaction(sb):
    esc = direct_escrow(sb)
    ok = tx(sb, transactionType="SERVICE_PAYMENT", escrowId=esc)
    assert sb.output(ok)["result"] == {"paidHours": 300} and sb.available("bob") == 5
    again = tx(sb, transactionType="SERVICE_PAYMENT", escrowId=esc)
    assert error_of(sb, again) == ("FAILED", "HourBank.TransactionFailed")


def test_unknown_transaction_type(sb):
    assert error_of(sb, tx(sb, transactionType="GIFT")) == ("FAILED", "HourBank.UnknownTransactionType")


def test_reconciliation_reports_discrepancies(sb):
    direct_escrow(sb)
    clean = tx(sb, transactionType="RECONCILIATION")
    assert sb.status(clean) == "SUCCEEDED" and sb.output(clean)["report"]["discrepancyCount"] == 0
    with sb.db.session() as s:   # a write that bypassed the ledger
        s.execute(update(UserBalance).where(UserBalance.user_id == "carol")
                  .values(available_balance=UserBalance.available_balance + 50))
        s.commit()
    dirty = tx(sb, transactionType="RECONCILIATION")
    assert error_of(sb, dirty) == ("FAILED", "HourBank.LedgerDiscrepancy")
    with sb.db.session() as s:
        reports = s.scalars(select(ReconciliationReport)).all()
        problems = {(p.get("userId"), p["problem"]) for r in reports for p in r.discrepancies}
    assert len(reports) == 2 and ("carol", "available") in problems
    with sb.db.session() as s:   # put it back so the fixture's audit passes
        s.execute(update(UserBalance).where(UserBalance.user_id == "carol")
                  .values(available_balance=UserBalance.available_balance - 50))
        s.commit()


def test_standalone_dispute_without_an_open_escrow_is_rejected(sb):
    arn = sb.start("HourBankDisputeResolution", {"escrowId": "esc-none", "raisedBy": "alice"})
    assert error_of(sb, arn) == ("FAILED", "HourBank.DisputeRejected")


@pytest.mark.parametrize("fn, error", [("FreezeRelatedTransactions", "HourBank.DisputeRejected"),
                                       ("ProcessDisputeResolution", "HourBank.DisputeFailed"),
                                       ("RejectDecision", "HourBank.DisputeFailed"),
                                       ("EscalateDispute", "HourBank.DisputeFailed")])
def test_standalone_dispute_failures(sb, fn, error):
    esc = direct_escrow(sb)
    sb.engine.resources.register("hourbank-" + fn, failing)
    arn = sb.start("HourBankDisputeResolution", {"escrowId": esc, "raisedBy": "alice", "reason": "late"})
    with sb.db.session() as s:
        d = s.scalars(select(Dispute).where(Dispute.escrow_id == esc)).first()
    if d is not None and d.pending_token and fn != "EscalateDispute":
        sb.actions.admin_decide(d.id, "admin-1", "BOGUS" if fn == "RejectDecision" else "REFUND_REQUESTER")
    sb.finish()
    assert error_of(sb, arn) == ("FAILED", error)
    sb.engine.resources.register("hourbank-" + fn, getattr(sb.handlers, {
        "FreezeRelatedTransactions": "freeze_related_transactions", "ProcessDisputeResolution": "resolve_dispute",
        "RejectDecision": "reject_decision", "EscalateDispute": "escalate_dispute"}[fn]))
    with sb.db.session() as s:   # thaw and close so the request can be settled and the audit holds
        s.execute(update(Escrow).where(Escrow.id == esc).values(frozen=False))
        s.commit()
    if sb.ledger.audit()["discrepancies"] == [] and sb.escrowed("alice"):
        sb.ledger.refund(esc, key="cleanup")


def test_standalone_dispute_outputs_the_resolution(sb):
    esc = direct_escrow(sb)
    arn = sb.start("HourBankDisputeResolution", {"escrowId": esc, "raisedBy": "bob", "reason": "no-show"})
    with sb.db.session() as s:
        did = s.scalars(select(Dispute.id).where(Dispute.escrow_id == esc)).first()
    sb.actions.admin_decide(did, "admin-1", "PARTIAL_REFUND", 0.5)
    sb.drain()
    assert sb.output(arn) == {"disputeId": did, "resolution": "PARTIAL_REFUND", "refundedHours": 50,
                              "paidHours": 250, "resumeAt": None}


# -- on real SQLite files, across a restart ----------------------------------------------------------

def test_end_to_end_on_sqlite_files_survives_a_restart(tmp_path):
    bank, flows = f"sqlite:///{tmp_path / 'bank.db'}", f"sqlite:///{tmp_path / 'flows.db'}"
    first = HourBankSandbox(bank_db=bank, engine_db=flows)
    first.add_member("alice", 10)
    first.add_member("bob", 0)
    first.add_service("garden", "bob")
    arn, rid = first.request("alice", "bob", "garden", 4)
    first.actions.provider_respond(rid, "bob", "COUNTER_OFFER", hours=5)
    first.drain()
    first.engine.shutdown()
    first.db.dispose()

    second = HourBankSandbox(bank_db=bank, engine_db=flows)   # a new process on the same files
    second.engine.clock.set(first.engine.clock.now())
    assert second.status(arn) == "RUNNING" and second.row(rid).status == "NEGOTIATING"
    second.actions.negotiate(rid, "alice", "ACCEPT")
    second.drain()
    second.actions.mark_started(rid, "bob")
    second.drain()
    second.advance(48 * HOUR)                # start auto-confirmed
    did = second.actions.raise_dispute(rid, "bob", "requester unreachable")
    second.drain()
    second.actions.admin_decide(did, "admin-1", "DISMISS")
    second.drain()
    second.actions.mark_completed(rid, "bob")
    second.drain()
    second.actions.confirm_completion(rid, "alice")
    second.drain()
    assert second.status(arn) == "SUCCEEDED" and second.row(rid).status == "PAID"
    assert (second.available("alice"), second.available("bob")) == (5, 5)
    assert second.ledger.audit()["discrepancies"] == []


def test_replay_of_a_request_without_dispute(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.provider_respond(rid, "bob", "REJECT")
    sb.drain()
    assert sb.engine.replay(arn).ok


def test_replay_of_a_request_with_a_nested_dispute_execution(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    did = dispute_to_admin(sb, rid)
    sb.actions.admin_decide(did, "admin-1", "REFUND_REQUESTER")
    sb.drain()
    assert sb.status(arn) == "SUCCEEDED"
    assert sb.engine.replay(arn).ok


# -- issue 14 item 4 ----------------------------------------------------------------------------------
def test_the_request_is_initiated_before_validation(sb):
    seen = []
    validate = sb.handlers.validate_request

    def look_then_validate(inp, ctx):
        seen.append(sb.row("req-" + ctx.execution_name).status)
        return validate(inp, ctx)
    sb.engine.resources.register("hourbank-ValidateRequest", look_then_validate)
    arn, rid = sb.request("alice", "bob", "garden", 3)
    assert seen == ["INITIATED"] and sb.states_entered(arn)[:3] == ["InitiateRequest", "RecordRequest",
                                                                    "ValidateRequest"]
    assert sb.row(rid).status == "AWAITING_RESPONSE"


def test_auto_confirmation_tells_both_parties_it_was_automatic(sb):
    arn, rid = sb.request("alice", "bob", "garden", 3)
    reach(sb, rid, "START_CONFIRMATION")
    sb.advance(48 * HOUR)
    sb.actions.mark_completed(rid, "bob")
    sb.drain()
    sb.advance(48 * HOUR)
    assert sb.status(arn) == "SUCCEEDED"
    with sb.db.session() as s:
        got = {(n.user_id, n.kind) for n in s.scalars(select(Notification).where(Notification.request_id == rid))}
    for who in ("alice", "bob"):
        assert {(who, "SERVICE_START_AUTO_CONFIRMED"), (who, "SERVICE_COMPLETION_AUTO_CONFIRMED")} <= got


def test_escrows_take_only_the_statuses_and_types_the_models_list(sb):
    from statelang.handlers.hourbank.models import ESCROW_STATUSES, ESCROW_TYPES
    for stage in ("PROVIDER_RESPONSE", "SERVICE_START"):
        sb.add_service(f"svc-{stage}", "bob")
        _, rid = sb.request("alice", "bob", f"svc-{stage}", 1)
        reach(sb, rid, stage)
    sb.finish()
    with sb.db.session() as s:
        rows = s.scalars(select(Escrow)).all()
    assert rows and {e.status for e in rows} <= set(ESCROW_STATUSES) and {e.escrow_type for e in rows} <= set(ESCROW_TYPES)
