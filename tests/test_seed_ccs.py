"""CCS (seed 003) end to end: every path of the emergency and sales workflows on the virtual
clock against the local services, and a manager's approval across a restart on SQLite files."""

from __future__ import annotations

import json

import pytest

from statelang.handlers.ccs import CONTRACTS, FAILED, INCIDENTS, VEHICLES, nit_check_digit
from statelang.workflows.api import open_system, start_workflow

HOUR = 3600
AUTHORITIES = "arn:aws:sns:us-east-1:123456789012:ccs-authorities-alerts"
OWNER = "arn:aws:sns:us-east-1:123456789012:ccs-owner-alerts"


@pytest.fixture
def s():
    return open_system(bus=False)


def settle(s):
    e = s.engine
    while arns := e.store.claim(e.worker_id, e.clock.now(), e.lease_seconds, 64):
        for arn in arns:
            e.process(arn)


def go(s, wtype, data, wait=False, name=None):
    s.engine.clock.advance(0.001)
    started = start_workflow(s.engine, wtype, data, name)
    assert started["success"], started
    settle(s) if wait else s.engine.run_until_idle()
    return started["executionArn"], s.engine.store.get_execution(started["executionArn"])


def emergency(kind="panic_button", **kw):
    return dict({"vehicleId": "VEH-12345", "type": kind, "severity": "critical", "location": {"lat": 4.6097, "lon": -74.0817},
                 "eventTimestamp": 1698765432000, "metadata": {"driver_id": "DRV-789"}}, **kw)


def incident(s, table=INCIDENTS, iid="INC-VEH-12345-1698765432000"):
    return s.ccs.item(table, "incident_id", iid)


@pytest.mark.parametrize("kind", ["panic_button", "accident", "hijack"])
def test_high_priority_alerts_authorities_owner_and_cameras_at_once(s, kind):
    _, row = go(s, "CCS_EMERGENCY", emergency(kind))
    out = json.loads(row["output"])
    assert out["incidentRecord"] == {"incident_id": {"S": "INC-VEH-12345-1698765432000"}, "status": {"S": "notified"}}
    auth, owner, video = out["parallelResults"]
    assert auth["authoritiesNotification"]["MessageId"] == s.services.sns.outbox(AUTHORITIES)[0]["message_id"]
    assert owner["ownerNotification"]["MessageId"] == s.services.sns.outbox(OWNER)[0]["message_id"]
    assert video["videoRecording"]["status"] == "recording" and s.services.video.sessions("VEH-12345")
    assert out["executionTime"].endswith("s") and incident(s)["notifications"]["N"] == "3"
    assert "latency_ms" in incident(s)


def test_other_events_notify_the_owner_only(s):
    _, row = go(s, "CCS_EMERGENCY", emergency("harsh_braking", severity="low"))
    assert [list(r) for r in json.loads(row["output"])["parallelResults"]] == [["ownerNotification"]]
    assert s.services.sns.outbox(AUTHORITIES) == [] and s.services.video.sessions() == []


def test_invalid_and_duplicate_events(s):
    assert go(s, "CCS_EMERGENCY", {"vehicleId": "VEH-1", "type": "panic_button"})[1]["error"] == "ValidationFailed"
    go(s, "CCS_EMERGENCY", emergency())
    assert start_workflow(s.engine, "CCS_EMERGENCY", emergency())["error"] == "ExecutionAlreadyExists"
    _, row = go(s, "CCS_EMERGENCY", emergency(), name="emergency-redelivered")   # the same event by another route
    assert json.loads(row["output"])["status"] == "duplicate" and len(s.services.sns.outbox(AUTHORITIES)) == 1


