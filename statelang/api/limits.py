"""The API model's upper limits, checked as the service checks them.

boto3 checks a request's required members, types and *minimum* lengths before it sends it
(`botocore.validate`); the service itself checks the rest of the model's constraints and answers a
ValidationException worded the Coral way, which every AWS JSON service shares:

    1 validation error detected: Value 'xxxx' at 'tags.1.member.key' failed to satisfy
    constraint: Member must have length less than or equal to 128

(the Step Functions API reference, "Tag": key 1-128, value 0-256 characters; "Common Errors":
ValidationException). List members are named ``<list>.<1-based index>.member``; a sensitive
member's value is never echoed (``Value at 'input' ...``); several problems are counted and
joined with "; ". The limits are read from botocore's copy of the service model, so every
operation gets the same checks without a table of our own.
"""

from __future__ import annotations

from typing import Any


def problems(input_shape: Any, params: dict) -> list[str]:
    """Every upper-limit violation of `params` (a request of the operation whose botocore input
    shape is `input_shape`), worded as AWS words them; [] when there is none."""
    out: list[str] = []
    _check(input_shape, params, "", False, out, 0)
    return out


def message(found: list[str]) -> str:
    n = len(found)
    return f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(found)


def _check(shape, value: Any, where: str, sensitive: bool, out: list[str], depth: int) -> None:
    if depth > 20 or value is None:
        return
    meta = shape.metadata
    sensitive = sensitive or bool(meta.get("sensitive"))
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _check(member, value[name], f"{where}.{name}" if where else name, sensitive, out, depth + 1)
        return
    if kind == "list" and isinstance(value, list | tuple):
        _length(value, meta, where, sensitive, out)
        for i, item in enumerate(value, 1):
            _check(shape.member, item, f"{where}.{i}.member", sensitive, out, depth + 1)
        return
    if kind == "map" and isinstance(value, dict):
        _length(value, meta, where, sensitive, out)
        return
    if kind == "string" and isinstance(value, str):
        _length(value, meta, where, sensitive, out)
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float) \
            and not isinstance(value, bool) and "max" in meta and value > meta["max"]:
        out.append(f"{_value(value, where, sensitive)} failed to satisfy constraint: "
                   f"Member must have value less than or equal to {_number(meta['max'])}")


def _length(value: Any, meta: dict, where: str, sensitive: bool, out: list[str]) -> None:
    if "max" in meta and len(value) > meta["max"]:
        out.append(f"{_value(value, where, sensitive)} failed to satisfy constraint: "
                   f"Member must have length less than or equal to {meta['max']}")


def _value(value: Any, where: str, sensitive: bool) -> str:
    if sensitive or not isinstance(value, str | int | float):
        return f"Value at '{where}'"
    return f"Value '{value}' at '{where}'"


def _number(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)
