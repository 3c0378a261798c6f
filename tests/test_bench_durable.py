"""`bench.bench_durable`: statelang's durable executions beside DBOS, with tiny round counts.

Real parts: a SQLite file per runner and the test session's PostgreSQL server; DBOS itself when
it is installed (`pip install 'statelang[bench]'`), skipped otherwise.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` lives beside `tests`

from bench import bench_durable  # noqa: E402

RUNNERS = [name for name, _ in bench_durable.RUNNERS]


def _check(entry: dict, counts: list[int]) -> None:
    assert entry["same_output"] is True
    assert sorted(entry["runners"]) == sorted(RUNNERS)
    for name in RUNNERS:
        assert sorted(entry["runners"][name]) == counts
        for figures in entry["runners"][name].values():
            assert figures["statuses"] == ["SUCCEEDED"]
            assert figures["workflows_per_second"] > 0
            assert figures["rounds"] == 1


def test_sqlite_and_postgres_side_by_side(pg_url):
    pytest.importorskip("dbos")
    lines: list[str] = []
    report = bench_durable.run(rounds=1, per_thread=2, threads=(1, 2), pg_url=pg_url, log=lines.append)
    assert report["available"] is True
    sqlite, postgres = report["backends"]["sqlite"], report["backends"]["postgres"]
    _check(sqlite, [1])
    _check(postgres, [1, 2])
    assert sqlite["settings"] == "WAL, synchronous=NORMAL"
    assert postgres["settings"].startswith("synchronous_commit=")
    assert len(lines) == 3 + 3 * 2
    table = bench_durable.summary(report)
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if "SUCCEEDED" in line]
    assert len(rows) == 9
    for row in rows:   # a ratio statelang/DBOS on every statelang row, none on DBOS's own
        if row[1] == "DBOS":
            assert len(row) == 5, row
        else:
            assert row[1].startswith("statelang") and re.fullmatch(r"[\d,]+\.\dx", row[4]), row
    assert "same output on all three: sqlite yes, postgres yes" in table
    json.dumps(report)   # `python -m bench --json` writes it


def test_the_five_task_machine_gives_b6_output(tmp_path):
    """The commit-per-step machine computes what b6 computes: the runners compare on one result."""
    b6 = bench_durable.load("b6")
    outputs = []
    for n, definition in enumerate((b6.definition_text, bench_durable.five_tasks_definition())):
        runner = bench_durable.StatelangDurable(f"sqlite:///{tmp_path / f'{n}.db'}", definition, b6.input_text)
        try:
            seconds, statuses, got = bench_durable._Threads.run(runner.one, 2, 2)
        finally:
            runner.close()
        assert statuses == ["SUCCEEDED"] * 4
        outputs.extend(got)
    assert outputs[0] == {"k": "v", **{f"s{i}": {"i": i} for i in range(5)}}
    assert all(o == outputs[0] for o in outputs)


def test_without_dbos_the_section_says_so(monkeypatch):
    monkeypatch.setattr(bench_durable, "dbos_available", lambda: False)
    report = bench_durable.run(rounds=1, per_thread=1)
    assert report["available"] is False
    assert "DBOS not installed" in bench_durable.summary(report)
