"""The Store contract on every backend: MemoryStore (the reference), SQLite and PostgreSQL.

Three layers: example cases run on all three stores; a differential test replays random
operation sequences on MemoryStore and a SQL store side by side and compares everything each
exposes after every step; and what only a SQL store promises (leases across processes, one
transaction per commit, clear errors, the engine end to end on a database file).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import statelang
from statelang.interpreter.step import Frame
from statelang.runtime.storage import Commit, ExecutionAlreadyExistsError, MemoryStore, Message, StoreConflict
from statelang.store import SqlStore, StoreError, open_store

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:flow"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def arn_of(name: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:flow:{name}"


def row_of(name: str, **extra) -> dict:
    return {"executionArn": arn_of(name), "stateMachineArn": SM, "name": name, "status": "RUNNING",
            "startDate": T0, "input": '{"a": 1}', "definition": '{"StartAt": "A"}', "roleArn": "arn:role",
            "redriveCount": 0, "progress": 2, **extra}


def started(name: str) -> Commit:
    return Commit(arn_of(name), events=[{"timestamp": T0, "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
                                         "executionStartedEventDetails": {"input": '{"a": 1}', "roleArn": "arn:role"}}])


def frame(fid: str, state: str = "A", seq: int = 0, **data) -> Frame:
    f = Frame(fid, None, "", state, {"x": [1, 2]}, 1)
    f.seq, f.data, f.entered_time = seq, data, T0
    return f


def plain(value):
    """JSON's view of a value: tuples become lists, as they do in any stored document."""
    return json.loads(json.dumps(value, default=str))


def present(d: dict | None) -> dict | None:
    """A row without its unset (None) fields: SQL rows carry every column, memory ones only those given."""
    return None if d is None else {k: v for k, v in d.items() if v is not None}


# -- the contract, on every backend ------------------------------------------------------------

def test_records_round_trip_keep_first_insertion_order(any_store):
    s = any_store
    created = datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    s.put_record("stateMachine", "arn:b", {"name": "b", "creationDate": created, "tags": [{"k": "v"}]})
    s.put_record("stateMachine", "arn:a", {"name": "a"})
    s.put_record("activity", "arn:a", {"name": "act"})
    s.put_record("stateMachine", "arn:b", {"name": "b2", "creationDate": created})
    assert s.get_record("stateMachine", "arn:b") == {"name": "b2", "creationDate": created}
    assert [r["name"] for r in s.list_records("stateMachine")] == ["b2", "a"]
    assert s.list_records("activity") == [{"name": "act"}]
    s.delete_record("stateMachine", "arn:b")
    s.delete_record("stateMachine", "arn:missing")
    assert s.get_record("stateMachine", "arn:b") is None
    assert s.list_records("stateMachine") == [{"name": "a"}]
    assert s.list_records("nothing") == []


def test_documents_that_look_like_stored_tags_round_trip(any_store):
    s = any_store
    tricky = {"$datetime": "not a date"}
    record = {"a": tricky, "b": {"$literal": 1}, "c": [{"$datetime": T0.isoformat()}], "when": T0}
    s.put_record("tag", "arn:t", record)
    assert s.get_record("tag", "arn:t") == record
    s.create_execution(row_of("e1", meta=record), started("e1"))
    assert s.get_execution(arn_of("e1"))["meta"] == record
    f = frame("f1")
    f.input = tricky
    s.apply(Commit(arn_of("e1"), frames={"f1": f}, add_messages=[Message(arn_of("e1"), "token", at(1), payload=tricky)]))
    assert s.load_frames(arn_of("e1"))["f1"]["input"] == tricky
    assert s.due_messages(arn_of("e1"), at(1))[0].payload == tricky


def test_create_execution_is_unique_and_keeps_extra_fields(any_store):
    s = any_store
    when = at(5)
    s.create_execution(row_of("e1", redriveDate=when, mapRunArn=None, labels={"x": [1]}), started("e1"))
    with pytest.raises(ExecutionAlreadyExistsError):
        s.create_execution(row_of("e1", status="FAILED"), Commit(arn_of("e1"), events=[
            {"timestamp": T0, "type": "ExecutionStarted", "id": 7, "previousEventId": 0}]))
    row = s.get_execution(arn_of("e1"))
    assert present(row) == present(row_of("e1", redriveDate=when, labels={"x": [1]}))
    assert row["startDate"] == T0 and row["startDate"].utcoffset() == timedelta(0)
    assert [e["id"] for e in s.history(arn_of("e1"))] == [1]
    assert s.get_execution(arn_of("missing")) is None
    assert s.history(arn_of("missing")) == []


