"""``python -m bench``: every shape through statelang (memory, SQLite) and moto, one table.

Each runner runs in a process of its own (`RunnerProcess`), and their rounds interleave (a sample
of each runner in turn, shape by shape), so that a ratio compares samples taken under the same
machine state: this shared machine's speed drifts by 10-20% over minutes, and runners measured
one after the other moved their ratios with it. Their own processes keep their heaps apart (in
one process the peer's heap made statelang's b3 ~25% slower) and give each its own peak RSS. The
ratios statelang/moto are the point, not the absolute numbers.

Method, per runner and shape:
  * one verification run (also the warm-up, excluded from the figures): status SUCCEEDED, the
    number of ``…StateEntered`` events equals expected_states.json, and the output is kept to
    compare across runners;
  * ``repeat`` samples (the peer: ``peer_repeat``), taken in rounds that visit every runner in
    turn; a sample of any runner, the peer's too, runs executions back to back until it lasted
    ``min_sample`` seconds (at least one). Transitions/s of a sample = executions x expected
    states / seconds; the figure is the median of the samples.
  * b6 also reports executions/s (same samples, one closed-loop client) and the start-to-finish
    latency p50/p99 over every timed execution.
  * durable executions (``bench_durable``): b6 and a 5-Task machine (a commit per step) through
    ``Engine(db=...).client()`` beside DBOS's 5-step workflow, on SQLite and on PostgreSQL with
    synchronous_commit on, 1 and 4 client threads; "DBOS not installed" without it.
  * peak RSS: each runner's process's own peak (VmHWM) once every shape has run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
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


def verify(runner: Any, shape: Shape) -> dict:
    """The verification run: status, StateEntered count and output, or the reason it failed."""
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
    elif entered is not None and entered != shape.expected_states:
        result["error"] = f"{entered} StateEntered events, expected {shape.expected_states}"
    return result


class Samples:
    """One runner's timed samples of one shape."""

    def __init__(self) -> None:
        self.seconds: list[tuple[int, float]] = []   # (executions, seconds) per sample
        self.latencies: list[float] = []
        self.spent = 0.0
        self.error: str | None = None

    def take(self, runner: Any, shape: Shape, min_sample: float) -> None:
        begin = time.perf_counter()
        count, elapsed = 0, 0.0
        while count == 0 or elapsed < min_sample:
            outcome = runner.run(shape)
            if outcome.status != "SUCCEEDED":
                self.error = f"status {outcome.status} in a timed run"
                return
            count += 1
            elapsed += outcome.seconds
            self.latencies.append(outcome.seconds)
        self.add(count, elapsed, time.perf_counter() - begin)

    def add(self, count: int, elapsed: float, spent: float, latencies: list[float] | None = None) -> None:
        self.seconds.append((count, elapsed))
        self.spent += spent
        if latencies is not None:
            self.latencies.extend(latencies)

    def figures(self, shape: Shape) -> dict:
        if self.error is not None:
            return {"error": self.error}
        result: dict[str, Any] = {
            "transitions_per_second": statistics.median(n * shape.expected_states / t for n, t in self.seconds),
            "samples": len(self.seconds),
            "executions": len(self.latencies),
        }
        if shape.name == LATENCY_SHAPE:
            result.update(
                executions_per_second=statistics.median(n / t for n, t in self.seconds),
                latency_p50_ms=_percentile(self.latencies, 0.50) * 1000,
                latency_p99_ms=_percentile(self.latencies, 0.99) * 1000,
            )
        return result


class LocalRunner:
    """A runner in this process, asked as a `RunnerProcess` is asked (the tests' stand-ins)."""

    def __init__(self, runner: Any):
        self.runner = runner

    def verify(self, shape: Shape) -> dict:
        return verify(self.runner, shape)

    def sample(self, samples: Samples, shape: Shape, min_sample: float) -> None:
        samples.take(self.runner, shape, min_sample)


