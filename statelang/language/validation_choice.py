"""Choice states: the Choices list, and the top-level fields of each rule.

JSONPath comparison rules (Variable, StringEquals, And, ...) belong to `statelang.language.choice`, which
owns their grammar; this module checks what surrounds them: the list itself, Next, Assign, and
the JSONata form of a rule (Condition).
"""

from __future__ import annotations

from typing import Any

from statelang.language.choice import check_choice_rule
from statelang.language.validation_common import check_template_field
from statelang.language.validation_fields import JSONATA, JSONPATH, Report, is_jsonata, ptr

JSONATA_RULE_FIELDS = frozenset({"Condition", "Next", "Assign", "Output", "Comment"})


def check_choices(s: dict, loc: str, lang: str, r: Report) -> None:
    r.typed(s, "Default", str, loc)
    if "Choices" not in s:
        r.required(["Choices"], loc)
        return
    choices, where = s["Choices"], ptr(loc, "Choices")
    if not isinstance(choices, list):
        r.wrong_type(list, where)
        return
    if not choices:
        r.schema("Minimum number of items is 1", where)
    for i, rule in enumerate(choices):
        check_rule(rule, ptr(where, i), lang, r)


def check_rule(rule: Any, loc: str, lang: str, r: Report) -> None:
    if not isinstance(rule, dict):
        r.wrong_type(dict, loc)
        return
    if "Next" not in rule:
        r.required(["Next"], loc)
    r.typed(rule, "Next", str, loc)
    r.typed(rule, "Comment", str, loc)
    if "Assign" in rule and r.typed(rule, "Assign", dict, loc):
        if lang == JSONATA:
            r.jsonata_strings(rule["Assign"], ptr(loc, "Assign"))
        else:
            check_template_field(rule, "Assign", loc, r)
    if lang == JSONATA:
        _jsonata_rule(rule, loc, r)
        return
    for field in ("Condition", "Output"):
        if field in rule:
            r.language(JSONPATH, field, ptr(loc, field))
    if "Condition" in rule:
        return
    r.items.extend(check_choice_rule(rule, loc))


def _jsonata_rule(rule: dict, loc: str, r: Report) -> None:
    for field in rule:
        if field not in JSONATA_RULE_FIELDS:
            r.unsupported(field, loc)
    if "Condition" not in rule:
        r.required(["Condition"], loc)
        return
    cond = rule["Condition"]
    if not (isinstance(cond, bool) or is_jsonata(cond)):
        r.schema("Expected value of type Boolean or a JSONata expression enclosed in {% %}",
                 ptr(loc, "Condition"))
    if "Output" in rule:
        r.jsonata_strings(rule["Output"], ptr(loc, "Output"))
