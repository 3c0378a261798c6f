"""History pages through the client on every backend: keyset paging by event id.

GetExecutionHistory hands back at most ``maxResults`` events (AWS's default page is 100) and a
``nextToken`` while more follow, oldest first or, with ``reverseOrder``, newest first
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html).
The token names the last event handed out, so each page is read from the store by its key range
alone, and events appended between two calls are neither repeated nor skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statelang
from statelang.runtime.storage import Commit, MemoryStore

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:long"
ARN = "arn:aws:states:us-east-1:123456789012:execution:long:run-1"


def events(first: int, n: int) -> list[dict]:
    return [{"timestamp": T0 + timedelta(milliseconds=i), "type": "PassStateEntered", "id": i,
             "previousEventId": i - 1, "stateEnteredEventDetails": {"name": f"S{i}", "input": f'{{"i": {i}}}'}}
            for i in range(first, first + n)]


def long_execution(db: str, n: int) -> statelang.Engine:
    engine = statelang.Engine(db=db, clock="virtual")
    row = {"executionArn": ARN, "stateMachineArn": SM, "name": "run-1", "status": "RUNNING", "startDate": T0,
           "input": "{}", "definition": '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}',
           "roleArn": "arn:role", "redriveCount": 0}
    started = [{"timestamp": T0, "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
                "executionStartedEventDetails": {"input": "{}", "roleArn": "arn:role"}}]
    engine.store.create_execution(row, Commit(ARN, started))
    for first in range(2, n + 1, 1000):
        engine.store.apply(Commit(ARN, events(first, min(1000, n + 1 - first))))
    return engine


def read_all(client, **kwargs) -> list[dict]:
    out, token = [], None
    while True:
        page = client.get_execution_history(executionArn=ARN, **kwargs, **({"nextToken": token} if token else {}))
        limit = kwargs.get("maxResults") or 100
        assert len(page["events"]) <= limit
        out += page["events"]
        token = page.get("nextToken")
        if not token:
            return out
        assert len(page["events"]) == limit, "a page short of maxResults is the last one"


@pytest.mark.parametrize("size", [7, 100, 1000])
def test_pages_put_together_are_the_whole_history_both_ways(backend_url, size):
    engine = long_execution(backend_url, 2500)
    client = engine.client()
    whole = client.get_execution_history(executionArn=ARN, maxResults=1000)
    forward = read_all(client, maxResults=size)
    assert [e["id"] for e in forward] == list(range(1, 2501))
    assert forward[:1000] == whole["events"]
    backward = read_all(client, maxResults=size, reverseOrder=True)
    assert [e["id"] for e in backward] == list(range(2500, 0, -1))
    assert backward[::-1] == forward
    first = client.get_execution_history(executionArn=ARN)   # AWS's default page: 100 events
    assert [e["id"] for e in first["events"]] == list(range(1, 101)) and first["nextToken"]
    engine.close()


def test_events_appended_between_pages_are_neither_repeated_nor_skipped(backend_url):
    engine = long_execution(backend_url, 250)
    client = engine.client()
    first = client.get_execution_history(executionArn=ARN, maxResults=100)
    engine.store.apply(Commit(ARN, events(251, 30)))
    rest, token = [], first["nextToken"]
    while token:
        page = client.get_execution_history(executionArn=ARN, maxResults=100, nextToken=token)
        rest += page["events"]
        token = page.get("nextToken")
    assert [e["id"] for e in first["events"] + rest] == list(range(1, 281))
    engine.close()


def test_a_token_of_another_query_or_garbage_is_refused(backend_url):
    engine = long_execution(backend_url, 250)
    client = engine.client()
    token = client.get_execution_history(executionArn=ARN, maxResults=10)["nextToken"]
    for bad, kwargs in ((token, {"reverseOrder": True}), ("not-a-token", {}), ("eyJhZnRlciI6IDN9", {})):
        with pytest.raises(client.exceptions.InvalidToken):
            client.get_execution_history(executionArn=ARN, maxResults=10, nextToken=bad, **kwargs)
    engine.close()


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 40), gaps=st.sets(st.integers(1, 60), max_size=10), after=st.none() | st.integers(-2, 70),
       limit=st.none() | st.integers(0, 12), reverse=st.booleans())
def test_memory_store_pages_are_slices_of_its_history(n, gaps, after, limit, reverse):
    """MemoryStore's bisection against the definition: filter, order, cut (ids need not be dense:
    an imported history keeps the ids it was given)."""
    store = MemoryStore()
    ids = [i for i in range(1, n + 1) if i not in gaps]
    store.events[ARN] = [{"id": i} for i in ids]
    want = [i for i in (reversed(ids) if reverse else ids)
            if after is None or (i < after if reverse else i > after)]
    want = want if limit is None else want[:limit]
    assert [e["id"] for e in store.history(ARN, after=after, limit=limit, reverse=reverse)] == want


def test_a_page_changed_by_its_caller_leaves_the_stored_history_as_it_was(backend_url):
    """A page hands out copies: the client no longer copies each event before shaping it, so the
    shaping's own copies are all that stands between a caller and the store's events (the memory
    store hands its own)."""
    engine = long_execution(backend_url, 30)
    client = engine.client()
    page = client.get_execution_history(executionArn=ARN, maxResults=10)
    for ev in page["events"]:
        ev["type"] = "Changed"
        ev["stateEnteredEventDetails"] = {"name": "changed"}
        details = ev.get("executionStartedEventDetails")
        if details is not None:
            details["input"] = "changed"
    again = client.get_execution_history(executionArn=ARN, maxResults=10)["events"]
    assert [ev["type"] for ev in again] == ["ExecutionStarted"] + ["PassStateEntered"] * 9
    assert again[0]["executionStartedEventDetails"]["input"] == "{}"
    assert again[1]["stateEnteredEventDetails"] == {"name": "S2", "input": '{"i": 2}'}
    engine.close()


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30),
                           timezones=st.timezones()))
def test_sqlite_time_text_reads_back_as_the_same_instant_in_utc(moment):
    """What the SQLite dialect writes is naive UTC text that sorts in time order; it reads back
    as the same instant, aware, in UTC. Text with an offset of its own, or a date alone, reads
    back too."""
    from statelang.store.dialects import SqliteDialect
    d = SqliteDialect()
    text = d.time(moment)
    assert "+" not in text and len(text) == 26
    back = d.read_time(text)
    instant = moment.astimezone(UTC)   # (PEP 495: a time in a repeated hour equals no other zone's)
    assert back == instant and back.tzinfo is UTC
    assert d.read_time(moment.isoformat()) == instant
    assert d.read_time(text[:10]) == datetime.fromisoformat(text[:10]).replace(tzinfo=UTC)
