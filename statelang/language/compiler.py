"""Turn a validated definition into closures, once.

The compiled machine holds, for every states table (the top level, each Parallel branch, each
Map's item processor), the compiled states keyed by name. Each compiled state (a `CState`,
shared with the JSONata compiler in `compiled_state`) carries its data processing as two closures
so the interpreter does not care which query language wrote them:

* ``prepare(input, env) -> value``: what the state works on (InputPath then Parameters or Result
  for a Pass/Task/Parallel; InputPath for the others);
* ``complete(input, result, env) -> output``: ResultSelector, ResultPath, OutputPath.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from statelang.language import errors as E
from statelang.language import paths, payload_templates
from statelang.language.compiled_state import CState, classify_resource, map_processor
from statelang.language.env import Env
from statelang.language.errors import PathError, StatesError

Fn = Callable[[Any, Env], Any]


def _identity(data: Any, env: Env) -> Any:
    return data


def _const(value: Any) -> Fn:
    """A constant (a Pass state's Result). Shared, not copied: nothing downstream mutates a value —
    ResultPath copies on write, and handlers get their own copy of their input."""
    return lambda data, env: value


class CompiledMachine:
    """All states tables of one definition. Table keys: "" for the top level, "<state>/<i>" for
    branch i of a Parallel, "<state>" for a Map's processor (nested keys joined with '/')."""

    def __init__(self, definition: dict):
        self.definition = definition
        self.tables: dict[str, dict[str, CState]] = {}
        self.start_at: dict[str, str] = {}
        self.timeout_seconds = definition.get("TimeoutSeconds")
        self.query_language = definition.get("QueryLanguage", "JSONPath")
        self._compile_table("", definition, self.query_language)
        # Whether any Map runs distributed: an ending execution then closes its map runs.
        self.has_distributed_map = any(getattr(st, "distributed", False)
                                       for table in self.tables.values() for st in table.values())

    def state(self, table: str, name: str) -> CState:
        return self.tables[table][name]

    def _compile_table(self, key: str, machine: dict, ql: str) -> None:
        self.start_at[key] = machine["StartAt"]
        table: dict[str, CState] = {}
        self.tables[key] = table
        for name, d in machine["States"].items():
            state_ql = d.get("QueryLanguage", ql)
            if state_ql == "JSONata":
                from statelang.language import jsonata
                table[name] = jsonata.compile_state(self, key, name, d)
            else:
                table[name] = compile_jsonpath_state(self, key, name, d)
            st = table[name]
            st.query_language = state_ql
            sub_ql = state_ql
            if st.type == "Parallel":
                for i, branch in enumerate(d["Branches"]):
                    self._compile_table(_join(key, f"{name}/{i}"), branch, branch.get("QueryLanguage", sub_ql))
            elif st.type == "Map":
                proc = d.get("ItemProcessor") or d.get("Iterator")
                self._compile_table(_join(key, name), proc, proc.get("QueryLanguage", sub_ql))


def _join(parent: str, child: str) -> str:
    return f"{parent}/{child}" if parent else child


def _number_or_path(d: dict, field: str) -> Fn | None:
    if field in d:
        v = d[field]
        return lambda data, env: v
    if field + "Path" in d:
        p = paths.compile_path(d[field + "Path"])
        return p
    return None


def _map_limit(d: dict, field: str) -> Fn | None:
    """A Map's MaxConcurrency / ToleratedFailureCount / ToleratedFailurePercentage, checked when it
    comes from a path. The texts are LocalStack's, written against AWS's recorded answers:
    'The MaxConcurrencyPath field refers to value "x" which is not a valid integer: $.mc',
    "Expected non-negative integer for MaxConcurrency, got '-1' instead.",
    "ToleratedFailureCount cannot be negative.", "ToleratedFailurePercentage must be between 0 and 100."
    """
    get = _number_or_path(d, field)
    if get is None or field + "Path" not in d:
        return get
    path = d[field + "Path"]
    percentage = field == "ToleratedFailurePercentage"

    def fn(data: Any, env: Env) -> Any:
        value = get(data, env)
        number = value
        if isinstance(value, str):   # a numeric string is read as the number it spells
            try:
                number = float(value) if percentage else int(value)
            except ValueError:
                number = value
        if percentage and isinstance(number, int) and not isinstance(number, bool):
            number = float(number)
        if isinstance(number, bool) or not isinstance(number, float if percentage else int):
            shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            kind = "float" if percentage else "integer"
            raise StatesError(E.RUNTIME, f'The {field}Path field refers to value "{shown}" which is not a '
                                         f"valid {kind}: {path}")
        if percentage and not 0 <= number <= 100:
            raise StatesError(E.RUNTIME, "ToleratedFailurePercentage must be between 0 and 100.")
        if number < 0:
            raise StatesError(E.RUNTIME, "ToleratedFailureCount cannot be negative." if field != "MaxConcurrency"
                              else f"Expected non-negative integer for MaxConcurrency, got '{number}' instead.")
        return number
    return fn


def compile_jsonpath_state(machine: CompiledMachine, table: str, name: str, d: dict) -> CState:
    st = CState(name, table, d)
    t = st.type
    input_path = paths.compile_input_path(d["InputPath"]) if "InputPath" in d else _identity
    output_path = paths.compile_output_path(d["OutputPath"]) if "OutputPath" in d else _identity
    result_path = paths.compile_result_path(d["ResultPath"] if "ResultPath" in d else paths.MISSING)
    st.result_path = result_path
    params = payload_templates.compile_template(d["Parameters"], "Parameters") if "Parameters" in d else None
    selector = payload_templates.compile_template(d["ResultSelector"], "ResultSelector") if "ResultSelector" in d else None
    if "Assign" in d:
        from statelang.language.variables import compile_jsonpath_assign
        st.assign = compile_jsonpath_assign(d["Assign"], t, selector)

    if t == "Pass" and "Result" in d:
        result = _const(d["Result"])
        st.prepare = lambda data, env: result(None, env)
    elif params is not None and t != "Map":   # a Map's Parameters is its per-item selector
        st.prepare = lambda data, env: params(input_path(data, env), env)
    else:
        st.prepare = input_path

    if t in ("Choice", "Wait", "Succeed"):
        st.complete = lambda data, effective, env: output_path(effective, env)
    elif selector is not None:
        st.complete = lambda data, result, env: output_path(result_path(data, selector(result, env)), env)
    elif output_path is _identity:
        st.complete = lambda data, result, env: result_path(data, result)
    else:
        st.complete = lambda data, result, env: output_path(result_path(data, result), env)

    if t == "Task":
        st.resource = d["Resource"]
        st.kind, st.wait_for_token, st.sync = classify_resource(st.resource)
        st.timeout = _number_or_path(d, "TimeoutSeconds")
        st.heartbeat = _number_or_path(d, "HeartbeatSeconds")
    elif t == "Choice":
        from statelang.language.choice import compile_choices
        st.choices = compile_choices(d["Choices"])
        st.default = d.get("Default")
    elif t == "Wait":
        if "Seconds" in d:
            secs = d["Seconds"]
            st.wait_until = ("seconds", lambda data, env: secs)
        elif "SecondsPath" in d:
            st.wait_until = ("seconds", paths.compile_path(d["SecondsPath"]))
        elif "Timestamp" in d:
            ts = d["Timestamp"]
            st.wait_until = ("timestamp", lambda data, env: ts)
        else:
            st.wait_until = ("timestamp", paths.compile_path(d["TimestampPath"]))
    elif t == "Fail":
        st.error = _fail_field(d, "Error")
        st.cause = _fail_field(d, "Cause")
    elif t == "Parallel":
        st.branches = len(d["Branches"])
    elif t == "Map":
        st.items = paths.compile_path(d["ItemsPath"]) if "ItemsPath" in d else _identity
        sel = d.get("ItemSelector", d.get("Parameters"))
        st.item_selector = payload_templates.compile_template(sel, "ItemSelector") if sel is not None else None
        st.max_concurrency = _map_limit(d, "MaxConcurrency")
        st.tolerated_count = _map_limit(d, "ToleratedFailureCount")
        st.tolerated_percentage = _map_limit(d, "ToleratedFailurePercentage")
        map_processor(st, d)
    return st


def _fail_field(d: dict, field: str) -> Fn | None:
    if field in d:
        v = d[field]
        return lambda data, env: v
    if field + "Path" in d:
        expr = d[field + "Path"]
        if expr.startswith("States."):   # ErrorPath/CausePath may be an intrinsic function call
            from statelang.language.intrinsics import compile_intrinsic
            return compile_intrinsic(expr)
        get = paths.compile_path(expr)

        def fn(data: Any, env: Env) -> Any:
            # AWS (localstack#11951, quoting AWS): "The JSONPath '$.ErrorX' specified for the field
            # 'ErrorPath' could not be found in the input '<input>'".
            try:
                return get(data, env)
            except PathError:
                raise StatesError(E.RUNTIME, f"The JSONPath '{expr}' specified for the field '{field}Path' "
                                             f"could not be found in the input '{paths.compact_json(data)}'") from None
        return fn
    return None
