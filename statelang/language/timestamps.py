"""Timestamps as the States Language accepts them (Choice rules, Wait states).

The spec asks for the RFC 3339 profile of ISO 8601 with an uppercase ``T`` between date and time
and an uppercase ``Z`` when there is no numeric offset: ``2016-03-14T01:59:00Z``,
``2016-03-14T01:59:00.123+01:00``. Python's ``datetime.fromisoformat`` accepts far more (a space
instead of ``T``, no offset, ``+0100``, week dates), so the grammar is spelled out here instead.

Comparisons go through `timestamp_key`, an exact count of nanoseconds since the epoch, because a
`datetime` keeps only microseconds and two timestamps that differ in the seventh fractional
digit must not compare equal.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

__all__ = ["parse_timestamp", "timestamp_key", "is_timestamp"]

# ASCII digits only: `\d` would also take Arabic-Indic and other Unicode digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?"
    r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_NS = 1_000_000_000


def _fields(text: object) -> tuple[int, int, int, int, int, int, int, int] | None:
    """(year, month, day, hour, minute, second, nanosecond, offset seconds), or None."""
    if not isinstance(text, str):
        return None
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac, sign, oh, om = m.group(7), m.group(8), m.group(9), m.group(10)
    if h > 23 or mi > 59 or s > 59:  # no leap second: datetime cannot hold one
        return None
    try:
        date(y, mo, d)  # month and day ranges, leap years
    except ValueError:
        return None
    offset = 0
    if sign is not None:
        if int(oh) > 23 or int(om) > 59:
            return None
        offset = (int(oh) * 3600 + int(om) * 60) * (-1 if sign == "-" else 1)
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return y, mo, d, h, mi, s, nanos, offset


def parse_timestamp(text: object) -> datetime | None:
    """The timezone-aware datetime of an RFC 3339 timestamp, or None when ``text`` is not one.

    Fractional digits beyond microseconds are truncated (a datetime cannot hold them); use
    `timestamp_key` to compare timestamps exactly.
    """
    f = _fields(text)
    if f is None:
        return None
    y, mo, d, h, mi, s, nanos, offset = f
    return datetime(y, mo, d, h, mi, s, nanos // 1000, tzinfo=timezone(timedelta(seconds=offset)))


def timestamp_key(text: object) -> int | None:
    """Nanoseconds since 1970-01-01T00:00:00Z, or None when ``text`` is not a timestamp.

    Computed with integers so that year 0001 with a positive offset (which lies before
    datetime.min in UTC) still orders correctly.
    """
    f = _fields(text)
    if f is None:
        return None
    y, mo, d, h, mi, s, nanos, offset = f
    days = date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    return (days * 86400 + h * 3600 + mi * 60 + s - offset) * _NS + nanos


def is_timestamp(text: object) -> bool:
    return _fields(text) is not None
