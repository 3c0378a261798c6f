"""``statelang run`` and ``statelang validate``: a definition (JSON or YAML) or a whole template.

A file whose top level has ``Resources`` is a SAM/CloudFormation/CDK template: ``--state-machine``
picks a machine by logical id (or name), its Python functions answer its Lambda tasks, its tables,
topics, queues and buckets answer its service tasks. Otherwise the file is one definition.

What a run that stops early says is the truth of it: a machine parked on a task token names the
state, the token and the command that answers it.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import click

from statelang.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    UserError,
    echo_json,
    load_handlers,
    read_definition,
    read_json_arg,
)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {v!r}: expected NAME=VALUE")
        out[key] = value
    return out


def _load(text: str, where: str) -> Any:
    from statelang.language.errors import DefinitionError
    from statelang.language.loading import load_definition
    try:
        return load_definition(text)
    except DefinitionError as exc:
        d = exc.diagnostics[0]
        hint = ""
        left = _UNQUOTED_PLACEHOLDER.search(text) if d.code == "INVALID_JSON_DESCRIPTION" else None
        if left:   # a Terraform templatefile's ${NAME} where JSON wants a value: name the missing --var
            hint = f" (the file holds {left.group(1)} outside a string: give it a value with --var {left.group(2)}=VALUE)"
        raise UserError(f"{where}: {d.code}: {d.message}{hint}") from None


# ${NAME} after ':', '[' or ',' (a value's place in JSON), not inside a string as --sub's are
_UNQUOTED_PLACEHOLDER = re.compile(r"(?<=[:\[,])\s*(\$\{([A-Za-z_][A-Za-z0-9_]*)\})")


def _children(specs: list[str]) -> dict[str, Any]:
    """--state-machine NAME=FILE: child machines ``states:startExecution`` finds by name or ARN."""
    out = {}
    for spec in specs:
        name, _, file = spec.partition("=")
        if not name or not file:
            raise UserError(f"--state-machine {spec!r}: expected NAME=FILE (or, for a template, a logical id)")
        out[name] = _load(read_definition(file), file)
    return out


def _template(path: str, parameters: dict[str, str]):
    from statelang.templates.intrinsics import TemplateError
    from statelang.templates.template import load_template
    try:
        return load_template(path, parameters)
    except TemplateError as exc:
        raise UserError(str(exc)) from None


def _pick(template, chosen: list[str]):
    from statelang.templates.intrinsics import TemplateError
    if len(chosen) > 1:
        raise UserError(f"--state-machine given {len(chosen)} times without NAME=FILE: pick one of "
                        f"{', '.join(sorted(template.state_machines))}")
    if not chosen:
        if len(template.state_machines) != 1:
            raise UserError(f"{template.path} has {len(template.state_machines)} state machines: pick one with "
                            f"--state-machine ({', '.join(sorted(template.state_machines)) or 'none'})")
        chosen = list(template.state_machines)
    try:
        sm = template.state_machine(chosen[0])
    except TemplateError as exc:
        raise UserError(str(exc)) from None
    if sm.definition is None:
        raise UserError(f"{template.path}: {sm.logical_id}: {sm.problem}")
    return sm


def _print_diagnostics(diags, prefix: str) -> None:
    for d in diags:
        click.echo(f"{prefix}: {d.severity} {d.code} at {d.location or '/'}: {d.message}", err=True)


def run_command(definition, input_, handlers, time_, history, as_json, mock_config, test_case, state_machine_name,
                state_machine, type_, parameter, sub, db, var=(), progress=None):
    import statelang
    from statelang.language.errors import DefinitionError
    from statelang.language.placeholders import placeholder_warnings, substitute_text, substitute_value
    from statelang.templates import is_template
    if test_case and not mock_config:
        raise UserError("--test-case names a test case of a mock config: give the file with --mock-config")
    text = read_definition(definition)
    if var:   # Terraform's templatefile(): text substitution, then $${ is a literal ${
        text = substitute_text(text, _pairs(var, "--var")).replace("$${", "${")
    doc = _load(text, definition)
    value = read_json_arg(input_, "input", {})
    hs = load_handlers(handlers)
    children = _children([s for s in state_machine if "=" in s])
    chosen = [s for s in state_machine if "=" not in s]
    if is_template(doc):
        if definition == "-":
            raise UserError("a template is read from its file (its paths are relative to it), not standard input")
        template = _template(definition, _pairs(parameter, "--parameter"))
        sm = _pick(template, chosen)
        doc, name, kind = sm.definition, sm.name, (type_ or sm.type)
        warnings = list(sm.warnings)
    else:
        if chosen:
            raise UserError(f"--state-machine {chosen[0]!r}: {definition} is a definition, not a template "
                            "(for a child machine write NAME=FILE)")
        if parameter:
            raise UserError("--parameter is for templates; for ${...} in a definition use --sub NAME=VALUE")
        template = None
        doc = substitute_value(doc, _pairs(sub, "--sub"))
        name = state_machine_name or Path(definition).name.split(".")[0] or "statemachine"
        kind = type_ or "STANDARD"
        warnings = placeholder_warnings(doc)
    _print_diagnostics(warnings, definition)
    if mock_config:

        from statelang.runtime.mocks import MockConfigError, handlers_from_mock_config
        try:
            hs = handlers_from_mock_config(read_json_arg("@" + mock_config, "mock config"), name, test_case,
                                           json.dumps(doc), handlers=hs)
        except MockConfigError as exc:
            raise UserError(f"{mock_config}: {exc}") from None
    engine = _engine(template, db, time_, hs, children, doc)
    if _uses_event_bus(doc, children):
        from statelang.eventbus.integration import install
        install(engine)   # events:putEvents goes to statelang's bus (loaded only when a machine uses it)
    try:
        kwargs = {"type": "EXPRESS"} if kind.upper() == "EXPRESS" else {}
        if progress is None:
            progress = sys.stderr.isatty()
        with MapRunProgress(engine, enabled=progress and "DISTRIBUTED" in json.dumps(doc)):
            ex = statelang.run(doc, value, engine=engine, state_machine_name=name, **kwargs)
    except DefinitionError as exc:
        _print_diagnostics(exc.diagnostics, definition)
        sys.exit(EXIT_INVALID)
    waiting = _waiting(engine, ex) if ex.status == "RUNNING" else []
    engine.close()
    if as_json:
        echo_json({"executionArn": ex.execution_arn, "status": ex.status, "output": ex.output,
                   "error": ex.error, "cause": ex.cause,
                   **({"waiting": waiting} if waiting else {}),
                   **({"history": ex.history} if history else {})})
    else:
        if history:
            from statelang.history.timeline import render_timeline
            click.echo(render_timeline(ex.history))
        if ex.status == "SUCCEEDED":
            echo_json(ex.output)
        elif ex.status == "RUNNING":
            _explain_running(ex, waiting, db)
        else:
            click.echo(f"{ex.status}: {ex.error or ''}" + (f": {ex.cause}" if ex.cause else ""), err=True)
    sys.exit(0 if ex.status == "SUCCEEDED" else EXIT_FAILED)


class MapRunProgress:
    """A line on stderr, once a second, per distributed Map run under way (items done of all, and
    how many running), and each run's last count when the run ends: a 100,000-item map shows
    that it moves. Read from the map runs' records, as DescribeMapRun reads them."""

    def __init__(self, engine: Any, enabled: bool, every: float = 1.0):
        self.engine = engine
        self.enabled = enabled
        self.every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="map-run-progress")
        self._last: dict[str, str] = {}

    def __enter__(self) -> MapRunProgress:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            self._done.set()
            self._thread.join()
            self._report(final=True)

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            self._report(final=False)

    def _report(self, final: bool) -> None:
        from statelang.api.client import Client
        from statelang.runtime.map_run import MAP_RUN
        client = Client(self.engine)
        for rec in self.engine.store.list_records(MAP_RUN):
            if rec.get("status") != "RUNNING" and not final:
                continue
            d = client.describe_map_run(mapRunArn=rec["mapRunArn"])
            items = d["itemCounts"]
            finished = sum(items[k] for k in ("succeeded", "failed", "timedOut", "aborted"))
            line = (f"map run {rec['mapRunArn'].rsplit(':', 2)[-2]}: {finished:,}/{items['total']:,} items done, "
                    f"{items['running']:,} running, {items['failed']:,} failed ({d['status']})")
            if self._last.get(rec["mapRunArn"]) != line:
                self._last[rec["mapRunArn"]] = line
                click.echo(line, err=True)


