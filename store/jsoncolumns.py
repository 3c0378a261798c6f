"""The JSON columns of the SQL stores: the text they hold, and the tags that bring datetimes back.

Both the store's logic (`statelang.store.sql`) and the dialects (`statelang.store.dialects`, whose
PostgreSQL driver is set to write JSON with `json_dumps`) read and write these, so they sit below
both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statelang.language.jsontext import encoder, loads

__all__ = ["json_default", "json_dumps", "tag", "untag", "untagged"]

# Records and execution extras carry datetimes (creationDate, redriveDate, ...): they are stored
# tagged as {"$datetime": iso} so that what is read back compares equal to what was put, and a
# dict of the caller's that would read as a tag is wrapped in {"$literal": ...}. Frames, message
# payloads and event details hold the execution's own JSON and are stored as they are.

_TAGS = ("$datetime", "$literal")


def tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dict):
        out = {k: tag(v) for k, v in value.items()}
        return {"$literal": out} if len(value) == 1 and next(iter(value)) in _TAGS else out
    if isinstance(value, list | tuple):
        return [tag(v) for v in value]
    return value


def untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((k, v),) = value.items()
            if k == "$datetime" and isinstance(v, str):
                return datetime.fromisoformat(v)
            if k == "$literal" and isinstance(v, dict):
                return {kk: untag(vv) for kk, vv in v.items()}
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


def json_default(value: Any) -> Any:
    """A datetime that strays into a frame or payload is written as ISO text rather than failing
    the commit (the in-memory store would have kept it as is)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# The text of every JSON column (see statelang.jsontext: orjson where it writes what json would).
json_dumps = encoder(default=json_default, check_circular=True)


def untagged(raw: Any) -> Any:
    """A tagged JSON column's value from its stored form (SQLite's text, or the value psycopg
    decoded). On text the walk that undoes the tags is skipped when the text holds none (records
    and execution extras seldom do, and the walk costs more than the parse)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        value = loads(raw)
        return untag(value) if '"$datetime"' in raw or '"$literal"' in raw else value
    return untag(raw)
