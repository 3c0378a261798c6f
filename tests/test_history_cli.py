"""`statelang history show|export|import`, `replay`, `redrive` and `fork` through click's CliRunner:
the state and input at chosen events, exit codes (0 reproduced, 1 diverged, 2 bad input), and an
execution exported from SQLite and imported into PostgreSQL on which every command still works."""

from __future__ import annotations

import itertools
import json
import textwrap

import pytest
from click.testing import CliRunner

from statelang import Engine
from statelang.cli import main
from tests.test_replay import SEED, SEED_INPUT, record_seed

ACCT = "us-east-1:123456789012"
_modules = itertools.count()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def seed(sqlite_url):
    engine, arn = record_seed(sqlite_url, name="cli-1")
    events = engine.store.history(arn)
    engine.close()
    return sqlite_url, arn, events


def cli(runner: CliRunner, *args: str):
    return runner.invoke(main, list(args), catch_exceptions=False)


def handlers_module(tmp_path, monkeypatch, body: str) -> str:
    """Write a handlers module into tmp_path, put it on sys.path; returns its (unique) name."""
    name = f"cli_handlers_{next(_modules)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def find(events, type_, name=None, nth=0) -> int:
    hits = [e["id"] for e in events if e["type"] == type_ and (
        name is None or (e.get("stateEnteredEventDetails") or {}).get("name") == name)]
    return hits[nth]


# -- history show -----------------------------------------------------------------------------
def test_show_prints_the_timeline(runner, seed):
    db, arn, events = seed
    r = cli(runner, "history", "show", arn, "--db", db)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["id", "elapsed", "type"]
    assert len(lines) == len(events) + 1
    assert "<-- error" in next(line for line in lines if "LambdaFunctionFailed" in line)
    r = cli(runner, "history", "show", arn, "--db", db, "--json")
    assert [e["type"] for e in json.loads(r.output)] == [e["type"] for e in events]


def test_show_at_the_first_event_has_no_state_yet(runner, seed):
    db, arn, _ = seed
    r = cli(runner, "history", "show", arn, "--db", db, "--at", "1")
    assert r.exit_code == 0
    assert r.output.splitlines()[:3] == ["event 1: ExecutionStarted", "state: (none yet)",
                                         "input: " + json.dumps(SEED_INPUT)]


def test_show_at_the_choice_names_it_and_its_input(runner, seed):
    db, arn, events = seed
    at = find(events, "ChoiceStateEntered", "Big?")
    r = cli(runner, "history", "show", arn, "--db", db, "--at", str(at))
    lines = r.output.splitlines()
    assert lines[0] == f"event {at}: ChoiceStateEntered"
    assert lines[1] == f"state: Big? (entered at event {at})"
    data = json.loads(lines[2].removeprefix("input: "))
    assert data["amount"] == 150 and data["flaky"] == {"ok": True} and data["charge"] == {"charged": 150}


def test_show_at_a_task_result_inside_a_map_iteration(runner, seed):
    db, arn, events = seed
    failed = find(events, "LambdaFunctionFailed", nth=2)       # the declined item
    r = cli(runner, "history", "show", arn, "--db", db, "--at", str(failed), "--json")
    snap = json.loads(r.output)
    assert snap["state"] == "Reserve" and snap["input"] == {"sku": "bad"}
    assert snap["event"]["type"] == "LambdaFunctionFailed"
    entered = snap["entered_event"]
    assert events[entered - 1]["type"] == "TaskStateEntered"


def test_show_at_the_end_has_the_last_output(runner, seed):
    db, arn, events = seed
    r = cli(runner, "history", "show", arn, "--db", db, "--at", str(len(events)), "--json")
    snap = json.loads(r.output)
    assert snap["state"] == "Child" and snap["output"]["child"] == {"v": 42}


