"""SAM, CloudFormation and CDK templates run locally: `statelang.load_template`, `statelang run
TEMPLATE --state-machine X` and `statelang validate TEMPLATE`.

Template semantics follow CloudFormation's "Intrinsic function reference" and the
AWS::StepFunctions::StateMachine / AWS::Serverless::StateMachine property references
(DefinitionSubstitutions replaces ``${name}`` placeholders in the definition).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from statelang.cli import main
from statelang.templates.intrinsics import TemplateError
from statelang.templates.template import load_template

FIXTURES = Path(__file__).parent / "fixtures"
SAM = FIXTURES / "sam_project"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # the S3 folder and any database land in the test's own folder


def test_sam_project_runs_with_no_user_code_in_a_real_process(tmp_path):
    """The done-when: `statelang run template.yaml --state-machine X --input @event.json --time virtual`."""
    project = tmp_path / "project"
    shutil.copytree(SAM, project)
    exe = Path(sys.executable).with_name("statelang")
    out = subprocess.run([str(exe), "run", "template.yaml", "--state-machine", "OrderStateMachine",
                          "--input", "@event.json", "--time", "virtual"],
                         cwd=project, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["validation"]["stage"] == "dev"            # Globals.Function Environment, read at import
    assert result["validation"]["function"] == "ValidateFunction"
    assert result["validation"]["memory"] == "256"
    assert result["validation"]["remainingMs"] == 10000      # Timeout 10 s on the virtual clock
    assert result["payment"]["charge"]["table"] == "dev-orders"   # !Ref of the table, via Environment
    assert len(result["notification"]["messageId"]) == 36


def test_sam_template_in_python_records_table_item_and_message():
    t = load_template(SAM / "template.yaml", {"Stage": "qa"})
    sm = t.state_machine("OrderStateMachine")
    assert (sm.name, sm.type) == ("orders-qa", "STANDARD")
    assert sm.definition["States"]["Validate"]["Resource"] == \
        "arn:aws:lambda:us-east-1:123456789012:function:ValidateFunction"
    eng = t.engine(clock="virtual", eager="always")
    ex = t.run("OrderStateMachine", {"orderId": "o-7", "amount": 9}, engine=eng)
    assert ex.status == "SUCCEEDED", ex
    services = eng.resources.services
    assert services.dynamodb.items("qa-orders") == [
        {"orderId": {"S": "o-7"}, "amount": {"N": "9"}, "chargeId": {"S": "ch-o-7"}}]
    (msg,) = services.sns.messages()
    assert msg["Message"] == "Order o-7 shipped (limit 500)" and msg["Subject"] == "Order shipped"
    # the day-long Wait passed on the virtual clock: the message is a day after the start
    assert msg["Timestamp"] > ex.start_date.isoformat()
    again = t.run("OrderStateMachine", {"orderId": "o-7", "amount": 9}, engine=eng)
    assert again.status == "SUCCEEDED"
    assert any(e["type"] == "SucceedStateEntered" for e in again.history)   # ConditionalCheckFailed caught
    assert "STAGE" not in os.environ and "TABLE_NAME" not in os.environ   # put back after each call
    eng.close()


def test_a_lambda_error_is_caught_by_its_python_class_name():
    t = load_template(SAM / "template.yaml", {"MaxAmount": "50"})
    ex = t.run("OrderStateMachine", {"orderId": "o-8", "amount": 99}, clock="virtual")
    assert (ex.status, ex.error) == ("FAILED", "OrderRejected")
    caught = next(e for e in ex.history if e["type"] == "LambdaFunctionFailed")
    assert caught["lambdaFunctionFailedEventDetails"]["error"] == "InvalidOrder"
    assert "amount 99 is not between 0 and 50" in caught["lambdaFunctionFailedEventDetails"]["cause"]


def test_cloudformation_definition_string_with_fn_sub_and_conditions():
    t = load_template(FIXTURES / "cfn" / "template.yaml", {"QueueSuffix": "prod"})
    ex = t.run("Machine", {"name": "Ada"}, clock="virtual")
    assert ex.status == "SUCCEEDED", ex
    assert ex.output["region"] == "us-east-1"
    eng = t.engine(clock="virtual", eager="always")
    t.run("greeter", {"name": "Bo"}, engine=eng)          # by name too
    (sent,) = eng.resources.services.sqs.messages()
    assert sent["Body"] == "Good day, Bo" and sent["QueueUrl"].endswith("/work-prod")   # Fn::If on IsProd
    eng.close()


def test_cdk_synthesised_template_with_fn_join_and_asset_folder():
    t = load_template(FIXTURES / "cdk" / "cdk.out" / "PricingStack.template.json")
    assert "CDKMetadata" in t.resources       # Condition CDKMetadataAvailable: true in us-east-1 ...
    elsewhere = load_template(FIXTURES / "cdk" / "cdk.out" / "PricingStack.template.json", region="ap-south-1")
    assert "CDKMetadata" not in elsewhere.resources   # ... and false here, so the resource is left out
    ex = t.run("PricingMachine8B9C0D1E", {"customer": "c", "items": [{"price": 2, "qty": 3}]}, clock="virtual")
    assert ex.status == "SUCCEEDED", ex
    assert ex.output["price"] == {"total": 6}


def test_unsubstituted_placeholder_is_a_warning_naming_the_field(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(SAM, project)
    tpl = project / "template.yaml"
    tpl.write_text(tpl.read_text().replace("        OrderTopicArn: !Ref OrderTopic\n", ""))
    r = cli("validate", tpl)
    assert r.exit_code == 0
    assert "WARNING UNSUBSTITUTED_PLACEHOLDER at /States/Notify/Parameters/TopicArn: ${OrderTopicArn}" in r.output
    definition = tmp_path / "d.asl.json"
    definition.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${FnArn}",
                                                                         "End": True}}}))
    r = cli("validate", definition)
    assert r.exit_code == 2 and "at /States/A/Resource: ${FnArn} is not substituted" in r.output
    r = cli("run", definition, "--sub", "FnArn=Hello", "--handlers", "nope_module")
    assert r.exit_code == 2


def test_template_errors_are_one_clear_line(tmp_path):
    r = cli("run", SAM / "template.yaml", "--parameter", "Nope=1")
    assert r.exit_code == 2 and "--parameter Nope: the template declares no such parameter" in r.output
    r = cli("run", SAM / "template.yaml", "--state-machine", "Missing")
    assert r.exit_code == 2 and "no state machine 'Missing'" in r.output and "OrderStateMachine" in r.output
    bad = tmp_path / "t.yaml"
    bad.write_text("Resources:\n  M:\n    Type: AWS::StepFunctions::StateMachine\n    Properties:\n"
                   "      DefinitionString: !Sub '{\"StartAt\": \"${Nope.Arn}\"}'\n")
    with pytest.raises(TemplateError, match="Fn::GetAtt of 'Nope', which is no resource"):
        load_template(bad).run("M")
    r = cli("validate", bad)
    assert r.exit_code == 2 and "Nope" in r.output and "Traceback" not in r.output


def test_a_missing_function_module_is_named_before_the_run(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(SAM, project)
    (project / "functions" / "charge" / "app.py").unlink()
    r = cli("run", project / "template.yaml", "--time", "virtual", "--input", "{}")
    assert r.exit_code == 2
    assert "function ChargeFunction: no" in r.output and "app.py" in r.output


def test_asl_yaml_runs_from_the_cli():
    r = cli("run", FIXTURES / "wait_and_greet.asl.yaml", "--input", '{"name": "Ada"}', "--time", "virtual")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"message": "Hello, Ada!"}


def test_child_machine_by_name_equals_file(tmp_path):
    child = tmp_path / "child.asl.yaml"
    child.write_text("StartAt: Double\nStates:\n  Double:\n    Type: Pass\n    Parameters:\n"
                     "      n.$: States.MathAdd($.n, $.n)\n    End: true\n")
    parent = tmp_path / "parent.asl.json"
    parent.write_text(json.dumps({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:Doubler",
                       "Input.$": "$"}, "OutputPath": "$.Output", "End": True}}}))
    r = cli("run", parent, "--state-machine", f"Doubler={child}", "--input", '{"n": 21}', "--time", "virtual")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"n": 42}


def test_a_run_parked_on_a_task_token_says_what_waits_and_how_to_answer(tmp_path):
    d = tmp_path / "ask.asl.json"
    d.write_text(json.dumps({"StartAt": "Approve", "States": {"Approve": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
                       "MessageBody": {"token.$": "$$.Task.Token"}}, "End": True}}}))
    (tmp_path / "h.py").write_text("import statelang\n\n@statelang.handler('arn:aws:states:::sqs:*')\n"
                                   "def sent(event):\n    return {}\n")
    db = f"sqlite:///{tmp_path / 'run.db'}"
    r = cli("run", d, "--handlers", "h", "--db", db, "--time", "virtual")
    assert r.exit_code == 1
    assert "state 'Approve' waits for its task token" in r.output
    token = r.output.split("waits for its task token:\n")[1].split()[0]
    assert f"statelang task success {token} --output '{{}}' --db {db}" in r.output
    answered = cli("task", "success", token, "--output", '{"approved": true}', "--db", db)
    assert answered.exit_code == 0, answered.output
    listed = cli("executions", "list", "--db", db, "--json")
    assert json.loads(listed.output)[0]["status"] == "SUCCEEDED"
    r = cli("run", d, "--handlers", "h", "--time", "virtual")
    assert "This run was in memory" in r.output


def test_express_type_gives_an_express_execution_arn(tmp_path):
    """An Express execution's ARN is arn:aws:states:<region>:<account>:express:<machine>:<name>:<run id>
    (StartSyncExecution's response), so samples that split $$.Execution.Id on ':' find 9 parts."""
    import statelang
    d = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
        "parts.$": "States.ArrayLength(States.StringSplit($$.Execution.Id, ':'))"}, "End": True}}}
    assert statelang.run(d, type="EXPRESS", clock="virtual").output == {"parts": 9}
    assert statelang.run(d, clock="virtual").output == {"parts": 8}
    f = tmp_path / "d.json"
    f.write_text(json.dumps(d))
    r = cli("run", f, "--type", "express", "--time", "virtual")
    assert r.exit_code == 0 and json.loads(r.output) == {"parts": 9}


