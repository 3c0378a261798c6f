"""A worker process for the crash tests: starts or resumes executions of a few fixed machines.

    python tests/crash_worker.py --db URL --effects FILE --machine NAME --start [--name N] [--count K]
    python tests/crash_worker.py --db URL --effects FILE --machine NAME --resume

It is a separate program, not a fixture, because the point is that it dies: the tests kill it
with ``STATELANG_FAULT=<point>:<n>`` (the engine's ``os._exit(137)``) or with SIGKILL, then run a
fresh copy with ``--resume`` until the executions are no longer RUNNING.

The handlers write to a side SQLite file (``--effects``), outside the engine's database, so that
what they record survives exactly as a real side effect would, whatever the engine loses:
``calls`` gets one row per invocation (how often each task really ran) and ``effects`` one row per
idempotency key, inserted with ``OR IGNORE`` as an exactly-once handler would. A key that changed
between an invocation and its re-run after a crash shows up as a second ``effects`` row for the
same (execution, state, map index).

Exit status: 0 when every execution it watches has left RUNNING, 3 when ``--max-seconds`` ran out.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

# Run as a script from anywhere: the repository root holds the `statelang` and `store` packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statelang import Engine  # noqa: E402
from statelang.runtime.storage import ExecutionAlreadyExistsError  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"


def lam(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def task(name: str, fn: str, nxt: str | None = None, **extra) -> dict:
    state = {"Type": "Task", "Resource": lam(fn), **extra}
    if nxt is None:
        state["End"] = True
    else:
        state["Next"] = nxt
    return {name: state}


MACHINES: dict[str, dict] = {
    # A Wait, then Tasks: a step that rests on a durable timer, then a chain of handler calls.
    "wait": {
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Prepare"},
            **task("Prepare", "Work", "Charge", ResultPath="$.prepared"),
            **task("Charge", "Work", "Finish", ResultPath="$.charged"),
            **task("Finish", "Work", ResultPath="$.finished"),
        },
    },
    # 100 inline iterations of two Tasks, ten at a time: many concurrent frames per commit.
    "map": {
        "StartAt": "Items",
        "States": {
            "Items": {
                "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 10, "ResultPath": "$.results",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Square",
                    "States": {**task("Square", "Square", "Label"), **task("Label", "Label")},
                },
                "Next": "Sum",
            },
            **task("Sum", "Sum"),
        },
    },
    # Three branches, one of which fails once and is retried.
    "parallel": {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Parallel", "Next": "Join",
                "Branches": [
                    {"StartAt": "A1", "States": {**task("A1", "Work", "A2"), **task("A2", "Work")}},
                    {"StartAt": "B1", "States": {**task("B1", "Work", "B2"),
                                                 "B2": {"Type": "Pass", "Result": "b", "End": True}}},
                    {"StartAt": "C1", "States": task("C1", "FlakyOnce", Retry=[{
                        "ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2,
                        "BackoffRate": 1.0}])},
                ],
            },
            **task("Join", "Join"),
        },
    },
    # A callback task: its handler only records the token; the worker loop answers it later.
    "token": {
        "StartAt": "Before",
        "States": {
            **task("Before", "Work", "Approve", ResultPath="$.before"),
            "Approve": {
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "Approve", "Payload": {"token.$": "$$.Task.Token", "n.$": "$.n"}},
                "ResultPath": "$.approval", "Next": "After",
            },
            **task("After", "Work", ResultPath="$.after"),
        },
    },
}


def machine_input(machine: str) -> dict:
    """Every execution of a machine gets the same input, so each must produce the same output."""
    if machine == "map":
        return {"items": [{"i": k, "n": k} for k in range(100)]}
    return {"n": 7}


def execution_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


def machine_arn(machine: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"


# -- the side effects ----------------------------------------------------------------------------

SIDE_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, attempt INTEGER NOT NULL, execution TEXT NOT NULL,
    state TEXT NOT NULL, map_index TEXT, pid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY, execution TEXT NOT NULL, state TEXT NOT NULL, map_index TEXT);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, execution TEXT NOT NULL, payload TEXT NOT NULL);
"""


