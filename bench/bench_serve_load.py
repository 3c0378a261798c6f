"""`statelang serve` under load: N concurrent boto3 clients for a fixed time, on SQLite and PostgreSQL.

    python -m bench.bench_serve_load [--clients 10,50] [--seconds 5] [--db sqlite,postgres] [--pg-url URL]

Method, per database and number of clients:
  * one `statelang serve` process on a fresh database (SQLite file, or a fresh PostgreSQL database:
    ``--pg-url``, or a throw-away server started here as the tests start theirs), with its worker;
  * the clients are threads spread over a few processes (so that the clients' own Python does not
    queue behind one interpreter lock), each with its own boto3 client, all started together;
  * each client loops until the time is up: StartExecution of a Pass machine, three
    DescribeExecution of executions it started, one ListExecutions page (25 a page, following
    nextToken to the end and starting over);
  * every call is timed from the client's side (botocore's serialisation and parsing included);
    any exception is an error, counted by its code. Reported: requests/s over all calls, p50/p99
    per operation and overall (nearest rank), errors.

The machine's cores are shared by the server, its worker, the database and the clients: the
figures are what one small machine does with all of them on it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROLE = "arn:aws:iam::123456789012:role/bench"
MACHINE = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": True}, "ResultPath": "$.r",
                                             "End": True}}}
OPS = ("StartExecution", "DescribeExecution", "ListExecutions")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: an observed value."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))]


class Serve:
    """`statelang serve` in a subprocess; its JSON log names the port it took."""

    def __init__(self, db: str, data_dir: str, clients: int, threads: int):
        exe = Path(sys.executable).parent / "statelang"
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--db", db, "--port", "0", "--data-dir", data_dir, "--poll", "0.1",
             "--threads", str(threads), "--max-connections", str(max(100, 2 * clients))],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stderr], daemon=True).start()
        deadline = time.monotonic() + 60
        self.port = None
        log = []
        while self.port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            log.append(line)
            if line.startswith("{") and json.loads(line).get("message") == "listening":
                self.port = int(json.loads(line)["port"])
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("statelang serve did not start:\n" + "".join(log))
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_ms: dict[str, list[float]] = {op: [] for op in OPS}   # the server's own time per request
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()

    def _drain(self, lines: queue.Queue) -> None:
        while True:
            line = lines.get()
            if '"request"' not in line:
                continue
            rec = json.loads(line)
            op = (rec.get("target") or "").rpartition(".")[2]
            if op in self.server_ms:
                self.server_ms[op].append(rec["ms"])

    def cpu_seconds(self) -> float | None:
        """The server process's CPU time so far (user + system), from /proc; None elsewhere."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _client(url: str):
    import boto3
    from botocore.config import Config
    return boto3.client("stepfunctions", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                        aws_secret_access_key="bench",
                        config=Config(retries={"max_attempts": 1}, max_pool_connections=2,
                                      connect_timeout=30, read_timeout=60))


def _one_client(sfn, arn: str, start: float, stop: float, seed: int, out: dict) -> None:
    rng = random.Random(seed)
    latencies = {op: [] for op in OPS}
    errors: Counter = Counter()
    mine: list[str] = []
    token = None
    n = 0
    while time.monotonic() < start:
        time.sleep(0.001)
    while time.monotonic() < stop:
        step = n % 5
        n += 1
        t0 = time.perf_counter()
        try:
            if step == 0:
                op = "StartExecution"
                mine.append(sfn.start_execution(stateMachineArn=arn, input=f'{{"n": {n}}}')["executionArn"])
            elif step < 4:
                op = "DescribeExecution"
                if not mine:
                    continue
                sfn.describe_execution(executionArn=rng.choice(mine))
            else:
                op = "ListExecutions"
                page = sfn.list_executions(stateMachineArn=arn, maxResults=25,
                                           **({"nextToken": token} if token else {}))
                token = page.get("nextToken")
        except Exception as exc:  # noqa: BLE001 - every failure is counted, by its code
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            errors[f"{op}:{code}"] += 1
            continue
        latencies[op].append(time.perf_counter() - t0)
    out["latencies"] = latencies
    out["errors"] = errors


