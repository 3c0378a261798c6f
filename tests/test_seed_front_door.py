"""The seeds' front doors (issue 14 items 3, 13 and 14): HourBank's bus, rule, schedule and
registry rows; sample data for a fresh domain database; and a person driving each seed workflow
step by step from the command line on a virtual clock kept between commands, on SQLite files and
on PostgreSQL."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import timedelta

import pytest
from click.testing import CliRunner

from statelang.cli import main
from statelang.eventbus import EventBus
from statelang.workflows import registry
from statelang.workflows.api import get_workflow_status, open_system, start_workflow
from statelang.workflows.console import add_hourbank_member, add_hourbank_service, settle
from statelang.workflows.settings import settings
from statelang.workflows.triggers import install_triggers

DAY = 86400


@pytest.mark.parametrize("row", registry.all_workflows(), ids=lambda r: r["name"])
def test_every_machine_carries_its_registry_timeout_in_the_asl(row):
    """Seed 002's registry: 90 d, 14 d, 1 d and 1 h, in the definitions themselves."""
    assert registry.load(row["name"]).get("TimeoutSeconds") == row["timeout_seconds"]


def test_hourbank_timeouts_are_the_seeds():
    hb = {r["name"]: r["timeout_seconds"] for r in registry.all_workflows() if r.get("system") == "hourbank"}
    assert hb == {"HourBankServiceRequest": 90 * DAY, "HourBankDisputeResolution": 14 * DAY,
                  "HourBankEscrowRelease": DAY, "HourBankEscrowCancellation": DAY,
                  "HourBankTransactionProcessing": DAY, "HourBankReconciliation": 3600}


@pytest.fixture
def system():
    s = open_system()
    install_triggers(s)
    for user, hours in (("alice", 10), ("bob", 2)):
        add_hourbank_member(s, user, hours, 4)
    add_hourbank_service(s, "garden", "bob")
    yield s
    s.engine.close()


def test_service_request_events_rule_starts_a_request_and_carries_the_providers_answer(system):
    """Seed 002's ServiceRequestEvents rule on hourbank-event-bus, both detail types."""
    bus = EventBus(system.engine, "hourbank-event-bus")
    rule = bus.describe_rule("ServiceRequestEvents")
    assert json.loads(rule["EventPattern"]) == {"source": ["hourbank.service-requests"], "detail-type": [
        "Service Request Submitted", "Provider Response Received"]}
    submitted = {"serviceId": "garden", "requesterId": "alice", "providerId": "bob", "estimatedHours": 3}
    out = bus.put_events([{"Source": "hourbank.service-requests", "DetailType": "Service Request Submitted",
                           "Detail": json.dumps(submitted), "EventBusName": "hourbank-event-bus"}])
    assert out["FailedEntryCount"] == 0
    settle(system)
    (row,) = system.engine.store.list_executions(status="RUNNING")
    name = row["executionArn"].rsplit(":", 1)[-1]
    assert name.startswith("alice-garden-")
    rid = "req-" + name
    answer = {"requestId": rid, "providerId": "bob", "action": "ACCEPT"}
    bus.put_events([{"Source": "hourbank.service-requests", "DetailType": "Provider Response Received",
                     "Detail": json.dumps(answer), "EventBusName": "hourbank-event-bus"}])
    settle(system)
    with system.hourbank.db.session() as s:
        from statelang.handlers.hourbank.models import ServiceRequest
        req = s.get(ServiceRequest, rid)
        assert (req.status, req.awaiting) == ("ACCEPTED", "SERVICE_START")
    assert len(system.engine.store.list_executions()) == 1   # the answer started nothing


