"""`statelang history show` pages a long history by event id: `--after EVENT_ID --limit N` shows
one stretch and names the `--after` of the next, and the pages put together are the whole history,
every event once and in order, on SQLite and PostgreSQL. Without them the whole history still
prints as before, read a page at a time. The execution is a real one: a Choice loop of Pass states
run by the engine on the virtual clock to exactly 20,000 events."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

import statelang
from statelang.cli import main
from statelang.history.timeline import render_timeline

ROLE = "arn:aws:iam::123456789012:role/paging"
EVENTS = 20_000
# ExecutionStarted, Init's 2 events, 4,998 rounds of More? and Step (4 events), More?'s last 2, Done's 2
# and ExecutionSucceeded: 20,000
LOOP = {"StartAt": "Init", "States": {
    "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.n", "Next": "More?"},
    "More?": {"Type": "Choice", "Default": "Step",
              "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": 4998, "Next": "Done"}]},
    "Step": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "More?"},
    "Done": {"Type": "Succeed"}}}
WAITS = {"StartAt": "A", "States": {
    "A": {"Type": "Pass", "Next": "Short"},
    "Short": {"Type": "Wait", "Seconds": 90, "Next": "B"},
    "B": {"Type": "Pass", "Next": "Long"},
    "Long": {"Type": "Wait", "Seconds": 7200, "Next": "C"},
    "C": {"Type": "Succeed"}}}


def run_to_end(db: str, definition: dict, name: str) -> str:
    """Run `definition` to its end on `db` (virtual clock); returns the execution's ARN."""
    engine = statelang.Engine(db=db, clock="virtual")
    sfn = engine.client()
    sm = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=sm, name=f"{name}-1", input="{}")["executionArn"]
    engine.run_until_idle()
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    engine.close()
    return arn


def long_loop(db: str) -> str:
    arn = run_to_end(db, LOOP, "loop")
    engine = statelang.Engine(db=db)
    last = engine.store.history(arn, limit=1, reverse=True)[0]
    engine.close()
    assert (last["id"], last["type"]) == (EVENTS, "ExecutionSucceeded")
    return arn


def show(*args: str):
    return CliRunner().invoke(main, ["history", "show", *args], catch_exceptions=False)


NEXT = re.compile(r"^more events follow: --after (\d+)$")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request) -> str:
    """A database file or server the command line opens anew on each call."""
    return request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'sqlite'}_url")