def test_apply_appends_history_and_updates_only_given_columns(any_store):
    s = any_store
    s.create_execution(row_of("e1"), started("e1"))
    s.create_execution(row_of("e2"), started("e2"))
    paris = timezone(timedelta(hours=1))
    evs = [{"timestamp": at(i).astimezone(paris), "type": "PassStateEntered", "id": 2 + i, "previousEventId": 1 + i,
            "stateEnteredEventDetails": {"name": f"S{i}", "input": json.dumps({"i": i, "é": "ü"})}}
           for i in range(100)]
    s.apply(Commit(arn_of("e1"), events=evs, execution={"progress": 102, "status": "SUCCEEDED",
                                                         "stopDate": at(200), "output": "{}", "note": "x"}))
    s.apply(Commit(arn_of("e1"), execution={"error": None, "note2": at(1)}))
    got = s.history(arn_of("e1"))
    assert got == started("e1").events + evs
    if isinstance(s, SqlStore):   # memory hands back the objects it was given; SQL reads UTC
        assert all(e["timestamp"].tzinfo is UTC for e in got)
    assert [e["id"] for e in got] == list(range(1, 102))
    row = s.get_execution(arn_of("e1"))
    assert present(row) == present(row_of("e1", progress=102, status="SUCCEEDED", stopDate=at(200),
                                          output="{}", note="x", note2=at(1)))
    assert present(s.get_execution(arn_of("e2"))) == present(row_of("e2"))
    assert [r["executionArn"] for r in s.list_executions()] == [arn_of("e1"), arn_of("e2")]
    assert [r["name"] for r in s.list_executions(status="RUNNING")] == ["e2"]
    assert [r["name"] for r in s.list_executions(state_machine_arn=SM, status="SUCCEEDED")] == ["e1"]
    assert s.list_executions(state_machine_arn="arn:other") == []


def test_frames_are_replaced_and_removed(any_store):
    s = any_store
    s.create_execution(row_of("e1"), started("e1"))
    s.apply(Commit(arn_of("e1"), frames={"f1": frame("f1"), "f2": frame("f2", pending=("a", 1))}))
    s.apply(Commit(arn_of("e1"), frames={"f1": frame("f1", "B", seq=3, invoke={"k": "v"}), "f2": None,
                                         "f3": frame("f3")}))
    loaded = s.load_frames(arn_of("e1"))
    assert plain(loaded) == plain({"f1": frame("f1", "B", seq=3, invoke={"k": "v"}).to_dict(),
                                   "f3": frame("f3").to_dict()})
    back = Frame.from_dict(loaded["f1"])
    assert (back.state, back.seq, back.entered_time, back.data) == ("B", 3, T0, {"invoke": {"k": "v"}})
    assert s.load_frames(arn_of("missing")) == {}


def test_messages_due_cancel_consume_and_close(any_store):
    s = any_store
    for name in ("e1", "e2"):
        s.create_execution(row_of(name), started(name))
    a, b = arn_of("e1"), arn_of("e2")
    ms = [Message(a, "wait", at(10), "f1", 1), Message(a, "retry", at(5), "f1", 2), Message(a, "token", at(1), "f1", 1),
          Message(a, "heartbeat", at(7), "f2", 1), Message(b, "run", at(3), payload={"p": [1, "x"]})]
    s.apply(Commit(a, add_messages=ms[:4]))
    s.add_message(ms[4])
    assert len({m.id for m in ms}) == 5 and all(m.id > 0 for m in ms)
    assert [m.id for m in s.due_messages(a, at(7))] == [ms[2].id, ms[1].id, ms[3].id]
    assert s.due_messages(b, at(3)) == [ms[4]]
    assert s.due_messages(b, at(2.999)) == []
    assert s.next_due() == at(1)
    # cancel f1's timers with seq <= 1: the token message is not a timer and stays
    s.apply(Commit(a, cancel_frames=[("f1", 1)], consumed=[ms[4].id]))
    assert [m.kind for m in s.due_messages(a, at(100))] == ["token", "retry", "heartbeat"]
    assert s.due_messages(b, at(100)) == []
    s.apply(Commit(a, cancel_frames=[("f2", -1)]))
    assert [m.kind for m in s.due_messages(a, at(100))] == ["token", "retry"]
    # close_all drops the rest, but a message added by the same commit survives
    s.apply(Commit(a, close_all=True, add_messages=[Message(a, "run", at(50))]))
    assert [(m.kind, m.due) for m in s.due_messages(a, at(100))] == [("run", at(50))]
    assert s.next_due() == at(50)


