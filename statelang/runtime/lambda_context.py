"""The context object a Python Lambda function receives, for functions statelang runs locally.

Attributes and the method are those of AWS's "Using the Lambda context object to retrieve Python
function information" page. As in the Python runtime (awslambdaric's LambdaContext, which reads
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``), `memory_limit_in_mb` is text. The deadline is the invocation's
start plus the function's Timeout on the *execution's* clock, so on a virtual clock a handler sees
the time it would have, not the wall clock's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from statelang.runtime.clock import RealClock

DEFAULT_TIMEOUT_SECONDS = 3     # AWS::Lambda::Function Timeout's default
DEFAULT_MEMORY_MB = 128         # AWS::Lambda::Function MemorySize's default


@dataclass(frozen=True)
class FunctionConfig:
    """What a local Lambda function is: its name, ARN, limits and environment variables."""

    name: str
    arn: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: dict[str, str] = field(default_factory=dict)
    version: str = "$LATEST"


@dataclass
class LambdaContext:
    """Lambda's context; `task` is statelang's TaskContext of the state that invoked it (or None)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: datetime
    clock: Any
    task: Any = None
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        left = (self.deadline - self.clock.now()).total_seconds() * 1000
        return max(0, int(left))


def lambda_context(config: FunctionConfig, task: Any = None, clock: Any = None) -> LambdaContext:
    """A context for one invocation. The request id is derived from the task's idempotency key when
    there is one, so a re-run of the same state entry (after a crash) sees the same id."""
    clock = clock or getattr(task, "clock", None) or RealClock()
    key = getattr(task, "idempotency_key", None)
    request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{config.arn}#{key}")) if key else str(uuid.uuid4())
    now = clock.now()
    return LambdaContext(
        function_name=config.name, function_version=config.version,
        invoked_function_arn=config.arn, memory_limit_in_mb=str(config.memory_mb),
        aws_request_id=request_id, log_group_name=f"/aws/lambda/{config.name}",
        log_stream_name=f"{now:%Y/%m/%d}/[{config.version}]{request_id.replace('-', '')}",
        deadline=now + timedelta(seconds=config.timeout_seconds), clock=clock, task=task)
