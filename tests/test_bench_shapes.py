"""The benchmark shapes are correct before they are fast.

Every shape must succeed through statelang with exactly the number of ``…StateEntered`` events
expected_states.json pins (the unit the benchmark divides by), and give the same output as moto,
the peer it is compared with. No timing is asserted here: speed is the benchmark's business.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is not an installed package; make the repository root importable under plain `pytest` too.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import statelang  # noqa: E402
from bench.__main__ import format_table, measure, parse_args  # noqa: E402
from bench.shapes import HANDLERS, SHAPE_NAMES, count_state_entered, load, load_all  # noqa: E402
from bench.statelang_runner import RunResult  # noqa: E402


def test_every_shape_has_machine_input_and_expected_count():
    shapes = load_all()
    assert [s.name for s in shapes] == list(SHAPE_NAMES)
    for shape in shapes:
        assert shape.definition["StartAt"] in shape.definition["States"]
        assert shape.expected_states > 0


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_shape_succeeds_with_expected_state_count(name):
    shape = load(name)
    execution = statelang.run(shape.definition, shape.input, handlers=HANDLERS, clock="virtual")
    assert execution.status == "SUCCEEDED", execution
    assert count_state_entered(execution.history) == shape.expected_states


@pytest.fixture(scope="module")
def moto_outputs():
    """One moto execution per shape, shared: moto spends seconds on the large shapes."""
    pytest.importorskip("moto")
    from bench.peer_moto import MotoPeer

    outputs = {}
    with MotoPeer() as peer:
        for shape in load_all():
            result = peer.run(shape, with_history=True)
            outputs[shape.name] = (result.status, result.output, count_state_entered(result.history))
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_shape_output_matches_moto(name, moto_outputs):
    shape = load(name)
    status, output, entered = moto_outputs[name]
    assert status == "SUCCEEDED"
    assert entered == shape.expected_states
    execution = statelang.run(shape.definition, shape.input, handlers=HANDLERS, clock="virtual")
    assert execution.output == output


class _FakeRunner:
    """Stands in for a runner so the harness's bookkeeping is tested without timing anything."""

    def __init__(self, entered: int, status: str = "SUCCEEDED"):
        self.entered = entered
        self.status = status
        self.calls = 0

    def run(self, shape, *, with_history=False):
        self.calls += 1
        history = [{"type": "PassStateEntered"}] * self.entered if with_history else None
        return RunResult(self.status, {"ok": True}, 0.01, history)


def test_harness_reports_rates_and_latency_for_b6():
    shape = load("b6")
    figures = measure(_FakeRunner(shape.expected_states), shape, repeat=3, min_sample=0.0, budget=60)
    assert "error" not in figures
    assert figures["samples"] == 3 and figures["executions"] == 3
    assert figures["transitions_per_second"] == pytest.approx(shape.expected_states / 0.01)
    assert figures["executions_per_second"] == pytest.approx(100)
    assert figures["latency_p50_ms"] == pytest.approx(10)


def test_harness_refuses_a_wrong_state_count_and_a_failed_status():
    shape = load("b1")
    assert "expected 100" in measure(_FakeRunner(99), shape, 3, 0.0, 60)["error"]
    assert "FAILED" in measure(_FakeRunner(100, "FAILED"), shape, 3, 0.0, 60)["error"]


def test_table_shows_ratio_and_skipped_runner():
    options = parse_args(["--shapes", "b1", "--quick"])
    report = {
        "options": {"shapes": ["b1"], "repeat": 3, "peer_repeat": 1, "quick": True},
        "runners": {
            "statelang": {"label": "statelang (memory)", "peak_rss_mib": 50,
                          "shapes": {"b1": {"transitions_per_second": 20000.0, "output": 1,
                                            "same_output_as_moto": True}}},
            "statelang_sqlite": {"label": "statelang (SQLite)", "skipped": "not there yet", "shapes": {}},
            "moto": {"label": "moto", "peak_rss_mib": 200,
                     "shapes": {"b1": {"transitions_per_second": 200.0, "output": 1}}},
        },
    }
    table = format_table(report)
    assert options.repeat == 3
    assert "100.0x" in table
    assert "statelang (SQLite) skipped: not there yet" in table


def test_rounds_interleave_the_runners_sample_by_sample():
    """Each round takes one sample of every runner in turn (statelang `repeat`, the peer
    `peer_repeat` samples), so that a ratio compares samples taken under the same machine state."""
    from bench.__main__ import _interleaved

    order = []
    lengths: dict[str, set] = {}

    class Lane:
        def __init__(self, key):
            self.key = key

        def verify(self, shape):
            return {"status": "SUCCEEDED", "state_entered": shape.expected_states, "output": 1}

        def sample(self, samples, shape, min_sample):
            order.append(self.key)
            lengths.setdefault(self.key, set()).add(min_sample)
            samples.add(1, 0.01, 0.01, [0.01])

    options = parse_args(["--shapes", "b1", "--repeat", "3", "--peer-repeat", "2"])
    report = {"runners": {k: {"shapes": {}} for k in ("statelang", "statelang_sqlite", "moto")}}
    _interleaved(load("b1"), [(k, k, Lane(k)) for k in ("statelang", "statelang_sqlite", "moto")],
                 report, options, log=lambda _: None)
    assert order == ["statelang", "statelang_sqlite", "moto"] * 2 + ["statelang", "statelang_sqlite"]
    assert report["runners"]["moto"]["shapes"]["b1"]["samples"] == 2
    assert report["runners"]["statelang"]["shapes"]["b1"]["transitions_per_second"] == pytest.approx(100 / 0.01)
    # the peer's samples last as long as statelang's: a fast shape gets more than one execution each
    assert lengths == {k: {options.min_sample} for k in ("statelang", "statelang_sqlite", "moto")}


def test_each_runner_runs_in_a_process_of_its_own():
    """The runners keep their own heaps and their own peak RSS: one process each, not this one."""
    import os

    from bench.__main__ import run_all

    options = parse_args(["--shapes", "b6", "--quick", "--no-peer", "--min-sample", "0.01"])
    report = run_all(load_all(["b6"]), options, log=lambda _: None)
    pids = set()
    for key in ("statelang", "statelang_sqlite"):
        entry = report["runners"][key]
        figures = entry["shapes"]["b6"]
        assert "error" not in figures
        assert figures["state_entered"] == load("b6").expected_states and figures["samples"] == 3
        assert 0 < entry["peak_rss_mib"] < 1000
        pids.add(entry["pid"])
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_runner_that_cannot_start_is_refused_by_name():
    from bench.__main__ import RunnerProcess, RunnerProcessError

    with pytest.raises(RunnerProcessError, match="no runner 'nope'"):
        RunnerProcess("nope", load_all(["b6"]))