def test_claim_lists_due_executions_earliest_first(any_store):
    s = any_store
    for name in ("e1", "e2", "e3", "e4"):
        s.create_execution(row_of(name), started(name))
    s.apply(Commit(arn_of("e1"), add_messages=[Message(arn_of("e1"), "wait", at(7)), Message(arn_of("e1"), "run", at(5))]))
    s.apply(Commit(arn_of("e2"), add_messages=[Message(arn_of("e2"), "run", at(5))]))
    s.apply(Commit(arn_of("e3"), add_messages=[Message(arn_of("e3"), "wait", at(2))]))
    s.apply(Commit(arn_of("e4"), add_messages=[Message(arn_of("e4"), "wait", at(60))]))
    assert s.claim("w", at(10), 30, 10) == [arn_of("e3"), arn_of("e1"), arn_of("e2")]
    for name in ("e1", "e2", "e3"):
        s.release(arn_of(name), "w")
    assert s.claim("w", at(10), 30, 2) == [arn_of("e3"), arn_of("e1")]
    for name in ("e1", "e3"):
        s.release(arn_of(name), "w")
    assert s.claim("w", at(1), 30, 10) == []


def test_tokens_and_activity_queue(any_store):
    s = any_store
    s.create_execution(row_of("e1"), started("e1"))
    a, act = arn_of("e1"), "arn:aws:states:us-east-1:123456789012:activity:work"
    toks = [{"token": f"t{i}", "execution_arn": a, "frame_id": f"f{i}", "seq": i,
             "activity_arn": act if i < 3 else None, "input": json.dumps({"i": i}), "state": f"S{i}"} for i in range(4)]
    s.apply(Commit(a, add_tokens=toks))
    assert present(s.get_token("t3")) == present(dict(toks[3], closed=False))
    assert s.get_token("nope") is None
    s.apply(Commit(a, close_frames_tokens=["f0"]))
    assert s.get_token("t0")["closed"] is True
    got = s.claim_activity_task(act, "worker-1", at(1))
    assert present(got) == present(dict(toks[1], closed=False))
    assert [(m.kind, m.frame_id, m.seq, m.payload) for m in s.due_messages(a, at(1))] == \
        [("activity_started", "f1", 1, {"workerName": "worker-1"})]
    assert s.claim_activity_task(act, "worker-2", at(1))["token"] == "t2"
    assert s.claim_activity_task(act, "worker-2", at(1)) is None
    assert s.claim_activity_task("arn:other", "w", at(1)) is None
    assert s.resolve_token("nope", Message("", "token", at(2))) == "unknown"
    assert s.resolve_token("t0", Message("", "token", at(2))) == "closed"
    beat = Message("", "beat", at(2))
    assert s.resolve_token("t1", beat) == "ok"
    assert (beat.execution_arn, beat.frame_id, beat.seq) == (a, "f1", 1) and beat.id > 0
    answer = Message("", "token", at(3), payload={"ok": True, "output": {"r": 1}})
    assert s.resolve_token("t1", answer) == "ok"
    assert s.resolve_token("t1", Message("", "token", at(3))) == "closed"
    assert [(m.kind, m.payload) for m in s.due_messages(a, at(3))][-2:] == \
        [("beat", None), ("token", {"ok": True, "output": {"r": 1}})]
    s.apply(Commit(a, close_all=True))
    assert s.resolve_token("t3", Message("", "beat", at(4))) == "closed"


# -- differential: random sequences on MemoryStore and a SQL store ----------------------------

KINDS = ["wait", "retry", "task_timeout", "heartbeat", "token", "run", "stop"]


def _observe(s, arns: list[str], token_names: list[str]) -> dict:
    far = at(10 ** 6)
    return {
        "executions": [present(s.get_execution(a)) for a in arns],
        "listed": [present(r) for r in s.list_executions(status="RUNNING")],
        "history": [s.history(a) for a in arns],
        "frames": [plain(s.load_frames(a)) for a in arns],
        "messages": [[(m.id, m.kind, m.due, m.frame_id, m.seq, m.payload) for m in s.due_messages(a, far)]
                     for a in arns],
        "next_due": s.next_due(),
        "tokens": [present(s.get_token(t)) for t in token_names],
        "records": s.list_records("tag"),
    }


