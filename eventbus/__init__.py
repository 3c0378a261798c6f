"""An EventBridge-style event bus; this package's core is event-pattern matching."""

from __future__ import annotations

from statelang.eventbus.matcher import PlainPatternIndex
from statelang.eventbus.patterns import CompiledPattern, InvalidEventPattern, compile_pattern
from statelang.eventbus.ruler import PatternIndex
from statelang.language import jsontext

__all__ = [
    "CompiledPattern",
    "EventBridgeError",
    "EventBus",
    "InvalidEventPattern",
    "PatternIndex",
    "PlainPatternIndex",
    "compile_pattern",
    "install",
    "parse_schedule",
    "run_until_idle",
    "test_event_pattern",
]


def test_event_pattern(pattern: dict | str, event: dict | str) -> bool:
    """AWS TestEventPattern: does ``pattern`` match ``event`` (the full event envelope)?

    The pattern is validated first, so an invalid pattern raises `InvalidEventPattern` even
    when the event is irrelevant, as the API does.
    """
    compiled = compile_pattern(pattern)
    if isinstance(event, (str, bytes, bytearray)):
        try:
            event = jsontext.loads_bounded(event)
        except jsontext.JSONDepthError as exc:
            raise ValueError(f"Parameter Event is not valid: {exc}.") from None
        except ValueError:
            raise ValueError("Parameter Event is not valid.") from None
    if not isinstance(event, dict):
        raise ValueError("Parameter Event is not valid.")
    return compiled.matches(event)


# pytest collects module-level callables named test_*; this one is API, not a test.
test_event_pattern.__test__ = False  # type: ignore[attr-defined]


# The bus sits on the pattern matcher above; imported last so that eventbus.bus can import it.
from statelang.eventbus.bus import EventBus  # noqa: E402
from statelang.eventbus.integration import install, run_until_idle  # noqa: E402
from statelang.eventbus.schedules import parse_schedule  # noqa: E402
from statelang.eventbus.targets import EventBridgeError  # noqa: E402
