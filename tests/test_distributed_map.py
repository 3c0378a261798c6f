"""Distributed Map: item sources, batching, result files, tolerated failures, concurrency, child
executions and recovery on a second engine.

Sources pinned below:
  [IR] https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html
  [IB] https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itembatcher.html
  [RW] https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html
  [TF] https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html (tolerated
       failure threshold; MaxConcurrency default 10,000)
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from statelang import Engine

ACCOUNT = "123456789012"
SM = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def machine(processor_states: dict | None = None, mode_type: str = "STANDARD", **fields) -> dict:
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": mode_type},
                 "StartAt": "P", "States": processor_states or {"P": {"Type": "Pass", "End": True}}}
    return {"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "Label": "Fan", "ItemProcessor": processor,
                                                 "End": True, **fields}}}


def make(tmp_path, db: str = "memory", handlers: dict | None = None) -> Engine:
    engine = Engine(db=db if db == "memory" else f"sqlite:///{tmp_path}/x.db", clock="virtual", handlers=handlers)
    engine.s3_root = str(tmp_path / "s3")
    return engine


def put(tmp_path, bucket: str, key: str, text: str) -> None:
    p = tmp_path / "s3" / bucket / key
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def execute(engine: Engine, definition: dict, inp, name: str = "e1", rounds: int | None = None) -> dict:
    arn = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders:{name}"
    engine.start(definition, inp, arn=arn, name=name, state_machine_arn=SM)
    engine.run_until_idle(rounds)
    return engine.store.get_execution(arn)


def children(engine: Engine, parent: str | None = None) -> list[dict]:
    rows = [r for r in engine.store.list_executions() if (r.get("parent") or {}).get("mode") == "map"]
    return sorted((r for r in rows if parent is None or r["parent"]["executionArn"] == parent),
                  key=lambda r: r["parent"]["index"])


def reader(key: str, **config) -> dict:
    return {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": config,
            "Parameters": {"Bucket": "data", "Key": key}}


# -- item sources -------------------------------------------------------------------------------

@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_items_from_input_output_is_child_outputs_in_index_order(tmp_path, db):
    # [RW] "If you didn't specify to export the child workflow execution results, the state machine
    # execution returns an array of child workflow execution results".
    engine = make(tmp_path, db)
    d = machine({"P": {"Type": "Pass", "Parameters": {"v.$": "$.x"}, "End": True}}, ItemsPath="$.rows",
                MaxConcurrency=3)
    row = execute(engine, d, {"rows": [{"x": i} for i in range(7)]})
    assert row["status"] == "SUCCEEDED"
    assert json.loads(row["output"]) == [{"v": i} for i in range(7)]
    types = [e["type"] for e in engine.store.history(row["executionArn"])]
    assert "MapRunStarted" in types and types[-3:] == ["MapRunSucceeded", "MapStateExited", "ExecutionSucceeded"]


def test_child_executions_are_named_and_have_their_own_history(tmp_path):
    # [RW] child entries: ExecutionArn ...:execution:orderProcessing/getOrders:<uuid>, Name <uuid>,
    # StateMachineArn ...:stateMachine:orderProcessing/getOrders (state machine / map label).
    engine = make(tmp_path)
    row = execute(engine, machine(), [1, 2])
    assert row["status"] == "SUCCEEDED"
    kids = children(engine, row["executionArn"])
    assert len(kids) == 2
    for i, kid in enumerate(kids):
        assert re.fullmatch(rf"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders/Fan:{UUID}", kid["executionArn"])
        assert kid["executionArn"].endswith(":" + kid["name"])
        assert kid["stateMachineArn"] == f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders/Fan"
        assert kid["parent"]["index"] == i and kid["parent"]["mapRunArn"].startswith(
            f"arn:aws:states:us-east-1:{ACCOUNT}:mapRun:orders/Fan:")
        types = [e["type"] for e in engine.store.history(kid["executionArn"])]
        assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
        assert json.loads(kid["output"]) == i + 1


def test_express_and_standard_children(tmp_path):
    # ProcessorConfig.ExecutionType STANDARD | EXPRESS: Express executions are named
    # arn:aws:states:<region>:<account>:express:<machine>:<name>:<id> (StartExecution API reference).
    engine = make(tmp_path)
    execute(engine, machine(mode_type="EXPRESS"), [1], name="x")
    execute(engine, machine(mode_type="STANDARD"), [1], name="s")
    express = children(engine, f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders:x")[0]
    standard = children(engine, f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders:s")[0]
    assert ":express:orders/Fan:" in express["executionArn"] and express["executionType"] == "EXPRESS"
    assert ":execution:orders/Fan:" in standard["executionArn"] and standard["executionType"] == "STANDARD"


def test_json_file_with_max_items(tmp_path):
    # [IR] "The JSON file must contain an array"; ReaderConfig.MaxItems limits the items read.
    engine = make(tmp_path)
    put(tmp_path, "data", "in/facts.json", json.dumps([{"n": i} for i in range(10)]))
    row = execute(engine, machine(ItemReader=reader("in/facts.json", InputType="JSON", MaxItems=4)), {})
    assert json.loads(row["output"]) == [{"n": i} for i in range(4)]


def test_jsonl_file(tmp_path):
    # [IR] "starts as many child workflow executions as the number of lines present in the JSONL file".
    engine = make(tmp_path)
    put(tmp_path, "data", "f.jsonl", '{"verdict": "true"}\n{"verdict": "false"}\n\n{"verdict": "mostly-true"}\n')
    row = execute(engine, machine(ItemReader=reader("f.jsonl", InputType="JSONL")), {})
    assert json.loads(row["output"]) == [{"verdict": "true"}, {"verdict": "false"}, {"verdict": "mostly-true"}]


def test_csv_first_row_header(tmp_path):
    # [IR] fields are strings; quotes may enclose the delimiter; "" keeps a quote; a short row gets
    # empty strings, a long row loses its extra fields.
    engine = make(tmp_path)
    put(tmp_path, "data", "r.csv", 'userId,movieId,title\n1,307,"Heat, The"\n2,481\n3,1091,"say ""hi""",extra\n')
    row = execute(engine, machine(ItemReader=reader("r.csv", InputType="CSV", CSVHeaderLocation="FIRST_ROW")), {})
    assert json.loads(row["output"]) == [
        {"userId": "1", "movieId": "307", "title": "Heat, The"},
        {"userId": "2", "movieId": "481", "title": ""},
        {"userId": "3", "movieId": "1091", "title": 'say "hi"'}]


