"""YAML as JSON values: `.asl.yaml` definitions and SAM/CloudFormation templates.

PyYAML parses (its C parser when built with libyaml). What we add is the loader's constructor
set, for two reasons a plain `yaml.safe_load` gets wrong:

* CloudFormation's short tags (``!Sub``, ``!GetAtt a.b``, ``!Ref``, ``!Join``, ...) become their
  long forms (``{"Fn::Sub": ...}``, ``{"Fn::GetAtt": ["a", "b"]}``, ``{"Ref": ...}``), as
  CloudFormation reads them;
* scalars YAML 1.1 would turn into non-JSON values stay JSON: an unquoted timestamp
  (``Timestamp: 2016-03-14T01:59:00Z`` in a Wait state) keeps its text exactly, and binary/set
  values are refused, since a definition is JSON once loaded.

cfn-flip's `CfnYamlLoader` (awslabs, last released 2021) was tried first: it maps ``!GetAtt``
the same way but returns OrderedDict subclasses and turns that Wait timestamp into a datetime,
which re-serialises as ``+00:00`` instead of ``Z``; cfn-lint's decoder brings its whole
dependency tree. The tag set is CloudFormation's published list of intrinsic functions.
"""

from __future__ import annotations

from typing import Any

import yaml

from statelang.language.errors import StatelangError

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# CloudFormation's intrinsic functions with a short YAML form; Ref and Condition keep their
# names, the others take the "Fn::" prefix.
SHORT_TAGS = ("Ref", "Condition", "Sub", "GetAtt", "Join", "Select", "Split", "FindInMap", "If", "Not",
              "Equals", "And", "Or", "Base64", "Cidr", "GetAZs", "ImportValue", "Transform", "ToJsonString",
              "Length")


class YamlError(StatelangError):
    """Text that is not YAML, with where the parser stopped (1-based line and column)."""

    def __init__(self, problem: str, line: int | None, column: int | None):
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{problem}{where}")
        self.problem = problem
        self.line = line
        self.column = column


class _Loader(_Base):
    """SafeLoader whose results are JSON values and which reads CloudFormation's short tags."""


def _timestamp_as_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)


def _not_json(loader: _Loader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"{node.tag} values are not JSON", node.start_mark)


def _short_tag(name: str):
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: _Loader, node: yaml.Node) -> dict:
        if name == "GetAtt" and isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node).split(".", 1)
        elif isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}
    return construct


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
for _tag in ("tag:yaml.org,2002:binary", "tag:yaml.org,2002:set", "tag:yaml.org,2002:omap",
             "tag:yaml.org,2002:pairs"):
    _Loader.add_constructor(_tag, _not_json)
for _name in SHORT_TAGS:
    _Loader.add_constructor(f"!{_name}", _short_tag(_name))


def _unknown_tag(loader: _Loader, suffix: str, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"unknown tag !{suffix}", node.start_mark)


_Loader.add_multi_constructor("!", _unknown_tag)


def load_yaml(text: str) -> Any:
    """YAML text -> a JSON value; raises YamlError naming the line and column of the problem."""
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise YamlError(problem, None, None) from None
        raise YamlError(problem, mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), None, None) from None
    except RecursionError:
        raise YamlError("nested too deeply", None, None) from None
    if _holds_itself(value):
        raise YamlError("an alias (*name) inside the node its anchor (&name) marks makes a value that holds "
                        "itself, which no JSON value does", None, None)
    return value


def _holds_itself(value: Any) -> bool:
    """Whether an alias made `value` contain one of its own containers (``a: &a [*a]``), which
    every walk of the value (validation, JSON) would follow without end. Shared nodes (an alias
    beside its anchor) are fine and are walked once: the walk is linear in the distinct nodes."""
    done: set[int] = set()       # containers whose whole content has been walked
    open_: set[int] = set()      # containers on the path from the root to where the walk is
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, leaving = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        if leaving:
            open_.discard(key)
            done.add(key)
            continue
        if key in open_:
            return True
        if key in done:
            continue
        open_.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in (node.values() if isinstance(node, dict) else node))
    return False
