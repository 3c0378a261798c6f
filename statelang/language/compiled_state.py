"""The compiled state: what both query languages' compilers produce and the interpreter reads.

`statelang.language.compiler` compiles JSONPath states and the machine's tables, and hands JSONata
states to `statelang.language.jsonata`; both build the same `CState`, so it lives here, below
both, with the pieces of a state that do not depend on the query language (what a Task's
Resource names, what a Map's processor says).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from statelang.language import paths
from statelang.language.variables import compile_jsonpath_assign

__all__ = ["CState", "ChosenRule", "classify_resource", "map_processor"]


class ChosenRule(NamedTuple):
    """The JSONata Choice rule that matched: its Next, and its own Output and Assign (compiled,
    or None). A JSONPath Choice answers with the Next alone."""

    next: str
    output: Callable[[Any, Any, Any], Any] | None
    assign: Callable[[Any, Any, Any], Any] | None


class CState:
    """One compiled state. Type-specific fields are set only where they apply."""

    __slots__ = (
        "name", "type", "table", "next", "end", "definition", "uses_context", "prepare", "complete",
        "retry", "catch", "result_path", "assign",
        # Task
        "resource", "kind", "integration", "wait_for_token", "sync", "timeout", "heartbeat",
        "credentials",
        # Choice
        "choices", "default",
        # Wait
        "wait_until",
        # Fail
        "error", "cause",
        # Parallel / Map
        "branches", "items", "item_selector", "max_concurrency", "tolerated_count",
        "tolerated_percentage", "processor", "distributed", "label", "item_reader", "item_batcher",
        "result_writer", "execution_type", "query_language",
    )

    def __init__(self, name: str, table: str, d: dict):
        for s in self.__slots__:
            setattr(self, s, None)
        self.name = name
        self.type = d["Type"]
        self.table = table
        self.definition = d
        self.next = d.get("Next")
        self.end = bool(d.get("End", False))
        self.retry = d.get("Retry") or []
        self.catch = [_catcher(c) for c in d.get("Catch") or []]
        self.uses_context = "$$" in json.dumps(d)
        self.query_language = "JSONPath"


def _catcher(c: dict) -> dict:
    """A Catch clause as JSONPath reads it (ResultPath, Assign). A JSONata state replaces the list
    with its own reading; this one still runs for it first, so a JSONata catcher's ``.$`` Assign
    keys are refused at compile time as they always were."""
    out = dict(c, _result_path=paths.compile_result_path(c["ResultPath"] if "ResultPath" in c else paths.MISSING))
    if "Assign" in c:
        out["_assign"] = compile_jsonpath_assign(c["Assign"], "Catch")
    return out


def classify_resource(resource: str) -> tuple[str, bool, bool]:
    """(kind, wait_for_token, sync) of a Task's Resource.

    kind: "lambda_invoke" (the optimised integration), "lambda" (a function ARN or a bare handler
    name), "activity", "service" (arn:aws:states:::service:action).
    """
    wait = resource.endswith(".waitForTaskToken")
    sync = ".sync" in resource
    if resource.startswith("arn:aws:states:::lambda:invoke"):
        return "lambda_invoke", wait, sync
    if resource.startswith("arn:aws:states:::"):
        return "service", wait, sync
    if ":activity:" in resource:
        return "activity", False, False
    return "lambda", False, False


def map_processor(st: CState, d: dict) -> None:
    """What a Map's processor and distributed-mode fields say, the same in both query languages."""
    proc = d.get("ItemProcessor") or d.get("Iterator") or {}
    cfg = proc.get("ProcessorConfig") or {}
    st.distributed = cfg.get("Mode") == "DISTRIBUTED"
    st.execution_type = cfg.get("ExecutionType", "STANDARD")
    st.label = d.get("Label")
    st.item_reader = d.get("ItemReader")
    st.item_batcher = d.get("ItemBatcher")
    st.result_writer = d.get("ResultWriter")
