"""Retriers and Catchers: the ErrorEquals rules of the spec and the ranges AWS enforces."""

from __future__ import annotations

from typing import Any

from statelang.language.errors import ALL
from statelang.language.validation_common import check_fields, check_path_field, check_template_field
from statelang.language.validation_fields import JSONATA, JSONPATH, MAX_SECONDS, Report, ptr

RETRIER_FIELDS = frozenset({"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
                            "JitterStrategy", "Comment"})
CATCHER_FIELDS = frozenset({"ErrorEquals", "Next", "ResultPath", "Assign", "Output", "Comment"})

MAX_DELAY_SECONDS = 31622400
JITTER = ("FULL", "NONE")


def _error_equals(item: dict, loc: str, r: Report) -> bool:
    """Checks one ErrorEquals; True when it names States.ALL (alone or not)."""
    if "ErrorEquals" not in item:
        r.required(["ErrorEquals"], loc)
        return False
    names, where = item["ErrorEquals"], ptr(loc, "ErrorEquals")
    if not isinstance(names, list):
        r.wrong_type(list, where)
        return False
    if not names:
        r.schema("Minimum number of items is 1", where)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            r.wrong_type(str, ptr(where, i))
    if ALL in names and len(names) > 1:
        r.schema(f"{ALL} must appear alone in ErrorEquals", where)
    return ALL in names


def _list(value: Any, loc: str, r: Report) -> list:
    if not isinstance(value, list):
        r.wrong_type(list, loc)
        return []
    return value


def _all_last(has_all: list[bool], loc: str, what: str, r: Report) -> None:
    """The spec: a Retrier/Catcher naming States.ALL must be the last one."""
    for i, flag in enumerate(has_all[:-1]):
        if flag:
            r.schema(f"The {what} containing {ALL} must be the last {what} in the array", ptr(loc, i))


def check_retry(retry: Any, loc: str, r: Report) -> None:
    has_all = []
    for i, item in enumerate(_list(retry, loc, r)):
        where = ptr(loc, i)
        if not isinstance(item, dict):
            r.wrong_type(dict, where)
            has_all.append(False)
            continue
        fields = check_fields(item, RETRIER_FIELDS, where, JSONPATH, r)
        view = {f: item[f] for f in fields}
        has_all.append(_error_equals(view, where, r))
        r.typed(view, "Comment", str, where)
        r.bounded(view, "IntervalSeconds", where, minimum=1, maximum=MAX_SECONDS)
        r.bounded(view, "MaxAttempts", where, minimum=0, maximum=MAX_SECONDS)
        r.bounded(view, "BackoffRate", where, kind=float, minimum=1.0)
        r.bounded(view, "MaxDelaySeconds", where, minimum=1, maximum=MAX_DELAY_SECONDS)
        if "JitterStrategy" in view and view["JitterStrategy"] not in JITTER:
            r.not_allowed_value(view["JitterStrategy"], JITTER, ptr(where, "JitterStrategy"))
    _all_last(has_all, loc, "Retrier", r)


def check_catch(catch: Any, loc: str, lang: str, r: Report) -> None:
    has_all = []
    for i, item in enumerate(_list(catch, loc, r)):
        where = ptr(loc, i)
        if not isinstance(item, dict):
            r.wrong_type(dict, where)
            has_all.append(False)
            continue
        fields = check_fields(item, CATCHER_FIELDS, where, lang, r)
        view = {f: item[f] for f in fields}
        has_all.append(_error_equals(view, where, r))
        r.typed(view, "Comment", str, where)
        if "Next" not in view and "Next" not in item:
            r.required(["Next"], where)
        r.typed(view, "Next", str, where)
        if "ResultPath" in view:
            check_path_field(view, "ResultPath", where, r, reference=True)
        if "Assign" in view and r.typed(view, "Assign", dict, where):
            if lang == JSONATA:
                r.jsonata_strings(view["Assign"], ptr(where, "Assign"))
            else:
                check_template_field(view, "Assign", where, r)
        if "Output" in view:
            r.jsonata_strings(view["Output"], ptr(where, "Output"))
    _all_last(has_all, loc, "Catcher", r)
