"""Durable executions side by side with DBOS: workflows/s at equal durability, in one run.

    python -m bench.bench_durable [--rounds 5] [--per-thread 60] [--threads 1,4]
                                  [--db sqlite,postgres] [--pg-url URL]

The workload is bench/README.md's ("Other peers"): five steps, each adding ``{"i": n}`` under
``s<n>`` of the value, one workflow after another on each client thread. Three runners do it:

* **statelang b6** (group commit): ``bench/machines/b6.asl.json``, five Pass states, through
  ``Engine(db=...).client()``: ``start_execution`` (eager: the calling thread runs the execution,
  which commits its whole history in the transaction that creates it), ``run_until_idle()``,
  ``describe_execution``.
* **statelang 5 Tasks** (a commit per step, DBOS's model): the same through five
  ``lambda:invoke`` Tasks of the ``echo`` handler; each task's outcome is committed before the
  next task is called (6 WAL flushes an execution on PostgreSQL, pg_stat_wal), so a crash
  repeats only the step in flight.
* **DBOS** (``bench/peer_dbos.py``): ``@DBOS.workflow`` calling five ``@DBOS.step``s, then
  ``DBOS.get_workflow_status`` (DBOS commits per step: 7 WAL flushes a workflow).

Every runner checks each workflow's final status (SUCCEEDED; DBOS's SUCCESS) and the outputs of
all three are compared once. With N client threads, statelang's threads share one Engine (and its
client) as DBOS's share the one DBOS instance. statelang runs on the real clock here: threads that
call ``run_until_idle`` on a shared virtual clock would move each other's time.

Durability, equal on both sides:

* SQLite: WAL and synchronous=NORMAL (statelang's default; DBOS's engine set so, see peer_dbos).
* PostgreSQL: synchronous_commit on and fsync on, so every commit waits for the WAL's flush. The
  server is started here from the local binaries with those settings (the tests' throwaway server
  turns both off), unless ``--pg-url``/STATELANG_BENCH_PG/STATELANG_PG_URL names one; the
  server's own ``synchronous_commit`` and ``fsync`` are read and reported either way.

Rounds alternate between the runners (round 1 of each, then round 2, ...) so that drift of the
machine touches them alike; each figure is the median of the rounds' workflows/s.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .shapes import ECHO_ARN, HANDLERS, load

STEPS = 5
ROLE_ARN = "arn:aws:iam::123456789012:role/statelang-bench"


def five_tasks_definition() -> str:
    """Five lambda:invoke Tasks giving what b6's five Pass states give (``$.s<i> = {"i": i}``)."""
    states = {
        f"T{i}": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                  "Parameters": {"FunctionName": ECHO_ARN, "Payload": {"i": i}},
                  "ResultSelector": {"i.$": "$.Payload.i"}, "ResultPath": f"$.s{i}",
                  **({"Next": f"T{i + 1}"} if i < STEPS - 1 else {"End": True})}
        for i in range(STEPS)}
    return json.dumps({"Comment": "5 lambda:invoke Tasks: a commit per step", "StartAt": "T0", "States": states})


class _Threads:
    """`threads` client threads, each calling `one()` `per_thread` times; (seconds, statuses)."""

    @staticmethod
    def run(one: Callable[[], tuple[str, Any]], threads: int, per_thread: int) -> tuple[float, list, list]:
        statuses: list[str] = []
        outputs: list[Any] = []
        errors: list[BaseException] = []
        guard = threading.Lock()
        gate = threading.Barrier(threads + 1)

        def client() -> None:
            gate.wait()
            try:
                mine = [one() for _ in range(per_thread)]
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                with guard:
                    errors.append(error)
                return
            with guard:
                statuses.extend(s for s, _ in mine)
                outputs.extend(o for _, o in mine[:1])

        workers = [threading.Thread(target=client, name=f"bench-client-{n}") for n in range(threads)]
        for worker in workers:
            worker.start()
        gate.wait()
        begin = time.perf_counter()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - begin
        if errors:
            raise errors[0]
        return seconds, statuses, outputs


