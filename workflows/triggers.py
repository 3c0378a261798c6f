"""The seeds' auto-trigger table as event-bus rules: an event starts its workflow, named by the
seed's pattern (``booking-{bookingId}-{timestamp}``), with the event's detail as input.

HourBank's events go to its own bus, ``hourbank-event-bus``, through the rule seed 002 names,
``ServiceRequestEvents`` ("Service Request Submitted" and "Provider Response Received" on one
rule). A submitted request starts the workflow; a provider's response answers the wait of the
request it names. One state-machine target cannot do both (it would start a second request for
every response), so the rule's target is a small router function doing each; the daily
reconciliation is a ``rate(1 day)`` schedule rule. Seed 001's routing rules come from `routing`.
"""

from __future__ import annotations

import json

from .registry import WORKFLOWS, execution_name

BUS_OF_SOURCE = {"marketplace.": "ecosystem-marketplace-events", "hourbank.": "hourbank-event-bus"}
ROUTER = "hourbank-service-request-events"


def bus_name(row: dict) -> str:
    for prefix, bus in BUS_OF_SOURCE.items():
        if row["event_source"].startswith(prefix):
            return bus
    return "default"


def _state_machine_arn(engine, row: dict) -> str:
    return f"arn:aws:states:{engine.region}:{engine.account_id}:stateMachine:{row.get('state_machine') or row['name']}"


def install_triggers(system) -> list[str]:
    """Put one rule per workflow row (``auto-<name>``) on its bus, HourBank's seed rule and its
    daily schedule; returns the rule names."""
    from statelang.eventbus import EventBus
    from statelang.workflows.hourbank import EVENT_BUS, SERVICE_REQUEST_RULE
    engine = system.engine
    rules = []
    for row in WORKFLOWS:
        if row["name"] == "HourBankServiceRequest":
            continue   # started by the seed's ServiceRequestEvents rule below
        target = {"Id": row["name"], "Arn": _state_machine_arn(engine, row),
                  "RoleArn": f"arn:aws:iam::{engine.account_id}:role/statelang-events"}
        if row.get("schedule"):
            bus = EventBus(engine, "default")
            rule = f"schedule-{row['name']}"
            bus.put_rule(rule, schedule_expression=row["schedule"], description=f"Starts {row['name']} on schedule")
            target["Input"] = json.dumps(row.get("input") or {})
            bus.put_targets(rule, [target])
            rules.append(rule)
            continue
        if not row.get("event_source") or not row.get("detail_type"):
            continue
        bus = EventBus(engine, bus_name(row))
        rule = f"auto-{row['name']}"
        bus.put_rule(rule, event_pattern={"source": [row["event_source"]], "detail-type": [row["detail_type"]]},
                     description=f"Starts {row['name']} (the seed's auto-trigger table)")
        target["InputPath"] = "$.detail"
        if row.get("execution_name"):
            target["ExecutionName"] = row["execution_name"]
        bus.put_targets(rule, [target])
        rules.append(rule)
    if getattr(system, "marketplace", None) is not None:
        from .routing import install_marketplace_routing
        rules += install_marketplace_routing(system)
    if getattr(system, "hourbank_actions", None) is not None:
        bus = EventBus(engine, EVENT_BUS)
        bus.register_handler(ROUTER, _router(system))
        bus.put_rule(SERVICE_REQUEST_RULE["Name"], event_pattern=SERVICE_REQUEST_RULE["EventPattern"],
                     description="Seed 002: service request events")
        bus.put_targets(SERVICE_REQUEST_RULE["Name"], [
            {"Id": "1", "Arn": f"arn:aws:lambda:{engine.region}:{engine.account_id}:function:{ROUTER}"}])
        rules.append(SERVICE_REQUEST_RULE["Name"])
    return rules


def _router(system):
    from statelang.workflows.api import start_workflow
    row = next(r for r in WORKFLOWS if r["name"] == "HourBankServiceRequest")

    def route(event: dict) -> dict:
        detail = event.get("detail") or {}
        if event.get("detail-type") == "Service Request Submitted":
            stamp = int(system.engine.clock.now().timestamp() * 1000)
            return start_workflow(system.engine, row["name"], detail, execution_name(row, detail, stamp))
        system.hourbank_actions.provider_respond(detail["requestId"], detail["providerId"], detail["action"],
                                                 detail.get("hours"))
        return {"success": True}
    return route
