"""Workflow variables: JSONPath-mode `Assign` and the static rules for variable names.

What a JSONPath `Assign` reads: its ``.$`` values are paths over the state's *result* — the
ResultSelector's output when there is one, else the raw result; for a Pass the `Result` (or the
`Parameters` output, or the effective input); for a Choice or Wait the effective input; in a
`Catch` the error output. ``$$`` is the context object and ``$name`` the variables as they were
when the state was entered (AWS evaluates Assign side by side with the output, so a state never
reads its own assignments). The recorded AWS runs in localstack's
tests/aws/services/stepfunctions/v2/assign (BASE_ASSIGN_FROM_RESULT: a Pass with Result
{"answer": 42} and "theAnswer.$": "$.answer" assigns 42) pin this.

JSONata-mode Assign is compiled by `statelang.language.jsonata`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statelang.language import payload_templates
from statelang.language.env import Env

RESERVED = frozenset({"states"})  # $states is reserved for JSONata's state data
MAX_NAME_LENGTH = 80


def compile_jsonpath_assign(assign: dict, state_type: str,
                            selector: Callable[[Any, Env], Any] | None = None
                            ) -> Callable[[Any, Any, Env], dict]:
    """fn(input, result, env) -> the variables to assign.

    `selector` is the state's compiled ResultSelector (Task, Parallel, Map): Assign reads the
    selected result, not the raw one.
    """
    template = payload_templates.compile_template(assign, "Assign")
    if selector is None:
        return lambda data, result, env: template(result, env)
    return lambda data, result, env: template(selector(result, env), env)


def variable_name(key: str, jsonpath: bool) -> str:
    """The variable a key of Assign names: in JSONPath mode a ".$" suffix marks a path value."""
    return key[:-2] if jsonpath and key.endswith(".$") else key


def check_name(name: str) -> str | None:
    """Why `name` cannot be a variable, or None when it can.

    A name must be usable as ``$name`` in both query languages, so it follows the identifier rules
    (a letter or underscore, then letters, digits or underscores, Unicode included) and may not be
    the reserved ``states``.
    """
    if not name:
        return "a variable name must not be empty"
    if name in RESERVED:
        return f"'{name}' is a reserved variable name"
    if not name.isidentifier():
        return f"'{name}' is not a valid variable name"
    if len(name) > MAX_NAME_LENGTH:
        return f"the variable name '{name[:20]}...' is longer than {MAX_NAME_LENGTH} characters"
    return None


def check_assign(assign: Any, query_language: str = "JSONPath") -> list[str]:
    """Static problems of one Assign field (for the validator)."""
    if not isinstance(assign, dict):
        if query_language == "JSONata" and isinstance(assign, str) and assign.startswith("{%"):
            return []
        return ["Assign must be a JSON object"]
    problems = []
    jsonpath = query_language != "JSONata"
    for key in assign:
        why = check_name(variable_name(key, jsonpath))
        if why:
            problems.append(why)
    return problems
