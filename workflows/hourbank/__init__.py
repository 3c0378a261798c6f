"""HourBank's state machines and what starts them.

Each row names a state machine, its workflow type (what GraphQL's startWorkflow takes), its
definition file (beside this module), the EventBridge source and detail-type (or schedule) that
start it, the execution-name pattern, and its execution timeout (also the ASL's TimeoutSeconds).
`statelang.workflows.registry` lists these rows with the other seeds'.
`state_machines()` gives the {name: definition} map an `Engine(state_machines=...)` needs so the
service request workflow can start the dispute workflow as a nested execution.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from statelang.workflows.settings import substitute

HERE = Path(__file__).parent
DAY = 86400

WORKFLOWS = [
    {"name": "HourBankServiceRequest", "workflow_type": "HOURBANK_SERVICE_REQUEST", "type": "STANDARD",
     "definition": "service_request.asl.json", "event_source": "hourbank.service-requests",
     "detail_type": "Service Request Submitted", "execution_name": "{requesterId}-{serviceId}-{timestamp}",
     "timeout_seconds": 90 * DAY},
    {"name": "HourBankDisputeResolution", "workflow_type": "HOURBANK_DISPUTE_RESOLUTION", "type": "STANDARD",
     "definition": "dispute_resolution.asl.json", "event_source": "hourbank.disputes", "detail_type": "Dispute Raised",
     "execution_name": "dispute-{escrowId}-{timestamp}", "timeout_seconds": 14 * DAY},
    {"name": "HourBankEscrowRelease", "workflow_type": "HOURBANK_ESCROW_RELEASE", "type": "STANDARD",
     "definition": "escrow_release.asl.json", "event_source": "hourbank.escrow",
     "detail_type": "Escrow Release Requested", "execution_name": "release-{escrowId}-{timestamp}",
     "timeout_seconds": DAY},
    {"name": "HourBankEscrowCancellation", "workflow_type": "HOURBANK_ESCROW_CANCELLATION", "type": "STANDARD",
     "definition": "escrow_cancellation.asl.json", "event_source": "hourbank.escrow",
     "detail_type": "Escrow Cancellation Requested", "execution_name": "cancel-{escrowId}-{timestamp}",
     "timeout_seconds": DAY},
    {"name": "HourBankTransactionProcessing", "workflow_type": "HOURBANK_TRANSACTION", "type": "STANDARD",
     "definition": "transaction_processing.asl.json", "event_source": "hourbank.transactions",
     "detail_type": "Transaction Requested", "execution_name": "tx-{transactionType}-{timestamp}",
     "timeout_seconds": DAY},
    {"name": "HourBankReconciliation", "workflow_type": "HOURBANK_RECONCILIATION", "type": "STANDARD",
     "definition": "reconciliation.asl.json", "event_source": "aws.events", "detail_type": "Scheduled Event",
     "schedule": "rate(1 day)", "input": {"transactionType": "RECONCILIATION"},
     "execution_name": "reconciliation-{timestamp}", "timeout_seconds": 3600},
]
# The seed's bus and its rule (seed 002, "EventBridge Setup"): both detail types on one rule.
EVENT_BUS = "hourbank-event-bus"
SERVICE_REQUEST_RULE = {"Name": "ServiceRequestEvents",
                        "EventPattern": {"source": ["hourbank.service-requests"],
                                         "detail-type": ["Service Request Submitted", "Provider Response Received"]}}


@cache
def _text(filename: str) -> str:
    return (HERE / filename).read_text()


def definition(name: str, values: dict | None = None) -> dict:
    """The parsed definition of the workflow `name` (a fresh copy each call), its nested state
    machine's ARN filled from the settings (see `statelang.workflows.settings`)."""
    for row in WORKFLOWS:
        if row["name"] == name:
            return json.loads(substitute(_text(row["definition"]), values))
    raise KeyError(name)


def state_machines(values: dict | None = None) -> dict[str, dict]:
    return {row["name"]: definition(row["name"], values) for row in WORKFLOWS}
