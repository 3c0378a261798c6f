"""The TestState API: run one state, alone, and report what it did as AWS does.

The state is run by the real engine, not by a second interpreter: it becomes the only real state
of a small wrapper machine whose other states are terminal stubs named after the state's
transition targets, so whichever stub is entered *is* the next state. Retry and Catch are taken
off the copy because TestState makes one attempt and only *says* what would happen next
(RETRIABLE with the matching retrier, CAUGHT_ERROR with the catcher's output and Next); those
decisions come from the same pure functions the interpreter uses (`statelang.retry`).

inspectionData (DEBUG and TRACE) is rebuilt step by step with the compiled paths — InputPath,
Parameters, ResultSelector, ResultPath — from the state's input and the result the history
recorded, since the history keeps only the ends of that pipeline.
"""

from __future__ import annotations

import json
from typing import Any

from statelang.interpreter.retry import decide_retry, find_catcher
from statelang.language import paths, payload_templates
from statelang.language.env import Env
from statelang.language.errors import StatelangError
from statelang.language.jsontext import json_type

_TESTABLE = {"Task", "Pass", "Wait", "Choice", "Succeed", "Fail", "Map", "Parallel"}
_STUB = {"Type": "Succeed"}


class TestStateError(StatelangError, ValueError):
    """A request TestState rejects; `code` is the API exception's name."""

    __test__ = False   # not a pytest test class, whatever its name says

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def test_state(definition: str | dict, input: Any = None, *, role_arn: str | None = None,
               inspection_level: str = "INFO", reveal_secrets: bool = False,
               variables: dict | None = None, handlers: dict | None = None, mock: dict | None = None,
               state_name: str | None = None, context: Any = None,
               state_configuration: dict | None = None, engine: Any = None) -> dict:
    """Run one state on `input`; the answer has TestState's fields (JSON values as JSON text).

    With `engine` (the TestState API of ``engine.client()``), the state's task calls the engine's
    own handlers, as AWS's TestState calls the real resource; the run itself happens on a private
    in-memory engine, so TestState leaves no execution behind, as on AWS.
    """
    from statelang.runtime.engine import Engine
    from statelang.runtime.run import run
    if inspection_level not in ("INFO", "DEBUG", "TRACE"):
        raise TestStateError("ValidationException", f"inspectionLevel must be INFO, DEBUG or TRACE, "
                                                    f"not {inspection_level!r}")
    doc = _json(definition, "definition")
    input = {} if input is None else _json(input, "input")
    variables = _json(variables, "variables") if variables is not None else {}
    name, state, query_language = _pick_state(doc, state_name)
    if mock is not None and state["Type"] not in ("Task", "Map", "Parallel"):
        raise TestStateError("ValidationException", "a mock can only be given for a Task, Map or Parallel state")
    if mock is not None and state["Type"] != "Task":
        raise TestStateError("ValidationException", "mocking a Map or Parallel state is not supported here yet")
    if context is not None and mock is None:
        raise TestStateError("ValidationException", "context may only be given together with a mock")
    config = state_configuration or {}

    body = {k: v for k, v in state.items() if k not in ("Retry", "Catch")}
    if query_language == "JSONata":
        body["QueryLanguage"] = "JSONata"
    states: dict[str, Any] = {name: body}
    for target in _targets(state):
        states.setdefault(target, dict(_STUB))
    wrapper: dict[str, Any] = {"StartAt": name, "States": states}
    start_input = input
    if variables:
        # Variables come in through a Pass state's Assign, the one way a machine gets them.
        wrapper["StartAt"] = "TestState.Variables"
        states["TestState.Variables"] = {
            "Type": "Pass", "Next": name, "OutputPath": "$.input",
            "Assign": {f"{k}.$": f"$.variables['{k}']" for k in variables}}
        start_input = {"input": input, "variables": variables}
    hs = dict(handlers or {})
    if mock is not None and state["Type"] == "Task":
        hs.update(_mock_handler(name, state, mock))
    private = None
    if engine is not None and mock is None:
        private = Engine(db="memory", clock="virtual", eager="always", account_id=engine.account_id,
                         region=engine.region)
        private.resources = engine.resources
    try:
        ex = run(wrapper, start_input, handlers=hs, clock="virtual", state_machine_name="TestState",
                 engine=private)
    finally:
        if private is not None:
            private.close()

    answer: dict[str, Any] = {}
    entered = _entered_after(ex.history, name)
    exited = _event(ex.history, name, "Exited")
    if exited is not None and entered is not None:
        out = json.loads(exited["output"])
        answer.update(status="SUCCEEDED", output=paths.compact_json(out), nextState=entered)
    elif exited is not None:
        answer.update(status="SUCCEEDED", output=paths.compact_json(ex.output))
    else:
        answer.update(_failure(state, input, ex.error or "States.Runtime", ex.cause, config, name))
    if inspection_level != "INFO":
        answer["inspectionData"] = _inspection(state, query_language, input, variables, ex.history,
                                               name, answer)
    return answer


