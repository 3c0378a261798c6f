"""The seeds' GraphQL operations over HTTP, written as the seeds write them (object literals for
``input`` and ``detail``) and as AppSync clients send them (JSON text in variables)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from statelang.server import Server
from statelang.workflows import api


@pytest.fixture(scope="module")
def srv():
    system = api.open_system("memory", "sqlite://", clock="real")
    from statelang.workflows.triggers import install_triggers
    install_triggers(system)   # what `statelang serve --workflows` does: events start workflows
    server = Server(system.engine, "127.0.0.1", 0, poll_seconds=0.1).start()
    yield server
    server.stop()


def gql(srv, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    req = urllib.request.Request(srv.url + "/graphql", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, **json.loads(exc.read())}


START = """
mutation StartBookingWorkflow {
  startWorkflow(
    workflowType: "BOOKING_LIFECYCLE"
    input: {
      action: "CREATE"
      bookingId: "booking-123"
      serviceId: "service-456"
      customerId: "customer-789"
      startDateTime: "2024-01-15T10:00:00Z"
      endDateTime: "2024-01-15T12:00:00Z"
      amount: 100.00
    }
    executionName: "booking-creation-123"
  ) {
    success
    executionArn
    status
  }
}
"""


def test_seed_start_status_and_stop(srv):
    started = gql(srv, START)
    assert "errors" not in started, started
    out = started["data"]["startWorkflow"]
    assert out["success"] is True and out["status"] == "RUNNING"
    assert out["executionArn"].endswith(":execution:ecosystem-booking-lifecycle:booking-creation-123")
    status = gql(srv, """query GetWorkflowStatus($arn: String!) {
        getWorkflowStatus(executionArn: $arn, workflowType: "BOOKING_LIFECYCLE") { success status output } }""",
                 {"arn": out["executionArn"]})["data"]["getWorkflowStatus"]
    assert status["success"] is True and status["status"] in ("RUNNING", "SUCCEEDED", "FAILED")
    again = gql(srv, START)["data"]["startWorkflow"]    # same name, same input: AWS's idempotent start
    assert again["executionArn"] == out["executionArn"] or again["success"] is False
    stopped = gql(srv, """mutation StopWorkflow($arn: String!) {
        stopWorkflow(executionArn: $arn, workflowType: "BOOKING_LIFECYCLE") { success status } }""",
                  {"arn": out["executionArn"]})["data"]["stopWorkflow"]
    assert stopped["success"] is True and stopped["status"] in ("ABORTED", "SUCCEEDED", "FAILED")


def test_input_as_json_text_in_variables(srv):
    query = """mutation Start($input: AWSJSON!) { startWorkflow(workflowType: "PAYMENT_PROCESSING", input: $input)
               { success executionArn status } }"""
    out = gql(srv, query, {"input": json.dumps({"paymentType": "DIRECT", "paymentIntentId": "pi_1", "amount": 5,
                                                "customerId": "c", "providerId": "p", "bookingId": "b"})})
    assert out["data"]["startWorkflow"]["success"] is True
    assert ":execution:ecosystem-payment-processing:payment-pi_1-" in out["data"]["startWorkflow"]["executionArn"]


def test_errors_are_success_false_or_graphql_errors(srv):
    bad_type = gql(srv, 'mutation { startWorkflow(workflowType: "NOPE", input: {a: 1}) { success } }')
    assert bad_type["data"]["startWorkflow"]["success"] is False
    missing = gql(srv, 'query { getWorkflowStatus(executionArn: "arn:aws:states:us-east-1:123456789012:execution:'
                       'ecosystem-booking-lifecycle:none") { success status } }')
    assert missing["data"]["getWorkflowStatus"] == {"success": False, "status": None}
    syntax = gql(srv, "mutation { startWorkflow(")
    assert syntax["errors"] and syntax["data"] is None
    not_object = gql(srv, 'mutation { startWorkflow(workflowType: "BOOKING_LIFECYCLE", input: [1]) { success } }')
    assert not_object["errors"]
    not_json = gql(srv, "mutation S($i: AWSJSON!) { startWorkflow(workflowType: \"X\", input: $i) { success } }",
                   {"i": "{broken"})
    assert not_json["errors"]
    req = urllib.request.Request(srv.url + "/graphql", data=b"{oops", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400


def test_publish_event_starts_the_matching_workflow(srv):
    out = gql(srv, """mutation PublishEvent {
      publishEvent(source: "marketplace.booking", detailType: "Booking Created",
                   detail: { bookingId: "evt-9", customerId: "456", action: "CREATE" }) { success eventId } }""")
    assert "errors" not in out, out
    assert out["data"]["publishEvent"]["success"] is True and out["data"]["publishEvent"]["eventId"]
    engine = srv.engine
    deadline = time.monotonic() + 10
    names: list[str] = []
    while time.monotonic() < deadline:
        names = [r["name"] for r in engine.store.list_executions()]
        if any(n.startswith("booking-evt-9-") for n in names):
            break
        time.sleep(0.1)
    assert any(n.startswith("booking-evt-9-") for n in names), names