def _random_ops(rng: random.Random, n: int):
    """Operations as (name, args) built from the generator alone, so both stores get equal ones."""
    ops, names, next_ids, tokens_made, fids = [], [], {}, 0, ["f0", "f1", "f2"]
    for _ in range(n):
        roll = rng.random()
        if roll < 0.15 or not names:
            name = f"e{len(names)}"
            names.append(name)
            next_ids[name] = 2
            ops.append(("create", name))
            continue
        name = rng.choice(names)
        arn = arn_of(name)
        if roll < 0.6:
            k = rng.randint(0, 4)
            events = [{"timestamp": at(rng.randint(0, 99)), "type": "WaitStateEntered", "id": next_ids[name] + i,
                       "previousEventId": next_ids[name] + i - 1, "stateEnteredEventDetails": {"name": f"W{i}"}}
                      for i in range(k)]
            next_ids[name] += k
            toks = []
            for _ in range(rng.choice([0, 0, 1, 2])):
                tokens_made += 1
                toks.append({"token": f"tok{tokens_made}", "execution_arn": arn, "frame_id": rng.choice(fids),
                             "seq": rng.randint(0, 3), "activity_arn": rng.choice([None, "arn:act"]),
                             "input": "{}", "state": "T"})
            spec = dict(arn=arn, events=events,
                            execution=rng.choice([{}, {"progress": next_ids[name]},
                                                  {"status": "SUCCEEDED", "output": "1", "extraKey": rng.randint(0, 9)}]),
                            frames={f: rng.choice([None, ("frame", f, rng.randint(0, 5))])
                                    for f in rng.sample(fids, rng.randint(0, 2))},
                            add_messages=[(rng.choice(KINDS), rng.randint(0, 60), rng.choice(fids), rng.randint(0, 3))
                                          for _ in range(rng.randint(0, 3))],
                            consume=rng.randint(0, 2),
                            cancel_frames=[(rng.choice(fids), rng.randint(-1, 3))] if rng.random() < 0.3 else [],
                            close_frames_tokens=[rng.choice(fids)] if rng.random() < 0.2 else [],
                            add_tokens=toks, close_all=rng.random() < 0.08)
            ops.append(("apply", spec))
        elif roll < 0.7:
            ops.append(("resolve", f"tok{rng.randint(0, tokens_made + 1)}", rng.choice(["token", "beat"])))
        elif roll < 0.78:
            ops.append(("activity", "arn:act"))
        elif roll < 0.9:
            ops.append(("claim", rng.randint(0, 70), rng.randint(1, 4)))
        else:
            ops.append(("record", f"arn:{rng.randint(0, 3)}", rng.random() < 0.3))
    return ops, [arn_of(n) for n in names], [f"tok{i}" for i in range(1, tokens_made + 1)]


def _run_op(s, op) -> object:
    kind = op[0]
    if kind == "create":
        return s.create_execution(row_of(op[1]), started(op[1]))
    if kind == "apply":
        c = op[1]
        arn = c["arn"]
        live = [m.id for m in s.due_messages(arn, at(10 ** 6))]
        real = Commit(arn, events=[dict(e) for e in c["events"]], execution=dict(c["execution"]),
                      frames={f: None if v is None else frame(f, seq=v[2]) for f, v in c["frames"].items()},
                      add_messages=[Message(arn, k, at(d), f, q, {"d": d}) for k, d, f, q in c["add_messages"]],
                      consumed=live[:c["consume"]], cancel_frames=list(c["cancel_frames"]),
                      close_frames_tokens=list(c["close_frames_tokens"]), add_tokens=[dict(t) for t in c["add_tokens"]],
                      close_all=c["close_all"])
        s.apply(real)
        return [m.id for m in real.add_messages]
    if kind == "resolve":
        m = Message("", op[2], at(70), payload={"ok": True})
        return s.resolve_token(op[1], m), m.execution_arn, m.frame_id, m.seq, m.id
    if kind == "activity":
        return present(s.claim_activity_task(op[1], "w", at(70)))
    if kind == "claim":
        arns = s.claim("w", at(op[1]), 30, op[2])
        for a in arns:
            s.release(a, "w")
        return arns
    if kind == "record":
        if op[2]:
            return s.delete_record("tag", op[1])
        return s.put_record("tag", op[1], {"arn": op[1], "at": T0})
    raise AssertionError(op)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sql_store_matches_memory_store(seed, backend, request):
    ops, arns, token_names = _random_ops(random.Random(seed), 60)
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url")
    ref, sql = MemoryStore(), open_store(url)
    try:
        for i, op in enumerate(ops):
            assert _run_op(sql, op) == _run_op(ref, op), f"step {i}: {op[0]}"
            assert _observe(sql, arns, token_names) == _observe(ref, arns, token_names), f"after step {i}: {op[0]}"
    finally:
        sql.close()


# -- what only a SQL store promises ------------------------------------------------------------

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def sql_store(sql_url):
    s = open_store(sql_url)
    yield s
    s.close()


def test_lease_excludes_other_workers_until_released_or_expired(sql_store):
    s = sql_store
    s.create_execution(row_of("e1"), started("e1"))
    s.add_message(Message(arn_of("e1"), "run", at(0)))
    assert s.claim("w1", at(100), 30, 10) == [arn_of("e1")]
    assert s.claim("w2", at(110), 30, 10) == []
    assert s.claim("w1", at(110), 30, 10) == []          # a held lease is not taken twice, even by its owner
    s.release(arn_of("e1"), "w2")                          # not w2's to release
    assert s.claim("w2", at(129), 30, 10) == []
    assert s.claim("w2", at(130), 30, 10) == [arn_of("e1")]   # w1's lease ran out at 130
    s.release(arn_of("e1"), "w2")
    assert s.claim("w1", at(131), 30, 10) == [arn_of("e1")]