def test_json_pages_put_together_are_the_whole_history_in_order(db):
    arn = long_loop(db)
    ids, types, after, calls = [], [], 0, 0
    while True:
        r = show(arn, "--db", db, "--json", "--after", str(after), "--limit", "1500")
        assert r.exit_code == 0, r.output
        page = json.loads(r.stdout)   # the hint goes to stderr: stdout stays one JSON document
        assert 1 <= len(page) <= 1500
        ids += [e["id"] for e in page]
        types += [e["type"] for e in page]
        calls += 1
        hint = r.stderr.strip()
        if not hint:
            break
        after = int(NEXT.match(hint).group(1))
        assert after == page[-1]["id"] and len(page) == 1500
    assert ids == list(range(1, EVENTS + 1))
    assert calls == -(-EVENTS // 1500)
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert types.count("ChoiceStateEntered") == 4999


def test_timeline_pages_are_the_lines_of_the_whole_timeline(sqlite_url):
    arn = long_loop(sqlite_url)
    whole = show(arn, "--db", sqlite_url)
    assert whole.exit_code == 0
    lines = whole.output.splitlines()
    assert len(lines) == EVENTS + 1 and not any(NEXT.match(line) for line in lines)
    got, after = [], 0
    while True:
        r = show(arn, "--db", sqlite_url, "--after", str(after), "--limit", "7000")
        out = r.stdout.splitlines()
        assert out[0] == lines[0]   # each page has the header
        hint = NEXT.match(out[-1])
        got += out[1:-1] if hint else out[1:]
        if not hint:
            break
        after = int(hint.group(1))
    assert got == lines[1:]


def test_elapsed_times_count_from_the_start_on_every_page(sqlite_url):
    arn = run_to_end(sqlite_url, WAITS, "waits")
    engine = statelang.Engine(db=sqlite_url)
    events = engine.store.history(arn)
    engine.close()
    expected = render_timeline(events).splitlines()
    assert any("2h01m" in line for line in expected)   # the waits moved the (virtual) clock
    for after in range(0, len(events), 3):
        r = show(arn, "--db", sqlite_url, "--after", str(after), "--limit", "3")
        body = [line for line in r.stdout.splitlines()[1:] if not NEXT.match(line)]
        assert body == expected[after + 1:after + 4]


def test_the_whole_history_without_limits_is_unchanged(sqlite_url):
    arn = run_to_end(sqlite_url, WAITS, "waits")
    engine = statelang.Engine(db=sqlite_url)
    events = engine.store.history(arn)
    engine.close()
    r = show(arn, "--db", sqlite_url, "--json")
    assert r.stdout == json.dumps(events, indent=2, ensure_ascii=False,
                                  default=lambda t: t.isoformat()) + "\n"
    r = show(arn, "--db", sqlite_url)
    assert r.stdout == render_timeline(events) + "\n"


def test_the_end_of_the_history(sqlite_url):
    arn = run_to_end(sqlite_url, WAITS, "waits")
    last = len(statelang.Engine(db=sqlite_url).store.history(arn))
    r = show(arn, "--db", sqlite_url, "--after", str(last - 2), "--limit", "2")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3 and "more events" not in r.output
    r = show(arn, "--db", sqlite_url, "--after", str(last))
    assert r.exit_code == 0 and r.stdout == f"(no events after {last})\n"
    r = show(arn, "--db", sqlite_url, "--after", str(last), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []


@pytest.mark.parametrize(("args", "words"), [
    (["--after", "99"], "has no event 99 (its last event is"),
    (["--after", "-1"], "--after takes an event id (0 or more), not -1"),
    (["--after", "ten"], "'ten' is not a valid integer"),
    (["--limit", "0"], "--limit takes a number of events (1 or more), not 0"),
    (["--at", "3", "--limit", "2"], "--at shows the state at one event: it does not take --after or --limit"),
    (["--at", "0"], "has no event 0"),
])
def test_bad_paging_options_exit_2_naming_the_problem(sqlite_url, args, words):
    arn = run_to_end(sqlite_url, WAITS, "waits")
    r = show(arn, "--db", sqlite_url, *args)
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output
    r = show(arn + "-gone", "--db", sqlite_url, "--limit", "5")
    assert r.exit_code == 2 and "no execution" in r.output


def test_executions_history_reads_in_pages_and_prints_the_whole_history(sqlite_url, monkeypatch):
    """`statelang executions history` prints every event of a history, read page by page (the
    page made small here so that a short history spans many), the same as `history show`."""
    import statelang.cli.history as cli_history
    from statelang.store.sql import SqlStore
    arn = run_to_end(sqlite_url, WAITS, "waits")
    engine = statelang.Engine(db=sqlite_url)
    whole = engine.store.history(arn)
    engine.close()
    monkeypatch.setattr(cli_history, "PAGE", 3)
    limits = []
    original = SqlStore.history

    def counting(self, *args, **kwargs):
        limits.append(kwargs.get("limit"))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(SqlStore, "history", counting)
    r = CliRunner().invoke(main, ["executions", "history", arn, "--db", sqlite_url, "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert [e["id"] for e in json.loads(r.stdout)] == [e["id"] for e in whole]
    assert len(limits) > len(whole) // 3 and None not in limits and max(limits) <= 3   # pages, no whole read
    text = CliRunner().invoke(main, ["executions", "history", arn, "--db", sqlite_url]).stdout
    assert text == show(arn, "--db", sqlite_url).stdout
    assert text.rstrip("\n").split("\n")[1:] == render_timeline(whole).split("\n")[1:]
