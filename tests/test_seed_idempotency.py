"""Every seed handler is idempotent under its own idempotency key (issue 15, item 5).

The engine invokes a handler at least once: a crash after the handler's effects but before the
engine recorded its result re-runs it with the same `ctx.idempotency_key`. Here every handler of
the three seed systems (and the DynamoDB and SNS integrations they use) is wrapped so that each
successful call is made a second time at once with the same payload and context, as that re-run
would; the second answer must equal the first, and each scenario must end exactly as it does
without the re-runs (same statuses, same balances, same messages, same rows). One real crash, with
the engine's own fault point after the handler, closes the file: the CCS emergency whose
conditional ``putItem`` used to fail on its own first write.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from statelang.handlers.ccs import FAILED, INCIDENTS
from statelang.handlers.hourbank import handlers_for
from statelang.handlers.hourbank.models import Notification, TransactionLog
from statelang.handlers.services.tables import ddb_items, pay_movements, sns_outbox, video_sessions
from statelang.workflows.api import open_system, start_workflow
from statelang.workflows.hourbank.sandbox import HourBankSandbox

ROOT = Path(__file__).resolve().parent.parent
RERUNS: list[str] = []


def _same(a, b) -> bool:
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k != "replayed"}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return clean(a) == clean(b)


def twice(name, fn):
    """`fn`, and after each success the same call again: what a crash's re-run does."""
    takes_ctx = len(inspect.signature(fn).parameters) >= 2

    def call(payload, ctx):
        payload = json.loads(json.dumps(payload))
        return fn(payload, ctx) if takes_ctx else fn(payload)

    def handler(payload, ctx):
        first = call(payload, ctx)
        again = call(payload, ctx)
        assert _same(first, again), (name, first, again)
        RERUNS.append(name)
        return again
    return handler


def rerunning(handlers: dict) -> dict:
    return {name: twice(name, fn) for name, fn in handlers.items()}


# -- CCS and the marketplace ------------------------------------------------------------------------

def seed_system(rerun: bool, db: str = "memory", domain_db: str = "sqlite://"):
    s = open_system(db, domain_db)
    if rerun:
        for part in (s.services, s.marketplace, s.ccs):
            s.engine.resources.update(rerunning(part.handlers()))
    s.marketplace.add_service("service-456", "provider-456", 100)
    s.ccs.register_company("900123456")
    return s


def run(s, wtype, data, name=None):
    s.engine.clock.advance(0.001)
    out = start_workflow(s.engine, wtype, data, name)
    assert out["success"], out
    s.engine.run_until_idle()
    return out["executionArn"]


def settle(s):
    e = s.engine
    while arns := e.store.claim(e.worker_id, e.clock.now(), e.lease_seconds, 64):
        for arn in arns:
            e.process(arn)


EMERGENCY = {"vehicleId": "VEH-1", "type": "panic_button", "severity": "critical", "location": {"lat": 1, "lon": 2},
             "eventTimestamp": 1698765432000, "metadata": {}}
SALE = {"customer_id": "CUST-1", "document_id": "900123456-8", "number_of_vehicles": 75, "contract_type": "premium",
        "estimated_value": 1000, "payment_method": "credit_card", "vehicles": [{"plate": "ABC-123"}]}
BOOKING = {"action": "CREATE", "bookingId": "b-1", "serviceId": "service-456", "customerId": "c-1",
           "providerId": "provider-456", "startDateTime": "2024-01-15T10:00:00Z",
           "endDateTime": "2024-01-15T12:00:00Z", "amount": 100.0}


