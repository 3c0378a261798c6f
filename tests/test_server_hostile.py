"""`statelang serve` under hostile input: deep nesting, short bodies, stalled and surplus
connections, open bindings, internals in messages, presigned URLs and the SDKs' ``sync-`` host.

Each test drives a real server on a loopback port with real sockets or boto3. AWS's JSON
protocols answer a body they cannot read with a 400 ``SerializationException`` and a member they
cannot accept with the operation's modelled error (botocore's service model:
``InvalidExecutionInput``, ``InvalidOutput``, ``InvalidDefinition``); that is the shape required
here, with the depth named, and never a 500.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import statelang
from statelang.language import jsontext
from statelang.server import Limits, Server
from statelang.server.security import Denied, Guard, check_bind

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/test"
DEEP = 100_000
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
TOKEN_MACHINE = {"StartAt": "Ask", "States": {
    "Ask": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "ok", "Payload": {"token.$": "$$.Task.Token"}}, "End": True}}}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def post(url: str, target: str, body: bytes, headers: dict | None = None, timeout: float = 10):
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target, **(headers or {})}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def server():
    engine = statelang.Engine(db="memory", handlers={"ok": lambda event: event})
    from statelang import eventbus
    eventbus.install(engine)
    srv = Server(engine, "127.0.0.1", 0, poll_seconds=0.05, limits=Limits(timeout=1, max_connections=20)).start()
    yield srv
    srv.stop()


def sfn_client(srv, **config):
    return boto3.client("stepfunctions", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}, **config))


# -- 1. nesting ----------------------------------------------------------------------------------
def test_nesting_is_bounded_at_the_decoder_with_the_depth_named():
    assert jsontext.loads_bounded(nested(jsontext.MAX_DEPTH)) is not None
    for depth in (jsontext.MAX_DEPTH + 1, 1_000, DEEP):
        with pytest.raises(jsontext.JSONDepthError, match=f"nested {depth} levels deep; at most 512"):
            jsontext.loads_bounded(nested(depth))
    # brackets inside strings are text, not nesting
    assert jsontext.loads_bounded(json.dumps(["[" * 5000, {"a": "}" * 5000}])) == ["[" * 5000, {"a": "}" * 5000}]


def test_what_an_execution_builds_past_the_bound_it_reads_back(tmp_path):
    """The bound is on text from outside: a value an execution makes itself (here from a string of
    its input) deeper than 512 levels is written to and read back from the SQLite store."""
    engine = statelang.Engine(db=f"sqlite:///{tmp_path}/x.db", clock="virtual")
    sfn = engine.client()
    machine = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"v.$": "States.StringToJson($.s)"},
                                                "End": True}}}
    arn = sfn.create_state_machine(name="m", definition=json.dumps(machine), roleArn=ROLE)["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"s": nested(600)}))["executionArn"]
    engine.run_until_idle()
    desc = sfn.describe_execution(executionArn=ex)
    assert desc["status"] == "SUCCEEDED" and jsontext.depth_of(desc["output"].encode()) == 601
    engine.close()


def test_deep_request_bodies_and_members_get_400s_naming_the_depth(server):
    sfn = sfn_client(server)
    arn = sfn.create_state_machine(name="deep", definition=json.dumps(PASS), roleArn=ROLE)["stateMachineArn"]
    status, body = post(server.url, "AWSStepFunctions.ListStateMachines", nested(DEEP).encode())
    assert status == 400 and body["__type"] == "SerializationException" and f"{DEEP} levels" in body["message"]
    for depth in (jsontext.MAX_DEPTH + 1, 1_000, DEEP):   # around the old failure band (973..1,000) and far past
        with pytest.raises(sfn.exceptions.InvalidExecutionInput, match=f"{depth} levels deep"):
            sfn.start_execution(stateMachineArn=arn, input=nested(depth))
    ok = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"a": json.loads(nested(jsontext.MAX_DEPTH - 1))}))
    assert sfn.describe_execution(executionArn=ok["executionArn"])["status"] in ("RUNNING", "SUCCEEDED")
    with pytest.raises(sfn.exceptions.InvalidOutput, match=f"{DEEP} levels deep"):
        sfn.send_task_success(taskToken="00000000-0000-0000-0000-000000000000", output=nested(DEEP))
    with pytest.raises(sfn.exceptions.InvalidDefinition, match=f"{DEEP} levels deep"):
        sfn.create_state_machine(name="deeper", definition=nested(DEEP), roleArn=ROLE)


def test_deep_events_get_400s_naming_the_depth(server):
    events = boto3.client("events", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    event = '{"id": "1", "source": "s", "detail-type": "t", "detail": {"a": ' + nested(DEEP) + "}}"
    with pytest.raises(events.exceptions.ClientError, match=f"{DEEP + 2} levels deep") as err:
        events.test_event_pattern(EventPattern='{"source": ["s"]}', Event=event)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(events.exceptions.InvalidEventPatternException, match=f"{DEEP} levels deep"):
        events.test_event_pattern(EventPattern=nested(DEEP), Event='{"source": "s"}')
    # a Detail too deep fails its entry alone, as AWS reports a bad Detail; the others go through
    out = events.put_events(Entries=[{"Source": "s", "DetailType": "t", "Detail": '{"a": ' + nested(DEEP) + "}"},
                                     {"Source": "s", "DetailType": "t", "Detail": '{"a": 1}'}])
    assert out["FailedEntryCount"] == 1 and out["Entries"][0]["ErrorCode"] == "MalformedDetail"
    assert f"{DEEP + 1} levels deep" in out["Entries"][0]["ErrorMessage"] and out["Entries"][1]["EventId"]


# -- 2. timeouts, connection cap, backpressure ---------------------------------------------------
def _raw(srv, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall(data)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (TimeoutError, ConnectionResetError):
        return False


def test_a_short_body_holds_no_thread_and_is_dropped_after_the_timeout(server):
    """Content-Length larger than the body sent: the server waits for the rest without a thread
    of its own (other requests go on being served) and closes the connection at its timeout."""
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/x-amz-json-1.0\r\n"
            "X-Amz-Target: AWSStepFunctions.ListStateMachines\r\nContent-Length: 100\r\n\r\n{}").encode()
    stalled = [_raw(server, head) for _ in range(15)]   # more than the 8 request threads
    sfn = sfn_client(server)
    assert sfn.list_state_machines()["stateMachines"] == []
    assert all(_closed_within(s, 10) for s in stalled)
    for s in stalled:
        s.close()


def test_a_trickling_client_is_dropped_at_the_timeout(server):
    """A client that sends its request a byte at a time is never idle, yet the request must arrive
    whole within the timeout (1 s here) of its first byte."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    request = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Junk: " + "x" * 200).encode()
    started = time.monotonic()
    dropped = False
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            dropped = True
            break
        time.sleep(0.05)
        if time.monotonic() - started > 8:
            break
    assert dropped or _closed_within(sock, 5)
    assert time.monotonic() - started < 8   # well before the request could have been sent whole (10 s)
    sock.close()


