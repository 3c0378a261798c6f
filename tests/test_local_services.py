"""Local AWS services answering Task states, their state in the engine's Store.

Response shapes: the optimised DynamoDB integration's output is the API response plus
SdkHttpMetadata/SdkResponseMetadata (LocalStack's AWS-recorded
tests/aws/services/stepfunctions/v2/services/test_dynamodb_task_service.snapshot.json); errors are
``DynamoDB.<Exception>`` for optimised integrations and ``<ServiceName>.<Error>Exception`` for SDK
integrations (AWS's "Learning to use AWS service SDK integrations in Step Functions").
"""

from __future__ import annotations

from datetime import datetime

import pytest

import statelang
from statelang.runtime.services.dynamodb_expressions import evaluate_condition
from statelang.runtime.services.local import LocalServices

DDB = "arn:aws:states:::dynamodb:"


@pytest.fixture
def eng():
    engine = statelang.Engine(db="memory", clock="virtual", eager="always")
    yield engine
    engine.close()


@pytest.fixture
def svc(eng, tmp_path):
    """Local services on the engine's store and virtual clock, as `statelang run` binds them."""
    s = LocalServices(eng.store, eng.clock, s3_root=tmp_path / "s3", moto=False)
    eng.resources.services = s
    s.dynamodb.create_table("Orders", "pk", "sk")
    return s


def task(resource: str, params: dict, **extra) -> dict:
    return {"Type": "Task", "Resource": resource, "Parameters": params, **extra}


def run(eng, states: dict, start: str, input=None):
    return statelang.run({"StartAt": start, "States": states}, input or {}, engine=eng)


