"""Two live `statelang worker` processes on one real database (an SQLite file, the PostgreSQL
server): a handler longer than the lease keeps its execution (issue 15, finding 2), a SIGKILLed
worker's execution is taken over within the heartbeat's staleness rather than the lease, a poison
execution fails alone, and `statelang workers` lists who holds what."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.fleet_helpers import STATELANG, Fleet, history_problems, lam, repeated_calls

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def fleet_factory(db_url, tmp_path):
    fleets: list[Fleet] = []

    def make(**kw) -> Fleet:
        fleet = Fleet(db_url, tmp_path / f"fleet{len(fleets)}", **kw)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()


def slow_chain(seconds: float, steps: int) -> dict:
    """`steps` Tasks in a row, each handler sleeping `seconds`."""
    states = {}
    for i in range(steps):
        states[f"S{i}"] = {"Type": "Task", "Resource": lam("Work"), "Parameters": {"sleep": seconds, "n.$": "$.n"},
                           **({"Next": f"S{i + 1}"} if i + 1 < steps else {"End": True})}
    return {"StartAt": "S0", "States": states}


def test_a_handler_longer_than_the_lease_runs_once_and_succeeds(fleet_factory):
    """Issue 15, finding 2: a 2 s lease, a 3 s handler, two workers. The lease is renewed while
    the handler runs, so neither worker takes the execution from the other: one call per
    attempt, a contiguous history, no worker dies, the execution succeeds."""
    fleet = fleet_factory(lease_seconds=2)
    workers = [fleet.start_worker(), fleet.start_worker()]
    for w in workers:
        fleet.worker_id(w)
    sm = fleet.machine("slow", slow_chain(3, 1))
    arns = [fleet.start(sm, f"slow-{i}", {"n": i}) for i in range(2)]
    rows = fleet.wait_all(arns, timeout=60)
    calls = fleet.calls()
    print(f"{len(calls)} handler calls, by pid:", [(c.pid, c.execution[-6:], round(c.started % 100, 1))
                                                    for c in calls][:12])
    assert [r["status"] for r in rows.values()] == ["SUCCEEDED"] * 2, (len(calls), rows)
    for i, arn in enumerate(arns):
        assert json.loads(rows[arn]["output"]) == {"n": i + 1, "by": "S0"}
        history = fleet.engine.store.history(arn)
        assert history_problems(history) == []
    assert len(calls) == 2 and repeated_calls(calls) == {}, calls
    assert all(c.ended - c.started >= 3 for c in calls)
    assert [w.poll() for w in workers] == [None, None], [fleet.log_of(w) for w in workers]
    time.sleep(1.2)   # a metrics line after the work
    metrics = [fleet.metrics(w) for w in workers]
    # Renewed every lease/3 s while each 3 s handler ran. (A fenced step may show here: a worker
    # that claimed both executions finds the second one's lease taken when it comes to it; that
    # step is refused before it calls anything, as the single call per attempt above shows.)
    assert sum(m["renewals"] for m in metrics) >= 2 * 3, metrics
    print("metrics of the two workers:", metrics)


def test_a_handler_longer_than_the_heartbeat_staleness_runs_once(fleet_factory):
    """A 10 s handler on a 30 s lease, two live workers, no kill: the handler must run once. The
    heartbeat has a thread of its own, so a worker inside a long step is not taken for dead.

    Interleaving seen when heartbeats were written only between passes: worker A claims, commits TaskScheduled (safety net 'run' message due in
    6 s) and calls the handler; A writes no heartbeat while it runs; at about 6 s B's claim finds
    the message due and A's heartbeat 'stale', leases the execution and calls the handler again;
    A's renewals and commit then find the lease taken (LeaseLost, fenced)."""
    fleet = fleet_factory(lease_seconds=30)
    workers = [fleet.start_worker(), fleet.start_worker()]
    for w in workers:
        fleet.worker_id(w)
    sm = fleet.machine("slow", slow_chain(10, 1))
    arn = fleet.start(sm, "long", {"n": 0})
    rows = fleet.wait_all([arn], timeout=60)
    assert rows[arn]["status"] == "SUCCEEDED", rows
    calls = fleet.calls()
    assert repeated_calls(calls) == {}, [(c.pid, round(c.started, 1)) for c in calls]


