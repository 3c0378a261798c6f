"""The `statelang` command: click commands over the library, the store and the server.

Every command turns our own errors (an invalid definition, malformed JSON, an unknown execution,
an unreachable database) into one clear line on stderr and a non-zero exit status — never a
traceback.
"""


from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from statelang.cli.common import (
    DB_OPTION,
    EXIT_FAILED,
    Seconds,
    UserError,
    echo_json,
    execution_or_fail,
    load_handlers,
    open_engine,
    read_definition,
    read_json_arg,
)
from statelang.runtime.worker import MIN_POLL_SECONDS

# Command groups in modules of their own, imported only when their command runs (or for --help):
# `statelang run` of a small machine must not pay for the event bus, the server or replay.
LAZY_COMMANDS = {
    **{n: "statelang.cli.history" for n in ("history", "replay", "redrive", "fork")},
    **{n: "statelang.cli.events" for n in ("events", "rules")},
    **{n: "statelang.cli.workflows" for n in ("workflows", "demo")},
    **{n: "statelang.cli.serve" for n in ("serve", "graph")},
}


class StatelangGroup(click.Group):
    """Turns a database failure in any command into one line and exit status 2, not a traceback;
    loads the command groups of LAZY_COMMANDS when they are asked for."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in LAZY_COMMANDS:
            import importlib
            cmd = getattr(importlib.import_module(LAZY_COMMANDS[name]), name)
            self.add_command(cmd, name)
        return cmd

    def invoke(self, ctx):
        from statelang.runtime.storage import StoreFault
        try:
            return super().invoke(ctx)
        except StoreFault as exc:   # the database cannot be used: its message names it
            raise UserError(str(exc)) from None


@click.group(cls=StatelangGroup)
@click.version_option(package_name="statelang")
def main() -> None:
    """Run Amazon States Language state machines offline."""


@main.command()
@click.argument("definition")
@click.option("--input", "input_", help="Execution input: JSON text, @file.json or - for stdin.")
@click.option("--handlers", multiple=True, help="Python module (or module:NAME) holding the task handlers.")
@click.option("--time", "time_", type=click.Choice(["real", "virtual"]), default="real",
              help="virtual: waits, retries and timeouts jump instantly.")
@click.option("--history", is_flag=True, help="Print the execution's history as a timeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("--mock-config", help="AWS Step Functions Local MockConfigFile to answer tasks.")
@click.option("--test-case", help="Test case of the mock config to use.")
@click.option("--state-machine-name", default=None, help="Name used in ARNs and for the mock config.")
@click.option("--state-machine", "state_machine", multiple=True, metavar="LOGICAL_ID|NAME=FILE",
              help="For a template: the machine to run (logical id or name). NAME=FILE: a child machine "
                   "that states:startExecution can start by name or ARN (repeatable).")
@click.option("--type", "type_", type=click.Choice(["STANDARD", "EXPRESS"], case_sensitive=False), default=None,
              help="Standard or Express semantics (default: the template's, else STANDARD).")
@click.option("--parameter", multiple=True, metavar="NAME=VALUE", help="A template parameter (repeatable).")
@click.option("--sub", multiple=True, metavar="NAME=VALUE",
              help="Substitute ${NAME} in a definition, as DefinitionSubstitutions does (repeatable).")
@click.option("--var", multiple=True, metavar="NAME=VALUE",
              help="Terraform templatefile variable: ${NAME} replaced in the file's text before it is read "
                   "(so unquoted numbers work; $${ is a literal ${) (repeatable).")
@click.option("--db", default=None, help="Run in this database (sqlite:///run.db) instead of in memory, so a run "
                                         "that waits for a task token can be answered later.")
@click.option("--progress/--no-progress", default=None,
              help="Report distributed Map runs' progress on stderr (default: when stderr is a terminal).")
def run(definition, input_, handlers, time_, history, as_json, mock_config, test_case, state_machine_name,
        state_machine, type_, parameter, sub, var, db, progress):
    """Run DEFINITION (.asl.json/.asl.yaml) or a machine of a SAM/CloudFormation/CDK TEMPLATE once, and
    print its output."""
    from statelang.cli.running import run_command
    run_command(definition, input_, handlers, time_, history, as_json, mock_config, test_case, state_machine_name,
                state_machine, type_, parameter, sub, db, var, progress=progress)


@main.command()
@click.argument("definition")
@click.option("--json", "as_json", is_flag=True, help="Print AWS's ValidateStateMachineDefinition shape.")
@click.option("--parameter", multiple=True, metavar="NAME=VALUE", help="A template parameter (repeatable).")
def validate(definition, as_json, parameter):
    """Check DEFINITION (or every state machine of a TEMPLATE) and report every problem with its
    location; a ${...} left unsubstituted is a warning. Exit 2 if invalid."""
    from statelang.cli.running import validate_command
    validate_command(definition, as_json, parameter)


def _fmt_time(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if isinstance(t, datetime) else (t or "")


@main.group()
def executions() -> None:
    """List, describe and stop executions stored in the database."""


@executions.command("list")
@DB_OPTION
@click.option("--status", type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED",
                                             "PENDING_REDRIVE"]))
@click.option("--state-machine", help="State machine ARN or name.")
@click.option("--json", "as_json", is_flag=True)
def executions_list(db, status, state_machine, as_json):
    """Executions, newest first."""
    engine = open_engine(db)
    sm = state_machine
    if sm and not sm.startswith("arn:"):
        sm = f"arn:aws:states:{engine.region}:{engine.account_id}:stateMachine:{sm}"
    rows = sorted(engine.store.list_executions(sm, status), key=lambda r: r["startDate"], reverse=True)
    if as_json:
        echo_json([{k: r.get(k) for k in ("executionArn", "stateMachineArn", "name", "status",
                                           "startDate", "stopDate")} for r in rows])
        return
    click.echo(f"{'STATUS':<10} {'STARTED':<19} {'STOPPED':<19} EXECUTION")
    for r in rows:
        click.echo(f"{r['status']:<10} {_fmt_time(r['startDate']):<19} {_fmt_time(r.get('stopDate')):<19} "
                   f"{r['executionArn']}")


@executions.command("describe")
@click.argument("execution_arn")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True)
def executions_describe(execution_arn, db, as_json):
    """Status, input, output, error and cause of one execution."""
    engine = open_engine(db)
    row = execution_or_fail(engine, execution_arn)
    out = {k: row.get(k) for k in ("executionArn", "stateMachineArn", "name", "status", "startDate",
                                    "stopDate", "input", "output", "error", "cause", "redriveCount")}
    if as_json:
        echo_json(out)
        return
    for k, v in out.items():
        if v is not None:
            click.echo(f"{k:>16}: {_fmt_time(v) if isinstance(v, datetime) else v}")


@executions.command("stop")
@click.argument("execution_arn")
@DB_OPTION
@click.option("--error", default=None)
@click.option("--cause", default=None)
def executions_stop(execution_arn, db, error, cause):
    """Abort a running execution."""
    engine = open_engine(db)
    row = execution_or_fail(engine, execution_arn)
    if row["status"] != "RUNNING":
        raise UserError(f"execution {execution_arn} is {row['status']}, not RUNNING")
    row = engine.stop_execution(execution_arn, error, cause)
    click.echo(f"{row['status']} {_fmt_time(row.get('stopDate'))}")


@executions.command("history")  # also: statelang history show
@click.argument("execution_arn")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True)
def executions_history(execution_arn, db, as_json):
    """The execution's history events."""
    _print_history(execution_arn, db, as_json)


