"""The SQL stores against `MemoryStore`, the reference, by a hypothesis state machine.

Each run drives MemoryStore, the SQLite store and (when the test server runs, see
tests/store_fixtures.py) the PostgreSQL store with the same operations — executions created
twice, commits of every part (events, columns, extras, frames, timers, consumed and cancelled
messages, tokens, close_all, lease release), messages, task tokens answered, activity tasks taken,
claims, records written plainly and by `write_records` — and after every step compares everything
each store exposes, history pages included. A difference is shrunk to its shortest sequence.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from statelang.interpreter.step import Frame
from statelang.runtime.storage import Commit, ExecutionAlreadyExistsError, MemoryStore, Message, RecordWrite
from statelang.store import SqlStore, open_store

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:flow"
ACT = "arn:aws:states:us-east-1:123456789012:activity:work"
NAMES = ["e0", "e1", "e2", "e3"]
FIDS = ["f0", "f1", "f2"]
KINDS = ["wait", "retry", "task_timeout", "heartbeat", "token", "run", "stop"]
ZONES = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-7, minutes=-30))]
TABLES = ["tokens", "messages", "frames", "events", "executions", "records"]

seconds = st.integers(0, 90)
when = st.builds(lambda s, z: (T0 + timedelta(seconds=s)).astimezone(z), seconds, st.sampled_from(ZONES))
# No NUL: PostgreSQL's text and JSONB cannot hold U+0000 (the store refuses it with a StoreError).
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=6)


def arn_of(name: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:flow:{name}"


def present(d: dict | None) -> dict | None:
    """A row without its unset (None) fields: SQL rows carry every column, memory ones only those given."""
    return None if d is None else {k: v for k, v in d.items() if v is not None}


def plain(value):
    return json.loads(json.dumps(value, default=str))


def reset(store: SqlStore) -> None:
    """Empty every table and restart its ids, so that a fresh MemoryStore's ids are the store's."""
    with store.connection() as conn:
        if store.dialect.name == "postgresql":
            conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        else:
            conn.execute("BEGIN IMMEDIATE")
            for t in TABLES:
                conn.execute(f"DELETE FROM {t}")
            conn.execute("DELETE FROM sqlite_sequence")
            conn.commit()


class StoreComparison(RuleBasedStateMachine):
    """One example: fresh stores, the same operations on each, the same answers from each."""

    bases: list[SqlStore] = []

    def __init__(self):
        super().__init__()
        self.ref = MemoryStore()
        self.sql = []
        for base in self.bases:
            reset(base)
            self.sql.append(SqlStore(base.engine, base.name))   # a fresh store: no remembered ids
        self.next_id: dict[str, int] = {}
        self.tokens: list[str] = []

    @property
    def stores(self):
        return [self.ref, *self.sql]

    def same(self, call):
        """`call` on every store; every answer (or exception class) equals the reference's."""
        answers = []
        for s in self.stores:
            try:
                answers.append(("ok", call(s)))
            except ExecutionAlreadyExistsError:
                answers.append(("exists", None))
        for s, got in zip(self.stores[1:], answers[1:], strict=True):
            assert got == answers[0], f"{s!r}: {got!r} != {answers[0]!r}"
        return answers[0][1]

    def teardown(self):
        for s in self.sql:
            s.close()

    # -- executions ----------------------------------------------------------------------------
    @initialize()
    def first(self):
        self._create("e0", T0)

    @rule(name=st.sampled_from(NAMES), start=when, extra=st.dictionaries(st.sampled_from(["note", "$datetime", "mapRunArn"]),
                                                                         json_values | when, max_size=2))
    def create(self, name, start, extra):
        self._create(name, start, extra)

    def _create(self, name, start, extra=None):
        arn = arn_of(name)
        row = {"executionArn": arn, "stateMachineArn": SM, "name": name, "status": "RUNNING", "startDate": start,
               "input": '{"a": 1}', "definition": '{"StartAt": "A"}', "roleArn": "arn:role", "redriveCount": 0,
               "progress": 2, **(extra or {})}
        first = [{"timestamp": start, "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
                  "executionStartedEventDetails": {"input": '{"a": 1}', "roleArn": "arn:role"}}]
        outcome = self.same(lambda s: s.create_execution(dict(row), Commit(arn, [dict(e) for e in first])))
        self.next_id.setdefault(arn, 2)
        return outcome

    @precondition(lambda self: self.next_id)
    @rule(data=st.data())
    def commit(self, data):
        arn = data.draw(st.sampled_from(sorted(self.next_id)))
        n = data.draw(st.integers(0, 4))
        at = data.draw(when)
        first = self.next_id[arn]
        events = [{"timestamp": at, "type": data.draw(st.sampled_from(["PassStateEntered", "WaitStateExited"])),
                   "id": first + i, "previousEventId": first + i - 1,
                   **({"stateEnteredEventDetails": {"name": data.draw(text), "input": json.dumps(data.draw(json_values))}}
                      if data.draw(st.booleans()) else {})} for i in range(n)]
        self.next_id[arn] += n
        execution = data.draw(st.sampled_from([
            {}, {"progress": self.next_id[arn]},
            {"status": "SUCCEEDED", "output": "1", "stopDate": at, "progress": self.next_id[arn]},
            {"redriveDate": at, "extraKey": 3}, {"status": "RUNNING", "error": None, "note": None}]))
        frames = data.draw(st.dictionaries(st.sampled_from(FIDS), st.none() | st.integers(0, 5), max_size=2))
        live = [m.id for m in self.ref.due_messages(arn, T0 + timedelta(days=9))]
        consumed = data.draw(st.lists(st.sampled_from(live), unique=True, max_size=2)) if live else []
        messages = data.draw(st.lists(st.tuples(st.sampled_from(KINDS), when, st.sampled_from(FIDS), st.integers(0, 3),
                                                json_values), max_size=3))
        cancel = data.draw(st.lists(st.tuples(st.sampled_from(FIDS), st.integers(-1, 3)), max_size=2))
        close_tokens = data.draw(st.lists(st.sampled_from(FIDS), unique=True, max_size=2))
        new_tokens = []
        for _ in range(data.draw(st.integers(0, 2))):
            name = f"tok{len(self.tokens)}"
            self.tokens.append(name)
            new_tokens.append({"token": name, "execution_arn": arn, "frame_id": data.draw(st.sampled_from(FIDS)),
                               "seq": data.draw(st.integers(0, 3)), "activity_arn": data.draw(st.sampled_from([None, ACT])),
                               "input": "{}", "state": "T"})
        close_all = data.draw(st.booleans())
        release = data.draw(st.sampled_from([None, "w"]))

        def apply(s):
            real = Commit(arn, events=[dict(e) for e in events], execution=dict(execution),
                          frames={f: None if v is None else _frame(f, v) for f, v in frames.items()},
                          add_messages=[Message(arn, k, d, f, q, p) for k, d, f, q, p in messages],
                          consumed=list(consumed), cancel_frames=list(cancel), close_frames_tokens=list(close_tokens),
                          add_tokens=[dict(t) for t in new_tokens], close_all=close_all, release=release)
            s.apply(real)
            return [m.id for m in real.add_messages]
        self.same(apply)

    @precondition(lambda self: self.next_id)
    @rule(data=st.data(), kind=st.sampled_from(KINDS), due=when, payload=json_values)
    def add_message(self, data, kind, due, payload):
        arn = data.draw(st.sampled_from(sorted(self.next_id)))

        def add(s):
            m = Message(arn, kind, due, "f0", 1, payload)
            s.add_message(m)
            return m.id
        self.same(add)

    # -- tokens, activities, claims ------------------------------------------------------------
    @rule(data=st.data(), kind=st.sampled_from(["token", "beat"]))
    def resolve(self, data, kind):
        name = data.draw(st.sampled_from([*self.tokens, "unknown"]))

        def answer(s):
            m = Message("", kind, T0 + timedelta(seconds=95), payload={"ok": True})
            return s.resolve_token(name, m), m.execution_arn, m.frame_id, m.seq, m.id
        self.same(answer)

    @rule(activity=st.sampled_from([ACT, "arn:other"]))
    def take_activity_task(self, activity):
        self.same(lambda s: present(s.claim_activity_task(activity, "worker", T0 + timedelta(seconds=95))))

    @rule(now=seconds, limit=st.integers(1, 4))
    def claim(self, now, limit):
        def claim(s):
            arns = s.claim("w", T0 + timedelta(seconds=now), 30, limit)
            for a in arns:
                s.release(a, "w")
            return arns
        self.same(claim)

    # -- records -------------------------------------------------------------------------------
    @rule(arn=st.sampled_from(["arn:0", "arn:1"]), body=st.none() | st.dictionaries(text, json_values | when, max_size=3))
    def record(self, arn, body):
        if body is None:
            self.same(lambda s: s.delete_record("tag", arn))
        else:
            self.same(lambda s: s.put_record("tag", arn, body))

    @rule(arn=st.sampled_from(["arn:0", "arn:1"]), body=st.none() | st.fixed_dictionaries({"at": json_values}),
          expect=st.none() | st.fixed_dictionaries({"at": json_values}) | st.just({}), merge=st.booleans())
    def write_records(self, arn, body, expect, merge):
        self.same(lambda s: s.write_records([RecordWrite("tag", arn, body, expect, merge)]))

    # -- what every store shows ----------------------------------------------------------------
    @invariant()
    def stores_agree(self):
        arns = [arn_of(n) for n in NAMES]
        far = T0 + timedelta(days=9)
        self.same(lambda s: {
            "executions": [present(s.get_execution(a)) for a in arns],
            "listed": [[present(r) for r in s.list_executions(status=status)] for status in ("RUNNING", "SUCCEEDED")],
            "by_machine": [r["executionArn"] for r in s.list_executions(state_machine_arn=SM)],
            "history": [s.history(a) for a in arns],
            "frames": [plain(s.load_frames(a)) for a in arns],
            "messages": [[(m.id, m.kind, m.due, m.frame_id, m.seq, m.payload) for m in s.due_messages(a, far)]
                         for a in arns],
            "due_at_30": [[m.id for m in s.due_messages(a, T0 + timedelta(seconds=30))] for a in arns],
            "next_due": s.next_due(),
            "tokens": [present(s.get_token(t)) for t in self.tokens],
            "records": s.list_records("tag"),
            "record": s.get_record("tag", "arn:0"),
        })

    @precondition(lambda self: self.next_id)
    @rule(data=st.data(), after=st.none() | st.integers(-1, 30), limit=st.none() | st.integers(0, 5),
          reverse=st.booleans())
    def history_page(self, data, after, limit, reverse):
        arn = data.draw(st.sampled_from(sorted(self.next_id)))
        self.same(lambda s: s.history(arn, after=after, limit=limit, reverse=reverse))


def _frame(fid: str, seq: int) -> Frame:
    f = Frame(fid, None, "", "A", {"x": [1, 2]}, 1)
    f.seq, f.data, f.entered_time = seq, {"k": seq}, T0
    return f


def test_sql_stores_do_what_the_memory_store_does(request):
    """MemoryStore, SQLite and, when its test server runs, PostgreSQL, step by step."""
    urls = [request.getfixturevalue("sqlite_url")]
    try:
        urls.append(request.getfixturevalue("pg_url"))
    except pytest.skip.Exception:
        pass   # no PostgreSQL here: SQLite alone against the reference
    bases = [open_store(u) for u in urls]
    StoreComparison.bases = bases
    try:
        run_state_machine_as_test(StoreComparison, settings=settings(
            max_examples=40, stateful_step_count=20, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]))
    finally:
        StoreComparison.bases = []
        for b in bases:
            b.close()
