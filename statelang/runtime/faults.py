"""Named crash points for the crash tests: ``STATELANG_FAULT=point[:n]`` ends the process with
``os._exit(137)`` at the n-th pass of that point — as abruptly as a SIGKILL, inside the engine's
commit windows (before_commit, after_commit, in_handler, after_handler)."""

from __future__ import annotations

import os

_fault_counts: dict[str, int] = {}


def fault(point: str) -> None:
    """Named crash points for the crash tests: STATELANG_FAULT=point[:n] exits at the n-th pass.
    The variable is read once, when the process starts (a crash test sets it for the process)."""
    if _FAULT is None or _FAULT[0] != point:
        return
    counter = _fault_counts.get(point, 0) + 1
    _fault_counts[point] = counter
    if counter >= _FAULT[1]:
        os._exit(137)


def _fault_spec(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, n = spec.partition(":")
    return name, int(n or 1)


_FAULT = _fault_spec(os.environ.get("STATELANG_FAULT"))