def measure(runner: Any, shape: Shape, repeat: int, min_sample: float, budget: float) -> dict:
    """Verify then time one shape on one runner in this process, through the harness's own rounds;
    returns the figures or the reason there are none."""
    options = argparse.Namespace(repeat=repeat, peer_repeat=repeat, min_sample=min_sample,
                                 latency_sample=min_sample, budget=budget)
    report: dict[str, Any] = {"runners": {"statelang": {"shapes": {}}}}
    _interleaved(shape, [("statelang", "statelang", LocalRunner(runner))], report, options, log=lambda _: None)
    return report["runners"]["statelang"]["shapes"][shape.name]


def _runner_factories(include_peer: bool) -> list[tuple[str, str, Any]]:
    """(key, label, factory) in the order each round visits them."""
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
    """Run every runner over every shape, their samples interleaved; returns the figures as a
    JSON-able dict."""
    report: dict[str, Any] = {
        "environment": _environment(),
        "options": {
            "shapes": [s.name for s in shapes],
            "repeat": options.repeat,
            "peer_repeat": options.peer_repeat,
            "quick": options.quick,
            "interleaved": True,
        },
        "runners": {},
    }
    runners: list[tuple[str, str, Any]] = []
    with contextlib.ExitStack() as stack:
        for key, label, _ in _runner_factories(not options.no_peer):
            entry: dict[str, Any] = {"label": label, "shapes": {}}
            report["runners"][key] = entry
            try:
                runners.append((key, label, stack.enter_context(RunnerProcess(key, shapes))))
            except RunnerProcessError as error:
                entry["skipped"] = str(error)
                log(f"[{label}] skipped: {entry['skipped']}")
        for shape in shapes:
            _interleaved(shape, runners, report, options, log)
        for key, _, runner in runners:
            report["runners"][key]["peak_rss_mib"] = runner.peak_rss_mib()
            report["runners"][key]["pid"] = runner.pid
    _compare_outputs(report)
    return report


@dataclass
class _Lane:
    """One runner's part in one shape's rounds."""

    key: str
    label: str
    runner: Any
    wanted: int            # samples to take
    min_sample: float      # seconds a sample lasts at least
    samples: Samples = field(default_factory=Samples)


def _interleaved(shape: Shape, runners: list, report: dict, options: argparse.Namespace, log) -> None:
    """One shape: each runner verified, then rounds of one sample per runner in turn, until each
    has its samples (statelang `repeat`, moto `peer_repeat`) or has spent its budget."""
    lanes = []
    # Every runner's sample lasts at least as long (one execution at least): the peer's b6 takes
    # ~6 ms, and one execution a sample made its figure the median of three executions.
    min_sample = options.latency_sample if shape.name == LATENCY_SHAPE else options.min_sample
    for key, label, runner in runners:
        figures = runner.verify(shape)
        report["runners"][key]["shapes"][shape.name] = figures
        if "error" in figures:
            log(f"[{label}] {shape.name}: ERROR {figures['error']}")
        else:
            lanes.append(_Lane(key, label, runner, options.peer_repeat if key == "moto" else options.repeat,
                               min_sample))
    for round_ in range(max((lane.wanted for lane in lanes), default=0)):
        for lane in lanes:
            s = lane.samples
            if round_ < lane.wanted and s.error is None and (round_ == 0 or s.spent <= options.budget):
                lane.runner.sample(s, shape, lane.min_sample)
    for lane in lanes:
        figures = report["runners"][lane.key]["shapes"][shape.name]
        figures.update(lane.samples.figures(shape))
        if "error" in figures:
            log(f"[{lane.label}] {shape.name}: ERROR {figures['error']}")
        else:
            log(f"[{lane.label}] {shape.name}: {figures['transitions_per_second']:,.0f} transitions/s "
                f"({figures['executions']} executions, {lane.samples.spent:.1f} s)")


class RunnerProcessError(Exception):
    """A runner's process could not start, or its runner could not be made."""


