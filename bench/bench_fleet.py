"""The fleet's figures: executions/s with 1, 2 and 4 `statelang worker` processes on one database
(PostgreSQL, and an SQLite file for comparison), and the time a killed worker's execution waits
before another worker takes it over.

    python -m bench.bench_fleet [--executions 600] [--workers 1,2,4] [--db sqlite,postgres]
                                [--takeover-trials 3] [--pg-url URL]

Throughput: `--executions` executions of a small machine (Pass, two Tasks whose handler returns at
once) are created first; then N worker processes start together. The rate is the executions
finished per second between the first and the last execution's stopDate, so the workers' start-up
(the import of statelang) is not counted. Each N runs on a fresh database. The figures are ratios
against the one-worker run of the same backend measured in the same run; the machine's core count
is printed with them (workers beyond the cores compete for them).

Takeover: two workers with a 30 s lease; a 4 s handler starts on one, which is SIGKILLed; the
figure is the time from the kill to the handler's start on the other worker (the heartbeat's
staleness, `Engine.takeover_seconds`, plus the poll), against the 30 s the lease alone would take.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.fleet_helpers import Fleet, lam

SMALL = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Pass", "Result": {"n": 1}, "Next": "First"},
    "First": {"Type": "Task", "Resource": lam("Work"), "Next": "Second"},
    "Second": {"Type": "Task", "Resource": lam("Work"), "End": True}}}
SLOW = {"StartAt": "Slow", "States": {"Slow": {"Type": "Task", "Resource": lam("Work"),
                                               "Parameters": {"sleep": 4, "n": 0}, "End": True}}}


def throughput(db: str, folder: Path, workers: int, executions: int) -> dict:
    fleet = Fleet(db, folder, lease_seconds=30, extra_env={"FLEET_CALLS": ""})   # no call log: speed
    try:
        sm = fleet.machine("small", SMALL)
        arns = [fleet.start(sm, f"e{i}", {}) for i in range(executions)]
        for _ in range(workers):
            fleet.start_worker()
        rows = fleet.wait_all(arns, timeout=600)
        done = [r for r in rows.values() if r["status"] == "SUCCEEDED"]
        if len(done) != executions:
            raise RuntimeError(f"{executions - len(done)} executions did not succeed")
        stops = sorted(r["stopDate"] for r in done)
        span = (stops[-1] - stops[0]).total_seconds()
        return {"rate": (executions - 1) / span, "span": span}
    finally:
        fleet.stop()


def takeover(db: str, folder: Path) -> float:
    fleet = Fleet(db, folder, lease_seconds=30)
    try:
        workers = [fleet.start_worker(), fleet.start_worker()]
        for w in workers:
            fleet.worker_id(w)
        arn = fleet.start(fleet.machine("slow", SLOW), "victim", {})
        deadline = time.monotonic() + 60
        while not fleet.calls():
            if time.monotonic() > deadline:
                raise RuntimeError("the handler never started")
            time.sleep(0.02)
        victim = fleet.procs[fleet.calls()[0].pid]
        killed = time.time()
        fleet.kill(victim)
        if fleet.wait_all([arn], timeout=60)[arn]["status"] != "SUCCEEDED":
            raise RuntimeError("the execution was not taken over")
        again = [c for c in fleet.calls() if c.pid != victim.pid]
        return again[0].started - killed
    finally:
        fleet.stop()


def _postgres(url: str | None):
    """(a function giving fresh database URLs, the server to stop or None)."""
    url = url or os.environ.get("STATELANG_PG_URL")
    if url:
        return (lambda: url), None
    import glob

    from tests.store_fixtures import PostgresServer  # the test suite's throw-away server
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        return None, None
    server = PostgresServer(Path(found[-1]).parent)
    server.start()
    return (lambda: server.url(server.create_database())), server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_fleet", description=__doc__.split("\n")[0])
    ap.add_argument("--executions", type=int, default=600)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--db", default="postgres,sqlite")
    ap.add_argument("--takeover-trials", type=int, default=3)
    ap.add_argument("--pg-url")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    fresh_pg, server = _postgres(args.pg_url) if "postgres" in args.db else (None, None)
    rows: list[tuple[str, str, str, str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="statelang-bench-fleet-") as tmp:
            n = 0

            def fresh(backend: str) -> tuple[str, Path]:
                nonlocal n
                n += 1
                folder = Path(tmp) / f"run{n}"
                if backend == "sqlite":
                    return f"sqlite:///{folder / 'db' / 'fleet.db'}", folder
                return fresh_pg(), folder

            for backend in args.db.split(","):
                if backend == "postgres" and fresh_pg is None:
                    print("PostgreSQL: no server found (pass --pg-url)", file=sys.stderr)
                    continue
                base = None
                for workers in counts:
                    r = throughput(*fresh(backend), workers, args.executions)
                    base = base or r["rate"]
                    rows.append((backend, f"{workers} worker{'s' if workers > 1 else ''}",
                                 f"{r['rate']:.1f} executions/s", f"x{r['rate'] / base:.2f} of 1 worker"))
                    print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
                times = [takeover(*fresh(backend)) for _ in range(args.takeover_trials)]
                rows.append((backend, "takeover after SIGKILL",
                             f"median {statistics.median(times):.2f} s (max {max(times):.2f} s)",
                             f"{len(times)} trials; the lease alone: 30 s"))
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"\nstatelang fleet: {args.executions} executions of a Pass + 2 Task machine; "
          f"{os.cpu_count()} CPU cores")
    widths = [max(len(r[i]) for r in rows) for i in range(4)] if rows else [0] * 4
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
