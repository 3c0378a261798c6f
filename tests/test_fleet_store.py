"""`Store.list_leases`, what `statelang workers` and the console read: the same on every backend,
and in agreement with `lease_of`, `claim`, `renew` and `release`."""

from __future__ import annotations

import json
from datetime import timedelta

from statelang import Engine
from statelang.runtime.storage import Lease

DEF = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def _start(engine: Engine, n: int) -> list[str]:
    client = engine.client()
    sm = client.create_state_machine(name="m", definition=json.dumps(DEF),
                                     roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    return [client.start_execution(stateMachineArn=sm, name=f"e{i}")["executionArn"] for i in range(n)]


def test_list_leases_follows_claim_renew_and_release(any_store):
    engine = Engine(db=any_store)
    arns = _start(engine, 5)
    store = engine.store
    assert store.list_leases() == []
    now = engine.clock.now()
    got_a = store.claim("worker-a", now, 30, 2)
    got_b = store.claim("worker-b", now, 60, 2)
    assert len(got_a) == 2 and len(got_b) == 2 and not set(got_a) & set(got_b)
    leases = store.list_leases()
    assert all(isinstance(x, Lease) for x in leases)
    assert [(x.owner, x.execution_arn) for x in leases] == \
        sorted([("worker-a", a) for a in got_a] + [("worker-b", b) for b in got_b])
    for x in leases:   # the same word as lease_of, to the second
        owner, until = store.lease_of(x.execution_arn)
        assert (owner, until) == (x.owner, x.expires)
        assert abs((until - now).total_seconds() - (30 if owner == "worker-a" else 60)) < 1
    later = now + timedelta(seconds=90)
    store.renew(got_a[0], "worker-a", later)   # what it answers: see the test below
    assert {x.execution_arn: x.expires for x in store.list_leases()}[got_a[0]] == store.lease_of(got_a[0])[1]
    assert abs((store.lease_of(got_a[0])[1] - later).total_seconds()) < 1
    assert not store.renew(got_a[1], "worker-b", later)   # not worker-b's lease
    store.release(got_b[0], "worker-a")   # not its lease: nothing changes
    assert len(store.list_leases()) == 4
    store.release(got_b[0], "worker-b")
    assert got_b[0] not in {x.execution_arn for x in store.list_leases()}
    free = set(arns) - set(got_a) - set(got_b)
    assert free.isdisjoint({x.execution_arn for x in store.list_leases()})
    engine.close()


def test_a_finished_execution_holds_no_lease(any_store):
    """An engine that runs executions to their end gives every lease back."""
    engine = Engine(db=any_store, clock="virtual")
    arns = _start(engine, 3)
    engine.run_until_idle()
    assert all(engine.store.get_execution(a)["status"] == "SUCCEEDED" for a in arns)
    assert engine.store.list_leases() == []
    engine.close()


def test_renew_answers_whether_the_lease_is_still_held(any_store):
    """`renew` returns True when it extended the worker's lease: `LeaseKeeper` stops renewing on
    False, and `Engine._step` raises LeaseLost for a late step of a batch on False."""
    engine = Engine(db=any_store)
    (arn,) = _start(engine, 1)
    now = engine.clock.now()
    assert engine.store.claim("worker-a", now, 30, 1) == [arn]
    assert engine.store.renew(arn, "worker-a", now + timedelta(seconds=60)) is True
    engine.close()


def test_statelang_workers_shows_leases_of_engines_without_a_heartbeat(sqlite_url):
    """A lease taken by an engine that never heartbeats (`worker --once`, a server's own engine)
    is still listed, under its owner, with no heartbeat; a heartbeating worker with its age."""
    from click.testing import CliRunner

    from statelang.cli.main import main
    from statelang.runtime.storage import WorkerInfo

    engine = Engine(db=sqlite_url)
    (arn, _) = _start(engine, 2)
    now = engine.clock.now()
    assert engine.store.claim("ghost", now, 30, 1) == [arn]
    engine.store.heartbeat(WorkerInfo("worker-live", "here", 4242, now, now))
    engine.close()
    out = CliRunner().invoke(main, ["workers", "--db", sqlite_url, "--json"])
    assert out.exit_code == 0, out.output
    listed = {w["workerId"]: w for w in json.loads(out.output)["workers"]}
    assert listed["ghost"]["state"] == "NO HEARTBEAT"
    assert [x["executionArn"] for x in listed["ghost"]["leases"]] == [arn]
    assert listed["worker-live"]["pid"] == 4242 and listed["worker-live"]["leases"] == []
    assert listed["worker-live"]["state"] == "LIVE"
    text = CliRunner().invoke(main, ["workers", "--db", sqlite_url]).output
    assert "ghost" in text and "NO HEARTBEAT" in text and arn in text and "worker-live" in text