class RunnerProcess:
    """A runner in a process of its own (``python -m bench --runner-process KEY``), asked for one
    verification or one sample at a time over a pipe. Each runner thus keeps its own heap (the
    peer's 250,000 objects made statelang's b3 ~25% slower when they shared one process) and its
    own peak RSS, while the rounds of all runners still interleave in time."""

    def __init__(self, key: str, shapes: list[Shape]):
        import subprocess
        self.key = key
        self._shapes = {shape.name: shape for shape in shapes}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "--runner-process", key, "--shapes", ",".join(self._shapes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
        ready = self._ask({"op": "ready"})
        if "error" in ready:
            self.__exit__()
            raise RunnerProcessError(ready["error"])
        self.pid = ready["pid"]

    def __enter__(self) -> RunnerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(60)
            except Exception:  # noqa: BLE001 - a runner that will not stop is killed
                self._proc.kill()

    def _ask(self, request: dict) -> dict:
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except OSError as error:
            return {"error": f"runner process {self.key}: {error}"}
        if not line:
            return {"error": f"runner process {self.key} ended (exit status {self._proc.wait()})"}
        return json.loads(line)

    def verify(self, shape: Shape) -> dict:
        return self._ask({"op": "verify", "shape": shape.name})

    def sample(self, samples: Samples, shape: Shape, min_sample: float) -> None:
        answer = self._ask({"op": "sample", "shape": shape.name, "min_sample": min_sample})
        if answer.get("error"):
            samples.error = answer["error"]
        else:
            samples.add(answer["executions"], answer["elapsed"], answer["spent"], answer["latencies"])

    def peak_rss_mib(self) -> float | None:
        return self._ask({"op": "rss"}).get("peak_rss_mib")


def _serve_runner(key: str, shapes: list[Shape]) -> int:
    """The runner process's side: one JSON request per line on stdin, one answer per line."""
    answers = sys.stdout
    sys.stdout = sys.stderr   # whatever a runner prints stays out of the answers
    by_name = {shape.name: shape for shape in shapes}

    def answer(payload: dict) -> None:
        answers.write(json.dumps(payload, default=str) + "\n")
        answers.flush()

    factory = next((f for name, _, f in _runner_factories(include_peer=key == "moto") if name == key), None)
    try:
        if factory is None:
            raise RunnerProcessError(f"no runner {key!r}")
        runner = factory()
        runner.__enter__()
    except Exception as error:  # noqa: BLE001 - told to the parent, which reports the runner skipped
        for _ in sys.stdin:
            answer({"error": f"{type(error).__name__}: {error}"})
        return 0
    try:
        for line in sys.stdin:
            request = json.loads(line)
            op = request["op"]
            if op == "ready":
                answer({"pid": os.getpid()})
            elif op == "verify":
                answer(verify(runner, by_name[request["shape"]]))
            elif op == "sample":
                samples = Samples()
                samples.take(runner, by_name[request["shape"]], request["min_sample"])
                count, elapsed = samples.seconds[-1] if samples.seconds else (0, 0.0)
                answer({"error": samples.error, "executions": count, "elapsed": elapsed,
                        "spent": samples.spent, "latencies": samples.latencies})
            elif op == "rss":
                answer({"peak_rss_mib": round(_own_peak_rss_mib(), 1)})
    finally:
        runner.__exit__(None, None, None)
    return 0


def _own_peak_rss_mib() -> float:
    """This process's own peak: Linux's VmHWM, which starts afresh at exec, where ``ru_maxrss``
    keeps the peak of the process that forked it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024   # kB
    except OSError:
        pass
    return _peak_rss_mib()


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
    parser.add_argument("--runner-process", metavar="RUNNER", help=argparse.SUPPRESS)   # see RunnerProcess
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
    if options.runner_process:
        return _serve_runner(options.runner_process, shapes)
    report = run_all(shapes, options, log=lambda text: print(text, file=sys.stderr, flush=True))
    print(format_table(report))
    from . import bench_patterns

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
