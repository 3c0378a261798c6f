"""Task resources -> Python callables, and how a handler's outcome becomes a task result.

A handler is registered under a bare name ("ValidateOrder"), a Lambda function ARN, a service
integration ARN ("arn:aws:states:::dynamodb:putItem"), "service:action", or a pattern with ``*``
("arn:aws:states:::dynamodb:*", "Fraud*"); "*" alone is the catch-all. A task's handler is the
first of: an exact key, the most specific matching pattern (longest), a local AWS service (when the
resources have one for it), the catch-all. It takes the task input
and, if it accepts a second argument, a `TaskContext`. It returns the result (any JSON value) or
raises: the exception becomes a task failure as Lambda reports one — error = the exception's
class name (or its ``error`` attribute), cause = Lambda's JSON error document.
"""

from __future__ import annotations

import inspect
import json
import re
import traceback
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from statelang.interpreter.commands import TaskOutcome
from statelang.interpreter.frames import ExecutionState
from statelang.language import jsontext
from statelang.language.errors import StatelangError, StatesError

Outcome = TaskOutcome


class TaskSource(Protocol):
    """Where an engine's task outcomes come from, when not from its handlers: a replay answers
    tasks from a recorded history. `invoke` returns the outcome, or None when the answer arrives
    later as a message."""

    def invoke(self, engine: Any, run: ExecutionState, frame_id: str, seq: int, spec: dict) -> Any: ...


@dataclass
class TaskContext:
    """What a handler may learn about the task it runs for."""

    execution_arn: str
    execution_name: str
    state_machine_arn: str
    state_name: str
    retry_count: int
    idempotency_key: str   # stable across retries and across a crash's re-run of the same state entry
    task_token: str | None = None
    map_index: list[int] | None = None
    resource: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    clock: Any = None   # the engine's clock (set by Resources.invoke): a Lambda's deadline counts on it
    # For a Lambda function's task: Lambda's context (aws_request_id, function_name,
    # get_remaining_time_in_millis, ...), whose names this context answers too (see __getattr__).
    lambda_context: Any = None

    def __getattr__(self, name: str) -> Any:
        """Names of Lambda's context object, for a handler written as a Lambda function."""
        inner = self.__dict__.get("lambda_context")
        if inner is None or name.startswith("_"):
            raise AttributeError(f"'TaskContext' object has no attribute {name!r}")
        return getattr(inner, name)


class HandlerError(StatelangError):
    """Raise to fail a task with a chosen error name and cause."""

    def __init__(self, error: str, cause: str = ""):
        super().__init__(cause)
        self.error = error
        self.cause = cause


def _function_name(ref: str) -> str:
    """'arn:aws:lambda:us-east-1:123:function:Name:alias' or '123:function:Name' or 'Name' -> 'Name'."""
    if ":function:" in ref:
        return ref.split(":function:", 1)[1].split(":", 1)[0]
    return ref


CATCH_ALL = "*"
Entry = tuple  # (callable, wants_context, is_async)


def handler(*names: str) -> Callable[[Callable], Callable]:
    """Mark a function as the handler of the named Lambda functions, resources or patterns:
    ``@statelang.handler("ChargeCard", "arn:aws:states:::sqs:*")``. `--handlers module` and
    `Handlers.collect` register it under those names instead of its Python name."""
    if not names or not all(isinstance(n, str) and n for n in names):
        raise TypeError("statelang.handler() takes one or more non-empty names")

    def mark(fn: Callable) -> Callable:
        fn.statelang_handles = (*getattr(fn, "statelang_handles", ()), *names)  # type: ignore[attr-defined]
        return fn
    return mark


def declared_names(fn: Any) -> tuple[str, ...]:
    """The names `@handler` gave `fn` (empty when it has none)."""
    return tuple(getattr(fn, "statelang_handles", ()))


class Handlers(dict):
    """A dict of handlers (usable wherever `handlers=` is taken) with a registering decorator:

        handlers = statelang.Handlers()

        @handlers.handler("ValidateOrder")
        def validate(order): ...
    """

    def handler(self, *names: str) -> Callable[[Callable], Callable]:
        mark = handler(*names)

        def register(fn: Callable) -> Callable:
            for n in names:
                self[n] = fn
            return mark(fn)
        return register

    def collect(self, namespace: Mapping[str, Any]) -> Handlers:
        """Register every `@handler`-marked callable of a module's namespace (``vars(module)``)."""
        for obj in namespace.values():
            for n in declared_names(obj):
                self[n] = obj
        return self