class StatelangDurable:
    """One shared ``statelang.Engine`` on `db`; ``one()`` runs one execution through its client."""

    def __init__(self, db: str, definition: str, input_text: str) -> None:
        import statelang
        self.engine = statelang.Engine(db=db, handlers=HANDLERS, eager="always")
        self.client = self.engine.client()
        self.input_text = input_text
        self.machine = self.client.create_state_machine(
            name=f"bench-durable-{uuid.uuid4().hex[:8]}", definition=definition, roleArn=ROLE_ARN,
        )["stateMachineArn"]

    def one(self) -> tuple[str, Any]:
        started = self.client.start_execution(stateMachineArn=self.machine, name=uuid.uuid4().hex,
                                              input=self.input_text)
        self.engine.run_until_idle()
        described = self.client.describe_execution(executionArn=started["executionArn"])
        return described["status"], json.loads(described.get("output") or "null")

    def close(self) -> None:
        self.engine.close()


class DbosDurable:
    """The DBOS peer, launched on `url`; ``one()`` runs one workflow and reads its status back."""

    def __init__(self, url: str, input_text: str) -> None:
        from .peer_dbos import DbosPeer
        self.peer = DbosPeer(url).__enter__()
        self.value = json.loads(input_text)

    def one(self) -> tuple[str, Any]:
        status, output = self.peer.run(self.value)
        return ("SUCCEEDED" if status == "SUCCESS" else status), output

    def close(self) -> None:
        self.peer.__exit__(None, None, None)


RUNNERS = (("statelang b6", "group commit (1 per execution)"),
           ("statelang 5 Tasks", "a commit per step (6 per execution)"),
           ("DBOS", "a commit per step (its only model)"))


def dbos_available() -> bool:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


def _durable_postgres(url: str | None):
    """(a function giving a fresh database URL, the server to stop or None, its settings text)."""
    url = url or os.environ.get("STATELANG_BENCH_PG") or os.environ.get("STATELANG_PG_URL")
    if url:
        return (lambda: url), None
    from tests.store_fixtures import PostgresServer

    class DurableServer(PostgresServer):
        """The tests' throwaway server with durability on: fsync and synchronous_commit."""

        def start(self) -> None:
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "statelang", "--auth=trust",
                      "-E", "UTF8")
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='{self.root}' "
                    "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=100")
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                      "-o", opts, "-w", "-t", "60", "start")

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        return None, None
    server = DurableServer(Path(found[-1]).parent)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return (lambda: server.url(server.create_database())), server


def _pg_settings(url: str) -> str:
    import psycopg
    from sqlalchemy import make_url
    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    return f"synchronous_commit={sync}, fsync={fsync}"


def _measure_backend(backend: str, fresh: Callable[[], str], threads: list[int], rounds: int,
                     per_thread: int, log) -> dict:
    b6 = load("b6")
    dbs = {name: fresh() for name, _ in RUNNERS}
    runners: dict[str, Any] = {}
    result: dict[str, Any] = {"runners": {}, "settings": ""}
    try:
        runners["statelang b6"] = StatelangDurable(dbs["statelang b6"], b6.definition_text, b6.input_text)
        runners["statelang 5 Tasks"] = StatelangDurable(dbs["statelang 5 Tasks"], five_tasks_definition(),
                                                        b6.input_text)
        runners["DBOS"] = DbosDurable(dbs["DBOS"], b6.input_text)
        result["settings"] = ("WAL, synchronous=NORMAL" if backend == "sqlite"
                              else _pg_settings(dbs["statelang b6"]))
        outputs = {}
        for name, runner in runners.items():   # verification and warm-up, not timed
            for _ in range(10):
                status, outputs[name] = runner.one()
                if status != "SUCCEEDED":
                    raise RuntimeError(f"{backend} {name}: a workflow ended {status}")
        result["same_output"] = len({json.dumps(o, sort_keys=True) for o in outputs.values()}) == 1
        rates: dict[tuple[str, int], list[float]] = {}
        statuses: dict[tuple[str, int], set[str]] = {}
        for _ in range(rounds):
            for count in threads:
                for name, runner in runners.items():
                    seconds, got, _ = _Threads.run(runner.one, count, per_thread)
                    rates.setdefault((name, count), []).append(count * per_thread / seconds)
                    statuses.setdefault((name, count), set()).update(got)
        for (name, count), values in rates.items():
            figures = {"workflows_per_second": statistics.median(values), "rounds": len(values),
                       "statuses": sorted(statuses[(name, count)])}
            result["runners"].setdefault(name, {})[count] = figures
            log(f"[{backend}] {name}, {count} thread(s): {figures['workflows_per_second']:,.1f} workflows/s")
    finally:
        for runner in runners.values():
            runner.close()
    return result


