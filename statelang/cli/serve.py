"""`statelang serve` and `statelang graph`.

`serve` runs one process: the AWS Step Functions and EventBridge JSON APIs, the seeds' GraphQL,
health, metrics and the console, with the engine's worker beside them. SIGTERM and Ctrl-C stop it
gracefully (see `server.serving.Server.stop`). Secrets may come from the environment
(STATELANG_SECRET_KEY, STATELANG_TOKEN) so that they do not show in the process list.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from statelang.cli.common import Seconds
from statelang.runtime.worker import MIN_POLL_SECONDS


@click.command()
@click.option("--db", default=None, help="Database URL (default: sqlite under --data-dir).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but an explicit loopback address (127.0.0.1, ::1) needs "
                   "--access-key/--secret-key or --token.")
@click.option("--port", default=8083, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one).")
@click.option("--handlers", multiple=True, help="Task handlers: 'pkg.module' or 'pkg.module:NAME' (repeatable).")
@click.option("--access-key", default=None, envvar="STATELANG_ACCESS_KEY", help="Access key id for SigV4 requests.")
@click.option("--secret-key", default=None, envvar="STATELANG_SECRET_KEY", help="Secret key for SigV4 requests.")
@click.option("--token", default=None, envvar="STATELANG_TOKEN", help="Bearer token accepted instead of SigV4.")
@click.option("--data-dir", default=".statelang", show_default=True, type=click.Path(file_okay=False),
              help="The only directory the server reads or writes files in.")
@click.option("--workflows", "seed_workflows", is_flag=True,
              help="Load the seed workflows, their services and handlers (GraphQL startWorkflow needs them).")
@click.option("--max-body", default=2 * 1024 * 1024, show_default=True, type=int, help="Largest request body, bytes.")
@click.option("--poll", default=0.5, show_default=True, type=Seconds(MIN_POLL_SECONDS),
              help="Worker poll interval, seconds.")
@click.option("--timeout", default=30, show_default=True, type=int,
              help="Seconds a connection may stay silent (idle, or stalled mid-request) before it is closed.")
@click.option("--max-connections", default=100, show_default=True, type=int,
              help="Open connections at most; more wait in the listen backlog.")
@click.option("--threads", default=8, show_default=True, type=int, help="Requests served at once.")
def serve(db, host, port, handlers, access_key, secret_key, token, data_dir, seed_workflows, max_body, poll,
          timeout, max_connections, threads):
    """Serve the Step Functions API, GraphQL and the web console over HTTP."""
    from statelang.cli.common import UserError, load_handlers, open_engine
    from statelang.server.app import setup_logging
    from statelang.server.security import Guard
    from statelang.server.serving import Limits, Server

    setup_logging()
    try:
        guard = Guard(host, access_key, secret_key, token, max_body)
        limits = Limits(timeout=timeout, max_connections=max_connections, threads=threads, max_body=max_body)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    data = Path(data_dir)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the data directory {data}: {exc.strerror}") from None
    db = db or f"sqlite:///{(data / 'statelang.db').resolve()}"
    if seed_workflows:
        from statelang.workflows.api import open_system
        system = open_system(db, f"sqlite:///{(data / 'domain.db').resolve()}", clock="real")
        engine = system.engine
        engine.resources.update(load_handlers(handlers))
        from statelang.workflows.triggers import install_triggers
        install_triggers(system)   # the seeds' auto-trigger rules: a published event starts its workflow
    else:
        engine = open_engine(db, handlers)
        from statelang import eventbus
        eventbus.install(engine)
    from statelang.eventbus.integration import attach
    attach(engine)   # the served EventBridge API's schedules fire (once per due time across servers)
    try:
        server = Server(engine, host, port, guard, data, poll_seconds=poll, limits=limits)
    except OSError as exc:
        engine.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    click.echo(f"statelang serving {server.url} (console {server.url}/console/)", err=True)
    while not stop.wait(0.5):
        pass
    server.stop()


@click.command()
@click.argument("definition", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
def graph(definition, fmt, output):
    """Draw a state machine definition as Mermaid, Graphviz DOT or SVG."""
    from statelang.cli.common import UserError, read_definition
    from statelang.server.graph import render
    text = read_definition(definition)
    try:
        out = render(text, fmt)
    except ValueError as exc:   # JSON errors are ValueErrors too
        raise UserError(f"cannot draw {definition}: {exc}") from None
    if output:
        Path(output).write_text(out)
    else:
        sys.stdout.write(out)
