"""A readable timeline of a history: one line per event, elapsed time, state, data abbreviated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

_ERROR_EVENTS = ("Failed", "TimedOut", "Aborted")


def _abbrev(text: Any, width: int = 60) -> str:
    s = text if isinstance(text, str) else str(text)
    s = s.replace("\n", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


def event_summary(ev: dict) -> tuple[str, str]:
    """(state or resource name, short data) of one event."""
    for key, d in ev.items():
        if key.endswith("EventDetails") and isinstance(d, dict):
            name = d.get("name") or d.get("resource") or ""
            if "index" in d:
                name = f"{name}[{d['index']}]"
            if "error" in d:
                return name, _abbrev(f"{d.get('error')}: {d.get('cause') or ''}", 90)
            for field in ("output", "input", "parameters"):
                if field in d:
                    return name, f"{field}={_abbrev(d[field])}"
            return name, ""
    return "", ""


def render_timeline(events: list[dict], color: bool = False) -> str:
    if not events:
        return "(no events)"
    t0 = events[0]["timestamp"]
    lines = [f"{'id':>4}  {'elapsed':>10}  {'type':<32} {'state':<24} data"]
    for ev in events:
        ts = ev["timestamp"]
        elapsed = (ts - t0).total_seconds() if isinstance(ts, datetime) and isinstance(t0, datetime) else 0.0
        name, data = event_summary(ev)
        line = f"{ev['id']:>4}  {_fmt_elapsed(elapsed):>10}  {ev['type']:<32} {_abbrev(name, 24):<24} {data}"
        if ev["type"].endswith(_ERROR_EVENTS):
            line = ("\x1b[31m" + line + "\x1b[0m") if color else line + "   <-- error"
        lines.append(line)
    return "\n".join(lines)


def _fmt_elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600):02d}h"


def state_at(events: list[dict], event_id: int) -> dict:
    """What the execution looked like at `event_id`: the state running in that event's thread,
    the input it entered with, the last output seen in the thread, and the variables assigned
    so far. Follows previousEventId links, which stay within one thread of control."""
    import json
    by_id = {e["id"]: e for e in events}
    event = by_id[event_id]
    chain = []
    cur: dict | None = event
    while cur is not None:
        chain.append(cur)
        cur = by_id.get(cur.get("previousEventId"))
    state = entered = None
    inp: Any = None
    output: Any = None
    for ev in chain:  # newest first
        d = ev.get("stateEnteredEventDetails")
        if d is not None and state is None:
            state, entered = d.get("name"), ev["id"]
            inp = json.loads(d["input"]) if d.get("input") else None
        x = ev.get("stateExitedEventDetails") or ev.get("taskSucceededEventDetails") or \
            ev.get("lambdaFunctionSucceededEventDetails")
        if x is not None and output is None and x.get("output") is not None:
            output = json.loads(x["output"])
    variables: dict[str, Any] = {}
    for ev in reversed(chain):
        d = ev.get("stateExitedEventDetails") or {}
        for k, v in (d.get("assignedVariables") or {}).items():
            variables[k] = json.loads(v)
    if state is None:
        started = by_id.get(1, {}).get("executionStartedEventDetails") or {}
        inp = json.loads(started["input"]) if started.get("input") else None
    return {"event": event, "state": state, "entered_event": entered, "input": inp, "output": output,
            "variables": variables}