def run(rounds: int = 5, per_thread: int = 60, threads: tuple[int, ...] = (1, 4),
        backends: tuple[str, ...] = ("sqlite", "postgres"), pg_url: str | None = None, log=print) -> dict:
    """The figures as a dict: {"available": False, ...} without DBOS, else per backend and runner."""
    if not dbos_available():
        return {"available": False, "reason": "DBOS not installed (pip install 'statelang[bench]')"}
    from importlib import metadata
    report: dict[str, Any] = {"available": True, "dbos": metadata.version("dbos"), "rounds": rounds,
                              "per_thread": per_thread, "threads": list(threads), "backends": {}}
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="statelang-bench-durable-") as tmp:
            for backend in backends:
                if backend == "sqlite":
                    def fresh() -> str:
                        return f"sqlite:///{Path(tmp) / uuid.uuid4().hex[:8]}.db"
                else:
                    fresh, server = _durable_postgres(pg_url)
                    if fresh is None:
                        report["backends"][backend] = {"skipped": "no PostgreSQL server (give --pg-url)"}
                        continue
                counts = list(threads) if backend == "postgres" else [1]
                report["backends"][backend] = _measure_backend(backend, fresh, counts, rounds, per_thread, log)
    finally:
        if server is not None:
            server.stop()
    return report


def summary(report: dict) -> str:
    """The side-by-side table: workflows/s per runner and the ratios statelang/DBOS."""
    if not report.get("available"):
        return f"Durable executions vs DBOS: {report.get('reason', 'DBOS not installed')}"
    rows = [("backend, clients", "runner", "commits", "workflows/s", "vs DBOS", "statuses")]
    for backend, entry in report["backends"].items():
        if "skipped" in entry:
            rows.append((backend, "skipped", entry["skipped"], "", "", ""))
            continue
        counts = sorted({c for figures in entry["runners"].values() for c in figures})
        for count in counts:
            dbos = entry["runners"].get("DBOS", {}).get(count, {}).get("workflows_per_second")
            for name, commits in RUNNERS:
                figures = entry["runners"].get(name, {}).get(count)
                if figures is None:
                    continue
                rate = figures["workflows_per_second"]
                ratio = f"{rate / dbos:.1f}x" if dbos and name != "DBOS" else ""
                rows.append((f"{backend} ({entry['settings']}), {count} thread{'s' if count > 1 else ''}",
                             name, commits, f"{rate:,.1f}", ratio, ",".join(figures["statuses"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 or i == 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    same = {b: e.get("same_output") for b, e in report["backends"].items() if "skipped" not in e}
    lines.append(f"\nDBOS {report['dbos']}; median of {report['rounds']} rounds of {report['per_thread']} "
                 f"workflows per client thread; same output on all three: "
                 + ", ".join(f"{b} {'yes' if s else 'NO'}" for b, s in same.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_durable", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-thread", type=int, default=60, help="workflows per client thread and round")
    parser.add_argument("--threads", default="1,4", help="client thread counts on PostgreSQL")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--pg-url")
    options = parser.parse_args(argv)
    report = run(options.rounds, options.per_thread, tuple(int(n) for n in options.threads.split(",")),
                 tuple(b.strip() for b in options.db.split(",") if b.strip()), options.pg_url,
                 log=lambda text: print(text, file=sys.stderr, flush=True))
    print(summary(report))
    return 0 if report.get("available") else 1


if __name__ == "__main__":
    sys.exit(main())
