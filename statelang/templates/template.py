"""`load_template(path)`: a SAM, CloudFormation or CDK-synthesised template, ready to run locally.

Read (YAML with CloudFormation's short tags, or JSON), then each resource gets its local name and
ARN (`templates.resources`), intrinsics are resolved (`templates.intrinsics`), and:

* every state machine (``AWS::Serverless::StateMachine``: Definition, DefinitionUri,
  DefinitionSubstitutions; ``AWS::StepFunctions::StateMachine``: DefinitionString, Definition,
  DefinitionS3Location, DefinitionSubstitutions) gets its definition, substitutions applied, and
  a warning per ``${...}`` left;
* every Python function (``AWS::Serverless::Function`` with CodeUri or InlineCode,
  ``AWS::Lambda::Function`` with ZipFile or CDK's asset folder) becomes a handler, under its name
  and ARN, with its Environment;
* tables, topics, queues and buckets are declared to the local services.

`Template.run(logical_id, input)` and `Template.engine()` put it all together.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from statelang.language.placeholders import placeholder_warnings, substitute_text, substitute_value
from statelang.runtime.lambda_context import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_SECONDS, FunctionConfig
from statelang.templates import is_template
from statelang.templates.intrinsics import Resolver, TemplateError
from statelang.templates.model import Function, StateMachine, TemplateData
from statelang.templates.resources import LocalResource, local_resource, name_property
from statelang.templates.runner import function_handlers, run_template, template_engine

STATE_MACHINES = ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
FUNCTIONS = ("AWS::Serverless::Function", "AWS::Lambda::Function")


class Template(TemplateData):
    """A loaded template: its parts (`TemplateData`) and how to run them."""

    def handlers(self) -> dict[str, Any]:
        return function_handlers(self)

    def engine(self, db: Any = "memory", clock: Any = "real", handlers: dict | None = None, **kw: Any):
        return template_engine(self, db=db, clock=clock, handlers=handlers, **kw)

    def run(self, state_machine: str, input: Any = None, *, handlers: dict | None = None, clock: Any = "real",
            type: str | None = None, engine: Any = None, timeout: float | None = None):
        return run_template(self, state_machine, input, handlers=handlers, clock=clock, type=type, engine=engine,
                            timeout=timeout)


def load_template(path: str | os.PathLike, parameters: dict[str, str] | None = None, *,
                  region: str = "us-east-1", account_id: str = "123456789012",
                  stack_name: str | None = None) -> Template:
    """Read the template at `path`; raises TemplateError naming the problem and where it is."""
    from statelang.language.yaml_loader import YamlError, load_yaml
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else load_yaml(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except YamlError as exc:
        raise TemplateError(f"{path}: not YAML: {exc}") from None
    if not is_template(doc):
        raise TemplateError(f"{path}: not a CloudFormation or SAM template (no Resources)")
    return _Loader(path, doc, parameters or {}, region, account_id, stack_name).load()


class _Loader:
    def __init__(self, path: Path, doc: dict, parameters: dict[str, str], region: str, account: str,
                 stack_name: str | None):
        self.path, self.doc, self.region, self.account = path, doc, region, account
        self.folder = path.parent
        stack = stack_name or re.sub(r"[^A-Za-z0-9-]", "-", self.folder.resolve().name).strip("-") or "local"
        declared = doc.get("Parameters") or {}
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            raise TemplateError(f"{path}: --parameter {', '.join(unknown)}: the template declares no such "
                                f"parameter (it declares: {', '.join(sorted(declared)) or 'none'})")
        self.params: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in parameters:
                value: Any = parameters[name]
            elif isinstance(spec, dict) and "Default" in spec:
                value = spec["Default"]
            else:
                continue   # an unset parameter: an error only where it is used
            if isinstance(spec, dict) and str(spec.get("Type", "")).startswith("List<") or \
                    isinstance(spec, dict) and spec.get("Type") == "CommaDelimitedList":
                value = value.split(",") if isinstance(value, str) else value
            self.params[name] = value
        self.pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws",
                       "AWS::StackName": stack, "AWS::URLSuffix": "amazonaws.com",
                       "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack}/local"}
        self.globals = ((doc.get("Globals") or {}).get("Function") or {})
        self.local: dict[str, LocalResource] = {}

    def resolver(self) -> Resolver:
        refs = {**self.pseudo, **self.params, **{k: r.ref for k, r in self.local.items()}}
        return Resolver(refs, self._attr, self.doc.get("Mappings") or {}, self.doc.get("Conditions") or {},
                        self.region)

    def _attr(self, logical: str, attr: str, where: str) -> Any:
        res = self.local.get(logical)
        if res is None:
            raise TemplateError(f"{self.path}: {where}: Fn::GetAtt of {logical!r}, which is no resource of the template")
        value = res.attribute(attr, self.region, self.account)
        if value is None:
            return f"{res.arn}/{attr}"   # an attribute with no local meaning: a stable, recognisable value
        return value

    def load(self) -> Template:
        resources = self.doc["Resources"]
        pre = Resolver({**self.pseudo, **self.params}, self._attr, self.doc.get("Mappings") or {},
                       self.doc.get("Conditions") or {}, self.region)
        active = {}
        for logical, res in resources.items():
            if not isinstance(res, dict) or not isinstance(res.get("Type"), str):
                raise TemplateError(f"{self.path}: Resources.{logical}: a resource needs a Type")
            if "Condition" in res and not pre.condition(res["Condition"], f"Resources.{logical}.Condition"):
                continue
            active[logical] = res
            props = res.get("Properties") or {}
            prop = name_property(res["Type"])
            name = None
            if prop and prop in props:
                try:
                    name = pre.text(props[prop], f"Resources.{logical}.Properties.{prop}")
                except TemplateError:
                    name = None   # named after another resource: the logical id will do locally
            self.local[logical] = local_resource(logical, res["Type"], name, self.region, self.account)
        r = self.resolver()
        properties = {}
        for logical, res in active.items():
            props = res.get("Properties") or {}
            where = f"Resources.{logical}.Properties"
            if res["Type"] in STATE_MACHINES:
                props = {k: v for k, v in props.items() if k not in ("Definition", "DefinitionString")}
            try:
                properties[logical] = r.resolve(props, where)
            except TemplateError as exc:
                raise TemplateError(f"{self.path}: {exc}") from None
        machines = {k: self._state_machine(k, res, properties[k], r) for k, res in active.items()
                    if res["Type"] in STATE_MACHINES}
        functions = {k: self._function(k, res, properties[k], r) for k, res in active.items()
                     if res["Type"] in FUNCTIONS}
        return Template(self.path, {k: str(v) for k, v in self.params.items()}, self.region, self.account,
                        dict(self.local), machines, functions, properties)

    # -- state machines ------------------------------------------------------------------------
    def _state_machine(self, logical: str, res: dict, props: dict, r: Resolver) -> StateMachine:
        local = self.local[logical]
        where = f"Resources.{logical}.Properties"
        sam = res["Type"] == "AWS::Serverless::StateMachine"
        kind = str(props.get("Type" if sam else "StateMachineType") or "STANDARD").upper()
        subs = props.get("DefinitionSubstitutions") or {}
        if not isinstance(subs, dict):
            raise TemplateError(f"{self.path}: {where}.DefinitionSubstitutions must be a map")
        raw = res.get("Properties") or {}
        definition: Any = None
        problem = None
        try:
            if "DefinitionString" in raw:
                source = f"{where}.DefinitionString"
                text = r.text(raw["DefinitionString"], source)
                definition = _parse(substitute_text(text, subs), source)
            elif "Definition" in raw:
                source = f"{where}.Definition"
                definition = substitute_value(r.resolve(raw["Definition"], source), subs)
            elif "DefinitionUri" in props or "DefinitionS3Location" in props:
                key = "DefinitionUri" if "DefinitionUri" in props else "DefinitionS3Location"
                file = self._local_file(props[key], f"{where}.{key}")
                source = str(file)
                definition = substitute_value(_parse(_read(file, f"{where}.{key}"), source), subs)
            else:
                raise TemplateError(f"{where}: no Definition, DefinitionString, DefinitionUri or DefinitionS3Location")
        except TemplateError as exc:
            source, problem = where, str(exc)
        warnings = tuple(placeholder_warnings(definition)) if definition is not None else ()
        return StateMachine(logical, local.name, local.arn, kind, definition, source, warnings, problem)

    def _local_file(self, value: Any, where: str) -> Path:
        if isinstance(value, dict):   # {Bucket, Key[, Version]}: the key is read as a path beside the template
            key = value.get("Key")
            if not isinstance(key, str):
                raise TemplateError(f"{where}: an S3 location needs a Key")
            candidates = [self.folder / key, self.folder / Path(key).name]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise TemplateError(f"{where}: s3://{value.get('Bucket')}/{key} is not on this machine: put the file "
                                    f"at {candidates[0]}")
            return found
        if not isinstance(value, str):
            raise TemplateError(f"{where}: expected a path")
        if value.startswith("s3://"):
            raise TemplateError(f"{where}: {value} is in S3; point it at the local file it was uploaded from")
        return self.folder / value

    # -- functions -------------------------------------------------------------------------------
    def _function(self, logical: str, res: dict, props: dict, r: Resolver) -> Function:
        sam = res["Type"] == "AWS::Serverless::Function"
        where = f"Resources.{logical}.Properties"
        if sam:
            glob = r.resolve(self.globals, "Globals.Function")
            env = {**((glob.get("Environment") or {}).get("Variables") or {}),
                   **((props.get("Environment") or {}).get("Variables") or {})}
            props = {**glob, **props}
        else:
            env = dict((props.get("Environment") or {}).get("Variables") or {})
        local = self.local[logical]
        config = FunctionConfig(local.name, local.arn, float(props.get("Timeout") or DEFAULT_TIMEOUT_SECONDS),
                                int(props.get("MemorySize") or DEFAULT_MEMORY_MB),
                                {k: _env_text(v) for k, v in env.items()})
        runtime = str(props.get("Runtime") or "")
        handler = str(props.get("Handler") or "")
        code_dir, inline = None, None
        if sam:
            if "InlineCode" in props:
                inline = str(props["InlineCode"])
            elif isinstance(props.get("CodeUri"), str):
                code_dir = self.folder / props["CodeUri"]
            elif props.get("CodeUri") is None:
                code_dir = self.folder
        else:
            code = props.get("Code") or {}
            asset = ((res.get("Metadata") or {}).get("aws:asset:path"))
            if "ZipFile" in code:
                inline = str(code["ZipFile"])
            elif isinstance(asset, str):
                code_dir = self.folder / asset          # CDK: cdk.out/asset.<hash>
        if code_dir is not None and not code_dir.is_dir():
            raise TemplateError(f"{self.path}: {where}: the function's code folder {code_dir} does not exist")
        return Function(logical, config, runtime, handler, code_dir, inline)


def _parse(text: str, where: str) -> Any:
    from statelang.language.errors import DefinitionError
    from statelang.language.loading import load_definition
    try:
        return load_definition(text)
    except DefinitionError as exc:
        raise TemplateError(f"{where}: {exc.diagnostics[0].message}") from None


def _read(file: Path, where: str) -> str:
    try:
        return file.read_text()
    except OSError as exc:
        raise TemplateError(f"{where}: cannot read {file}: {exc.strerror}") from None


def _env_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v)