def _process(url: str, arn: str, clients: int, seed: int, barrier, start_at, results) -> None:
    """One client process: its threads, each with its own boto3 client, released together."""
    sfns = [_client(url) for _ in range(clients)]
    for sfn in sfns:   # the connection pools and botocore's models warmed before the clock starts
        sfn.list_state_machines()
    barrier.wait()   # all ready
    barrier.wait()   # the start time is set
    start = start_at.value
    stop = start + float(os.environ["BENCH_SECONDS"])
    outs = [{} for _ in sfns]
    threads = [threading.Thread(target=_one_client, args=(sfn, arn, start, stop, seed * 1000 + i, outs[i]))
               for i, sfn in enumerate(sfns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = {op: [] for op in OPS}
    errors: Counter = Counter()
    for o in outs:
        for op in OPS:
            merged[op] += o["latencies"][op]
        errors.update(o["errors"])
    results.put((merged, dict(errors)))


def run_load(url: str, clients: int, seconds: float, processes: int) -> dict:
    sfn = _client(url)
    arn = sfn.create_state_machine(name=f"load-{clients}-{int(time.time() * 1000)}", definition=json.dumps(MACHINE),
                                   roleArn=ROLE)["stateMachineArn"]
    ctx = mp.get_context("spawn")
    processes = max(1, min(processes, clients))
    barrier = ctx.Barrier(processes + 1)
    start_at = ctx.Value("d", 0.0)
    results = ctx.Queue()
    os.environ["BENCH_SECONDS"] = str(seconds)
    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs = [ctx.Process(target=_process, args=(url, arn, share, i, barrier, start_at, results))
             for i, share in enumerate(shares)]
    for p in procs:
        p.start()
    barrier.wait(timeout=300)
    start_at.value = time.monotonic() + 0.2
    barrier.wait(timeout=60)
    gathered = [results.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join(30)
    latencies = {op: [v for g in gathered for v in g[0][op]] for op in OPS}
    errors: Counter = Counter()
    for g in gathered:
        errors.update(g[1])
    every = [v for op in OPS for v in latencies[op]]
    row = {"clients": clients, "seconds": seconds, "requests": len(every), "requests_per_s": len(every) / seconds,
           "p50_ms": percentile(every, 0.50) * 1000, "p99_ms": percentile(every, 0.99) * 1000,
           "errors": sum(errors.values()), "error_codes": dict(errors)}
    for op in OPS:
        row[op] = {"n": len(latencies[op]), "p50_ms": percentile(latencies[op], 0.50) * 1000,
                   "p99_ms": percentile(latencies[op], 0.99) * 1000}
    return row


class Postgres:
    """Fresh PostgreSQL databases: on the server of ``url``, or on a throw-away server started here
    as the tests start theirs (tests/store_fixtures.py)."""

    def __init__(self, url: str | None):
        self.url = url
        self.server = None
        if url is None:
            from tests.store_fixtures import PostgresServer, _pg_bindir
            bindir = _pg_bindir()
            if bindir is None:
                raise RuntimeError("no PostgreSQL found: pass --pg-url or install PostgreSQL")
            self.server = PostgresServer(bindir)
            self.server.start()

    def fresh(self) -> str:
        return self.url if self.server is None else self.server.url(self.server.create_database())

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="10,50", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per configuration")
    ap.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    ap.add_argument("--pg-url", default=None, help="a PostgreSQL URL (default: start a throw-away server)")
    ap.add_argument("--threads", type=int, default=8, help="the server's request threads")
    ap.add_argument("--processes", type=int, default=2, help="client processes the clients are spread over")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    rows = []
    for db in args.db.split(","):
        pg = Postgres(args.pg_url) if db == "postgres" else None
        try:
            for clients in (int(c) for c in args.clients.split(",")):
                data = tempfile.mkdtemp(prefix="statelang-load-")
                url = pg.fresh() if pg else f"sqlite:///{data}/statelang.db"
                serve = Serve(url, data, clients, args.threads)
                try:
                    cpu0 = serve.cpu_seconds()
                    row = {"db": db, **run_load(serve.url, clients, args.seconds, args.processes)}
                    cpu1 = serve.cpu_seconds()
                finally:
                    serve.stop()
                row["server_cpu_ms_per_request"] = (cpu1 - cpu0) * 1000 / max(1, row["requests"]) \
                    if cpu0 is not None and cpu1 is not None else None
                for op in OPS:   # inside the server: from the WSGI call to the response, as it logs it
                    row[op]["server_p50_ms"] = percentile(serve.server_ms[op], 0.50)
                    row[op]["server_p99_ms"] = percentile(serve.server_ms[op], 0.99)
                rows.append(row)
                print(f"{db:8} {clients:3} clients  {row['requests_per_s']:7.0f} req/s  p50 {row['p50_ms']:6.1f} ms  "
                      f"p99 {row['p99_ms']:6.1f} ms  errors {row['errors']}  "
                      f"server CPU {row['server_cpu_ms_per_request'] or float('nan'):.2f} ms/req  | "
                      + "  ".join(f"{op} p50 {row[op]['p50_ms']:.1f} p99 {row[op]['p99_ms']:.1f} "
                                  f"[server p50 {row[op]['server_p50_ms']:.1f} p99 {row[op]['server_p99_ms']:.1f}] "
                                  f"(n={row[op]['n']})" for op in OPS), flush=True)
                if row["error_codes"]:
                    print("          errors:", row["error_codes"], flush=True)
        finally:
            if pg:
                pg.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
