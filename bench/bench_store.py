"""``python -m bench.bench_store``: the SQL store's figures, SQLite and PostgreSQL side by side.

* **Long history, paged**: an execution of 20,000 events is read through
  ``engine.client().get_execution_history(maxResults=100, nextToken=...)`` as boto3's paginator
  reads it (200 pages); the time to read all of it, and the slowest page. Keyset paging makes a
  page's cost independent of where it is in the history. Over HTTP it is read twice from a
  ``statelang serve`` process: by boto3, as users read it, and by plain ``http.client`` requests
  of the same JSON protocol, which is the server's share (and the socket's) without boto3's own
  work per call (request building, signing, and parsing every event's timestamp into local time).
* **b6 executions/s**: the 5-state shape of ``python -m bench`` through ``Engine(db=...).client()``
  on each backend (eager start, virtual clock, default durability: SQLite synchronous=NORMAL in
  WAL mode; PostgreSQL with the server's own settings), median of rounds.

PostgreSQL: ``--pg-url postgresql://...`` (or STATELANG_PG_URL); without one, a throwaway server
is started from the local PostgreSQL binaries as the test suite does (tests/store_fixtures.py:
fsync and synchronous_commit off, so it measures the client's and server's work, not the disk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .shapes import HANDLERS, load_all

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:long"


def _long_execution(engine, n: int) -> str:
    """An execution holding `n` events, written through the store protocol in commits of 1,000."""
    from statelang.runtime.storage import Commit
    arn = f"arn:aws:states:us-east-1:123456789012:execution:long:{uuid.uuid4().hex}"
    row = {"executionArn": arn, "stateMachineArn": SM, "name": arn.rsplit(":", 1)[1], "status": "RUNNING",
           "startDate": T0, "input": "{}", "definition": '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}',
           "roleArn": "arn:role", "redriveCount": 0}
    engine.store.create_execution(row, Commit(arn, [{"timestamp": T0, "type": "ExecutionStarted", "id": 1,
                                                      "previousEventId": 0,
                                                      "executionStartedEventDetails": {"input": "{}"}}]))
    for first in range(2, n + 1, 1000):
        engine.store.apply(Commit(arn, [
            {"timestamp": T0 + timedelta(milliseconds=i), "type": "PassStateEntered", "id": i, "previousEventId": i - 1,
             "stateEnteredEventDetails": {"name": f"S{i}", "input": f'{{"i": {i}}}'}}
            for i in range(first, min(first + 1000, n + 1))]))
    return arn


def _serve(db: str, data_dir: str):
    """A `statelang serve` process on `db` (the server users run) and a boto3 client of it."""
    import socket
    import subprocess

    import boto3
    from botocore.config import Config
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = Path(sys.executable).with_name("statelang")   # the console script beside this Python
    proc = subprocess.Popen([str(command), "serve", "--db", db, "--port", str(port),
                             "--data-dir", data_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = boto3.client("stepfunctions", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",
                          config=Config(retries={"max_attempts": 0}, connect_timeout=1, read_timeout=30))
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_state_machines()
            return proc, client
        except Exception:   # noqa: BLE001 - not listening yet
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("statelang serve did not start") from None
            time.sleep(0.1)


class _PlainHttp:
    """GetExecutionHistory as bare AWS JSON-protocol requests over one kept-alive connection: what
    a page costs the server and the socket, with no SDK on the client's side."""

    def __init__(self, endpoint_url: str):
        import http.client
        host, port = endpoint_url.rsplit("/", 1)[1].rsplit(":", 1)
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def describe_execution(self, **params) -> dict:
        return self._call("DescribeExecution", params)

    def get_execution_history(self, **params) -> dict:
        return self._call("GetExecutionHistory", params)

    def _call(self, operation: str, params: dict) -> dict:
        import json
        self._conn.request("POST", "/", json.dumps(params),
                           {"Content-Type": "application/x-amz-json-1.0",
                            "X-Amz-Target": f"AWSStepFunctions.{operation}"})
        response = self._conn.getresponse()
        body = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{operation}: HTTP {response.status}: {body}")
        return body


