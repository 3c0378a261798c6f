"""`statelang history|replay|redrive|fork`: the stored past of executions, re-run."""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import datetime
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
from statelang.runtime.storage import history_pages


@click.group()
def history() -> None:
    """Show, export and import execution histories."""


PAGE = 1000   # events per store read: memory and each read stay one page, however long the history


def pages(store, arn: str, after: int, limit: int | None):
    """The events after event id `after`, at most `limit` in all, a page of `PAGE` per read."""
    return history_pages(store, arn, after, limit, PAGE)


def print_history(store, arn: str, after: int, limit: int | None, as_json: bool) -> int | None:
    """Print the events after `after` (at most `limit`) as JSON or as a timeline, a page at a
    time; returns the id of the last event printed."""
    chunks = pages(store, arn, after, limit)
    if as_json:
        return echo_json_pages(chunks)
    first = store.history(arn, limit=1)
    shown = echo_timeline_pages(first[0], chunks, sys.stdout.isatty()) if first else None
    if shown is None:
        click.echo(f"(no events after {after})" if after else "(no events)")
    return shown


def _wire(event: dict) -> dict:
    ts = event["timestamp"]
    return {**event, "timestamp": ts.isoformat()} if isinstance(ts, datetime) else event


def echo_json_pages(chunks) -> int | None:
    """Print the pages' events as one JSON array, as `echo_json` prints a list, a page at a time;
    returns the id of the last event printed."""
    last = None
    sep = "["
    for page in chunks:
        for event in page:
            text = json.dumps(_wire(event), indent=2, ensure_ascii=False)
            click.echo(sep + "\n" + textwrap.indent(text, "  "), nl=False)
            sep, last = ",", event["id"]
    click.echo("[]" if last is None else "\n]")
    return last


def echo_timeline_pages(first: dict, chunks, color: bool) -> int | None:
    """Print the pages as one timeline whose elapsed times count from `first` (the execution's
    start): each page is rendered behind that event, whose line is then left out."""
    from statelang.history.timeline import render_timeline
    last = None
    for page in chunks:
        header, _, *lines = render_timeline([first, *page], color=color).split("\n")
        if last is None:
            click.echo(header)
        click.echo("\n".join(lines))
        last = page[-1]["id"]
    return last


@history.command("show")
@click.argument("execution_arn")
@DB_OPTION
@click.option("--at", "at", type=int, default=None, help="Reconstruct the execution's state at this event.")
@click.option("--after", "after", type=int, default=None, metavar="EVENT_ID",
              help="Only the events after this event id (the next page of an earlier --limit).")
@click.option("--limit", "limit", type=int, default=None, metavar="N",
              help="At most N events; when more follow, a last line names the --after that shows them "
                   "(on stderr with --json).")
@click.option("--json", "as_json", is_flag=True)
def history_show(execution_arn, db, at, after, limit, as_json):
    """A readable timeline; with --at N, the state, its input and the data at event N.

    The history is read a page at a time by event id, so a long one prints as it is read and
    --after/--limit show any stretch of it at the cost of that stretch alone."""
    if after is not None and after < 0:
        raise UserError(f"--after takes an event id (0 or more), not {after}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit takes a number of events (1 or more), not {limit}")
    engine = open_engine(db)
    execution_or_fail(engine, execution_arn)
    store = engine.store
    newest = store.history(execution_arn, limit=1, reverse=True)
    last_id = newest[0]["id"] if newest else 0
    if at is not None:
        if after is not None or limit is not None:
            raise UserError("--at shows the state at one event: it does not take --after or --limit")
        show_at(store, execution_arn, at, last_id, as_json)
        return
    if after is not None and after > last_id:
        raise UserError(f"execution {execution_arn} has no event {after} (its last event is {last_id})")
    shown = print_history(store, execution_arn, after or 0, limit, as_json)
    if limit is not None and shown is not None and store.history(execution_arn, after=shown, limit=1):
        click.echo(f"more events follow: --after {shown}", err=as_json)


def show_at(store, arn: str, at: int, last_id: int, as_json: bool) -> None:
    """The state, its input and the data at event `at`: its thread's events lie among the first
    `at` (ids count from 1), so nothing after it is read."""
    from statelang.history.timeline import state_at
    if not 1 <= at <= last_id:
        raise UserError(f"execution {arn} has no event {at} (it has {last_id})")
    events = [e for page in pages(store, arn, 0, at) for e in page]
    try:
        snapshot = state_at(events, at)
    except KeyError:
        raise UserError(f"execution {arn} has no event {at} (it has {last_id})") from None
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
