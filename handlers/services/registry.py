"""Every local service over one database, and the handlers that put them behind their ARNs.

`Services` holds the instances (so a test or the CLI can configure a decline or read the outbox);
`service_handlers(db)` is the {integration ARN: handler} map an `Engine(handlers=...)` takes.
The payment provider and the video recorder have no Step Functions integration of their own:
the seed systems reach them through Lambda functions (handlers.marketplace, handlers.ccs).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine as SAEngine

from .dynamodb import DynamoDB
from .notifications import Notifications
from .payments import PaymentProvider
from .tables import create_tables, domain_engine
from .video import VideoRecorder

__all__ = ["Services", "service_handlers", "domain_engine", "create_tables"]


class Services:
    """``Services("sqlite:///domain.db", now=engine.clock.now)``: the DynamoDB-like store, SNS,
    the payment provider and the video recorder, sharing one SQLAlchemy engine. `now` stamps rows
    with the workflow engine's clock, so a virtual-clock run records virtual times."""

    def __init__(self, db: str | SAEngine = "sqlite://", now: Callable[[], datetime] | None = None):
        self.engine = domain_engine(db)
        self.dynamodb = DynamoDB(self.engine)
        self.sns = Notifications(self.engine, now)
        self.payments = PaymentProvider(self.engine, now)
        self.video = VideoRecorder(self.engine, now)

    def handlers(self) -> dict:
        out: dict = {}
        out.update(self.dynamodb.handlers())
        out.update(self.sns.handlers())
        return out


def service_handlers(db_url_or_engine: str | SAEngine | Services = "sqlite://") -> dict:
    """{integration ARN: handler} for the DynamoDB and SNS integrations over `db`."""
    services = db_url_or_engine if isinstance(db_url_or_engine, Services) else Services(db_url_or_engine)
    return services.handlers()
