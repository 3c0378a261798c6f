"""AWS Step Functions Local's MockConfigFile, answered by ordinary task handlers.

A mock configuration names, per state machine and test case, which mocked response each Task
*state* gets; the engine finds handlers by *resource*. So for every resource that a mocked state
uses we register one dispatcher: it looks at ``ctx.state_name``, answers mocked states from the
file and hands every other state to the handler the caller registered for that resource (AWS's
"HybridPath": unmocked states call the real service).

Which response answers a call is chosen by the invocation number of that state in that execution
— a counter per (execution, state), not the retry count: AWS's note that a Map state with
MaxConcurrency above 1 may give *different* mocked responses to its iterations from one run to
the next only makes sense for a counter shared by the iterations.

The file's shape is checked once, up front, with messages that name where the problem is
(``MockedResponses.MockedLambdaRetry."1-2".Throw: needs a string Cause``), because a typo found
in the middle of an execution surfaces as a puzzling task failure instead.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from statelang.language.errors import StatelangError
from statelang.runtime.resources import HandlerError, Resources, TaskContext

_KEY = re.compile(r"^(\d+)(?:-(\d+))?$")
# What a dispatcher tells the engine through TaskContext.extra: "my return value is the service's
# whole response" — not to be wrapped in a Lambda Invoke response again, and the final result of a
# .waitForTaskToken task (Step Functions Local makes up the token itself for mocked tasks).
MOCKED = "mocked_response"


# True once the engine reads ctx.extra[MOCKED] and keeps a mocked Lambda Invoke response as it is;
# until then a mocked lambda:invoke state is answered with the response's Payload, which the engine
# wraps in a Lambda Invoke response of its own.
ENGINE_KEEPS_MOCKED_RESPONSES = True


class MockConfigError(StatelangError, ValueError):
    """A mock configuration that cannot be used; the message says where and why."""


# -- loading and checking ---------------------------------------------------------------------

def load_mock_config(source: str | os.PathLike | Mapping) -> dict:
    """A path to a MockConfigFile (or its already-parsed dict) -> the checked configuration."""
    if not isinstance(source, (str, os.PathLike)):
        config = json.loads(json.dumps(source))   # a parsed file; our copy, checked below
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise MockConfigError(f"cannot read the mock config {path}: {exc.strerror}") from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MockConfigError(f"the mock config {path} is not valid JSON: {exc.msg} at line "
                                  f"{exc.lineno}, column {exc.colno}") from None
    _check(config)
    return config


def _where(*parts: str) -> str:
    return ".".join(p if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) else json.dumps(p) for p in parts)


def _check(config: Any) -> None:
    """The file's shape, by the pydantic models of `statelang.runtime.mock_models`; then what
    the shape cannot say: each test case names a defined response, and the invocation keys."""
    from pydantic import ValidationError

    from statelang.runtime.mock_models import MockConfigFile
    try:
        model = MockConfigFile.model_validate(config)
    except ValidationError as exc:
        raise MockConfigError("; ".join(_problem(e) for e in exc.errors())) from None
    for name in model.MockedResponses:
        parse_response(config["MockedResponses"][name], "MockedResponses", name)
    for sm, body in model.StateMachines.items():
        for case, states in body.TestCases.items():
            for state, ref in states.items():
                if ref not in model.MockedResponses:
                    raise MockConfigError(f"{_where('StateMachines', sm, 'TestCases', case, state)}: the mocked "
                                          f"response {ref!r} is not defined in MockedResponses")


def _problem(error: dict) -> str:
    """One of pydantic's errors as "Where.It.Is: what is wrong"."""
    where = _where(*(str(part) for part in error["loc"])) or "the mock config"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_response(response: dict, *where: str) -> list[tuple[int, int, dict]]:
    """One mocked response (its shape already checked) -> [(first, last, {"Return": v} |
    {"Throw": {...}})], sorted by invocation."""
    ranges = []
    for key, answer in response.items():
        at = _where(*where, key)
        m = _KEY.match(key)
        if not m:
            raise MockConfigError(f"{at}: a key must be an invocation number such as \"0\" or an "
                                  f"inclusive range such as \"1-2\"")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if last < first:
            raise MockConfigError(f"{at}: the range ends before it starts")
        ranges.append((first, last, answer))
    ranges.sort(key=lambda r: r[0])
    for (a0, a1, _), (b0, b1, _) in zip(ranges, ranges[1:], strict=False):
        if b0 <= a1:
            raise MockConfigError(f"{_where(*where)}: the invocations {a0}-{a1} and {b0}-{b1} overlap")
    return ranges


# -- handlers ---------------------------------------------------------------------------------

