"""The Step Functions API's modelled exceptions, shaped like the ones boto3 raises.

Code written against boto3 catches ``client.exceptions.ExecutionDoesNotExist`` or a
``botocore.exceptions.ClientError`` and reads ``e.response["Error"]["Code"]``; for that code to run
unchanged on the in-process client, every error here *is* a ``ClientError`` when botocore is
importable. Without botocore (it is only a development dependency) the classes keep the same
names, ``response`` and ``operation_name`` on a plain base class.
"""

from __future__ import annotations

import contextvars
import uuid

from statelang.language.errors import StatelangError

try:  # botocore is optional: the in-process client must work without it
    from botocore.exceptions import ClientError as _ClientError
    from botocore.exceptions import ParamValidationError
    HAVE_BOTOCORE = True
except ImportError:  # pragma: no cover - exercised only where botocore is absent
    HAVE_BOTOCORE = False

    class _ClientError(Exception):  # type: ignore[no-redef]
        """botocore's ClientError, reduced to what callers read: response and operation_name."""

        def __init__(self, error_response: dict, operation_name: str):
            self.response = error_response
            self.operation_name = operation_name
            err = error_response.get("Error", {})
            super().__init__(f"An error occurred ({err.get('Code', 'Unknown')}) when calling the "
                             f"{operation_name} operation: {err.get('Message', '')}")

    class ParamValidationError(ValueError):  # type: ignore[no-redef]
        """botocore's client-side validation failure: raised before any request is made."""

        def __init__(self, report: str = ""):
            self.kwargs = {"report": report}
            super().__init__(f"Parameter validation failed:\n{report}")

ClientError = _ClientError

# Every exception shape of the stepfunctions service model (2016-11-23), in its order.
EXCEPTION_NAMES = (
    "ActivityAlreadyExists", "ActivityDoesNotExist", "ActivityLimitExceeded",
    "ActivityWorkerLimitExceeded", "ConflictException", "ExecutionAlreadyExists",
    "ExecutionDoesNotExist", "ExecutionLimitExceeded", "ExecutionNotRedrivable", "InvalidArn",
    "InvalidDefinition", "InvalidEncryptionConfiguration", "InvalidExecutionInput",
    "InvalidLoggingConfiguration", "InvalidName", "InvalidOutput", "InvalidToken",
    "InvalidTracingConfiguration", "KmsAccessDeniedException", "KmsInvalidStateException",
    "KmsThrottlingException", "MissingRequiredParameter", "ResourceNotFound",
    "ServiceQuotaExceededException", "StateMachineAlreadyExists", "StateMachineDeleting",
    "StateMachineDoesNotExist", "StateMachineLimitExceeded", "StateMachineTypeNotSupported",
    "TaskDoesNotExist", "TaskTimedOut", "TooManyTags", "ValidationException",
)

# The operation being served, so that an error raised deep inside names it as boto3 does.
current_operation: contextvars.ContextVar[str] = contextvars.ContextVar("operation", default="")


class StepFunctionsError(_ClientError, StatelangError):
    """Base of the modelled errors; ``code`` is the AWS error code (the class name)."""

    code = "ServiceException"

    def __init__(self, message: str = "", operation_name: str | None = None, **extra):
        response = {
            "Error": {"Code": self.code, "Message": message},
            "ResponseMetadata": {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": 400,
                                 "HTTPHeaders": {}, "RetryAttempts": 0},
            "message": message,
        }
        response.update(extra)
        _ClientError.__init__(self, response, operation_name or current_operation.get() or "Unknown")


def _make(name: str) -> type[StepFunctionsError]:
    return type(name, (StepFunctionsError,), {"code": name, "__module__": __name__,
                                             "__doc__": f"The service's {name} error."})


ERRORS: dict[str, type[StepFunctionsError]] = {name: _make(name) for name in EXCEPTION_NAMES}
globals().update(ERRORS)


def error(code: str, message: str) -> StepFunctionsError:
    """An instance of the modelled exception `code`, for the operation being served."""
    return ERRORS[code](message)


class Exceptions:
    """``client.exceptions``: one attribute per modelled error, plus ClientError, as boto3 has."""

    ClientError = _ClientError

    def __init__(self):
        for name, cls in ERRORS.items():
            setattr(self, name, cls)

    def from_code(self, code: str) -> type:
        return ERRORS.get(code, _ClientError)


__all__ = ["ClientError", "ParamValidationError", "StepFunctionsError", "ERRORS", "EXCEPTION_NAMES",
           "Exceptions", "error", "current_operation", "HAVE_BOTOCORE", *EXCEPTION_NAMES]