def _claim_all(url: str, worker: str, start, out) -> None:
    """A claiming worker in its own process: claim in small batches until nothing is left."""
    s = open_store(url)
    try:
        start.wait(60)   # every worker is connected before any claims
        got, idle, deadline = [], 0, time.monotonic() + 20
        while idle < 3 and time.monotonic() < deadline:
            arns = s.claim(worker, at(100), 3600, 3)
            got += arns
            idle = 0 if arns else idle + 1
            time.sleep(0.001)   # a worker processes what it claimed: others get their turn
        out.put((worker, got))
    finally:
        s.close()


@pytest.mark.parametrize("how", ["threads", "processes"])
def test_concurrent_claims_never_share_an_execution(sql_url, how):
    s = open_store(sql_url)
    names = [f"c{i}" for i in range(240)]
    for i, name in enumerate(names):
        s.create_execution(row_of(name), started(name))
        s.add_message(Message(arn_of(name), "run", at(i % 7)))
    s.close()
    if how == "threads":
        import queue
        start, out = threading.Barrier(3), queue.Queue()
        workers = [threading.Thread(target=_claim_all, args=(sql_url, f"w{i}", start, out)) for i in range(3)]
    else:
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(3), ctx.Queue()
        workers = [ctx.Process(target=_claim_all, args=(sql_url, f"w{i}", start, out)) for i in range(3)]
    for w in workers:
        w.start()
    results = dict(out.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(30)
    claimed = [a for got in results.values() for a in got]
    assert sorted(claimed) == sorted(arn_of(n) for n in names), "each execution claimed exactly once"
    assert sum(1 for got in results.values() if got) >= 2, f"the workers did not overlap: {results}"


def test_a_failing_commit_leaves_nothing_behind(sql_store):
    s = sql_store
    s.create_execution(row_of("e1"), started("e1"))
    s.apply(Commit(arn_of("e1"), frames={"f1": frame("f1")}, add_messages=[Message(arn_of("e1"), "wait", at(5), "f1")]))
    before = (s.get_execution(arn_of("e1")), s.history(arn_of("e1")), s.load_frames(arn_of("e1")),
              s.due_messages(arn_of("e1"), at(100)))
    duplicate = {"timestamp": T0, "type": "WaitStateEntered", "id": 1, "previousEventId": 0}
    bad = Commit(arn_of("e1"), events=[dict(duplicate, id=2), duplicate], execution={"status": "FAILED"},
                 frames={"f1": None, "f2": frame("f2")}, consumed=[before[3][0].id],
                 add_messages=[Message(arn_of("e1"), "run", at(1))], close_all=True)
    with pytest.raises(StoreConflict, match="statelang"):   # a refused write: one execution's fault
        s.apply(bad)
    after = (s.get_execution(arn_of("e1")), s.history(arn_of("e1")), s.load_frames(arn_of("e1")),
             s.due_messages(arn_of("e1"), at(100)))
    assert after == before


def test_a_missing_directory_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "flows.db"
    s = open_store(f"sqlite:///{path}")
    s.put_record("k", "arn", {"v": 1})
    s.close()
    assert path.exists()
    reopened = open_store(f"sqlite:///{path}")
    assert reopened.get_record("k", "arn") == {"v": 1}
    reopened.close()


def test_a_corrupt_file_is_refused_untouched(tmp_path):
    path = tmp_path / "corrupt.db"
    garbage = b"this is not an sqlite database, just bytes " * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}")
    assert str(path) in str(info.value) and "not a usable SQLite database" in str(info.value)
    assert path.read_bytes() == garbage


