"""HourBank: a time bank's service requests, escrow, ledger, transactions and disputes.

`hourbank_handlers(db)` gives the task handlers to pass to `statelang.Engine(handlers=...)`,
registered under the Lambda function names the workflows call (``hourbank-ValidateRequest``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine as SAEngine

from .actions import ActionRejected, HourBankActions
from .db import Database
from .handlers import FUNCTIONS, HourBankHandlers
from .ledger import Ledger

PREFIX = "hourbank-"


def hourbank_handlers(db_url_or_sqlalchemy_engine: str | SAEngine | Database,
                      now: Callable[[], datetime] | None = None) -> dict:
    """{function name: handler} over one HourBank database. `now` stamps rows (pass the statelang
    engine's ``clock.now`` to get virtual times)."""
    db = db_url_or_sqlalchemy_engine if isinstance(db_url_or_sqlalchemy_engine, Database) \
        else Database(db_url_or_sqlalchemy_engine, now=now)
    return handlers_for(HourBankHandlers(db))


def handlers_for(h: HourBankHandlers) -> dict:
    return {PREFIX + name: getattr(h, method) for name, method in FUNCTIONS.items()}


__all__ = ["hourbank_handlers", "handlers_for", "HourBankHandlers", "HourBankActions", "ActionRejected",
           "Database", "Ledger"]