def _print_history(execution_arn, db, as_json):
    """The whole history, read and printed a page at a time by event id (as `history show`)."""
    from statelang.cli.history import print_history
    engine = open_engine(db)
    execution_or_fail(engine, execution_arn)
    print_history(engine.store, execution_arn, 0, None, as_json)


@main.group()
def task() -> None:
    """Answer a waiting task token: success, failure or heartbeat."""


def _token_answer(status: str, token: str) -> None:
    if status == "unknown":
        raise UserError(f"TaskDoesNotExist: no task is waiting on token {token}")
    if status == "closed":
        raise UserError(f"TaskTimedOut: the task of token {token} is already over")


_ANSWER_HANDLERS = click.option(
    "--handlers", multiple=True,
    help="Python module (or module:NAME) with the handlers of the steps that follow the answer; they "
         "run here, now (a running `statelang worker` with its own handlers can run them instead).")


@task.command("success")
@click.argument("token")
@click.option("--output", default="{}", help="JSON text, @file.json or -.")
@DB_OPTION
@_ANSWER_HANDLERS
def task_success(token, output, db, handlers):
    engine = open_engine(db, handlers)
    _token_answer(engine.send_task_result(token, True, output=read_json_arg(output, "output")), token)
    engine.run_until_idle()
    click.echo("ok")


