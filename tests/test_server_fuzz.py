"""Fuzzing `statelang serve`: for every operation it serves, hypothesis-made request bodies and
headers get success or a 4xx in the AWS JSON error shape, never a 500, never a traceback or a
Python exception's text, and the server stays up.

Bodies range from raw bytes, through JSON of every shape (nested far past the bound), to objects
with the operation's own member names (from botocore's service model, as AWS's JSON protocols
define them) holding values of the wrong types, ARN-like strings and JSON texts. Headers vary the
content type, the Host (the ``sync-`` prefix included) and add junk. The number of examples is
fixed, so the test's time is bounded in ``make test`` (a few seconds).
"""

from __future__ import annotations

import http.client
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statelang
from statelang.api.client import OPERATIONS
from statelang.server import Limits, Server
from statelang.server.app import EVENTS_OPS

botocore_session = pytest.importorskip("botocore.session")

SFN_OPS = sorted(OPERATIONS.values()) + ["RedriveExecution"]
EVENT_OPS = sorted(EVENTS_OPS) + ["TestEventPattern"]
ARN = "arn:aws:states:us-east-1:123456789012:"
# What a Python exception's text or a traceback looks like inside a message.
LEAKS = re.compile(r"Traceback|object has no attribute|unexpected keyword|NoneType|<class |Error\(|"
                   r"not subscriptable|object is not|'\w+' object")


def _members(service: str, ops: list[str]) -> dict[str, list[str]]:
    model = botocore_session.get_session().get_service_model(service)
    out = {}
    for op in ops:
        try:
            shape = model.operation_model(op).input_shape
        except Exception:  # noqa: BLE001 - an operation botocore does not model has no members to offer
            out[op] = []
            continue
        out[op] = list(shape.members) if shape is not None else []
    return out


MEMBERS = {**_members("stepfunctions", SFN_OPS), **_members("events", EVENT_OPS)}

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                         st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=10)
deep_texts = st.integers(min_value=1, max_value=3000).map(lambda d: "[" * d + "]" * d)
json_texts = st.one_of(json_values.map(json.dumps), deep_texts, st.text(max_size=30),
                       st.sampled_from(['{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}',
                                        '{"source": ["s"]}', '{"a": 1}', "{", "null"]))
arns = st.one_of(st.text(max_size=10).map(lambda s: ARN + "stateMachine:" + s),
                 st.text(max_size=10).map(lambda s: ARN + "execution:m:" + s),
                 st.sampled_from([ARN + "activity:a", "arn:aws:events:us-east-1:123456789012:rule/r", "not-an-arn"]))
member_values = st.one_of(json_values, json_texts, arns, st.lists(st.dictionaries(
    st.sampled_from(["Id", "Arn", "Source", "DetailType", "Detail", "Input", "key", "value", "Key", "Value"]),
    st.one_of(json_texts, arns, json_scalars), max_size=5), max_size=3))


@st.composite
def requests(draw):
    service = draw(st.sampled_from(["AWSStepFunctions", "AWSEvents"]))
    op = draw(st.sampled_from(SFN_OPS if service == "AWSStepFunctions" else EVENT_OPS))
    names = MEMBERS.get(op) or ["x"]
    kind = draw(st.sampled_from(["members", "members", "members", "json", "bytes"]))
    if kind == "members":
        body = json.dumps(draw(st.dictionaries(st.sampled_from(names + ["bogus"]), member_values, max_size=5))).encode()
    elif kind == "json":
        body = draw(st.one_of(json_values.map(json.dumps), deep_texts)).encode()
    else:
        body = draw(st.binary(max_size=60))
    headers = {"X-Amz-Target": draw(st.sampled_from([f"{service}.{op}", f"{service}.{op}", f"{service}.Nope", op])),
               "Content-Type": draw(st.sampled_from(["application/x-amz-json-1.0", "application/x-amz-json-1.1",
                                                     "application/json", "text/plain"]))}
    headers.update(draw(st.dictionaries(st.sampled_from(["X-Amz-Date", "Authorization", "X-Junk", "Accept"]),
                                        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                                max_size=30), max_size=2)))
    host = draw(st.sampled_from(["127.0.0.1", "sync-127.0.0.1", "localhost", "sync-localhost"]))
    return op, body, headers, host


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "statelang.db"
    engine = statelang.Engine(db=f"sqlite:///{db}", handlers={"ok": lambda event: event})
    from statelang import eventbus
    eventbus.install(engine)
    srv = Server(engine, "127.0.0.1", 0, poll_seconds=0.05, limits=Limits(timeout=5)).start()
    yield srv
    srv.stop()


