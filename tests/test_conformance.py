"""Conformance of whole executions with AWS Step Functions.

Each file in tests/conformance/ holds cases of one topic. A case gives a definition, an input,
handlers in a small JSON vocabulary and what AWS does with them: the execution's status, its
output or error and cause, and optionally the history's event types, previousEventId links and
event details. Every case names the AWS behaviour it pins and where it is documented or recorded
(``source``). A case that statelang does not pass yet carries ``"xfail": "<why>"``; it is run
with a strict xfail, so fixing the engine turns it into a failure until the mark is removed.

Handler vocabulary (turned into Python callables by `make_handler`):
  {"return": value}                   return value
  {"echo": true}                      return the task input
  {"raise": "Name", "message": "m"}   raise an exception whose class name is Name
  {"fail_times": n, "then": spec}     raise ("error"/"message", default TransientError) on the
                                      first n calls, then behave as spec
  {"sleep": seconds, "then": spec}    take that long on the execution's virtual clock, then behave as
                                      spec (default: echo)
  {"repeat": "x", "times": n}         return a string of n copies of "x" (for data limits)
  {"context": true}                   return the TaskContext's state name and retry count

Expectations besides status/output/error/cause:
  "events"              the exact list of history event types, in order
  "previous_event_ids"  the exact list of previousEventId values, in order
  "event_details"       [{"type", "nth" (default 0), "details": {...}}]: the nth event of that
                        type has these detail fields (JSON text fields are compared parsed)
  "event_counts"        {type: n}: how many events of each type (branches interleave)
  "timestamp_gaps"      [[type_a, type_b, seconds]] or [[type_a, nth_a, type_b, nth_b, seconds]]:
                        the type_b event's timestamp minus the type_a event's
  "event_times"         [[type, nth, iso]]: that event's timestamp is this instant
  "output_times"        [[json_key, event_type, nth]]: output[json_key] is the ISO-8601 text
                        of that event's timestamp (context object times)
  "calls"               {handler_key: n}: how many times the handler was invoked
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import statelang

CONFORMANCE = Path(__file__).parent / "conformance"
EXECUTION_NAME = "conformance-run"
STATE_MACHINE_NAME = "ConformanceMachine"
# The context object's times, as AWS documents them: "2019-03-26T20:14:13.192Z".
_ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _load_cases():
    for path in sorted(CONFORMANCE.glob("*.json")):
        doc = json.loads(path.read_text())
        for case in doc["cases"]:
            marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if case.get("xfail") else []
            yield pytest.param(case, id=f"{path.stem}::{case['name']}", marks=marks)


CASES = list(_load_cases())


def _exception(name: str, message: str) -> Exception:
    return type(name, (Exception,), {})(message)


class _Counter:
    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def bump(self) -> int:
        with self.lock:
            self.calls += 1
            return self.calls


def make_handler(spec: dict, counter: _Counter):
    """A handler (input, context) -> result that follows `spec` and counts its calls."""

    def behave(spec: dict, event: Any, ctx: Any, call: int) -> Any:
        if "fail_times" in spec:
            if call <= spec["fail_times"]:
                raise _exception(spec.get("error", "TransientError"), spec.get("message", f"attempt {call}"))
            return behave(spec.get("then", {"echo": True}), event, ctx, call)
        if "sleep" in spec:   # the task takes that long on the execution's (virtual) clock
            ctx.clock.advance(spec["sleep"])
            return behave(spec.get("then", {"echo": True}), event, ctx, call)
        if "raise" in spec:
            raise _exception(spec["raise"], spec.get("message", ""))
        if "return" in spec:
            return json.loads(json.dumps(spec["return"]))
        if spec.get("echo"):
            return event
        if "repeat" in spec:
            return spec["repeat"] * spec["times"]
        if spec.get("context"):
            return {"state": ctx.state_name, "retry_count": ctx.retry_count}
        raise ValueError(f"unknown handler spec {spec!r}")

    def handler(event, ctx):
        return behave(spec, event, ctx, counter.bump())

    return handler


def _details(event: dict) -> dict:
    for key, value in event.items():
        if key.endswith("EventDetails"):
            return value
    return {}


def _matches(expected: Any, actual: Any) -> bool:
    """Partial match: every expected key is present with a matching value; JSON text fields
    are compared parsed when the expectation is not itself a string."""
    if isinstance(actual, str) and not isinstance(expected, str):
        try:
            actual = json.loads(actual)
        except ValueError:
            return False
        return actual == expected
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    return expected == actual


def _timestamp(event: dict) -> datetime:
    ts = event["timestamp"]
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _nth(history: list[dict], event_type: str, nth: int = 0) -> dict:
    found = [e for e in history if e["type"] == event_type]
    assert len(found) > nth, f"no {event_type} #{nth} in {[e['type'] for e in history]}"
    return found[nth]


START = datetime(2098, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("case", CASES)
def test_conformance(case):
    counters: dict[str, _Counter] = {}
    handlers = {}
    for key, spec in case.get("handlers", {}).items():
        counters[key] = _Counter()
        handlers[key] = make_handler(spec, counters[key])
    # A fixed start: the cases' absolute timestamps lie within AWS's one-year execution limit of it.
    ex = statelang.run(case["definition"], case.get("input", {}), handlers=handlers, clock=statelang.VirtualClock(START),
                       name=EXECUTION_NAME, state_machine_name=STATE_MACHINE_NAME)
    expect = case["expect"]
    history = list(ex.history)
    types = [e["type"] for e in history]
    context = f"{ex!r}\nhistory: {types}"

    assert ex.status == expect["status"], context
    if "output" in expect:
        assert ex.output == expect["output"], context
    if "error" in expect:
        assert ex.error == expect["error"], context
    if "cause" in expect:
        assert ex.cause == expect["cause"], context
    if "cause_contains" in expect:
        wanted = expect["cause_contains"]
        for part in [wanted] if isinstance(wanted, str) else wanted:
            assert ex.cause is not None and part in ex.cause, context
    if "cause_json" in expect:
        assert ex.cause is not None, context
        assert _matches(expect["cause_json"], json.loads(ex.cause)), context
    if "events" in expect:
        assert types == expect["events"], context
    if "previous_event_ids" in expect:
        assert [e["id"] for e in history] == list(range(1, len(history) + 1)), context
        assert [e["previousEventId"] for e in history] == expect["previous_event_ids"], context
    for item in expect.get("event_details", []):
        event = _nth(history, item["type"], item.get("nth", 0))
        assert _matches(item["details"], _details(event)), f"{item['type']}: {_details(event)!r}"
    for type_, n in expect.get("event_counts", {}).items():
        assert types.count(type_) == n, f"{type_}: {types.count(type_)} != {n}\n{context}"
    for gap_spec in expect.get("timestamp_gaps", []):
        a, na, b, nb, seconds = gap_spec if len(gap_spec) == 5 else (gap_spec[0], 0, gap_spec[1], 0, gap_spec[2])
        gap = (_timestamp(_nth(history, b, nb)) - _timestamp(_nth(history, a, na))).total_seconds()
        assert gap == pytest.approx(seconds, abs=0.002), f"{a}#{na} -> {b}#{nb}: {gap}s\n{context}"
    for type_, n, iso in expect.get("event_times", []):
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        assert _timestamp(_nth(history, type_, n)) == when, f"{type_}#{n}\n{context}"
    for key, event_type, nth in expect.get("output_times", []):
        text = ex.output[key]
        assert isinstance(text, str) and _ISO_MS.match(text), f"{key}: {text!r}"
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert abs((when - _timestamp(_nth(history, event_type, nth))).total_seconds()) < 0.002, \
            f"{key}={text} vs {event_type}#{nth}"
    for key, n in expect.get("calls", {}).items():
        assert counters[key].calls == n, f"{key} called {counters[key].calls} times, expected {n}"


def test_every_case_names_its_aws_source():
    names = set()
    for param in CASES:
        case = param.values[0]
        assert case.get("source"), f"{case['name']}: no source"
        assert case["name"] not in names, f"duplicate case name {case['name']}"
        names.add(case["name"])
    assert len(CASES) >= 80
