"""Static validation of a definition: every problem at once, as ValidateStateMachineDefinition does.

`validate` never raises for a bad definition, whatever JSON it is given: it returns diagnostics.
Parallel branches and Map item processors are validated as machines of their own, so a
transition can only name a state of its own machine; one that crosses a Parallel or Map boundary
is therefore reported as a missing target, as AWS reports it.

Locations are JSON pointers (``/States/P/Branches/0/States/X/Next``).  AWS itself writes array
indexes in brackets (``/States/C/Choices[0]/Next``); `to_aws_location` converts for callers that
must answer exactly as the AWS API does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from statelang.language.diagnostics import Diagnostic
from statelang.language.errors import DefinitionError
from statelang.language.loading import load_definition
from statelang.language.validation_extra import check_unique_names
from statelang.language.validation_fields import (
    JSONPATH,
    MAX_SECONDS,
    MISSING_END,
    MISSING_TARGET,
    SCHEMA,
    Report,
    ptr,
)
from statelang.language.validation_rules import LANGUAGES, check_state

__all__ = ["validate", "errors_only", "to_aws_location"]

MACHINE_FIELDS = {
    "StateMachine": frozenset({"Comment", "StartAt", "States", "Version", "TimeoutSeconds", "QueryLanguage"}),
    "Branch": frozenset({"Comment", "StartAt", "States"}),
    "ItemProcessor": frozenset({"Comment", "StartAt", "States", "ProcessorConfig"}),
    "Iterator": frozenset({"Comment", "StartAt", "States", "ProcessorConfig"}),
}
MAX_NESTING = 100  # Parallel/Map levels; deeper is refused rather than risking the interpreter's stack
_ARRAY_FIELDS = re.compile(r"/(Branches|Choices|Catch|Retry|ErrorEquals|And|Or)/(\d+)(?=/|$)")


def validate(definition: str | bytes | dict, *, local_handlers: bool = True) -> list[Diagnostic]:
    """Every problem of the definition, in document order; an empty list means it can run.

    `local_handlers` lets a Task's Resource be a bare handler name, the shorthand `run` accepts;
    the AWS API (ValidateStateMachineDefinition, CreateStateMachine) passes False and so refuses
    every Resource that is not an ARN AWS recognises, as AWS does.
    """
    repeated: list[Diagnostic] = []
    if isinstance(definition, str | bytes | bytearray):
        text = definition
        try:
            definition = load_definition(definition)
        except DefinitionError as e:
            return e.diagnostics
        repeated = _repeated_keys(text if isinstance(text, str) else bytes(text).decode())
    r = Report(local_handlers=local_handlers)
    top = JSONPATH
    if isinstance(definition, dict) and "QueryLanguage" in definition:
        lang = definition["QueryLanguage"]
        if lang in LANGUAGES:
            top = lang
        else:
            r.not_allowed_value(lang, LANGUAGES, "/QueryLanguage")
    _machine(definition, "", "StateMachine", top, r)
    check_unique_names(definition, r)
    found = list(dict.fromkeys([*repeated, *r.items]))
    if not any(d.severity == "ERROR" for d in found):
        found += _compiles(definition)
    return found


def _compiles(definition: dict) -> list[Diagnostic]:
    """The last word: a definition that passed every check must also compile, or `run` would
    refuse what `validate` accepted. A failure here is a check missing above; it is still
    reported as a diagnostic rather than left to surface as an exception at run time."""
    from statelang.language.compiler import CompiledMachine
    from statelang.language.errors import StatelangError
    try:
        CompiledMachine(definition)
    except (StatelangError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return [Diagnostic(SCHEMA, str(exc), "")]
    return []


_DUPLICATE = "DUPLICATE_STATE_NAME"


def _repeated_keys(text: str) -> list[Diagnostic]:
    """A state name written twice in one States object: JSON parsing would silently keep the last."""
    out: list[Diagnostic] = []

    def hook(pairs: list) -> dict:
        d = dict(pairs)
        if len(d) != len(pairs) and any(isinstance(v, dict) and "Type" in v for _, v in pairs):
            names = [k for k, _ in pairs]
            for name in sorted({k for k in names if names.count(k) > 1}):
                out.append(Diagnostic(_DUPLICATE, f"Duplicate State name: {name}", f"/States/{name}"))
        return d

    try:
        json.loads(text, object_pairs_hook=hook)
    except (ValueError, RecursionError):
        return []
    return out


def errors_only(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "ERROR"]


def to_aws_location(pointer: str) -> str:
    """``/States/C/Choices/0/Next`` -> ``/States/C/Choices[0]/Next``, as AWS prints locations."""
    out = _ARRAY_FIELDS.sub(r"/\1[\2]", pointer)
    return out.replace("~1", "/").replace("~0", "~")


def _machine(m: Any, loc: str, kind: str, top: str, r: Report, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        r.add("TOO_DEEPLY_NESTED", "The states are too deeply nested", loc)
        return
    if not isinstance(m, dict):
        r.wrong_type(dict, loc)
        return
    for field in m:
        if field not in MACHINE_FIELDS[kind]:
            r.unsupported(field, loc)
    missing = [f for f in ("StartAt", "States") if f not in m]
    if missing:
        r.required(missing, loc)
    r.typed(m, "Comment", str, loc)
    if kind == "StateMachine":
        r.typed(m, "Version", str, loc)
        r.bounded(m, "TimeoutSeconds", loc, minimum=1, maximum=MAX_SECONDS)
    elif "ProcessorConfig" in m and kind != "Branch":
        from statelang.language.validation_map import check_processor_config

        check_processor_config(m["ProcessorConfig"], ptr(loc, "ProcessorConfig"), r)
    states = m.get("States")
    if "States" in m and not isinstance(states, dict):
        r.wrong_type(dict, ptr(loc, "States"))
    if not isinstance(states, dict):
        states = {}
    elif not states and "States" in m:
        r.schema("Minimum number of properties is 1", ptr(loc, "States"))

    def nested(sub: Any, sub_loc: str, sub_kind: str) -> None:
        # States inside a Parallel or Map take the language of the whole machine, not the
        # Parallel's or Map's own QueryLanguage.
        _machine(sub, sub_loc, sub_kind, top, r, depth + 1)

    for name, state in states.items():
        check_state(name, state, ptr(loc, "States", name), top, r, nested)
    start = m.get("StartAt")
    start_ok = False
    if "StartAt" in m:
        if not isinstance(start, str):
            r.wrong_type(str, ptr(loc, "StartAt"))
        elif start not in states:
            r.add(MISSING_TARGET, f"Missing 'StartAt' target: {start}", ptr(loc, "StartAt"))
        else:
            start_ok = True
    _graph(states, loc, start if start_ok else None, r)


def _transitions(state: Any, loc: str) -> list[tuple[str, str]]:
    """(target, location) of every transition a state declares, by the fields its type allows."""
    if not isinstance(state, dict):
        return []
    kind, out = state.get("Type"), []
    if kind in ("Pass", "Task", "Wait", "Parallel", "Map") and isinstance(state.get("Next"), str):
        out.append((state["Next"], ptr(loc, "Next")))
    if kind == "Choice":
        choices = state.get("Choices")
        for i, rule in enumerate(choices if isinstance(choices, list) else []):
            if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
                out.append((rule["Next"], ptr(loc, "Choices", i, "Next")))
        if isinstance(state.get("Default"), str):
            out.append((state["Default"], ptr(loc, "Default")))
    if kind in ("Task", "Parallel", "Map") and isinstance(state.get("Catch"), list):
        for i, catcher in enumerate(state["Catch"]):
            if isinstance(catcher, dict) and isinstance(catcher.get("Next"), str):
                out.append((catcher["Next"], ptr(loc, "Catch", i, "Next")))
    return out


def _is_terminal(state: Any) -> bool:
    if not isinstance(state, dict):
        return False
    kind = state.get("Type")
    return kind in ("Succeed", "Fail") or (kind in ("Pass", "Task", "Wait", "Parallel", "Map")
                                           and state.get("End") is True)


def _graph(states: dict, loc: str, start: str | None, r: Report) -> None:
    """Missing targets, then either 'no terminal state' or the unreachable states (AWS reports
    MISSING_END_STATE instead of, not besides, unreachable states)."""
    edges: dict[str, list[str]] = {}
    for name, state in states.items():
        edges[name] = []
        for target, where in _transitions(state, ptr(loc, "States", name)):
            if target in states:
                edges[name].append(target)
            else:
                r.add(MISSING_TARGET, f"Missing 'Next' target: {target}", where)
    if not states:
        return
    if not any(_is_terminal(s) for s in states.values()):
        r.add(MISSING_END, "Workflow has no terminal state", loc)
        return
    if start is None:
        return
    seen, todo = {start}, [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    for name in states:
        if name not in seen:
            r.add(MISSING_TARGET, f'State "{name}" is not reachable.', ptr(loc, "States", name))