class Side:
    """The side file, one connection per thread (handlers run in the engine's thread pool)."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        with self.connect() as conn:
            conn.executescript(SIDE_SCHEMA)

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
        return conn

    def record(self, ctx) -> None:
        """The call first, then the effect: the call log counts every run, the effect only the
        first one of each key."""
        index = json.dumps(ctx.map_index) if ctx.map_index is not None else None
        conn = self.connect()
        conn.execute("INSERT INTO calls (key, attempt, execution, state, map_index, pid) VALUES (?, ?, ?, ?, ?, ?)",
                     (ctx.idempotency_key, ctx.retry_count, ctx.execution_arn, ctx.state_name, index, os.getpid()))
        conn.execute("INSERT OR IGNORE INTO effects (key, execution, state, map_index) VALUES (?, ?, ?, ?)",
                     (ctx.idempotency_key, ctx.execution_arn, ctx.state_name, index))


class Flaky(Exception):
    """The error `FlakyOnce` raises on its first attempt, which the machine retries."""


def make_handlers(side: Side) -> dict:
    def work(payload, ctx):
        side.record(ctx)
        return {"state": ctx.state_name, "n": payload.get("n") if isinstance(payload, dict) else None}

    def square(payload, ctx):
        side.record(ctx)
        return {"i": payload["i"], "sq": payload["n"] * payload["n"]}

    def label(payload, ctx):
        side.record(ctx)
        return {**payload, "label": f"item-{payload['i']}"}

    def total(payload, ctx):
        side.record(ctx)
        return {"sum": sum(r["sq"] for r in payload["results"]), "count": len(payload["results"])}

    def flaky_once(payload, ctx):
        side.record(ctx)
        if ctx.retry_count == 0:
            raise Flaky("first attempt fails")
        return {"attempt": ctx.retry_count}

    def join(payload, ctx):
        side.record(ctx)
        return {"branches": payload}

    def approve(payload, ctx):
        side.record(ctx)
        side.connect().execute("INSERT OR IGNORE INTO tokens (token, execution, payload) VALUES (?, ?, ?)",
                               (ctx.task_token, ctx.execution_arn, json.dumps(payload)))
        return None

    return {lam("Work"): work, lam("Square"): square, lam("Label"): label, lam("Sum"): total,
            lam("FlakyOnce"): flaky_once, lam("Join"): join, "Approve": approve}


def answer_tokens(engine: Engine, side: Side) -> None:
    """Answer every recorded token; one answered before (or closed) reports so and is skipped."""
    rows = side.connect().execute("SELECT token, payload FROM tokens").fetchall()
    for token, payload in rows:
        engine.send_task_result(token, True, {"approved": json.loads(payload)["n"]})


# -- the program ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--effects", required=True, help="the side SQLite file the handlers write to")
    p.add_argument("--machine", required=True, choices=sorted(MACHINES))
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--start", action="store_true", help="start the executions, then run them")
    mode.add_argument("--resume", action="store_true", help="run what the database holds")
    p.add_argument("--name", default="run", help="execution name (with --count: a prefix)")
    p.add_argument("--count", type=int, default=1, help="how many executions to start or watch")
    p.add_argument("--no-run", action="store_true", help="with --start: start only")
    p.add_argument("--lease", type=float, default=2.0, help="lease seconds: how soon a dead worker's "
                                                            "executions can be taken over")
    p.add_argument("--max-seconds", type=float, default=60.0)
    args = p.parse_args(argv)

    side = Side(args.effects)
    engine = Engine(db=args.db, handlers=make_handlers(side), lease_seconds=args.lease)
    names = [args.name] if args.count == 1 else [f"{args.name}-{i}" for i in range(args.count)]
    arns = [execution_arn(args.machine, n) for n in names]
    if args.start:
        definition = json.dumps(MACHINES[args.machine])
        for name, arn in zip(names, arns, strict=True):
            try:
                engine.start(definition, machine_input(args.machine), arn=arn, name=name,
                             state_machine_arn=machine_arn(args.machine))
            except ExecutionAlreadyExistsError:
                pass
        if args.no_run:
            return 0
    deadline = time.monotonic() + args.max_seconds
    while True:
        engine.run_until_idle()
        answer_tokens(engine, side)
        engine.run_until_idle()
        rows = [engine.store.get_execution(a) for a in arns]
        if all(r is not None and r["status"] != "RUNNING" for r in rows):
            return 0
        if time.monotonic() >= deadline:
            return 3
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