def marketplace_and_ccs_story(rerun: bool, db: str = "memory", domain_db: str = "sqlite://") -> dict:
    s = seed_system(rerun, db, domain_db)
    arns = [run(s, "CCS_EMERGENCY", EMERGENCY)]
    s.services.sns.fail("arn:aws:sns:us-east-1:123456789012:ccs-owner-alerts", 100)
    arns.append(run(s, "CCS_EMERGENCY", dict(EMERGENCY, vehicleId="VEH-2")))   # a dead channel, escalated
    s.engine.clock.advance(0.001)
    sale = start_workflow(s.engine, "CCS_SALES", SALE)["executionArn"]
    settle(s)
    assert s.ccs.manager_decides(s.engine, "CUST-1", True, "MGR-1") == "ok"
    s.engine.run_until_idle()
    arns.append(sale)
    arns.append(run(s, "CCS_SALES", dict(SALE, customer_id="CUST-2", number_of_vehicles=10)))
    arns.append(run(s, "BOOKING_LIFECYCLE", BOOKING))
    acct = s.services.payments.create_account("p@example.com")["id"]
    arns.append(run(s, "PAYMENT_PROCESSING", {"paymentType": "PAYOUT", "providerId": "provider-456", "amount": 50.0,
                                              "connectedAccountId": acct}))
    later = dict(BOOKING, bookingId="b-2", startDateTime="2024-01-16T10:00:00Z", endDateTime="2024-01-16T12:00:00Z")
    arns.append(run(s, "BOOKING_LIFECYCLE", later))
    arns.append(run(s, "BOOKING_LIFECYCLE", {"action": "CANCEL", "bookingId": "b-2"}))
    arns.append(run(s, "PROVIDER_ONBOARDING", {"providerId": "p-9", "email": "p9@example.com",
                                               "businessInfo": {"type": "company", "businessName": "P9"}}))
    with s.services.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                  for t in (ddb_items, sns_outbox, pay_movements, video_sessions)}
    statuses = [s.engine.store.get_execution(a)["status"] for a in arns]
    return {"statuses": statuses, "rows": counts,
            "incidents": [s.ccs.item(INCIDENTS, "incident_id", f"INC-{v}-1698765432000")["status"]["S"]
                          for v in ("VEH-1", "VEH-2")]}


def test_marketplace_and_ccs_handlers_rerun_with_their_key_change_nothing():
    RERUNS.clear()
    plain = marketplace_and_ccs_story(rerun=False)
    assert RERUNS == []
    again = marketplace_and_ccs_story(rerun=True)
    assert again == plain
    assert plain["incidents"] == ["notified", "partially_notified"] and set(plain["statuses"]) == {"SUCCEEDED"}
    ran = set(RERUNS)
    assert {"arn:aws:states:::dynamodb:putItem", "arn:aws:states:::dynamodb:updateItem",
            "arn:aws:states:::sns:publish", "ccs-create-contract", "ccs-process-payment", "ccs-redeliver-alerts",
            "ccs-activate-video-recording", "ecosystem-create-payment-intent", "ecosystem-process-refund",
            "ecosystem-process-payout", "ecosystem-create-connected-account"} <= ran


# -- HourBank ---------------------------------------------------------------------------------------

