"""CCS emergency workflow: end-to-end latency on SQLite, against the seed's goal of under 2 s.

Each run starts one emergency execution (a high-priority event: incident record, the parallel
alerts to authorities and owner and the camera start, the incident update, the completion log)
and drives it to SUCCEEDED on the wall clock, with the workflow history and the services' tables
in SQLite files. The latency is from the start request to the execution's end as a caller sees it.

    python -m bench.bench_ccs [--runs 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from statelang.workflows.api import open_system, start_workflow

GOAL_SECONDS = 2.0


def measure(runs: int, directory: Path) -> list[float]:
    system = open_system(f"sqlite:///{directory / 'flows.db'}", f"sqlite:///{directory / 'domain.db'}",
                         clock="real", bus=False)
    engine = system.engine
    kinds = ["panic_button", "accident", "hijack", "harsh_braking"]
    latencies = []
    try:
        for i in range(runs):
            event = {"vehicleId": f"VEH-{i:05d}", "type": kinds[i % len(kinds)], "severity": "critical",
                     "location": {"lat": 4.6097, "lon": -74.0817}, "eventTimestamp": 1698765432000 + i}
            t0 = time.perf_counter()
            started = start_workflow(engine, "CCS_EMERGENCY", event)
            row = engine.wait(started["executionArn"], timeout=30)
            latencies.append(time.perf_counter() - t0)
            if row["status"] != "SUCCEEDED":
                raise SystemExit(f"run {i} ended {row['status']}: {row.get('error')} {row.get('cause')}")
    finally:
        engine.close()
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        latencies = measure(args.runs, Path(tmp))
    result = {"runs": len(latencies), "p50_ms": percentile(latencies, 50) * 1000,
              "p99_ms": percentile(latencies, 99) * 1000, "mean_ms": statistics.fmean(latencies) * 1000,
              "max_ms": max(latencies) * 1000}
    ok = result["p99_ms"] / 1000 < GOAL_SECONDS
    print(f"CCS emergency workflow on SQLite, {result['runs']} runs: p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms, mean {result['mean_ms']:.1f} ms, max {result['max_ms']:.1f} ms "
          f"-> {'within' if ok else 'OUTSIDE'} the {GOAL_SECONDS:.0f} s goal")
    return result


if __name__ == "__main__":
    main()
