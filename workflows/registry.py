"""The table of every workflow: its name, its type (the seeds' ``workflowType``), its definition
file, the event that starts it (source, detail-type and the execution-name pattern of the seed's
auto-trigger table) and its execution timeout.

A row is a plain dict so that another system adds its workflows by appending rows. The state
machine name is what AWS would call it (``ecosystem-booking-lifecycle``); nested executions refer
to each other by that name's ARN, so an engine must know every machine (see `state_machines`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from statelang.handlers.marketplace import dispute_id_for

from .settings import substitute

HERE = Path(__file__).parent
DERIVERS = {"dispute_id_for": dispute_id_for}
MINUTE, DAY = 60, 86400
# Seed 003 names its machines ``${project}-${environment}-...``: ccs-prod-emergency-workflow.
CCS_ENVIRONMENT = "prod"

WORKFLOWS: list[dict] = [
    {"name": "booking-lifecycle", "workflow_type": "BOOKING_LIFECYCLE", "state_machine": "ecosystem-booking-lifecycle",
     "definition": "marketplace/booking_lifecycle.asl.json", "event_source": "marketplace.booking",
     "detail_type": "Booking Created", "execution_name": "booking-{bookingId}-{timestamp}",
     "timeout_seconds": 15 * MINUTE},
    {"name": "payment-processing", "workflow_type": "PAYMENT_PROCESSING",
     "state_machine": "ecosystem-payment-processing", "definition": "marketplace/payment_processing.asl.json",
     "event_source": "marketplace.payment", "detail_type": "Payment Intent Created",
     "execution_name": "payment-{paymentIntentId}-{timestamp}", "timeout_seconds": 10 * MINUTE},
    {"name": "dispute-resolution", "workflow_type": "DISPUTE_RESOLUTION",
     "state_machine": "ecosystem-dispute-resolution", "definition": "marketplace/dispute_resolution.asl.json",
     "event_source": "marketplace.dispute", "detail_type": "Dispute Filed",
     "execution_name": "dispute-{disputeId}-{timestamp}", "timeout_seconds": 7 * DAY,
     "derived": {"disputeId": "dispute_id_for"}},
    {"name": "provider-onboarding", "workflow_type": "PROVIDER_ONBOARDING",
     "state_machine": "ecosystem-provider-onboarding", "definition": "marketplace/provider_onboarding.asl.json",
     "event_source": "marketplace.provider", "detail_type": "Registration Completed",
     "execution_name": "onboarding-{providerId}-{timestamp}", "timeout_seconds": 30 * MINUTE},
    {"name": "ccs-emergency", "workflow_type": "CCS_EMERGENCY", "state_machine": f"ccs-{CCS_ENVIRONMENT}-emergency-workflow",
     "definition": "ccs/emergency_workflow.asl.json", "event_source": "ccs.iot",
     "detail_type": "Emergency Event", "execution_name": "emergency-{vehicleId}-{eventTimestamp}",
     "timeout_seconds": 5 * MINUTE},
    {"name": "ccs-sales", "workflow_type": "CCS_SALES", "state_machine": f"ccs-{CCS_ENVIRONMENT}-business-workflow",
     "definition": "ccs/sales_workflow.asl.json", "event_source": "ccs.sales",
     "detail_type": "Contract Requested", "execution_name": "sales-{customer_id}-{timestamp}",
     "timeout_seconds": 2 * DAY},
]


def _hourbank_rows() -> list[dict]:
    """HourBank's rows (kept beside its definitions) in this table's terms."""
    from .hourbank import WORKFLOWS as HOURBANK
    return [dict(row, state_machine=row["name"], definition="hourbank/" + row["definition"], system="hourbank")
            for row in HOURBANK]


WORKFLOWS.extend(_hourbank_rows())


@cache
def _text(filename: str) -> str:
    return (HERE / filename).read_text()


def all_workflows() -> list[dict]:
    """Every row (copies: callers may not change the table by accident)."""
    return [dict(row) for row in WORKFLOWS]


def find(name_or_type: str) -> dict:
    """The row whose name, workflow type or state machine name is `name_or_type`."""
    for row in WORKFLOWS:
        if name_or_type in (row["name"], row["workflow_type"], row.get("state_machine")):
            return dict(row)
    raise KeyError(f"No workflow named {name_or_type!r}; known: {', '.join(r['name'] for r in WORKFLOWS)}")


def load(name: str, values: dict | None = None) -> dict:
    """The parsed definition of a workflow (a fresh copy each call), its ``${..._STATE_MACHINE_ARN}``
    placeholders filled from `values` (default: `settings.settings()`, the environment's)."""
    return json.loads(substitute(_text(find(name)["definition"]), values))


def state_machines(values: dict | None = None) -> dict[str, dict]:
    """{state machine name: definition}, what ``Engine(state_machines=...)`` takes."""
    return {row.get("state_machine") or row["name"]: load(row["name"], values) for row in WORKFLOWS}


def execution_name(row: dict, data: dict, timestamp_ms: int) -> str:
    """The seed's execution-name pattern filled from the event detail (``{timestamp}`` in ms);
    characters AWS forbids in a name become ``-`` and the name is cut to 80 characters."""
    values = dict(data, timestamp=timestamp_ms)
    for key, how in (row.get("derived") or {}).items():   # e.g. a dispute's id from its booking
        if key not in data:
            values[key] = DERIVERS[how](data)
    name = row["execution_name"]
    for key in [part.split("}")[0] for part in name.split("{")[1:]]:
        name = name.replace("{" + key + "}", str(values.get(key, "unknown")))
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:80]
