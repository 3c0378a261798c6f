"""What a loaded template is: its state machines, functions and resources, as typed values.

Apart from the loader (`template`) and the runner (`runner`), which both use these types, so that
neither imports the other's module to name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statelang.language.diagnostics import Diagnostic
from statelang.runtime.lambda_context import FunctionConfig
from statelang.templates.intrinsics import TemplateError
from statelang.templates.resources import LocalResource


@dataclass(frozen=True)
class StateMachine:
    logical_id: str
    name: str
    arn: str
    type: str                     # STANDARD | EXPRESS
    definition: Any               # the parsed definition, substitutions applied (None if unreadable)
    source: str                   # where it came from, for messages
    warnings: tuple[Diagnostic, ...] = ()
    problem: str | None = None    # why the definition could not be read


@dataclass(frozen=True)
class Function:
    logical_id: str
    config: FunctionConfig
    runtime: str
    handler: str
    code_dir: Path | None
    inline_code: str | None = None

    @property
    def is_python(self) -> bool:
        return self.runtime.startswith("python")


@dataclass
class TemplateData:
    path: Path
    parameters: dict[str, str]
    region: str
    account_id: str
    resources: dict[str, LocalResource]
    state_machines: dict[str, StateMachine]
    functions: dict[str, Function]
    properties: dict[str, dict] = field(default_factory=dict)   # resolved Properties, by logical id

    def state_machine(self, key: str) -> StateMachine:
        """By logical id, or by name (`--state-machine` accepts either)."""
        if key in self.state_machines:
            return self.state_machines[key]
        for sm in self.state_machines.values():
            if key in (sm.name, sm.arn):
                return sm
        known = ", ".join(sorted(self.state_machines)) or "none"
        raise TemplateError(f"{self.path}: no state machine {key!r} (state machines in the template: {known})")
