"""DescribeMapRun, ListMapRuns, UpdateMapRun and ListExecutions(mapRunArn) on a Distributed Map.

AWS's answers as recorded in LocalStack's
tests/aws/services/stepfunctions/v2/test_sfn_api_map_run.snapshot.json
(test_list_map_runs_and_describe_map_run): ListMapRuns items hold executionArn, mapRunArn,
stateMachineArn ("...:stateMachine:<machine>/<label>"), startDate, stopDate; DescribeMapRun holds
status, maxConcurrency, toleratedFailureCount, toleratedFailurePercentage (a float, 0.0), and
itemCounts / executionCounts with pending, running, succeeded, failed, timedOut, aborted, total,
resultsWritten. The API reference: UpdateMapRun changes a running map run's maxConcurrency and
tolerated failures; unknown map runs are ResourceNotFound.
"""

from __future__ import annotations

import json

import pytest

from statelang import Engine

ROLE = "arn:aws:iam::123456789012:role/r"
ACCOUNT = "123456789012"


def distributed(processor: dict, **fields) -> str:
    return json.dumps({"StartAt": "Fan", "States": {"Fan": {
        "Type": "Map", "Label": "Fan", "End": True, **fields,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **processor}}}})


@pytest.fixture
def engine(tmp_path):
    eng = Engine(db="memory", clock="virtual")
    eng.s3_root = str(tmp_path / "s3")
    return eng


def start(engine, definition: str, items) -> tuple[object, str]:
    client = engine.client()
    sm = client.create_state_machine(name="orders", definition=definition, roleArn=ROLE)["stateMachineArn"]
    arn = client.start_execution(stateMachineArn=sm, name="e1", input=json.dumps(items))["executionArn"]
    engine.run_until_idle()
    return client, arn


def test_list_and_describe_a_finished_map_run(engine):
    client, arn = start(engine, distributed({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                                            MaxConcurrency=1), [1, 2])
    assert client.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    runs = client.list_map_runs(executionArn=arn)["mapRuns"]
    assert len(runs) == 1
    run = runs[0]
    assert set(run) == {"executionArn", "mapRunArn", "stateMachineArn", "startDate", "stopDate"}
    assert run["executionArn"] == arn
    assert run["mapRunArn"].startswith(f"arn:aws:states:us-east-1:{ACCOUNT}:mapRun:orders/Fan:")
    assert run["stateMachineArn"] == f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders/Fan"
    described = client.describe_map_run(mapRunArn=run["mapRunArn"])
    described.pop("ResponseMetadata")
    counts = {"aborted": 0, "failed": 0, "pending": 0, "resultsWritten": 2, "running": 0, "succeeded": 2,
              "timedOut": 0, "total": 2}
    assert described["itemCounts"] == counts and described["executionCounts"] == counts
    assert (described["status"], described["maxConcurrency"], described["toleratedFailureCount"],
            described["toleratedFailurePercentage"]) == ("SUCCEEDED", 1, 0, 0.0)
    assert described["stopDate"] >= described["startDate"]
    kids = client.list_executions(mapRunArn=run["mapRunArn"])["executions"]
    assert len(kids) == 2 and {k["stateMachineArn"] for k in kids} == {run["stateMachineArn"]}
    # API reference, ExecutionListItem: mapRunArn and itemCount for a map run's child executions
    assert {(k["mapRunArn"], k["itemCount"]) for k in kids} == {(run["mapRunArn"], 1)}


def test_unknown_and_malformed_map_runs(engine):
    client = engine.client()
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.describe_map_run(mapRunArn=f"arn:aws:states:us-east-1:{ACCOUNT}:mapRun:orders/Fan:nope")
    with pytest.raises(client.exceptions.InvalidArn):
        client.describe_map_run(mapRunArn="arn:aws:states:us-east-1:123456789012:stateMachine:orders")
    with pytest.raises(client.exceptions.ExecutionDoesNotExist):
        client.list_map_runs(executionArn=f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders:none")


def test_update_map_run_raises_concurrency_of_a_running_map_run(engine):
    """Children wait on an activity; MaxConcurrency 1 lets one run at a time until UpdateMapRun
    raises it, after which the next child's end starts three more."""
    client = engine.client()
    act = client.create_activity(name="work")["activityArn"]
    d = distributed({"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": act, "End": True}}},
                    MaxConcurrency=1)
    _, arn = start(engine, d, [1, 2, 3, 4, 5])
    run_arn = client.list_map_runs(executionArn=arn)["mapRuns"][0]["mapRunArn"]
    counts = client.describe_map_run(mapRunArn=run_arn)["executionCounts"]
    assert (counts["running"], counts["pending"], counts["total"]) == (1, 4, 5)

    client.update_map_run(mapRunArn=run_arn, maxConcurrency=3, toleratedFailureCount=2)
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["maxConcurrency"], described["toleratedFailureCount"], described["status"]) == (3, 2, "RUNNING")

    def finish_one():
        task = client.get_activity_task(activityArn=act)
        client.send_task_success(taskToken=task["taskToken"], output=task["input"])
        engine.run_until_idle()

    finish_one()
    counts = client.describe_map_run(mapRunArn=run_arn)["executionCounts"]
    assert (counts["succeeded"], counts["running"], counts["pending"]) == (1, 3, 1)
    for _ in range(4):
        finish_one()
    described = client.describe_map_run(mapRunArn=run_arn)
    assert described["status"] == "SUCCEEDED" and described["executionCounts"]["succeeded"] == 5
    assert client.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    with pytest.raises(client.exceptions.ValidationException):
        client.update_map_run(mapRunArn=run_arn, maxConcurrency=2)   # over: nothing left to update


def test_a_stopped_parent_aborts_its_map_run(engine):
    client = engine.client()
    act = client.create_activity(name="slow")["activityArn"]
    d = distributed({"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": act, "End": True}}})
    _, arn = start(engine, d, [1, 2])
    run_arn = client.list_map_runs(executionArn=arn)["mapRuns"][0]["mapRunArn"]
    client.stop_execution(executionArn=arn)
    engine.run_until_idle()
    assert client.describe_map_run(mapRunArn=run_arn)["status"] == "ABORTED"


def test_batched_children_count_their_items(engine):
    """DescribeMapRun's itemCounts count items, executionCounts child executions: with an
    ItemBatcher of 2, five items are three children."""
    client, arn = start(engine, distributed({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                                            ItemBatcher={"MaxItemsPerBatch": 2}), [1, 2, 3, 4, 5])
    run_arn = client.list_map_runs(executionArn=arn)["mapRuns"][0]["mapRunArn"]
    described = client.describe_map_run(mapRunArn=run_arn)
    assert (described["itemCounts"]["total"], described["itemCounts"]["succeeded"]) == (5, 5)
    assert (described["executionCounts"]["total"], described["executionCounts"]["succeeded"]) == (3, 3)
    kids = client.list_executions(mapRunArn=run_arn)["executions"]
    assert sorted(k["itemCount"] for k in kids) == [1, 2, 2]