def _engine(template, db, clock, handlers, children, doc=None):
    # The runtime engine, not statelang.Engine: a run needs no client, replay or redrive, and not
    # importing them keeps a cold `statelang run` fast (bench/bench_startup.py).
    from statelang.runtime.engine import Engine
    target = db or "memory"
    try:
        if template is not None:
            from statelang.templates.intrinsics import TemplateError
            from statelang.templates.runner import check_functions, template_engine
            try:
                check_functions(template, [doc, children])
            except TemplateError as exc:
                raise UserError(str(exc)) from None
            return template_engine(template, db=target, clock=clock, handlers=handlers, state_machines=children,
                                   eager="always")
        eng = Engine(db=target, clock=clock, handlers=handlers, state_machines=children, eager="always")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a database that cannot open is the user's to fix
        raise UserError(f"cannot open the database {target}: {exc}") from None
    if _uses_services(doc, children):   # loaded only for machines with service tasks: start-up time
        from statelang.runtime.services.local import LocalServices
        eng.resources.services = LocalServices(eng.store, eng.clock, region=eng.region, account_id=eng.account_id)
    eng.resources.clock = eng.clock
    return eng


def _uses_services(doc: Any, children: dict) -> bool:
    return "arn:aws:states:::" in json.dumps([doc, children])


