"""A readable timeline of a history (statelang.history.timeline): one line per event, elapsed time, state,
abbreviated data, failures flagged; and `state_at`, the execution as it was at one event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import statelang
from statelang.history.timeline import _fmt_elapsed, event_summary, render_timeline, state_at

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ev(i, type_, seconds=0.0, **details):
    e = {"id": i, "type": type_, "timestamp": T0 + timedelta(seconds=seconds), "previousEventId": i - 1}
    if details:
        from statelang.interpreter.events import details_key
        e[details_key(type_)] = details
    return e


def test_empty_history():
    assert render_timeline([]) == "(no events)"


def test_one_line_per_event_plus_header():
    events = [ev(1, "ExecutionStarted", input='{"a":1}'),
              ev(2, "PassStateEntered", 0.5, name="Hello", input='{"a":1}'),
              ev(3, "PassStateExited", 1.25, name="Hello", output='{"b":2}'),
              ev(4, "ExecutionSucceeded", 1.25, output='{"b":2}')]
    lines = render_timeline(events).splitlines()
    assert len(lines) == 5
    assert lines[0].split() == ["id", "elapsed", "type", "state", "data"]
    assert lines[2].split()[:4] == ["2", "0.500s", "PassStateEntered", "Hello"]
    assert "input={\"a\":1}" in lines[2]
    assert "output={\"b\":2}" in lines[3]
    assert lines[4].split()[:3] == ["4", "1.250s", "ExecutionSucceeded"]


def test_failures_are_flagged_plainly_or_in_red():
    events = [ev(1, "ExecutionStarted"), ev(2, "ExecutionFailed", 2, error="Boom", cause="it broke")]
    plain = render_timeline(events).splitlines()
    assert plain[2].endswith("<-- error") and "Boom: it broke" in plain[2]
    assert "<-- error" not in plain[1]
    colored = render_timeline(events, color=True).splitlines()
    assert colored[2].startswith("\x1b[31m") and colored[2].endswith("\x1b[0m")
    assert "\x1b[" not in colored[1]


def test_long_data_is_abbreviated_and_newlines_removed():
    events = [ev(1, "TaskStateEntered", name="S" * 40, input="x" * 500 + "\n")]
    line = render_timeline(events).splitlines()[1]
    assert "…" in line and "\n" not in line
    assert len(line) < 200


def test_map_iteration_names_carry_their_index():
    assert event_summary(ev(5, "MapIterationStarted", name="Each", index=3)) == ("Each[3]", "")
    assert event_summary(ev(6, "TaskScheduled", resource="lambda:invoke", parameters="{}")) == \
        ("lambda:invoke", "parameters={}")
    assert event_summary({"id": 1, "type": "X", "timestamp": T0}) == ("", "")


def test_elapsed_formats():
    assert _fmt_elapsed(0) == "0.000s"
    assert _fmt_elapsed(59.9994) == "59.999s"
    assert _fmt_elapsed(61.5) == "1m01.5s"
    assert _fmt_elapsed(3 * 3600 + 5 * 60) == "3h05m"
    assert _fmt_elapsed(7 * 86400 + 4 * 3600) == "7d04h"


def test_a_virtual_week_shows_in_days():
    d = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 7 * 86400 + 3600, "End": True}}}
    ex = statelang.run(d, {"k": 1}, clock="virtual")
    lines = render_timeline(ex.history).splitlines()
    assert [ln.split()[2] for ln in lines[1:]] == ["ExecutionStarted", "WaitStateEntered", "WaitStateExited",
                                                   "ExecutionSucceeded"]
    assert lines[-1].split()[1] == "7d01h"


def test_state_at_follows_the_thread_of_control():
    d = {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": {"x": 1}, "Assign": {"seen": 1}, "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"y.$": "$.x"}, "End": True}}}
    ex = statelang.run(d, {"in": True})
    entered_b = next(e["id"] for e in ex.history if e["type"] == "PassStateEntered"
                     and e["stateEnteredEventDetails"]["name"] == "B")
    first = state_at(ex.history, 1)
    assert first["state"] is None and first["input"] == {"in": True}
    at_b = state_at(ex.history, entered_b)
    assert at_b["state"] == "B" and at_b["entered_event"] == entered_b and at_b["input"] == {"x": 1}
    assert at_b["output"] == {"x": 1}          # A's output, the last seen in the thread
    assert at_b["variables"] == {"seen": 1}
    at_end = state_at(ex.history, entered_b + 1)
    assert at_end["output"] == {"y": 1}
