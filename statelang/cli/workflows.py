"""`statelang workflows list|run` and `statelang demo`: the seed systems from the command line."""

from __future__ import annotations

import json
import sys

import click

from statelang.cli.common import DB_OPTION, UserError, echo_json, read_json_arg


def _rows() -> list[dict]:
    """Every seed workflow: the marketplace and CCS table, then HourBank's."""
    from statelang.workflows.hourbank import WORKFLOWS as HOURBANK
    from statelang.workflows.registry import all_workflows
    rows = all_workflows()
    for r in HOURBANK:
        rows.append({"name": r["name"], "workflow_type": r["workflow_type"], "system": "hourbank",
                     "event_source": r.get("event_source"), "detail_type": r.get("detail_type"),
                     "schedule": r.get("schedule"), "timeout_seconds": r.get("timeout_seconds")})
    return rows


def _fmt_seconds(s: int | None) -> str:
    if not s:
        return "-"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


@click.group()
def workflows() -> None:
    """The seed systems' workflows: marketplace, CCS and HourBank."""


@workflows.command("list")
@click.option("--json", "as_json", is_flag=True)
def workflows_list(as_json):
    """Every workflow with its trigger and timeout."""
    rows = _rows()
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'WORKFLOW':<30} {'TYPE':<20} {'TIMEOUT':>8}  TRIGGER")
    for r in rows:
        trigger = r.get("schedule") or f"{r.get('event_source')}: {r.get('detail_type')}"
        if r.get("execution_name"):
            trigger += f"  -> {r['execution_name']}"
        click.echo(f"{r['name']:<30} {r['workflow_type']:<20} {_fmt_seconds(r.get('timeout_seconds')):>8}  {trigger}")


@workflows.command("run")
@click.argument("name")
@click.option("--input", "input_", help="JSON text, @file.json or -.")
@click.option("--name", "execution_name", default=None, help="Execution name (default: the seed's pattern).")
@DB_OPTION
@click.option("--domain-db", default=None, help="Database of the services' tables (default: beside --db).")
@click.option("--time", "time_", type=click.Choice(["real", "virtual"]), default="virtual")
@click.option("--history", is_flag=True)
def workflows_run(name, input_, execution_name, db, domain_db, time_, history):
    """Start workflow NAME (or its type, e.g. BOOKING_LIFECYCLE) and run it until it ends or waits."""
    from statelang.history.timeline import render_timeline
    from statelang.workflows.api import get_workflow_status, open_system, start_workflow
    from statelang.workflows.registry import find
    try:
        find(name)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    value = read_json_arg(input_, "input", {})
    db = db or "sqlite:///.statelang/statelang.db"
    domain_db = domain_db or _beside(db, "domain.db")
    system = open_system(db=db, domain_db=domain_db, clock=time_)
    out = start_workflow(system.engine, name, value, execution_name)
    if not out["success"]:
        raise UserError(f"{out['error']}: {out['message']}")
    system.engine.run_until_idle()
    status = get_workflow_status(system.engine, out["executionArn"])
    if history:
        click.echo(render_timeline(system.engine.store.history(out["executionArn"])))
    echo_json(status)
    sys.exit(0 if status["status"] in ("SUCCEEDED", "RUNNING") else 1)


def _beside(db: str, filename: str) -> str:
    if db.startswith("sqlite:///") and "/" in db[len("sqlite:///"):]:
        return db.rsplit("/", 1)[0] + "/" + filename
    if db.startswith("sqlite:///"):
        return "sqlite:///" + filename
    return "sqlite:///.statelang/" + filename


@click.command()
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the stories as JSON.")
def demo(db, as_json):
    """Every seed system's story on the virtual clock, as readable timelines."""
    from statelang.workflows.demo import run_demo
    stories = run_demo(db)
    if as_json:
        echo_json(stories)
        return
    for story in stories:
        click.echo(f"\n=== {story['title']} ===")
        click.echo(story["summary"])
        for ex in story["executions"]:
            click.echo(f"\n-- {ex['name']}: {ex['status']}")
            click.echo(ex["timeline"])
    failed = [s["title"] for s in stories if not s["ok"]]
    if failed:
        click.echo(f"\nstories that did not end as expected: {', '.join(failed)}", err=True)
        sys.exit(1)
    click.echo(f"\nall {len(stories)} stories ran end to end offline ({json.dumps(db or 'default database')}).")


@workflows.command("outbox")
@click.option("--domain-db", required=True, help="The services' database (e.g. sqlite:///.statelang/domain.db).")
@click.option("--topic", default=None, help="Only this topic (its name or the end of its ARN).")
@click.option("--json", "as_json", is_flag=True)
def workflows_outbox(domain_db, topic, as_json):
    """The notifications the workflows published (the local SNS outbox)."""
    from statelang.handlers.services import Services
    rows = Services(domain_db).sns.outbox(topic_suffix=topic)
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'SEQ':>5}  {'TOPIC':<45} MESSAGE")
    for r in rows:
        message = r["message"] if len(r["message"]) <= 80 else r["message"][:79] + "…"
        click.echo(f"{r['seq']:>5}  {r['topic_arn'].rsplit(':', 1)[-1]:<45} {message}")
