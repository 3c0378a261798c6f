"""Task tokens through the client: the callback pattern (.waitForTaskToken), heartbeats on the
virtual clock, tokens whose task is over, and an activity worker polling with GetActivityTask.

Every case runs on the in-memory store and on a real SQLite file (skipped while the SQL store
package is not importable)."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ParamValidationError

from statelang import Engine

ROLE = "arn:aws:iam::123456789012:role/statelang"
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:pack"


class Outbox:
    """What the callback handlers were handed: their payloads and the tokens from their context."""

    def __init__(self):
        self.payloads: list = []
        self.tokens: list[str] = []

    def send(self, payload, ctx):
        self.payloads.append(payload)
        self.tokens.append(ctx.task_token)
        return {"MessageId": f"m-{len(self.payloads)}"}

    def notify(self, payload):
        self.payloads.append(payload)
        return {"StatusCode": 200}


@pytest.fixture
def outbox():
    return Outbox()


@pytest.fixture(params=["memory", "sqlite"])
def engine(request, tmp_path, outbox):
    handlers = {"sqs:sendMessage": outbox.send, "notify": outbox.notify}
    if request.param == "sqlite":
        return Engine(db=f"sqlite:///{tmp_path}/x.db", clock="virtual", handlers=handlers)
    return Engine(db="memory", clock="virtual", handlers=handlers)


@pytest.fixture
def client(engine):
    return engine.client()


def callback_machine(heartbeat: int | None = None, catch: bool = False) -> str:
    task = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": "https://sqs/q", "MessageBody": {"order.$": "$.order"}},
            "ResultPath": "$.reply", "End": True}
    if heartbeat:
        task["HeartbeatSeconds"] = heartbeat
        task["TimeoutSeconds"] = heartbeat * 10
    states = {"Ask": task}
    if catch:
        task["Catch"] = [{"ErrorEquals": ["Rejected"], "ResultPath": "$.err", "Next": "Handle"}]
        states["Handle"] = {"Type": "Pass", "End": True}
    return json.dumps({"StartAt": "Ask", "States": states})


def start(client, definition: str, input: dict | None = None, name: str = "m") -> str:
    sm = client.create_state_machine(name=name, definition=definition, roleArn=ROLE)["stateMachineArn"]
    return client.start_execution(stateMachineArn=sm, input=json.dumps(input or {"order": 7}))["executionArn"]


def events(client, ex: str) -> list[dict]:
    return client.get_execution_history(executionArn=ex, maxResults=1000)["events"]


def types(client, ex: str) -> list[str]:
    return [e["type"] for e in events(client, ex)]


# -- the callback pattern ----------------------------------------------------------------------
def test_send_task_success_resumes_with_the_output(client, engine, outbox):
    ex = start(client, callback_machine())
    engine.run_until_idle()
    assert client.describe_execution(executionArn=ex)["status"] == "RUNNING"
    assert outbox.payloads == [{"QueueUrl": "https://sqs/q", "MessageBody": {"order": 7}}]
    token = outbox.tokens[0]
    assert token and "TaskSubmitted" in types(client, ex)
    resp = client.send_task_success(taskToken=token, output='{"paid": true}')
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    engine.run_until_idle()
    d = client.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED"
    assert json.loads(d["output"]) == {"order": 7, "reply": {"paid": True}}
    done = [e for e in events(client, ex) if e["type"] == "TaskSucceeded"]
    assert json.loads(done[0]["taskSucceededEventDetails"]["output"]) == {"paid": True}


def test_token_in_parameters_from_the_context_object(client, engine, outbox):
    definition = json.dumps({"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "notify", "Payload": {"token.$": "$$.Task.Token", "n.$": "$.order"}},
        "End": True}}})
    ex = start(client, definition)
    engine.run_until_idle()
    token = outbox.payloads[0]["token"]
    assert outbox.payloads[0]["n"] == 7
    client.send_task_success(taskToken=token, output='"approved"')
    engine.run_until_idle()
    d = client.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == "approved"


def test_send_task_failure_is_caught(client, engine, outbox):
    ex = start(client, callback_machine(catch=True))
    engine.run_until_idle()
    client.send_task_failure(taskToken=outbox.tokens[0], error="Rejected", cause="no funds")
    engine.run_until_idle()
    d = client.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED"
    assert json.loads(d["output"])["err"] == {"Error": "Rejected", "Cause": "no funds"}
    failed = [e for e in events(client, ex) if e["type"] == "TaskFailed"][0]["taskFailedEventDetails"]
    assert (failed["error"], failed["cause"]) == ("Rejected", "no funds")


def test_send_task_failure_uncaught_fails_the_execution(client, engine, outbox):
    ex = start(client, callback_machine())
    engine.run_until_idle()
    client.send_task_failure(taskToken=outbox.tokens[0], error="Rejected", cause="no funds")
    engine.run_until_idle()
    d = client.describe_execution(executionArn=ex)
    assert (d["status"], d["error"], d["cause"]) == ("FAILED", "Rejected", "no funds")


# -- heartbeats on the virtual clock -----------------------------------------------------------
def test_missing_heartbeat_times_the_task_out(client, engine, outbox):
    ex = start(client, callback_machine(heartbeat=60))
    engine.run_until_idle()   # nothing answers: the virtual clock jumps to the heartbeat deadline
    d = client.describe_execution(executionArn=ex)
    assert (d["status"], d["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert "TaskTimedOut" in types(client, ex)
    assert (d["stopDate"] - d["startDate"]).total_seconds() == pytest.approx(60)
    with pytest.raises(client.exceptions.TaskTimedOut):
        client.send_task_success(taskToken=outbox.tokens[0], output="{}")


def test_heartbeats_keep_the_task_alive(client, engine, outbox):
    ex = start(client, callback_machine(heartbeat=60))
    engine.run_until_idle(max_rounds=1)
    token = outbox.tokens[0]
    for _ in range(3):  # a beat every 40 s, over twice the heartbeat interval in all
        engine.clock.advance(40)
        client.send_task_heartbeat(taskToken=token)
        engine.run_until_idle(max_rounds=1)
        assert client.describe_execution(executionArn=ex)["status"] == "RUNNING"
    engine.clock.advance(30)
    engine.run_until_idle(max_rounds=1)   # the first deadline (t=60) is long past; the last beat counts
    assert client.describe_execution(executionArn=ex)["status"] == "RUNNING"
    client.send_task_success(taskToken=token, output='{"ok": 1}')
    engine.run_until_idle()
    d = client.describe_execution(executionArn=ex)
    assert d["status"] == "SUCCEEDED" and json.loads(d["output"])["reply"] == {"ok": 1}


# -- tokens that are over, unknown, or malformed ----------------------------------------------
def test_token_of_an_aborted_execution_has_timed_out(client, engine, outbox):
    ex = start(client, callback_machine())
    engine.run_until_idle()
    client.stop_execution(executionArn=ex)
    with pytest.raises(client.exceptions.TaskTimedOut) as e:
        client.send_task_success(taskToken=outbox.tokens[0], output="{}")
    assert e.value.response["Error"]["Code"] == "TaskTimedOut"
    with pytest.raises(client.exceptions.TaskTimedOut):
        client.send_task_heartbeat(taskToken=outbox.tokens[0])


def test_token_answered_once_only(client, engine, outbox):
    start(client, callback_machine())
    engine.run_until_idle()
    client.send_task_success(taskToken=outbox.tokens[0], output="{}")
    engine.run_until_idle()
    with pytest.raises(client.exceptions.TaskTimedOut):
        client.send_task_failure(taskToken=outbox.tokens[0], error="Late")


def test_unknown_and_malformed_tokens(client):
    with pytest.raises(client.exceptions.TaskDoesNotExist):
        client.send_task_success(taskToken=str(uuid.uuid4()), output="{}")
    with pytest.raises(client.exceptions.TaskDoesNotExist):
        client.send_task_heartbeat(taskToken=str(uuid.uuid4()))
    with pytest.raises(client.exceptions.InvalidToken):
        client.send_task_failure(taskToken="definitely not a token")
    with pytest.raises(ParamValidationError):
        client.send_task_success(taskToken="", output="{}")
    with pytest.raises(ParamValidationError):
        client.send_task_success(taskToken=str(uuid.uuid4()))


def test_output_must_be_json(client, engine, outbox):
    ex = start(client, callback_machine())
    engine.run_until_idle()
    with pytest.raises(client.exceptions.InvalidOutput):
        client.send_task_success(taskToken=outbox.tokens[0], output="{not json")
    assert client.describe_execution(executionArn=ex)["status"] == "RUNNING"
    client.send_task_success(taskToken=outbox.tokens[0], output="[1]")  # the token still answers


# -- activities -------------------------------------------------------------------------------
def activity_machine(heartbeat: int | None = None) -> str:
    task = {"Type": "Task", "Resource": ACTIVITY, "End": True}
    if heartbeat:
        task["HeartbeatSeconds"] = heartbeat
    return json.dumps({"StartAt": "Pack", "States": {"Pack": task}})


def test_activity_worker_loop(client, engine):
    assert client.create_activity(name="pack")["activityArn"] == ACTIVITY
    sm = client.create_state_machine(name="shipping", definition=activity_machine(), roleArn=ROLE)["stateMachineArn"]
    runs = [client.start_execution(stateMachineArn=sm, name=f"box-{n}", input=json.dumps({"n": n}))["executionArn"]
            for n in range(3)]
    engine.run_until_idle()
    handled = []
    while True:   # the worker: poll, work, report
        task = client.get_activity_task(activityArn=ACTIVITY, workerName="packer-1")
        if "taskToken" not in task:
            break
        work = json.loads(task["input"])
        handled.append(work["n"])
        client.send_task_success(taskToken=task["taskToken"], output=json.dumps({"packed": work["n"] * 10}))
        engine.run_until_idle()
    assert sorted(handled) == [0, 1, 2]
    for n, ex in enumerate(runs):
        d = client.describe_execution(executionArn=ex)
        assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == {"packed": n * 10}
    kinds = types(client, runs[0])
    assert kinds.index("ActivityScheduled") < kinds.index("ActivityStarted") < kinds.index("ActivitySucceeded")
    started = [e for e in events(client, runs[0]) if e["type"] == "ActivityStarted"][0]
    assert started["activityStartedEventDetails"]["workerName"] == "packer-1"
    empty = client.get_activity_task(activityArn=ACTIVITY, workerName="packer-1")
    assert "taskToken" not in empty and "input" not in empty


def test_activity_failure_and_heartbeat_timeout(client, engine):
    client.create_activity(name="pack")
    failing = start(client, activity_machine(), name="fails")
    engine.run_until_idle()
    task = client.get_activity_task(activityArn=ACTIVITY)
    client.send_task_failure(taskToken=task["taskToken"], error="Torn", cause="box torn")
    engine.run_until_idle()
    d = client.describe_execution(executionArn=failing)
    assert (d["status"], d["error"], d["cause"]) == ("FAILED", "Torn", "box torn")
    assert "ActivityFailed" in types(client, failing)

    silent = start(client, activity_machine(heartbeat=30), name="silent")
    engine.run_until_idle(max_rounds=1)
    task = client.get_activity_task(activityArn=ACTIVITY)
    engine.run_until_idle()   # the worker never beats: the clock jumps to the deadline
    d = client.describe_execution(executionArn=silent)
    assert (d["status"], d["error"]) == ("FAILED", "States.HeartbeatTimeout")
    assert "ActivityTimedOut" in types(client, silent)
    with pytest.raises(client.exceptions.TaskTimedOut):
        client.send_task_success(taskToken=task["taskToken"], output="{}")
