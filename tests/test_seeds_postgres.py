"""The seed systems on PostgreSQL: executions, history and the services' own tables in one real
PostgreSQL database (the other seed tests use memory and SQLite files), including the edges of
issue 14 and the handlers' re-runs under their own keys (issue 15 item 5)."""

from __future__ import annotations

import json

from statelang.workflows.api import open_system, start_workflow
from statelang.workflows.triggers import install_triggers


def test_marketplace_booking_and_ccs_emergency_on_postgres(pg_url):
    s = open_system(db=pg_url, domain_db=pg_url, clock="virtual")
    install_triggers(s)
    s.marketplace.add_service("service-456", "provider-456", 100)
    from statelang.eventbus import EventBus
    from statelang.workflows.api import MARKETPLACE_BUS, publish_event
    detail = {"action": "CREATE", "bookingId": "booking-9", "serviceId": "service-456", "customerId": "c-1",
              "providerId": "provider-456", "startDateTime": "2024-01-15T10:00:00Z",
              "endDateTime": "2024-01-15T12:00:00Z", "amount": 100.0}
    assert publish_event(EventBus(s.engine, MARKETPLACE_BUS), "marketplace.booking", "Booking Created",
                         detail)["success"]
    from statelang.eventbus.integration import run_until_idle
    run_until_idle(s.engine)
    rows = [r for r in s.engine.store.list_executions() if ":booking-booking-9-" in r["executionArn"]]
    assert [r["status"] for r in rows] == ["SUCCEEDED"]
    payments = [r for r in s.engine.store.list_executions() if ":ecosystem-payment-processing:" in r["executionArn"]]
    assert payments and payments[0]["status"] == "SUCCEEDED"
    out = start_workflow(s.engine, "CCS_EMERGENCY", {
        "vehicleId": "VEH-9", "type": "hijack", "severity": "critical", "location": {"lat": 1, "lon": 2},
        "eventTimestamp": 1698765432000, "metadata": {}})
    run_until_idle(s.engine)
    row = s.engine.store.get_execution(out["executionArn"])
    assert row["status"] == "SUCCEEDED" and len(json.loads(row["output"])["parallelResults"]) == 3
    assert s.engine.replay(out["executionArn"]).ok
    s.engine.close()


def test_hourbank_request_on_postgres(pg_url):
    from statelang.workflows.hourbank.sandbox import HourBankSandbox
    sb = HourBankSandbox(bank_db=pg_url, engine_db=pg_url)
    sb.add_member("alice", 10)
    sb.add_member("bob", 2, response_hours=4)
    sb.add_service("garden", "bob")
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.serve(rid, "alice", "bob")
    assert sb.status(arn) == "SUCCEEDED"
    assert (sb.available("alice"), sb.escrowed("alice"), sb.available("bob")) == (7, 0, 5)
    assert sb.ledger.audit()["discrepancies"] == []


def test_hourbank_escalation_policy_and_escrow_cancellation_on_postgres(pg_url):
    from statelang.workflows.hourbank.sandbox import HourBankSandbox
    sb = HourBankSandbox(bank_db=pg_url, engine_db=pg_url)
    sb.add_member("alice", 10)
    sb.add_member("bob", 2, response_hours=4)
    sb.add_service("garden", "bob")
    sb.add_service("lessons", "bob")
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.actions.raise_dispute(rid, "alice", "x")
    sb.drain()
    sb.advance(7 * 86400)
    assert sb.row(rid).status == "DISPUTED" and sb.status(arn) == "RUNNING"
    sb.advance(3 * 86400)
    assert sb.status(arn) == "SUCCEEDED" and sb.row(rid).status == "REFUNDED"
    arn2, rid2 = sb.request("alice", "bob", "lessons", 2)
    cancel = sb.start("HourBankEscrowCancellation", {"escrowId": sb.row(rid2).escrow_id})
    assert sb.status(cancel) == "SUCCEEDED" and sb.status(arn2) == "SUCCEEDED"
    assert sb.states_entered(arn2)[-1] == "Cancelled" and sb.row(rid2).status == "REFUNDED"
    assert (sb.available("alice"), sb.escrowed("alice")) == (10, 0)
    assert sb.ledger.audit()["discrepancies"] == []


