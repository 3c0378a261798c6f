"""``aws-sdk:*`` tasks no built-in local service answers, answered by moto (``statelang[aws]``).

moto is a well-kept library of in-process AWS service mocks: the task's action is called on a
boto3 client (``aws-sdk:secretsmanager:getSecretValue`` -> ``get_secret_value(**Parameters)``)
while moto intercepts botocore. moto patches botocore for the whole process, so each call holds a
lock and the patch is on only during that call; moto's state is kept between calls (not in the
engine's database: it lasts as long as the process). Errors are named as SDK integrations name
them (``SecretsManager.ResourceNotFoundException``).
"""

from __future__ import annotations

import base64
import importlib.util
import threading
from datetime import datetime
from typing import Any

from statelang.runtime.services.errors import ServiceError, sdk_error

# Service names in aws-sdk ARNs that boto3 spells otherwise.
BOTO3_NAMES = {"eventbridge": "events", "sfn": "stepfunctions", "cloudwatchlogs": "logs"}
_LOCK = threading.RLock()


def available() -> bool:
    """Is the ``statelang[aws]`` extra installed?"""
    return importlib.util.find_spec("moto") is not None and importlib.util.find_spec("boto3") is not None


class MotoBackend:
    def __init__(self, region: str):
        self.region = region
        self._mock: Any = None
        self._clients: dict[str, Any] = {}

    def handler(self, action: str):
        service, _, api = action.partition(":")
        if not service or not api:
            return None

        def handle(params: Any, ctx: Any = None) -> Any:
            return self.call(service, api, params if isinstance(params, dict) else {})
        return handle

    def call(self, service: str, api: str, params: dict) -> Any:
        import boto3
        from botocore.exceptions import ClientError, ParamValidationError
        from moto import mock_aws
        method = _snake(api)
        with _LOCK:
            if self._mock is None:
                self._mock = mock_aws()
            self._mock.start(reset=False)
            try:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = boto3.client(
                        BOTO3_NAMES.get(service, service), region_name=self.region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
                fn = getattr(client, method, None)
                if fn is None:
                    raise ServiceError("States", "Runtime", f"aws-sdk:{service} has no action {api!r}")
                out = fn(**params)
            except ClientError as exc:
                err = exc.response.get("Error", {})
                raise sdk_error(service, err.get("Code", "ServiceException"), err.get("Message", str(exc))) from None
            except ParamValidationError as exc:
                raise sdk_error(service, "ValidationException", str(exc)) from None
            finally:
                self._mock.stop(remove_data=False)
        out.pop("ResponseMetadata", None)
        return _jsonable(out)


def _snake(api: str) -> str:
    from botocore import xform_name
    return xform_name(api[:1].upper() + api[1:])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "read"):   # a StreamingBody
        return _jsonable(value.read())
    return value