def test_notification_retries_back_off_then_succeed(s):
    s.services.sns.fail(AUTHORITIES, 2)
    arn, row = go(s, "CCS_EMERGENCY", emergency())
    assert row["status"] == "SUCCEEDED"
    assert (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(1 + 2, abs=0.1)


def test_a_dead_alert_channel_degrades_alone_and_is_escalated(s):
    """Issue 14 item 6: the authorities' topic is down for good. The owner's alert and the video
    still go out, the incident is updated with the channel that failed, the channel is tried
    once more after 30 s and then escalated (a review record and a message to the managers)."""
    s.services.sns.fail(AUTHORITIES, 100)
    _, row = go(s, "CCS_EMERGENCY", emergency())
    assert row["status"] == "SUCCEEDED"
    out = json.loads(row["output"])
    assert out["parallelResults"][0]["authoritiesNotification"]["status"] == "failed"
    assert out["parallelResults"][0]["authoritiesNotification"]["error"] == "SNS.InternalErrorException"
    assert out["alerts"] == {"failedChannels": ["authorities"], "redeliveredChannels": [], "status": "partially_notified"}
    assert len(s.services.sns.outbox(OWNER)) == 1 and s.services.video.sessions("VEH-12345")
    record = incident(s)
    assert record["status"]["S"] == "partially_notified" and json.loads(record["failed_channels"]["S"]) == ["authorities"]
    review = incident(s, FAILED, "INC-VEH-12345-1698765432000#authorities")
    assert review["status"]["S"] == "escalated" and review["error"]["S"] == "SNS.InternalErrorException"
    escalations = s.services.sns.outbox(topic_suffix=":ccs-manager-notifications")
    assert [m["body"]["channel"] for m in escalations] == ["authorities"]
    # 1 + 2 + 4 s of the branch's own retries, then 30 s before the second try
    assert (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(7 + 30, abs=0.1)


def test_a_channel_down_for_a_while_is_redelivered(s):
    s.services.sns.fail(AUTHORITIES, 4)   # the branch's four attempts fail; the second try gets through
    _, row = go(s, "CCS_EMERGENCY", emergency())
    out = json.loads(row["output"])
    assert out["alerts"] == {"failedChannels": [], "redeliveredChannels": ["authorities"], "status": "notified"}
    sent = s.services.sns.outbox(AUTHORITIES)
    assert len(sent) == 1 and sent[0]["body"]["redelivery"] is True
    assert incident(s)["status"]["S"] == "notified" and incident(s, FAILED) is None


def test_standard_response_with_the_owner_channel_down(s):
    s.services.sns.fail(OWNER, 100)
    _, row = go(s, "CCS_EMERGENCY", emergency("harsh_braking", severity="low"))
    assert row["status"] == "SUCCEEDED" and incident(s)["status"]["S"] == "partially_notified"
    assert incident(s, FAILED, "INC-VEH-12345-1698765432000#owner")["status"]["S"] == "escalated"


def test_camera_offline_degrades_without_failing(s):
    s.services.video.offline.add("VEH-12345")
    _, row = go(s, "CCS_EMERGENCY", emergency())
    out = json.loads(row["output"])
    assert out["parallelResults"][2] == {"videoRecording": {"status": "unavailable", "error": "CameraUnavailable"}}
    assert row["status"] == "SUCCEEDED" and out["alerts"]["failedChannels"] == ["video"]
    assert incident(s, FAILED, "INC-VEH-12345-1698765432000#video")["status"]["S"] == "escalated"


@pytest.mark.parametrize("faults,status", [(2, "SUCCEEDED"), (4, "FAILED"), (8, "FAILED")])
def test_incident_store_throttling(s, faults, status):
    s.services.dynamodb.fail_next(faults)
    _, row = go(s, "CCS_EMERGENCY", emergency())
    assert row["status"] == status
    if faults == 4:   # the incident could not be written, the failure record could
        assert incident(s) is None and incident(s, FAILED)["error"]["S"] == "DynamoDB.ProvisionedThroughputExceededException"
    if faults == 8:   # nothing could be written: the execution's failure is the record
        assert incident(s, FAILED) is None and row["error"] == "IncidentProcessingFailed"


# -- sales -----------------------------------------------------------------------------------
def sale(n=25, **kw):
    return dict({"execution_id": "exec-12345", "customer_id": "CUST-98765", "document_type": "RUT",
                 "document_id": "900123456-7", "company_info": {"name": "Transportes ABC S.A.S.", "tax_id": "900123456-7"},
                 "number_of_vehicles": n, "contract_type": "premium", "estimated_value": 15000000,
                 "payment_method": "credit_card", "vehicles": [{"plate": "ABC-123", "model": "Freightliner"}]}, **kw)


def test_check_digit():
    assert nit_check_digit("900123456") == 8 and nit_check_digit("800197268") == 4


def test_small_fleet_is_approved_automatically(s):
    s.ccs.register_company("900123456")
    _, row = go(s, "CCS_SALES", sale())
    out = json.loads(row["output"])
    assert out["validationResult"]["valid"] and out["validationResult"]["score"] == 95   # the check digit is 8, not 7
    assert out["contractResult"]["approval_type"] == "automatic" and out["contractResult"]["contract_id"].endswith("-001")
    assert out["paymentResult"]["status"] == "success" and out["activationResult"] == {"service_status": "active",
                                                                                     "vehicles_activated": 25}
    assert s.ccs.item(CONTRACTS, "contract_id", out["contractResult"]["contract_id"])["status"]["S"] == "ACTIVE"
    assert s.ccs.item(VEHICLES, "plate", "ABC-123")["status"]["S"] == "active"
    assert s.services.sns.outbox(topic_suffix=":ccs-customer-notifications")[0]["body"]["event"] == "WELCOME"


@pytest.mark.parametrize("setup,change", [
    (lambda s: None, {"contract_type": "gold"}),
    (lambda s: s.ccs.register_company("900123456", "SUSPENDED"), {}),
    (lambda s: setattr(s.ccs, "registry_unavailable", 4), {}),
])
def test_invalid_customers(s, setup, change):
    setup(s)
    assert go(s, "CCS_SALES", sale(**change))[1]["error"] == "ValidationFailed"


def test_registry_outage_is_retried(s):
    s.ccs.registry_unavailable = 2
    _, row = go(s, "CCS_SALES", sale())
    assert row["status"] == "SUCCEEDED" and json.loads(row["output"])["validationResult"]["score"] == 75


def large(s):
    arn, row = go(s, "CCS_SALES", sale(75), wait=True)
    assert row["status"] == "RUNNING" and s.ccs.pending_approvals()[0]["number_of_vehicles"] == 75
    return arn


def test_large_fleet_approved_by_a_manager(s):
    arn = large(s)
    assert s.ccs.manager_decides(s.engine, "CUST-98765", True, "MGR-1") == "ok"
    s.engine.run_until_idle()
    out = json.loads(s.engine.store.get_execution(arn)["output"])
    assert out["contractResult"]["approval_type"] == "manual" and out["activationResult"]["vehicles_activated"] == 75


@pytest.mark.parametrize("answer,error", [
    (lambda s: s.ccs.manager_decides(s.engine, "CUST-98765", False, "MGR-1", "too risky"), "ApprovalRejected"),
    (lambda s: s.ccs.manager_withdraws(s.engine, "CUST-98765", "customer withdrew"), "ApprovalRejected"),
])
def test_large_fleet_rejected(s, answer, error):
    arn = large(s)
    answer(s)
    s.engine.run_until_idle()
    assert s.engine.store.get_execution(arn)["error"] == error
    assert s.services.payments.movements() == [] and s.ccs.item(VEHICLES, "plate", "ABC-123") is None


@pytest.mark.parametrize("answer_at", [1, 12.5, 23.9])
def test_a_manager_answering_within_24_hours_is_heard(s, answer_at):
    """Issue 14 item 5: the window is 24 h from the request, heartbeats or not; after 12 h the
    request is sent again as a reminder (seed 003: "Implement reminder notifications")."""
    arn = large(s)
    s.engine.clock.advance(answer_at * HOUR)
    settle(s)
    approvals = s.ccs.pending_approvals()
    assert [a["reminder"] for a in approvals] == ([False] if answer_at < 12 else [False, True])
    assert s.ccs.manager_decides(s.engine, "CUST-98765", True, "MGR-1") == "ok"
    s.engine.run_until_idle()
    row = s.engine.store.get_execution(arn)
    assert row["status"] == "SUCCEEDED", row.get("error")


def test_an_answer_to_the_first_request_after_the_reminder_is_too_late(s):
    arn = large(s)
    first = s.ccs.pending_approvals()[0]["taskToken"]
    s.engine.clock.advance(13 * HOUR)
    settle(s)
    assert s.engine.send_task_result(first, True, output={"approved": True}) == "closed"
    assert s.engine.store.get_execution(arn)["status"] == "RUNNING"


def test_no_decision_within_24_hours_times_out(s):
    arn = large(s)
    s.engine.clock.advance(11 * HOUR)
    assert s.ccs.manager_still_reviewing(s.engine, "CUST-98765") == "ok"   # a heartbeat changes nothing
    settle(s)
    s.engine.run_until_idle()
    row = s.engine.store.get_execution(arn)
    assert row["error"] == "TimeoutError" and (row["stopDate"] - row["startDate"]).total_seconds() == pytest.approx(24 * HOUR, abs=1)
    assert len(s.ccs.pending_approvals()) == 2


@pytest.mark.parametrize("setup,status,error", [
    (lambda s: s.services.payments.decline("CUST-98765"), "FAILED", "PaymentFailed"),
    (lambda s: s.services.payments.fail_next("confirm_payment_intent", 2), "SUCCEEDED", None),
    (lambda s: s.services.payments.fail_next("confirm_payment_intent", 4, "RateLimitError"), "FAILED", "PaymentFailed"),
    (lambda s: s.services.sns.fail("arn:aws:sns:us-east-1:123456789012:ccs-customer-notifications", 4),
     "FAILED", "ProcessingFailed"),
])
def test_payment_and_activation_outcomes(s, setup, status, error):
    setup(s)
    _, row = go(s, "CCS_SALES", sale())
    assert (row["status"], row["error"]) == (status, error)
    assert s.services.payments.movements() == []   # a contract payment is a charge, not a transfer, refund or payout


def test_approval_across_a_restart_on_sqlite_files(tmp_path):
    flows, domain = f"sqlite:///{tmp_path / 'flows.db'}", f"sqlite:///{tmp_path / 'domain.db'}"
    first = open_system(flows, domain, bus=False)
    arn = large(first)
    first.engine.close()
    again = open_system(flows, domain, bus=False)
    again.engine.clock.set(first.engine.clock.now())
    again.ccs.manager_decides(again.engine, "CUST-98765", True, "MGR-2")
    again.engine.run_until_idle()
    out = json.loads(again.engine.store.get_execution(arn)["output"])
    assert out["activationResult"]["vehicles_activated"] == 75
    again.engine.close()