def hourbank_story(rerun: bool, bank_db: str = "sqlite://", engine_db: str = "memory") -> dict:
    sb = HourBankSandbox(bank_db=bank_db, engine_db=engine_db)
    if rerun:
        sb.engine.resources.update(rerunning(handlers_for(sb.handlers)))
    for user, hours in (("alice", 20), ("bob", 2), ("carol", 5)):
        sb.add_member(user, hours, response_hours=4)
    sb.add_service("garden", "bob")
    sb.add_service("music", "carol")
    arns = []
    arn, rid = sb.request("alice", "bob", "garden", 3)                 # served and paid
    sb.serve(rid, "alice", "bob")
    arns.append(arn)
    arn, rid = sb.request("alice", "carol", "music", 2)                # counter-offer, dispute, escalation, policy
    sb.actions.provider_respond(rid, "carol", "COUNTER_OFFER", 3)
    sb.drain()
    sb.actions.negotiate(rid, "alice", "ACCEPT")
    sb.drain()
    sb.actions.raise_dispute(rid, "alice", "no-show")
    sb.drain()
    sb.advance(10 * 86400)
    arns.append(arn)
    arn, rid = sb.request("alice", "bob", "garden", 1)                 # cancelled from outside
    arns.append(sb.start("HourBankEscrowCancellation", {"escrowId": sb.row(rid).escrow_id}))
    arns.append(arn)
    arn, rid = sb.request("carol", "bob", "garden", 1)                 # disputed and split by an admin
    did = sb.actions.raise_dispute(rid, "carol", "late")
    sb.drain()
    sb.actions.admin_decide(did, "admin", "PARTIAL_REFUND", 0.5)
    sb.drain()
    arns.append(arn)
    for inp in ({"transactionType": "WELCOME_BONUS", "userId": "dave"},
                {"transactionType": "DIRECT_TRANSFER", "fromUserId": "alice", "toUserId": "dave", "hours": 1},
                {"transactionType": "ADMIN_ADJUSTMENT", "userId": "dave", "hours": -0.5},
                {"transactionType": "RECONCILIATION"}):
        arns.append(sb.start("HourBankTransactionProcessing", inp))
    sb.finish()
    with sb.db.session() as s:
        log_rows = s.scalar(select(func.count()).select_from(TransactionLog))
        notes = s.scalar(select(func.count()).select_from(Notification))
    audit = sb.ledger.audit()
    assert audit["discrepancies"] == []
    return {"statuses": [sb.status(a) for a in arns], "outputs": [_without_ids(sb.output(a)) for a in arns[-4:-1]],
            "balances": {u: (sb.available(u), sb.escrowed(u)) for u in ("alice", "bob", "carol", "dave")},
            "log rows": log_rows, "notifications": notes}


def _without_ids(value):
    """Random ids (transaction ids) differ between two separate runs, whatever the re-runs do."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "transactionId"}
    return value


def test_hourbank_handlers_rerun_with_their_key_change_nothing():
    RERUNS.clear()
    plain = hourbank_story(rerun=False)
    again = hourbank_story(rerun=True)
    assert again == plain
    ran = {name.removeprefix("hourbank-") for name in RERUNS}
    assert {"InitiateRequest", "ValidateRequest", "EscrowHours", "NotifyProvider", "ProcessNegotiation",
            "AcceptTerms", "ProcessPayment", "HandleDispute", "InitiateDispute", "FreezeRelatedTransactions",
            "NotifyAdmin", "EscalateDispute", "PolicyDecision", "ProcessDisputeResolution", "ValidateEscrow",
            "ProcessEscrowCancellation", "CloseCancelledRequest", "CompleteEscrow", "ProcessWelcomeBonus",
            "ProcessDirectTransfer", "ProcessAdminAdjustment", "ReconcileBalances", "CompleteWorkflow",
            "RecordServiceStart", "RecordServiceCompletion"} <= ran


# -- one real crash ---------------------------------------------------------------------------------

CRASHING_RUN = textwrap.dedent("""
    import json, sys
    from statelang.workflows.api import open_system, start_workflow
    from statelang.workflows.console import close_console, open_console, settle
    flows, domain, event = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    workflow = sys.argv[4] if len(sys.argv) > 4 else "CCS_EMERGENCY"
    s = open_console(flows, domain)
    if event:
        start_workflow(s.engine, workflow, event, "run-1")
    else:   # the dead worker's lease runs out on this process's virtual clock
        s.engine.clock.advance(2 * s.engine.lease_seconds)
    settle(s)
    close_console(s)
