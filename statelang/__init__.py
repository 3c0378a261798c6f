"""statelang: run Amazon States Language state machines offline.

Public face: `run` for one-shot executions, `validate`, `Engine` for durable work.
"""

from .clock import RealClock, VirtualClock
from .engine import Engine
from .errors import DefinitionError, StatesError
from .replay import Divergence, ReplayResult, replay
from .resources import HandlerError, TaskContext
from .run import Execution, run


def validate(definition):
    """Every problem of a definition, as Diagnostic(code, message, location, severity)."""
    from .validation import validate as _validate
    return _validate(definition)


__all__ = ["run", "validate", "replay", "ReplayResult", "Divergence", "Engine", "Execution", "StatesError", "DefinitionError", "HandlerError",
           "TaskContext", "VirtualClock", "RealClock"]
