"""What every construct's checks share: which fields an object may hold in each query language, and
the checks of path and payload-template fields (the `paths` and `payload_templates` modules own
their grammar).

The per-state checks (`validation_rules`) and the per-construct ones (`validation_choice`,
`validation_map`, `validation_retry`) all build on these, so they sit below all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statelang.language import paths, payload_templates
from statelang.language.errors import StaticError
from statelang.language.validation_fields import JSONATA, JSONPATH, Report, ptr

# Fields that only JSONPath states may use, and fields that only JSONata states may use.
JSONPATH_ONLY = frozenset({
    "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "ItemsPath",
    "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "ErrorPath",
    "CausePath", "MaxConcurrencyPath", "ToleratedFailurePercentagePath", "ToleratedFailureCountPath",
    "MaxItemsPerBatchPath", "MaxInputBytesPerBatchPath",
})
JSONATA_ONLY = frozenset({"Arguments", "Output", "Items", "Condition"})

# Paths that may be JSON null: {} for InputPath and OutputPath, "discard the result" for ResultPath.
NULLABLE_PATHS = ("InputPath", "OutputPath", "ResultPath")

MachineCheck = Callable[[Any, str, str], None]
"""Checks a nested machine (a Parallel branch, a Map's processor): (machine, location, kind)."""


def check_path_field(obj: dict, field: str, loc: str, r: Report, *, reference: bool) -> None:
    value = obj[field]
    where = ptr(loc, field)
    if value is None and field in NULLABLE_PATHS:
        return
    if not isinstance(value, str):
        r.wrong_type(str, where)
        return
    if field in ("ErrorPath", "CausePath") and value.startswith("States."):
        # These two may also hold an intrinsic function call; the template checker knows those.
        if payload_templates.check_template({f"{field}.$": value}):
            r.schema(f"The value for the field '{field}' must be a valid ReferencePath "
                     "or a valid intrinsic function call", where)
        return
    if paths.check_path(value, reference) is not None or (field == "ResultPath" and _not_result_path(value)):
        kind = "ReferencePath" if reference else "JSONPath"
        r.schema(f"The value for the field '{field}' must be a valid {kind}", where)


def _not_result_path(value: str) -> bool:
    """ResultPath writes into the state input: ``$$`` and variables (``$foo``) cannot be targets."""
    try:
        paths.compile_result_path(value)
    except StaticError:
        return True
    return False


def check_template_field(obj: dict, field: str, loc: str, r: Report) -> None:
    for suffix, message in payload_templates.check_template(obj[field]):
        r.schema(message, ptr(loc, field) + suffix)


def check_fields(obj: dict, allowed: frozenset[str], loc: str, lang: str, r: Report) -> list[str]:
    """Report unsupported fields; returns the fields that passed, for the per-field checks."""
    ok = []
    for field in obj:
        if field not in allowed:
            r.unsupported(field, loc)
        elif lang == JSONATA and field in JSONPATH_ONLY:
            r.language(lang, field, ptr(loc, field))
        elif lang == JSONPATH and field in JSONATA_ONLY:
            r.language(lang, field, ptr(loc, field))
        else:
            ok.append(field)
    return ok
