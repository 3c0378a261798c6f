"""Chaos: three `statelang worker` processes on one database (an SQLite file, the PostgreSQL
server), one SIGKILLed every few seconds and replaced, while generated machines (Task, Wait,
Choice, Retry, Catch, Parallel, Map) and HourBank transfers run on them.

Checks: every execution ends with the status and output of an uninterrupted in-memory run of the
same definition, input and handlers (`statelang.run`); every history's event ids are 1..n; no
worker dies of anything but our kills; the HourBank ledger balances (audit without discrepancies,
minted == held, each member's balance as in the uninterrupted run). The handler calls repeated by
the kills (at least once, by idempotency key and attempt) are counted and printed.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest

import statelang
from tests.fleet_helpers import Fleet, history_problems, import_handlers, lam, repeated_calls

pytestmark = pytest.mark.slow

CHAOS_SECONDS = float(os.environ.get("STATELANG_CHAOS_SECONDS", "30"))   # per backend
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MEMBERS = ["ann", "ben", "cy", "dee"]

# The HourBank handlers for the workers, on the bank database the test sets up (FLEET_BANK).
BANK_HANDLERS = '''
import os
from statelang.handlers.hourbank import handlers_for
from statelang.handlers.hourbank.db import Database
from statelang.handlers.hourbank.handlers import HourBankHandlers
from statelang.handlers.hourbank.ledger import Ledger

_db = Database(os.environ["FLEET_BANK"])
HANDLERS = handlers_for(HourBankHandlers(_db, Ledger(_db)))
'''


# -- generated machines ---------------------------------------------------------------------------
def _task(fn: str, **extra) -> dict:
    return {"Type": "Task", "Resource": lam(fn), **extra}


KEEP = {"items.$": "$.items"}   # every block hands $.items on, for a Map further down the chain


def _keep(name: str, n: str, nxt: str) -> dict:
    return {name: {"Type": "Pass", "Parameters": {"n.$": n, **KEEP}, "Next": nxt}}


BLOCKS = {
    # Each block: states from `name` to `nxt`, taking and giving {"n": int, "items": [...]}.
    "task": lambda name, nxt: {
        name: _task("Work", Parameters={"n.$": "$.n", "sleep": 1.0}, ResultPath="$.out", Next=f"{name}Keep"),
        **_keep(f"{name}Keep", "$.out.n", nxt)},
    "wait": lambda name, nxt: {name: {"Type": "Wait", "Seconds": 1, "Next": nxt}},
    "choice": lambda name, nxt: {
        name: {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 3, "Next": f"{name}Big"}],
               "Default": f"{name}Small"},
        **_keep(f"{name}Big", "States.MathAdd($.n, 10)", nxt),
        f"{name}Small": _task("Work", Parameters={"n.$": "$.n"}, ResultPath="$.out", Next=f"{name}Keep"),
        **_keep(f"{name}Keep", "$.out.n", nxt)},
    "retry": lambda name, nxt: {
        name: _task("Flaky", ResultPath="$.flaky", Next=f"{name}Keep", Retry=[
            {"ErrorEquals": ["FlakyError"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 1.0}]),
        **_keep(f"{name}Keep", "States.MathAdd($.n, $.flaky.attempts)", nxt)},
    "catch": lambda name, nxt: {
        name: _task("Boom", Next=nxt, Catch=[{"ErrorEquals": ["Declined"], "ResultPath": "$.caught",
                                              "Next": f"{name}Fix"}]),
        **_keep(f"{name}Fix", "States.MathAdd($.n, 100)", nxt)},
    "parallel": lambda name, nxt: {
        name: {"Type": "Parallel", "ResultPath": "$.par", "Next": f"{name}Sum", "Branches": [
            {"StartAt": f"{name}L", "States": {f"{name}L": _task(
                "Work", Parameters={"n.$": "$.n", "sleep": 0.8}, End=True)}},
            {"StartAt": f"{name}R", "States": {f"{name}R": _task("Work", Parameters={"n.$": "$.n"}, End=True)}}]},
        **_keep(f"{name}Sum", "States.MathAdd($.par[0].n, $.par[1].n)", nxt)},
    "map": lambda name, nxt: {
        name: {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.mapped",
               "ItemSelector": {"n.$": "$$.Map.Item.Value", "sleep": 0.5}, "Next": f"{name}Sum",
               "ItemProcessor": {"StartAt": f"{name}Each", "States": {f"{name}Each": _task("Work", End=True)}}},
        **_keep(f"{name}Sum", "States.MathAdd($.n, States.ArrayLength($.mapped))", nxt)},
}


def generated_machine(rng: random.Random) -> dict:
    """A chain of 3 to 5 random blocks (a block may repeat), then a Succeed that keeps $.n."""
    kinds = [rng.choice(sorted(BLOCKS)) for _ in range(rng.randint(3, 5))]
    states: dict = {}
    names = [f"B{i}{k.capitalize()}" for i, k in enumerate(kinds)]
    for i, kind in enumerate(kinds):
        states.update(BLOCKS[kind](names[i], names[i + 1] if i + 1 < len(kinds) else "Done"))
    states["Done"] = {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "End": True}
    return {"StartAt": names[0], "States": states}


def _normal(output: str | None):
    """An output with HourBank's random transaction ids replaced by their presence."""
    value = None if output is None else json.loads(output)
    if isinstance(value, dict) and isinstance(value.get("result"), dict) and "transactionId" in value["result"]:
        value = {**value, "result": {**value["result"], "transactionId": "<id>"}}
    return value