def test_show_at_an_event_that_does_not_exist_exits_2(runner, seed):
    db, arn, events = seed
    r = runner.invoke(main, ["history", "show", arn, "--db", db, "--at", str(len(events) + 5)])
    assert r.exit_code == 2 and "has no event" in r.output


# -- replay -----------------------------------------------------------------------------------
def test_replay_an_arn_exits_0(runner, seed):
    db, arn, events = seed
    r = cli(runner, "replay", arn, "--db", db)
    assert r.exit_code == 0 and f"reproduced all {len(events)} events" in r.output
    r = cli(runner, "replay", arn, "--db", db, "--json")
    assert json.loads(r.output) == {"ok": True, "divergence": None}


def test_replay_a_file_against_a_changed_definition_exits_1(runner, seed, tmp_path):
    db, arn, events = seed
    exported = cli(runner, "history", "export", arn, "--db", db)
    assert exported.exit_code == 0
    path = tmp_path / "run.json"
    path.write_text(exported.output)
    assert cli(runner, "replay", str(path)).exit_code == 0
    changed = json.loads(json.dumps(SEED))
    changed["States"]["Big?"]["Choices"][0]["NumericGreaterThan"] = 500
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    r = runner.invoke(main, ["replay", str(path), "--definition", str(tmp_path / "changed.json"), "--json"])
    assert r.exit_code == 1
    d = json.loads(r.output)["divergence"]
    assert (d["eventId"], d["state"], d["reason"]) == (find(events, "WaitStateEntered", "Hold"), "Hold",
                                                       "a different state was taken")
    r = runner.invoke(main, ["replay", str(path), "--definition", str(tmp_path / "changed.json")])
    assert r.exit_code == 1


def test_replay_with_handlers_that_return_other_data_exits_1(runner, seed, tmp_path, monkeypatch):
    db, arn, _ = seed
    mod = handlers_module(tmp_path, monkeypatch, """
        def charge(inp):
            return {"charged": 0}
        def flaky(inp):
            return {"ok": True}
    """)
    r = runner.invoke(main, ["replay", arn, "--db", db, "--handlers", mod, "--json"])
    assert r.exit_code == 1
    d = json.loads(r.output)["divergence"]
    assert d["eventId"] == 7 and d["reason"] == "different data (output)"


def test_bad_input_exits_2(runner, seed, tmp_path):
    db, arn, _ = seed
    unknown = f"arn:aws:states:{ACCT}:execution:orders:nobody"
    for args in (["replay", unknown, "--db", db], ["history", "show", unknown, "--db", db],
                 ["history", "export", unknown, "--db", db], ["redrive", unknown, "--db", db],
                 ["fork", unknown, "--from-event", "2", "--db", db]):
        r = runner.invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert "no execution" in r.output
    broken = tmp_path / "broken.json"
    broken.write_text('{"events": [ {"id": 1,')
    assert runner.invoke(main, ["replay", str(broken)]).exit_code == 2
    assert runner.invoke(main, ["history", "import", str(broken), "--db", db]).exit_code == 2
    assert runner.invoke(main, ["replay", str(tmp_path / "missing.json")]).exit_code == 2
    assert runner.invoke(main, ["history", "import", str(tmp_path / "missing.json"), "--db", db]).exit_code == 2
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"format": "something-else", "events": []}))
    assert runner.invoke(main, ["replay", str(foreign)]).exit_code == 2


def test_redrive_of_a_succeeded_execution_exits_2(runner, seed):
    db, arn, _ = seed
    r = runner.invoke(main, ["redrive", arn, "--db", db])
    assert r.exit_code == 2 and "SUCCEEDED" in r.output


# -- export, import into another database -----------------------------------------------------
PARALLEL = {"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [
    {"StartAt": "Left", "States": {"Left": {"Type": "Task", "Resource": "left", "End": True}}},
    {"StartAt": "Right", "States": {"Right": {"Type": "Task", "Resource": "right", "End": True}}}]}}}


