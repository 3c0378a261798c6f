"""statelang's pytest plugin, as a user's project sees it: a fresh folder with only a test file,
run by pytest in a process of its own, finds the fixtures through the ``pytest11`` entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

USER_TESTS = '''
import pytest
from statelang.pytest_plugin import assert_path, mock_test_cases, state_input, state_output

MACHINE = {"StartAt": "Check", "States": {
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
              "Default": "Small"},
    "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "Next": "Save"},
    "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "Next": "Save"},
    "Save": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "Parameters": {
        "TableName": "T", "Item": {"id": {"S.$": "$.size"}}}, "ResultPath": None, "End": True}}}


def test_engine_and_client(sfn_engine, sfn_client):
    import json
    sfn_engine.resources.services.dynamodb.create_table("T", "id")
    arn = sfn_client.create_state_machine(name="m", definition=json.dumps(MACHINE),
                                          roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    ex = sfn_client.start_execution(stateMachineArn=arn, input='{"n": 11}')
    sfn_engine.run_until_idle()
    assert sfn_client.describe_execution(executionArn=ex["executionArn"])["status"] == "SUCCEEDED"
    assert sfn_engine.resources.services.dynamodb.items("T") == [{"id": {"S": "big"}}]


def test_template_and_helpers(statelang_template, sfn_golden):
    t = statelang_template("sam_project/template.yaml", Stage="test")
    ex = t.run("OrderStateMachine", {"orderId": "o-1", "amount": 5})
    assert_path(ex, ["Validate", "Charge", "Record", "WaitForShipping", "Notify"])
    assert state_input(ex, "Charge")["validation"]["stage"] == "test"
    assert state_output(ex, "Record") == state_input(ex, "WaitForShipping")
    assert [m["Subject"] for m in t.services.sns.messages()] == ["Order shipped"]
    sfn_golden("order", ex)
    with pytest.raises(AssertionError, match="path taken"):
        assert_path(ex, ["Validate", "Rejected"])


@pytest.mark.parametrize("test_case", mock_test_cases("mocks.json", "Sized"))
def test_mock_cases(test_case):
    assert test_case in ("HappyPath", "Throttled")
'''

MOCKS = '{"StateMachines": {"Sized": {"TestCases": {"HappyPath": {}, "Throttled": {}}}}, "MockedResponses": {}}'


def test_fixtures_work_in_a_fresh_project(tmp_path):
    project = tmp_path / "userproject"
    project.mkdir()
    shutil.copytree(FIXTURES / "sam_project", project / "sam_project")
    (project / "test_flow.py").write_text(textwrap.dedent(USER_TESTS))
    (project / "mocks.json").write_text(MOCKS)

    def pytest_run(*extra):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                              cwd=project, capture_output=True, text=True, timeout=300)
    first = pytest_run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 passed" in first.stdout
    golden = project / "golden" / "order.history.json"
    assert golden.exists()
    again = pytest_run()                       # same history: passes against the stored file
    assert again.returncode == 0, again.stdout
    golden.write_text(golden.read_text().replace('"Notify"', '"Notified"', 1))
    changed = pytest_run()
    assert changed.returncode == 1 and "history differs from" in changed.stdout
    assert "--statelang-update-golden" in changed.stdout
    updated = pytest_run("--statelang-update-golden")
    assert updated.returncode == 0
    assert pytest_run().returncode == 0