def paged_read(db: str, events: int, page: int, over_http: bool | str = False) -> dict:
    """Read a long history page by page through the boto3-shaped client in process, or with
    `over_http` through boto3 itself against a `statelang serve` process on the same database
    (``over_http="plain"``: bare HTTP requests to that server instead of boto3)."""
    import statelang
    engine = statelang.Engine(db=db, clock="virtual")
    served = None
    try:
        arn = _long_execution(engine, events)
        client = engine.client()
        if over_http:
            data_dir = tempfile.mkdtemp(prefix="statelang-bench-serve-")
            served, client = _serve(db, data_dir)
            if over_http == "plain":
                client = _PlainHttp(client.meta.endpoint_url)
        client.describe_execution(executionArn=arn)   # the client's first call loads its service model
        token, got, pages, slowest = None, 0, 0, 0.0
        begin = time.perf_counter()
        while True:
            t = time.perf_counter()
            response = client.get_execution_history(executionArn=arn, maxResults=page,
                                                    **({"nextToken": token} if token else {}))
            slowest = max(slowest, time.perf_counter() - t)
            got += len(response["events"])
            pages += 1
            token = response.get("nextToken")
            if not token:
                break
        seconds = time.perf_counter() - begin
    finally:
        if served is not None:
            served.terminate()
            served.wait(30)
        engine.close()
    assert got == events, f"read {got} events of {events}"
    return {"seconds": seconds, "pages": pages, "slowest_page_ms": slowest * 1000}


def b6_rate(db: str, rounds: int, per_round: int) -> dict:
    """b6 executions per second through the client, median of `rounds` rounds."""
    import statelang
    shape = load_all(["b6"])[0]
    engine = statelang.Engine(db=db, handlers=HANDLERS, clock="virtual", eager="always")
    try:
        client = engine.client()
        machine = client.create_state_machine(name=f"bench-b6-{uuid.uuid4().hex[:8]}",
                                              definition=shape.definition_text,
                                              roleArn="arn:aws:iam::123456789012:role/bench")["stateMachineArn"]

        def one() -> None:
            started = client.start_execution(stateMachineArn=machine, name=uuid.uuid4().hex, input=shape.input_text)
            engine.run_until_idle()
            status = client.describe_execution(executionArn=started["executionArn"])["status"]
            assert status == "SUCCEEDED", status
        for _ in range(50):
            one()
        rates = []
        for _ in range(rounds):
            begin = time.perf_counter()
            for _ in range(per_round):
                one()
            rates.append(per_round / (time.perf_counter() - begin))
    finally:
        engine.close()
    return {"executions_per_second": statistics.median(rates), "rounds": rounds, "per_round": per_round}


def _postgres(url: str | None):
    """(url, server to stop or None)."""
    url = url or os.environ.get("STATELANG_PG_URL")
    if url:
        return url, None
    import glob

    from tests.store_fixtures import PostgresServer  # the test suite's throwaway server
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        return None, None
    server = PostgresServer(Path(found[-1]).parent)
    server.start()
    return server.url(server.create_database()), server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_store", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--pg-url")
    parser.add_argument("--skip", default="", help="comma-separated: paged, http, b6")
    options = parser.parse_args(argv)
    skip = set(filter(None, options.skip.split(",")))
    pg, server = _postgres(options.pg_url)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="statelang-bench-store-") as tmp:
            backends = [("SQLite", f"sqlite:///{Path(tmp) / 'paged.db'}", f"sqlite:///{Path(tmp) / 'b6.db'}")]
            if pg:
                backends.append(("PostgreSQL", pg, pg))
            for label, paged_db, b6_db in backends:
                for way, over_http in (("", False), (" over HTTP (boto3, statelang serve)", True),
                                       (" over HTTP (plain http.client, statelang serve)", "plain")):
                    if ("http" if over_http else "paged") in skip:
                        continue
                    r = paged_read(paged_db, options.events, options.page, over_http)
                    rows.append((f"{label}: {options.events:,} events in pages of {options.page}{way}",
                                 f"{r['seconds']:.3f} s ({r['pages']} pages, slowest {r['slowest_page_ms']:.1f} ms)"))
                    print(rows[-1], file=sys.stderr, flush=True)
                if "b6" not in skip:
                    r = b6_rate(b6_db, options.rounds, options.per_round)
                    rows.append((f"{label}: b6 executions/s", f"{r['executions_per_second']:,.0f}"))
                    print(rows[-1], file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop()
    if not pg:
        rows.append(("PostgreSQL", "skipped: no server (give --pg-url or install PostgreSQL)"))
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{a.ljust(width)}  {b}" for a, b in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