def test_events_put_events_goes_to_statelangs_bus(tmp_path):
    """events:putEvents is answered by statelang's event bus (one EventBridge): a failed entry
    fails the task with EventBridge.FailedEntry, as AWS's optimised integration does."""
    d = tmp_path / "ev.asl.json"
    d.write_text(json.dumps({"StartAt": "Put", "States": {"Put": {
        "Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
        "Parameters": {"Entries": [{"Source": "shop", "DetailType": "Done", "Detail": {"ok": True}}]},
        "ResultSelector": {"failed.$": "$.FailedEntryCount"}, "End": True}}}))
    r = cli("run", d, "--time", "virtual")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"failed": 0}


def test_terraform_templatefile_vars_substitute_text_before_reading(tmp_path):
    """Terraform's templatefile(path, vars) replaces ${name} in the text (so a number can stand
    unquoted) and writes $${ as a literal ${."""
    f = tmp_path / "machine.asl.json.tftpl"
    f.write_text('{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": ${wait_seconds}, "Next": "P"},'
                 ' "P": {"Type": "Pass", "Result": {"env": "${env}", "lit": "$${keep}"}, "End": true}}}')
    r = cli("run", f, "--var", "wait_seconds=30", "--var", "env=prod", "--time", "virtual")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"env": "prod", "lit": "${keep}"}
    assert "WARNING UNSUBSTITUTED_PLACEHOLDER at /States/P/Result/lit" in r.stderr   # a literal ${, noted


