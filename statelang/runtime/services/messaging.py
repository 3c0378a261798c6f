"""Local SNS topics, SQS queues and EventBridge's PutEvents, as records of the engine's Store.

What a state machine sends is kept (``sns-message``, ``sqs-message``, ``events-entry`` records, in
order of the execution's clock) so a test or the console can read what was published. A topic or
queue the template did not declare is refused with AWS's error (``SNS.NotFoundException``,
``SQS.QueueDoesNotExist``); EventBridge entries go to the bus named in each entry (``default``
when none), and, when an event sink is set (statelang's event bus), are handed to it too.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from statelang.runtime.services.errors import ServiceError, sdk_error

TOPICS, TOPIC_MESSAGES = "sns-topic", "sns-message"
QUEUES, QUEUE_MESSAGES = "sqs-queue", "sqs-message"
BUSES, BUS_ENTRIES = "events-bus", "events-entry"


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


class LocalEventBridge:
    def __init__(self, env, sink: Callable[[dict], Any] | None = None):
        self.env = env
        self.sink = sink   # e.g. statelang's event bus: called with each entry as PutEvents sends it

    def entries(self, bus: str | None = None) -> list[dict]:
        out = [e for e in self.env.store.list_records(BUS_ENTRIES) if bus is None or e["EventBusName"] == bus]
        return sorted(out, key=lambda e: e["Time"])

    def put_events(self, params: Any, ctx: Any = None) -> dict:
        """PutEvents; the optimised integration's output is PutEvents' response (Entries with an
        EventId each, FailedEntryCount), without SDK metadata."""
        p = _params(params, "EventBridge")
        entries = p.get("Entries")
        if not isinstance(entries, list) or not entries:
            raise ServiceError("EventBridge", "ValidationException",
                               "1 validation error detected: Value null at 'entries' failed to satisfy constraint: "
                               "Member must not be null")
        out = []
        for i, entry in enumerate(entries):
            missing = [f for f in ("Source", "DetailType", "Detail") if not (isinstance(entry, dict) and entry.get(f))]
            if missing:
                out.append({"ErrorCode": "InvalidArgument",
                            "ErrorMessage": f"Parameter(s) {', '.join(missing)} must be specified."})
                continue
            eid = _message_id(self.env, ctx, str(i))
            detail = entry["Detail"] if isinstance(entry["Detail"], str) else json.dumps(entry["Detail"])
            record = {"EventId": eid, "EventBusName": entry.get("EventBusName") or "default",
                      "Source": entry["Source"], "DetailType": entry["DetailType"], "Detail": detail,
                      "Resources": entry.get("Resources") or [], "Time": self.env.clock.now().isoformat()}
            self.env.store.put_record(BUS_ENTRIES, eid, record)
            if self.sink is not None:
                self.sink(record)
            out.append({"EventId": eid})
        return {"Entries": out, "FailedEntryCount": sum(1 for e in out if "ErrorCode" in e)}
