"""HourBank wired to a statelang engine, for tests, benchmarks and local runs.

It wires the HourBank handlers (`statelang.handlers.hourbank`) to HourBank's state machines, so it
sits with the workflows, which are above the handlers.

`drain()` runs everything runnable *now* without moving the virtual clock, so a test can answer
a task token "within the deadline"; `advance(seconds)` moves the clock and runs what fell due;
`finish()` lets the virtual clock jump to every remaining timer.
"""

from __future__ import annotations

import json

import statelang
from statelang.handlers.hourbank import handlers_for
from statelang.handlers.hourbank.actions import HourBankActions
from statelang.handlers.hourbank.db import Database
from statelang.handlers.hourbank.handlers import HourBankHandlers
from statelang.handlers.hourbank.ledger import Ledger
from statelang.handlers.hourbank.models import CENTI, Service, ServiceRequest, User
from statelang.handlers.services.sfn import sfn_handlers
from statelang.workflows.hourbank import state_machines

REGION, ACCOUNT = "us-east-1", "123456789012"


class HourBankSandbox:
    def __init__(self, bank_db: str = "sqlite://", engine_db: str = "memory", clock="virtual"):
        self.engine = statelang.Engine(db=engine_db, clock=clock, state_machines=state_machines(),
                                       account_id=ACCOUNT, region=REGION)
        self.db = Database(bank_db, now=self.engine.clock.now)
        self.ledger = Ledger(self.db)
        self.handlers = HourBankHandlers(self.db, self.ledger)
        self.engine.resources.update(handlers_for(self.handlers))
        self.engine.resources.update(sfn_handlers(self.engine))
        self.actions = HourBankActions(self.engine, self.db)
        self.machines = state_machines()
        self._n = 0

    # -- members and services -------------------------------------------------------------------
    def add_member(self, user_id: str, hours: float = 0, response_hours: int = 24, status: str = "ACTIVE") -> None:
        with self.db.session() as s:
            s.merge(User(id=user_id, status=status, response_hours=response_hours, created_at=self.db.now()))
            s.commit()
        self.ledger.open_account(user_id)
        if hours:
            self.ledger.mint(user_id, round(hours * CENTI), key=f"seed:{user_id}", transaction_type="ADMIN_ADJUSTMENT")

    def add_service(self, service_id: str, provider_id: str, status: str = "AVAILABLE") -> None:
        with self.db.session() as s:
            s.merge(Service(id=service_id, provider_id=provider_id, title=service_id, status=status))
            s.commit()

    # -- executions -----------------------------------------------------------------------------
    def start(self, machine: str, input: dict, name: str | None = None) -> str:
        self._n += 1
        name = name or f"{machine.lower()}-{self._n}"
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"
        self.engine.start(self.machines[machine], input, arn=arn, name=name,
                          state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}")
        self.drain()
        return arn

    def request(self, requester: str, provider: str, service: str, hours: float, name: str | None = None,
                message: str = "") -> tuple[str, str]:
        """Start a service request; returns (execution ARN, request id)."""
        arn = self.start("HourBankServiceRequest", {"serviceId": service, "requesterId": requester,
                                                    "providerId": provider, "estimatedHours": hours,
                                                    "message": message}, name)
        return arn, "req-" + arn.rsplit(":", 1)[-1]

    def drain(self) -> int:
        """Run what is runnable at the current instant; never move the clock."""
        return self.engine.run_until_idle(until=self.engine.clock.now())

    def serve(self, request_id: str, requester: str, provider: str, hours_working: float = 0) -> None:
        """The happy path after a request: accepted, started and confirmed, done and confirmed."""
        self.actions.provider_respond(request_id, provider, "ACCEPT")
        self.drain()
        self.actions.mark_started(request_id, provider)
        self.drain()
        self.actions.confirm_start(request_id, requester)
        self.advance(hours_working * 3600)
        self.actions.mark_completed(request_id, provider)
        self.drain()
        self.actions.confirm_completion(request_id, requester)
        self.drain()

    def advance(self, seconds: float) -> None:
        self.engine.clock.advance(seconds)
        self.drain()

    def finish(self) -> None:
        self.engine.run_until_idle()

    # -- reading ---------------------------------------------------------------------------------
    def execution(self, arn: str) -> dict:
        return self.engine.store.get_execution(arn)

    def status(self, arn: str) -> str:
        return self.execution(arn)["status"]

    def output(self, arn: str):
        row = self.execution(arn)
        return json.loads(row["output"]) if row.get("output") else None

    def row(self, request_id: str) -> ServiceRequest | None:
        with self.db.session() as s:
            return s.get(ServiceRequest, request_id)

    def available(self, user_id: str) -> float:
        return self.ledger.balance(user_id)["available_balance"] / CENTI

    def escrowed(self, user_id: str) -> float:
        return self.ledger.balance(user_id)["escrowed_balance"] / CENTI

    def output_of_nested(self, parent_arn: str) -> str:
        """The ARN of the last execution `parent_arn` started (its dispute resolution)."""
        arns = [e["taskSubmittedEventDetails"]["output"] for e in self.engine.store.history(parent_arn)
                if e["type"] == "TaskSubmitted" and "startExecution" in e["taskSubmittedEventDetails"]["resource"]]
        return json.loads(arns[-1])["ExecutionArn"]

    def output_of_state(self, arn: str, state: str):
        """The output of the last exit of `state` in execution `arn`."""
        outs = [e["stateExitedEventDetails"]["output"] for e in self.engine.store.history(arn)
                if e.get("stateExitedEventDetails", {}).get("name") == state]
        return json.loads(outs[-1])

    def states_entered(self, arn: str) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.engine.store.history(arn)
                if "stateEnteredEventDetails" in e]
