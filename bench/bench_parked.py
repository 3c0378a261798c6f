"""10,000 executions parked on a Wait: memory while they wait, and the time to fire them all.

    python -m bench.bench_parked [--count 10000] [--db sqlite|memory]

A parked execution holds no thread and, on a SQL store, no memory: it is an execution row, its
frames and one timer message. The virtual clock then jumps past the wait and one worker fires
every timer and finishes every execution.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import statelang

MACHINE = {"StartAt": "Park", "States": {
    "Park": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
    "Done": {"Type": "Pass", "Result": {"woke": True}, "ResultPath": "$.r", "End": True}}}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--db", choices=["sqlite", "memory"], default="sqlite")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="statelang-parked-")
    db = f"sqlite:///{tmp}/parked.db?synchronous=normal" if args.db == "sqlite" else "memory"
    rss0 = rss_mib()
    engine = statelang.Engine(db=db, clock="virtual")
    sm = "arn:aws:states:us-east-1:123456789012:stateMachine:parked"
    text = json.dumps(MACHINE)
    t0 = time.perf_counter()
    arns = []
    for i in range(args.count):
        arn = f"arn:aws:states:us-east-1:123456789012:execution:parked:e{i}"
        engine.start(text, {"i": i}, arn=arn, name=f"e{i}", state_machine_arn=sm)
        arns.append(arn)
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Run every start up to its Wait without letting the clock move past it.
    now = engine.clock.now()
    while True:
        batch = engine.store.claim(engine.worker_id, now, 60, 256)
        if not batch:
            break
        for arn in batch:
            engine.process(arn)
    t_park = time.perf_counter() - t0
    parked = sum(1 for a in arns[:100] if engine.store.get_execution(a)["status"] == "RUNNING")
    rss_parked = rss_mib()
    t0 = time.perf_counter()
    engine.run_until_idle()           # jumps the virtual clock an hour ahead and fires every timer
    t_fire = time.perf_counter() - t0
    done = sum(1 for a in arns if engine.store.get_execution(a)["status"] == "SUCCEEDED")
    out = {"count": args.count, "db": args.db, "start_s": round(t_start, 2), "park_s": round(t_park, 2),
           "parked_sample_running": parked, "rss_before_mib": round(rss0), "rss_parked_mib": round(rss_parked),
           "fire_all_s": round(t_fire, 2), "fired_per_s": round(args.count / t_fire), "succeeded": done}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
