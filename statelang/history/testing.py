"""Helpers for pytest suites: golden-history tests in one line.

    def test_order_flow_still_behaves():
        assert_replays("tests/golden/order-7.history.json", definition="machines/order.asl.json")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from statelang.history.replay import ReplayResult, replay


def _read(source: Any) -> Any:
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith(("{", "["))):
        return Path(source).read_text()
    return source


def assert_replays(history: Any, definition: Any = None, handlers: dict | None = None) -> ReplayResult:
    """Fail the test with the first divergence if replaying `history` does not reproduce it.
    `history` and `definition` may be file paths, JSON text or parsed values."""
    result = replay(_read(history), json.loads(_read(definition)) if isinstance(definition, (str, Path))
                    and not isinstance(_read(definition), dict) else definition, handlers)
    if not result.ok:
        raise AssertionError(f"replay diverged: {result.divergence}")
    return result