def test_csv_given_headers_and_pipe_delimiter(tmp_path):
    # [IR] CSVHeaderLocation GIVEN with CSVHeaders; CSVDelimiter PIPE.
    engine = make(tmp_path)
    put(tmp_path, "data", "r.csv", "1|307|3.5\n1|481|3.5\n")
    cfg = {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["userId", "movieId", "rating"],
           "CSVDelimiter": "PIPE"}
    row = execute(engine, machine(ItemReader=reader("r.csv", **cfg)), {})
    assert json.loads(row["output"]) == [{"userId": "1", "movieId": "307", "rating": "3.5"},
                                         {"userId": "1", "movieId": "481", "rating": "3.5"}]


def test_list_objects_items(tmp_path):
    # [IR] s3:listObjectsV2 items: {"Etag": "\"<md5>\"", "Key", "LastModified": <epoch seconds>,
    # "Size", "StorageClass": "STANDARD"}; the Prefix filters keys.
    engine = make(tmp_path)
    put(tmp_path, "data", "logs/b.txt", "bb")
    put(tmp_path, "data", "logs/a/1.txt", "a")
    put(tmp_path, "data", "other/c.txt", "c")
    d = machine(ItemReader={"Resource": "arn:aws:states:::s3:listObjectsV2",
                            "Parameters": {"Bucket": "data", "Prefix": "logs/"}})
    out = json.loads(execute(engine, d, {})["output"])
    assert [o["Key"] for o in out] == ["logs/a/1.txt", "logs/b.txt"]
    assert out[1]["Size"] == 2 and out[1]["StorageClass"] == "STANDARD"
    assert out[1]["Etag"] == f'"{hashlib.md5(b"bb").hexdigest()}"'   # the MD5, quoted as S3 does
    assert isinstance(out[1]["LastModified"], int) and set(out[1]) == {"Etag", "Key", "LastModified", "Size",
                                                                       "StorageClass"}