""")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def files(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flows.db'}", f"sqlite:///{tmp_path / 'domain.db'}"
    url = request.getfixturevalue("pg_url")
    return url, url


def test_ccs_emergency_survives_a_crash_after_recording_the_incident(files):
    """Issue 15 item 5: the process dies right after RecordIncident's write (the engine's fault
    point after the handler, before the result is committed); the resumed run re-runs the put
    with the same key and the emergency goes on: both alerts, the video, the incident notified."""
    flows, domain = files
    open_system(flows, domain, bus=False).engine.close()   # the tables, before two processes race to make them
    env = dict(os.environ, PYTHONPATH=str(ROOT), STATELANG_FAULT="after_handler:1")
    crashed = subprocess.run([sys.executable, "-c", CRASHING_RUN, flows, domain, json.dumps(EMERGENCY)],
                             env=env, capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 137, crashed.stderr
    s = open_system(flows, domain, bus=False)
    assert s.ccs.item(INCIDENTS, "incident_id", "INC-VEH-1-1698765432000")["status"]["S"] == "received"
    s.engine.close()
    env.pop("STATELANG_FAULT")
    resumed = subprocess.run([sys.executable, "-c", CRASHING_RUN, flows, domain, "null"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    s = open_system(flows, domain, bus=False)
    (row,) = s.engine.store.list_executions()
    out = json.loads(row["output"])
    assert row["status"] == "SUCCEEDED" and out.get("status") != "duplicate", out
    assert s.ccs.item(INCIDENTS, "incident_id", "INC-VEH-1-1698765432000")["status"]["S"] == "notified"
    assert len(s.services.sns.outbox(topic_suffix=":ccs-authorities-alerts")) == 1
    assert len(s.services.sns.outbox(topic_suffix=":ccs-owner-alerts")) == 1
    assert len(s.services.video.sessions("VEH-1")) == 1 and s.ccs.item(FAILED, "incident_id", "INC-VEH-1-1698765432000") is None
    s.engine.close()


@pytest.mark.parametrize("table_op", ["putItem", "updateItem", "deleteItem"])
def test_dynamodb_writes_through_the_integration_replay_their_first_answer(table_op):
    s = open_system(bus=False)
    ddb = s.services.dynamodb
    ddb.create_table("t", "id")
    handler = ddb.handlers()["arn:aws:states:::dynamodb:" + table_op]

    class Ctx:
        idempotency_key = "exec/1/State#3"
    params = {"putItem": {"TableName": "t", "Item": {"id": {"S": "a"}, "n": {"N": "1"}},
                          "ConditionExpression": "attribute_not_exists(id)"},
              "updateItem": {"TableName": "t", "Key": {"id": {"S": "a"}}, "UpdateExpression": "ADD n :one",
                             "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "ALL_NEW"},
              "deleteItem": {"TableName": "t", "Key": {"id": {"S": "a"}}, "ConditionExpression": "attribute_exists(id)",
                             "ReturnValues": "ALL_OLD"}}[table_op]
    if table_op != "putItem":
        ddb.put_item({"TableName": "t", "Item": {"id": {"S": "a"}, "n": {"N": "1"}}})
    first = handler(params, Ctx())
    assert handler(params, Ctx()) == first
    item = ddb.get_item({"TableName": "t", "Key": {"id": {"S": "a"}}}).get("Item")
    assert item == {"putItem": {"id": {"S": "a"}, "n": {"N": "1"}}, "updateItem": {"id": {"S": "a"}, "n": {"N": "2"}},
                    "deleteItem": None}[table_op]

    class Other:
        idempotency_key = "exec/1/State#4"   # another task entry is another write, as in DynamoDB
    if table_op == "putItem":
        with pytest.raises(Exception, match="conditional request failed"):
            handler(params, Other())


# Every seed workflow, crashed after its first (and second) pass of handler calls (the engine's
# ``after_handler`` fault point: the handlers' effects are made, their results not yet committed),
# then resumed by a fresh process: it ends as a run without the crash does, with every effect
# exactly once (one escrow, one contract, one charge, one account, one alert per channel, ...).
SALE_SMALL = dict(SALE, customer_id="CUST-9", number_of_vehicles=10)
CRASH_CASES = {
    "CCS_EMERGENCY": (EMERGENCY, "SUCCEEDED"),
    "CCS_SALES": (SALE_SMALL, "SUCCEEDED"),
    "BOOKING_LIFECYCLE": (dict(BOOKING, serviceId="service-456"), "SUCCEEDED"),
    "PROVIDER_ONBOARDING": ({"providerId": "p-9", "email": "p9@example.com",
                             "businessInfo": {"type": "individual", "firstName": "A", "lastName": "B"}}, "SUCCEEDED"),
    "HourBankServiceRequest": ({"serviceId": "garden", "requesterId": "alice", "providerId": "bob",
                                "estimatedHours": 3}, "RUNNING"),
    "HourBankTransactionProcessing": ({"transactionType": "DIRECT_TRANSFER", "fromUserId": "alice",
                                       "toUserId": "carol", "hours": 2}, "SUCCEEDED"),
}


def effects(s, workflow: str) -> dict:
    from statelang.handlers.ccs import CONTRACTS
    from statelang.handlers.hourbank.models import Escrow
    from statelang.handlers.services.tables import pay_accounts, pay_intents
    with s.services.engine.connect() as conn:
        intents = conn.execute(select(func.count()).select_from(pay_intents)).scalar()
        accounts = conn.execute(select(func.count()).select_from(pay_accounts)).scalar()
    with s.hourbank.db.session() as db:
        escrows = db.scalar(select(func.count()).select_from(Escrow))
    audit = s.hourbank.ledger.audit()["discrepancies"]
    out = {"intents": intents, "accounts": accounts, "escrows": escrows, "audit": audit,
           "alerts": len(s.services.sns.outbox()), "videos": len(s.services.video.sessions()),
           "contracts": s.services.dynamodb.scan({"TableName": CONTRACTS})["Count"]}
    if workflow.startswith("HourBank"):
        out["balances"] = {u: (s.hourbank.ledger.balance(u)["available_balance"],
                               s.hourbank.ledger.balance(u)["escrowed_balance"]) for u in ("alice", "carol")}
    return out


def crash_cases() -> list:
    """Each workflow crashed at its first handler pass, and (marked slow) its second where it has one."""
    cases = []
    for workflow in CRASH_CASES:
        cases.append(pytest.param(workflow, 1, id=f"{workflow}-1"))
        if workflow != "HourBankTransactionProcessing":   # one handler pass only
            cases.append(pytest.param(workflow, 2, id=f"{workflow}-2", marks=pytest.mark.slow))
    return cases


@pytest.mark.parametrize("workflow, nth", crash_cases())
def test_every_seed_workflow_survives_a_crash_after_a_handler(tmp_path, workflow, nth):
    from statelang.workflows.console import close_console, load_seed_data, open_console, settle
    event, final = CRASH_CASES[workflow]
    runs = {}
    for label, fault in (("clean", None), ("crashed", f"after_handler:{nth}")):
        flows, domain = f"sqlite:///{tmp_path / label}-flows.db", f"sqlite:///{tmp_path / label}-domain.db"
        s = open_console(flows, domain)
        load_seed_data(s)
        close_console(s)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if fault:
            env["STATELANG_FAULT"] = fault
        first = subprocess.run([sys.executable, "-c", CRASHING_RUN, flows, domain, json.dumps(event), workflow],
                               env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == (137 if fault else 0), first.stderr
        env.pop("STATELANG_FAULT", None)
        again = subprocess.run([sys.executable, "-c", CRASHING_RUN, flows, domain, "null", workflow],
                               env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        s = open_console(flows, domain)
        settle(s)
        (row,) = s.engine.store.list_executions(status=None) if workflow != "BOOKING_LIFECYCLE" else [
            r for r in s.engine.store.list_executions() if ":ecosystem-booking-lifecycle:" in r["executionArn"]]
        runs[label] = (row["status"], effects(s, workflow))
        close_console(s)
    assert runs["clean"][0] == final
    assert runs["crashed"] == runs["clean"]
