"""Live `statelang worker` processes for the fleet tests and the fleet bench.

A `Fleet` runs real worker processes (the installed `statelang` command) on one database, with a
handlers module written into its own folder. The handlers record every call in a side SQLite file
(``calls``: idempotency key, retry count, state, pid, start and end time), outside the engine's
database, so that what they record survives a SIGKILL exactly as a real side effect would: the
tests count repeated calls from it and find which process was running a handler when it died.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import statelang

STATELANG = Path(sys.executable).parent / "statelang"
ROLE = "arn:aws:iam::123456789012:role/fleet"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def lam(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"


# The handlers every fleet worker loads (`--handlers fleet_handlers`). Deterministic in their
# results, so that a run interrupted by kills must end with an uninterrupted run's output; the
# sleeps are real (the workers run on the wall clock) unless FLEET_SLEEP=0.
HANDLERS_SOURCE = '''
import os, sqlite3, time

class FlakyError(Exception):
    pass

class Declined(Exception):
    pass

def _record(ctx, start):
    path = os.environ.get("FLEET_CALLS")
    if not path:
        return None
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    cur = conn.execute(
        "INSERT INTO calls (key, retry, state, execution, pid, started) VALUES (?, ?, ?, ?, ?, ?)",
        (ctx.idempotency_key, ctx.retry_count, ctx.state_name, ctx.execution_arn, os.getpid(), start))
    return conn, cur.lastrowid

def _done(rec):
    if rec is not None:
        conn, rowid = rec
        conn.execute("UPDATE calls SET ended = ? WHERE id = ?", (time.time(), rowid))
        conn.close()

def _sleep(seconds):
    if os.environ.get("FLEET_SLEEP", "1") != "0" and seconds:
        time.sleep(seconds)

def Work(event, ctx):
    """Sleeps `sleep` seconds, then returns a value computed from its input."""
    rec = _record(ctx, time.time())
    _sleep((event or {}).get("sleep", 0) if isinstance(event, dict) else 0)
    n = event.get("n", 0) if isinstance(event, dict) else (event if isinstance(event, int) else 0)
    _done(rec)
    return {"n": n + 1, "by": ctx.state_name}

def Flaky(event, ctx):
    """Fails its first two attempts (FlakyError), then answers: a Retry's work."""
    rec = _record(ctx, time.time())
    _sleep(0.05)
    _done(rec)
    if ctx.retry_count < 2:
        raise FlakyError(f"attempt {ctx.retry_count} fails")
    return {"attempts": ctx.retry_count + 1}

def Boom(event, ctx):
    """Always fails: a Catch's work."""
    rec = _record(ctx, time.time())
    _done(rec)
    raise Declined("the card was declined")
