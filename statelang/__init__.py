"""statelang: run Amazon States Language state machines offline.

Public face: `run` for one-shot executions, `validate`, `replay`, `Engine` for durable work.
"""

from statelang.history.replay import Divergence, ReplayResult, replay
from statelang.language.errors import DefinitionError, StatelangError, StatesError
from statelang.language.validation import validate
from statelang.runtime.clock import RealClock, VirtualClock
from statelang.runtime.engine import Engine
from statelang.runtime.resources import HandlerError, TaskContext
from statelang.runtime.run import Execution, run

__all__ = ["run", "validate", "replay", "ReplayResult", "Divergence", "Engine", "Execution", "StatelangError",
           "StatesError", "DefinitionError", "HandlerError", "TaskContext", "VirtualClock", "RealClock"]