def test_a_database_locked_past_the_busy_timeout_raises_and_keeps_its_data(tmp_path):
    path = tmp_path / "locked.db"
    s = open_store(f"sqlite:///{path}?busy_timeout=200")
    s.create_execution(row_of("e1"), started("e1"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        with pytest.raises(StoreError, match="locked") as info:
            s.apply(Commit(arn_of("e1"), execution={"status": "ABORTED"}))
        assert time.monotonic() - began >= 0.15
        assert str(path) in str(info.value)
        assert s.get_execution(arn_of("e1"))["status"] == "RUNNING"   # readers are not blocked in WAL mode
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    s.apply(Commit(arn_of("e1"), execution={"status": "ABORTED"}))
    assert s.get_execution(arn_of("e1"))["status"] == "ABORTED"
    assert [e["type"] for e in s.history(arn_of("e1"))] == ["ExecutionStarted"]
    s.close()


def test_unreachable_postgres_and_unknown_urls_raise_store_error():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}/flows.*cannot connect"):
        open_store(f"postgresql://someone:secret@127.0.0.1:{port}/flows?connect_timeout=3")
    try:
        open_store(f"postgresql://someone:secret@127.0.0.1:{port}/flows?connect_timeout=3")
    except StoreError as e:
        assert "secret" not in str(e)
    with pytest.raises(StoreError, match="mysql"):
        open_store("mysql://localhost/flows")


# -- the engine on a database ------------------------------------------------------------------

DEFINITION = {"StartAt": "Hold", "States": {
    "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Charge"},
    "Charge": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:Charge",
               "ResultPath": "$.receipt", "End": True}}}


def _charge(event):
    return {"charged": event["amount"] * 2}


def _run_flow(db, start_only: bool = False):
    eng = statelang.Engine(db=db, handlers={"Charge": _charge}, clock=statelang.VirtualClock(T0))
    eng.start(DEFINITION, {"amount": 21}, arn=arn_of("pay-1"), name="pay-1", state_machine_arn=SM)
    if not start_only:
        eng.run_until_idle()
    return eng


def test_engine_runs_a_wait_and_a_task_to_success(backend_url):
    eng = _run_flow(backend_url)
    row = eng.store.get_execution(arn_of("pay-1"))
    assert row["status"] == "SUCCEEDED"
    assert json.loads(row["output"]) == {"amount": 21, "receipt": {"charged": 42}}
    assert row["stopDate"] - row["startDate"] >= timedelta(seconds=3600)
    history = eng.store.history(arn_of("pay-1"))
    types = [e["type"] for e in history]
    assert types[1:] == ["WaitStateEntered", "WaitStateExited", "TaskStateEntered", "LambdaFunctionScheduled",
                         "LambdaFunctionStarted", "LambdaFunctionSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    reference = _run_flow("memory").store.history(arn_of("pay-1"))
    assert history == reference
    if isinstance(eng.store, SqlStore):
        eng.store.close()


def test_a_second_engine_on_the_same_file_continues_and_sees_the_history(sqlite_url):
    first = _run_flow(sqlite_url, start_only=True)       # ExecutionStarted committed, nothing run yet
    first.store.close()
    second = statelang.Engine(db=sqlite_url, handlers={"Charge": _charge}, clock=statelang.VirtualClock(T0))
    assert second.run_until_idle() > 0
    history = second.store.history(arn_of("pay-1"))
    second.store.close()
    third = statelang.Engine(db=sqlite_url, clock="virtual")
    assert third.store.get_execution(arn_of("pay-1"))["status"] == "SUCCEEDED"
    assert third.store.history(arn_of("pay-1")) == history == _run_flow("memory").store.history(arn_of("pay-1"))
    third.store.close()


_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from statelang.runtime.storage import Commit, Message
from statelang.store import open_store
url, arn = sys.argv[1], sys.argv[2]
s = open_store(url)
t0 = datetime(2024, 1, 1, tzinfo=UTC)
s.create_execution({"executionArn": arn, "stateMachineArn": "sm", "name": "n", "status": "RUNNING",
                    "startDate": t0, "definition": "{}", "progress": 1}, Commit(arn))
eid = 1
print("ready", flush=True)
while True:
    evs = [{"timestamp": t0 + timedelta(seconds=eid + i), "type": "PassStateEntered", "id": eid + i,
            "previousEventId": eid + i - 1, "stateEnteredEventDetails": {"name": "S"}} for i in range(10)]
    eid += 10
    s.apply(Commit(arn, events=evs, execution={"progress": eid},
                   add_messages=[Message(arn, "wait", t0, "f", eid)]))
"""


def test_a_process_killed_while_committing_leaves_whole_commits(sql_url, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), sql_url, arn_of("k")], stdout=subprocess.PIPE,
                            cwd=str(Path(__file__).resolve().parents[1]), text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.7)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    s = open_store(sql_url)
    try:
        history = s.history(arn_of("k"))
        row = s.get_execution(arn_of("k"))
        msgs = s.due_messages(arn_of("k"), at(10 ** 6))
    finally:
        s.close()
    assert len(history) >= 10 and len(history) % 10 == 0, "only whole commits survive"
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert row["progress"] == len(history) + 1
    assert len(msgs) == len(history) // 10


@pytest.mark.parametrize("query, error", [
    ("synchronous=sometimes", "synchronous must be one of"),
    ("busy_timeout=soon", "busy_timeout must be milliseconds"),
    ("wal_autocheckpoint=lots", "wal_autocheckpoint must be a number of pages"),
])
def test_a_bad_sqlite_option_is_named(tmp_path, query, error):
    with pytest.raises(StoreError, match=error):
        open_store(f"sqlite:///{tmp_path / 'x.db'}?{query}")


def test_sqlite_options_reach_every_connection_of_the_store(tmp_path):
    """The pragmas are set on the store's own driver connections as on SQLAlchemy's: SQLite keeps
    them per connection, not in the file."""
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}?wal_autocheckpoint=250&busy_timeout=1234&synchronous=full")
    try:
        s.create_execution(row_of("e1"), started("e1"))   # opens a driver connection
        with s.connection() as fast, s.engine.connect() as conn:
            pooled = conn.connection.driver_connection
            for c in (fast, pooled):
                assert c.execute("PRAGMA wal_autocheckpoint").fetchall() == [(250,)]
                assert c.execute("PRAGMA busy_timeout").fetchall() == [(1234,)]
                assert c.execute("PRAGMA synchronous").fetchall() == [(2,)]   # FULL
                assert c.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
        default = open_store(f"sqlite:///{tmp_path / 'y.db'}")
        with default.engine.connect() as conn:
            assert conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchall() == [(10000,)]
        default.close()
    finally:
        s.close()


def test_an_event_id_beyond_the_packed_key_range_is_refused_and_nothing_of_the_commit_lands(sql_store):
    """events.seq packs (execution id, event id); an event id that would run into the next
    execution's range is refused with the execution named, and the commit is not half applied."""
    from statelang.store.schema import EVENTS_PER_EXECUTION
    s = sql_store
    s.create_execution(row_of("e1"), started("e1"))
    bad = Commit(arn_of("e1"), events=[
        {"timestamp": T0, "type": "PassStateEntered", "id": 2, "previousEventId": 1},
        {"timestamp": T0, "type": "PassStateExited", "id": EVENTS_PER_EXECUTION, "previousEventId": 2}],
        execution={"status": "SUCCEEDED"})
    with pytest.raises(StoreError, match=f"{arn_of('e1')}.*{EVENTS_PER_EXECUTION}"):
        s.apply(bad)
    assert [e["id"] for e in s.history(arn_of("e1"))] == [1]
    assert s.get_execution(arn_of("e1"))["status"] == "RUNNING"


def test_listing_running_executions_reads_the_partial_index(sqlite_url):
    s = open_store(sqlite_url)
    try:
        from statelang.store.schema import executions
        q = executions.select().where(executions.c.status == "RUNNING").order_by(executions.c.id)
        with s.engine.connect() as conn:
            compiled = q.compile(conn)
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params.values())).all()
        assert any("ix_executions_running" in str(row) for row in plan), plan
    finally:
        s.close()


