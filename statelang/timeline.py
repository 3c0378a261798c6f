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
