"""A loaded template, run: an engine with the template's functions, services and machines.

Handlers are looked up in this order (see `Resources.lookup`): handlers given in code, the
template's Python functions (by name, ARN and logical id), patterns, the local AWS services
(with the template's tables, topics, queues and buckets created), then a catch-all if given.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from statelang.language.errors import DefinitionError
from statelang.runtime.local_functions import PythonFunction
from statelang.runtime.resources import HandlerError
from statelang.runtime.services.local import LocalServices
from statelang.templates.intrinsics import TemplateError
from statelang.templates.model import Function, TemplateData
from statelang.templates.resources import table_keys

_INLINE: dict[tuple[str, str], Path] = {}


def _code_dir(fn: Function) -> Path:
    if fn.inline_code is None:
        assert fn.code_dir is not None
        return fn.code_dir
    key = (fn.config.arn, fn.inline_code)
    folder = _INLINE.get(key)
    if folder is None:   # InlineCode / ZipFile: Lambda writes it as index.py (Handler "index.handler")
        folder = Path(tempfile.mkdtemp(prefix=f"statelang-{fn.logical_id}-"))
        module = fn.handler.rpartition(".")[0] or "index"
        (folder / f"{module.replace('.', '/')}.py").write_text(fn.inline_code)
        _INLINE[key] = folder
    return folder


def _unsupported(fn: Function):
    def answer(event: Any) -> Any:
        raise HandlerError("Lambda.ServiceException",
                           f"Function {fn.config.name} ({fn.runtime or 'no runtime'}) cannot run locally: only Python "
                           f"functions do. Give a handler for '{fn.config.name}' (handlers= or --handlers).")
    return answer


def function_handlers(template: TemplateData) -> dict[str, Any]:
    """Each function under its name, its ARN and its logical id."""
    out: dict[str, Any] = {}
    for fn in template.functions.values():
        if fn.is_python and (fn.code_dir is not None or fn.inline_code is not None):
            h: Any = PythonFunction(_code_dir(fn), fn.handler, fn.config, template.region)
        else:
            h = _unsupported(fn)
        for key in (fn.config.name, fn.config.arn, fn.logical_id):
            out.setdefault(key, h)
    return out


def check_functions(template: TemplateData, definitions: Any = None) -> None:
    """Import the Python functions now, so a missing module is one clear error before the run:
    those whose name or ARN the given definitions mention (every function when none are given).
    A function the machine never calls (an API's handler needing packages not installed here) is
    left alone."""
    import json

    from statelang.runtime.local_functions import FunctionLoadError
    text = None if definitions is None else json.dumps(definitions)
    for h in {id(h): h for h in function_handlers(template).values()}.values():
        if isinstance(h, PythonFunction) and (text is None or f'"{h.config.name}"' in text
                                              or h.config.arn in text or f":function:{h.config.name}:" in text):
            try:
                h.load()
            except FunctionLoadError as exc:
                raise TemplateError(f"{template.path}: {exc}") from None


def declare_resources(template: TemplateData, services: LocalServices) -> None:
    for logical, res in template.resources.items():
        t = res.type
        if t in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable", "AWS::Serverless::SimpleTable"):
            services.dynamodb.create_table(res.name, *table_keys(t, template.properties.get(logical, {})))
        elif t == "AWS::SNS::Topic":
            services.sns.create_topic(res.name)
        elif t == "AWS::SQS::Queue":
            services.sqs.create_queue(res.name)
        elif t == "AWS::S3::Bucket":
            services.s3.create_bucket(res.name)


def template_engine(template: TemplateData, *, db: Any = "memory", clock: Any = "real", handlers: dict | None = None,
                    s3_root: str | Path | None = None, state_machines: dict | None = None, **kw: Any):
    """An Engine that runs the template's machines: functions, services, and the machines by name
    and ARN for ``states:startExecution``."""
    from statelang import Engine
    machines = {}
    for sm in template.state_machines.values():
        if sm.definition is not None:
            machines[sm.name] = sm.definition
            machines[sm.arn] = sm.definition
    machines.update(state_machines or {})
    eng = Engine(db=db, clock=clock, state_machines=machines, region=template.region,
                 account_id=template.account_id, **kw)
    services = LocalServices(eng.store, eng.clock, region=template.region, account_id=template.account_id,
                             s3_root=s3_root)
    declare_resources(template, services)
    eng.resources.services = services
    eng.resources.clock = eng.clock
    eng.resources.update(function_handlers(template))
    eng.resources.update(_overriding(template, handlers or {}))
    return eng


def _overriding(template: TemplateData, handlers: dict) -> dict:
    """Handlers given in code win over the template's functions: one given under a function's
    name, ARN or logical id answers for all three."""
    out = dict(handlers)
    for fn in template.functions.values():
        keys = (fn.config.name, fn.config.arn, fn.logical_id)
        given = next((handlers[k] for k in keys if k in handlers), None)
        if given is not None:
            out.update(dict.fromkeys(keys, given))
    return out


def run_template(template: TemplateData, state_machine: str, input: Any = None, *, handlers: dict | None = None,
                 clock: Any = "real", type: str | None = None, engine: Any = None, timeout: float | None = None,
                 state_machines: dict | None = None):
    """Run one of the template's machines to its end (as `statelang.run` does) and return the Execution."""
    import statelang
    sm = template.state_machine(state_machine)
    if sm.definition is None:
        raise TemplateError(f"{template.path}: state machine {sm.logical_id}: {sm.problem}")
    check_functions(template, [sm.definition, state_machines or {}])
    eng = engine or template_engine(template, clock=clock, handlers=handlers, state_machines=state_machines,
                                    eager="always")
    kind = (type or sm.type).upper()
    try:
        kwargs: dict[str, Any] = {"type": kind} if kind == "EXPRESS" else {}
        return statelang.run(sm.definition, input, engine=eng, state_machine_name=sm.name,
                             account_id=template.account_id, region=template.region, timeout=timeout, **kwargs)
    except DefinitionError:
        raise
    finally:
        if engine is None:
            eng.close()