'''

CALLS_SCHEMA = ("CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, key TEXT, retry INTEGER, state TEXT, "
                "execution TEXT, pid INTEGER, started REAL, ended REAL)")


@dataclass
class Call:
    key: str
    retry: int
    state: str
    execution: str
    pid: int
    started: float
    ended: float | None


@dataclass
class Fleet:
    """Worker processes on one database, sharing a handlers module and a calls file in `folder`."""

    db: str
    folder: Path
    lease_seconds: float = 30.0
    concurrency: int = 8
    extra_env: dict = field(default_factory=dict)
    extra_handlers: tuple[str, ...] = ()   # more handler modules (written into `folder` by the caller)
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)   # pid -> live or dead process
    worker_ids: dict[int, str] = field(default_factory=dict)            # pid -> worker id
    killed: set[int] = field(default_factory=set)                       # pids this fleet SIGKILLed
    _engine: statelang.Engine | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "fleet_handlers.py").write_text(HANDLERS_SOURCE)
        self.calls_path = self.folder / "calls.db"
        with sqlite3.connect(self.calls_path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(CALLS_SCHEMA)

    # -- processes -------------------------------------------------------------------------------
    def start_worker(self) -> subprocess.Popen:
        n = len(self.procs)
        env = {**os.environ, "FLEET_CALLS": str(self.calls_path), **self.extra_env}
        env.pop("STATELANG_FAULT", None)
        log = open(self.folder / f"worker-{n}.log", "w")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(
            [str(STATELANG), "worker", "--db", self.db, "--handlers", "fleet_handlers",
             *(a for h in self.extra_handlers for a in ("--handlers", h)), "--poll", "0.2",
             "--lease-seconds", str(self.lease_seconds), "--concurrency", str(self.concurrency),
             "--metrics-seconds", "1"],
            cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[proc.pid] = proc
        return proc

    def log_of(self, proc: subprocess.Popen) -> str:
        n = list(self.procs).index(proc.pid)
        return (self.folder / f"worker-{n}.log").read_text()

    def worker_id(self, proc: subprocess.Popen, timeout: float = 20) -> str:
        """The worker id the process announced on stderr ("worker worker-xxxx on ...")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_of(proc).splitlines():
                if line.startswith("worker worker-") and " on " in line:
                    self.worker_ids[proc.pid] = line.split()[1]
                    return self.worker_ids[proc.pid]
            time.sleep(0.05)
        raise AssertionError(f"worker {proc.pid} did not start:\n{self.log_of(proc)}")

    def live(self) -> list[subprocess.Popen]:
        return [p for p in self.procs.values() if p.poll() is None]

    def died(self) -> list[subprocess.Popen]:
        """Processes that ended by themselves: neither killed by `kill` nor stopped by `stop`."""
        return [p for p in self.procs.values() if p.poll() is not None and p.pid not in self.killed]

    def kill(self, proc: subprocess.Popen) -> None:
        self.killed.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.live():
            self.killed.add(proc.pid)
            proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def metrics(self, proc: subprocess.Popen) -> dict[str, int]:
        """The worker's last reported counters (its `--metrics-seconds` line)."""
        last: dict[str, int] = {}
        for line in self.log_of(proc).splitlines():
            if " metrics: " in line:
                last = {k: int(v) for k, v in (p.split("=") for p in line.split(" metrics: ")[1].split())}
        return last

    # -- executions ------------------------------------------------------------------------------
    @property
    def engine(self) -> statelang.Engine:
        """An engine on the fleet's database for starting and reading executions; it never serves."""
        if self._engine is None:
            self._engine = statelang.Engine(db=self.db)
        return self._engine

    def machine(self, name: str, definition: dict) -> str:
        return self.engine.client().create_state_machine(name=name, definition=json.dumps(definition),
                                                         roleArn=ROLE)["stateMachineArn"]

    def start(self, machine_arn: str, name: str, input: object) -> str:
        return self.engine.client().start_execution(stateMachineArn=machine_arn, name=name,
                                                    input=json.dumps(input))["executionArn"]

    def status(self, arn: str) -> str:
        return self.engine.store.get_execution(arn)["status"]

    def wait_all(self, arns: list[str], timeout: float) -> dict[str, dict]:
        """Wait until every execution has ended; returns their rows (RUNNING ones when time runs out)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = {a: self.engine.store.get_execution(a) for a in arns}
            if all(r["status"] in TERMINAL for r in rows.values()) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)

    def calls(self) -> list[Call]:
        with sqlite3.connect(self.calls_path, timeout=60) as conn:
            rows = conn.execute("SELECT key, retry, state, execution, pid, started, ended FROM calls "
                                "ORDER BY id").fetchall()
        return [Call(*r) for r in rows]


def import_handlers(folder: Path, name: str = "fleet_handlers"):
    """The fleet's handlers module, imported into this process (for an uninterrupted baseline run)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(str(folder)))}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def history_problems(history: list[dict]) -> list[str]:
    """What is wrong with a history's event ids: they must be exactly 1..n, in order."""
    ids = [e["id"] for e in history]
    problems = []
    dups = sorted(i for i, c in Counter(ids).items() if c > 1)
    if dups:
        problems.append(f"duplicated event ids {dups}")
    if ids != list(range(1, len(ids) + 1)):
        missing = sorted(set(range(1, max(ids, default=0) + 1)) - set(ids))
        problems.append(f"ids are not 1..{len(ids)} in order (missing {missing[:10]})")
    return problems


def repeated_calls(calls: list[Call]) -> Counter:
    """Handler calls beyond the first for one (idempotency key, retry count): at-least-once's extra."""
    per_attempt = Counter((c.key, c.retry) for c in calls)
    return Counter({k: n - 1 for k, n in per_attempt.items() if n > 1})
