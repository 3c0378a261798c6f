"""The web console in a real headless Chromium: find an execution waiting on a task token, see
its graph with the running state, press the answer button and watch it succeed; see a failed
execution's failed state; replay from the page; page through a 20,000-event history with "Load
more". Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import statelang
from statelang.server import Server
from tests.test_history_paging_cli import EVENTS, LOOP

REQUIRED = os.environ.get("STATELANG_REQUIRE_BROWSER") == "1"   # CI: a missing browser is a failure
CHROMIUM = os.environ.get("STATELANG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if REQUIRED and not Path(CHROMIUM).exists():
    raise RuntimeError("STATELANG_REQUIRE_BROWSER=1 but Chromium is not installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the Python package) is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

ARTIFACTS = Path(__file__).parent / "artifacts"
ROLE = "arn:aws:iam::123456789012:role/console"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Boom(Exception):
    pass


def boom(event):
    raise Boom("the card was declined")


TOKEN_MACHINE = {"StartAt": "Prepare", "States": {
    "Prepare": {"Type": "Parallel", "Next": "Items", "ResultPath": None, "Branches": [
        {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
        {"StartAt": "Right", "States": {"Right": {"Type": "Pass", "End": True}}}]},
    "Items": {"Type": "Map", "ItemsPath": "$.items", "Next": "Approve",
              "ItemProcessor": {"StartAt": "Each", "States": {"Each": {"Type": "Pass", "End": True}}}},
    "Approve": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "notify", "Payload": {"token.$": "$$.Task.Token"}},
                "Next": "Done"},
    "Done": {"Type": "Succeed"}}}
FAILING_MACHINE = {"StartAt": "Reserve", "States": {
    "Reserve": {"Type": "Pass", "Next": "Charge"},
    "Charge": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:boom", "Next": "Ship"},
    "Ship": {"Type": "Pass", "End": True}}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    engine = statelang.Engine(db=f"sqlite:///{tmp / 'flows.db'}", handlers={"notify": lambda e: {}, "boom": boom})
    server = Server(engine, "127.0.0.1", 0, data_dir=tmp, poll_seconds=0.1).start()
    sfn = engine.client()
    arns = {}
    for name, definition in (("approvals", TOKEN_MACHINE), ("checkout", FAILING_MACHINE), ("loop", LOOP)):
        arns[name] = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                              roleArn=ROLE)["stateMachineArn"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(15000)
        yield {"server": server, "sfn": sfn, "arns": arns, "page": page, "engine": engine}
        context.close()
    server.stop()


def wait_for(pred, seconds: float = 15):
    """Poll `pred`; a row that a re-render removed mid-read counts as 'not yet', not as a failure."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except sync_api.Error:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def names(rows) -> list:
    return [r.get_attribute("data-name", timeout=1000) for r in rows.all()]


def test_answer_a_waiting_task_from_the_console(env):
    sfn, page, url = env["sfn"], env["page"], env["server"].url
    arn = sfn.start_execution(stateMachineArn=env["arns"]["approvals"], name="order-42",
                              input=json.dumps({"items": [1, 2, 3]}))["executionArn"]
    sfn.start_execution(stateMachineArn=env["arns"]["approvals"], name="order-43", input='{"items": []}')
    page.goto(url + "/console/")
    page.wait_for_selector("#executions tr.execution")
    page.fill("#search", "order-42")
    page.select_option("#status", "RUNNING")
    page.click("#filter button")
    # (the page's CSP forbids the string evaluation wait_for_function uses: poll from here)
    rows = page.locator("#executions tr.execution")
    wait_for(lambda: names(rows) == ["order-42"])
    assert page.inner_text("#executions tr.execution").startswith("order-42")
    page.click("#executions tr.execution a")
    page.wait_for_selector(".token")     # the execution reached the task token
    running = page.locator('#graph g.state.running[data-state="Approve"]')
    running.wait_for()
    assert page.locator('#graph g.group[data-state="Prepare"]').count() == 1
    assert page.locator('#graph g.group[data-state="Items"]').count() == 1
    assert "visited" in page.get_attribute('#graph g[data-state="Left"]', "class")
    assert page.locator('#history li[data-type="TaskSubmitted"]').count() == 1
    page.screenshot(path=str(ARTIFACTS / "console-waiting.png"), full_page=True)

    page.fill("#output-0", '{"approved": true}')
    page.click("button.answer[data-ok='1']")
    page.wait_for_selector('h1 .badge[data-status="SUCCEEDED"]')
    assert "visited" in page.get_attribute('#graph g[data-state="Done"]', "class")
    assert page.locator(".token").count() == 0
    page.screenshot(path=str(ARTIFACTS / "console-succeeded.png"), full_page=True)
    out = sfn.describe_execution(executionArn=arn)
    assert out["status"] == "SUCCEEDED" and json.loads(out["output"]) == {"approved": True}

    page.click("#replay")
    page.wait_for_selector("#message .msg")
    assert "Replay matches" in page.inner_text("#message")


def test_failed_execution_shows_the_failed_state(env):
    sfn, page, url = env["sfn"], env["page"], env["server"].url
    arn = sfn.start_execution(stateMachineArn=env["arns"]["checkout"], name="checkout-7",
                              input='{"cart": 7}')["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] == "FAILED")
    page.goto(url + "/console/#/?status=FAILED")
    page.wait_for_selector("#executions tr.execution")
    assert page.locator("#executions tr.execution").count() == 1
    page.click("#executions tr.execution a")
    page.wait_for_selector('#graph g.state.failed[data-state="Charge"]')
    assert "visited" in page.get_attribute('#graph g[data-state="Reserve"]', "class")
    assert "failed" not in (page.get_attribute('#graph g[data-state="Ship"]', "class") or "")
    assert "Boom" in page.inner_text("#error")
    assert page.locator("#redrive").count() == 1
    page.screenshot(path=str(ARTIFACTS / "console-failed-execution.png"), full_page=True)

    page.click("#redrive")   # it fails again, with one redrive counted
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["redriveCount"] == 1)
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] == "FAILED")


def test_stop_from_the_console(env):
    sfn, page, url = env["sfn"], env["page"], env["server"].url
    arn = sfn.start_execution(stateMachineArn=env["arns"]["approvals"], name="to-stop",
                              input='{"items": []}')["executionArn"]
    page.goto(url + "/console/#/execution/" + arn)
    page.wait_for_selector(".token")
    page.click("#stop")
    page.wait_for_selector('h1 .badge[data-status="ABORTED"]')
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"


def test_load_more_pages_through_a_long_history(env):
    sfn, page, url = env["sfn"], env["page"], env["server"].url
    arn = sfn.start_execution(stateMachineArn=env["arns"]["loop"], name="long", input="{}")["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED", 120)
    page.goto(url + "/console/#/execution/" + arn)
    page.wait_for_selector('#graph g.state.visited[data-state="Done"]')
    items = page.locator("#history li")
    assert items.count() == 100 and page.inner_text("#event-count") == f"{EVENTS} events"
    assert page.locator("#history li").last.inner_text().startswith("100 ")
    page.click("#more")
    wait_for(lambda: items.count() == 200)
    assert page.locator("#history li").nth(100).inner_text().startswith("101 ")
    for _ in range(3):
        page.click("#more")
    wait_for(lambda: items.count() == 500)
    ids = [int(t.split()[0]) for t in page.locator("#history li b:first-child").all_inner_texts()]
    assert ids == list(range(1, 501))
    assert page.inner_text("#more") == "Load more (after event 500)"
    page.screenshot(path=str(ARTIFACTS / "console-history-pages.png"))
