"""`statelang.run`: one execution, start to finish, in memory — the entry point for tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from statelang.language import jsontext
from statelang.language.errors import DefinitionError
from statelang.language.validation import validate
from statelang.runtime.clock import Clock
from statelang.runtime.engine import Engine
from statelang.runtime.machines import definition_text

_VALID: dict[str, str] = {}
_VALID_LIMIT = 512


def checked(definition: str | dict) -> str:
    """The definition's text, validated once per distinct text; raises DefinitionError if invalid.
    Keyed by the text (a dict is written out first), so an edited definition is validated again."""
    text = definition_text(definition)
    if text not in _VALID:
        problems = [d for d in validate(text) if d.severity == "ERROR"]
        if problems:
            raise DefinitionError(problems)
        if len(_VALID) >= _VALID_LIMIT:
            _VALID.clear()
        _VALID[text] = text
    return text


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
    """Run `definition` on `input` to the end (or until nothing more can happen, or `timeout`
    seconds of the engine's clock have passed) and return what AWS would report.

    Without `engine`, a new in-memory Engine runs it: the same engine, interpreter and commit path
    as any `Engine(db="memory")`, started eagerly (in this thread, as the service starts an
    execution at once)."""
    if input is None:
        input = {}
    text = checked(definition)
    eng = engine or Engine(db="memory", handlers=handlers, clock=clock, state_machines=state_machines,
                           account_id=account_id, region=region, eager="always")
    sm_arn = f"arn:aws:states:{region}:{account_id}:stateMachine:{state_machine_name}"
    arn = f"arn:aws:states:{region}:{account_id}:execution:{state_machine_name}:{name}"
    if engine is not None:
        arn = f"{arn}-{uuid.uuid4().hex[:8]}"
    run_name = arn.rsplit(":", 1)[-1]
    if type.upper() == "EXPRESS":   # an Express execution's ARN: express:<machine>:<name>:<run id>
        arn = f"arn:aws:states:{region}:{account_id}:express:{state_machine_name}:{name}:{uuid.uuid4()}"
        run_name = name
    try:
        eng.start(text, input, arn=arn, name=run_name, state_machine_arn=sm_arn,
                  role_arn=f"arn:aws:iam::{account_id}:role/statelang")
        row = eng.wait(arn, timeout)
        history = eng.store.history(arn)
    finally:
        if engine is None:
            eng.close()
    return Execution(arn, row["status"],
                     jsontext.loads(row["output"]) if row.get("output") is not None and row["status"] == "SUCCEEDED"
                     else None,
                     row.get("error"), row.get("cause"), list(history), row.get("startDate"), row.get("stopDate"))
