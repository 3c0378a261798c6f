"""Event-pattern matching throughput: the rule index against a loop over every rule.

``python -m bench.bench_patterns`` generates rules shaped like real bus rules (a source, most of
them a detail-type, and content filters on ``detail``; a few with no exact value anywhere) and
events drawn from the same vocabulary, then prints events per second for `PatternIndex.match` and
for evaluating each compiled rule in turn, their ratio, and checks that both found the same rules.
Generation is seeded, so runs compare like with like.
"""

from __future__ import annotations

import argparse
import random
import time

from statelang.eventbus import PatternIndex, compile_pattern

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


def run(n_rules: int, n_events: int, seed: int) -> dict:
    rng = random.Random(seed)
    rules = {f"rule-{n}": make_rule(rng) for n in range(n_rules)}
    events = [make_event(rng, n) for n in range(n_events)]

    index = PatternIndex()
    for rule_id, pattern in rules.items():
        index.add(rule_id, pattern)
    compiled = [(rule_id, compile_pattern(pattern)) for rule_id, pattern in rules.items()]

    started = time.perf_counter()
    indexed = [index.match(event) for event in events]
    index_seconds = time.perf_counter() - started

    started = time.perf_counter()
    looped = [[rule_id for rule_id, rule in compiled if rule.matches(event)] for event in events]
    loop_seconds = time.perf_counter() - started

    if indexed != looped:
        raise AssertionError("the index and the loop disagree")
    return {
        "rules": n_rules, "events": n_events,
        "matches": sum(len(hits) for hits in indexed),
        "index_eps": n_events / index_seconds, "loop_eps": n_events / loop_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    result = run(args.rules, args.events, args.seed)
    print(f"{result['events']} events x {result['rules']} rules, {result['matches']} matches")
    print(f"PatternIndex.match : {result['index_eps']:12,.0f} events/s")
    print(f"loop over rules    : {result['loop_eps']:12,.0f} events/s")
    print(f"ratio index/loop   : {result['index_eps'] / result['loop_eps']:12.1f}x")


if __name__ == "__main__":
    main()
