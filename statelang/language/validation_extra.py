"""Checks AWS makes at creation that a field-by-field schema does not: resources, JSONata syntax,
payload-template collisions, Credentials, and state names unique across the whole machine.

Each exists because a definition AWS refuses at CreateStateMachine must not be accepted here and
then fail later, at run time, with a different error (or a bare Python exception).
"""

from __future__ import annotations

import re
from typing import Any

from statelang.language.validation_fields import Report, is_jsonata, ptr

INVALID_JSONATA = "INVALID_JSONATA_EXPRESSION"
DUPLICATE_STATE_NAME = "DUPLICATE_STATE_NAME"

# The Task resources AWS recognises (developer guide, "Task state" and "Integrating services"):
# an optimised or SDK integration, a Lambda function (with an optional version or alias), an activity.
_PARTITION = r"arn:aws(?:-cn|-us-gov|-iso|-iso-b)?"
_INTEGRATION = re.compile(_PARTITION + r":states:::(?:aws-sdk:[a-z0-9-]+:[A-Za-z0-9]+|[a-z0-9-]+:[A-Za-z0-9]+)"
                          r"(?:\.sync(?::2)?|\.waitForTaskToken)?$")
_LAMBDA = re.compile(_PARTITION + r":lambda:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:function:[A-Za-z0-9_-]{1,64}"
                                  r"(?::(?:\$LATEST|[A-Za-z0-9_-]{1,128}))?$")
_ACTIVITY = re.compile(_PARTITION + r":states:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:activity:[^:\s]{1,80}$")
# statelang's local shorthand: a Task may name a handler registered with `run(handlers=...)`.
_HANDLER_NAME = re.compile(r"^(?!arn:)[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
_BAD_RESOURCE = "Value is not a valid resource ARN"


def check_resource(value: Any, loc: str, r: Report) -> None:
    """AWS: ``SCHEMA_VALIDATION_FAILED: Value is not a valid resource ARN at /States/X/Resource``."""
    if not isinstance(value, str):
        return   # the type check reports it
    if _INTEGRATION.match(value) or _LAMBDA.match(value) or _ACTIVITY.match(value):
        return
    if r.local_handlers and _HANDLER_NAME.match(value):
        return
    r.schema(_BAD_RESOURCE, loc)


def check_credentials(value: Any, loc: str, r: Report) -> None:
    """Task ``Credentials``: an object holding the role to assume, ``RoleArn`` (or ``RoleArn.$``)."""
    if not isinstance(value, dict):
        r.wrong_type(dict, loc)
        return
    for field in value:
        if field not in ("RoleArn", "RoleArn.$"):
            r.unsupported(field, loc)
    if "RoleArn" not in value and "RoleArn.$" not in value:
        r.required(["RoleArn"], loc)


def check_template_collisions(template: Any, loc: str, r: Report, depth: int = 0) -> None:
    """A template key ``a.$`` is renamed ``a``; a sibling ``a`` would be silently overwritten.

    The States Language spec renames such fields; asl-validator (issue #92) and AWS refuse the
    collision rather than guess which of the two the author meant.
    """
    if depth > 200:
        return
    if isinstance(template, dict):
        for k, v in template.items():
            if k.endswith(".$") and k[:-2] in template:
                r.schema(f"The field '{k[:-2]}' is defined twice: as '{k[:-2]}' and as '{k}'", ptr(loc, k))
            check_template_collisions(v, ptr(loc, k), r, depth + 1)
    elif isinstance(template, list):
        for i, v in enumerate(template):
            check_template_collisions(v, ptr(loc, i), r, depth + 1)


_NESTED = ("Branches", "ItemProcessor", "Iterator")


def check_jsonata_syntax(state: dict, loc: str, r: Report) -> None:
    """Every ``{% %}`` string of a JSONata state must parse (nested machines are walked on their own).

    AWS parses each expression when the definition is created and refuses one that does not parse
    with the parser's message, without JSONata's error code (floci-io/floci#2745, measured on AWS):
    ``INVALID_JSONATA_EXPRESSION: Unexpected end of expression at /States/Main/Output``.
    """
    for field, value in state.items():
        if field not in _NESTED:
            _walk_jsonata(value, ptr(loc, field), r, 0)


def _walk_jsonata(value: Any, loc: str, r: Report, depth: int) -> None:
    if depth > 200:
        return
    if isinstance(value, str):
        if is_jsonata(value):
            problem = jsonata_syntax_error(value[2:-2].strip())
            if problem is not None:
                r.add(INVALID_JSONATA, problem, loc)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk_jsonata(v, ptr(loc, k), r, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_jsonata(v, ptr(loc, i), r, depth + 1)


def jsonata_syntax_error(text: str) -> str | None:
    """The parser's message for an expression that does not parse, or None."""
    from jsonata import Jsonata
    from jsonata.jexception import JException
    if not text:
        return "Unexpected end of expression"
    try:
        Jsonata(text)
    except JException as exc:
        message = str(exc)
        return message[:-len(exc.error)].rstrip() if message.endswith(exc.error) else message
    except (RecursionError, ValueError, TypeError, IndexError, AttributeError) as exc:
        return f"Invalid expression: {exc}"
    return None


def check_unique_names(machine: Any, r: Report) -> None:
    """State names are unique across the whole machine, nested branches and processors included
    (States Language spec: "State names MUST be unique within the scope of the whole state
    machine"); each repeat is reported at its own location."""
    seen: set[str] = set()

    def walk(m: Any, loc: str, depth: int) -> None:
        if depth > 100 or not isinstance(m, dict) or not isinstance(m.get("States"), dict):
            return
        for name, state in m["States"].items():
            here = ptr(loc, "States", name)
            if name in seen:
                r.add(DUPLICATE_STATE_NAME, f"Duplicate State name: {name}", here)
            seen.add(name)
            if not isinstance(state, dict):
                continue
            branches = state.get("Branches")
            for i, b in enumerate(branches if isinstance(branches, list) else []):
                walk(b, ptr(here, "Branches", i), depth + 1)
            key = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
            if key in state:   # both at once is reported by the Map checks; walk one
                walk(state[key], ptr(here, key), depth + 1)

    walk(machine, "", 0)


__all__ = ["check_resource", "check_credentials", "check_template_collisions", "check_jsonata_syntax",
           "jsonata_syntax_error", "check_unique_names", "INVALID_JSONATA", "DUPLICATE_STATE_NAME"]