@task.command("failure")
@click.argument("token")
@click.option("--error", default=None)
@click.option("--cause", default=None)
@DB_OPTION
@_ANSWER_HANDLERS
def task_failure(token, error, cause, db, handlers):
    engine = open_engine(db, handlers)
    _token_answer(engine.send_task_result(token, False, error=error, cause=cause), token)
    engine.run_until_idle()
    click.echo("ok")


@task.command("heartbeat")
@click.argument("token")
@DB_OPTION
def task_heartbeat(token, db):
    engine = open_engine(db)
    _token_answer(engine.send_task_heartbeat(token), token)
    click.echo("ok")


@main.command()
@DB_OPTION
@click.option("--handlers", multiple=True, help="Python module (or module:NAME) holding the task handlers.")
@click.option("--poll", default=1.0, show_default=True, type=Seconds(MIN_POLL_SECONDS),
              help="Seconds between polls of the database.")
@click.option("--once", is_flag=True, help="Run what is runnable now, then exit.")
@click.option("--lease-seconds", type=Seconds(1), default=60.0, show_default=True,
              help="How long a claimed execution stays this worker's without a renewal.")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Executions stepped at once, and task calls of one step run at once (threads).")
@click.option("--metrics-seconds", type=Seconds(0), default=60.0, show_default=True,
              help="Print the worker's counters (claims, fenced, poisoned, renewals) this often; 0: never.")
def worker(db, handlers, poll, once, lease_seconds, concurrency, metrics_seconds):
    """Run executions, fire due timers and event-bus schedules until stopped (Ctrl-C)."""
    from statelang.eventbus.integration import attach
    engine = open_engine(db, handlers)
    engine.lease_seconds = lease_seconds
    engine.max_workers = concurrency
    attach(engine)   # schedules and delivery retries: each due time fires once across workers
    if once:
        n = engine.run_until_idle()
        click.echo(f"{n} execution steps")
        return
    click.echo(f"worker {engine.worker_id} on {db or 'default database'}; Ctrl-C to stop", err=True)
    if metrics_seconds > 0:
        _report_metrics(engine, metrics_seconds)
    try:
        engine.serve_forever(poll)
    except KeyboardInterrupt:
        engine.shutdown()


def _report_metrics(engine, every: float) -> None:
    """A line on stderr every `every` seconds with the worker's counters (claims, fenced commits,
    poisoned executions, lease renewals), so that a fleet's logs show how it fares."""
    import threading
    stopped = threading.Event()   # never set: the daemon thread ends with the worker process

    def report() -> None:
        while not stopped.wait(every):
            counts = " ".join(f"{k}={v}" for k, v in sorted(engine.metrics.items()))
            click.echo(f"worker {engine.worker_id} metrics: {counts}", err=True)

    threading.Thread(target=report, name="statelang-metrics", daemon=True).start()


