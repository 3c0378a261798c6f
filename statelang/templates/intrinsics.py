"""CloudFormation's intrinsic functions, resolved locally.

`Resolver.resolve(value, where)` replaces ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``,
``Fn::Select``, ``Fn::Split``, ``Fn::If``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::ToJsonString``,
``Fn::GetAZs`` and ``Fn::Equals/And/Or/Not`` (in Conditions) by their values, as CloudFormation
would at deploy time (see its "Intrinsic function reference"). References go to the template's
parameters, pseudo parameters (``AWS::Region``, ``AWS::AccountId``, ``AWS::Partition``,
``AWS::StackName``, ``AWS::URLSuffix``, ``AWS::NoValue``) and its resources' local names and ARNs.
A problem raises TemplateError naming where in the template it is.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from statelang.language.errors import StatelangError

NO_VALUE = object()   # AWS::NoValue: the property is removed
_SUB = re.compile(r"\$\{([^}]*)\}")


class TemplateError(StatelangError):
    """A template that cannot be used; the message says where (``Resources.X.Properties.Y``) and why."""


@dataclass
class Resolver:
    refs: dict[str, Any]                                   # Ref name -> value
    attrs: Callable[[str, str, str], Any]                  # (logical id, attribute, where) -> value
    mappings: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    _decided: dict[str, bool] = field(default_factory=dict)

    def condition(self, name: str, where: str) -> bool:
        if name not in self._decided:
            if name not in self.conditions:
                raise TemplateError(f"{where}: unknown condition {name!r}")
            self._decided[name] = bool(self.resolve(self.conditions[name], f"Conditions.{name}"))
        return self._decided[name]

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            fn = _FUNCTIONS.get(key)
            if fn is not None:
                return fn(self, arg, f"{where}.{key}")
        out = {}
        for k, v in value.items():
            r = self.resolve(v, f"{where}.{k}")
            if r is not NO_VALUE:
                out[k] = r
        return out

    def text(self, value: Any, where: str) -> str:
        r = self.resolve(value, where)
        if isinstance(r, bool):
            return "true" if r else "false"
        if isinstance(r, int | float):
            return str(r)
        if not isinstance(r, str):
            raise TemplateError(f"{where}: expected a string, got {json.dumps(r)[:80]}")
        return r


def _ref(r: Resolver, arg: Any, where: str) -> Any:
    if not isinstance(arg, str):
        raise TemplateError(f"{where}: Ref takes a name")
    if arg == "AWS::NoValue":
        return NO_VALUE
    if arg not in r.refs:
        raise TemplateError(f"{where}: Ref to {arg!r}, which is neither a parameter nor a resource of the template "
                            "(a parameter is given with --parameter NAME=VALUE)")
    return r.refs[arg]


def _get_att(r: Resolver, arg: Any, where: str) -> Any:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    arg = r.resolve(arg, where)
    if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
        raise TemplateError(f"{where}: Fn::GetAtt takes [LogicalId, Attribute]")
    return r.attrs(arg[0], arg[1], where)


def _sub(r: Resolver, arg: Any, where: str) -> str:
    variables: dict[str, Any] = {}
    if isinstance(arg, list):
        if len(arg) != 2 or not isinstance(arg[1], dict):
            raise TemplateError(f"{where}: Fn::Sub takes a string or [string, {{variables}}]")
        arg, given = arg
        variables = {k: r.text(v, f"{where}.{k}") for k, v in given.items()}
    if not isinstance(arg, str):
        raise TemplateError(f"{where}: Fn::Sub takes a string")

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"      # ${!Literal} writes ${Literal}
        if name in variables:
            return variables[name]
        if name in r.refs:
            return r.text({"Ref": name}, where)
        if "." in name:
            logical, attr = name.split(".", 1)
            return r.text({"Fn::GetAtt": [logical, attr]}, where)
        raise TemplateError(f"{where}: ${{{name}}} names no parameter, resource or variable of the template")
    return _SUB.sub(one, arg)


def _join(r: Resolver, arg: Any, where: str) -> str:
    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
        raise TemplateError(f"{where}: Fn::Join takes [delimiter, [values]]")
    items = r.resolve(arg[1], where)
    if not isinstance(items, list):
        raise TemplateError(f"{where}: Fn::Join's second argument must be a list")
    return arg[0].join(r.text(v, f"{where}[{i}]") for i, v in enumerate(items))


def _select(r: Resolver, arg: Any, where: str) -> Any:
    arg = r.resolve(arg, where)
    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list)):
        raise TemplateError(f"{where}: Fn::Select takes [index, [values]]")
    try:
        return arg[1][int(arg[0])]
    except (ValueError, IndexError):
        raise TemplateError(f"{where}: Fn::Select index {arg[0]!r} is out of range") from None


def _split(r: Resolver, arg: Any, where: str) -> list:
    if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
        raise TemplateError(f"{where}: Fn::Split takes [delimiter, string]")
    return r.text(arg[1], where).split(arg[0])


def _if(r: Resolver, arg: Any, where: str) -> Any:
    if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
        raise TemplateError(f"{where}: Fn::If takes [condition, value if true, value if false]")
    return r.resolve(arg[1] if r.condition(arg[0], where) else arg[2], where)


def _find_in_map(r: Resolver, arg: Any, where: str) -> Any:
    arg = r.resolve(arg, where)
    if not (isinstance(arg, list) and len(arg) >= 3):
        raise TemplateError(f"{where}: Fn::FindInMap takes [map, top key, second key]")
    try:
        return r.resolve(r.mappings[arg[0]][arg[1]][arg[2]], where)
    except (KeyError, TypeError):
        raise TemplateError(f"{where}: no {arg[0]}.{arg[1]}.{arg[2]} in Mappings") from None


def _equals(r: Resolver, arg: Any, where: str) -> bool:
    a = r.resolve(arg, where)
    if not (isinstance(a, list) and len(a) == 2):
        raise TemplateError(f"{where}: Fn::Equals takes two values")
    return a[0] == a[1]


def _conditions(r: Resolver, arg: Any, where: str) -> list[bool]:
    if not isinstance(arg, list):
        raise TemplateError(f"{where}: takes a list of conditions")
    return [bool(r.resolve(a, f"{where}[{i}]")) for i, a in enumerate(arg)]


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::FindInMap": _find_in_map,
    "Fn::Equals": _equals,
    "Fn::And": lambda r, a, w: all(_conditions(r, a, w)),
    "Fn::Or": lambda r, a, w: any(_conditions(r, a, w)),
    "Fn::Not": lambda r, a, w: not _conditions(r, a, w)[0],
    "Condition": lambda r, a, w: r.condition(a, w),
    "Fn::Base64": lambda r, a, w: base64.b64encode(r.text(a, w).encode()).decode(),
    "Fn::ToJsonString": lambda r, a, w: json.dumps(r.resolve(a, w), separators=(",", ":")),
    "Fn::GetAZs": lambda r, a, w: [f"{r.region}{z}" for z in "abc"],
    "Fn::ImportValue": lambda r, a, w: _not_local(w, "Fn::ImportValue reads another stack's exports, which are "
                                                     "not known here: make it a template parameter"),
    "Fn::GetParam": lambda r, a, w: _not_local(w, "Fn::GetParam is CodePipeline's, not known here"),
}


def _not_local(where: str, why: str) -> Any:
    raise TemplateError(f"{where}: {why}")
