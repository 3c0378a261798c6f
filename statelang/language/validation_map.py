"""Map states: the per-item machine, the item source, batching, writing and failure tolerance."""

from __future__ import annotations

from typing import Any

from statelang.language.validation_common import (
    MachineCheck,
    check_fields,
    check_path_field,
    check_template_field,
)
from statelang.language.validation_fields import JSONATA, Report, is_jsonata, ptr

PROCESSOR_MODES = ("INLINE", "DISTRIBUTED")
EXECUTION_TYPES = ("STANDARD", "EXPRESS")
READER_FIELDS = frozenset({"Resource", "ReaderConfig", "Parameters", "Arguments"})
BATCHER_FIELDS = frozenset({"MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch",
                            "MaxInputBytesPerBatchPath", "BatchInput"})
WRITER_FIELDS = frozenset({"Resource", "Parameters", "Arguments", "WriterConfig"})
MAX_READER_ITEMS = 100000000


def check_map(s: dict, loc: str, lang: str, r: Report, machine: MachineCheck) -> None:
    r.exclusive(s, ("ItemProcessor", "Iterator"), loc, required=True)
    for field in ("ItemProcessor", "Iterator"):
        if field in s:
            machine(s[field], ptr(loc, field), field)
    if "ItemsPath" in s:
        check_path_field(s, "ItemsPath", loc, r, reference=True)
    if "Items" in s and not (isinstance(s["Items"], list) or is_jsonata(s["Items"])):
        r.schema("Expected value of type Array or a JSONata expression enclosed in {% %}", ptr(loc, "Items"))
    r.typed(s, "Label", str, loc)
    r.bounded(s, "MaxConcurrency", loc, minimum=0, lang=lang)
    r.bounded(s, "ToleratedFailureCount", loc, minimum=0, lang=lang)
    r.bounded(s, "ToleratedFailurePercentage", loc, kind=float, minimum=0.0, maximum=100.0, lang=lang)
    for field in ("MaxConcurrency", "ToleratedFailureCount", "ToleratedFailurePercentage"):
        if field + "Path" in s:
            check_path_field(s, field + "Path", loc, r, reference=True)
        r.exclusive(s, (field, field + "Path"), loc)
    if "ItemReader" in s:
        _reader(s["ItemReader"], ptr(loc, "ItemReader"), lang, r)
    if "ItemBatcher" in s:
        _batcher(s["ItemBatcher"], ptr(loc, "ItemBatcher"), lang, r)
    if "ResultWriter" in s:
        _writer(s["ResultWriter"], ptr(loc, "ResultWriter"), lang, r)


def check_processor_config(config: Any, loc: str, r: Report) -> None:
    if not isinstance(config, dict):
        r.wrong_type(dict, loc)
        return
    for field in config:
        if field not in ("Mode", "ExecutionType"):
            r.unsupported(field, loc)
    for field, allowed in (("Mode", PROCESSOR_MODES), ("ExecutionType", EXECUTION_TYPES)):
        if field in config and config[field] not in allowed:
            r.not_allowed_value(config[field], allowed, ptr(loc, field))


def _object(value: Any, loc: str, allowed: frozenset[str], lang: str, r: Report) -> dict | None:
    if not isinstance(value, dict):
        r.wrong_type(dict, loc)
        return None
    return {f: value[f] for f in check_fields(value, allowed, loc, lang, r)}


def _payloads(view: dict, loc: str, lang: str, r: Report) -> None:
    if "Parameters" in view:
        check_template_field(view, "Parameters", loc, r)
    if "Arguments" in view:
        r.jsonata_strings(view["Arguments"], ptr(loc, "Arguments"))


def _reader(value: Any, loc: str, lang: str, r: Report) -> None:
    view = _object(value, loc, READER_FIELDS, lang, r)
    if view is None:
        return
    if "Resource" not in value:
        r.required(["Resource"], loc)
    r.typed(view, "Resource", str, loc)
    _payloads(view, loc, lang, r)
    if "ReaderConfig" in view and r.typed(view, "ReaderConfig", dict, loc):
        config, where = view["ReaderConfig"], ptr(loc, "ReaderConfig")
        r.bounded(config, "MaxItems", where, minimum=0, maximum=MAX_READER_ITEMS, lang=lang)
        if "MaxItemsPath" in config:
            if lang == JSONATA:
                r.language(lang, "MaxItemsPath", ptr(where, "MaxItemsPath"))
            else:
                check_path_field(config, "MaxItemsPath", where, r, reference=True)
        r.exclusive(config, ("MaxItems", "MaxItemsPath"), where)


def _batcher(value: Any, loc: str, lang: str, r: Report) -> None:
    view = _object(value, loc, BATCHER_FIELDS, lang, r)
    if view is None:
        return
    for field in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        r.bounded(view, field, loc, minimum=0, lang=lang)
        if field + "Path" in view:
            check_path_field(view, field + "Path", loc, r, reference=True)
        r.exclusive(value, (field, field + "Path"), loc)
    if "BatchInput" in view:
        if lang == JSONATA:
            r.jsonata_strings(view["BatchInput"], ptr(loc, "BatchInput"))
        else:
            check_template_field(view, "BatchInput", loc, r)


def _writer(value: Any, loc: str, lang: str, r: Report) -> None:
    view = _object(value, loc, WRITER_FIELDS, lang, r)
    if view is None:
        return
    r.typed(view, "Resource", str, loc)
    r.typed(view, "WriterConfig", dict, loc)
    _payloads(view, loc, lang, r)
