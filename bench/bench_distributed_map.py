"""``python -m bench.bench_distributed_map --items 100000``: one large distributed Map, end to end.

The parent reads its items from a JSON file (ItemReader), runs one child execution per item of a
one-state Pass processor, and exports the results with a ResultWriter. Reported per store: wall
time from StartExecution to the parent's end, children per second, and the process's peak RSS
(``ru_maxrss`` only grows, so the SQLite run goes first and the memory store's figure is the
peak of the process so far). The point of the figure is that a ResultWriter keeps memory bounded
on a durable store: results go to chunk files as they arrive, not to a list.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from statelang import Engine

ACCOUNT = "123456789012"
SM = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:bench"


def definition(max_concurrency: int) -> dict:
    return {"StartAt": "Fan", "States": {"Fan": {
        "Type": "Map", "MaxConcurrency": max_concurrency,
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                       "Parameters": {"Bucket": "bench", "Key": "items.json"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                         "Parameters": {"Bucket": "bench", "Prefix": "out"}},
        "End": True}}}


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run_once(db: str, items: int, max_concurrency: int, work: Path) -> dict:
    root = work / "s3"
    (root / "bench").mkdir(parents=True, exist_ok=True)
    (root / "bench" / "items.json").write_text(json.dumps([{"n": i} for i in range(items)]))
    engine = Engine(db=db, clock="virtual")
    engine.s3_root = str(root)
    started = time.perf_counter()
    run = engine.start(definition(max_concurrency), {}, arn=f"arn:aws:states:us-east-1:{ACCOUNT}:execution:bench:b",
                       name="b", state_machine_arn=SM)
    engine.run_until_idle()
    wall = time.perf_counter() - started
    rss = peak_rss_mb()   # before the check below, which loads the result files whole
    row = engine.store.get_execution(run.arn)
    out = json.loads(row["output"]) if row["output"] else None
    manifest = json.loads((root / "bench" / out["ResultWriterDetails"]["Key"]).read_text()) if out else {}
    written = 0
    for f in manifest.get("ResultFiles", {}).get("SUCCEEDED", []):
        written += len(json.loads((root / "bench" / f["Key"]).read_text()))
    return {"status": row["status"], "items": items, "written": written, "wall_s": round(wall, 1),
            "children_per_s": round(items / wall), "peak_rss_mb": round(rss, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--max-concurrency", type=int, default=1000,
                    help="children running at once (0: AWS's default, 10,000)")
    ap.add_argument("--stores", default="sqlite,memory")
    args = ap.parse_args(argv)
    print(f"{args.items} items, MaxConcurrency {args.max_concurrency}, Python {sys.version.split()[0]}")
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            db = f"sqlite:///{work}/bench.db" if store == "sqlite" else "memory"
            result = run_once(db, args.items, args.max_concurrency, work)
            print(json.dumps({"store": store, **result}), flush=True)


if __name__ == "__main__":
    main()