def test_a_commit_fenced_by_a_lease_it_no_longer_holds_is_refused_whole(sql_store):
    """The fence rides inside the commit's transaction (on PostgreSQL, in its pipeline): the
    lease holder's commit lands; another worker's raises LeaseLost and leaves nothing behind."""
    from statelang.runtime.storage import LeaseLost
    s = sql_store
    s.create_execution(row_of("e1"), started("e1"))
    s.add_message(Message(arn_of("e1"), "run", at(0)))
    assert s.claim("w1", at(1), 30, 10) == [arn_of("e1")]
    step = {"timestamp": T0, "type": "PassStateEntered", "id": 2, "previousEventId": 1}
    with pytest.raises(LeaseLost):
        s.apply(Commit(arn_of("e1"), events=[step], execution={"status": "FAILED"}, fence="w2",
                       add_messages=[Message(arn_of("e1"), "wait", at(5))]))
    assert [e["id"] for e in s.history(arn_of("e1"))] == [1]
    assert s.get_execution(arn_of("e1"))["status"] == "RUNNING"
    assert len(s.due_messages(arn_of("e1"), at(100))) == 1
    s.apply(Commit(arn_of("e1"), events=[step], execution={"progress": 3}, fence="w1"))
    assert [e["id"] for e in s.history(arn_of("e1"))] == [1, 2]
    s.apply(Commit(arn_of("e1"), events=[dict(step, id=3, previousEventId=2)], fence="w1"))   # the connection is fine


def _round(name: str, fence: str, mid: int) -> Commit:
    """A task round's usual writes: events, a frame replaced and one removed, a message consumed."""
    steps = [{"timestamp": T0, "type": "TaskStateEntered", "id": i, "previousEventId": i - 1,
              "stateEnteredEventDetails": {"name": "T", "input": "{}"}} for i in (2, 3, 4)]
    return Commit(arn_of(name), events=steps, frames={"f1": frame("f1", "B", seq=2, invoke={"k": "v"}), "f2": None},
                  consumed=[mid], fence=fence)


