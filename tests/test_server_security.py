"""Who may use a server bound beyond loopback: SigV4 with the configured key (boto3 unchanged),
a bearer token, nobody else; loopback refuses foreign Host names; bodies have a size limit; the
static file route cannot leave its directory."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

import statelang
from statelang.server import Server
from statelang.server.security import Denied, Guard, check_bind, inside

boto3 = pytest.importorskip("boto3")


def _request(url: str, body: bytes | None = None, headers: dict | None = None, method: str = "POST"):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def guarded():
    """A server that authenticates (as it must off loopback), listening on loopback for the test."""
    engine = statelang.Engine(db="memory")
    guard = Guard("127.0.0.1", access_key="AKIDTEST", secret_key="s3cret", token="tok-123", max_body=4096)
    srv = Server(engine, "127.0.0.1", 0, guard).start()
    yield srv
    srv.stop()


def client(srv, key: str, secret: str):
    return boto3.client("stepfunctions", endpoint_url=srv.url, region_name="eu-west-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def test_binding_beyond_loopback_needs_credentials():
    with pytest.raises(ValueError, match="needs"):
        check_bind("0.0.0.0", None, None, None)
    with pytest.raises(ValueError, match="together"):
        check_bind("127.0.0.1", "AKID", None, None)
    check_bind("0.0.0.0", "AKID", "secret", None)
    check_bind("0.0.0.0", None, None, "token")
    check_bind("127.0.0.1", None, None, None)
    check_bind("::1", None, None, None)


def test_sigv4_with_the_right_key_passes_and_wrong_ones_fail(guarded):
    assert client(guarded, "AKIDTEST", "s3cret").list_state_machines()["stateMachines"] == []
    with pytest.raises(boto3.session.botocore.exceptions.ClientError) as err:
        client(guarded, "AKIDTEST", "wrong").list_state_machines()
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(boto3.session.botocore.exceptions.ClientError) as err:
        client(guarded, "OTHER", "s3cret").list_state_machines()
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_bearer_token_and_missing_credentials(guarded):
    headers = {"X-Amz-Target": "AWSStepFunctions.ListStateMachines", "Content-Type": "application/x-amz-json-1.0"}
    status, body = _request(guarded.url + "/", b"{}", headers)
    assert status == 403 and json.loads(body)["__type"] == "MissingAuthenticationTokenException"
    status, body = _request(guarded.url + "/", b"{}", {**headers, "Authorization": "Bearer nope"})
    assert status == 403
    status, body = _request(guarded.url + "/", b"{}", {**headers, "Authorization": "Bearer tok-123"})
    assert status == 200 and json.loads(body) == {"stateMachines": []}
    status, _ = _request(guarded.url + "/metrics", None, {}, "GET")
    assert status == 403
    status, _ = _request(guarded.url + "/health", None, {}, "GET")
    assert status == 200


def test_body_size_limit(guarded):
    big = json.dumps({"definition": "x" * 5000}).encode()
    status, body = _request(guarded.url + "/", big, {"X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                                                     "Authorization": "Bearer tok-123"})
    assert status == 413 and json.loads(body)["__type"] == "RequestEntityTooLargeException"


def test_loopback_refuses_foreign_host_names():
    engine = statelang.Engine(db="memory")
    srv = Server(engine, "127.0.0.1", 0).start()
    try:
        status, body = _request(srv.url + "/", b"{}", {"X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                                                       "Host": "evil.example"})
        assert status == 403 and json.loads(body)["__type"] == "AccessDeniedException"
        status, _ = _request(srv.url + "/", b"{}", {"X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                                                    "Host": f"localhost:{srv.port}"})
        assert status == 200
        status, _ = _request(srv.url + "/console/static/..%2F..%2Fsecurity.py", None, {}, "GET")
        assert status == 404
        status, _ = _request(srv.url + "/console/static/../app.py", None, {}, "GET")
        assert status == 404
    finally:
        srv.stop()


def test_console_actions_need_the_console_header():
    engine = statelang.Engine(db="memory")
    srv = Server(engine, "127.0.0.1", 0).start()
    try:
        status, _ = _request(srv.url + "/console/api/stop", b'{"arn": "x"}', {"Content-Type": "text/plain"})
        assert status == 403
        status, _ = _request(srv.url + "/graphql", b'{"query": "{__typename}"}', {"Content-Type": "text/plain"})
        assert status == 400
    finally:
        srv.stop()


def test_paths_stay_inside_their_root(tmp_path):
    (tmp_path / "a").mkdir()
    assert inside(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()
    for escape in ("../x", "a/../../x", "/../etc/passwd"):
        with pytest.raises(Denied):
            inside(tmp_path, escape)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(Denied):
        inside(tmp_path, "link/passwd")