def _ask(srv, method: str, path: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_every_operation_answers_fuzzed_requests_in_aws_shape(server, request):
    op, body, headers, host = request
    status, got, raw = _ask(server, "POST", "/", body, {**headers, "Host": f"{host}:{server.port}"})
    assert status < 500, (op, raw[:300])
    payload = json.loads(raw)
    if status >= 400:
        assert set(payload) >= {"__type", "message"}, payload
        assert isinstance(payload["__type"], str) and payload["__type"] and isinstance(payload["message"], str)
        assert got["x-amzn-errortype"] == payload["__type"]
        assert not LEAKS.search(payload["message"]), (op, payload)
    status, _, _ = _ask(server, "GET", "/health", b"", {})
    assert status == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["task", "stop", "redrive", "replay"]),
       params=st.dictionaries(st.sampled_from(["token", "arn", "ok", "output", "error", "cause"]),
                              st.one_of(json_values, arns), max_size=4))
def test_console_actions_answer_fuzzed_requests_in_words(server, route, params):
    status, _, raw = _ask(server, "POST", f"/console/api/{route}", json.dumps(params).encode(),
                          {"X-Statelang-Console": "1", "Content-Type": "application/json"})
    assert status < 500, raw[:300]
    payload = json.loads(raw)
    if status >= 400:
        assert not LEAKS.search(payload.get("message", "")), payload


# -- the authentication surface: a server that requires credentials ---------------------------------
@pytest.fixture(scope="module")
def guarded():
    from statelang.server.security import Guard
    guard = Guard("127.0.0.1", access_key="AKIDFUZZ", secret_key="s3cret", token="tok")
    srv = Server(statelang.Engine(db="memory"), "127.0.0.1", 0, guard, limits=Limits(timeout=5)).start()
    yield srv
    srv.stop()


printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=24)
scopes = st.lists(st.one_of(st.just("AKIDFUZZ"), st.just("20261206"), st.just("us-east-1"), st.just("states"),
                            st.just("aws4_request"), printable), min_size=0, max_size=6).map("/".join)
authorizations = st.one_of(
    printable,
    st.builds(lambda c, h, s: f"AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={h}, Signature={s}",
              scopes, st.sampled_from(["host", "host;x-amz-date", "content-type;host", "", "x-nope", ";;"]),
              printable),
    st.builds(lambda t: f"Bearer {t}", printable))
presigned = st.dictionaries(
    st.sampled_from(["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
                     "X-Amz-Signature", "maxResults", "stateMachineArn"]),
    st.one_of(printable, scopes, st.sampled_from(["AWS4-HMAC-SHA256", "20261206T000000Z", "60", "-1", "host"])),
    max_size=7)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(auth=st.one_of(st.none(), authorizations), query=presigned,
       date=st.one_of(st.none(), printable, st.just("20261206T000000Z")),
       sha=st.one_of(st.none(), printable, st.just("UNSIGNED-PAYLOAD")))
def test_fuzzed_credentials_are_refused_in_aws_shape(guarded, auth, query, date, sha):
    from urllib.parse import urlencode
    headers = {"X-Amz-Target": "AWSStepFunctions.ListStateMachines", "Content-Type": "application/x-amz-json-1.0"}
    for name, value in (("Authorization", auth), ("X-Amz-Date", date), ("X-Amz-Content-Sha256", sha)):
        if value is not None:
            headers[name] = value
    path = "/?" + urlencode(query) if query else "/"
    status, got, raw = _ask(guarded, "POST", path, b"{}", headers)
    payload = json.loads(raw)
    assert status == 403 or (status == 200 and auth == "Bearer tok"), (status, payload)
    if status == 403:
        assert payload["__type"] and payload["message"] and got["x-amzn-errortype"] == payload["__type"]
        assert not LEAKS.search(payload["message"]), payload