def test_reconciliation_runs_once_a_day_on_schedule(system):
    from statelang.eventbus.integration import run_until_idle
    start = system.engine.clock.now()
    run_until_idle(system.engine, until=start + timedelta(days=3, minutes=1))
    runs = [r for r in system.engine.store.list_executions() if ":HourBankReconciliation:" in r["executionArn"]]
    assert [r["status"] for r in runs] == ["SUCCEEDED"] * 3
    assert sorted((r["startDate"] - start).total_seconds() // 3600 for r in runs) == [24, 48, 72]


def test_graphql_starts_an_hourbank_request_and_reports_its_status():
    from statelang.server import Server
    s = open_system("memory", "sqlite://", clock="real")
    add_hourbank_member(s, "alice", 10)
    add_hourbank_member(s, "bob", 0, 4)
    add_hourbank_service(s, "garden", "bob")
    server = Server(s.engine, "127.0.0.1", 0, poll_seconds=0.05).start()
    try:
        def gql(query):
            req = urllib.request.Request(server.url + "/graphql", data=json.dumps({"query": query}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())["data"]
        started = gql('mutation { startWorkflow(workflowType: "HOURBANK_SERVICE_REQUEST", input: {serviceId: "garden",'
                      ' requesterId: "alice", providerId: "bob", estimatedHours: 2}) { success executionArn } }')
        arn = started["startWorkflow"]["executionArn"]
        assert started["startWorkflow"]["success"] and ":HourBankServiceRequest:alice-garden-" in arn
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and s.hourbank.ledger.balance("alice")["escrowed_balance"] != 200:
            time.sleep(0.05)   # the server's own worker runs it on the real clock
        status = gql(f'query {{ getWorkflowStatus(executionArn: "{arn}") {{ success status }} }}')
        assert status["getWorkflowStatus"] == {"success": True, "status": "RUNNING"}
        assert s.hourbank.ledger.balance("alice")["escrowed_balance"] == 200
    finally:
        server.stop()


# -- the command line ---------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dbs(request, tmp_path):
    if request.param == "sqlite":
        return ["--db", f"sqlite:///{tmp_path}/flows.db", "--domain-db", f"sqlite:///{tmp_path}/domain.db"]
    url = request.getfixturevalue("pg_url")
    return ["--db", url, "--domain-db", url]


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def ok(*args):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


def waiting(dbs):
    return json.loads(ok("workflows", "waiting", "--json", *dbs))


def test_a_fresh_database_gets_sample_data_and_a_booking_goes_through(dbs):
    """Item 13: without services every booking was ValidationFailed."""
    counts = json.loads(ok("workflows", "seed", *dbs))
    assert counts["marketplaceServices"] >= 1 and counts["hourbankMembers"] >= 2
    booking = {"action": "CREATE", "bookingId": "b-1", "serviceId": "service-456", "customerId": "c-1",
               "startDateTime": "2024-01-15T10:00:00Z", "endDateTime": "2024-01-15T12:00:00Z", "amount": 100}
    out = json.loads(ok("workflows", "run", "BOOKING_LIFECYCLE", "--input", json.dumps(booking), *dbs))
    assert out["status"] == "SUCCEEDED", out
    ok("workflows", "add-service", "marketplace", "service-new", "--provider", "p-new", "--price", 20, *dbs)
    ok("workflows", "add-member", "dave", "--hours", 3, *dbs)
    ok("workflows", "add-service", "hourbank", "bikes", "--provider", "dave", *dbs)
    ok("workflows", "add-provider", "p-new", "--email", "p@example.com", *dbs)
    request = {"serviceId": "bikes", "requesterId": "alice", "providerId": "dave", "estimatedHours": 1}
    out = json.loads(ok("workflows", "run", "HourBankServiceRequest", "--input", json.dumps(request), *dbs))
    assert out["status"] == "RUNNING" and out["waitingFor"][0]["state"] == "NotifyProvider"


def test_a_person_drives_an_hourbank_request_step_by_step(dbs):
    """Item 14: start, see the wait, answer it, advance the clock by a chosen amount."""
    ok("workflows", "seed", *dbs)
    request = {"serviceId": "garden", "requesterId": "alice", "providerId": "bob", "estimatedHours": 3}
    out = json.loads(ok("workflows", "run", "HourBankServiceRequest", "--input", json.dumps(request), *dbs))
    arn = out["executionArn"]
    assert out["status"] == "RUNNING"        # it waits for bob, it does not time out at once
    (wait,) = waiting(dbs)["waiting"]
    assert wait["state"] == "NotifyProvider" and wait["asks"]["timeoutSeconds"] == 4 * 3600
    ok("workflows", "answer", wait["taskToken"], "--output", json.dumps({"action": "ACCEPT", "by": "bob"}), *dbs)
    (wait,) = waiting(dbs)["waiting"]
    assert wait["state"] == "AwaitProviderStart"
    before = waiting(dbs)["now"]
    assert "virtual time" in ok("workflows", "advance", "6d", *dbs)
    after = waiting(dbs)
    assert after["waiting"][0]["state"] == "AwaitProviderStart"      # 6 of its 7 days
    assert after["now"] > before
    ok("workflows", "advance", "1d", *dbs)                            # the 7th: expired, refunded
    assert waiting(dbs)["waiting"] == []
    status = json.loads(ok("executions", "describe", arn, "--json", "--db", dbs[1]))
    assert status["status"] == "SUCCEEDED"
    again = cli("workflows", "answer", wait["taskToken"], "--output", "{}", *dbs)
    assert again.exit_code == 2 and "closed" in again.output


def test_a_person_drives_a_ccs_sale_and_a_marketplace_dispute(dbs):
    ok("workflows", "seed", *dbs)
    sale = {"customer_id": "CUST-1", "document_id": "900123456-8", "number_of_vehicles": 75,
            "contract_type": "premium", "estimated_value": 1000, "payment_method": "credit_card"}
    sale_arn = json.loads(ok("workflows", "run", "CCS_SALES", "--input", json.dumps(sale), *dbs))["executionArn"]
    ok("workflows", "advance", "13h", *dbs)
    (wait,) = waiting(dbs)["waiting"]
    assert wait["state"] == "RemindManager" and wait["asks"]["reminder"] is True
    ok("workflows", "answer", wait["taskToken"], "--output",
       json.dumps({"approved": True, "approval_type": "manual", "approved_by": "MGR-1"}), *dbs)
    assert json.loads(ok("executions", "describe", sale_arn, "--json", "--db", dbs[1]))["status"] == "SUCCEEDED"
    booking = {"action": "CREATE", "bookingId": "b-7", "serviceId": "service-456", "customerId": "c-7",
               "startDateTime": "2024-02-01T10:00:00Z", "endDateTime": "2024-02-01T11:00:00Z", "amount": 500}
    ok("workflows", "run", "BOOKING_LIFECYCLE", "--input", json.dumps(booking), *dbs)
    dispute = {"disputeType": "REFUND_REQUEST", "bookingId": "b-7", "customerId": "c-7", "amount": 400,
               "description": "no-show"}
    arn = json.loads(ok("workflows", "run", "DISPUTE_RESOLUTION", "--input", json.dumps(dispute), *dbs))["executionArn"]
    assert waiting(dbs)["waiting"] == []          # the 24-hour review is a Wait, not a person
    ok("workflows", "advance", "1d", *dbs)
    (wait,) = waiting(dbs)["waiting"]             # escalated: now an admin is asked
    ok("workflows", "answer", wait["taskToken"], "--output",
       json.dumps({"resolution": "REFUND", "refundAmount": 100, "decidedBy": "admin-1", "reason": "partial"}), *dbs)
    assert json.loads(ok("executions", "describe", arn, "--json", "--db", dbs[1]))["status"] == "SUCCEEDED"


@pytest.mark.parametrize("command, args, message", [
    ("advance", ("soon",), "not a number of seconds"),
    ("advance", ("--", "-5m"), "negative"),
    ("advance", ("nan",), "not a finite number of seconds"),    # failed inside a timedelta
    ("advance", ("inf",), "not a finite number of seconds"),
    ("advance", ("99999999d",), "would move the clock past the year 9999"),   # was an OverflowError traceback
    ("answer", ("--output", "{}", "no-such-token"), "unknown"),
    ("answer", ("--output", "{oops", "t"), "output is not valid JSON"),
])
def test_console_errors_are_named(tmp_path, command, args, message):
    result = cli("workflows", command, "--db", f"sqlite:///{tmp_path}/f.db", "--domain-db",
                 f"sqlite:///{tmp_path}/d.db", *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_status_of_an_unknown_execution_is_success_false():
    s = open_system(bus=False)
    assert get_workflow_status(s.engine, "arn:aws:states:us-east-1:123456789012:execution:X:y")["success"] is False


# -- names and settings (items 7 and 11) ------------------------------------------------------------

def test_ccs_machines_are_named_as_seed_003_names_them():
    s = open_system(bus=False)
    out = start_workflow(s.engine, "CCS_EMERGENCY", {"vehicleId": "V", "type": "x", "severity": "low",
                                                     "location": {}, "eventTimestamp": 1})
    assert ":stateMachine:" not in out["executionArn"] and ":execution:ccs-prod-emergency-workflow:" in out["executionArn"]
    assert registry.find("CCS_SALES")["state_machine"] == "ccs-prod-business-workflow"


def test_no_definition_hard_codes_the_arn_of_a_machine_it_starts():
    for row in registry.all_workflows():
        text = (registry.HERE / row["definition"]).read_text()
        assert ":stateMachine:" not in text, row["name"]


def test_state_machine_arn_settings_choose_the_machines_a_workflow_starts(monkeypatch):
    """Seed 000's PAYMENT_STATE_MACHINE_ARN: the booking's nested payment goes where it points."""
    elsewhere = "arn:aws:states:us-east-1:123456789012:stateMachine:payments-v2"
    assert settings(environ={})["PAYMENT_STATE_MACHINE_ARN"].endswith(":stateMachine:ecosystem-payment-processing")
    assert settings(environ={"PAYMENT_STATE_MACHINE_ARN": elsewhere})["PAYMENT_STATE_MACHINE_ARN"] == elsewhere
    monkeypatch.setenv("PAYMENT_STATE_MACHINE_ARN", elsewhere)
    s = open_system(bus=False)
    s.marketplace.add_service("service-456", "provider-456", 100)
    out = start_workflow(s.engine, "BOOKING_LIFECYCLE", {
        "action": "CREATE", "bookingId": "b-1", "serviceId": "service-456", "customerId": "c-1",
        "startDateTime": "2024-01-15T10:00:00Z", "endDateTime": "2024-01-15T12:00:00Z", "amount": 100.0})
    s.engine.run_until_idle()
    history = s.engine.store.history(out["executionArn"])
    submitted = [e for e in history if e["type"] in ("TaskSubmitted", "TaskStartFailed", "TaskFailed")
                 and "startExecution" in e.get(next(k for k in e if k.endswith("EventDetails")), {}).get("resource", "")]
    assert submitted and "payments-v2" in json.dumps(submitted, default=str)
    assert s.engine.store.get_execution(out["executionArn"])["error"] == "PaymentFailed"
