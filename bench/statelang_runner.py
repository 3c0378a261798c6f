"""statelang's side of the benchmark, through its public faces only.

Two runners share one interface with the peer (``run`` -> a result with status, output, seconds):

* ``MemoryRunner``: ``statelang.run(definition, input, handlers=..., clock="virtual")``, the
  one-shot in-memory path tests use.
* ``SqliteRunner``: ``statelang.Engine(db="sqlite:///…")`` driven through ``engine.client()`` (the
  boto3 stepfunctions client's methods) and ``engine.run_until_idle()``, so every timed execution
  writes its whole history to a SQLite file. The client is what users of the durable engine call,
  so it is what we time, responses and all.

The virtual clock is used because the shapes hold no waits: it changes nothing in the work done
and keeps the run independent of wall-clock timers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import statelang

from .shapes import HANDLERS, Shape

ROLE_ARN = "arn:aws:iam::123456789012:role/statelang-bench"


@dataclass
class RunResult:
    status: str
    output: Any
    seconds: float
    history: list[dict] | None = None


def _plain_output(output: Any) -> Any:
    """The output as a JSON value, whether an API returned it as text (AWS style) or as a value."""
    if isinstance(output, (str, bytes)):
        try:
            return json.loads(output)
        except ValueError:
            return output
    return output


class MemoryRunner:
    """``statelang.run`` in memory: the definition is parsed from JSON once, as a caller holds it."""

    name = "statelang"
    label = "statelang (memory)"

    def __init__(self) -> None:
        self._documents: dict[str, tuple[dict, Any]] = {}

    def __enter__(self) -> MemoryRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._documents.clear()

    def _document(self, shape: Shape) -> tuple[dict, Any]:
        document = self._documents.get(shape.name)
        if document is None:
            document = self._documents[shape.name] = (shape.definition, shape.input)
        return document

    def run(self, shape: Shape, *, with_history: bool = False) -> RunResult:
        definition, value = self._document(shape)
        begin = time.perf_counter()
        execution = statelang.run(definition, value, handlers=HANDLERS, clock="virtual")
        seconds = time.perf_counter() - begin
        history = list(execution.history) if with_history else None
        return RunResult(execution.status, _plain_output(execution.output), seconds, history)


class SqliteRunner:
    """``statelang.Engine`` persisted to a fresh SQLite file in a temporary directory."""

    name = "statelang_sqlite"
    label = "statelang (SQLite)"

    def __init__(self, directory: str | None = None) -> None:
        self._directory = Path(directory or tempfile.mkdtemp(prefix="statelang-bench-"))
        self._owns_directory = directory is None
        self.db_path = self._directory / "bench.db"
        try:
            # eager: start_execution runs the execution at once, as the service (and moto's thread) do
            self.engine = statelang.Engine(db=f"sqlite:///{self.db_path}", handlers=HANDLERS, clock="virtual",
                                           eager="always")
        except BaseException:
            self._cleanup()
            raise
        self.client = self.engine.client()
        self._machines: dict[str, str] = {}

    def __enter__(self) -> SqliteRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close_engine()

    def _close_engine(self) -> None:
        self.engine.close()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._owns_directory:
            shutil.rmtree(self._directory, ignore_errors=True)

    def _machine_arn(self, shape: Shape) -> str:
        arn = self._machines.get(shape.name)
        if arn is None:
            response = self.client.create_state_machine(
                name=f"bench-{shape.name}-{uuid.uuid4().hex[:8]}",
                definition=shape.definition_text,
                roleArn=ROLE_ARN,
            )
            arn = self._machines[shape.name] = response["stateMachineArn"]
        return arn

    def run(self, shape: Shape, *, with_history: bool = False) -> RunResult:
        machine_arn = self._machine_arn(shape)
        begin = time.perf_counter()
        started = self.client.start_execution(
            stateMachineArn=machine_arn, name=uuid.uuid4().hex, input=shape.input_text
        )
        self.engine.run_until_idle()
        described = self.client.describe_execution(executionArn=started["executionArn"])
        seconds = time.perf_counter() - begin
        history = self._history(started["executionArn"]) if with_history else None
        return RunResult(described["status"], _plain_output(described.get("output")), seconds, history)

    def _history(self, execution_arn: str) -> list[dict]:
        """The stored history through the client, page by page as boto3 would read it."""
        events: list[dict] = []
        token = None
        while True:
            kwargs = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = self.client.get_execution_history(**kwargs)
            events.extend(page.get("events", []))
            token = page.get("nextToken")
            if not token:
                return events
