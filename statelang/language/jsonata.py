"""QueryLanguage JSONata: compile a state's fields into the closures the interpreter calls.

A field value is a JSON template: a string ``"{% expr %}"`` is an expression, objects and arrays
are walked so that nested strings may be expressions too, everything else passes through. Each
expression is parsed once, here, into a `jsonata.Jsonata` object and evaluated many times with the
reserved ``$states`` variable ({input, result, errorOutput, context}) and the workflow variables
bound as ``$name``.

AWS fails the state with States.QueryEvaluationError when an expression returns nothing (JSON has
no *undefined*) or throws; the cause names the expression and the field it sits in, with ``/``
before each object key and ``[i]`` for each array index (``Output/a/b[0]``, ``Catch[1]/Assign/x``).
The interpreter adds AWS's "An error occurred while executing the state ..." prefix.

``$now()`` and ``$millis()`` read the state's entered time from the context object, not the wall
clock, so that virtual clocks and replays see the same values.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jsonata import Jsonata
from jsonata.jexception import JException
from jsonata.utils import Utils

from statelang.language import jsonata_functions
from statelang.language.compiled_state import ChosenRule, CState, classify_resource, map_processor
from statelang.language.env import Env
from statelang.language.errors import QueryEvaluationError, StaticError
from statelang.language.jsontext import json_type

_EXPR = re.compile(r"^\{%(.*)%\}$", re.S)
_local = threading.local()
_CURRENT = Jsonata.CURRENT  # jsonata-python reads the evaluating expression's timestamp here

Bindings = dict[str, Any]
Template = Callable[[Bindings], Any]


def expression_text(value: Any) -> str | None:
    """The expression inside a "{% ... %}" string, or None for any other value."""
    if isinstance(value, str):
        m = _EXPR.match(value)
        if m:
            return m.group(1).strip()
    return None


class _Jsonata(Jsonata):
    """jsonata-python stamps each evaluation with the wall clock; take the state's time instead."""

    @property
    def timestamp(self) -> int:
        now = getattr(_local, "now_ms", None)
        return now if now is not None else self._wall

    @timestamp.setter
    def timestamp(self, value: int) -> None:
        self._wall = value


class Expression:
    """One compiled "{% %}" expression of one field; calling it evaluates with `bindings`."""

    __slots__ = ("text", "field", "_j")

    def __init__(self, text: str, field: str):
        self.text = text
        self.field = field
        try:
            self._j = _Jsonata(text)
        except JException as exc:
            raise StaticError(f"The JSONata expression '{text}' specified for the field '{field}' "
                              f"is invalid: {exc.error}: {exc}") from None
        self._j.set_output_convert_nulls(False)
        jsonata_functions.register(self._j)

    def raw(self, bindings: Bindings) -> Any:
        """Evaluate; None means *undefined*, JSON null comes back as None only via `__call__`."""
        _CURRENT.jsonata = self._j
        try:
            value = self._j.evaluate(None, bindings)
        except JException as exc:
            raise self._threw(f". {exc.error}: {_message(exc)}") from None
        except jsonata_functions.FunctionError as exc:
            raise self._threw(f". {exc.code}: {exc.message}") from None
        except RecursionError:
            raise self._threw(": Stack overflow error") from None
        except QueryEvaluationError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
            raise self._threw(f": {exc}") from None
        if value is None:
            return _UNDEFINED
        return Utils.convert_nulls(value)

    def __call__(self, bindings: Bindings) -> Any:
        value = self.raw(bindings)
        if value is _UNDEFINED:
            # AWS: "The JSONata expression '$states.input.pushLocation' specified for the field
            # 'Arguments/Input/pushLocation' returned nothing (undefined)."
            raise QueryEvaluationError(f"The JSONata expression '{self.text}' specified for the field "
                                       f"'{self.field}' returned nothing (undefined).")
        return value

    def _threw(self, tail: str) -> QueryEvaluationError:
        return QueryEvaluationError(f"The JSONata expression '{self.text}' specified for the field "
                                    f"'{self.field}' threw an error during evaluation{tail}")


_UNDEFINED = object()


def _message(exc: JException) -> str:
    text = str(exc)
    return text[:-len(exc.error)].rstrip() if text.endswith(exc.error) else text