def test_a_killed_workers_execution_is_taken_over_within_the_heartbeat(fleet_factory, record_property):
    """SIGKILL the worker whose handler is running: the other worker re-runs the handler once its
    heartbeat is stale (takeover_seconds = 6 s), long before the 30 s lease would run out."""
    fleet = fleet_factory(lease_seconds=30)
    workers = [fleet.start_worker(), fleet.start_worker()]
    for w in workers:
        fleet.worker_id(w)
    sm = fleet.machine("slow", slow_chain(4, 1))
    arn = fleet.start(sm, "victim", {"n": 1})
    deadline = time.monotonic() + 20
    while not fleet.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    first = fleet.calls()
    assert len(first) == 1, first
    victim = fleet.procs[first[0].pid]
    killed = time.time()
    fleet.kill(victim)
    survivor = next(w for w in workers if w is not victim)
    rows = fleet.wait_all([arn], timeout=40)
    assert rows[arn]["status"] == "SUCCEEDED", rows
    calls = fleet.calls()
    assert len(calls) == 2 and calls[1].pid == survivor.pid and calls[1].key == calls[0].key, calls
    takeover = calls[1].started - killed
    record_property("takeover_seconds", round(takeover, 2))
    print(f"takeover after SIGKILL: {takeover:.2f} s (lease 30 s)")
    assert takeover < 15, takeover   # the heartbeat's staleness (6 s) plus polling, not the lease
    assert history_problems(fleet.engine.store.history(arn)) == []
    assert survivor.poll() is None


POISON_MACHINES = {
    "jsonata_function": {"QueryLanguage": "JSONata", "StartAt": "P",
                         "States": {"P": {"Type": "Pass", "Output": "{% $string %}", "End": True}}},
    "timeout_path_text": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lam("Work"),
                                                           "TimeoutSecondsPath": "$.t", "End": True}}},
}


def test_poison_among_healthy_executions_fails_alone(fleet_factory):
    """Poison executions between healthy ones, two workers: both stay up, each poison FAILS with
    States.Runtime (its cause naming the state), every healthy one succeeds."""
    # A 2 s lease and 0.6 s per healthy execution: the batch one worker claims outlasts its
    # lease, so the other worker takes part of it over (both workers meet the poison).
    fleet = fleet_factory(lease_seconds=2)
    healthy_sm = fleet.machine("healthy", slow_chain(0.3, 2))
    poison_sms = {name: fleet.machine(name, d) for name, d in POISON_MACHINES.items()}
    arns: dict[str, str] = {}
    for i in range(6):   # interleaved in start order, so one claimed batch holds both
        arns[f"healthy-{i}"] = fleet.start(healthy_sm, f"healthy-{i}", {"n": i})
        name = sorted(POISON_MACHINES)[i % 2]
        arns[f"{name}-{i}"] = fleet.start(poison_sms[name], f"{name}-{i}", {"t": "60", "n": i})
    workers = [fleet.start_worker(), fleet.start_worker()]
    rows = fleet.wait_all(list(arns.values()), timeout=60)
    for key, arn in arns.items():
        row = rows[arn]
        if key.startswith("healthy"):
            assert row["status"] == "SUCCEEDED", row
        else:
            assert row["status"] == "FAILED" and row["error"] == "States.Runtime", row
            assert "'P'" in row["cause"] or "'T'" in row["cause"], row["cause"]
        assert history_problems(fleet.engine.store.history(arn)) == []
    time.sleep(1.5)
    assert [w.poll() for w in workers] == [None, None], [fleet.log_of(w) for w in workers]
    metrics = [fleet.metrics(w) for w in workers]
    assert sum(m["claims"] for m in metrics) >= len(arns), metrics
    print("metrics of the two workers:", metrics)


