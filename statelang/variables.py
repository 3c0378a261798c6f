"""Variables (`Assign`): compiling the field in JSONPath mode.

PROVISIONAL: in JSONPath states, `.$` values of Assign read the state's result ($) — to be
confirmed and completed together with the JSONata mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import paths
from .env import Env


def compile_jsonpath_assign(assign: dict, state_type: str) -> Callable[[Any, Any, Env], dict]:
    template = paths.compile_template(assign, "Assign")

    def fn(data: Any, result: Any, env: Env) -> dict:
        return template(result if result is not None else data, env)

    return fn