def test_a_machine_starts_another_machine_of_the_same_template(tmp_path):
    tpl = tmp_path / "template.yaml"
    tpl.write_text("""\
Transform: AWS::Serverless-2016-10-31
Resources:
  Child:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: Tag
        States:
          Tag: {Type: Pass, Parameters: {"child.$": "$$.StateMachine.Name", "n.$": "$.n"}, End: true}
  Parent:
    Type: AWS::Serverless::StateMachine
    Properties:
      Type: STANDARD
      Definition:
        StartAt: Call
        States:
          Call:
            Type: Task
            Resource: arn:aws:states:::states:startExecution.sync:2
            Parameters:
              StateMachineArn: ${ChildArn}
              Input.$: $
            OutputPath: $.Output
            End: true
      DefinitionSubstitutions:
        ChildArn: !Ref Child
""")
    r = cli("run", tpl, "--state-machine", "Parent", "--input", '{"n": 3}', "--time", "virtual")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"child": "Child", "n": 3}


def test_a_function_the_machine_never_calls_is_not_imported(tmp_path):
    """An API handler of the same template that needs a package not installed here does not stop
    the workflow's run; a function the machine calls is checked before the run."""
    project = tmp_path / "p"
    shutil.copytree(SAM, project)
    (project / "functions" / "api").mkdir()
    (project / "functions" / "api" / "app.py").write_text("import package_not_installed_here\n")
    tpl = project / "template.yaml"
    tpl.write_text(tpl.read_text().replace("  OrdersTable:\n", """\
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/api/
      Handler: app.handler

  OrdersTable:
""", 1))
    r = cli("run", tpl, "--input", '{"orderId": "o-2", "amount": 3}', "--time", "virtual")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["payment"]["charge"]["chargeId"] == "ch-o-2"


def test_a_function_that_is_not_python_fails_its_task_with_a_clear_cause(tmp_path):
    tpl = tmp_path / "template.yaml"
    tpl.write_text("""\
Transform: AWS::Serverless-2016-10-31
Resources:
  NodeFn:
    Type: AWS::Serverless::Function
    Properties: {Runtime: nodejs20.x, Handler: index.handler, InlineCode: "exports.handler = async () => 1"}
  M:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: Call
        States:
          Call: {Type: Task, Resource: !GetAtt NodeFn.Arn, End: true}
""")
    r = cli("run", tpl, "--time", "virtual")
    assert r.exit_code == 1
    assert "NodeFn (nodejs20.x) cannot run locally" in r.output and "Give a handler for 'NodeFn'" in r.output
    (tmp_path / "node_stub.py").write_text("def NodeFn(event):\n    return {'stubbed': True}\n")
    r = cli("run", tpl, "--time", "virtual", "--handlers", "node_stub")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"stubbed": True}
