"""Event-pattern matching throughput: the compiled matcher beside the plain ones and moto's.

``python -m bench.bench_patterns`` generates rules shaped like real bus rules (a source, most of
them a detail-type, and content filters on ``detail``; a few with no exact value anywhere) and
events drawn from the same vocabulary, then measures events per second, in the same process and
run, for:

* ``compiled``: `PatternIndex`, every rule compiled into one structure (what the bus uses);
* ``plain index``: `PlainPatternIndex`, the rule index that narrows candidates and evaluates
  each candidate's predicate (the bus's matcher before the compiled one);
* ``plain loop``: every rule's `CompiledPattern.matches` in turn (the reference);
* ``moto``: moto's ``EventPattern.matches_event`` over every rule, when moto is installed.

Each figure is the median of ``--rounds`` rounds; in each round the matchers run one after the
other over the same events (the slow loop and moto over the first ``--slow-events`` of them:
events/s stays comparable). Every round checks that the compiled matcher returns exactly the
plain matchers' rules. Generation is seeded, so runs compare like with like.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from statelang.eventbus import PatternIndex, PlainPatternIndex, compile_pattern

SOURCES = [f"com.example.service{n}" for n in range(40)] + ["aws.ec2", "aws.s3", "aws.states"]
DETAIL_TYPES = [f"Entity{n} {verb}" for n in range(60) for verb in ("Created", "Updated", "Deleted")]
STATES = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"]


def make_rule(rng: random.Random) -> dict:
    detail: dict = {}
    roll = rng.random()
    if roll < 0.3:
        detail["state"] = rng.sample(STATES, rng.randint(1, 2))
    elif roll < 0.5:
        detail["amount"] = [{"numeric": [">", rng.randint(0, 500), "<=", rng.randint(600, 1000)]}]
    elif roll < 0.65:
        detail["name"] = [{"prefix": rng.choice("abcdefgh")}]
    elif roll < 0.75:
        detail["state"] = [{"anything-but": rng.choice(STATES)}]
    if rng.random() < 0.05:  # no exact value anywhere: must be tried on every event
        return {"detail": detail or {"name": [{"wildcard": f"*{rng.choice('xyz')}*"}]},
                "region": [{"prefix": rng.choice(REGIONS)[:3]}]}
    pattern: dict = {"source": [rng.choice(SOURCES)]}
    if rng.random() < 0.8:
        pattern["detail-type"] = rng.sample(DETAIL_TYPES, rng.randint(1, 3))
    if detail:
        pattern["detail"] = detail
    return pattern


def make_event(rng: random.Random, number: int) -> dict:
    return {
        "version": "0", "id": f"evt-{number}", "detail-type": rng.choice(DETAIL_TYPES),
        "source": rng.choice(SOURCES), "account": "123456789012", "time": "2024-01-01T00:00:00Z",
        "region": rng.choice(REGIONS), "resources": [],
        "detail": {"state": rng.choice(STATES), "amount": rng.randint(0, 1200),
                   "name": "".join(rng.choice("abcdefghxyz") for _ in range(6))},
    }


def _moto_matcher(rules: dict) -> Callable[[dict], list] | None:
    """moto's EventBridge pattern matcher over every rule, or None without moto."""
    try:
        from moto.events.models import EventPattern
    except ImportError:
        return None
    loaded = [(rule_id, EventPattern.load(json.dumps(pattern))) for rule_id, pattern in rules.items()]
    return lambda event: [rule_id for rule_id, pattern in loaded if pattern.matches_event(event)]


def _rate(match: Callable[[dict], list], events: list[dict]) -> tuple[float, list]:
    started = time.perf_counter()
    found = [match(event) for event in events]
    return len(events) / (time.perf_counter() - started), found


