"""HourBank's state machines and what starts them.

Each row names a state machine, its type, its definition file (beside this module), the
EventBridge source and detail-type (or schedule) that start it, and its execution timeout.
`state_machines()` gives the {name: definition} map an `Engine(state_machines=...)` needs so the
service request workflow can start the dispute workflow as a nested execution.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
DAY = 86400

WORKFLOWS = [
    {"name": "HourBankServiceRequest", "workflow_type": "STANDARD", "definition": "service_request.asl.json",
     "event_source": "hourbank.service-requests", "detail_type": "Service Request Submitted",
     "timeout_seconds": 90 * DAY},
    {"name": "HourBankDisputeResolution", "workflow_type": "STANDARD", "definition": "dispute_resolution.asl.json",
     "event_source": "hourbank.disputes", "detail_type": "Dispute Raised", "timeout_seconds": 14 * DAY},
    {"name": "HourBankEscrowRelease", "workflow_type": "STANDARD", "definition": "escrow_release.asl.json",
     "event_source": "hourbank.escrow", "detail_type": "Escrow Release Requested", "timeout_seconds": DAY},
    {"name": "HourBankEscrowCancellation", "workflow_type": "STANDARD", "definition": "escrow_cancellation.asl.json",
     "event_source": "hourbank.escrow", "detail_type": "Escrow Cancellation Requested", "timeout_seconds": DAY},
    {"name": "HourBankTransactionProcessing", "workflow_type": "STANDARD",
     "definition": "transaction_processing.asl.json", "event_source": "hourbank.transactions",
     "detail_type": "Transaction Requested", "timeout_seconds": DAY},
    {"name": "HourBankReconciliation", "workflow_type": "STANDARD", "definition": "reconciliation.asl.json",
     "event_source": "aws.scheduler", "detail_type": "Scheduled Event", "schedule": "rate(1 day)",
     "input": {"transactionType": "RECONCILIATION"}, "timeout_seconds": 3600},
]


@cache
def _text(filename: str) -> str:
    return (HERE / filename).read_text()


def definition(name: str) -> dict:
    """The parsed definition of the workflow `name` (a fresh copy each call)."""
    for row in WORKFLOWS:
        if row["name"] == name:
            return json.loads(_text(row["definition"]))
    raise KeyError(name)


def state_machines() -> dict[str, dict]:
    return {row["name"]: definition(row["name"]) for row in WORKFLOWS}