def handlers_from_mock_config(config: str | os.PathLike | Mapping, state_machine_name: str,
                              test_case: str | None, definition: str | dict | None = None, *,
                              handlers: Mapping[str, Callable] | None = None) -> dict:
    """Handlers that answer the mocked states of `test_case` and pass the others on.

    `definition` tells which resource each mocked state calls; `handlers` are the real handlers
    that unmocked states (and unmocked states sharing a mocked resource) keep using. The result
    holds those handlers too, so it can be given to `statelang.run` as it is.
    """
    config = load_mock_config(config)
    machines = config.get("StateMachines", {})
    if state_machine_name not in machines:
        known = ", ".join(sorted(machines)) or "none"
        raise MockConfigError(f"the mock config has no state machine {state_machine_name!r} "
                              f"under StateMachines (it has: {known})")
    cases = machines[state_machine_name]["TestCases"]
    if test_case is None:
        if len(cases) != 1:
            raise MockConfigError(f"name a test case of {state_machine_name!r}: one of "
                                  f"{', '.join(sorted(cases)) or 'none'}")
        test_case = next(iter(cases))
    if test_case not in cases:
        raise MockConfigError(f"the state machine {state_machine_name!r} has no test case {test_case!r} "
                              f"(it has: {', '.join(sorted(cases)) or 'none'})")
    mocked = {state: (ref, parse_response(config["MockedResponses"][ref], "MockedResponses", ref))
              for state, ref in cases[test_case].items()}
    if definition is None:
        raise MockConfigError("handlers_from_mock_config needs the definition: mocks are keyed by "
                              "state name, handlers by the resource each state calls")
    states = _task_states(_load(definition))
    real = dict(handlers or {})
    fallback = Resources(real)
    by_key: dict[str, dict[str, tuple]] = {}
    for state, entry in mocked.items():
        d = states.get(state)
        if d is None:
            raise MockConfigError(f"{_where('StateMachines', state_machine_name, 'TestCases', test_case, state)}"
                                  f": the definition has no Task state {state!r}")
        by_key.setdefault(_handler_key(state, d), {})[state] = entry
    out = dict(real)
    counter = _Counter()
    for key, per_state in by_key.items():
        out[key] = _dispatcher(key, per_state, counter, fallback, states)
    return out


def _load(definition: str | dict) -> dict:
    return json.loads(definition) if isinstance(definition, str) else definition


def _task_states(machine: dict) -> dict[str, dict]:
    """Every Task state of the machine, in branches and item processors too, by name."""
    found: dict[str, dict] = {}
    for name, d in (machine.get("States") or {}).items():
        if d.get("Type") == "Task":
            found[name] = d
        for branch in d.get("Branches") or []:
            found.update(_task_states(branch))
        proc = d.get("ItemProcessor") or d.get("Iterator")
        if proc:
            found.update(_task_states(proc))
    return found


def _handler_key(state: str, d: dict) -> str:
    """The first key the engine looks a state's handler up by (see Resources.lookup)."""
    resource = d["Resource"]
    if not resource.startswith("arn:aws:states:::lambda:invoke"):
        return resource
    args = d.get("Parameters") or d.get("Arguments") or {}
    name = args.get("FunctionName")
    if not isinstance(name, str) or "{%" in name:
        raise MockConfigError(f"the state {state!r} names its function at run time; a mock can only "
                              f"stand in for a FunctionName written in the definition")
    return name


class _Counter:
    """Invocations so far per (execution, state); thread-safe since Map iterations run at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}

    def next(self, execution: str, state: str) -> int:
        with self._lock:
            n = self._seen.get((execution, state), 0)
            self._seen[(execution, state)] = n + 1
            return n


def _dispatcher(key: str, per_state: dict, counter: _Counter, fallback: Resources,
                states: dict) -> Callable:
    def dispatch(payload: Any, ctx: TaskContext) -> Any:
        entry = per_state.get(ctx.state_name)
        if entry is None:
            return _pass_on(key, payload, ctx, fallback, states)
        ref, ranges = entry
        n = counter.next(ctx.execution_arn, ctx.state_name)
        answer = next((a for first, last, a in ranges if first <= n <= last), None)
        if answer is None:
            raise HandlerError("States.Runtime",
                               f"The mocked response {ref!r} has no answer for invocation {n} of the "
                               f"state {ctx.state_name!r}: a mocked Task needs a response for every "
                               f"invocation.")
        if "Throw" in answer:
            raise HandlerError(answer["Throw"]["Error"], answer["Throw"]["Cause"])
        ctx.extra[MOCKED] = True
        value = json.loads(json.dumps(answer["Return"]))
        if _wraps_lambda_response(ctx, states) and isinstance(value, dict) and "Payload" in value:
            # Until the engine honours ctx.extra[MOCKED] it wraps what we return in a Lambda
            # Invoke response; return the Payload so the result is not wrapped twice.
            return value["Payload"]
        return value

    dispatch.__name__ = f"mock_{re.sub(r'[^A-Za-z0-9_]', '_', key)}"
    return dispatch


def _wraps_lambda_response(ctx: TaskContext, states: dict) -> bool:
    d = states.get(ctx.state_name) or {}
    resource = d.get("Resource", "")
    return resource == "arn:aws:states:::lambda:invoke" and not ENGINE_KEEPS_MOCKED_RESPONSES


def _pass_on(key: str, payload: Any, ctx: TaskContext, fallback: Resources, states: dict) -> Any:
    d = states.get(ctx.state_name) or {}
    resource = d.get("Resource", key)
    kind = "lambda_invoke" if resource.startswith("arn:aws:states:::lambda:invoke") else \
        "service" if resource.startswith("arn:aws:states:::") else "lambda"
    entry = fallback.lookup(kind, resource, {"FunctionName": key} if kind == "lambda_invoke" else payload)
    if entry is None:
        raise HandlerError("States.Runtime",
                           f"The state {ctx.state_name!r} is not mocked in this test case and no handler "
                           f"is registered for {key!r}.")
    fn, wants_context, _ = entry
    return fn(payload, ctx) if wants_context else fn(payload)
