"""The console's history in pages by event id, over real HTTP: the execution page carries the first
page and the marker of the next, ``/console/api/history?after=ID&limit=N`` hands out the rest, and
the pages put together are the whole 20,000-event history, each event once and in order, on SQLite
and PostgreSQL. The graph's path is folded once and then only from the events appended since, and
still agrees with a fold of the whole history."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

import statelang
from statelang.server import Server
from statelang.server.console import path_of
from tests.test_history_paging_cli import EVENTS, ROLE, long_loop
from tests.test_server_console import TOKEN_MACHINE  # waits on a token after a Parallel and a Map


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request) -> str:
    return request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'sqlite'}_url")


@pytest.fixture
def serve():
    started = []

    def start(db_url: str, **engine_args):
        engine = statelang.Engine(db=db_url, **engine_args)
        server = Server(engine, "127.0.0.1", 0, run_worker=False).start()
        started.append((server, engine))
        return server, engine
    yield start
    for server, engine in started:
        server.stop()
        engine.close()


def get(server, route: str, **query) -> tuple[int, dict]:
    url = f"{server.url}/console/api/{route}?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_pages_over_http_put_together_are_the_whole_history(db, serve):
    arn = long_loop(db)
    server, engine = serve(db)
    status, first = get(server, "execution", arn=arn)
    assert status == 200
    assert [e["id"] for e in first["events"]] == list(range(1, 101))
    assert first["next"] == 100 and first["lastEventId"] == EVENTS
    assert first["marks"] == {"Init": "visited", "More?": "visited", "Step": "visited", "Done": "visited"}
    for size in (1000, 100):
        ids, after, pages = [], 0, 0
        while after is not None:
            status, page = get(server, "history", arn=arn, after=after, limit=size)
            assert status == 200 and len(page["events"]) <= size
            assert page["next"] is None or len(page["events"]) == size
            ids += [e["id"] for e in page["events"]]
            after, pages = page["next"], pages + 1
        assert ids == list(range(1, EVENTS + 1)) and pages == EVENTS // size
    status, page = get(server, "history", arn=arn, after=19_000)   # the default page: 100
    assert [e["id"] for e in page["events"]] == list(range(19_001, 19_101)) and page["next"] == 19_100
    status, tail = get(server, "history", arn=arn, after=EVENTS - 1)
    assert [e["type"] for e in tail["events"]] == ["ExecutionSucceeded"] and tail["next"] is None
    status, past = get(server, "history", arn=arn, after=EVENTS)
    assert status == 200 and past == {"events": [], "next": None}
    whole = engine.store.history(arn)
    assert page["events"] == json.loads(json.dumps(whole[19_000:19_100], default=lambda t: t.isoformat()))


@pytest.mark.parametrize(("query", "status", "words"), [
    ({"after": "-1"}, 400, "'after' must be an integer from 0"),
    ({"after": "ten"}, 400, "'after' must be an integer from 0"),
    ({"limit": "0"}, 400, "'limit' must be an integer from 1 to 1000"),
    ({"limit": "1001"}, 400, "'limit' must be an integer from 1 to 1000"),
    ({"arn": ""}, 400, "'arn' is required"),
    ({"arn": "arn:aws:states:us-east-1:123456789012:execution:waits:gone"}, 400, "Execution Does Not Exist"),
    ({"arn": "not-an-arn"}, 400, "Invalid Arn"),
])
def test_bad_history_requests_are_400s_naming_the_problem(sqlite_url, serve, query, status, words):
    sfn = statelang.Engine(db=sqlite_url, clock="virtual").client()
    sm = sfn.create_state_machine(name="waits", roleArn=ROLE, definition=json.dumps(
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=sm, name="w")["executionArn"]
    server, _ = serve(sqlite_url)
    got, body = get(server, "history", **{"arn": arn, **query})
    assert got == status and words in body["message"], body


def test_the_path_folded_across_polls_agrees_with_a_fold_of_the_whole_history(sqlite_url, serve):
    tokens = []
    server, engine = serve(sqlite_url, clock="virtual", handlers={"notify": lambda e: tokens.append(e["token"])})
    sfn = engine.client()
    sm = sfn.create_state_machine(name="approvals", definition=json.dumps(TOKEN_MACHINE), roleArn=ROLE)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=sm, name="a-1", input='{"items": [1, 2, 3]}')["executionArn"]
    engine.run_until_idle()
    _, waiting = get(server, "execution", arn=arn)
    assert waiting["execution"]["status"] == "RUNNING" and waiting["marks"]["Approve"] == "running"
    assert "Done" not in waiting["marks"]
    sfn.send_task_success(taskToken=tokens[0], output='{"ok": true}')
    engine.run_until_idle()
    _, done = get(server, "execution", arn=arn)   # the fold goes on from where the first poll left it
    assert done["execution"]["status"] == "SUCCEEDED"
    whole = engine.store.history(arn)
    marks, taken = path_of(whole, "SUCCEEDED")
    assert done["marks"] == marks and marks["Done"] == marks["Approve"] == "visited"
    assert done["lastEventId"] == whole[-1]["id"] > waiting["lastEventId"]
    assert 'data-state="Done"' in done["svg"] and ("Approve", "Done") in taken