def test_export_import_sqlite_to_postgres_keeps_every_command_working(runner, seed, pg_url, tmp_path,
                                                                      monkeypatch):
    db, arn, events = seed
    doc = cli(runner, "history", "export", arn, "--db", db).output
    path = tmp_path / "export.json"
    path.write_text(doc)
    r = cli(runner, "history", "import", str(path), "--db", pg_url)
    assert r.exit_code == 0 and r.output.strip() == arn
    assert runner.invoke(main, ["history", "import", str(path), "--db", pg_url]).exit_code == 2   # twice

    again = cli(runner, "history", "export", arn, "--db", pg_url).output
    assert json.loads(again)["events"] == json.loads(doc)["events"]
    shown = cli(runner, "history", "show", arn, "--db", pg_url)
    assert shown.output == cli(runner, "history", "show", arn, "--db", db).output
    at = str(find(events, "ChoiceStateEntered", "Big?"))
    assert cli(runner, "history", "show", arn, "--db", pg_url, "--at", at).output == \
        cli(runner, "history", "show", arn, "--db", db, "--at", at).output
    r = cli(runner, "replay", arn, "--db", pg_url)
    assert r.exit_code == 0 and f"all {len(events)} events" in r.output

    mod = handlers_module(tmp_path, monkeypatch, """
        def reserve(inp):
            return {"sku": inp["sku"], "held": "forked"}
        def notify(inp):
            return None
    """)
    each = str(find(events, "MapStateEntered", "Each"))
    r = cli(runner, "fork", arn, "--from-event", each, "--db", pg_url, "--handlers", mod, "--name", "forked")
    # the fork re-runs Each and stops at Ask, which waits for its task token
    assert r.exit_code == 0, r.output
    new_arn, status = r.output.split()
    assert new_arn.endswith(":forked") and status == "RUNNING"
    e2 = Engine(db=pg_url)
    reserved = [json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
                for e in e2.store.history(new_arn) if e["type"] == "LambdaFunctionSucceeded"]
    assert {"sku": "bad", "held": "forked"} in reserved
    e2.close()


def test_a_failed_execution_imported_into_postgres_is_redriven_there(runner, sqlite_url, pg_url, tmp_path,
                                                                     monkeypatch):
    calls = []

    def right(inp):
        calls.append("right")
        raise RuntimeError("down")

    engine = Engine(db=sqlite_url, handlers={"left": lambda i: "L", "right": right}, clock="virtual")
    arn = f"arn:aws:states:{ACCT}:execution:jobs:imp-1"
    engine.start(PARALLEL, {}, arn=arn, name="imp-1", state_machine_arn=f"arn:aws:states:{ACCT}:stateMachine:jobs")
    engine.run_until_idle()
    assert engine.store.get_execution(arn)["status"] == "FAILED"
    engine.close()

    path = tmp_path / "failed.json"
    path.write_text(cli(runner, "history", "export", arn, "--db", sqlite_url).output)
    assert cli(runner, "history", "import", str(path), "--db", pg_url).exit_code == 0
    assert cli(runner, "replay", arn, "--db", pg_url).exit_code == 0

    mod = handlers_module(tmp_path, monkeypatch, """
        CALLS = []
        def left(inp):
            CALLS.append("left")
            return "L"
        def right(inp):
            CALLS.append("right")
            return "R"
    """)
    r = cli(runner, "redrive", arn, "--db", pg_url, "--handlers", mod)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "SUCCEEDED (redrive 1)"
    import importlib
    assert importlib.import_module(mod).CALLS == ["right"]      # the good branch is not re-run
    check = Engine(db=pg_url)
    row = check.store.get_execution(arn)
    assert json.loads(row["output"]) == ["L", "R"] and row["redriveCount"] == 1
    check.close()
    # the redriven history is in PostgreSQL only; the SQLite original is untouched
    orig = Engine(db=sqlite_url)
    assert orig.store.get_execution(arn)["status"] == "FAILED"
    orig.close()