@pytest.fixture(params=BACKENDS)
def urls(request, tmp_path):
    """(engine database, bank database) of one backend."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url"), f"sqlite:///{tmp_path / 'bank.db'}"
        return
    server = request.getfixturevalue("pg_server")
    bank = server.create_database()
    yield request.getfixturevalue("pg_url"), server.url(bank)
    server.drop_database(bank)


def test_chaos_kills_lose_nothing(urls, tmp_path, record_property):
    from statelang.workflows.hourbank import state_machines
    from statelang.workflows.hourbank.sandbox import HourBankSandbox

    db, bank_url = urls
    rng = random.Random(15)
    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / "bank_handlers.py").write_text(BANK_HANDLERS)
    # The bank's members, in the shared bank database and in the uninterrupted run's own bank.
    shared = HourBankSandbox(bank_db=bank_url)
    alone = HourBankSandbox()
    for sb in (shared, alone):
        for m in MEMBERS:
            sb.add_member(m, 50)
    fleet = Fleet(db, folder, lease_seconds=5, extra_handlers=("bank_handlers",),
                  extra_env={"FLEET_BANK": bank_url})
    try:
        handlers = import_handlers(folder)
        os.environ["FLEET_SLEEP"] = "0"   # the uninterrupted runs (this process) need not sleep
        # Three waves of work, started while workers are being killed.
        waves: list[list[tuple[str, dict, object, str]]] = [[], [], []]
        bank_machine = state_machines()["HourBankTransactionProcessing"]
        bank_sm = fleet.machine("HourBankTransactionProcessing", bank_machine)
        for i in range(24):
            definition = generated_machine(rng)
            inp = {"n": rng.randint(0, 6), "items": list(range(rng.randint(1, 4)))}
            expected = statelang.run(definition, inp, clock="virtual",
                                     handlers={"Work": handlers.Work, "Flaky": handlers.Flaky, "Boom": handlers.Boom})
            assert expected.status == "SUCCEEDED", (definition, expected.error, expected.cause)
            sm = fleet.machine(f"gen{i}", definition)
            waves[i % 3].append((sm, inp, (expected.status, expected.output), f"gen{i}"))
        for i in range(9):
            a, b = rng.sample(MEMBERS, 2)
            inp = {"transactionType": "DIRECT_TRANSFER", "fromUserId": a, "toUserId": b,
                   "hours": rng.choice([0.5, 1, 2.5]), "transferId": f"t{i}"}
            arn = alone.start("HourBankTransactionProcessing", inp)
            alone.finish()
            waves[i % 3].append((bank_sm, inp, (alone.status(arn), _normal(json.dumps(alone.output(arn)))),
                                 f"bank{i}"))
        del os.environ["FLEET_SLEEP"]

        for _ in range(3):
            fleet.start_worker()
        started: dict[str, tuple] = {}
        kills, t0 = 0, time.monotonic()
        next_wave, next_kill = 0, t0 + 4
        while time.monotonic() - t0 < CHAOS_SECONDS:
            if next_wave < 3 and time.monotonic() - t0 >= next_wave * CHAOS_SECONDS / 3:
                for sm, inp, expected, name in waves[next_wave]:
                    started[fleet.start(sm, name, inp)] = expected
                next_wave += 1
            if time.monotonic() >= next_kill:
                fleet.kill(rng.choice(fleet.live()))
                kills += 1
                fleet.start_worker()
                next_kill = time.monotonic() + rng.uniform(2, 4)
            time.sleep(0.1)
        for sm, inp, expected, name in (w for wave in waves[next_wave:] for w in wave):
            started[fleet.start(sm, name, inp)] = expected

        rows = fleet.wait_all(list(started), timeout=120)
        stuck = {a: r["status"] for a, r in rows.items() if r["status"] == "RUNNING"}
        assert not stuck, stuck
        wrong = {}
        for arn, (status, output) in started.items():
            got = (rows[arn]["status"], _normal(rows[arn]["output"]))
            if arn.split(":")[-1].startswith("bank"):
                want = (status, output)
            else:
                want = (status, output if status == "SUCCEEDED" else None)
            if got != want:
                wrong[arn] = (got, want)
        assert not wrong, wrong
        bad_histories = {a: p for a in started if (p := history_problems(fleet.engine.store.history(a)))}
        assert not bad_histories, bad_histories
        audit = shared.ledger.audit()
        assert audit["discrepancies"] == [] and audit["minted"] == audit["held"], audit
        assert {m: shared.available(m) for m in MEMBERS} == {m: alone.available(m) for m in MEMBERS}
        assert fleet.died() == [], [fleet.log_of(p)[-2000:] for p in fleet.died()]

        calls = fleet.calls()
        repeats = sum(repeated_calls(calls).values())
        attempts = len({(c.key, c.retry) for c in calls})
        record_property("kills", kills)
        record_property("repeated_calls", repeats)
        print(f"chaos on {db.split(':')[0]}: {len(started)} executions, {kills} kills in {CHAOS_SECONDS:.0f} s, "
              f"{len(calls)} handler calls for {attempts} attempts, {repeats} repeated "
              f"({100 * repeats / max(attempts, 1):.1f} %), took {time.monotonic() - t0:.0f} s")
    finally:
        fleet.stop()
        shared.db.dispose()
