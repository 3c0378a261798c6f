"""Local SNS topics and SQS queues, as records of the engine's Store.

What a state machine sends is kept (``sns-message`` and ``sqs-message`` records, stamped with the
execution's clock) so a test or the console can read what was published. A topic or queue the
template did not declare is refused with AWS's error (``SNS.NotFoundException``,
``SQS.QueueDoesNotExist``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from statelang.runtime.services.errors import ServiceError, sdk_error

TOPICS, TOPIC_MESSAGES = "sns-topic", "sns-message"
QUEUES, QUEUE_MESSAGES = "sqs-queue", "sqs-message"


def _message_id(env, ctx: Any, salt: str = "") -> str:
    key = getattr(ctx, "idempotency_key", None)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"message#{key}#{salt}")) if key else str(uuid.uuid4())


def _params(params: Any, service: str) -> dict:
    if not isinstance(params, dict):
        raise ServiceError(service, "InvalidParameterException", "The request parameters must be a JSON object")
    return params


class LocalSNS:
    def __init__(self, env):
        self.env = env
        self._faults: dict[str, list[str]] = {}

    def fail(self, topic_arn: str, times: int = 1, error: str = "InternalErrorException") -> None:
        """The next `times` publishes to `topic_arn` fail with ``SNS.<error>``, to test Retry and Catch."""
        with self.env.lock:
            self._faults.setdefault(topic_arn, []).extend([error] * times)

    def create_topic(self, name: str) -> str:
        arn = f"arn:aws:sns:{self.env.region}:{self.env.account_id}:{name}"
        self.env.store.put_record(TOPICS, arn, {"TopicArn": arn, "Name": name})
        return arn

    def messages(self, topic_arn: str | None = None) -> list[dict]:
        out = self.env.store.list_records(TOPIC_MESSAGES)
        out = [m for m in out if topic_arn is None or m["TopicArn"] == topic_arn]
        return sorted(out, key=lambda m: m["Timestamp"])

    def publish(self, params: Any, ctx: Any = None) -> dict:
        p = _params(params, "SNS")
        target = p.get("TopicArn") or p.get("TargetArn")
        if p.get("PhoneNumber") and not target:
            target = f"phone:{p['PhoneNumber']}"
        elif self.env.store.get_record(TOPICS, target or "") is None:
            raise ServiceError("SNS", "NotFoundException", "Topic does not exist")
        with self.env.lock:
            pending = self._faults.get(target or "")
            fault = pending.pop(0) if pending else None
        if fault:
            raise ServiceError("SNS", fault, f"{fault} (injected by fail)")
        if "Message" not in p:
            raise ServiceError("SNS", "InvalidParameterException",
                               "Invalid parameter: Message (Reason: no value for required parameter)")
        message = p["Message"] if isinstance(p["Message"], str) else json.dumps(p["Message"], separators=(",", ":"))
        mid = _message_id(self.env, ctx)
        self.env.store.put_record(TOPIC_MESSAGES, mid, {
            "MessageId": mid, "TopicArn": target, "Message": message, "Subject": p.get("Subject"),
            "MessageAttributes": p.get("MessageAttributes") or {}, "Timestamp": self.env.clock.now().isoformat()})
        return {"MessageId": mid}

    def optimised_publish(self, params: Any, ctx: Any = None) -> dict:
        return {**self.publish(params, ctx), **self.env.sdk_metadata(ctx, "text/xml")}

    def sdk_publish(self, params: Any, ctx: Any = None) -> dict:
        try:
            return self.publish(params, ctx)
        except ServiceError as exc:
            raise sdk_error("sns", exc.exception, exc.cause) from None


class LocalSQS:
    def __init__(self, env):
        self.env = env

    def create_queue(self, name: str) -> str:
        url = f"https://sqs.{self.env.region}.amazonaws.com/{self.env.account_id}/{name}"
        self.env.store.put_record(QUEUES, url, {"QueueUrl": url, "QueueName": name,
                                                 "QueueArn": f"arn:aws:sqs:{self.env.region}:{self.env.account_id}:{name}"})
        return url

    def messages(self, queue_url: str | None = None) -> list[dict]:
        out = [m for m in self.env.store.list_records(QUEUE_MESSAGES) if queue_url is None or m["QueueUrl"] == queue_url]
        return sorted(out, key=lambda m: m["SentTimestamp"])

    def send_message(self, params: Any, ctx: Any = None) -> dict:
        p = _params(params, "SQS")
        url = p.get("QueueUrl")
        if self.env.store.get_record(QUEUES, url or "") is None:
            raise ServiceError("SQS", "QueueDoesNotExist", "The specified queue does not exist.")
        body = p.get("MessageBody")
        if body is None:
            raise ServiceError("SQS", "MissingParameter", "The request must contain the parameter MessageBody.")
        body = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        mid = _message_id(self.env, ctx)
        self.env.store.put_record(QUEUE_MESSAGES, mid, {
            "MessageId": mid, "QueueUrl": url, "Body": body, "MessageAttributes": p.get("MessageAttributes") or {},
            "MessageGroupId": p.get("MessageGroupId"), "SentTimestamp": self.env.clock.now().isoformat()})
        return {"MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest(), "MessageId": mid}  # noqa: S324

    def optimised_send(self, params: Any, ctx: Any = None) -> dict:
        return {**self.send_message(params, ctx), **self.env.sdk_metadata(ctx)}

    def sdk_send(self, params: Any, ctx: Any = None) -> dict:
        try:
            return self.send_message(params, ctx)
        except ServiceError as exc:
            raise sdk_error("sqs", exc.exception, exc.cause) from None