def _uses_event_bus(doc: Any, children: dict) -> bool:
    return "arn:aws:states:::events:putEvents" in json.dumps([doc, children])


def _waiting(engine, ex) -> list[dict]:
    """The states of a RUNNING execution that wait on a task token (or an activity worker)."""
    out = []
    for frame in engine.store.load_frames(ex.execution_arn).values():
        data = frame.get("data") or {}
        if frame.get("phase") == "task" and data.get("token"):
            out.append({"state": frame.get("state"), "taskToken": data["token"]})
    return out


def _explain_running(ex, waiting: list[dict], db: str | None) -> None:
    if not waiting:
        click.echo(f"RUNNING: {ex.execution_arn} has not finished (nothing more could happen in this run).", err=True)
        return
    for w in waiting:
        click.echo(f"RUNNING: state '{w['state']}' waits for its task token:\n  {w['taskToken']}", err=True)
    token = waiting[0]["taskToken"]
    if db:
        click.echo(f"Answer it with:\n  statelang task success {token} --output '{{}}' --db {db}\n"
                   f"  (or: statelang task failure {token} --error Err --cause '...' --db {db})", err=True)
    else:
        click.echo("This run was in memory, so it ends with this command. To answer the token, run it with "
                   "--db sqlite:///run.db, then:\n"
                   "  statelang task success TOKEN --output '{}' --db sqlite:///run.db", err=True)


def validate_command(definition, as_json, parameter):
    from statelang.language.errors import DefinitionError
    from statelang.language.placeholders import placeholder_warnings
    from statelang.language.validation import validate as _validate
    from statelang.templates import is_template
    text = read_definition(definition)
    try:
        doc: Any = _load(text, definition)
    except UserError:
        doc = None
    if doc is not None and is_template(doc):
        template = _template(definition, _pairs(parameter, "--parameter"))
        results = {}
        for logical, sm in template.state_machines.items():
            if sm.definition is None:
                from statelang.language.diagnostics import Diagnostic
                results[logical] = [Diagnostic("INVALID_DEFINITION_SOURCE", sm.problem or "unreadable", "")]
            else:
                results[logical] = [*_validate(sm.definition), *sm.warnings]
    else:
        try:
            diags = _validate(text)
        except DefinitionError as exc:
            diags = exc.diagnostics
        if doc is not None:   # also beside an error: "${FnArn} is not substituted" explains "not a valid ARN"
            diags = [*diags, *placeholder_warnings(doc)]
        results = {None: diags}
    failed = any(d.severity == "ERROR" for ds in results.values() for d in ds)
    if as_json:
        def shape(ds):
            return {"result": "FAIL" if any(d.severity == "ERROR" for d in ds) else "OK",
                    "diagnostics": [d.as_aws() for d in ds], "truncated": False}
        echo_json(shape(results[None]) if None in results else {k: shape(v) for k, v in results.items()})
    else:
        if not results:
            click.echo(f"{definition}: no state machines in the template", err=True)
        for logical, ds in results.items():
            where = definition if logical is None else f"{definition} {logical}"
            for d in ds:
                click.echo(f"{where}: {d.severity} {d.code} at {d.location or '/'}: {d.message}",
                           err=d.severity == "ERROR")
            if not any(d.severity == "ERROR" for d in ds):
                click.echo(f"{where}: OK")
    sys.exit(EXIT_INVALID if failed else 0)