def _pattern(key: str) -> re.Pattern:
    """'*' matches any run of characters (':' and '/' too); nothing else is special."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", key)) + r"\Z")


class Resources:
    def __init__(self, handlers: Mapping[str, Callable] | None = None, region: str = "us-east-1",
                 account_id: str = "123456789012"):
        self.region = region
        self.account_id = account_id
        self._handlers: dict[str, Entry] = {}
        self._patterns: list[tuple[str, re.Pattern, Entry]] = []   # longest (most specific) first
        self._catch_all: Entry | None = None
        # Local AWS services (`statelang.runtime.services.LocalServices`) answer what no handler
        # answers; `context_factory` turns the engine's TaskContext into what a handler receives
        # (a Lambda-shaped context for Lambda functions). Both are set by whoever binds them.
        self.services: Any = None
        self.services_factory: Callable[[], Any] | None = None   # builds `services` when first needed
        self.clock: Any = None
        self.update(handlers or {})

    def register(self, key: str, fn: Callable) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError(f"a handler's name must be a non-empty string (a resource, an ARN or a pattern), "
                            f"not {key!r}")
        if not callable(fn):
            raise TypeError(f"the handler for {key!r} is not callable: {fn!r}")
        wants_context = _arity(fn) >= 2
        is_async = inspect.iscoroutinefunction(fn)
        entry = (fn, wants_context, is_async)
        if key == CATCH_ALL:
            self._catch_all = entry
            return
        if "*" in key:
            self._patterns = [p for p in self._patterns if p[0] != key]
            self._patterns.append((key, _pattern(key), entry))
            self._patterns.sort(key=lambda p: -len(p[0]))
            return
        self._handlers[key] = entry
        if ":function:" in key:
            self._handlers.setdefault(_function_name(key), entry)
        elif key.startswith("arn:aws:states:::"):
            self._handlers.setdefault(key[len("arn:aws:states:::"):], entry)

    def update(self, handlers: Mapping[str, Callable]) -> None:
        if not isinstance(handlers, Mapping):
            raise TypeError(f"handlers must be a mapping of resource names to callables, "
                            f"not {type(handlers).__name__}")
        for k, v in handlers.items():
            self.register(k, v)

    def lookup(self, kind: str, resource: str, args: Any) -> Entry | None:
        """The handler of a task: exact key, pattern, local service, catch-all (see the module doc)."""
        entry = self._exact(kind, resource, args)
        if entry is None and self._patterns:
            keys = self._names(kind, resource, args)
            entry = next((e for _, rx, e in self._patterns if any(rx.match(k) for k in keys)), None)
        if entry is None and self.services is None and self.services_factory is not None \
                and self._catch_all is None and kind not in ("lambda", "activity"):
            # The engine's default local services, built on first need (most machines never ask);
            # a catch-all the caller registered comes before them.
            self.services = self.services_factory()
        if entry is None and self.services is not None:
            fn = self.services.handler_for(kind, resource, args)
            if fn is not None:
                entry = (fn, True, False)
        return entry or self._catch_all

    def _names(self, kind: str, resource: str, args: Any) -> list[str]:
        """What a pattern is matched against: the resource as written and without its .sync or
        .waitForTaskToken suffix; for Lambda functions, the function's name and ARN too."""
        base = resource.split(".waitForTaskToken")[0].split(".sync")[0]
        names = [resource, base]
        if kind == "lambda":
            names.append(_function_name(resource))
        elif kind == "lambda_invoke" and isinstance(args, dict) and isinstance(args.get("FunctionName"), str):
            fname = args["FunctionName"]
            names += [fname, _function_name(fname)]
        return names

    def _exact(self, kind: str, resource: str, args: Any) -> Entry | None:
        h = self._handlers
        if kind == "lambda":
            return h.get(resource) or h.get(_function_name(resource))
        if kind == "lambda_invoke":
            fname = args.get("FunctionName") if isinstance(args, dict) else None
            if fname is None:
                return None
            return h.get(fname) or h.get(_function_name(fname)) or h.get(
                f"arn:aws:lambda:{self.region}:{self.account_id}:function:{_function_name(fname)}")
        base = resource.split(".waitForTaskToken")[0].split(".sync")[0]
        return (h.get(resource) or h.get(base) or h.get(base[len("arn:aws:states:::"):])
                or h.get(resource[len("arn:aws:states:::"):]))

    def _lambda_context(self, kind: str, resource: str, args: Any, spec: dict, ctx: TaskContext,
                        config: Any) -> Any:
        """Lambda's context for a Lambda function's task: the function's own configuration when the
        handler is a template's function, else one made from the task (the state's TimeoutSeconds)."""
        from statelang.runtime.lambda_context import DEFAULT_TIMEOUT_SECONDS, FunctionConfig, lambda_context
        if not isinstance(config, FunctionConfig):
            ref = args.get("FunctionName") if kind == "lambda_invoke" and isinstance(args, dict) else resource
            name = _function_name(str(ref or "function"))
            arn = ref if isinstance(ref, str) and ref.startswith("arn:") else \
                f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            config = FunctionConfig(name, arn, float(spec.get("timeout") or DEFAULT_TIMEOUT_SECONDS))
        return lambda_context(config, ctx, ctx.clock)

    def invoke(self, spec: dict, ctx: TaskContext) -> Outcome:
        kind, resource, args = spec["kind"], spec["resource"], spec["input"]
        entry = self.lookup(kind, resource, args)
        if entry is None:
            return _missing(kind, resource, args, self)
        fn, wants_context, is_async = entry
        if ctx.clock is None:
            ctx.clock = self.clock
        if wants_context and kind in ("lambda", "lambda_invoke") and ctx.lambda_context is None:
            ctx.lambda_context = self._lambda_context(kind, resource, args, spec, ctx, getattr(fn, "config", None))
        payload = args.get("Payload") if kind == "lambda_invoke" and isinstance(args, dict) else args
        if kind == "lambda_invoke" and isinstance(payload, str):
            # Lambda's Invoke takes the Payload as JSON text and decodes it: "\"Hi\"" reaches the
            # function as "Hi", "0" as 0; text that is not JSON is refused (Invoke API reference,
            # InvalidRequestContentException).
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                return TaskOutcome.failed(
                    "Lambda.InvalidRequestContentException",
                    f"Could not parse request body into json: Could not parse payload into json: {exc} "
                    f"(Service: Lambda, Status Code: 400, Request ID: {uuid.uuid4()})")
        # The handler gets its own copy: whatever it mutates must not leak into the history. The
        # payload is the interpreter's JSON value, which jsontext writes and reads as json does.
        payload = jsontext.loads(jsontext.dumps(payload))
        try:
            result = fn(payload, ctx) if wants_context else fn(payload)
            if is_async or inspect.isawaitable(result):
                result = _run_coroutine(result)
        except StatesError as exc:
            return TaskOutcome.failed(exc.error, exc.cause)
        except HandlerError as exc:
            return TaskOutcome.failed(exc.error, exc.cause)
        except Exception as exc:  # noqa: BLE001 - any handler failure is a task failure
            return TaskOutcome.failed(*_lambda_error(exc, kind))
        try:   # checked apart from the call: a TypeError the handler raised is the handler's own
            _json_check(result)
        except (TypeError, ValueError) as exc:
            return TaskOutcome.failed("States.Runtime",
                                      f"The handler for '{resource}' returned a value that is not JSON: {exc}")
        return TaskOutcome.succeeded(result)


