"""`statelang demo`: every seed system's story, end to end, offline, on the virtual clock.

Each story drives the real workflows with the real handlers and services against real tables:
a booking starts from a "Booking Created" event on the marketplace bus and pays through the
nested payment workflow; a dispute waits out its 24-hour review and an admin answers its task
token; a provider is onboarded; an HourBank member's hours go through escrow to the provider;
a CCS panic button alerts everyone at once; an accident with the authorities' channel down still
alerts the owner and the cameras, and escalates the dead channel; a large fleet sale waits for a
manager; an HourBank dispute nobody answers for a week is escalated and still settled by an admin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from statelang.history.timeline import render_timeline

DAY = 86400


def _story(title: str, summary: str, ok: bool, engine, arns: list[str]) -> dict:
    executions = []
    for arn in arns:
        row = engine.store.get_execution(arn)
        executions.append({"name": arn.split(":execution:")[-1], "executionArn": arn, "status": row["status"],
                           "output": json.loads(row["output"]) if row.get("output") else None,
                           "timeline": render_timeline(engine.store.history(arn))})
    return {"title": title, "summary": summary, "ok": ok, "executions": executions}


def _settle(engine) -> None:
    """Run what is runnable now without moving the virtual clock (people have not answered yet)."""
    engine.run_until_idle(until=engine.clock.now())


def _db_paths(db: str | None) -> tuple[str, str, str]:
    if db and not db.startswith("sqlite:///"):
        return db, "sqlite:///.statelang/demo-domain.db", "sqlite:///.statelang/demo-hourbank.db"
    base = Path((db or "sqlite:///.statelang/demo.db")[len("sqlite:///"):])
    base.parent.mkdir(parents=True, exist_ok=True)
    for p in base.parent.glob(base.stem + "*.db*"):
        p.unlink()   # a demo starts from empty tables each time
    flows = f"sqlite:///{base}"
    return flows, f"sqlite:///{base.with_name(base.stem + '-domain.db')}", \
        f"sqlite:///{base.with_name(base.stem + '-hourbank.db')}"


def marketplace_and_ccs(flows: str, domain: str) -> list[dict]:
    from statelang.workflows.api import MARKETPLACE_BUS, open_system, publish_event, start_workflow
    from statelang.workflows.triggers import install_triggers
    s = open_system(db=flows, domain_db=domain, clock="virtual")
    install_triggers(s)
    engine = s.engine
    s.marketplace.add_service("service-456", "provider-456", 100)
    stories = []

    # 1. A "Booking Created" event starts the booking workflow, which pays through a nested execution.
    detail = {"action": "CREATE", "bookingId": "booking-123", "serviceId": "service-456",
              "customerId": "customer-789", "providerId": "provider-456",
              "startDateTime": "2024-01-15T10:00:00Z", "endDateTime": "2024-01-15T12:00:00Z", "amount": 100.00}
    from statelang.eventbus import EventBus
    sent = publish_event(EventBus(engine, MARKETPLACE_BUS), "marketplace.booking", "Booking Created", detail)
    _drain(s)
    booking = [r["executionArn"] for r in engine.store.list_executions()
               if ":ecosystem-booking-lifecycle:booking-booking-123-" in r["executionArn"]]
    payment = [r["executionArn"] for r in engine.store.list_executions()
               if ":ecosystem-payment-processing:" in r["executionArn"]]
    ok = sent["success"] and len(booking) == 1 and engine.store.get_execution(booking[0])["status"] == "SUCCEEDED"
    stories.append(_story("Marketplace: a booking from its event to its confirmation",
                          "The bus's auto-trigger rule names the execution booking-{bookingId}-{timestamp}; "
                          "the payment runs as a nested .sync:2 execution.", ok, engine, booking + payment[:1]))

    # 2. A dispute waits out its 24-hour review, is escalated, and an admin decides by task token.
    engine.clock.advance(1)
    out = start_workflow(engine, "DISPUTE_RESOLUTION", {
        "disputeType": "SERVICE_COMPLAINT", "bookingId": "booking-123", "customerId": "customer-789",
        "amount": 100.0, "description": "Service not provided as described"})
    _settle(engine)
    engine.clock.advance(DAY)
    _settle(engine)
    answered = s.marketplace.admin_decides(engine, "dsp-booking-123", "REFUND", 40.0, "admin-1")
    _drain(s)
    row = engine.store.get_execution(out["executionArn"])
    stories.append(_story("Marketplace: a dispute, a day of review, an admin's decision",
                          "The Wait of 24 hours passes on the virtual clock; the admin answers the "
                          "waiting task token.", out["success"] and answered == "ok" and row["status"] == "SUCCEEDED",
                          engine, [out["executionArn"]]))

    # 3. A new provider is onboarded: payment-provider account, profile, welcome.
    engine.clock.advance(1)
    out = start_workflow(engine, "PROVIDER_ONBOARDING", {
        "providerId": "provider-new-123", "email": "provider@example.com",
        "businessInfo": {"type": "individual", "firstName": "John", "lastName": "Doe",
                         "businessName": "John's Services"}})
    _drain(s)
    row = engine.store.get_execution(out["executionArn"])
    stories.append(_story("Marketplace: a provider is onboarded", "Account, profile update, welcome notification.",
                          row["status"] == "SUCCEEDED", engine, [out["executionArn"]]))

    # 4. CCS: a panic button alerts the authorities, the owner and the cameras at once.
    engine.clock.advance(1)
    out = start_workflow(engine, "CCS_EMERGENCY", {
        "vehicleId": "VEH-12345", "type": "panic_button", "severity": "critical",
        "location": {"lat": 4.6097, "lon": -74.0817}, "eventTimestamp": 1698765432000,
        "metadata": {"driver_id": "DRV-789"}})
    _drain(s)
    row = engine.store.get_execution(out["executionArn"])
    stories.append(_story("CCS: a panic button", "Incident recorded; authorities, owner and video recording in "
                          "parallel; incident updated.", row["status"] == "SUCCEEDED", engine, [out["executionArn"]]))

    # 5. CCS: an accident while the authorities' alert channel is down.
    engine.clock.advance(1)
    dead = "arn:aws:sns:us-east-1:123456789012:ccs-authorities-alerts"
    s.services.sns.fail(dead, 100)
    out = start_workflow(engine, "CCS_EMERGENCY", {
        "vehicleId": "VEH-777", "type": "accident", "severity": "high",
        "location": {"lat": 4.65, "lon": -74.05}, "eventTimestamp": 1698765499000, "metadata": {}})
    _drain(s)
    row = engine.store.get_execution(out["executionArn"])
    alerts = (json.loads(row["output"]) if row.get("output") else {}).get("alerts") or {}
    stories.append(_story("CCS: an emergency with a dead alert channel",
                          "The authorities' topic fails every try: the owner's alert and the video go out "
                          "anyway, the channel is tried again after 30 s, then escalated for review; the "
                          f"incident is {alerts.get('status')} with failed channels {alerts.get('failedChannels')}.",
                          row["status"] == "SUCCEEDED" and alerts.get("failedChannels") == ["authorities"],
                          engine, [out["executionArn"]]))
    s.services.sns.fail(dead, 0)

    # 6. CCS: a 75-vehicle sale waits for a manager's approval.
    engine.clock.advance(1)
    out = start_workflow(engine, "CCS_SALES", {
        "execution_id": "exec-12345", "customer_id": "CUST-98765", "document_type": "RUT",
        "document_id": "900123456-8", "company_info": {"name": "Transportes ABC S.A.S.", "tax_id": "900123456-8"},
        "number_of_vehicles": 75, "contract_type": "premium", "estimated_value": 15000000,
        "payment_method": "credit_card", "vehicles": [{"plate": "ABC-123", "model": "Freightliner"}]})
    _settle(engine)
    engine.clock.advance(3 * 3600)
    _settle(engine)
    answered = s.ccs.manager_decides(engine, "CUST-98765", True, "MGR-1")
    _drain(s)
    row = engine.store.get_execution(out["executionArn"])
    stories.append(_story("CCS: a large fleet sale approved by a manager",
                          "Over 50 vehicles: the workflow waits on a task token until the manager answers.",
                          answered == "ok" and row["status"] == "SUCCEEDED", engine, [out["executionArn"]]))
    engine.close()
    return stories


def _drain(s) -> None:
    from statelang.eventbus.integration import run_until_idle
    run_until_idle(s.engine)


def hourbank(flows: str, bank: str) -> list[dict]:
    from statelang.workflows.hourbank.sandbox import HourBankSandbox
    sb = HourBankSandbox(bank_db=bank, engine_db=flows.replace(".db", "-hb-flows.db"))
    sb.add_member("alice", 10)
    sb.add_member("bob", 2, response_hours=4)
    sb.add_service("garden", "bob")
    arn, rid = sb.request("alice", "bob", "garden", 3)
    sb.advance(3600)
    sb.serve(rid, "alice", "bob", hours_working=2)
    balances = (sb.available("alice"), sb.escrowed("alice"), sb.available("bob"))
    audit = sb.ledger.audit()
    ok = sb.status(arn) == "SUCCEEDED" and balances == (7, 0, 5) and audit["discrepancies"] == []
    story = _story("HourBank: three hours of gardening, from request to payment",
                   f"Escrow held, provider accepted, both confirmed start and completion, hours paid; "
                   f"alice {balances[0]:g} h, bob {balances[2]:g} h; ledger audit clean: "
                   f"{audit['discrepancies'] == []}.", ok, sb.engine, [arn])

    # An escalated dispute: a week of admin silence, then an admin settles it during the escalation.
    sb.add_member("carol", 4)
    sb.add_service("lessons", "carol")
    arn2, rid2 = sb.request("alice", "carol", "lessons", 2)
    sb.actions.provider_respond(rid2, "carol", "ACCEPT")
    sb.drain()
    did = sb.actions.raise_dispute(rid2, "alice", "The lesson never happened")
    sb.drain()
    sb.advance(7 * DAY)
    escalated = sb.row(rid2).status == "DISPUTED"
    sb.advance(DAY)
    sb.actions.admin_decide(did, "admin-2", "PARTIAL_REFUND", 1.5)
    sb.drain()
    after = (sb.available("alice"), sb.available("carol"))
    audit = sb.ledger.audit()
    ok2 = escalated and sb.status(arn2) == "SUCCEEDED" and after == (6.5, 4.5) and audit["discrepancies"] == []
    dispute = _story("HourBank: an escalated dispute, settled",
                     f"No admin answered for 7 days: the dispute was escalated and stayed decidable (a policy "
                     f"would refund the requester 3 days later); on day 8 an admin refunded 1.5 of the 2 h; "
                     f"alice {after[0]:g} h, carol {after[1]:g} h; ledger audit clean: "
                     f"{audit['discrepancies'] == []}.", ok2, sb.engine, [arn2, sb.output_of_nested(arn2)])
    sb.engine.close()
    return [story, dispute]


def run_demo(db: str | None = None) -> list[dict[str, Any]]:
    flows, domain, bank = _db_paths(db)
    return marketplace_and_ccs(flows, domain) + hourbank(flows, bank)
