"""`statelang serve` as AWS's SDKs see it: a real server process on a loopback port, driven by
boto3 (Step Functions and EventBridge), raw HTTP for malformed requests, and the AWS CLI once.
Errors must arrive as boto3's modelled exceptions; nothing may answer 500."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")

ROOT = Path(__file__).resolve().parent.parent
STATELANG = Path(sys.executable).parent / "statelang"
ROLE = "arn:aws:iam::123456789012:role/test"
HANDLERS = '''
class Boom(Exception):
    pass

def ok(event):
    return {"handled": event}

def boom(event):
    raise Boom("it broke")

HANDLERS = {"ok": ok, "boom": boom}
'''


class ServeProcess:
    """`statelang serve --port 0` in a subprocess; its JSON log names the port it took."""

    def __init__(self, workdir: Path, *args: str, env: dict | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "srv_handlers.py").write_text(HANDLERS)
        self.proc = subprocess.Popen(
            [str(STATELANG), "serve", "--port", "0", "--data-dir", str(workdir / "data"),
             "--handlers", "srv_handlers", "--poll", "0.2", *args],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(workdir), **(env or {})})
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = None
        deadline = time.monotonic() + 30
        while self.port is None and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("{") and json.loads(line).get("message") == "listening":
                self.port = json.loads(line)["port"]
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.log))
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            self.lines.put(line.strip())

    def client(self, service: str = "stepfunctions", key: str = "x", secret: str = "x"):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise
        return self.proc.returncode


def wait_status(sfn, arn: str, want: tuple = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"), seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status in want:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{arn} still {status} after {seconds}s")


def machine(sfn, name: str, definition: dict) -> str:
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


def lam(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"


TOKEN_MACHINE = {"StartAt": "Ask", "States": {
    "Ask": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "ok", "Payload": {"token.$": "$$.Task.Token"}}, "Next": "Done"},
    "Done": {"Type": "Pass", "End": True}}}


def token_of(sfn, arn: str, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for ev in sfn.get_execution_history(executionArn=arn)["events"]:
            if ev["type"] == "TaskSubmitted":
                params = [e for e in sfn.get_execution_history(executionArn=arn)["events"]
                          if e["type"] == "TaskScheduled"][-1]["taskScheduledEventDetails"]["parameters"]
                return json.loads(params)["Payload"]["token"]
        time.sleep(0.1)
    raise AssertionError("no task token was issued")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServeProcess(tmp_path_factory.mktemp("serve"))
    yield srv
    assert srv.stop() == 0


def raw(url: str, body: bytes, headers: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_state_machine_runs_and_lists(server):
    sfn = server.client()
    arn = machine(sfn, "runs", {"StartAt": "Call", "States": {
        "Call": {"Type": "Task", "Resource": lam("ok"), "Next": "Shape"},
        "Shape": {"Type": "Pass", "Parameters": {"got.$": "$.handled.n"}, "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn, name="first", input=json.dumps({"n": 7}))
    assert wait_status(sfn, ex["executionArn"]) == "SUCCEEDED"
    desc = sfn.describe_execution(executionArn=ex["executionArn"])
    assert json.loads(desc["output"]) == {"got": 7}
    assert desc["startDate"] <= desc["stopDate"]   # timestamps came back as datetimes
    types = [e["type"] for e in sfn.get_execution_history(executionArn=ex["executionArn"])["events"]]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    listed = sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED")["executions"]
    assert [e["name"] for e in listed] == ["first"]
    assert sfn.list_executions(stateMachineArn=arn, statusFilter="FAILED")["executions"] == []
    pages = list(sfn.get_paginator("list_state_machines").paginate(PaginationConfig={"PageSize": 1}))
    assert "runs" in [m["name"] for p in pages for m in p["stateMachines"]]


def test_errors_are_boto3_modelled_exceptions(server):
    sfn = server.client()
    arn = machine(sfn, "errs", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    missing = arn.replace(":stateMachine:", ":execution:") + ":nope"
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=missing)
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=arn + "x")
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_execution(executionArn="not-an-arn")
    with pytest.raises(sfn.exceptions.InvalidDefinition):
        sfn.create_state_machine(name="bad", definition='{"StartAt": "Nowhere", "States": {}}', roleArn=ROLE)
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(stateMachineArn=arn, input="{not json")
    sfn.start_execution(stateMachineArn=arn, name="same", input="{}")
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=arn, name="same", input='{"other": 1}')
    with pytest.raises(sfn.exceptions.TaskDoesNotExist):
        sfn.send_task_success(taskToken="00000000-0000-0000-0000-000000000000", output="{}")


@pytest.mark.parametrize("body, headers, code", [
    (b"{not json", {"X-Amz-Target": "AWSStepFunctions.ListStateMachines"}, "SerializationException"),
    (b"[1, 2]", {"X-Amz-Target": "AWSStepFunctions.ListStateMachines"}, "SerializationException"),
    (b"{}", {"X-Amz-Target": "AWSStepFunctions.NoSuchThing"}, "UnknownOperationException"),
    (b"{}", {"X-Amz-Target": "Nonsense.ListStateMachines"}, "UnknownOperationException"),
    (b'{"bogus": 1}', {"X-Amz-Target": "AWSStepFunctions.ListStateMachines"}, "ValidationException"),
    (b'{"maxResults": "many"}', {"X-Amz-Target": "AWSStepFunctions.ListStateMachines"}, "ValidationException"),
    (b"{}", {"X-Amz-Target": "AWSStepFunctions.DescribeExecution"}, "ValidationException"),
    (b"{}", {}, "MissingAction"),
    (b'{"Entries": "no"}', {"X-Amz-Target": "AWSEvents.PutEvents"}, "ValidationException"),
    (b"{}", {"X-Amz-Target": "AWSEvents.PutRule"}, "ValidationException"),
])
def test_malformed_requests_get_aws_shaped_400s(server, body, headers, code):
    status, got_headers, payload = raw(server.url + "/", body, {"Content-Type": "application/x-amz-json-1.0", **headers})
    assert status == 400
    assert payload["__type"] == code and payload["message"]
    assert {k.lower(): v for k, v in got_headers.items()}["x-amzn-errortype"] == code


def test_task_token_stop_and_redrive(server):
    sfn = server.client()
    arn = machine(sfn, "tokens", TOKEN_MACHINE)
    ex = sfn.start_execution(stateMachineArn=arn, name="wait-1")["executionArn"]
    token = token_of(sfn, ex)
    sfn.send_task_success(taskToken=token, output=json.dumps({"answer": 42}))
    assert wait_status(sfn, ex) == "SUCCEEDED"
    assert json.loads(sfn.describe_execution(executionArn=ex)["output"]) == {"answer": 42}
    with pytest.raises(sfn.exceptions.TaskTimedOut):   # answered already
        sfn.send_task_success(taskToken=token, output="{}")
    with pytest.raises(sfn.exceptions.ExecutionNotRedrivable):
        sfn.redrive_execution(executionArn=ex)

    stopped = sfn.start_execution(stateMachineArn=arn, name="wait-2")["executionArn"]
    token_of(sfn, stopped)
    sfn.stop_execution(executionArn=stopped, error="Manual", cause="test")
    assert wait_status(sfn, stopped) == "ABORTED"
    out = sfn.redrive_execution(executionArn=stopped)
    assert "redriveDate" in out
    assert wait_status(sfn, stopped, ("RUNNING",)) == "RUNNING"
    assert sfn.describe_execution(executionArn=stopped)["redriveCount"] == 1


def test_failed_execution_reports_the_handler_error(server):
    sfn = server.client()
    arn = machine(sfn, "fails", {"StartAt": "Boom", "States": {"Boom": {"Type": "Task", "Resource": lam("boom"),
                                                                        "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn, name="f1")["executionArn"]
    assert wait_status(sfn, ex) == "FAILED"
    desc = sfn.describe_execution(executionArn=ex)
    assert desc["error"] == "Boom" and "it broke" in desc["cause"]


def test_eventbridge_operations_start_a_workflow(server):
    events, sfn = server.client("events"), server.client()
    target = machine(sfn, "on-order", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    pattern = {"source": ["shop"], "detail-type": ["Order Placed"]}
    rule = events.put_rule(Name="orders", EventPattern=json.dumps(pattern))["RuleArn"]
    assert rule.endswith(":rule/orders")
    put = events.put_targets(Rule="orders", Targets=[{"Id": "sfn", "Arn": target, "RoleArn": ROLE}])
    assert put["FailedEntryCount"] == 0
    assert [r["Name"] for r in events.list_rules(NamePrefix="ord")["Rules"]] == ["orders"]
    assert json.loads(events.describe_rule(Name="orders")["EventPattern"]) == pattern
    sent = events.put_events(Entries=[{"Source": "shop", "DetailType": "Order Placed", "Detail": '{"id": 1}'}])
    assert sent["FailedEntryCount"] == 0 and sent["Entries"][0]["EventId"]
    deadline = time.monotonic() + 10
    while not sfn.list_executions(stateMachineArn=target)["executions"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(sfn.list_executions(stateMachineArn=target)["executions"]) == 1
    event = json.dumps({"id": "1", "account": "123456789012", "source": "shop", "time": "2024-01-01T00:00:00Z",
                        "region": "us-east-1", "resources": [], "detail-type": "Order Placed", "detail": {}})
    assert events.test_event_pattern(EventPattern=json.dumps(pattern), Event=event)["Result"] is True
    assert events.test_event_pattern(EventPattern='{"source": ["other"]}', Event=event)["Result"] is False
    with pytest.raises(events.exceptions.InvalidEventPatternException):
        events.test_event_pattern(EventPattern='{"source": "not-a-list"}', Event=event)
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name="missing")
    with pytest.raises(events.exceptions.ClientError) as err:   # a rule with targets cannot go
        events.delete_rule(Name="orders")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    events.remove_targets(Rule="orders", Ids=["sfn"])
    events.delete_rule(Name="orders")
    assert events.list_rules(NamePrefix="ord")["Rules"] == []


def test_health_and_metrics(server):
    sfn = server.client()
    arn = machine(sfn, "metered", {"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": lam("ok"),
                                                                          "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_status(sfn, ex)
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        assert json.loads(resp.read())["status"] == "ok"
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'statelang_executions_started_total{state_machine="metered"} 1' in text
    assert 'statelang_executions_succeeded_total{state_machine="metered"} 1' in text
    assert 'statelang_state_transitions_total{state_machine="metered"} 1' in text
    assert 'statelang_task_duration_seconds_count{state_machine="metered"} 1' in text


@pytest.mark.skipif(shutil.which("aws", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("aws") is None, reason="the AWS CLI (awscli) is not installed")
def test_aws_cli_lists_state_machines(server):
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    machine(server.client(), "for-cli", {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    out = subprocess.run([aws, "stepfunctions", "list-state-machines", "--endpoint-url", server.url, "--output", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "for-cli" in [m["name"] for m in json.loads(out.stdout)["stateMachines"]]


def test_sigterm_leaves_executions_resumable(tmp_path):
    """A server stopped mid-Wait exits cleanly; the next one on the same database finishes it."""
    first = ServeProcess(tmp_path)
    sfn = first.client()
    arn = machine(sfn, "sleepy", {"StartAt": "Nap", "States": {
        "Nap": {"Type": "Wait", "Seconds": 5, "Next": "Call"},   # outlasts a restart (~1.5 s)
        "Call": {"Type": "Task", "Resource": lam("ok"), "End": True}}})
    ex = sfn.start_execution(stateMachineArn=arn, name="nap")["executionArn"]
    wait_status(sfn, ex, ("RUNNING",))
    time.sleep(0.5)
    assert first.stop() == 0
    assert any('"stopped"' in line for line in first.log)
    second = ServeProcess(tmp_path)
    try:
        sfn = second.client()
        assert sfn.describe_execution(executionArn=ex)["status"] == "RUNNING"
        assert wait_status(sfn, ex) == "SUCCEEDED"
        assert [e["type"] for e in sfn.get_execution_history(executionArn=ex)["events"]].count("WaitStateEntered") == 1
    finally:
        second.stop()