def run(n_rules: int = 1000, n_events: int = 10000, seed: int = 7, rounds: int = 5, slow_events: int = 300,
        with_moto: bool = True) -> dict:
    """The figures of one run (events/s are medians over ``rounds``)."""
    rng = random.Random(seed)
    rules = {f"rule-{n}": make_rule(rng) for n in range(n_rules)}
    events = [make_event(rng, n) for n in range(n_events)]
    slow = events[:slow_events]

    started = time.perf_counter()
    compiled_index = PatternIndex(rules.items())
    compiled_index.match(events[0])  # compiles the rules
    build_seconds = time.perf_counter() - started
    plain_index = PlainPatternIndex(rules.items())
    compiled = [(rule_id, compile_pattern(pattern)) for rule_id, pattern in rules.items()]

    def loop(event: dict) -> list:
        return [rule_id for rule_id, rule in compiled if rule.matches(event)]

    moto = _moto_matcher(rules) if with_moto else None
    rates: dict[str, list[float]] = {"compiled": [], "plain_index": [], "plain_loop": [], "moto": []}
    moto_agreement = None
    for _ in range(rounds):
        rate, found = _rate(compiled_index.match, events)
        rates["compiled"].append(rate)
        rate, reference = _rate(plain_index.match, events)
        rates["plain_index"].append(rate)
        if found != reference:
            raise AssertionError("the compiled matcher and the plain index disagree")
        rate, looped = _rate(loop, slow)
        rates["plain_loop"].append(rate)
        if found[:slow_events] != looped:
            raise AssertionError("the compiled matcher and the loop over rules disagree")
        if moto is not None:
            rate, moto_found = _rate(moto, slow)
            rates["moto"].append(rate)
            moto_agreement = sum(a == b for a, b in zip(moto_found, looped, strict=True)) / len(looped)
    result = {
        "rules": n_rules, "events": n_events, "slow_events": len(slow), "rounds": rounds,
        "matches": sum(len(hits) for hits in found), "build_seconds": build_seconds,
        "moto_same_rules": moto_agreement,
    }
    for name, samples in rates.items():
        result[f"{name}_eps"] = statistics.median(samples) if samples else None
    return result


def summary(result: dict) -> str:
    """One line for `python -m bench`: the compiled matcher and its ratios to its peers."""
    parts = [f"event patterns ({result['events']:,} events x {result['rules']:,} rules, median of "
             f"{result['rounds']}): compiled {result['compiled_eps']:,.0f} events/s",
             f"plain index {result['plain_index_eps']:,.0f} ({_ratio(result, 'plain_index_eps')})",
             f"plain loop {result['plain_loop_eps']:,.0f} ({_ratio(result, 'plain_loop_eps')})"]
    if result.get("moto_eps"):
        parts.append(f"moto {result['moto_eps']:,.0f} ({_ratio(result, 'moto_eps')})")
    return ", ".join(parts)


def _ratio(result: dict, peer: str) -> str:
    return f"{result['compiled_eps'] / result[peer]:,.1f}x"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-events", type=int, default=300,
                        help="events given to the loop over rules and to moto in each round")
    parser.add_argument("--no-moto", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.rules, args.events, args.seed, args.rounds, args.slow_events, not args.no_moto)
    print(f"{result['events']:,} events x {result['rules']:,} rules, {result['matches']:,} matches; "
          f"median of {result['rounds']} rounds (loop and moto over {result['slow_events']} events); "
          f"compiling the rules took {result['build_seconds'] * 1000:.1f} ms")
    print(f"{'matcher':<28}{'events/s':>12}{'compiled is':>14}")
    rows = [("PatternIndex (compiled)", "compiled_eps"), ("PlainPatternIndex", "plain_index_eps"),
            ("loop over rules (plain)", "plain_loop_eps"), ("moto EventPattern", "moto_eps")]
    for label, key in rows:
        if result.get(key) is None:
            print(f"{label:<28}{'skipped':>12}")
            continue
        ratio = "" if key == "compiled_eps" else _ratio(result, key)
        print(f"{label:<28}{result[key]:>12,.0f}{ratio:>14}")
    if result["moto_same_rules"] is not None:
        print(f"moto returned the same rules for {result['moto_same_rules']:.0%} of the events")


if __name__ == "__main__":
    main()
