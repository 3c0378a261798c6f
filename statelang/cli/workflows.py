"""`statelang workflows list|run` and `statelang demo`: the seed systems from the command line."""

from __future__ import annotations

import json
import math
import sys
from datetime import timedelta

import click

from statelang.cli.common import DB_OPTION, UserError, echo_json, read_json_arg


def _rows() -> list[dict]:
    """Every seed workflow: marketplace, CCS and HourBank, one table."""
    from statelang.workflows.registry import all_workflows
    return all_workflows()


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


def _system(db, domain_db, time_="virtual"):
    from statelang.workflows.console import open_console
    db = db or "sqlite:///.statelang/statelang.db"
    return open_console(db, domain_db or _beside(db, "domain.db"), virtual=time_ == "virtual")


def _done(system, time_="virtual"):
    from statelang.workflows.console import close_console
    close_console(system, virtual=time_ == "virtual")


DOMAIN_OPTION = click.option("--domain-db", default=None, help="Database of the services' tables (default: beside --db).")


@workflows.command("run")
@click.argument("name")
@click.option("--input", "input_", help="JSON text, @file.json or -.")
@click.option("--name", "execution_name", default=None, help="Execution name (default: the seed's pattern).")
@DB_OPTION
@DOMAIN_OPTION
@click.option("--time", "time_", type=click.Choice(["real", "virtual"]), default="virtual")
@click.option("--to-end", is_flag=True, help="Let the virtual clock jump past every wait until the workflow ends.")
@click.option("--history", is_flag=True)
def workflows_run(name, input_, execution_name, db, domain_db, time_, to_end, history):
    """Start workflow NAME (or its type, e.g. BOOKING_LIFECYCLE) and run it until it ends or waits
    for a person (see `workflows waiting`, `answer`, `advance`)."""
    from statelang.history.timeline import render_timeline
    from statelang.workflows.api import get_workflow_status, start_workflow
    from statelang.workflows.console import settle
    from statelang.workflows.registry import find
    try:
        find(name)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    value = read_json_arg(input_, "input", {})
    system = _system(db, domain_db, time_)
    out = start_workflow(system.engine, name, value, execution_name)
    if not out["success"]:
        raise UserError(f"{out['error']}: {out['message']}")
    if to_end or time_ == "real":
        system.engine.run_until_idle()
    else:
        settle(system)
    status = get_workflow_status(system.engine, out["executionArn"])
    if history:
        click.echo(render_timeline(system.engine.store.history(out["executionArn"])))
    status["waitingFor"] = [_wait_view(w) for w in _waits(system) if w.execution_arn == out["executionArn"]]
    _done(system, time_)
    echo_json(status)
    sys.exit(0 if status["status"] in ("SUCCEEDED", "RUNNING") else 1)


def _waits(system):
    from statelang.workflows.console import waits
    return waits(system)


def _wait_view(w) -> dict:
    return {"executionArn": w.execution_arn, "state": w.state, "taskToken": w.token, "deadline": w.deadline,
            "asks": w.asks}


@workflows.command("waiting")
@DB_OPTION
@DOMAIN_OPTION
@click.option("--json", "as_json", is_flag=True)
def workflows_waiting(db, domain_db, as_json):
    """What the running seed workflows wait for: state, task token, deadline, what was asked."""
    system = _system(db, domain_db)
    rows, now = [_wait_view(w) for w in _waits(system)], system.engine.clock.now().isoformat()
    _done(system)
    if as_json:
        echo_json({"now": now, "waiting": rows})
        return
    click.echo(f"virtual time {now}")
    for r in rows:
        click.echo(f"- {r['executionArn'].split(':execution:')[-1]}  at {r['state']}  until {r['deadline'] or '-'}")
        click.echo(f"  asks {json.dumps(r['asks'])}")
        click.echo(f"  token {r['taskToken']}")
    if not rows:
        click.echo("nothing is waiting for an answer")