def test_surplus_connections_wait_for_a_free_slot():
    """At the connection cap the server stops accepting: a new client waits in the backlog until
    idle connections time out, then is served."""
    srv = Server(statelang.Engine(db="memory"), "127.0.0.1", 0, limits=Limits(timeout=1, max_connections=3)).start()
    try:
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        time.sleep(0.3)   # the loop accepts them and reaches its cap
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            urllib.request.urlopen(srv.url + "/health", timeout=0.5).read()
        with urllib.request.urlopen(srv.url + "/health", timeout=10) as resp:   # after the idle ones time out
            assert resp.status == 200
        assert all(_closed_within(s, 10) for s in idle)
        for s in idle:
            s.close()
    finally:
        srv.stop()


def test_framing_errors_are_aws_shaped():
    srv = Server(statelang.Engine(db="memory"), "127.0.0.1", 0, guard=Guard(max_body=1000)).start()
    try:
        for head in (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n",
                     b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n",
                     b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            sock = _raw(srv, head)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            sock.close()
            status, _, rest = reply.partition(b"\r\n")
            assert status.split()[1] in (b"400", b"413"), reply
            body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
            assert body["__type"] in ("SerializationException", "RequestEntityTooLargeException"), body
            assert b"x-amzn-errortype: " in rest.lower()
    finally:
        srv.stop()


# -- 3. binding --------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "localhost", "example.internal", "[::]"])
def test_only_an_explicit_loopback_address_binds_without_credentials(host):
    with pytest.raises(ValueError, match="only an explicit loopback address"):
        check_bind(host, None, None, None)
    check_bind(host, "AKID", "secret", None)
    check_bind(host, None, None, "token")


def test_serve_with_an_empty_host_refuses_to_start(tmp_path):
    exe = Path(sys.executable).parent / "statelang"
    out = subprocess.run([str(exe), "serve", "--host", "", "--port", "0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "every interface (an empty host) needs --access-key/--secret-key or --token" in out.stderr
    assert "Traceback" not in out.stderr


# -- 4. messages ---------------------------------------------------------------------------------
def test_messages_carry_no_python_internals(server):
    status, body = post(server.url, "AWSEvents.PutEvents", b'{"Entries": [1]}')
    assert status == 400 and body["__type"] == "ValidationException"
    assert "entries.1.member" in body["message"] and "object has no attribute" not in body["message"]
    status, body = post(server.url, "AWSEvents.PutEvents", b'{"Entries": "no"}')
    assert status == 400 and "Member must be a list" in body["message"] and "'[]'" not in body["message"]
    req = urllib.request.Request(server.url + "/console/api/task", data=b"{}", method="POST",
                                 headers={"X-Statelang-Console": "1", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    payload = json.loads(err.value.read())
    assert err.value.code == 400
    assert payload == {"error": "ValidationException", "message": "'token' is required and must be a non-empty string"}


# -- 5. presigned SigV4 --------------------------------------------------------------------------
@pytest.fixture
def guarded():
    guard = Guard("127.0.0.1", access_key="AKIDTEST", secret_key="s3cret")
    srv = Server(statelang.Engine(db="memory"), "127.0.0.1", 0, guard).start()
    yield srv
    srv.stop()


def test_presigned_urls_are_accepted_and_checked(guarded):
    """botocore's generate_presigned_url moves the members into the query string and signs the
    content-type, host and x-amz-target headers (SigV4QueryAuth), which the caller then sends."""
    signer = boto3.client("stepfunctions", endpoint_url=guarded.url, region_name="us-east-1",
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="s3cret")
    signer.create_state_machine(name="signed", definition=json.dumps(PASS), roleArn=ROLE)
    url = signer.generate_presigned_url("list_state_machines", Params={}, ExpiresIn=60)
    status, body = post(url, "AWSStepFunctions.ListStateMachines", b"")
    assert status == 200 and [m["name"] for m in body["stateMachines"]] == ["signed"]
    arn = body["stateMachines"][0]["stateMachineArn"]
    url = signer.generate_presigned_url("describe_state_machine", Params={"stateMachineArn": arn})
    status, body = post(url, "AWSStepFunctions.DescribeStateMachine", b"")
    assert status == 200 and body["name"] == "signed"
    url = signer.generate_presigned_url("list_executions", Params={"stateMachineArn": arn, "maxResults": 5})
    status, body = post(url, "AWSStepFunctions.ListExecutions", b"")   # an integer member, from the query
    assert status == 200 and body["executions"] == []
    url = signer.generate_presigned_url("describe_state_machine", Params={"stateMachineArn": arn})
    status, body = post(url, "AWSStepFunctions.DeleteStateMachine", b"")   # the target is signed
    assert status == 403 and body["__type"] == "InvalidSignatureException"
    status, body = post(url.replace("signed", "other"), "AWSStepFunctions.DescribeStateMachine", b"")
    assert status == 403 and body["__type"] == "InvalidSignatureException"
    forged = boto3.client("stepfunctions", endpoint_url=guarded.url, region_name="us-east-1",
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="wrong")
    status, body = post(forged.generate_presigned_url("list_state_machines", Params={}),
                        "AWSStepFunctions.ListStateMachines", b"")
    assert status == 403 and body["__type"] == "InvalidSignatureException"


def test_a_presigned_url_expires():
    guard = Guard("127.0.0.1", access_key="AKIDTEST", secret_key="s3cret")
    signer = boto3.client("stepfunctions", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="s3cret")
    url = signer.generate_presigned_url("list_state_machines", Params={}, ExpiresIn=60)
    path, _, query = url.partition("?")
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": query, "HTTP_HOST": "127.0.0.1:9",
               "CONTENT_TYPE": "application/x-amz-json-1.0", "HTTP_X_AMZ_TARGET": "AWSStepFunctions.ListStateMachines"}
    guard.authenticate(environ, b"")   # valid now
    with pytest.raises(Denied, match="expired"):
        guard.authenticate(environ, b"", now=datetime.now(UTC) + timedelta(seconds=61))
    with pytest.raises(Denied, match="X-Amz-Expires"):
        guard.authenticate({**environ, "QUERY_STRING": query.replace("X-Amz-Expires=60", "X-Amz-Expires=0")}, b"")


# -- the sync- host prefix (issue 13, item 19) ----------------------------------------------------
EXPRESS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}


def test_the_sync_host_prefix_is_served(server):
    """AWS SDKs send StartSyncExecution and TestState to ``sync-<host>`` (the service model's
    ``endpoint.hostPrefix``). boto3 with its default config is pointed at the server through an
    HTTP proxy setting, so that the request really carries ``Host: sync-127.0.0.1:PORT``."""
    sfn = sfn_client(server)
    arn = sfn.create_state_machine(name="quick", definition=json.dumps(EXPRESS), roleArn=ROLE,
                                   type="EXPRESS")["stateMachineArn"]
    seen = []
    proxied = sfn_client(server, proxies={"http": server.url})
    proxied.meta.events.register("before-send", lambda request, **_: seen.append(request.url))
    out = proxied.start_sync_execution(stateMachineArn=arn, input="{}")
    assert seen == [f"http://sync-127.0.0.1:{server.port}/"]
    assert out["status"] == "SUCCEEDED" and json.loads(out["output"]) == {"ok": True}
    direct = sfn_client(server, inject_host_prefix=False)
    assert direct.start_sync_execution(stateMachineArn=arn, input="{}")["status"] == "SUCCEEDED"
    status, body = post(server.url, "AWSStepFunctions.StartSyncExecution",
                        json.dumps({"stateMachineArn": arn}).encode(), {"Host": f"sync-localhost:{server.port}"})
    assert status == 200 and body["status"] == "SUCCEEDED"
    status, body = post(server.url, "AWSStepFunctions.ListStateMachines", b"{}", {"Host": "sync-evil.example"})
    assert status == 403 and body["__type"] == "AccessDeniedException"


@pytest.mark.skipif(shutil.which("aws", path=str(Path(sys.executable).parent)) is None, reason="no AWS CLI")
def test_the_aws_cli_runs_start_sync_execution_without_the_host_prefix(server):
    """The AWS CLI (botocore) reads AWS_DISABLE_HOST_PREFIX_INJECTION (botocore's configprovider:
    ``disable_host_prefix_injection``); without it the CLI would call sync-127.0.0.1."""
    arn = sfn_client(server).create_state_machine(name="cli-quick", definition=json.dumps(EXPRESS), roleArn=ROLE,
                                                  type="EXPRESS")["stateMachineArn"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    out = subprocess.run([shutil.which("aws", path=str(Path(sys.executable).parent)), "stepfunctions",
                          "start-sync-execution", "--state-machine-arn", arn, "--endpoint-url", server.url,
                          "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "SUCCEEDED"