def _json(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        code = "InvalidDefinition" if what == "definition" else "InvalidExecutionInput"
        raise TestStateError(code, f"{what} is not valid JSON: {exc.msg}") from None


def _pick_state(doc: dict, state_name: str | None) -> tuple[str, dict, str]:
    """(name, state definition, query language) of the state under test."""
    if state_name is None:
        if not isinstance(doc, dict) or "Type" not in doc:
            raise TestStateError("InvalidDefinition", "the definition must be one state (with a Type) "
                                                      "unless stateName names a state of a whole machine")
        name = "TestState"   # a lone state has no name of its own
        state, ql = doc, doc.get("QueryLanguage", "JSONPath")
    else:
        if not isinstance(doc, dict):
            raise TestStateError("InvalidDefinition", f"the definition must be a JSON object (a state machine "
                                                      f"holding the state {state_name!r}), not {_kind(doc)}")
        found = _find(doc, state_name, doc.get("QueryLanguage", "JSONPath"))
        if found is None:
            raise TestStateError("ValidationException", f"the definition has no state named {state_name!r}")
        name, (state, ql) = state_name, found
        if not isinstance(state, dict):
            raise TestStateError("InvalidDefinition", f"the state {state_name!r} must be a JSON object, "
                                                      f"not {_kind(state)}")
    if state.get("Type") not in _TESTABLE:
        raise TestStateError("InvalidDefinition", f"a {state.get('Type')!r} state cannot be tested")
    return name, state, state.get("QueryLanguage", ql)


def _kind(value: Any) -> str:
    """'an array', 'a string', ... (and plain 'null'), for "must be a JSON object, not ..."."""
    kind = json_type(value)
    return kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind


def _find(machine: Any, name: str, ql: str) -> tuple[Any, str] | None:
    """The state `name` anywhere in `machine` (branches and item processors too), with its query
    language; parts that are not what the language says (a States that is no object) hold none."""
    states = machine.get("States") if isinstance(machine, dict) else None
    if not isinstance(states, dict):
        return None
    for n, d in states.items():
        if n == name:
            return d, ql
        if not isinstance(d, dict):
            continue
        branches = d.get("Branches")
        subs = list(branches) if isinstance(branches, list) else []
        subs.append(d.get("ItemProcessor") or d.get("Iterator"))
        for sub in subs:
            if isinstance(sub, dict):
                got = _find(sub, name, sub.get("QueryLanguage", d.get("QueryLanguage", ql)))
                if got:
                    return got
    return None


def _targets(state: dict) -> list[str]:
    out = [state[k] for k in ("Next", "Default") if k in state]
    out += [c["Next"] for c in state.get("Choices") or [] if "Next" in c]
    return out


def _mock_handler(name: str, state: dict, mock: dict) -> dict:
    """The mock stands in for the state's resource, as MockConfigFile responses do."""
    from statelang.runtime import mocks
    if "errorOutput" in mock:
        err = mock["errorOutput"]
        response = {"0-999999": {"Throw": {"Error": err.get("error", ""), "Cause": err.get("cause", "")}}}
    elif "result" in mock:
        response = {"0-999999": {"Return": _json(mock["result"], "mock result")}}
    else:
        raise TestStateError("ValidationException", "a mock needs a result or an errorOutput")
    config = {"StateMachines": {"TestState": {"TestCases": {"Mock": {name: "R"}}}},
              "MockedResponses": {"R": response}}
    return mocks.handlers_from_mock_config(config, "TestState", "Mock", {"States": {name: state}})


def _event(history: list[dict], name: str, suffix: str) -> dict | None:
    for e in history:
        if e["type"].endswith("State" + suffix):
            d = e.get("stateExitedEventDetails" if suffix == "Exited" else "stateEnteredEventDetails") or {}
            if d.get("name") == name:
                return d
    return None


def _entered_after(history: list[dict], name: str) -> str | None:
    """The state entered after `name` exited: the wrapper's stub named after the real target."""
    seen = False
    for e in history:
        d = e.get("stateExitedEventDetails") or {}
        if d.get("name") == name:
            seen = True
        elif seen and e["type"].endswith("StateEntered"):
            return (e.get("stateEnteredEventDetails") or {}).get("name")
    return None


def _failure(state: dict, input: Any, error: str, cause: str | None, config: dict, name: str) -> dict:
    """FAILED, or what Retry or Catch would do with the error: RETRIABLE or CAUGHT_ERROR."""
    retriers = state.get("Retry") or []
    counts = [0] * len(retriers)
    done = config.get("retrierRetryCount", 0)
    decided = decide_retry(retriers, counts, error)
    if decided is not None and done:
        counts[decided[0]] = done
        decided = decide_retry(retriers, counts, error)
    out: dict[str, Any] = {"error": error, **({"cause": cause} if cause is not None else {})}
    if decided is not None:
        return {"status": "RETRIABLE", "nextState": name, **out,
                "_errorDetails": {"retryIndex": decided[0], "retryBackoffIntervalSeconds": int(decided[1])}}
    catchers = state.get("Catch") or []
    catcher = find_catcher(catchers, error)
    if catcher is not None:
        error_output = {"Error": error, "Cause": cause} if cause is not None else {"Error": error}
        rp = paths.compile_result_path(catcher["ResultPath"] if "ResultPath" in catcher else paths.MISSING)
        return {"status": "CAUGHT_ERROR", "nextState": catcher["Next"], **out,
                "output": paths.compact_json(rp(input, error_output)),
                "_errorDetails": {"catchIndex": catchers.index(catcher)}}
    return {"status": "FAILED", **out}


def _inspection(state: dict, ql: str, input: Any, variables: dict, history: list[dict], name: str,
                answer: dict) -> dict:
    """The data-processing steps one by one, as DEBUG shows them."""
    data: dict[str, Any] = {"input": paths.compact_json(input)}
    details = answer.pop("_errorDetails", None)
    if details:
        data["errorDetails"] = details
    assigned = dict(variables)
    exited = _event(history, name, "Exited") or {}
    assigned.update({k: json.loads(v) for k, v in (exited.get("assignedVariables") or {}).items()})
    if assigned:
        data["variables"] = paths.compact_json(assigned)
    env = Env({}, variables)
    result = _recorded_result(state, history)
    if ql == "JSONata":
        scheduled = _scheduled(history)
        if scheduled is not None:
            data["afterArguments"] = scheduled
        if result is not paths.MISSING:
            data["result"] = paths.compact_json(result)
        return data
    t = state["Type"]
    try:
        after_input = paths.compile_input_path(state.get("InputPath", paths.MISSING))(input, env)
        data["afterInputPath"] = paths.compact_json(after_input)
        if t in ("Task", "Pass", "Parallel") and "Parameters" in state:
            effective = payload_templates.compile_template(state["Parameters"], "Parameters")(after_input, env)
        else:
            effective = after_input
        data["afterParameters"] = paths.compact_json(effective)
        if t == "Pass":
            result = state["Result"] if "Result" in state else effective
        if result is paths.MISSING or t in ("Choice", "Wait", "Succeed", "Fail"):
            return data
        data["result"] = paths.compact_json(result)
        if "ResultSelector" in state:
            result = payload_templates.compile_template(state["ResultSelector"], "ResultSelector")(result, env)
        data["afterResultSelector"] = paths.compact_json(result)
        rp = paths.compile_result_path(state["ResultPath"] if "ResultPath" in state else paths.MISSING)
        data["afterResultPath"] = paths.compact_json(rp(input, result))
    except Exception:  # noqa: BLE001 - the failing step is already the answer's error; stop there
        pass
    return data


def _scheduled(history: list[dict]) -> str | None:
    for e in history:
        if e["type"] == "TaskScheduled":
            return e["taskScheduledEventDetails"].get("parameters")
    return None


def _recorded_result(state: dict, history: list[dict]) -> Any:
    """The state's raw result as the history recorded it (a task's output)."""
    for e in history:
        for key in ("taskSucceededEventDetails", "lambdaFunctionSucceededEventDetails"):
            if e["type"].endswith("Succeeded") and key in e:
                return json.loads(e[key]["output"])
    return paths.MISSING
