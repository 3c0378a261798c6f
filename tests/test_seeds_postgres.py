"""The seed systems on PostgreSQL: executions, history and the services' own tables in one real
PostgreSQL database (the other seed tests use memory and SQLite files)."""

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
    from statelang.handlers.hourbank.sandbox import HourBankSandbox
    sb = HourBankSandbox(bank_db=pg_url, engine_db=pg_url)
    sb.add_member("alice", 10)
    sb.add_member("bob", 2, response_hours=4)
    sb.add_service("garden", "bob")
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.serve(rid, "alice", "bob")
    assert sb.status(arn) == "SUCCEEDED"
    assert (sb.available("alice"), sb.escrowed("alice"), sb.available("bob")) == (7, 0, 5)
    assert sb.ledger.audit()["discrepancies"] == []
