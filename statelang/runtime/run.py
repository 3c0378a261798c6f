"""`statelang.run`: one execution, start to finish, in memory — the entry point for tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from statelang.runtime.clock import Clock
from statelang.runtime.engine import Engine

_VALID: dict[str, dict] = {}
_LOCAL = threading.local()


def _private_engine(handlers, clock, state_machines, account_id: str, region: str) -> Engine:
    """A fresh in-memory engine for one run. The Engine object itself is reused per thread (its
    store, clock, handlers and machines are new each time): a test suite calls `run` thousands of
    times and building an engine is a good part of a small machine's run."""
    from statelang.runtime.clock import make_clock
    from statelang.runtime.resources import Resources
    from statelang.runtime.storage import MemoryStore
    eng = getattr(_LOCAL, "engine", None)
    if getattr(_LOCAL, "busy", False):   # `run` called from inside a handler of another `run`
        return Engine(db="memory", handlers=handlers, clock=clock, state_machines=state_machines,
                      account_id=account_id, region=region, max_workers=8, eager="always")
    if eng is None or eng.account_id != account_id or eng.region != region or eng._pool is not None:
        eng = Engine(db="memory", clock=clock, account_id=account_id, region=region, max_workers=8,
                     eager="always")
        _LOCAL.engine = eng
    eng.store = MemoryStore()
    eng.clock = make_clock(clock)
    eng.resources = Resources(handlers, region, account_id)
    eng.state_machines = dict(state_machines or {})
    eng._runs = {}
    eng.listeners = []
    eng.tickers = []
    eng.timer_sources = []
    if eng.map_runs is not None:
        eng.map_runs.live.clear()
    return eng


def _checked(definition: str | dict) -> dict:
    """Load and validate once per distinct definition text; raise DefinitionError if invalid."""
    from statelang.language.definition import load_definition
    from statelang.language.errors import DefinitionError
    from statelang.language.validation import validate
    from statelang.runtime.engine import definition_key
    key = definition_key(definition)
    doc = _VALID.get(key)
    if doc is None:
        doc = load_definition(definition)
        problems = [d for d in validate(doc) if d.severity == "ERROR"]
        if problems:
            raise DefinitionError(problems)
        if len(_VALID) > 512:
            _VALID.clear()
        _VALID[key] = doc
    return doc


@dataclass
class Execution:
    """The outcome of `run`: status, output, error and cause exactly as AWS reports them."""

    execution_arn: str
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[dict] = field(default_factory=list)
    start_date: Any = None
    stop_date: Any = None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def __repr__(self) -> str:
        tail = f" output={self.output!r}" if self.status == "SUCCEEDED" else \
            f" error={self.error!r} cause={self.cause!r}"
        return f"<Execution {self.status}{tail}>"


def run(definition: str | dict, input: Any = None, handlers: dict | None = None,
        state_machines: dict | None = None, clock: str | Clock = "real",
        account_id: str = "123456789012", region: str = "us-east-1", *,
        name: str = "execution", state_machine_name: str = "statemachine",
        engine: Engine | None = None, timeout: float | None = None,
        type: str = "STANDARD") -> Execution:
    """Run `definition` on `input` to the end (or until nothing more can happen) in memory."""
    if input is None:
        input = {}
    doc = _checked(definition)
    eng = engine or _private_engine(handlers, clock, state_machines, account_id, region)
    sm_arn = f"arn:aws:states:{region}:{account_id}:stateMachine:{state_machine_name}"
    arn = f"arn:aws:states:{region}:{account_id}:execution:{state_machine_name}:{name}"
    if engine is not None:
        import uuid
    if type.upper() == "EXPRESS":   # an Express execution's ARN: express:<machine>:<name>:<run id>
        import uuid as _uuid
        arn = f"arn:aws:states:{region}:{account_id}:express:{state_machine_name}:{name}:{_uuid.uuid4()}"
        arn = f"{arn}-{uuid.uuid4().hex[:8]}"
    outer = getattr(_LOCAL, "busy", False)
    _LOCAL.busy = True
    try:
        eng.start(doc, input, arn=arn, name=arn.rsplit(":", 1)[-1], state_machine_arn=sm_arn,
                  role_arn=f"arn:aws:iam::{account_id}:role/statelang")
        row = eng.wait(arn, timeout)
    finally:
        _LOCAL.busy = outer
    history = eng.store.history(arn)
    return Execution(arn, row["status"],
                     json.loads(row["output"]) if row.get("output") is not None and row["status"] == "SUCCEEDED" else None,
                     row.get("error"), row.get("cause"), list(history), row.get("startDate"), row.get("stopDate"))
