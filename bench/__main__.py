"""``python -m bench``: every shape through statelang (memory, SQLite) and moto, one table.

All runners run in this one process, one after the other, so they share the machine's state and
the figures are comparable; the ratios statelang/moto are the point, not the absolute numbers.

Method, per runner and shape:
  * one verification run (also the warm-up, excluded from the figures): status SUCCEEDED, the
    number of ``…StateEntered`` events equals expected_states.json, and the output is kept to
    compare across runners;
  * ``repeat`` samples; a sample runs executions back to back until it lasted ``min_sample``
    seconds (at least one). Transitions/s of a sample = executions x expected states / seconds;
    the figure is the median of the samples.
  * b6 also reports executions/s (same samples, one closed-loop client) and the start-to-finish
    latency p50/p99 over every timed execution.
  * durable executions (``bench_durable``): b6 and a 5-Task machine (a commit per step) through
    ``Engine(db=...).client()`` beside DBOS's 5-step workflow, on SQLite and on PostgreSQL with
    synchronous_commit on, 1 and 4 client threads; "DBOS not installed" without it.
  * peak RSS: ``ru_maxrss`` only ever grows, so it is read after each runner's phase, runners run
    lightest first, and moto (with boto3) is imported only in its own phase. The statelang figure
    is thus its own peak; the SQLite and moto figures are peaks of the process so far.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from importlib import metadata
from typing import Any

from .shapes import SHAPE_NAMES, Shape, count_state_entered, load_all

LATENCY_SHAPE = "b6"


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: with few samples it reports an observed value, not an invention."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(runner: Any, shape: Shape, repeat: int, min_sample: float, budget: float) -> dict:
    """Verify then time one shape on one runner; returns the figures or the reason there are none."""
    try:
        check = runner.run(shape, with_history=True)
    except Exception as error:  # a runner that cannot run a shape is reported, not fatal
        return {"error": f"{type(error).__name__}: {error}"}
    entered = count_state_entered(check.history) if check.history is not None else None
    result: dict[str, Any] = {
        "status": check.status,
        "state_entered": entered,
        "expected_states": shape.expected_states,
        "output": check.output,
    }
    if check.status != "SUCCEEDED":
        result["error"] = f"status {check.status}"
        return result
    if entered is not None and entered != shape.expected_states:
        result["error"] = f"{entered} StateEntered events, expected {shape.expected_states}"
        return result

    rates: list[float] = []
    executions_per_second: list[float] = []
    latencies: list[float] = []
    phase_start = time.perf_counter()
    for _ in range(repeat):
        count = 0
        elapsed = 0.0
        while count == 0 or elapsed < min_sample:
            outcome = runner.run(shape)
            if outcome.status != "SUCCEEDED":
                result["error"] = f"status {outcome.status} in a timed run"
                return result
            count += 1
            elapsed += outcome.seconds
            latencies.append(outcome.seconds)
        rates.append(count * shape.expected_states / elapsed)
        executions_per_second.append(count / elapsed)
        if time.perf_counter() - phase_start > budget and len(rates) >= 1:
            break
    result.update(
        transitions_per_second=statistics.median(rates),
        samples=len(rates),
        executions=len(latencies),
    )
    if shape.name == LATENCY_SHAPE:
        result.update(
            executions_per_second=statistics.median(executions_per_second),
            latency_p50_ms=_percentile(latencies, 0.50) * 1000,
            latency_p99_ms=_percentile(latencies, 0.99) * 1000,
        )
    return result


def _runner_factories(include_peer: bool) -> list[tuple[str, str, Any]]:
    """(key, label, factory) in the order they run: lightest first, for the RSS reading."""
    from .statelang_runner import MemoryRunner, SqliteRunner

    factories: list[tuple[str, str, Any]] = [
        (MemoryRunner.name, MemoryRunner.label, MemoryRunner),
        (SqliteRunner.name, SqliteRunner.label, SqliteRunner),
    ]
    if include_peer:
        def moto_factory():
            from .peer_moto import MotoPeer

            return MotoPeer()

        factories.append(("moto", "moto", moto_factory))
    return factories


def run_all(shapes: list[Shape], options: argparse.Namespace, log=print) -> dict:
    """Run every runner over every shape; returns the figures as a JSON-able dict."""
    report: dict[str, Any] = {
        "environment": _environment(),
        "options": {
            "shapes": [s.name for s in shapes],
            "repeat": options.repeat,
            "peer_repeat": options.peer_repeat,
            "quick": options.quick,
        },
        "runners": {},
    }
    for key, label, factory in _runner_factories(not options.no_peer):
        is_peer = key == "moto"
        repeat = options.peer_repeat if is_peer else options.repeat
        min_sample = (0.0 if is_peer else options.min_sample)
        entry: dict[str, Any] = {"label": label, "shapes": {}}
        report["runners"][key] = entry
        log(f"[{label}] starting")
        try:
            runner = factory()
        except Exception as error:
            entry["skipped"] = f"{type(error).__name__}: {error}"
            log(f"[{label}] skipped: {entry['skipped']}")
            continue
        with runner:
            for shape in shapes:
                sample = options.latency_sample if shape.name == LATENCY_SHAPE else min_sample
                begin = time.perf_counter()
                figures = measure(runner, shape, repeat, sample, options.budget)
                entry["shapes"][shape.name] = figures
                took = time.perf_counter() - begin
                if "error" in figures:
                    log(f"[{label}] {shape.name}: ERROR {figures['error']} ({took:.1f} s)")
                else:
                    log(f"[{label}] {shape.name}: {figures['transitions_per_second']:,.0f} transitions/s "
                        f"({figures['executions']} executions, {took:.1f} s)")
        entry["peak_rss_mib"] = round(_peak_rss_mib(), 1)
    _compare_outputs(report)
    return report


def _compare_outputs(report: dict) -> None:
    """Mark, per shape, whether each statelang runner's output equals moto's."""
    peer = report["runners"].get("moto", {}).get("shapes", {})
    for key, entry in report["runners"].items():
        if key == "moto":
            continue
        for name, figures in entry.get("shapes", {}).items():
            theirs = peer.get(name)
            if theirs and "output" in theirs and "output" in figures:
                figures["same_output_as_moto"] = figures["output"] == theirs["output"]


def _environment() -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "moto": version("moto"),
        "statelang": version("statelang"),
    }


def _cell(figures: dict | None, field: str, fmt: str) -> str:
    if figures is None:
        return "-"
    if "error" in figures:
        return "error"
    value = figures.get(field)
    return "-" if value is None else format(value, fmt)


def _ratio(ours: dict | None, theirs: dict | None, field: str) -> str:
    if not ours or not theirs or ours.get(field) is None or theirs.get(field) in (None, 0):
        return "-"
    return f"{ours[field] / theirs[field]:,.1f}x"


def format_table(report: dict) -> str:
    """The side-by-side table: transitions/s per runner and the ratios statelang/moto."""
    runners = report["runners"]
    mem = runners.get("statelang", {}).get("shapes", {})
    sql = runners.get("statelang_sqlite", {}).get("shapes", {})
    moto = runners.get("moto", {}).get("shapes", {})
    rows = [("shape", "statelang mem", "statelang sqlite", "moto", "mem/moto", "sqlite/moto", "same output")]
    for name in report["options"]["shapes"]:
        same = [f.get("same_output_as_moto") for f in (mem.get(name), sql.get(name)) if f]
        same_text = "-" if not same or None in same else ("yes" if all(same) else "NO")
        rows.append((
            name,
            _cell(mem.get(name), "transitions_per_second", ",.0f"),
            _cell(sql.get(name), "transitions_per_second", ",.0f"),
            _cell(moto.get(name), "transitions_per_second", ",.0f"),
            _ratio(mem.get(name), moto.get(name), "transitions_per_second"),
            _ratio(sql.get(name), moto.get(name), "transitions_per_second"),
            same_text,
        ))
    if LATENCY_SHAPE in report["options"]["shapes"]:
        m, s, p = mem.get(LATENCY_SHAPE), sql.get(LATENCY_SHAPE), moto.get(LATENCY_SHAPE)
        rows.append((f"{LATENCY_SHAPE} exec/s", _cell(m, "executions_per_second", ",.0f"),
                     _cell(s, "executions_per_second", ",.0f"), _cell(p, "executions_per_second", ",.0f"),
                     _ratio(m, p, "executions_per_second"), _ratio(s, p, "executions_per_second"), ""))
        for field, title in (("latency_p50_ms", "p50 ms"), ("latency_p99_ms", "p99 ms")):
            rows.append((f"{LATENCY_SHAPE} {title}", _cell(m, field, ",.3f"), _cell(s, field, ",.3f"),
                         _cell(p, field, ",.3f"), _ratio(p, m, field), _ratio(p, s, field), ""))
    rows.append(tuple(["peak RSS MiB"] + [
        _rss(runners.get(key)) for key in ("statelang", "statelang_sqlite", "moto")] + ["", "", ""]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = ["transitions/s: ...StateEntered events per second, median of samples; "
             "latency ratios are moto/statelang (higher = statelang faster)."]
    for entry in runners.values():
        if "skipped" in entry:
            notes.append(f"{entry['label']} skipped: {entry['skipped']}")
        for name, figures in entry.get("shapes", {}).items():
            if "error" in figures:
                notes.append(f"{entry['label']} {name}: {figures['error']}")
    return "\n".join(lines + [""] + notes)


def _rss(entry: dict | None) -> str:
    if not entry or "peak_rss_mib" not in entry:
        return "-"
    return f"{entry['peak_rss_mib']:,.0f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPE_NAMES),
                        help="comma-separated shape names (default: all)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="samples per shape for statelang (default 7, quick 3)")
    parser.add_argument("--peer-repeat", type=int, default=None,
                        help="samples per shape for moto, which is slow (default 3, quick 1)")
    parser.add_argument("--min-sample", type=float, default=None,
                        help="seconds a statelang sample lasts at least (default 0.2, quick 0.05)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter samples")
    parser.add_argument("--no-peer", action="store_true", help="statelang only")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    options = parser.parse_args(argv)
    options.repeat = options.repeat or (3 if options.quick else 7)
    options.peer_repeat = options.peer_repeat or (1 if options.quick else 3)
    options.min_sample = options.min_sample if options.min_sample is not None else (
        0.05 if options.quick else 0.2)
    options.latency_sample = 0.2 if options.quick else 0.5  # enough b6 executions for a p99
    options.budget = 10.0 if options.quick else 30.0  # seconds of timed samples per runner and shape
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    shapes = load_all([name.strip() for name in options.shapes.split(",") if name.strip()])
    report = run_all(shapes, options, log=lambda text: print(text, file=sys.stderr, flush=True))
    print(format_table(report))
    from . import bench_patterns  # after the runners: its imports stay out of their RSS figures

    report["event_patterns"] = bench_patterns.run(rounds=options.peer_repeat, with_moto=not options.no_peer)
    print(bench_patterns.summary(report["event_patterns"]))
    from . import bench_durable  # DBOS side by side when it is installed, a note when it is not

    report["durable"] = bench_durable.run(rounds=3 if options.quick else 5,
                                          per_thread=20 if options.quick else 60,
                                          log=lambda text: print(text, file=sys.stderr, flush=True))
    print(bench_durable.summary(report["durable"]))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(report, handle, indent=1, default=str)
    failed = any("error" in f for e in report["runners"].values() for f in e.get("shapes", {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
