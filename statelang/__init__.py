"""statelang: run Amazon States Language state machines offline.

Public face: `run` for one-shot executions, `validate`, `replay`, `Engine` for durable work,
`load_template` for SAM/CloudFormation/CDK templates, `handler`/`Handlers` to declare handlers.

Names are imported when first used (PEP 562), so that `import statelang` — and with it every
`statelang` command — costs only what the command uses.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run": "statelang.runtime.run", "Execution": "statelang.runtime.run",
    "validate": "statelang.language.validation",
    "replay": "statelang.history.replay", "ReplayResult": "statelang.history.replay",
    "Divergence": "statelang.history.recorded",
    "Engine": "statelang.api.engine",
    "StatelangError": "statelang.language.errors", "StatesError": "statelang.language.errors",
    "DefinitionError": "statelang.language.errors",
    "HandlerError": "statelang.runtime.resources", "TaskContext": "statelang.runtime.resources",
    "handler": "statelang.runtime.resources", "Handlers": "statelang.runtime.resources",
    "VirtualClock": "statelang.runtime.clock", "RealClock": "statelang.runtime.clock",
    "load_template": "statelang.templates.template", "Template": "statelang.templates.template",
    "LambdaContext": "statelang.runtime.lambda_context",
    "LocalServices": "statelang.runtime.services.local",
    "ExecutionDoesNotExist": "statelang.runtime.storage",
}

__all__ = ["run", "Execution", "validate", "replay", "ReplayResult", "Divergence", "Engine", "StatelangError",
           "StatesError", "DefinitionError", "HandlerError", "TaskContext", "handler", "Handlers", "VirtualClock",
           "RealClock", "load_template", "Template", "LambdaContext", "LocalServices", "ExecutionDoesNotExist"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'statelang' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