# A handler's result is checked to be JSON as json.dumps checks it (a set, an object, a cycle:
# refused), at orjson's speed where orjson can write it.
_json_check = jsontext.encoder(check_circular=True)

_ARITY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _arity(fn: Callable) -> int:
    """How many positional arguments the handler takes, read once per function: every engine
    (a `statelang.run` is one) registers its handlers, and inspect.signature is slow."""
    try:
        return _ARITY[fn]
    except (KeyError, TypeError):   # TypeError: not weakly referable (a bound method, a partial)
        pass
    n = _count_positional(fn)
    try:
        _ARITY[fn] = n
    except TypeError:
        pass
    return n


def _count_positional(fn: Callable) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    n = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def _run_coroutine(coro):
    import asyncio  # here, not at the top: asyncio costs ~10% of a cold `statelang run`
    from concurrent.futures import ThreadPoolExecutor
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from code that is itself inside a running loop: asyncio allows one loop per thread,
    # so the coroutine runs to the end on a thread of its own.
    with ThreadPoolExecutor(1, thread_name_prefix="statelang-async") as pool:
        return pool.submit(asyncio.run, coro).result()


def _lambda_error(exc: BaseException, kind: str) -> tuple[str, str]:
    name = getattr(exc, "error", None) or type(exc).__name__
    if kind in ("lambda", "lambda_invoke"):
        # Lambda's stackTrace lists the function's own frames: the engine's are left out.
        here = __file__.rsplit("/", 1)[0]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
        stack = [line.rstrip() for line in traceback.format_list(frames)][-10:]
        cause = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__,
                            "requestId": str(uuid.uuid4()), "stackTrace": stack}, separators=(",", ":"))
        return name, cause
    return name, str(exc)


def _missing(kind: str, resource: str, args: Any, res: Resources) -> Outcome:
    if kind in ("lambda", "lambda_invoke"):
        fname = args.get("FunctionName") if kind == "lambda_invoke" and isinstance(args, dict) else resource
        fname = fname or "(no FunctionName)"
        arn = fname if fname.startswith("arn:") else \
            f"arn:aws:lambda:{res.region}:{res.account_id}:function:{_function_name(fname)}"
        return TaskOutcome.failed(
            "Lambda.ResourceNotFoundException",
            f"Function not found: {arn} (Service: Lambda, Status Code: 404, "
                f"Request ID: 00000000-0000-0000-0000-000000000000). No handler is registered for "
                f"'{fname}': pass handlers={{'{_function_name(fname)}': callable}}.")
    return TaskOutcome.failed(
        "States.Runtime",
        f"No handler is registered for the resource '{resource}': pass handlers={{'{resource}': callable}}.")