def _workers(db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(STATELANG), "workers", "--db", db, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _workers_json(db: str) -> dict:
    out, err = _workers(db, "--json").communicate(timeout=60)
    assert not err, err
    return json.loads(out)


def test_statelang_workers_lists_live_workers_and_their_leases(fleet_factory):
    fleet = fleet_factory(lease_seconds=10)
    workers = [fleet.start_worker(), fleet.start_worker()]
    ids = {fleet.worker_id(w): w for w in workers}
    # Five 2 s handlers in a row: the worker holds the lease for 10 s, while both listings run.
    sm = fleet.machine("slow", slow_chain(2, 5))
    arn = fleet.start(sm, "held", {"n": 0})
    deadline = time.monotonic() + 20
    while not fleet.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    holder_pid = fleet.calls()[0].pid
    as_json, as_text = _workers(fleet.db, "--json"), _workers(fleet.db)
    listed = json.loads(as_json.communicate(timeout=60)[0])
    text = as_text.communicate(timeout=60)[0]
    assert fleet.status(arn) == "RUNNING"   # the listings saw the execution held
    by_id = {w["workerId"]: w for w in listed["workers"]}
    assert set(ids) <= set(by_id), listed
    for wid, proc in ids.items():
        w = by_id[wid]
        assert w["pid"] == proc.pid and w["state"] == "LIVE" and w["ageSeconds"] < listed["takeoverSeconds"]
        held = [x["executionArn"] for x in w["leases"]]
        assert held == ([arn] if proc.pid == holder_pid else []), (wid, w)
    assert text.startswith("WORKER") and arn in text and all(wid in text for wid in ids), text
    # A SIGKILLed worker stays listed until its heartbeat is stale, then shows STALE.
    fleet.wait_all([arn], timeout=30)
    victim = workers[0]
    fleet.kill(victim)
    time.sleep(listed["takeoverSeconds"] + 0.5)
    by_id = {w["workerId"]: w for w in _workers_json(fleet.db)["workers"]}
    assert by_id[fleet.worker_ids[victim.pid]]["state"] == "STALE"
    assert by_id[fleet.worker_ids[workers[1].pid]]["state"] == "LIVE"
    # A worker stopped cleanly forgets itself.
    workers[1].send_signal(2)
    workers[1].wait(10)
    assert fleet.worker_ids[workers[1].pid] not in {w["workerId"] for w in _workers_json(fleet.db)["workers"]}


def test_statelang_workers_on_an_empty_database(db_url):
    proc = subprocess.run([str(STATELANG), "workers", "--db", db_url], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "no workers", proc


def test_statelang_workers_on_an_unreachable_database_is_one_clear_line(tmp_path):
    proc = subprocess.run([str(STATELANG), "workers", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_console_shows_the_worker_that_holds_a_running_execution(fleet_factory, db_url):
    """The console's execution page names the worker whose lease the execution is under (the
    HTTP server's own worker is off, so the fleet's worker runs it)."""
    import urllib.parse
    import urllib.request

    import statelang
    from statelang.server import Server

    fleet = fleet_factory(lease_seconds=10)
    worker = fleet.start_worker()
    wid = fleet.worker_id(worker)
    sm = fleet.machine("slow", slow_chain(2, 4))
    arn = fleet.start(sm, "held", {"n": 0})
    engine = statelang.Engine(db=db_url)
    server = Server(engine, "127.0.0.1", 0, run_worker=False).start()
    try:
        def page() -> dict:
            url = f"{server.url}/console/api/execution?" + urllib.parse.urlencode({"arn": arn})
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.loads(resp.read())

        deadline = time.monotonic() + 20
        while not fleet.calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        held = page()
        assert held["execution"]["status"] == "RUNNING"
        assert held["lease"]["owner"] == wid, held["lease"]
        assert fleet.wait_all([arn], timeout=30)[arn]["status"] == "SUCCEEDED"
        done = page()
        assert done["execution"]["status"] == "SUCCEEDED" and done["lease"] is None
        js = urllib.request.urlopen(f"{server.url}/console/static/console.js", timeout=30).read().decode()
        assert "data.lease.owner" in js
    finally:
        server.stop()
        engine.close()
