"""`statelang history|replay|redrive|fork`: the stored past of executions, re-run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from statelang.cli.common import (
    DB_OPTION,
    EXIT_FAILED,
    UserError,
    echo_json,
    execution_or_fail,
    load_handlers,
    open_engine,
    read_definition,
)


@click.group()
def history() -> None:
    """Show, export and import execution histories."""


@history.command("show")
@click.argument("execution_arn")
@DB_OPTION
@click.option("--at", "at", type=int, default=None, help="Reconstruct the execution's state at this event.")
@click.option("--json", "as_json", is_flag=True)
def history_show(execution_arn, db, at, as_json):
    """A readable timeline; with --at N, the state, its input and the data at event N."""
    from statelang.history.timeline import render_timeline, state_at
    engine = open_engine(db)
    execution_or_fail(engine, execution_arn)
    events = engine.store.history(execution_arn)
    if at is None:
        if as_json:
            echo_json(events)
        else:
            click.echo(render_timeline(events, color=sys.stdout.isatty()))
        return
    try:
        snapshot = state_at(events, at)
    except KeyError:
        raise UserError(f"execution {execution_arn} has no event {at} (it has {len(events)})") from None
    if as_json:
        echo_json(snapshot)
        return
    click.echo(f"event {at}: {snapshot['event']['type']}")
    click.echo(f"state: {snapshot['state'] or '(none yet)'}" +
               (f" (entered at event {snapshot['entered_event']})" if snapshot["entered_event"] else ""))
    click.echo("input: " + json.dumps(snapshot["input"]))
    if snapshot.get("output") is not None:
        click.echo("output so far: " + json.dumps(snapshot["output"]))
    if snapshot["variables"]:
        click.echo("variables: " + json.dumps(snapshot["variables"]))


@history.command("export")
@click.argument("execution_arn")
@DB_OPTION
def history_export(execution_arn, db):
    """Print a portable JSON document: definition, input, events."""
    from statelang.history.replay import dumps_document
    engine = open_engine(db)
    execution_or_fail(engine, execution_arn)
    click.echo(dumps_document(engine.export_history(execution_arn)))


@history.command("import")
@click.argument("file")
@DB_OPTION
def history_import(file, db):
    """Recreate an exported execution in the database."""
    from statelang.runtime.storage import ExecutionAlreadyExistsError
    engine = open_engine(db)
    try:
        arn = engine.import_history(Path(file).read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot import {file}: {exc}") from None
    except ExecutionAlreadyExistsError:
        raise UserError(f"the database already holds the execution of {file}") from None
    click.echo(arn)


@click.command()
@click.argument("source")
@DB_OPTION
@click.option("--definition", "definition", help="Replay against this definition instead of the recorded one.")
@click.option("--handlers", multiple=True, help="Call these handlers instead of feeding the recorded results.")
@click.option("--json", "as_json", is_flag=True)
def replay(source, db, definition, handlers, as_json):
    """Re-run SOURCE (an execution ARN or an exported .json file) from its recorded history.
    Exit 0 when the replay reproduces it, 1 at the first divergence."""
    from statelang.history.replay import replay as _replay
    new_def = read_definition(definition) if definition else None
    hs = load_handlers(handlers) if handlers else None
    try:
        if source.startswith("arn:"):
            engine = open_engine(db)
            execution_or_fail(engine, source)
            result = engine.replay(source, new_def, hs)
        else:
            try:
                text = Path(source).read_text()
            except OSError as exc:
                raise UserError(f"cannot read {source}: {exc.strerror}") from None
            result = _replay(text, new_def, hs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        d = result.divergence
        echo_json({"ok": result.ok, "divergence": None if d is None else {
            "eventId": d.event_id, "reason": d.reason, "state": d.state, "expected": d.expected, "actual": d.actual}})
    elif result.ok:
        click.echo(f"replay reproduced all {len(result.events)} events")
    else:
        click.echo(f"replay diverged at {result.divergence}", err=True)
    sys.exit(0 if result.ok else EXIT_FAILED)


@click.command()
@click.argument("execution_arn")
@DB_OPTION
@click.option("--handlers", multiple=True)
@click.option("--wait/--no-wait", default=True, help="Run it now (until it ends or waits).")
def redrive(execution_arn, db, handlers, wait):
    """Continue a FAILED, TIMED_OUT or ABORTED execution from where it broke."""
    from statelang.history.redrive import ExecutionNotRedrivable
    engine = open_engine(db, handlers)
    execution_or_fail(engine, execution_arn)
    try:
        row = engine.redrive(execution_arn)
    except ExecutionNotRedrivable as exc:
        raise UserError(str(exc)) from None
    if wait:
        engine.run_until_idle()
        row = engine.store.get_execution(execution_arn)
    click.echo(f"{row['status']} (redrive {row['redriveCount']})")


@click.command()
@click.argument("execution_arn")
@click.option("--from-event", type=int, required=True)
@DB_OPTION
@click.option("--handlers", multiple=True)
@click.option("--definition", "definition")
@click.option("--name", default=None)
def fork(execution_arn, from_event, db, handlers, definition, name):
    """Start a new execution at the state running at --from-event, with the data it had then."""
    from statelang.history.redrive import fork as _fork
    engine = open_engine(db, handlers)
    execution_or_fail(engine, execution_arn)
    try:
        new = _fork(engine, execution_arn, from_event, definition=read_definition(definition) if definition else None,
                    name=name)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    engine.run_until_idle()
    row = engine.store.get_execution(new)
    click.echo(f"{new} {row['status']}")