def test_put_then_conditional_put_is_caught_by_aws_error_name(svc, eng):
    item = {"pk": {"S": "o1"}, "sk": {"N": "1"}, "total": {"N": "10"}}
    states = {
        "Put": task(f"{DDB}putItem", {"TableName": "Orders", "Item": item,
                                       "ConditionExpression": "attribute_not_exists(pk)"},
                    ResultPath="$.put", Next="Again"),
        "Again": task(f"{DDB}putItem", {"TableName": "Orders", "Item": item,
                                         "ConditionExpression": "attribute_not_exists(pk)"},
                      Catch=[{"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "Next": "Caught"}],
                      End=True),
        "Caught": {"Type": "Pass", "End": True}}
    ex = run(eng, states, "Put")
    assert ex.status == "SUCCEEDED", ex
    assert ex.output["Error"] == "DynamoDB.ConditionalCheckFailedException"
    put = next(e for e in ex.history if e["type"] == "TaskSucceeded")
    out = put["taskSucceededEventDetails"]["output"]
    assert '"SdkHttpMetadata"' in out and '"HttpStatusCode":200' in out.replace(" ", "")
    assert svc.dynamodb.items("Orders") == [item]


def test_update_query_scan_delete(svc, eng):
    for i in range(3):
        svc.dynamodb.put_item({"TableName": "Orders", "Item": {"pk": {"S": "c"}, "sk": {"N": str(i)}}})
    states = {
        "Up": task(f"{DDB}updateItem", {"TableName": "Orders", "Key": {"pk": {"S": "c"}, "sk": {"N": "1"}},
                                         "UpdateExpression": "SET #n = if_not_exists(#n, :z) + :one",
                                         "ExpressionAttributeNames": {"#n": "n"},
                                         "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}},
                                         "ReturnValues": "ALL_NEW"},
                   ResultSelector={"n.$": "$.Attributes.n.N"}, ResultPath="$.up", Next="Q"),
        "Q": task("arn:aws:states:::aws-sdk:dynamodb:query",
                  {"TableName": "Orders", "KeyConditionExpression": "pk = :p AND sk > :s",
                   "ExpressionAttributeValues": {":p": {"S": "c"}, ":s": {"N": "0"}}, "ScanIndexForward": False},
                  ResultSelector={"count.$": "$.Count", "first.$": "$.Items[0].sk.N"}, ResultPath="$.q", Next="D"),
        "D": task(f"{DDB}deleteItem", {"TableName": "Orders", "Key": {"pk": {"S": "c"}, "sk": {"N": "0"}}},
                  ResultPath=None, Next="S"),
        "S": task("arn:aws:states:::aws-sdk:dynamodb:scan", {"TableName": "Orders"},
                  ResultSelector={"count.$": "$.Count"}, ResultPath="$.s", End=True)}
    ex = run(eng, states, "Up")
    assert ex.output == {"up": {"n": "1"}, "q": {"count": 2, "first": "2"}, "s": {"count": 2}}, ex


def test_missing_table_sdk_error_name(svc, eng):
    states = {"G": task("arn:aws:states:::aws-sdk:dynamodb:getItem", {"TableName": "Nope", "Key": {"pk": {"S": "x"}}},
                        End=True)}
    ex = run(eng, states, "G")
    assert ex.error == "DynamoDb.ResourceNotFoundException"
    states = {"G": task(f"{DDB}getItem", {"TableName": "Nope", "Key": {"pk": {"S": "x"}}}, End=True)}
    assert run(eng, states, "G").error == "DynamoDB.ResourceNotFoundException"


def test_sns_and_sqs_are_recorded_on_the_execution_clock(svc, eng):
    topic = svc.sns.create_topic("Alerts")
    queue = svc.sqs.create_queue("Work")
    states = {
        "Pub": task("arn:aws:states:::sns:publish", {"TopicArn": topic, "Message.$": "$"}, ResultPath="$.pub", Next="Send"),
        "Send": task("arn:aws:states:::sqs:sendMessage", {"QueueUrl": queue, "MessageBody": {"a": 1}},
                     ResultSelector={"md5.$": "$.MD5OfMessageBody"}, ResultPath="$.send", Next="Wait"),
        "Wait": {"Type": "Wait", "Seconds": 3600, "Next": "Again"},
        "Again": task("arn:aws:states:::sqs:sendMessage", {"QueueUrl": queue, "MessageBody": "later"},
                      ResultPath=None, End=True)}
    ex = run(eng, states, "Pub", {"k": "v"})
    assert ex.status == "SUCCEEDED", ex
    assert ex.output["send"] == {"md5": "bb6cb5c68df4652941caf652a366f2d8"}   # MD5 of the body sent
    (msg,) = svc.sns.messages(topic)
    assert msg["Message"] == '{"k":"v"}'
    sent, later = svc.sqs.messages(queue)
    assert sent["Body"] == '{"a":1}' and later["Body"] == "later"
    gap = datetime.fromisoformat(later["SentTimestamp"]) - datetime.fromisoformat(sent["SentTimestamp"])
    assert gap.total_seconds() == 3600   # an hour later, on the virtual clock
    bad = {"Pub": task("arn:aws:states:::sns:publish", {"TopicArn": topic + "x", "Message": "m"}, End=True)}
    assert run(eng, bad, "Pub").error == "SNS.NotFoundException"


def test_s3_on_a_folder(svc, eng, tmp_path):
    svc.s3.create_bucket("data")
    states = {
        "Put": task("arn:aws:states:::aws-sdk:s3:putObject", {"Bucket": "data", "Key": "in/a.json", "Body": {"x": 1}},
                    ResultPath=None, Next="List"),
        "List": task("arn:aws:states:::aws-sdk:s3:listObjectsV2", {"Bucket": "data", "Prefix": "in/"},
                     ResultSelector={"keys.$": "$.Contents[*].Key"}, ResultPath="$.list", Next="Get"),
        "Get": task("arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "data", "Key": "in/a.json"},
                    ResultSelector={"body.$": "States.StringToJson($.Body)"}, ResultPath="$.get", Next="Missing"),
        "Missing": task("arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "data", "Key": "../../etc/passwd"},
                        Catch=[{"ErrorEquals": ["S3.InvalidArgumentException"], "Next": "Gone",
                                "ResultPath": "$.err"}], End=True),
        "Gone": task("arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "data", "Key": "nope"}, End=True)}
    ex = run(eng, states, "Put")
    assert ex.error == "S3.NoSuchKeyException", ex
    assert (tmp_path / "s3" / "data" / "in" / "a.json").read_text() == '{"x": 1}'


def test_state_lives_in_the_engines_sqlite_file(tmp_path):
    """Tables and items are records of the engine's Store: a new process (a new engine on the same
    file) sees them."""
    db = f"sqlite:///{tmp_path / 'sl.db'}"
    eng = statelang.Engine(db=db, clock="virtual")
    svc = LocalServices(eng.store, eng.clock, moto=False)
    svc.dynamodb.create_table("T", "id")
    svc.dynamodb.put_item({"TableName": "T", "Item": {"id": {"S": "1"}}})
    eng.close()
    again = statelang.Engine(db=db, clock="virtual")
    assert LocalServices(again.store, again.clock, moto=False).dynamodb.items("T") == [{"id": {"S": "1"}}]
    again.close()


@pytest.mark.parametrize("expr,item,expected", [
    ("a = :one", {"a": {"N": "1.0"}}, True),
    ("attribute_exists(a) AND NOT begins_with(b, :s)", {"a": {"N": "1"}, "b": {"S": "xyz"}}, True),
    ("a BETWEEN :one AND :one", {"a": {"N": "2"}}, False),
    ("size(b) > :one", {"b": {"S": "xyz"}}, True),
])
def test_condition_expressions(expr, item, expected):
    assert evaluate_condition(expr, item, None, {":one": {"N": "1"}, ":s": {"S": "ab"}}) is expected


def test_services_as_a_handlers_dict_for_statelang_run(tmp_path):
    own = LocalServices(s3_root=tmp_path, moto=False)   # its own store and clock
    own.dynamodb.create_table("T", "id")
    states = {"P": task(f"{DDB}putItem", {"TableName": "T", "Item": {"id": {"S": "1"}}}, End=True)}
    ex = statelang.run({"StartAt": "P", "States": states}, handlers=own.handlers(), clock="virtual")
    assert ex.status == "SUCCEEDED" and own.dynamodb.items("T") == [{"id": {"S": "1"}}]


def test_other_sdk_actions_need_the_aws_extra(svc, eng):
    states = {"X": task("arn:aws:states:::aws-sdk:secretsmanager:getSecretValue", {"SecretId": "s"}, End=True)}
    ex = run(eng, states, "X")
    assert ex.error == "States.Runtime" and "secretsmanager" in ex.cause


def test_moto_answers_other_sdk_actions_when_installed(eng, tmp_path):
    pytest.importorskip("moto")
    svc = LocalServices(eng.store, eng.clock, s3_root=tmp_path, moto=True)
    eng.resources.services = svc
    states = {
        "Create": task("arn:aws:states:::aws-sdk:secretsmanager:createSecret", {"Name": "k", "SecretString": "v"},
                       ResultPath=None, Next="Get"),
        "Get": task("arn:aws:states:::aws-sdk:secretsmanager:getSecretValue", {"SecretId": "k"},
                    ResultSelector={"v.$": "$.SecretString"}, Next="Missing"),
        "Missing": task("arn:aws:states:::aws-sdk:secretsmanager:getSecretValue", {"SecretId": "nope"}, End=True)}
    ex = run(eng, states, "Create")
    assert ex.error == "SecretsManager.ResourceNotFoundException", ex


def test_one_s3_folder_for_sdk_tasks_and_the_distributed_maps_item_reader(tmp_path, monkeypatch):
    """What aws-sdk:s3:putObject writes, a distributed Map's ItemReader (s3:getObject) reads."""
    monkeypatch.setenv("STATELANG_S3_ROOT", str(tmp_path))
    eng = statelang.Engine(db="memory", clock="virtual", eager="always")
    services = LocalServices(eng.store, eng.clock, moto=False)
    eng.resources.services = services
    services.s3.create_bucket("in")
    states = {
        "Write": task("arn:aws:states:::aws-sdk:s3:putObject",
                      {"Bucket": "in", "Key": "items.json", "Body": [{"n": 1}, {"n": 2}, {"n": 3}]},
                      ResultPath=None, Next="Each"),
        "Each": {"Type": "Map", "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                                               "ReaderConfig": {"InputType": "JSON"},
                                               "Parameters": {"Bucket": "in", "Key": "items.json"}},
                 "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                                   "StartAt": "Double", "States": {"Double": {
                                       "Type": "Pass", "Parameters": {"d.$": "States.MathAdd($.n, $.n)"},
                                       "End": True}}},
                 "End": True}}
    ex = run(eng, states, "Write")
    eng.close()
    assert ex.status == "SUCCEEDED", ex
    assert ex.output == [{"d": 2}, {"d": 4}, {"d": 6}]


