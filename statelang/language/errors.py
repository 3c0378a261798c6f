"""Errors of the States Language and of this engine.

`StatesError` is the one exception that evaluation raises: it carries the error name that AWS
reports (``States.Runtime``, ``States.IntrinsicFailure``, a handler's own error, ...) and the cause
text.  Everything the interpreter catches and turns into a state failure is a `StatesError`, so
that an unexpected Python exception can never masquerade as a States error.
"""

from __future__ import annotations


class StatelangError(Exception):
    """The base of every exception this package raises (client errors modelled on AWS's keep
    botocore's classes as well), so that ``except statelang.StatelangError`` catches ours alone."""


class StatesError(StatelangError):
    """A runtime error of the language, named as AWS names it."""

    def __init__(self, error: str, cause: str | None = None):
        super().__init__(error if cause is None else f"{error}: {cause}")
        self.error = error
        self.cause = cause


class PathError(StatesError):
    """A path did not resolve. The interpreter prefixes the state's name to the cause."""

    def __init__(self, cause: str):
        super().__init__("States.Runtime", cause)


class ResultPathMatchFailure(StatesError):
    """States Language spec, errors table: "States.ResultPathMatchFailure — a state's ResultPath
    field cannot be applied to the input the state received"."""

    def __init__(self, cause: str):
        super().__init__("States.ResultPathMatchFailure", cause)


class IntrinsicFailure(StatesError):
    def __init__(self, cause: str):
        super().__init__("States.IntrinsicFailure", cause)


class QueryEvaluationError(StatesError):
    def __init__(self, cause: str):
        super().__init__("States.QueryEvaluationError", cause)


class DefinitionError(StatelangError, ValueError):
    """A definition that cannot be run; `diagnostics` lists every problem found."""

    def __init__(self, diagnostics: list):
        self.diagnostics = list(diagnostics)
        lines = "; ".join(str(d) for d in self.diagnostics[:20])
        more = f" (and {len(self.diagnostics) - 20} more)" if len(self.diagnostics) > 20 else ""
        super().__init__(f"Invalid State Machine Definition: {lines}{more}")


class StaticError(StatelangError, ValueError):
    """A path, template or intrinsic that is malformed before anything runs (validation finds it)."""


# Error names used across the engine, spelled once.
ALL = "States.ALL"
RUNTIME = "States.Runtime"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
BRANCH_FAILED = "States.BranchFailed"
PERMISSIONS = "States.Permissions"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
