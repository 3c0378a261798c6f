"""A poison execution is contained: it fails (States.Runtime, the cause naming the state and the
exception) and every other execution goes on, on the worker's ordinary path."""

from __future__ import annotations

import pytest

import statelang
from statelang import Engine, VirtualClock

FN = "arn:aws:lambda:us-east-1:123456789012:function:F"
POISONS = {
    "jsonata_function_as_output": {"QueryLanguage": "JSONata", "StartAt": "P",
                                   "States": {"P": {"Type": "Pass", "Output": "{% $string %}", "End": True}}},
    "jsonata_regex_as_output": {"QueryLanguage": "JSONata", "StartAt": "P",
                                "States": {"P": {"Type": "Pass", "Output": "{% /ab+/ %}", "End": True}}},
    "timeout_seconds_path_text": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN,
                                                                   "TimeoutSecondsPath": "$.t", "End": True}}},
}
HEALTHY = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": True}}}


@pytest.mark.parametrize("name", sorted(POISONS))
def test_a_poison_fails_its_execution_with_states_runtime(name):
    ex = statelang.run(POISONS[name], {"t": "60"}, handlers={"F": lambda event: "done"}, clock="virtual")
    assert ex.status == "FAILED", ex
    assert ex.error in ("States.Runtime", "States.QueryEvaluationError"), ex
    assert "Traceback" not in (ex.cause or "")


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_worker_goes_on_past_poison_and_fails_it_once(backend, tmp_path):
    db = "memory" if backend == "memory" else f"sqlite:///{tmp_path}/p.db"
    engine = Engine(db=db, clock=VirtualClock(), handlers={"F": lambda event: event})
    client = engine.client()
    role = "arn:aws:iam::123456789012:role/r"
    import json
    arns = {}
    for name, definition in {**POISONS, "healthy": HEALTHY}.items():
        sm = client.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)
        for i in range(3):
            arns[(name, i)] = client.start_execution(stateMachineArn=sm["stateMachineArn"], name=f"{name}-{i}",
                                                     input='{"t": "60"}')["executionArn"]
    engine.run_until_idle()        # must not raise, and must not leave anything leased or running
    for (name, _), arn in arns.items():
        described = client.describe_execution(executionArn=arn)
        if name == "healthy":
            assert described["status"] == "SUCCEEDED"
        else:
            assert described["status"] == "FAILED", (name, described)
    assert engine.store.next_due() is None
    engine.close()


def test_an_unexpected_error_outside_the_interpreter_is_contained(tmp_path):
    """A fault in the engine's own step (here: a map run that cannot start) fails that execution."""
    engine = Engine(db=f"sqlite:///{tmp_path}/q.db", clock=VirtualClock())

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    engine.map_runs.start = broken
    client = engine.client()
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}
    import json
    sm = client.create_state_machine(name="m", definition=json.dumps(definition),
                                     roleArn="arn:aws:iam::123456789012:role/r")
    arn = client.start_execution(stateMachineArn=sm["stateMachineArn"], input='{"items": [1]}')["executionArn"]
    engine.run_until_idle()
    described = client.describe_execution(executionArn=arn)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert "RuntimeError: boom" in described["cause"] and "'M'" in described["cause"]
    engine.close()


KILLER_MODULE = """
import os

def Exit(event):
    os._exit(1)   # the worker process dies inside the step, as in a segfault
"""


def test_a_step_that_keeps_killing_its_worker_is_quarantined(tmp_path):
    """Real `statelang worker --once` processes, each killed by the handler inside the step:
    after `max_claims` (5) claims the next worker fails the execution visibly instead of dying
    on it too, and goes on with the healthy one."""
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path
    (tmp_path / "killer.py").write_text(KILLER_MODULE)
    db = f"sqlite:///{tmp_path}/k.db"
    engine = Engine(db=db)
    client = engine.client()
    killer = {"StartAt": "T", "States": {"T": {"Type": "Task", "End": True,
                                               "Resource": "arn:aws:lambda:us-east-1:123456789012:function:Exit"}}}
    sm = client.create_state_machine(name="k", definition=json.dumps(killer),
                                     roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    arn = client.start_execution(stateMachineArn=sm, name="k1")["executionArn"]
    ok = client.create_state_machine(name="ok", definition=json.dumps({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "End": True}}}), roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    healthy = client.start_execution(stateMachineArn=ok, name="ok1")["executionArn"]
    exe = Path(sys.executable).with_name("statelang")
    codes = []
    for _ in range(10):
        done = subprocess.run([str(exe), "worker", "--once", "--db", db, "--lease-seconds", "1",
                               "--handlers", "killer"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        codes.append(done.returncode)
        if done.returncode == 0:
            break
        time.sleep(1.1)   # the dead worker's lease runs out (real processes on the real clock)
    assert codes == [1, 1, 1, 1, 1, 0], codes
    row = engine.store.get_execution(arn)
    assert row["status"] == "FAILED" and row["error"] == "States.Runtime"
    assert "quarantined" in row["cause"] and "claimed 6 times" in row["cause"]
    assert client.describe_execution(executionArn=healthy)["status"] == "SUCCEEDED"
    engine.close()


def test_a_database_file_deleted_under_a_worker_stops_it_with_a_clear_message(tmp_path):
    """Writes would go on into the unlinked file and be lost at its last close: the store refuses
    them, naming the file, and the worker stops instead of backing off forever."""
    from statelang.store.sql import StoreGone
    db_file = tmp_path / "gone.db"
    engine = Engine(db=f"sqlite:///{db_file}", clock=VirtualClock())
    client = engine.client()
    import json
    sm = client.create_state_machine(name="p", definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    db_file.unlink()
    with pytest.raises(StoreGone, match="deleted or replaced"):
        client.start_execution(stateMachineArn=sm)
    with pytest.raises(StoreGone):
        engine.serve_forever(0.01)       # stops at once: no backing off on a file that is gone
    engine.close()


def test_the_worker_command_says_so_and_exits(tmp_path):
    import subprocess
    import sys
    import threading
    from pathlib import Path
    db_file = tmp_path / "w.db"
    Engine(db=f"sqlite:///{db_file}").close()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("statelang")), "worker", "--db",
                             f"sqlite:///{db_file}", "--poll", "0.05"], stderr=subprocess.PIPE, text=True)
    started = threading.Event()
    lines: list[str] = []

    def read():
        for line in proc.stderr:
            lines.append(line)
            started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(30)
    db_file.unlink()
    assert proc.wait(timeout=30) == 2   # the command line's exit status for an error it names
    reader.join(5)
    assert any("deleted or replaced" in line for line in lines), lines


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_takeover_is_counted(backend, tmp_path):
    """A worker that claimed an execution and vanished (its lease runs out): the worker that
    claims it next counts a takeover in its metrics, beside its claims."""
    import json
    db = "memory" if backend == "memory" else f"sqlite:///{tmp_path}/t.db"
    clock = VirtualClock()
    first = Engine(db=db, clock=clock, lease_seconds=10)
    client = first.client()
    sm = client.create_state_machine(name="w", definition=json.dumps({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "End": True}}}), roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    arn = client.start_execution(stateMachineArn=sm, name="w1")["executionArn"]
    assert first.store.claim("gone-worker", clock.now(), 10, 16) == [arn]   # then it vanishes
    second = Engine(db=first.store, clock=clock, lease_seconds=10)
    assert second.run_until_idle() == 0 or second.metrics["takeovers"] == 0   # its lease still holds
    clock.advance(11)
    second.run_until_idle()
    assert client.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    assert second.metrics["takeovers"] == 1 and second.metrics["claims"] == 1