def test_ccs_dead_channel_and_approval_reminder_on_postgres(pg_url):
    s = open_system(db=pg_url, domain_db=pg_url, clock="virtual", bus=False)
    s.services.sns.fail("arn:aws:sns:us-east-1:123456789012:ccs-owner-alerts", 100)
    out = start_workflow(s.engine, "CCS_EMERGENCY", {
        "vehicleId": "VEH-9", "type": "panic_button", "severity": "critical", "location": {"lat": 1, "lon": 2},
        "eventTimestamp": 1698765432000, "metadata": {}})
    s.engine.run_until_idle()
    row = s.engine.store.get_execution(out["executionArn"])
    assert row["status"] == "SUCCEEDED" and json.loads(row["output"])["alerts"]["failedChannels"] == ["owner"]
    s.ccs.register_company("900123456")
    sale = start_workflow(s.engine, "CCS_SALES", {
        "customer_id": "C-1", "document_id": "900123456-8", "number_of_vehicles": 60, "contract_type": "standard",
        "estimated_value": 10, "payment_method": "credit_card"})
    from statelang.workflows.console import advance
    advance(s, 23 * 3600)
    assert [a["reminder"] for a in s.ccs.pending_approvals()] == [False, True]
    assert s.ccs.manager_decides(s.engine, "C-1", True, "MGR") == "ok"
    s.engine.run_until_idle()
    assert s.engine.store.get_execution(sale["executionArn"])["status"] == "SUCCEEDED"
    s.engine.close()


def test_marketplace_edges_on_postgres(pg_url):
    s = open_system(db=pg_url, domain_db=pg_url, clock="virtual")
    install_triggers(s)
    s.marketplace.add_service("service-456", "provider-456", 100)
    from statelang.eventbus import EventBus
    from statelang.eventbus.integration import run_until_idle
    from statelang.workflows.api import MARKETPLACE_BUS, publish_event
    detail = {"bookingId": "b-1", "serviceId": "service-456", "customerId": "c-1", "providerId": "provider-456",
              "startDateTime": "2024-01-15T10:00:00Z", "endDateTime": "2024-01-15T12:00:00Z", "amount": 100.0}
    assert publish_event(EventBus(s.engine, MARKETPLACE_BUS), "marketplace.booking", "Booking Created", detail)["success"]
    run_until_idle(s.engine)
    assert s.marketplace.booking("b-1")["status"]["S"] == "CONFIRMED"
    start_workflow(s.engine, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "b-1"})
    run_until_idle(s.engine)
    s.engine.clock.advance(1)
    out = start_workflow(s.engine, "DISPUTE_RESOLUTION", {"disputeType": "REFUND_REQUEST", "bookingId": "b-1",
                                                         "customerId": "c-1", "amount": 50.0})
    run_until_idle(s.engine)
    row = s.engine.store.get_execution(out["executionArn"])
    assert row["error"] == "ValidationFailed" and "already refunded" in row["cause"]
    assert out["executionName"].startswith("dispute-dsp-b-1-")
    out = start_workflow(s.engine, "PROVIDER_ONBOARDING", {"providerId": "p-2", "email": "p2@example.com",
                                                           "businessInfo": {"type": "individual", "firstName": "A",
                                                                            "lastName": "B"}})
    run_until_idle(s.engine)
    assert s.engine.store.get_execution(out["executionArn"])["status"] == "SUCCEEDED"
    s.engine.close()


def test_seed_handlers_rerun_with_their_keys_on_postgres(pg_server):
    from tests.test_seed_idempotency import hourbank_story, marketplace_and_ccs_story
    urls = [pg_server.url(pg_server.create_database()) for _ in range(4)]
    assert marketplace_and_ccs_story(True, urls[0], urls[0]) == marketplace_and_ccs_story(False, urls[1], urls[1])
    assert hourbank_story(True, urls[2], urls[2]) == hourbank_story(False, urls[3], urls[3])
