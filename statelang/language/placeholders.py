"""``${...}`` left in a definition: a DefinitionSubstitutions placeholder nobody substituted.

AWS rejects no such definition (the text is a legal string) and the machine then fails at run
time with an ARN like ``${OrderFunctionArn}``; so validation warns, naming the field. JSONata's
``{% ... %}`` and States.Format's ``{}`` contain no ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from statelang.language.diagnostics import Diagnostic

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
CODE = "UNSUBSTITUTED_PLACEHOLDER"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and PLACEHOLDER.search(k):
                yield f"{where}/{_escape(k)}", k
            yield from _strings(v, f"{where}/{_escape(str(k))}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}/{i}")


def placeholder_warnings(definition: Any) -> list[Diagnostic]:
    """One WARNING per field holding a ``${...}``, located by JSON pointer."""
    out = []
    for where, text in _strings(definition, ""):
        names = PLACEHOLDER.findall(text)
        if names:
            listed = ", ".join(f"${{{n}}}" for n in dict.fromkeys(names))
            out.append(Diagnostic(CODE, f"{listed} is not substituted: give it a value in DefinitionSubstitutions "
                                        "(or the run's --sub NAME=VALUE)", where, "WARNING"))
    return out


def substitute_text(text: str, values: dict[str, Any]) -> str:
    """Replace ``${name}`` in definition text by its value (JSON text of non-strings); names with
    no value stay as they are, for `placeholder_warnings` to report."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in values:
            return m.group(0)
        v = values[name]
        return v if isinstance(v, str) else _json(v)
    return PLACEHOLDER.sub(one, text)


def substitute_value(value: Any, values: dict[str, Any]) -> Any:
    """`substitute_text` applied to every string (and key) of a parsed definition."""
    if isinstance(value, str):
        return substitute_text(value, values)
    if isinstance(value, dict):
        return {substitute_text(k, values) if isinstance(k, str) else k: substitute_value(v, values)
                for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_value(v, values) for v in value]
    return value


def _json(v: Any) -> str:
    import json
    return json.dumps(v, separators=(",", ":"))
