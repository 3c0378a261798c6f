"""Retry and Catch decisions: pure functions of (retriers or catchers, counts, error).

Kept apart from the interpreter so that they can be tested exhaustively and so that replay and
redrive take exactly the same decisions as the original run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from statelang.language import errors as E

# Errors that no Retry or Catch handles, whatever ErrorEquals says: AWS stops the execution.
TERMINAL = frozenset({E.RUNTIME})
# Errors that States.ALL does not match (they must be named explicitly).
NOT_MATCHED_BY_ALL = frozenset({E.RUNTIME})  # AWS recordings show States.ALL catching DataLimitExceeded


def error_matches(error_equals: Sequence[str], error: str) -> bool:
    if error in TERMINAL:
        return False
    for name in error_equals:
        if name == error:
            return True
        if name == E.ALL and error not in NOT_MATCHED_BY_ALL:
            return True
        if name == E.TASK_FAILED and error not in NOT_MATCHED_BY_ALL and error != E.TIMEOUT:
            # AWS: in Retry/Catch, States.TaskFailed matches any error name except States.Timeout.
            return True
    return False


def decide_retry(retriers: Sequence[dict[str, Any]], counts: Sequence[int], error: str,
                 rng: random.Random | None = None) -> tuple[int, float] | None:
    """Return (index of the retrier, delay in seconds) or None when the error is not retried.

    The first retrier whose ErrorEquals matches decides; if its attempts are used up, the error
    is not retried (later retriers are not consulted), as the States Language specifies.
    """
    for i, r in enumerate(retriers):
        if not error_matches(r.get("ErrorEquals", ()), error):
            continue
        max_attempts = r.get("MaxAttempts", 3)
        if counts[i] >= max_attempts:
            return None
        interval = r.get("IntervalSeconds", 1)
        backoff = r.get("BackoffRate", 2.0)
        delay = interval * (backoff ** counts[i])
        max_delay = r.get("MaxDelaySeconds")
        if max_delay is not None:
            delay = min(delay, max_delay)
        if r.get("JitterStrategy") == "FULL":
            delay = (rng or random.Random(0)).uniform(0, delay)
        return i, float(delay)
    return None


def find_catcher(catchers: Sequence[dict[str, Any]], error: str) -> dict[str, Any] | None:
    for c in catchers:
        if error_matches(c.get("ErrorEquals", ()), error):
            return c
    return None
