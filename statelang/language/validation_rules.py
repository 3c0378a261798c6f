"""Checks of one state: which fields its type allows, their types, ranges and combinations.

The field tables follow the States Language spec and the AWS developer guide.  A field that a
type supports only in the other query language gets AWS's QueryLanguage message rather than the
plain "not supported", because that tells the author what to change.
"""

from __future__ import annotations

from typing import Any

from statelang.language import validation_extra as extra
from statelang.language.validation_choice import check_choices
from statelang.language.validation_common import (
    NULLABLE_PATHS,
    MachineCheck,
    check_fields,
    check_path_field,
    check_template_field,
)
from statelang.language.validation_fields import (
    INVALID_STATE_NAME,
    JSONATA,
    JSONPATH,
    MAX_SECONDS,
    STATE_NAME_MAX,
    Report,
    is_jsonata,
    is_timestamp,
    is_type,
    ptr,
)
from statelang.language.validation_map import check_map
from statelang.language.validation_retry import check_catch, check_retry

STATE_TYPES = ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
LANGUAGES = (JSONPATH, JSONATA)

_COMMON = {"Type", "Comment", "QueryLanguage"}
_IO = {"InputPath", "OutputPath", "Output", "Assign"}
_FLOW = {"Next", "End"}
FIELDS: dict[str, frozenset[str]] = {k: frozenset(v | _COMMON) for k, v in {
    "Pass": _IO | _FLOW | {"Parameters", "Result", "ResultPath"},
    "Task": _IO | _FLOW | {"Resource", "Parameters", "Arguments", "ResultSelector", "ResultPath", "Retry",
                           "Catch", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
                           "HeartbeatSecondsPath", "Credentials"},
    "Choice": _IO | {"Choices", "Default"},
    "Wait": _IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": {"InputPath", "OutputPath", "Output"},
    "Fail": {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _IO | _FLOW | {"Branches", "Parameters", "Arguments", "ResultSelector", "ResultPath",
                               "Retry", "Catch"},
    "Map": _IO | _FLOW | {"ItemProcessor", "Iterator", "ItemsPath", "Items", "ItemSelector", "Parameters",
                          "Arguments", "ItemReader", "ItemBatcher", "ResultWriter", "ResultSelector",
                          "ResultPath", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailurePercentage",
                          "ToleratedFailurePercentagePath", "ToleratedFailureCount",
                          "ToleratedFailureCountPath", "Label", "Retry", "Catch"},
}.items()}

_REFERENCE_PATHS = ("ResultPath", "ItemsPath", "SecondsPath", "TimestampPath", "TimeoutSecondsPath",
                    "HeartbeatSecondsPath", "ErrorPath", "CausePath", "MaxConcurrencyPath",
                    "ToleratedFailurePercentagePath", "ToleratedFailureCountPath")
_TEMPLATES = ("Parameters", "ResultSelector", "ItemSelector")

# --- one state -----------------------------------------------------------------------------------
def check_state_name(name: str, loc: str, r: Report) -> None:
    if len(name) > STATE_NAME_MAX:
        r.add(INVALID_STATE_NAME, f"State name is too long: maximum length is {STATE_NAME_MAX}", loc)


def effective_language(state: dict, loc: str, top: str, r: Report) -> str:
    """A state may switch to JSONata under a JSONPath machine, never the other way round."""
    if "QueryLanguage" not in state:
        return top
    lang = state["QueryLanguage"]
    if lang not in LANGUAGES:
        r.not_allowed_value(lang, LANGUAGES, ptr(loc, "QueryLanguage"))
        return top
    if top == JSONATA and lang == JSONPATH:
        r.schema("'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
                 ptr(loc, "QueryLanguage"))
        return top
    return lang


def check_state(name: str, state: Any, loc: str, top: str, r: Report, machine: MachineCheck) -> None:
    check_state_name(name, loc, r)
    if not isinstance(state, dict):
        r.wrong_type(dict, loc)
        return
    kind = state.get("Type")
    if "Type" not in state:
        r.required(["Type"], loc)
        return
    if kind not in STATE_TYPES:
        r.not_allowed_value(kind, STATE_TYPES, ptr(loc, "Type"))
        return
    lang = effective_language(state, loc, top, r)
    fields = check_fields(state, FIELDS[kind], loc, lang, r)
    view = {f: state[f] for f in fields}
    if lang == JSONATA:
        extra.check_jsonata_syntax(view, loc, r)
    _check_common(kind, view, loc, lang, r)
    CHECKS[kind](view, loc, lang, top, r, machine)


def _check_common(kind: str, s: dict, loc: str, lang: str, r: Report) -> None:
    r.typed(s, "Comment", str, loc)
    for f in NULLABLE_PATHS:
        if f in s:
            check_path_field(s, f, loc, r, reference=f == "ResultPath")
    for f in _TEMPLATES:
        if f in s:
            if lang == JSONATA:
                r.jsonata_strings(s[f], ptr(loc, f))
            else:
                check_template_field(s, f, loc, r)
                extra.check_template_collisions(s[f], ptr(loc, f), r)
    if "ResultSelector" in s:
        r.typed(s, "ResultSelector", dict, loc)
    if "Assign" in s:
        if r.typed(s, "Assign", dict, loc):
            if lang == JSONATA:
                r.jsonata_strings(s["Assign"], ptr(loc, "Assign"))
            else:
                check_template_field(s, "Assign", loc, r)
                extra.check_template_collisions(s["Assign"], ptr(loc, "Assign"), r)
    for f in ("Arguments", "Output"):
        if f in s:
            r.jsonata_strings(s[f], ptr(loc, f))
    if "Arguments" in s and not (isinstance(s["Arguments"], dict) or is_jsonata(s["Arguments"])):
        r.wrong_type(dict, ptr(loc, "Arguments"))
    if kind in ("Choice", "Succeed", "Fail"):
        return
    # Next / End: exactly one, End must be true to end.
    r.typed(s, "Next", str, loc)
    r.typed(s, "End", bool, loc)
    has_next, ends = "Next" in s, s.get("End") is True
    if has_next and "End" in s:
        r.only_one(("Next", "End"), loc)
    elif not has_next and not ends:
        r.one_required(("Next", "End"), loc)


def _check_pass(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    pass


def _check_task(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    if "Resource" not in s:
        r.required(["Resource"], loc)
    r.typed(s, "Resource", str, loc)
    if "Resource" in s:
        extra.check_resource(s["Resource"], ptr(loc, "Resource"), r)
    if "Credentials" in s:
        extra.check_credentials(s["Credentials"], ptr(loc, "Credentials"), r)
    for f in ("TimeoutSeconds", "HeartbeatSeconds"):
        r.bounded(s, f, loc, minimum=1, maximum=MAX_SECONDS, lang=lang)
        if f + "Path" in s:
            check_path_field(s, f + "Path", loc, r, reference=True)
        r.exclusive(s, (f, f + "Path"), loc)
    t, h = s.get("TimeoutSeconds"), s.get("HeartbeatSeconds")
    if is_type(t, int) and is_type(h, int) and h >= t:
        r.schema("HeartbeatSeconds must be smaller than TimeoutSeconds", ptr(loc, "HeartbeatSeconds"))
    _check_retry_catch(s, loc, lang, r)


def _check_wait(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    r.exclusive(s, ("Seconds", "SecondsPath", "Timestamp", "TimestampPath"), loc, required=True)
    r.bounded(s, "Seconds", loc, minimum=0, maximum=MAX_SECONDS, lang=lang)
    for f in ("SecondsPath", "TimestampPath"):
        if f in s:
            check_path_field(s, f, loc, r, reference=True)
    if "Timestamp" in s:
        ts, where = s["Timestamp"], ptr(loc, "Timestamp")
        if not isinstance(ts, str):
            r.wrong_type(str, where)
        elif not (is_jsonata(ts) if lang == JSONATA and ts.startswith("{%") else is_timestamp(ts)):
            r.schema("The value for the field 'Timestamp' must be a valid ISO-8601 timestamp", where)


def _check_fail(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    for f in ("Error", "Cause"):
        if r.typed(s, f, str, loc) and f in s and lang == JSONATA:
            r.jsonata_strings(s[f], ptr(loc, f))
        if f + "Path" in s:
            check_path_field(s, f + "Path", loc, r, reference=True)
        r.exclusive(s, (f, f + "Path"), loc)


def _check_choice(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    check_choices(s, loc, lang, r)


def _check_parallel(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    if "Branches" not in s:
        r.required(["Branches"], loc)
    elif not isinstance(s["Branches"], list):
        r.wrong_type(list, ptr(loc, "Branches"))
    else:
        if not s["Branches"]:
            r.schema("Minimum number of items is 1", ptr(loc, "Branches"))
        for i, branch in enumerate(s["Branches"]):
            machine(branch, ptr(loc, "Branches", i), "Branch")
    _check_retry_catch(s, loc, lang, r)


def _check_map(s: dict, loc: str, lang: str, top: str, r: Report, machine: MachineCheck) -> None:
    check_map(s, loc, lang, r, machine)
    _check_retry_catch(s, loc, lang, r)


def _check_retry_catch(s: dict, loc: str, lang: str, r: Report) -> None:
    if "Retry" in s:
        check_retry(s["Retry"], ptr(loc, "Retry"), r)
    if "Catch" in s:
        check_catch(s["Catch"], ptr(loc, "Catch"), lang, r)


CHECKS = {"Pass": _check_pass, "Task": _check_task, "Choice": _check_choice, "Wait": _check_wait,
          "Succeed": _check_pass, "Fail": _check_fail, "Parallel": _check_parallel, "Map": _check_map}
