"""The `statelang` command (cli.py): run, validate, executions, task and worker, through click's
CliRunner on `statelang.cli.main`, and once as a real process.

Exit statuses pinned by cli.py's contract: 0 success, 1 the execution did not succeed, 2 bad
input (definition, JSON, arguments) — one line on stderr, never a traceback.
`validate --json` has the shape of AWS's ValidateStateMachineDefinition response:
{"result": "OK" | "FAIL", "diagnostics": [{severity, code, message, location?}], "truncated"}.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from statelang import Engine
from statelang.cli import main

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = "tests.fixtures.handlers_example"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:sm"


def cli(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def write(tmp_path: Path, name: str, value) -> Path:
    p = tmp_path / name
    p.write_text(value if isinstance(value, str) else json.dumps(value))
    return p


GREET = {"StartAt": "G", "States": {"G": {"Type": "Task", "Resource": "greet", "End": True}}}
CHARGE = {"StartAt": "C", "States": {"C": {"Type": "Task", "Resource": "charge", "End": True}}}
WAIT_DAY = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "Next": "P"},
                                       "P": {"Type": "Pass", "Result": "waited", "End": True}}}


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)   # handler modules import relative to the working directory


# -- run -------------------------------------------------------------------------------------------

def test_run_inline_input_prints_the_output(tmp_path):
    d = write(tmp_path, "greet.asl.json", GREET)
    r = cli("run", d, "--input", '{"name": "Ada"}', "--handlers", HANDLERS)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"greeting": "Hello, Ada!"}


def test_run_input_from_a_file_and_from_stdin(tmp_path):
    d = write(tmp_path, "greet.asl.json", GREET)
    f = write(tmp_path, "in.json", {"name": "File"})
    r = cli("run", d, "--input", f"@{f}", "--handlers", HANDLERS)
    assert json.loads(r.stdout) == {"greeting": "Hello, File!"}
    r = cli("run", d, "--input", "-", "--handlers", HANDLERS, input='{"name": "Stdin"}')
    assert json.loads(r.stdout) == {"greeting": "Hello, Stdin!"}


def test_run_with_module_name_handlers(tmp_path):
    d = write(tmp_path, "s.asl.json", {"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "Shout",
                                                                         "End": True}}})
    r = cli("run", d, "--input", '"hi"', "--handlers", f"{HANDLERS}:EXTRA")
    assert r.exit_code == 0 and json.loads(r.stdout) == "HI"
    d2 = write(tmp_path, "g.asl.json", GREET)
    r = cli("run", d2, "--handlers", f"{HANDLERS}:greet")
    assert json.loads(r.stdout) == {"greeting": "Hello, world!"}
    d3 = write(tmp_path, "p.asl.json", {"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "_private",
                                                                          "End": True}}})
    r = cli("run", d3, "--handlers", HANDLERS)
    assert r.exit_code == 1 and "Lambda.ResourceNotFoundException" in r.stderr


def test_run_failure_exits_1_with_error_and_cause(tmp_path):
    d = write(tmp_path, "charge.asl.json", CHARGE)
    r = cli("run", d, "--input", '{"amount": 500}', "--handlers", HANDLERS)
    assert r.exit_code == 1
    assert r.stderr.startswith("FAILED: PaymentDeclined")
    assert "amount 500 over the limit" in r.stderr
    ok = cli("run", d, "--input", '{"amount": 5}', "--handlers", HANDLERS)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["charged"] == 5


def test_run_json_output_and_history(tmp_path):
    d = write(tmp_path, "wait.asl.json", WAIT_DAY)
    r = cli("run", d, "--time", "virtual", "--json", "--history")
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["status"] == "SUCCEEDED" and out["output"] == "waited" and out["error"] is None
    assert out["executionArn"].startswith("arn:aws:states:us-east-1:123456789012:execution:wait:")
    assert [e["type"] for e in out["history"]][-1] == "ExecutionSucceeded"
    text = cli("run", d, "--time", "virtual", "--history")
    assert "WaitStateEntered" in text.stdout and "1d00h" in text.stdout
    assert text.stdout.rstrip().endswith('"waited"')


@pytest.mark.parametrize("text,line,col", [('{"a": }', 1, 7), ('{\n  "a": 1,\n  oops\n}', 3, 3)])
def test_malformed_input_names_line_and_column(tmp_path, text, line, col):
    d = write(tmp_path, "g.asl.json", GREET)
    r = cli("run", d, "--input", text, "--handlers", HANDLERS)
    assert r.exit_code == 2
    assert f"line {line}, column {col}" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_missing_input_file_is_a_user_error(tmp_path):
    d = write(tmp_path, "g.asl.json", GREET)
    r = cli("run", d, "--input", f"@{tmp_path}/nope.json")
    assert r.exit_code == 2 and "cannot read input file" in r.stderr


def test_invalid_definition_exits_2_without_a_traceback(tmp_path):
    d = write(tmp_path, "bad.asl.json", {"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "End": True}}})
    r = cli("run", d)
    assert r.exit_code == 2
    assert "ERROR" in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert r.stdout == ""


def test_unknown_handlers_module_is_a_user_error(tmp_path):
    d = write(tmp_path, "g.asl.json", GREET)
    r = cli("run", d, "--handlers", "no_such_module_here")
    assert r.exit_code == 2 and "cannot import handlers module" in r.stderr
    r = cli("run", d, "--handlers", f"{HANDLERS}:NOPE")
    assert r.exit_code == 2 and "has no attribute 'NOPE'" in r.stderr


# -- validate --------------------------------------------------------------------------------------

def test_validate_ok_and_json_shape(tmp_path):
    d = write(tmp_path, "g.asl.json", GREET)
    r = cli("validate", d)
    assert r.exit_code == 0 and r.stdout.strip().endswith("OK")
    out = json.loads(cli("validate", d, "--json").stdout)
    assert out["result"] == "OK" and out["truncated"] is False
    assert all(x["severity"] != "ERROR" for x in out["diagnostics"])


def test_validate_invalid_reports_every_problem_in_aws_shape(tmp_path):
    d = write(tmp_path, "bad.asl.json", {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "Missing"}, "B": {"Type": "Bogus", "End": True}}})
    r = cli("validate", d, "--json")
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert out["result"] == "FAIL" and out["truncated"] is False
    errors = [x for x in out["diagnostics"] if x["severity"] == "ERROR"]
    assert len(errors) >= 2
    for x in errors:
        assert set(x) <= {"severity", "code", "message", "location"} and x["code"] and x["message"]
    plain = cli("validate", d)
    assert plain.exit_code == 2 and "ERROR" in plain.stderr


def test_validate_malformed_json_definition(tmp_path):
    d = write(tmp_path, "bad.asl.json", '{"StartAt": ')
    r = cli("validate", d, "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["result"] == "FAIL"
    assert "Traceback" not in r.stdout + r.stderr


# -- executions, task, worker on a SQLite file ----------------------------------------------------

CALLBACK = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                                             "Parameters": {"t.$": "$$.Task.Token"}, "End": True}}}


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'flows.db'}"


def waiting(db: str, name: str) -> tuple[str, str]:
    """An execution waiting on a task token in `db`: (its ARN, the token)."""
    tokens = []
    engine = Engine(db=db)
    engine.resources.register("sqs:sendMessage", lambda e, ctx: tokens.append(ctx.task_token))
    arn = f"arn:aws:states:us-east-1:123456789012:execution:sm:{name}"
    engine.start(CALLBACK, {"who": name}, arn=arn, name=name, state_machine_arn=SM)
    engine.run_until_idle()
    engine.close()
    return arn, tokens[0]


def test_executions_list_describe_history(db):
    a1, _ = waiting(db, "one")
    a2, _ = waiting(db, "two")
    r = cli("executions", "list", "--db", db)
    assert r.exit_code == 0 and a1 in r.stdout and a2 in r.stdout and "RUNNING" in r.stdout
    rows = json.loads(cli("executions", "list", "--db", db, "--json").stdout)
    assert {x["executionArn"] for x in rows} == {a1, a2}
    assert json.loads(cli("executions", "list", "--db", db, "--json", "--status", "SUCCEEDED").stdout) == []
    assert len(json.loads(cli("executions", "list", "--db", db, "--json", "--state-machine", "sm").stdout)) == 2
    d = json.loads(cli("executions", "describe", a1, "--db", db, "--json").stdout)
    assert d["status"] == "RUNNING" and json.loads(d["input"]) == {"who": "one"}
    h = json.loads(cli("executions", "history", a1, "--db", db, "--json").stdout)
    assert [e["type"] for e in h][:2] == ["ExecutionStarted", "TaskStateEntered"]
    assert "TaskScheduled" in cli("executions", "history", a1, "--db", db).stdout
    missing = cli("executions", "describe", a1 + "x", "--db", db)
    assert missing.exit_code == 2 and "no execution" in missing.stderr


def test_executions_stop(db):
    arn, _ = waiting(db, "s")
    r = cli("executions", "stop", arn, "--db", db, "--error", "Ops.Stop", "--cause", "enough")
    assert r.exit_code == 0 and r.stdout.startswith("ABORTED")
    d = json.loads(cli("executions", "describe", arn, "--db", db, "--json").stdout)
    assert (d["status"], d["error"], d["cause"]) == ("ABORTED", "Ops.Stop", "enough")
    again = cli("executions", "stop", arn, "--db", db)
    assert again.exit_code == 2 and "not RUNNING" in again.stderr


def test_task_success_failure_heartbeat(db):
    a1, t1 = waiting(db, "ok")
    a2, t2 = waiting(db, "ko")
    assert cli("task", "heartbeat", t1, "--db", db).stdout.strip() == "ok"
    r = cli("task", "success", t1, "--output", '{"paid": true}', "--db", db)
    assert r.exit_code == 0 and r.stdout.strip() == "ok"
    d = json.loads(cli("executions", "describe", a1, "--db", db, "--json").stdout)
    assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == {"paid": True}
    r = cli("task", "failure", t2, "--error", "Card.Declined", "--cause", "no funds", "--db", db)
    assert r.exit_code == 0
    d = json.loads(cli("executions", "describe", a2, "--db", db, "--json").stdout)
    assert (d["status"], d["error"], d["cause"]) == ("FAILED", "Card.Declined", "no funds")
    closed = cli("task", "success", t1, "--db", db)
    assert closed.exit_code == 2 and "TaskTimedOut" in closed.stderr
    unknown = cli("task", "heartbeat", "nope", "--db", db)
    assert unknown.exit_code == 2 and "TaskDoesNotExist" in unknown.stderr


def test_task_success_runs_the_next_steps_with_the_handlers_given(db):
    """The answer moves the execution on in this process: the steps after the token's task need
    their handlers (here `greet`), given as the worker takes them."""
    tokens = []
    engine = Engine(db=db)
    engine.resources.register("sqs:sendMessage", lambda e, ctx: tokens.append(ctx.task_token))
    then_greet = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
              "Parameters": {"t.$": "$$.Task.Token"}, "Next": "G"},
        "G": {"Type": "Task", "Resource": "greet", "End": True}}}
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:then-greet"
    engine.start(then_greet, {}, arn=arn, name="then-greet", state_machine_arn=SM)
    engine.run_until_idle()
    engine.close()
    r = cli("task", "success", tokens[0], "--output", '{"name": "Ada"}', "--db", db, "--handlers", HANDLERS)
    assert r.exit_code == 0, r.stderr
    d = json.loads(cli("executions", "describe", arn, "--db", db, "--json").stdout)
    assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == {"greeting": "Hello, Ada!"}


def test_worker_once_runs_what_is_runnable(db):
    engine = Engine(db=db)
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:w"
    engine.start(GREET, {"name": "Worker"}, arn=arn, name="w", state_machine_arn=SM)
    engine.close()
    r = cli("worker", "--once", "--db", db, "--handlers", HANDLERS)
    assert r.exit_code == 0 and r.stdout.strip().endswith("execution steps")
    assert int(r.stdout.split()[0]) >= 1
    d = json.loads(cli("executions", "describe", arn, "--db", db, "--json").stdout)
    assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == {"greeting": "Hello, Worker!"}
    assert cli("worker", "--once", "--db", db).stdout.strip() == "0 execution steps"


def test_an_unusable_database_is_one_line(tmp_path):
    r = cli("executions", "list", "--db", "notaurl://x")
    assert r.exit_code == 2 and "Traceback" not in r.stderr + r.stdout and r.stderr.strip()


# -- a real process --------------------------------------------------------------------------------

def test_the_installed_command_runs(tmp_path):
    exe = ROOT / ".venv" / "bin" / "statelang"
    if not exe.exists():
        pytest.skip("no installed statelang command")
    d = write(tmp_path, "charge.asl.json", CHARGE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([str(exe), "run", str(d), "--input", '{"amount": 3}', "--handlers", HANDLERS],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["charged"] == 3
    bad = subprocess.run([str(exe), "run", str(d), "--input", "{nope"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "line 1, column 2" in bad.stderr and "Traceback" not in bad.stderr


def test_run_reports_a_distributed_maps_progress(tmp_path):
    """`--progress` (on by default at a terminal): a line per distributed Map run on stderr, and
    its final count, so that a long map shows it moves."""
    import subprocess
    import sys
    from pathlib import Path
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}
    path = tmp_path / "map.asl.json"
    path.write_text(json.dumps(definition))
    (tmp_path / "in.json").write_text(json.dumps({"items": list(range(1500))}))
    done = subprocess.run([str(Path(sys.executable).with_name("statelang")), "run", str(path), "--input",
                           f"@{tmp_path / 'in.json'}", "--time", "virtual", "--progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == list(range(1500))
    assert "map run map/M: 1,500/1,500 items done, 0 running, 0 failed (SUCCEEDED)" in done.stderr
    quiet = subprocess.run([str(Path(sys.executable).with_name("statelang")), "run", str(path), "--input",
                            f"@{tmp_path / 'in.json'}", "--time", "virtual"], capture_output=True, text=True,
                           timeout=120)
    assert "map run" not in quiet.stderr   # not a terminal, no --progress: no progress lines


@pytest.mark.parametrize("args", [
    ["worker", "--poll", "0"], ["worker", "--poll", "-1"], ["worker", "--poll", "nan"],
    ["worker", "--lease-seconds", "nan"], ["worker", "--lease-seconds", "inf"], ["worker", "--metrics-seconds", "nan"],
    ["serve", "--poll", "0"], ["serve", "--poll", "inf"], ["serve", "--port", "65536"], ["serve", "--port", "99999"],
    ["serve", "--port", "-1"],
])
def test_a_poll_that_would_spin_or_a_port_out_of_range_is_refused(tmp_path, args):
    """`--poll 0` had the worker loop (and serve's) spin on a core without end; `--port 99999`
    bound port 34463 (the socket layer keeps the low 16 bits), `--port -1` ended in a traceback,
    and a lease of nan or inf seconds was taken (click's ranges let both through). Each is now
    refused before anything starts, naming the option."""
    out = cli(*args, "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert out.exit_code == 2
    assert f"Invalid value for '{args[1]}'" in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert not (tmp_path / "x.db").exists()   # refused before the database was opened


def test_the_library_refuses_a_poll_that_would_spin(tmp_path):
    from statelang.server.serving import Server

    engine = Engine(db="memory")
    try:
        for poll in (0, -1, float("nan")):
            with pytest.raises(ValueError, match="poll_seconds must be at least 0.01"):
                engine.serve_forever(poll)
            with pytest.raises(ValueError, match="poll_seconds must be at least 0.01"):
                Server(engine, port=0, data_dir=tmp_path, poll_seconds=poll)
        with pytest.raises(ValueError, match="port must be 0-65535"):
            Server(engine, port=70000, data_dir=tmp_path)
    finally:
        engine.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"lease_seconds": float("nan")}, "lease_seconds must be a finite number of seconds above 0"),
    ({"lease_seconds": float("inf")}, "lease_seconds must be a finite number of seconds above 0"),
    ({"lease_seconds": 0}, "lease_seconds must be a finite number of seconds above 0"),
    ({"lease_seconds": "60"}, "lease_seconds must be a finite number of seconds above 0"),
    ({"max_workers": 0}, "max_workers must be a whole number of at least 1"),
    ({"max_workers": 2.5}, "max_workers must be a whole number of at least 1"),
])
def test_an_engine_refuses_a_lease_or_a_pool_it_cannot_keep(kwargs, message):
    """A lease of nan or inf seconds failed every start_execution with "cannot convert float NaN
    to integer" from inside a timedelta; one of 0 seconds lapsed as it was taken. The engine now
    says which argument is wrong when it is made."""
    with pytest.raises(ValueError, match=message):
        Engine(db="memory", **kwargs)


def test_a_templatefile_placeholder_left_unfilled_names_the_var_to_give(tmp_path):
    """A Terraform templatefile definition holds `${N}` where JSON wants a value; run without
    `--var N=...` it failed with "Expecting value at line 1, column 54" alone."""
    path = write(tmp_path, "m.json", '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": ${N}, "End": true}}}')
    out = cli("run", path)
    assert out.exit_code == 2
    assert "Expecting value at line 1, column 61" in out.output   # where ${N} stands
    assert "the file holds ${N} outside a string: give it a value with --var N=VALUE" in out.output
    assert cli("run", path, "--var", "N=7").output.strip() == "7"


def test_a_test_case_without_a_mock_config_is_refused(tmp_path):
    """`--test-case HappyPath` without `--mock-config` was ignored: the machine ran its real
    handlers as if no test case had been asked for."""
    path = write(tmp_path, "m.json", GREET)
    out = cli("run", path, "--test-case", "HappyPath", "--handlers", HANDLERS)
    assert out.exit_code == 2
    assert "--test-case names a test case of a mock config: give the file with --mock-config" in out.output