def test_a_rounds_writes_fenced_by_a_lost_lease_leave_nothing(sql_store):
    """A round of events, frames and a consumed message under a lease check: on PostgreSQL such a
    round goes to the server as one statement (see the test below), and it must be as much a
    transaction as a pipelined one: refused whole when the lease is another's, applied whole when
    it is the committer's."""
    from statelang.runtime.storage import LeaseLost
    s = sql_store
    s.create_execution(row_of("r1"), started("r1"))
    s.apply(Commit(arn_of("r1"), frames={"f1": frame("f1"), "f2": frame("f2")},
                   add_messages=[Message(arn_of("r1"), "run", at(0))]))
    mid = s.due_messages(arn_of("r1"), at(1))[0].id
    assert s.claim("w1", at(1), 30, 10) == [arn_of("r1")]
    before = {k: plain(v) for k, v in s.load_frames(arn_of("r1")).items()}
    with pytest.raises(LeaseLost):
        s.apply(_round("r1", "w2", mid))
    assert [e["id"] for e in s.history(arn_of("r1"))] == [1]
    assert {k: plain(v) for k, v in s.load_frames(arn_of("r1")).items()} == before
    assert [m.id for m in s.due_messages(arn_of("r1"), at(1))] == [mid]
    s.apply(_round("r1", "w1", mid))
    assert [e["id"] for e in s.history(arn_of("r1"))] == [1, 2, 3, 4]
    frames = s.load_frames(arn_of("r1"))
    assert sorted(frames) == ["f1"] and plain(frames["f1"])["state"] == "B"
    assert s.due_messages(arn_of("r1"), at(1)) == []


@pytest.mark.postgres
def test_on_postgres_a_round_is_one_statement_and_other_commits_a_pipelined_transaction(pg_url, monkeypatch):
    """The round above reaches the server as one statement of CTEs, with no BEGIN or COMMIT; a
    commit with a statement outside the composable set (a new message, whose id is read back)
    runs as BEGIN ... COMMIT, its held statements first."""
    import psycopg
    s = open_store(pg_url)
    try:
        s.create_execution(row_of("r1"), started("r1"))
        s.apply(Commit(arn_of("r1"), frames={"f1": frame("f1"), "f2": frame("f2")},
                       add_messages=[Message(arn_of("r1"), "run", at(0))]))
        mid = s.due_messages(arn_of("r1"), at(1))[0].id
        s.claim("w1", at(1), 30, 10)
        sent = []   # the first word of every statement the store's connections execute
        real = psycopg.Connection.execute

        def execute(self, query, *args, **kwargs):
            sent.append(str(query).split(" ", 1)[0])
            return real(self, query, *args, **kwargs)
        monkeypatch.setattr(psycopg.Connection, "execute", execute)
        s.apply(_round("r1", "w1", mid))
        assert sent == ["WITH"]
        sent.clear()
        later = Commit(arn_of("r1"), events=[{"timestamp": T0, "type": "TaskStateExited", "id": 5, "previousEventId": 4,
                                              "stateExitedEventDetails": {"name": "T", "output": "{}"}}],
                       add_messages=[Message(arn_of("r1"), "wait", at(9))], fence="w1")
        s.apply(later)
        assert sent[0] == "BEGIN" and sent[-1] == "COMMIT" and "WITH" not in sent
        monkeypatch.undo()
        assert [e["id"] for e in s.history(arn_of("r1"))] == [1, 2, 3, 4, 5]
        assert [m.kind for m in s.due_messages(arn_of("r1"), at(10))] == ["wait"]
    finally:
        s.close()


def test_message_kinds_come_back_as_members_and_an_unknown_kind_is_named(sql_url):
    """A message's kind is stored as its text and read back as its enum member; a kind no
    engine knows (a row written by hand, or by a newer version) is refused, naming it."""
    from statelang.interpreter.commands import TimerKind
    from statelang.runtime.storage import MessageKind, message_kind
    s = open_store(sql_url)
    try:
        s.create_execution(row_of("mk"), started("mk"))
        s.apply(Commit(arn_of("mk"), add_messages=[Message(arn_of("mk"), MessageKind.STOP, at(1)),
                                                   Message(arn_of("mk"), TimerKind.WAIT, at(2), "f", 1)]))
        kinds = [m.kind for m in s.due_messages(arn_of("mk"), at(10))]
    finally:
        s.close()
    assert kinds == [MessageKind.STOP, TimerKind.WAIT]
    assert all(type(k) in (MessageKind, TimerKind) for k in kinds)
    with pytest.raises(ValueError, match="unknown message kind 'bogus'"):
        message_kind("bogus")
