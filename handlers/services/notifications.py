"""SNS publish into an outbox table: the ``sns:publish`` integration and its ``.waitForTaskToken`` form.

Nothing leaves the machine; every message lands in ``svc_sns_outbox`` where the CLI, a test or a
human-in-the-loop screen reads it (a manager's approval request carries its task token there).
A publish is recorded once per task attempt: the task's idempotency key is the outbox row's
dedup key, so a task re-run after a crash returns the first MessageId instead of sending twice.
Faults can be injected per topic to drive a workflow's retry and failure paths.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine as SAEngine

from statelang import HandlerError

from .tables import sns_outbox, transaction

TOPIC_ARN = re.compile(r"^arn:aws:sns:[a-z0-9-]*:\d{12}:[A-Za-z0-9_.-]{1,256}$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifications:
    """An SNS look-alike whose deliveries are rows."""

    def __init__(self, engine: SAEngine, now: Callable[[], datetime] | None = None):
        self.engine = engine
        self.now = now or _utcnow
        self._faults: dict[str, list[str]] = {}
        self._guard = threading.Lock()

    def fail(self, topic_arn: str, times: int = 1, error: str = "InternalErrorException") -> None:
        """The next `times` publishes to `topic_arn` fail with ``SNS.<error>``."""
        with self._guard:
            self._faults.setdefault(topic_arn, []).extend([error] * times)

    def publish(self, params: dict, ctx: Any = None) -> dict:
        """Publish as ``sns:publish`` does: TopicArn (or TargetArn) and Message are required; a
        non-string Message is sent as its JSON text, as Step Functions serializes it."""
        topic = params.get("TopicArn") or params.get("TargetArn") or params.get("PhoneNumber")
        message = params.get("Message")
        if not topic or message is None:
            raise HandlerError("SNS.InvalidParameterException",
                               "Invalid parameter: TopicArn or TargetArn or PhoneNumber, and Message are required")
        if not topic.startswith("+") and not TOPIC_ARN.match(topic):
            raise HandlerError("SNS.InvalidParameterException", f"Invalid parameter: TopicArn Reason: {topic}")
        with self._guard:
            pending = self._faults.get(topic)
            fault = pending.pop(0) if pending else None
        if fault:
            raise HandlerError(f"SNS.{fault}", f"Publish to {topic} failed: {fault}")
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        key = getattr(ctx, "idempotency_key", None)
        token = getattr(ctx, "task_token", None)
        with transaction(self.engine) as conn:
            if key:
                seen = conn.execute(select(sns_outbox.c.message_id).where(sns_outbox.c.dedup_key == key)).first()
                if seen is not None:
                    return {"MessageId": seen.message_id}
            message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, key)) if key else str(uuid.uuid4())
            conn.execute(insert(sns_outbox).values(
                message_id=message_id, dedup_key=key, topic_arn=topic, subject=params.get("Subject"),
                message=text, attributes=params.get("MessageAttributes"), task_token=token,
                published_at=self.now()))
        return {"MessageId": message_id}

    def outbox(self, topic_arn: str | None = None, topic_suffix: str | None = None) -> list[dict]:
        """Published messages, oldest first; filter by a topic ARN or the end of one (its name)."""
        q = select(sns_outbox).order_by(sns_outbox.c.seq)
        if topic_arn:
            q = q.where(sns_outbox.c.topic_arn == topic_arn)
        with transaction(self.engine) as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        if topic_suffix:
            rows = [r for r in rows if r["topic_arn"].endswith(topic_suffix)]
        for r in rows:
            try:
                r["body"] = json.loads(r["message"])
            except ValueError:
                r["body"] = r["message"]
        return rows

    def handlers(self) -> dict:
        return {"arn:aws:states:::sns:publish": self.publish,
                "arn:aws:states:::sns:publish.waitForTaskToken": self.publish}
