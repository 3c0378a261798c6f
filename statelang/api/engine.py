"""`statelang.Engine`: the runtime's engine with the faces users hold it by.

The runtime engine (`statelang.runtime.engine.Engine`) runs executions and knows nothing of the
layers above it. Its public faces that need those layers — the boto3-shaped client, replay,
redrive, history export and import — are added here, at the top of the library, so that imports
keep flowing one way. Nothing is overridden: an `Engine` runs exactly what the runtime's runs.
"""

from __future__ import annotations

import json

from statelang.api.client import Client
from statelang.history.redrive import redrive
from statelang.history.replay import ReplayResult, export_document, load_document, replay
from statelang.runtime import engine as runtime
from statelang.runtime.storage import Commit, ExecutionDoesNotExist


class Engine(runtime.Engine):
    """Durable executions. ``Engine(db="sqlite:///flows.db", handlers=..., clock="virtual")``."""

    def client(self) -> Client:
        """A client with boto3's ``stepfunctions`` methods, arguments, responses and exceptions."""
        return Client(self)

    def replay(self, arn: str, definition: str | dict | None = None, handlers: dict | None = None) -> ReplayResult:
        """Re-run a stored execution against its recorded results; see `statelang.replay`."""
        return replay(self.export_history(arn), definition, handlers, account_id=self.account_id,
                      region=self.region)

    def redrive(self, arn: str) -> dict:
        """Continue a FAILED, TIMED_OUT or ABORTED execution from where it broke (RedriveExecution)."""
        return redrive(self, arn)

    def export_history(self, arn: str) -> dict:
        """The execution's history as a document `replay` and `import_history` read."""
        row = self.store.get_execution(arn)
        if row is None:
            raise ExecutionDoesNotExist(arn)
        return export_document(row, self.store.history(arn))

    def import_history(self, document: dict | str) -> str:
        """Recreate an exported execution in this engine's database; returns its ARN."""
        doc = load_document(document)
        ex = doc.get("execution") or {}
        arn = ex["executionArn"]
        events = doc["events"]
        definition = doc["definition"]
        row = {"executionArn": arn, "stateMachineArn": ex.get("stateMachineArn"), "name": ex.get("name"),
               "status": ex.get("status") or "FAILED", "startDate": events[0]["timestamp"],
               "stopDate": events[-1]["timestamp"] if ex.get("status") != "RUNNING" else None,
               "input": json.dumps(doc.get("input")), "output": ex.get("output"), "error": ex.get("error"),
               "cause": ex.get("cause"), "redriveCount": ex.get("redriveCount") or 0,
               "definition": definition if isinstance(definition, str) else json.dumps(definition),
               "roleArn": "", "imported": True}
        self.store.create_execution(row, Commit(arn, events))
        return arn
