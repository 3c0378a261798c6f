"""Reading a definition's text: JSON, or YAML for `.asl.yaml` files; dicts are taken as they are.

A definition stays the plain JSON value it was read as: the validator checks it and the compiler
turns it into closures (`statelang.language.compiler`); no model of it is built in between.
"""

from __future__ import annotations

import json

from statelang.language.diagnostics import Diagnostic
from statelang.language.errors import DefinitionError


def load_definition(source: str | bytes | dict, *, yaml: bool = True) -> dict:
    """Read a definition from JSON or YAML text (or take a dict as it is).

    Malformed text is reported the way ValidateStateMachineDefinition reports it, as one
    INVALID_JSON_DESCRIPTION diagnostic, so that callers handle every bad definition alike.
    Text that opens with ``{`` or ``[`` is JSON only; other text is read as YAML too (an
    `.asl.yaml` file), and when it is neither, the YAML parser's line and column are reported.
    The AWS API takes JSON only: it passes ``yaml=False``.
    """
    if isinstance(source, dict):
        return source
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", f"Invalid UTF-8: {e.reason}", "")]) from None
    if not isinstance(source, str):
        raise DefinitionError([Diagnostic("SCHEMA_VALIDATION_FAILED", "Expected value of type Object", "")])
    if not source.strip():
        raise DefinitionError([Diagnostic("MISSING_DESCRIPTION", "Received a null or empty workflow input", "")])
    try:
        value = json.loads(source)
    except json.JSONDecodeError as e:
        if yaml and source.lstrip()[:1] not in ("{", "["):
            return _load_yaml_definition(source, f"{e.msg} at line {e.lineno}, column {e.colno}")
        message = f"{e.msg} at line {e.lineno}, column {e.colno}"
        raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", message, "")]) from None
    except RecursionError:
        raise DefinitionError([Diagnostic("TOO_DEEPLY_NESTED", "The definition is nested too deeply", "")]) from None
    if not isinstance(value, dict):
        raise DefinitionError([Diagnostic("SCHEMA_VALIDATION_FAILED", "Expected value of type Object", "")])
    return value


def json_text_problems(source: str | bytes) -> list[Diagnostic]:
    """[] when `source` is JSON text, else the one diagnostic AWS's API gives text that is not:
    the API takes JSON only, while files and `statelang.run` also take YAML."""
    try:
        load_definition(source, yaml=False)
    except DefinitionError as e:
        if e.diagnostics and e.diagnostics[0].code in ("INVALID_JSON_DESCRIPTION", "MISSING_DESCRIPTION"):
            return e.diagnostics
    return []


def _load_yaml_definition(source: str, json_problem: str) -> dict:
    from statelang.language.yaml_loader import YamlError, load_yaml

    try:
        value = load_yaml(source)
    except YamlError as e:
        message = f"Neither JSON ({json_problem}) nor YAML: {e}"
        raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", message, "")]) from None
    if not isinstance(value, dict):
        # a bare word is not a YAML definition: report it as the JSON it was meant to be
        message = json_problem if not isinstance(value, list) else "Expected value of type Object"
        raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", message, "")])
    return value