@main.command()
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print workers and leases as JSON.")
def workers(db, as_json):
    """Workers that heartbeat into the database, the executions each holds a lease on, and how
    long ago each was last heard from. A worker silent longer than the takeover time is shown
    STALE: its leases are free to any live worker."""
    engine = open_engine(db)
    now = engine.clock.now()
    takeover = engine.takeover_seconds
    leases: dict[str, list] = {}
    for lease in engine.store.list_leases():
        leases.setdefault(lease.owner, []).append(lease)
    out = []
    for w in engine.store.list_workers():
        age = (now - w.heartbeat).total_seconds()
        out.append({"workerId": w.worker_id, "host": w.host, "pid": w.pid, "started": w.started,
                    "lastHeartbeat": w.heartbeat, "ageSeconds": round(age, 1),
                    "state": "LIVE" if age < takeover else "STALE",
                    "leases": [{"executionArn": x.execution_arn, "expires": x.expires}
                               for x in leases.pop(w.worker_id, [])]})
    # Leases of engines that do not heartbeat (`worker --once`, a server's own engine).
    for owner, held in sorted(leases.items()):
        out.append({"workerId": owner, "host": None, "pid": None, "started": None, "lastHeartbeat": None,
                    "ageSeconds": None, "state": "NO HEARTBEAT",
                    "leases": [{"executionArn": x.execution_arn, "expires": x.expires} for x in held]})
    engine.close()
    if as_json:
        echo_json({"takeoverSeconds": takeover, "workers": out})
        return
    if not out:
        click.echo("no workers")
        return
    click.echo(f"{'WORKER':<18} {'STATE':<12} {'HOST':<16} {'PID':>7} {'STARTED':<19} {'HEARTBEAT':<19} "
               f"{'AGE':>6} LEASES")
    for w in out:
        age = "" if w["ageSeconds"] is None else f"{w['ageSeconds']:.1f}s"
        click.echo(f"{w['workerId']:<18} {w['state']:<12} {w['host'] or '':<16} {w['pid'] or '':>7} "
                   f"{_fmt_time(w['started']):<19} {_fmt_time(w['lastHeartbeat']):<19} {age:>6} "
                   f"{len(w['leases'])}")
        for x in w["leases"]:
            click.echo(f"    {x['executionArn']}  until {_fmt_time(x['expires'])}")


@main.command("test-state")
@click.argument("definition")
@click.option("--input", "input_", help="The state's input: JSON text, @file.json or -.")
@click.option("--state-name", default=None, help="The state to test, when DEFINITION is a whole machine.")
@click.option("--inspection-level", type=click.Choice(["INFO", "DEBUG", "TRACE"]), default="INFO")
@click.option("--variables", default=None, help="Variables visible to the state (JSON object).")
@click.option("--mock", default=None, help='A mocked result: {"result": ...} or {"errorOutput": {...}}.')
@click.option("--retrier-retry-count", type=int, default=None, help="Retries already made (stateConfiguration).")
@click.option("--handlers", multiple=True)
def test_state_cmd(definition, input_, state_name, inspection_level, variables, mock, retrier_retry_count,
                   handlers):
    """Run one state, as AWS's TestState API does: output, error, next state, inspection data."""
    from statelang.api.teststate import TestStateError, test_state
    config = {"retrierRetryCount": retrier_retry_count} if retrier_retry_count is not None else None
    try:
        out = test_state(read_definition(definition), read_json_arg(input_, "input", {}),
                         state_name=state_name, inspection_level=inspection_level,
                         variables=read_json_arg(variables, "variables"), mock=read_json_arg(mock, "mock"),
                         handlers=load_handlers(handlers), state_configuration=config)
    except TestStateError as exc:
        raise UserError(str(exc)) from None
    echo_json(out)
    sys.exit(0 if out.get("status") in ("SUCCEEDED", "CAUGHT_ERROR") else EXIT_FAILED)


if __name__ == "__main__":
    main()
