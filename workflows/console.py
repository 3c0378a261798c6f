"""The seed systems driven by a person, one command at a time: what `statelang workflows`
(seed, add-*, run, waiting, answer, advance) does.

Each command is a new process, so the virtual clock's time is kept in the engine's own store (a
record, ``clock/virtual``) and read back by the next command: a request started at 09:00 and
advanced by 2 h is at 11:00 for the command after, whatever the wall clock did meanwhile. A
command runs only what is due at its instant (`settle`): a workflow that waits for a person
stays waiting until that person answers or the clock is advanced past the wait's deadline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from statelang.runtime.clock import VirtualClock
from statelang.runtime.storage import open_store

from .api import System, open_system

CLOCK_RECORD = ("clock", "virtual")

# Sample data for a fresh domain database: what the seeds' examples assume exists.
MARKETPLACE_SERVICES = [("service-456", "provider-456", 100.0), ("service-789", "provider-789", 60.0)]
MARKETPLACE_PROVIDERS = [("provider-456", "provider@example.com"), ("provider-789", "tutor@example.com")]
CCS_COMPANIES = [("900123456", "Transportes ABC S.A.S."), ("800197268", "Logistica del Norte S.A.S.")]
HOURBANK_MEMBERS = [("alice", 10.0, 24), ("bob", 2.0, 4), ("carol", 5.0, 48)]
HOURBANK_SERVICES = [("garden", "bob", "Gardening"), ("lessons", "carol", "Guitar lessons")]


def open_console(db: str, domain_db: str, virtual: bool = True) -> System:
    """The seed system over `db` and `domain_db`, its virtual clock where the last command left it
    (read before the engine starts: every service stamps rows with that clock)."""
    store = open_store(db)
    clock: Any = "real"
    if virtual:
        saved = store.get_record(*CLOCK_RECORD)
        clock = VirtualClock(datetime.fromisoformat(saved["now"])) if saved else "virtual"
    return open_system(db=store, domain_db=domain_db, clock=clock)


def close_console(system: System, virtual: bool = True) -> None:
    if virtual:
        system.engine.store.put_record(*CLOCK_RECORD, {"now": system.engine.clock.now().isoformat()})
    system.engine.close()


def settle(system: System) -> int:
    """Run what is runnable at this instant (executions, due event deliveries); never move the clock."""
    engine = system.engine
    return engine.run_until_idle(until=engine.clock.now())


def advance(system: System, seconds: float) -> int:
    """Move the virtual clock by `seconds`, stopping at every timer on the way so that what falls
    due runs at its own instant (a reminder at 12 h before a timeout at 24 h): the engine's loop
    up to that time."""
    engine = system.engine
    target = engine.clock.now() + timedelta(seconds=seconds)
    steps = engine.run_until_idle(until=target, schedules=True)   # ends with the clock at target
    return steps + settle(system)


@dataclass(frozen=True)
class Wait:
    """One task of a running execution that waits for an answer: who answers, with which token."""

    execution_arn: str
    state: str
    token: str
    deadline: str | None
    asks: dict


def waits(system: System) -> list[Wait]:
    """Every open task token of every running execution, with what the task sent out."""
    store, out = system.engine.store, []
    for row in store.list_executions(status="RUNNING"):
        for frame in store.load_frames(row["executionArn"]).values():
            data = frame.get("data") or {}
            if isinstance(data, str):
                data = json.loads(data)
            token = data.get("token") if isinstance(data, dict) else None
            if not token or frame.get("phase") != "task":
                continue
            timeout, entered = data.get("timeout"), frame.get("entered_time")
            deadline = None
            if timeout and entered:
                start = entered if isinstance(entered, datetime) else datetime.fromisoformat(str(entered))
                deadline = (start + timedelta(seconds=float(timeout))).isoformat()
            out.append(Wait(row["executionArn"], frame["state"], token, deadline, _asks(data.get("args"))))
    return out


def _asks(args: Any) -> dict:
    """The part of the task's parameters a person reads: the payload or message, minus the token."""
    if not isinstance(args, dict):
        return {}
    body = args.get("Payload") if isinstance(args.get("Payload"), dict) else args.get("Message", args)
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return {"message": body}
    return {k: v for k, v in (body or {}).items() if k.lower() != "tasktoken"} if isinstance(body, dict) else {}


def answer(system: System, token: str, output: Any = None, error: str | None = None, cause: str | None = None) -> str:
    """Answer a waiting task ("ok", "unknown" or "closed") and run what that makes runnable."""
    status = system.engine.send_task_result(token, error is None, output=output, error=error, cause=cause)
    settle(system)
    return status


def load_seed_data(system: System) -> dict:
    """The sample services, providers, companies and members (safe to repeat)."""
    for service, provider, price in MARKETPLACE_SERVICES:
        system.marketplace.add_service(service, provider, price)
    for provider, email in MARKETPLACE_PROVIDERS:
        add_marketplace_provider(system, provider, email)
    for tax_id, name in CCS_COMPANIES:
        system.ccs.register_company(tax_id, name=name)
    for user, hours, response in HOURBANK_MEMBERS:
        add_hourbank_member(system, user, hours, response)
    for service, provider, title in HOURBANK_SERVICES:
        add_hourbank_service(system, service, provider, title)
    return {"marketplaceServices": len(MARKETPLACE_SERVICES), "marketplaceProviders": len(MARKETPLACE_PROVIDERS),
            "ccsCompanies": len(CCS_COMPANIES), "hourbankMembers": len(HOURBANK_MEMBERS),
            "hourbankServices": len(HOURBANK_SERVICES)}


def add_marketplace_provider(system: System, provider_id: str, email: str) -> None:
    from statelang.handlers.marketplace import PROVIDERS
    system.services.dynamodb.put_item({"TableName": PROVIDERS, "Item": {
        "providerId": {"S": provider_id}, "email": {"S": email}, "onboardingStatus": {"S": "ACTIVE"}}})


def add_hourbank_member(system: System, user_id: str, hours: float = 0, response_hours: int = 24,
                        status: str = "ACTIVE") -> None:
    """A member with an account; `hours` are granted once (an admin adjustment keyed by the member)."""
    from statelang.handlers.hourbank.models import CENTI, User
    db, ledger = system.hourbank.db, system.hourbank.ledger
    with db.session() as s:
        s.merge(User(id=user_id, status=status, response_hours=response_hours, created_at=db.now()))
        s.commit()
    ledger.open_account(user_id)
    if hours:
        ledger.mint(user_id, round(hours * CENTI), key=f"seed:{user_id}", transaction_type="ADMIN_ADJUSTMENT",
                    description="Seed data")


def add_hourbank_service(system: System, service_id: str, provider_id: str, title: str = "") -> None:
    from statelang.handlers.hourbank.models import Service
    with system.hourbank.db.session() as s:
        s.merge(Service(id=service_id, provider_id=provider_id, title=title or service_id, status="AVAILABLE"))
        s.commit()
