"""``statelang events`` and ``statelang rules``: the bus from the command line.

The commands open the same database as the rest of the CLI (``--db``), so an event put here
starts the executions its rules target, for the next ``statelang worker`` pass to run.
``events test-pattern`` answers with its exit status (0 match, 1 no match, 2 invalid pattern)
so that scripts can branch on it without parsing output.
"""

from __future__ import annotations

import sys

import click

from statelang.cli.common import DB_OPTION, UserError, echo_json, open_engine, read_json_arg
from statelang.eventbus.bus import EventBus
from statelang.eventbus.patterns import InvalidEventPattern
from statelang.eventbus.targets import EventBridgeError

BUS_OPTION = click.option("--bus", default="default", show_default=True, help="Event bus name.")


def _bus(db: str | None, name: str) -> EventBus:
    engine = open_engine(db)
    try:
        return EventBus(engine, name)
    except EventBridgeError as exc:
        raise UserError(exc.message) from None


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except EventBridgeError as exc:
        raise UserError(f"{exc.code}: {exc.message}") from None


@click.group()
def events() -> None:
    """Put events, test patterns, archive and replay."""


@events.command("put")
@BUS_OPTION
@click.option("--source", required=True)
@click.option("--detail-type", required=True)
@click.option("--detail", default="{}", help="JSON object: text, @file.json or - for stdin.")
@click.option("--resource", "resources", multiple=True, help="A resource ARN (repeatable).")
@DB_OPTION
def events_put(bus, source, detail_type, detail, resources, db):
    """Put one event on a bus; prints the PutEvents response (exit 1 if the entry failed)."""
    value = read_json_arg(detail, "detail")
    b = _bus(db, bus)
    result = _call(b.put_events, [{"Source": source, "DetailType": detail_type, "Detail": value,
                                   "Resources": list(resources)}])
    echo_json(result)
    if result["FailedEntryCount"]:
        sys.exit(1)


@events.command("test-pattern")
@click.option("--pattern", required=True, help="Event pattern: JSON text, @file.json or -.")
@click.option("--event", "event_", required=True, help="Event: JSON text, @file.json or -.")
def events_test_pattern(pattern, event_):
    """Exit 0 if PATTERN matches EVENT, 1 if not, 2 if the pattern is invalid."""
    from statelang.eventbus import test_event_pattern
    p = read_json_arg(pattern, "pattern")
    e = read_json_arg(event_, "event")
    try:
        matched = test_event_pattern(p, e)
    except InvalidEventPattern as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    click.echo("match" if matched else "no match")
    sys.exit(0 if matched else 1)


@events.command("replay")
@BUS_OPTION
@click.option("--archive", required=True)
@click.option("--from", "start", required=True, help="ISO 8601 time: events at or after it.")
@click.option("--to", "end", required=True, help="ISO 8601 time: events before it.")
@click.option("--name", default=None, help="Replay name (default: generated).")
@click.option("--rule", "rules", multiple=True, help="Only to this rule ARN (repeatable).")
@DB_OPTION
def events_replay(bus, archive, start, end, name, rules, db):
    """Replay an archive's events between two times onto its bus."""
    b = _bus(db, bus)
    try:
        result = _call(b.start_replay, archive, start, end, name=name, filter_arns=list(rules) or None)
    except ValueError as exc:
        raise UserError(f"not a time: {exc}") from None
    echo_json(_call(b.describe_replay, result["ReplayArn"].rsplit("/", 1)[1]))


@events.group("archives")
def archives() -> None:
    """Archives of a bus."""


@archives.command("list")
@BUS_OPTION
@DB_OPTION
def archives_list(bus, db):
    echo_json(_bus(db, bus).list_archives())


@archives.command("create")
@click.argument("name")
@BUS_OPTION
@click.option("--pattern", default=None, help="Only events matching this pattern: JSON, @file or -.")
@click.option("--retention-days", type=int, default=0, show_default=True)
@DB_OPTION
def archives_create(name, bus, pattern, retention_days, db):
    value = read_json_arg(pattern, "pattern")
    echo_json(_call(_bus(db, bus).create_archive, name, value, retention_days=retention_days))


@click.group()
def rules() -> None:
    """Rules of an event bus."""


@rules.command("list")
@BUS_OPTION
@click.option("--prefix", default=None, help="Only rules whose name starts with it.")
@DB_OPTION
def rules_list(bus, prefix, db):
    echo_json(_call(_bus(db, bus).list_rules, prefix))


@rules.command("describe")
@click.argument("name")
@BUS_OPTION
@DB_OPTION
def rules_describe(name, bus, db):
    b = _bus(db, bus)
    out = _call(b.describe_rule, name)
    out["Targets"] = b.list_targets_by_rule(name)["Targets"]
    echo_json(out)