def _const(value: Any) -> Template:
    if value is None or isinstance(value, (str, int, float, bool)):
        return lambda b: value
    text = json.dumps(value)
    return lambda b: json.loads(text)


def _is_dynamic(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_is_dynamic(v) for v in value.values())
    if isinstance(value, list):
        return any(_is_dynamic(v) for v in value)
    return expression_text(value) is not None


def compile_template(value: Any, field: str) -> Template:
    """A JSON value whose strings may be "{% %}" expressions -> fn(bindings) -> JSON value."""
    text = expression_text(value)
    if text is not None:
        return Expression(text, field)
    if not _is_dynamic(value):
        return _const(value)
    if isinstance(value, dict):
        parts = [(k, compile_template(v, f"{field}/{k}")) for k, v in value.items()]
        return lambda b: {k: fn(b) for k, fn in parts}
    items = [compile_template(v, f"{field}[{i}]") for i, v in enumerate(value)]
    return lambda b: [fn(b) for fn in items]


def bindings(env: Env, input: Any, **states: Any) -> Bindings:
    """$states and the workflow variables, as one JSONata binding frame."""
    b = dict(env.variables) if env.variables else {}
    states["input"] = input
    states["context"] = env.context
    b["states"] = states
    _enter(env)
    return b


def _enter(env: Env) -> None:
    """Publish the evaluating state's env (for $random/$uuid) and entered time (for $now)."""
    jsonata_functions.set_env(env)
    entered = (env.context.get("State") or {}).get("EnteredTime") if env.context else None
    ms = None
    if entered:
        try:
            ms = int(datetime.fromisoformat(entered.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            ms = None
    _local.now_ms = ms


# -- the fields ---------------------------------------------------------------------------------
def _number_field(d: dict, field: str) -> Callable[[Any, Env], Any] | None:
    """TimeoutSeconds, HeartbeatSeconds, MaxConcurrency, ...: a number or an expression."""
    if field not in d:
        return None
    tpl = compile_template(d[field], field)
    if expression_text(d[field]) is None:
        v = d[field]
        return lambda data, env: v

    def fn(data: Any, env: Env) -> Any:
        value = tpl(bindings(env, data))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # cause text unconfirmed against AWS; the error name is AWS's
            raise QueryEvaluationError(f"The JSONata expression '{expression_text(d[field])}' specified "
                                       f"for the field '{field}' returned an unexpected result type. "
                                       f"Expected 'number', but was '{json_type(value)}' for value: "
                                       f"{_dump(value)}")
        return value
    return fn


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _assign(spec: Any, field: str, with_result: bool) -> Callable[[Any, Any, Env], dict]:
    tpl = compile_template(spec, field)

    def fn(data: Any, result: Any, env: Env) -> dict:
        b = bindings(env, data, result=result) if with_result else bindings(env, data)
        value = tpl(b)
        if not isinstance(value, dict):
            raise QueryEvaluationError(f"The field '{field}' must evaluate to a JSON object.")
        return value
    return fn


def compile_state(machine: Any, table: str, name: str, d: dict) -> CState:
    st = CState(name, table, d)
    t = st.type
    text = json.dumps(d)
    st.uses_context = "context" in text or "$now" in text or "$millis" in text
    has_result = t in ("Task", "Parallel", "Map")

    output = compile_template(d["Output"], "Output") if "Output" in d else None
    if "Assign" in d:
        st.assign = _assign(d["Assign"], "Assign", has_result)

    if t in ("Task", "Parallel") and "Arguments" in d:
        args = compile_template(d["Arguments"], "Arguments")
        st.prepare = lambda data, env: args(bindings(env, data))
    else:
        st.prepare = lambda data, env: data

    if has_result:
        if output is None:
            st.complete = lambda data, result, env: result
        else:
            st.complete = lambda data, result, env: output(bindings(env, data, result=result))
    elif output is None:
        st.complete = lambda data, result, env: data
    else:
        st.complete = lambda data, result, env: output(bindings(env, data))

    st.catch = [_catcher(c, i) for i, c in enumerate(d.get("Catch") or [])]

    if t == "Task":
        st.resource = d["Resource"]
        st.kind, st.wait_for_token, st.sync = classify_resource(st.resource)
        st.timeout = _number_field(d, "TimeoutSeconds")
        st.heartbeat = _number_field(d, "HeartbeatSeconds")
    elif t == "Choice":
        st.choices = _compile_choices(d["Choices"])
        st.default = d.get("Default")
    elif t == "Wait":
        field = "Seconds" if "Seconds" in d else "Timestamp"
        fn = _number_field(d, "Seconds") if field == "Seconds" else _string_field(d, "Timestamp")
        st.wait_until = ("seconds" if field == "Seconds" else "timestamp", fn)
    elif t == "Fail":
        st.error = _string_field(d, "Error")
        st.cause = _string_field(d, "Cause")
    elif t == "Parallel":
        st.branches = len(d["Branches"])
    elif t == "Map":
        _compile_map(st, d)
    return st


def _string_field(d: dict, field: str) -> Callable[[Any, Env], Any] | None:
    if field not in d:
        return None
    tpl = compile_template(d[field], field)
    return lambda data, env: tpl(bindings(env, data))


def _catcher(c: dict, i: int) -> dict:
    """A Catch clause: with JSONata its Output and Assign read $states.errorOutput, and without an
    Output the state's output is the error output."""
    entry = dict(c)
    out = compile_template(c["Output"], f"Catch[{i}]/Output") if "Output" in c else None
    if out is None:
        entry["_output"] = lambda data, err, env: err
    else:
        entry["_output"] = lambda data, err, env: out(bindings(env, data, errorOutput=err))
    if "Assign" in c:
        tpl = compile_template(c["Assign"], f"Catch[{i}]/Assign")
        entry["_assign"] = lambda data, err, env: tpl(bindings(env, data, errorOutput=err))
    return entry


def _compile_choices(rules: list) -> Callable[[Any, Env], Any]:
    compiled = []
    for i, rule in enumerate(rules):
        where = f"Choices[{i}]"
        cond = rule.get("Condition", False)
        cond_fn = compile_template(cond, f"{where}/Condition")
        out = compile_template(rule["Output"], f"{where}/Output") if "Output" in rule else None
        out_fn = (lambda o: lambda data, eff, env: o(bindings(env, data)))(out) if out else None
        assign_fn = _assign(rule["Assign"], f"{where}/Assign", False) if "Assign" in rule else None
        compiled.append((cond, cond_fn, f"{where}/Condition", rule["Next"], out_fn, assign_fn))

    def choose(effective: Any, env: Env) -> ChosenRule | None:
        b = None
        for cond, cond_fn, field, nxt, out_fn, assign_fn in compiled:
            if isinstance(cond, bool):
                value = cond
            else:
                b = b if b is not None else bindings(env, effective)
                value = cond_fn(b)
            if not isinstance(value, bool):
                # cause text unconfirmed against AWS; the error name is AWS's
                raise QueryEvaluationError(f"The JSONata expression '{expression_text(cond)}' specified "
                                           f"for the field '{field}' returned an unexpected "
                                           f"result type. Expected 'boolean', but was "
                                           f"'{json_type(value)}' for value: {_dump(value)}")
            if value:
                return ChosenRule(nxt, out_fn, assign_fn)
        return None
    return choose


def _compile_map(st: CState, d: dict) -> None:
    if "Items" in d:
        items = compile_template(d["Items"], "Items")
        expr = expression_text(d["Items"])

        def items_fn(data: Any, env: Env) -> list:
            value = items(bindings(env, data))
            if not isinstance(value, list):
                # AWS (as recorded by localstack's JSONata Map tests): "The JSONata expression
                # '<expr>' specified for the field 'Items' returned an unexpected result type.
                # Expected 'array', but was '<type>' for value: <value>"
                raise QueryEvaluationError(f"The JSONata expression '{expr}' specified for the field "
                                           f"'Items' returned an unexpected result type. Expected "
                                           f"'array', but was '{json_type(value)}' for value: {_dump(value)}")
            return value
        st.items = items_fn
    else:
        st.items = lambda data, env: data
    if "ItemSelector" in d:
        sel = compile_template(d["ItemSelector"], "ItemSelector")
        st.item_selector = lambda data, env: sel(bindings(env, data))
    st.max_concurrency = _number_field(d, "MaxConcurrency")
    st.tolerated_count = _number_field(d, "ToleratedFailureCount")
    st.tolerated_percentage = _number_field(d, "ToleratedFailurePercentage")
    map_processor(st, d)