@pytest.mark.parametrize("params", [{"Bucket": "data", "Key": "missing.json"},
                                    {"Bucket": "data", "Key": "../../etc/passwd"},
                                    {"Bucket": "..", "Key": "x.json"}])
def test_item_reader_failures(tmp_path, params):
    # States.ItemReaderFailed: the Map state fails when its ItemReader cannot read the data set;
    # a key outside the bucket directory is refused, never read.
    engine = make(tmp_path)
    d = machine(ItemReader={"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                            "Parameters": params})
    row = execute(engine, d, {})
    assert row["status"] == "FAILED" and row["error"] == "States.ItemReaderFailed"
    assert "passwd" not in (row["cause"] or "") or "outside" in row["cause"]
    assert children(engine) == []


# -- batching -----------------------------------------------------------------------------------

def test_item_batcher_child_input(tmp_path):
    # [IB] a batch's child receives {"BatchInput": {...}, "Items": [...]}; MaxItemsPerBatch caps it.
    engine = make(tmp_path)
    d = machine(ItemsPath="$.xs", ItemBatcher={"MaxItemsPerBatch": 3, "BatchInput": {"job.$": "$.job"}},
                ItemSelector={"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"})
    row = execute(engine, d, {"job": "j1", "xs": list("abcdefg")})
    out = json.loads(row["output"])
    assert [len(b["Items"]) for b in out] == [3, 3, 1]
    assert out[0] == {"BatchInput": {"job": "j1"}, "Items": [{"v": "a", "i": 0}, {"v": "b", "i": 1},
                                                            {"v": "c", "i": 2}]}
    assert len(children(engine)) == 3


def test_item_batcher_byte_bound(tmp_path):
    # [IB] MaxInputBytesPerBatch bounds the JSON size of a batch's items (here ~ the bytes of each
    # item plus a separator); a batch still holds at least one item.
    engine = make(tmp_path)
    d = machine(ItemsPath="$", ItemBatcher={"MaxInputBytesPerBatch": 25})
    out = json.loads(execute(engine, d, ["x" * 10, "y" * 10, "z" * 40, "w"])["output"])
    assert [b["Items"] for b in out] == [["x" * 10], ["y" * 10], ["z" * 40], ["w"]]
    d = machine(ItemsPath="$", ItemBatcher={"MaxInputBytesPerBatch": 29})
    out = json.loads(execute(engine, d, ["x" * 10, "y" * 10, "w"], name="e2")["output"])
    assert [b["Items"] for b in out] == [["x" * 10, "y" * 10], ["w"]]


# -- result writer ------------------------------------------------------------------------------

FAIL_ODD = {"C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "F"}],
                  "Default": "P"},
            "F": {"Type": "Fail", "Error": "Odd", "Cause": "one"},
            "P": {"Type": "Pass", "End": True}}


def processor_machine(states: dict, start: str, **fields) -> dict:
    d = machine(states, **fields)
    d["States"]["Fan"]["ItemProcessor"]["StartAt"] = start
    return d


@pytest.mark.parametrize("db", ["memory", "sqlite"])
def test_result_writer_files_and_manifest(tmp_path, db):
    # [RW] output {"MapRunArn", "ResultWriterDetails": {"Bucket", "Key": "<Prefix>/<map run id>/manifest.json"}};
    # SUCCEEDED_n.json / FAILED_n.json hold the children by status, with the metadata of
    # Transformation NONE; manifest {"DestinationBucket", "MapRunArn", "ResultFiles": {FAILED, PENDING,
    # SUCCEEDED: [{"Key", "Size"}]}} (the shape LocalStack also writes).
    engine = make(tmp_path, db)
    d = processor_machine(FAIL_ODD, "C", ItemsPath="$", ToleratedFailureCount=1,
                          ResultWriter={"Resource": "arn:aws:states:::s3:putObject",
                                        "Parameters": {"Bucket": "out", "Prefix": "jobs"}})
    row = execute(engine, d, [{"n": 0}, {"n": 1}, {"n": 2}])
    assert row["status"] == "SUCCEEDED", row
    out = json.loads(row["output"])
    run_id = out["MapRunArn"].rsplit(":", 1)[-1]
    assert re.fullmatch(UUID, run_id)
    assert out["ResultWriterDetails"] == {"Bucket": "out", "Key": f"jobs/{run_id}/manifest.json"}
    manifest = json.loads((tmp_path / "s3" / "out" / "jobs" / run_id / "manifest.json").read_text())
    assert manifest["DestinationBucket"] == "out" and manifest["MapRunArn"] == out["MapRunArn"]
    files = manifest["ResultFiles"]
    assert [f["Key"] for f in files["SUCCEEDED"]] == [f"jobs/{run_id}/SUCCEEDED_0.json"]
    assert [f["Key"] for f in files["FAILED"]] == [f"jobs/{run_id}/FAILED_0.json"] and files["PENDING"] == []
    path = tmp_path / "s3" / "out" / files["SUCCEEDED"][0]["Key"]
    assert files["SUCCEEDED"][0]["Size"] == path.stat().st_size
    ok = sorted(json.loads(path.read_text()), key=lambda e: json.loads(e["Input"])["n"])
    assert [json.loads(e["Output"]) for e in ok] == [{"n": 0}, {"n": 2}]
    e = ok[0]
    assert set(e) == {"ExecutionArn", "Input", "InputDetails", "Name", "Output", "OutputDetails", "RedriveCount",
                      "RedriveStatus", "RedriveStatusReason", "StartDate", "StateMachineArn", "Status", "StopDate"}
    assert e["Status"] == "SUCCEEDED" and e["RedriveStatus"] == "NOT_REDRIVABLE"
    assert e["InputDetails"] == {"Included": True} and e["ExecutionArn"].endswith(":" + e["Name"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["StartDate"])
    failed = json.loads((tmp_path / "s3" / "out" / files["FAILED"][0]["Key"]).read_text())
    assert len(failed) == 1 and failed[0]["Status"] == "FAILED"
    assert failed[0]["Error"] == "Odd" and failed[0]["Cause"] == "one"
    assert not (tmp_path / "s3" / ".statelang" / "maprun" / run_id).exists()   # work files cleaned up


def test_result_writer_outside_root_fails(tmp_path):
    engine = make(tmp_path)
    d = machine(ItemsPath="$", ResultWriter={"Resource": "arn:aws:states:::s3:putObject",
                                             "Parameters": {"Bucket": "out", "Prefix": "../../escape"}})
    row = execute(engine, d, [1])
    assert row["status"] == "FAILED" and row["error"] == "States.ResultWriterFailed"


def test_writer_config_flatten_without_export(tmp_path):
    # [RW] WriterConfig alone shapes the state output: FLATTEN flattens array outputs.
    engine = make(tmp_path)
    d = machine({"P": {"Type": "Pass", "Parameters": {"a.$": "States.Array($.x, $.x)"}, "OutputPath": "$.a",
                       "End": True}}, ItemsPath="$", ResultWriter={"WriterConfig": {"Transformation": "FLATTEN"}})
    assert json.loads(execute(engine, d, [{"x": 1}, {"x": 2}])["output"]) == [1, 1, 2, 2]


# -- tolerated failures ---------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "status"), [
    ({}, "FAILED"),                                          # default threshold 0
    ({"ToleratedFailureCount": 1}, "FAILED"),                # 2 failed > 1
    ({"ToleratedFailureCount": 2}, "SUCCEEDED"),
    ({"ToleratedFailurePercentage": 40}, "FAILED"),          # 2/4 = 50% > 40%
    ({"ToleratedFailurePercentage": 50}, "SUCCEEDED"),
])
def test_tolerated_failures(tmp_path, fields, status):
    # [TF] the map run fails with States.ExceedToleratedFailureThreshold once failed items exceed
    # ToleratedFailureCount or ToleratedFailurePercentage (of all items); both default to 0.
    engine = make(tmp_path)
    states = {"C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericGreaterThan": 1, "Next": "F"}],
                    "Default": "P"},
              "F": {"Type": "Fail", "Error": "Big"}, "P": {"Type": "Pass", "End": True}}
    row = execute(engine, processor_machine(states, "C", ItemsPath="$", **fields), [0, 1, 2, 3])
    assert row["status"] == status
    if status == "FAILED":
        assert row["error"] == "States.ExceedToleratedFailureThreshold"
    else:
        assert json.loads(row["output"]) == [0, 1, {"Error": "Big"}, {"Error": "Big"}]