def test_injected_faults_meet_retry_and_catch(svc, eng):
    """fail_next / fail make the next calls fail with AWS's names, so a machine's Retry and Catch
    can be tested (as the seed systems' stand-ins allowed)."""
    svc.dynamodb.fail_next(2)
    topic = svc.sns.create_topic("T")
    svc.sns.fail(topic, 1, "KMSThrottlingException")
    states = {
        "Put": task(f"{DDB}putItem", {"TableName": "Orders", "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}}},
                    Retry=[{"ErrorEquals": ["DynamoDB.ProvisionedThroughputExceededException"], "MaxAttempts": 3,
                            "IntervalSeconds": 1}], ResultPath=None, Next="Pub"),
        "Pub": task("arn:aws:states:::sns:publish", {"TopicArn": topic, "Message": "m"},
                    Catch=[{"ErrorEquals": ["SNS.KMSThrottlingException"], "Next": "Caught"}], End=True),
        "Caught": {"Type": "Pass", "End": True}}
    ex = run(eng, states, "Put")
    assert ex.status == "SUCCEEDED", ex
    failures = [e for e in ex.history if e["type"] == "TaskFailed"]
    assert [f["taskFailedEventDetails"]["error"] for f in failures] == [
        "DynamoDB.ProvisionedThroughputExceededException"] * 2 + ["SNS.KMSThrottlingException"]
    assert len(svc.dynamodb.items("Orders")) == 1 and svc.sns.messages(topic) == []
