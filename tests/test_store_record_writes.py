"""`Store.write_records`: conditional, all-or-nothing record writes, the same on every backend.

Workers sharing a database use it to agree on who fires a schedule's due time and who holds an
event delivery (eventbus.schedules, eventbus.targets): of several writers expecting the same
stored value, exactly one must succeed.
"""

from __future__ import annotations

import threading

from statelang.runtime.storage import RecordWrite

K = "test.kind"


def test_expect_merge_delete_and_all_or_nothing(any_store):
    s = any_store
    s.put_record(K, "a", {"NextFire": "t1", "Name": "a", "Keep": [1, 2]})
    # a failed expectation writes nothing of the batch
    assert not s.write_records([RecordWrite(K, "b", {"x": 1}),
                                RecordWrite(K, "a", {"NextFire": "t2"}, expect={"NextFire": "t0"}, merge=True)])
    assert s.get_record(K, "b") is None and s.get_record(K, "a")["NextFire"] == "t1"
    # the one that expects what is stored writes, merging over the other fields
    assert s.write_records([RecordWrite(K, "a", {"NextFire": "t2"}, expect={"NextFire": "t1"}, merge=True),
                            RecordWrite(K, "b", {"x": 1})])
    assert s.get_record(K, "a") == {"NextFire": "t2", "Name": "a", "Keep": [1, 2]}
    assert s.get_record(K, "b") == {"x": 1}
    # a missing field holds None; a missing record holds nothing, so even expect={} fails on it
    assert s.write_records([RecordWrite(K, "b", {"x": 2}, expect={"Owner": None})])
    assert not s.write_records([RecordWrite(K, "zzz", {"x": 1}, expect={})])
    assert s.get_record(K, "zzz") is None
    # a body of None deletes, under the same condition
    assert not s.write_records([RecordWrite(K, "b", None, expect={"x": 1})])
    assert s.write_records([RecordWrite(K, "b", None, expect={"x": 2})])
    assert s.get_record(K, "b") is None
    # without expect, a plain put
    assert s.write_records([RecordWrite(K, "c", {"y": None})]) and s.get_record(K, "c") == {"y": None}


def test_of_many_concurrent_writers_expecting_one_value_exactly_one_wins(any_store):
    s = any_store
    s.put_record(K, "sched", {"NextFire": "t1"})
    n = 6
    barrier = threading.Barrier(n)
    won: list[int] = []
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            if s.write_records([RecordWrite(K, "sched", {"NextFire": "t2", "By": i}, expect={"NextFire": "t1"},
                                            merge=True),
                                RecordWrite(K, f"delivery-{i}", {"i": i})]):
                won.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(won) == 1
    assert s.get_record(K, "sched") == {"NextFire": "t2", "By": won[0]}
    assert [i for i in range(n) if s.get_record(K, f"delivery-{i}") is not None] == won
