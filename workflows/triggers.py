"""The seeds' auto-trigger table as event-bus rules: an event starts its workflow, named by the
seed's pattern (``booking-{bookingId}-{timestamp}``), with the event's detail as input."""

from __future__ import annotations

from .registry import WORKFLOWS

BUS_OF_SOURCE = {"marketplace.": "ecosystem-marketplace-events"}


def bus_name(row: dict) -> str:
    for prefix, bus in BUS_OF_SOURCE.items():
        if row["event_source"].startswith(prefix):
            return bus
    return "default"


def install_triggers(system) -> list[str]:
    """Put one rule per workflow row (``auto-<name>``) on its bus; returns the rule names."""
    from statelang.eventbus import EventBus
    engine = system.engine
    rules = []
    for row in WORKFLOWS:
        if not row.get("event_source") or not row.get("detail_type"):
            continue
        bus = EventBus(engine, bus_name(row))
        rule = f"auto-{row['name']}"
        bus.put_rule(rule, event_pattern={"source": [row["event_source"]], "detail-type": [row["detail_type"]]},
                     description=f"Starts {row['name']} (the seed's auto-trigger table)")
        sm = f"arn:aws:states:{engine.region}:{engine.account_id}:stateMachine:{row.get('state_machine') or row['name']}"
        target = {"Id": row["name"], "Arn": sm, "InputPath": "$.detail",
                  "RoleArn": f"arn:aws:iam::{engine.account_id}:role/statelang-events"}
        if row.get("execution_name"):
            target["ExecutionName"] = row["execution_name"]
        bus.put_targets(rule, [target])
        rules.append(rule)
    return rules