def test_failure_is_caught_and_running_children_are_aborted(tmp_path):
    engine = make(tmp_path, handlers={"Slow": lambda x: x})
    states = {"C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "F"}],
                    "Default": "W"},
              "F": {"Type": "Fail", "Error": "Zero"}, "W": {"Type": "Wait", "Seconds": 3600, "End": True}}
    d = processor_machine(states, "C", ItemsPath="$")
    d["States"]["Fan"]["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
    d["States"]["Fan"].pop("End")
    d["States"]["Caught"] = {"Type": "Pass", "End": True}
    row = execute(engine, d, [0, 1, 2])
    assert row["status"] == "SUCCEEDED"
    assert json.loads(row["output"])["Error"] == "States.ExceedToleratedFailureThreshold"
    assert [k["status"] for k in children(engine)] == ["FAILED", "ABORTED", "ABORTED"]


# -- concurrency ----------------------------------------------------------------------------------

def test_max_concurrency_is_respected(tmp_path):
    # MaxConcurrency caps the children running at once; every child still runs.
    peak = []
    engine = make(tmp_path, "sqlite")

    def work(x):
        running = [r for r in engine.store.list_executions(None, "RUNNING") if r.get("parent")]
        peak.append(len(running))
        return x

    engine.resources.update({"Work": work})
    states = {"T": {"Type": "Task", "Resource": "Work", "Next": "W"},
              "W": {"Type": "Wait", "Seconds": 5, "End": True}}
    row = execute(engine, processor_machine(states, "T", ItemsPath="$", MaxConcurrency=3), list(range(12)))
    assert row["status"] == "SUCCEEDED" and json.loads(row["output"]) == list(range(12))
    assert len(peak) == 12 and max(peak) == 3


# -- recovery -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rounds", [1, 3, 7, 20])
def test_recovery_on_a_second_engine(tmp_path, rounds):
    # A crash between steps: a second engine on the same database finishes the map run, starts
    # no child twice, and the result files hold every child exactly once.
    import statelang.runtime.map_run as maprun
    old = maprun.CHUNK_ENTRIES
    maprun.CHUNK_ENTRIES = 4   # some results in chunk files, some only in memory when the first engine stops
    try:
        first = make(tmp_path, "sqlite")
        d = machine({"P": {"Type": "Pass", "Parameters": {"n.$": "$"}, "End": True}}, ItemsPath="$",
                    MaxConcurrency=5, ResultWriter={"Resource": "arn:aws:states:::s3:putObject",
                                                    "Parameters": {"Bucket": "out", "Prefix": "r"}})
        row = execute(first, d, list(range(23)), rounds=rounds)
        assert row["status"] == "RUNNING"
        second = make(tmp_path, "sqlite")
        second.run_until_idle()
        row = second.store.get_execution(row["executionArn"])
    finally:
        maprun.CHUNK_ENTRIES = old
    assert row["status"] == "SUCCEEDED", row
    kids = children(second)
    assert [k["parent"]["index"] for k in kids] == list(range(23))
    for k in kids:
        types = [e["type"] for e in second.store.history(k["executionArn"])]
        assert types.count("ExecutionStarted") == 1 and types[-1] == "ExecutionSucceeded"
    manifest_key = json.loads(row["output"])["ResultWriterDetails"]["Key"]
    manifest = json.loads((tmp_path / "s3" / "out" / manifest_key).read_text())
    entries = [e for f in manifest["ResultFiles"]["SUCCEEDED"]
               for e in json.loads((tmp_path / "s3" / "out" / f["Key"]).read_text())]
    assert sorted(json.loads(e["Output"])["n"] for e in entries) == list(range(23))


def test_recovery_without_writer_keeps_index_order(tmp_path):
    first = make(tmp_path, "sqlite")
    d = machine({"P": {"Type": "Pass", "Parameters": {"n.$": "$"}, "End": True}}, ItemsPath="$", MaxConcurrency=4)
    row = execute(first, d, list(range(10)), rounds=5)
    second = make(tmp_path, "sqlite")
    second.run_until_idle()
    row = second.store.get_execution(row["executionArn"])
    assert row["status"] == "SUCCEEDED" and json.loads(row["output"]) == [{"n": i} for i in range(10)]
