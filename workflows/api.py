"""The seeds' workflow operations from Python: startWorkflow, getWorkflowStatus, stopWorkflow and
publishEvent, with the result shapes of the seed's GraphQL mutations ({"success": ..., ...}).

They sit on the engine's boto3-shaped client, so what they do is what a deployed orchestrator
calling Step Functions would do; errors come back as ``success: False`` with the AWS error code,
as the seed's resolvers return them. `open_system` builds an engine with every workflow, local
service and Lambda handler of the seeds wired in: what the tests, the benchmark and the CLI run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import statelang
from statelang.handlers.ccs import Ccs
from statelang.handlers.hourbank import HourBankActions, HourBankHandlers, handlers_for
from statelang.handlers.hourbank.db import Database
from statelang.handlers.marketplace import Marketplace
from statelang.handlers.services import Services
from statelang.handlers.services.sfn import sfn_handlers

from .registry import WORKFLOWS, find, load
from .registry import execution_name as name_from_pattern
from .settings import settings

ROLE = "arn:aws:iam::123456789012:role/statelang-workflows"
MARKETPLACE_BUS = "ecosystem-marketplace-events"


@dataclass
class System:
    """An engine with the seeds' workflows, and the services and handlers behind them."""

    engine: Any
    services: Services
    marketplace: Marketplace
    ccs: Ccs
    bus: Any = None
    hourbank: HourBankHandlers | None = None
    hourbank_actions: HourBankActions | None = None


def open_system(db: str = "memory", domain_db: str = "sqlite://", clock: str = "virtual", bus: bool = True,
                **engine_options) -> System:
    """``open_system("sqlite:///flows.db", "sqlite:///domain.db")``; `bus` installs the event bus
    (``events:putEvents`` and the marketplace bus) when the eventbus package is there."""
    engine = statelang.Engine(db=db, clock=clock, **engine_options)
    services = Services(domain_db, now=engine.clock.now)
    market, ccs = Marketplace(services), Ccs(services)
    engine.resources.update(services.handlers())
    engine.resources.update(market.handlers())
    engine.resources.update(ccs.handlers())
    bank = HourBankHandlers(Database(domain_db, now=engine.clock.now))   # its tables (hb_*) beside the services'
    engine.resources.update(handlers_for(bank))
    engine.resources.update(sfn_handlers(engine))
    default_bus = None
    if bus:
        from statelang.eventbus.integration import install
        default_bus = install(engine, buses=[MARKETPLACE_BUS])
    ensure_state_machines(engine)
    return System(engine, services, market, ccs, default_bus, bank, HourBankActions(engine, bank.db))


def ensure_state_machines(engine) -> dict[str, str]:
    """Create every registered workflow's state machine (once); {workflow type: state machine ARN}."""
    client = engine.client()
    arns = {}
    for row in WORKFLOWS:
        name = row.get("state_machine") or row["name"]
        arn = f"arn:aws:states:{engine.region}:{engine.account_id}:stateMachine:{name}"
        try:
            client.describe_state_machine(stateMachineArn=arn)
        except client.exceptions.StateMachineDoesNotExist:
            definition = load(row["name"], settings(engine.region, engine.account_id))
            client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
        arns[row["workflow_type"]] = arn
    return arns


def _failure(exc: Exception) -> dict:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
    return {"success": False, "error": code, "message": str(exc)}


def start_workflow(engine, workflow_type: str, input: dict, execution_name: str | None = None) -> dict:
    """Start a workflow; without a name, the seed's auto-trigger pattern names it."""
    name = execution_name
    try:
        row = find(workflow_type)
    except KeyError as exc:
        return {"success": False, "error": "InvalidWorkflowType", "message": str(exc)}
    if name is None:
        name = name_from_pattern(row, input, int(engine.clock.now().timestamp() * 1000))
    arn = f"arn:aws:states:{engine.region}:{engine.account_id}:stateMachine:{row.get('state_machine') or row['name']}"
    try:
        out = engine.client().start_execution(stateMachineArn=arn, name=name, input=json.dumps(input))
    except Exception as exc:  # noqa: BLE001 - the seed's resolvers report every error as success: false
        return _failure(exc)
    return {"success": True, "executionArn": out["executionArn"], "status": "RUNNING",
            "startDate": out["startDate"].isoformat(), "workflowType": row["workflow_type"], "executionName": name}


def get_workflow_status(engine, execution_arn: str, workflow_type: str | None = None) -> dict:
    try:
        d = engine.client().describe_execution(executionArn=execution_arn)
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    out = {"success": True, "executionArn": execution_arn, "status": d["status"], "output": d.get("output"),
           "startDate": d["startDate"].isoformat(), "stopDate": d["stopDate"].isoformat() if d.get("stopDate") else None,
           "error": d.get("error"), "cause": d.get("cause")}
    if workflow_type:
        out["workflowType"] = workflow_type
    return out


def stop_workflow(engine, execution_arn: str, workflow_type: str | None = None, error: str | None = None,
                  cause: str | None = None) -> dict:
    try:
        client = engine.client()
        kwargs = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
        out = client.stop_execution(executionArn=execution_arn, **kwargs)
        status = client.describe_execution(executionArn=execution_arn)["status"]
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    return {"success": True, "executionArn": execution_arn, "status": status,
            "stopDate": out["stopDate"].isoformat()}


def publish_event(bus, source: str, detail_type: str, detail: dict, event_bus_name: str = MARKETPLACE_BUS) -> dict:
    """The seed's publishEvent: one event onto the marketplace bus; {"success", "eventId"}."""
    if bus is None:
        raise ValueError("publish_event needs an event bus: open_system(bus=True) or eventbus.EventBus(engine, name)")
    out = bus.put_events([{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
                           "EventBusName": event_bus_name}])
    entry = out["Entries"][0]
    if out.get("FailedEntryCount"):
        return {"success": False, "error": entry.get("ErrorCode"), "message": entry.get("ErrorMessage")}
    return {"success": True, "eventId": entry["EventId"]}
