"""`LocalServices`: AWS services answering Task states locally, their state in the engine's Store.

One object per engine, holding the Store (so tables, messages and queues live in the engine's
database: a SQLite file survives a restart and the console can list them), the clock (timestamps
of messages follow the execution's time) and the folder S3 buckets live in. It answers:

* optimised integrations: ``arn:aws:states:::dynamodb:{getItem,putItem,updateItem,deleteItem}``,
  ``sns:publish``, ``sqs:sendMessage`` — responses as AWS records them
  (with ``SdkHttpMetadata`` / ``SdkResponseMetadata`` where AWS adds them);
* SDK integrations ``aws-sdk:dynamodb:*`` (also query and scan), ``aws-sdk:s3:{getObject,putObject,
  listObjectsV2,deleteObject}``, ``aws-sdk:sns:publish``, ``aws-sdk:sqs:sendMessage``;
* with the ``statelang[aws]`` extra (moto), any other ``aws-sdk:*`` action (see `moto_backend`).

``events:putEvents`` is statelang's event bus (``statelang.eventbus.integration.install(engine)``,
which the CLI and the pytest plugin attach when a machine uses it): one EventBridge, not two.

`Resources.lookup` asks `handler_for` after the user's handlers and patterns, before the catch-all.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statelang.runtime.clock import Clock, RealClock

OPTIMISED = "arn:aws:states:::"
SDK = "arn:aws:states:::aws-sdk:"


@dataclass
class ServiceEnv:
    """What every local service shares: the store, the clock, where it is, one write lock."""

    store: Any
    clock: Clock
    region: str = "us-east-1"
    account_id: str = "123456789012"
    s3_root: Path = field(default_factory=lambda: Path(".statelang") / "s3")   # LocalServices passes the real one
    # Read-check-write of one service call is atomic within this process (a conditional put);
    # two processes sharing one database do not exclude each other.
    lock: threading.RLock = field(default_factory=threading.RLock)

    def request_id(self, ctx: Any) -> str:
        key = getattr(ctx, "idempotency_key", None)
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"request#{key}")) if key else str(uuid.uuid4())

    def sdk_metadata(self, ctx: Any, content_type: str = "application/x-amz-json-1.0") -> dict:
        """The SdkHttpMetadata/SdkResponseMetadata an optimised integration adds to its output (as
        in LocalStack's AWS-recorded snapshot test_dynamodb_task_service.snapshot.json)."""
        rid = self.request_id(ctx)
        date = self.clock.now().strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers = {"Connection": "keep-alive", "Content-Type": content_type, "Date": date,
                   "Server": "Server", "x-amzn-RequestId": rid}
        return {"SdkHttpMetadata": {"AllHttpHeaders": {k: [v] for k, v in headers.items()},
                                    "HttpHeaders": headers, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": rid}}


Handler = Callable[[Any, Any], Any]


class LocalServices:
    """The local services of one engine; `handler_for` finds the one answering a task."""

    def __init__(self, store: Any = None, clock: Clock | None = None, *, region: str = "us-east-1",
                 account_id: str = "123456789012", s3_root: str | Path | None = None, moto: bool | None = None):
        from statelang.runtime.item_reader import s3_root as default_s3_root
        from statelang.runtime.services.dynamodb import LocalDynamoDB
        from statelang.runtime.services.messaging import LocalSNS, LocalSQS
        from statelang.runtime.services.s3 import LocalS3
        from statelang.runtime.storage import MemoryStore
        # one S3 folder with the distributed Map's ItemReader/ResultWriter ($STATELANG_S3_ROOT, else ./.statelang/s3)
        self.env = ServiceEnv(store if store is not None else MemoryStore(), clock or RealClock(), region,
                              account_id, Path(s3_root) if s3_root else default_s3_root())
        self.dynamodb = LocalDynamoDB(self.env)
        self.sns = LocalSNS(self.env)
        self.sqs = LocalSQS(self.env)
        self.s3 = LocalS3(self.env)
        self._optimised: dict[str, Handler] = {
            **{f"dynamodb:{a}": self.dynamodb.optimised(a) for a in ("getItem", "putItem", "updateItem", "deleteItem")},
            "sns:publish": self.sns.optimised_publish, "sqs:sendMessage": self.sqs.optimised_send}
        self._sdk: dict[str, Handler] = {
            **{f"dynamodb:{a}": self.dynamodb.sdk(a) for a in LocalDynamoDB.ACTIONS},
            **{f"s3:{a}": self.s3.sdk(a) for a in LocalS3.ACTIONS},
            "sns:publish": self.sns.sdk_publish, "sqs:sendMessage": self.sqs.sdk_send}
        self._moto = None
        if moto is not False:
            from statelang.runtime.services.moto_backend import MotoBackend, available
            if moto or available():
                self._moto = MotoBackend(region)

    def bind(self, store: Any, clock: Clock) -> LocalServices:
        """Keep state in `store` and time on `clock` (an engine's), from now on."""
        self.env.store = store
        self.env.clock = clock
        return self

    def handler_for(self, kind: str, resource: str, args: Any) -> Handler | None:
        if kind != "service":
            return None
        base = resource.split(".waitForTaskToken")[0].split(".sync")[0]
        if base.startswith(SDK):
            action = base[len(SDK):]
            found = self._sdk.get(action)
            if found is None and self._moto is not None:
                return self._moto.handler(action)
            return found
        return self._optimised.get(base[len(OPTIMISED):])

    def handlers(self) -> dict[str, Handler]:
        """The services as a handlers dict keyed by pattern, for `statelang.run(handlers=...)`."""
        def dispatch(payload: Any, ctx: Any) -> Any:
            fn = self.handler_for("service", ctx.resource, payload)
            if fn is None:
                from statelang.runtime.resources import HandlerError
                raise HandlerError("States.Runtime", f"No local service answers the resource '{ctx.resource}'")
            return fn(payload, ctx)
        keys = {f"{OPTIMISED}{k}" for k in self._optimised} | {f"{SDK}{k}" for k in self._sdk}
        if self._moto is not None:
            keys.add(f"{SDK}*")
        return {k: dispatch for k in sorted(keys)}