@workflows.command("answer")
@click.argument("token")
@click.option("--output", default=None, help="The answer (JSON text, @file.json or -); a success.")
@click.option("--error", default=None, help="Answer with a failure of this error name instead.")
@click.option("--cause", default=None)
@DB_OPTION
@DOMAIN_OPTION
def workflows_answer(token, output, error, cause, db, domain_db):
    """Answer a waiting task (SendTaskSuccess/Failure) and run the next steps with the seeds' handlers."""
    from statelang.workflows.console import answer
    value = read_json_arg(output, "output", {})
    system = _system(db, domain_db)
    status = answer(system, token, value, error, cause)
    _done(system)
    if status != "ok":
        raise UserError(f"the task token is {'unknown' if status == 'unknown' else 'no longer waiting (closed)'}")
    click.echo("answered")


@workflows.command("advance")
@click.argument("duration")
@DB_OPTION
@DOMAIN_OPTION
def workflows_advance(duration, db, domain_db):
    """Move the virtual clock by DURATION (90s, 30m, 12h, 7d) and run what falls due on the way."""
    from statelang.workflows.console import advance
    seconds = _seconds(duration)
    system = _system(db, domain_db)
    try:
        system.engine.clock.now() + timedelta(seconds=seconds)
    except OverflowError:
        _done(system)
        raise UserError(f"duration {duration!r} would move the clock past the year 9999") from None
    steps = advance(system, seconds)
    now = system.engine.clock.now().isoformat()
    _done(system)
    click.echo(f"virtual time {now} ({steps} execution steps ran)")


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise UserError(f"duration {text!r} is not a number of seconds or a number with s, m, h or d") from None
    if not math.isfinite(value):
        raise UserError(f"duration {text!r} is not a finite number of seconds")
    if value < 0:
        raise UserError(f"duration {text!r} is negative: the clock only moves forward")
    return value


@workflows.command("seed")
@DB_OPTION
@DOMAIN_OPTION
def workflows_seed(db, domain_db):
    """Load the sample services, providers, companies and members the seeds' examples use."""
    from statelang.workflows.console import load_seed_data
    system = _system(db, domain_db)
    counts = load_seed_data(system)
    _done(system)
    echo_json(counts)


@workflows.command("add-service")
@click.argument("system_name", metavar="SYSTEM", type=click.Choice(["marketplace", "hourbank"]))
@click.argument("service_id")
@click.option("--provider", required=True)
@click.option("--price", type=float, default=100.0, help="Marketplace price.")
@click.option("--title", default="", help="HourBank title.")
@DB_OPTION
@DOMAIN_OPTION
def workflows_add_service(system_name, service_id, provider, price, title, db, domain_db):
    """Offer SERVICE_ID from --provider in the marketplace or in HourBank."""
    from statelang.workflows.console import add_hourbank_service
    system = _system(db, domain_db)
    if system_name == "marketplace":
        system.marketplace.add_service(service_id, provider, price)
    else:
        add_hourbank_service(system, service_id, provider, title)
    _done(system)
    click.echo(f"{system_name} service {service_id} offered by {provider}")


@workflows.command("add-provider")
@click.argument("provider_id")
@click.option("--email", required=True)
@DB_OPTION
@DOMAIN_OPTION
def workflows_add_provider(provider_id, email, db, domain_db):
    """An active marketplace provider profile."""
    from statelang.workflows.console import add_marketplace_provider
    system = _system(db, domain_db)
    add_marketplace_provider(system, provider_id, email)
    _done(system)
    click.echo(f"marketplace provider {provider_id} <{email}>")


@workflows.command("add-member")
@click.argument("user_id")
@click.option("--hours", type=float, default=0.0, help="Hours granted once to the new member.")
@click.option("--response-hours", type=click.IntRange(2, 72), default=24, help="The member's answer time as provider.")
@DB_OPTION
@DOMAIN_OPTION
def workflows_add_member(user_id, hours, response_hours, db, domain_db):
    """An HourBank member with an account (and hours)."""
    from statelang.workflows.console import add_hourbank_member
    system = _system(db, domain_db)
    add_hourbank_member(system, user_id, hours, response_hours)
    _done(system)
    click.echo(f"hourbank member {user_id} with {hours:g} h")


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
