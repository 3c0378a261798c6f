"""The ledger never creates or loses an hour.

A hypothesis state machine drives HourBank through its workflows in random interleavings —
requests, accepts, rejects, counter-offers, expiries, disputes, admin decisions, disputes that
escalate and fall to the policy, and the standalone escrow release and cancellation workflows
run against live requests — and re-runs ledger operations with the idempotency key they were
first applied under (what a crash's re-run does). After every step, for every user, available +
escrowed equal the transaction log and the open escrows, and all hours held equal the hours
minted; every request's status agrees with its escrow and its execution; and no escrow is frozen
without a decidable dispute whose execution is live. Real threads then race on one balance.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select, update

from statelang.handlers.hourbank import ActionRejected
from statelang.handlers.hourbank.db import Database
from statelang.handlers.hourbank.ledger import Ledger, LedgerError
from statelang.handlers.hourbank.models import (
    CLOSED_REQUEST_STATUSES,
    OPEN_DISPUTE_STATUSES,
    Dispute,
    Escrow,
    ServiceRequest,
    TransactionLog,
    UserBalance,
)
from statelang.workflows.hourbank.sandbox import HourBankSandbox

USERS = ["u0", "u1", "u2", "u3"]
RECORDED = ("hold", "settle", "resize", "freeze", "mint", "transfer")


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.sb = HourBankSandbox()
        self.calls: list[tuple[str, tuple, dict]] = []
        for i, u in enumerate(USERS):
            self.sb.add_member(u, 6 + i, response_hours=2 + 10 * i)
            self.sb.add_service(f"svc-{u}", u)
        for name in RECORDED:   # remember every keyed ledger call, to re-run it later
            original = getattr(self.sb.ledger, name)

            def recorder(*args, _name=name, _fn=original, **kwargs):
                self.calls.append((_name, args, kwargs))
                return _fn(*args, **kwargs)
            setattr(self.sb.ledger, name, recorder)
        self.requests: list[str] = []
        self.arns: dict[str, str] = {}

    def _try(self, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except ActionRejected:
            return
        self.sb.drain()

    def _awaiting(self, kind):
        out = []
        for rid in self.requests:
            row = self.sb.row(rid)
            if row and row.awaiting == kind and row.pending_token:
                out.append(row)
        return out

    @rule(a=st.sampled_from(USERS), b=st.sampled_from(USERS), hours=st.integers(1, 12))
    def request(self, a, b, hours):
        arn, rid = self.sb.request(a, b, f"svc-{b}", hours / 2)
        self.requests.append(rid)
        self.arns[rid] = arn

    @rule(i=st.integers(0, 50), action=st.sampled_from(["ACCEPT", "ACCEPT", "REJECT", "COUNTER_OFFER"]),
          hours=st.integers(1, 14))
    def provider_answers(self, i, action, hours):
        rows = self._awaiting("PROVIDER_RESPONSE") + self._awaiting("NEGOTIATION_RESPONSE")
        if rows:
            r = rows[i % len(rows)]
            fn = self.sb.actions.provider_respond if r.awaiting == "PROVIDER_RESPONSE" else self.sb.actions.negotiate
            self._try(fn, r.id, r.awaiting_actor, action, hours / 2)

    @rule(i=st.integers(0, 50), steps=st.integers(1, 4))
    def move_service_along(self, i, steps):
        """Up to `steps` answers in a row on one request: start, confirm, complete, confirm."""
        acts = {"SERVICE_START": self.sb.actions.mark_started, "START_CONFIRMATION": self.sb.actions.confirm_start,
                "SERVICE_COMPLETION": self.sb.actions.mark_completed,
                "COMPLETION_CONFIRMATION": self.sb.actions.confirm_completion}
        rows = [r for k in acts for r in self._awaiting(k)]
        if not rows:
            return
        rid = rows[i % len(rows)].id
        for _ in range(steps):
            r = self.sb.row(rid)
            if r.awaiting not in acts or not r.pending_token:
                return
            self._try(acts[r.awaiting], r.id, r.awaiting_actor)

    @rule(i=st.integers(0, 50), cancel=st.booleans())
    def escrow_workflow(self, i, cancel):
        """The standalone escrow release or cancellation workflow on a request's escrow, whatever
        the request is doing: it must refuse, or settle and stop the request consistently."""
        escrows = [r.escrow_id for r in map(self.sb.row, self.requests) if r and r.escrow_id]
        if escrows:
            machine = "HourBankEscrowCancellation" if cancel else "HourBankEscrowRelease"
            self.sb.start(machine, {"escrowId": escrows[i % len(escrows)]})

    @rule(hours=st.sampled_from([1, 3, 13, 25, 49, 73, 24 * 3, 24 * 7 + 1]))
    def time_passes(self, hours):
        self.sb.advance(hours * 3600)

    @rule(i=st.integers(0, 50), by_provider=st.booleans())
    def raise_dispute(self, i, by_provider):
        if self.requests:
            row = self.sb.row(self.requests[i % len(self.requests)])
            self._try(self.sb.actions.raise_dispute, row.id, row.provider_id if by_provider else row.requester_id, "x")

    @rule(i=st.integers(0, 50), resolution=st.sampled_from(["REFUND_REQUESTER", "PAY_PROVIDER", "PARTIAL_REFUND",
                                                            "DISMISS", "NONSENSE"]), refund=st.integers(0, 30))
    def admin_decides(self, i, resolution, refund):
        with self.sb.db.session() as s:
            ids = list(s.scalars(select(Dispute.id).where(Dispute.status.in_(OPEN_DISPUTE_STATUSES),
                                                          Dispute.pending_token.is_not(None))
                                 .order_by(Dispute.id)))
        if ids:
            self._try(self.sb.actions.admin_decide, ids[i % len(ids)], "admin", resolution, refund / 4)

    @precondition(lambda self: self.calls)
    @rule(i=st.integers(0, 500))
    def crash_rerun(self, i):
        """Run an applied ledger operation again under its key: it must move nothing."""
        name, args, kwargs = self.calls[i % len(self.calls)]
        before = self._snapshot()
        try:
            getattr(self.sb.ledger, name)(*args, **kwargs)
        except LedgerError:
            pass   # refused the first time too (nothing applied), and refuses again
        assert self._snapshot() == before

    def _snapshot(self):
        with self.sb.db.session() as s:
            return sorted(tuple(r) for r in s.execute(select(UserBalance.user_id, UserBalance.available_balance,
                                                             UserBalance.escrowed_balance)))

    @invariant()
    def requests_agree_with_their_escrows_and_executions(self):
        with self.sb.db.session() as s:
            for rid in self.requests:
                req = s.get(ServiceRequest, rid)
                esc = s.get(Escrow, req.escrow_id) if req.escrow_id else None
                where = (rid, req.status, esc and (esc.status, esc.frozen))
                if req.status == "PAID":
                    assert esc is not None and esc.status == "RELEASED", where
                elif req.status in CLOSED_REQUEST_STATUSES:
                    assert esc is None or esc.status == "CANCELLED", where
                else:
                    assert esc is None or esc.status == "ESCROWED", where
                    assert esc is None or esc.frozen == (req.status == "DISPUTED"), where
                running = self.sb.status(self.arns[rid]) == "RUNNING"
                assert running == (req.status not in CLOSED_REQUEST_STATUSES), (where, self.sb.status(self.arns[rid]))

    @invariant()
    def no_frozen_hour_without_a_way_out(self):
        """A frozen escrow's dispute awaits a decision now, and its execution is live (it ends in
        an admin's decision or the policy's)."""
        with self.sb.db.session() as s:
            for esc in s.scalars(select(Escrow).where(Escrow.frozen.is_(True), Escrow.status == "ESCROWED")):
                d = s.scalars(select(Dispute).where(Dispute.escrow_id == esc.id,
                                                    Dispute.status.in_(OPEN_DISPUTE_STATUSES))).one()
                assert d.pending_token is not None, (esc.id, d.id, d.status)
                assert self.sb.status(d.step_function_execution_arn) == "RUNNING", (esc.id, d.id)

    @invariant()
    def no_hour_created_or_lost(self):
        audit = self.sb.ledger.audit()
        assert audit["discrepancies"] == []
        assert audit["held"] == audit["minted"] == sum(600 + 100 * i for i in range(len(USERS)))


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


# -- real threads on one SQLite file -------------------------------------------------------------

@pytest.fixture
def ledger(tmp_path):
    led = Ledger(Database(f"sqlite:///{tmp_path / 'ledger.db'}"))
    for u, h in (("alice", 1000), ("bob", 0)):
        led.open_account(u)
        led.mint(u, h, key=f"seed-{u}", transaction_type="ADMIN_ADJUSTMENT") if h else None
    yield led
    assert led.audit()["discrepancies"] == []


def race(n, fn):
    results, barrier = [None] * n, threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            results[i] = ("ok", fn(i))
        except Exception as exc:  # noqa: BLE001 - the race's losers are the point
            results[i] = ("err", type(exc).__name__)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_spenders_of_one_balance_cannot_both_succeed(ledger):
    results = race(8, lambda i: ledger.hold("alice", "bob", 700, key=f"req-{i}"))
    assert sorted(r[0] for r in results) == ["err"] * 7 + ["ok"]
    assert {r[1] for r in results if r[0] == "err"} == {"InsufficientBalance"}
    assert ledger.balance("alice")["available_balance"] == 300


def test_one_key_racing_itself_applies_once(ledger):
    results = race(8, lambda i: ledger.hold("alice", "bob", 100, key="same-entry")["escrowId"])
    assert {r[0] for r in results} == {"ok"} and len({r[1] for r in results}) == 1
    assert ledger.balance("alice")["escrowed_balance"] == 100


def test_release_and_refund_racing_on_one_escrow_settle_it_once(ledger):
    esc = ledger.hold("alice", "bob", 400, key="h")["escrowId"]
    results = race(6, lambda i: (ledger.release if i % 2 else ledger.refund)(esc, key=f"k{i}"))
    assert [r[0] for r in results].count("ok") == 1
    a, b = ledger.balance("alice"), ledger.balance("bob")
    assert a["escrowed_balance"] == 0 and a["available_balance"] + b["available_balance"] == 1000


def test_transfers_racing_both_ways_conserve_hours(ledger):
    ledger.transfer("alice", "bob", 500, key="even")
    race(16, lambda i: ledger.transfer(*(("alice", "bob") if i % 2 else ("bob", "alice")), 37, key=f"t{i}"))
    a, b = ledger.balance("alice"), ledger.balance("bob")
    assert a["available_balance"] + b["available_balance"] == 1000 and a["version"] + b["version"] > 16


def test_a_write_slipped_between_read_and_write_is_caught_by_the_version(ledger):
    """What a concurrent writer does under READ COMMITTED: bump the version after our read."""
    fired = []

    def sneak(session):
        if not fired:
            fired.append(1)
            session.execute(update(UserBalance).where(UserBalance.user_id == "alice")
                            .values(version=UserBalance.version + 1))
    ledger.before_write = sneak
    ledger.hold("alice", "bob", 100, key="h1")
    ledger.before_write = None
    assert fired and ledger.stale_retries == 1
    with ledger.db.session() as s:
        assert s.scalar(select(TransactionLog.id).where(TransactionLog.transaction_type == "ESCROW")
                        .order_by(TransactionLog.id.desc())) is not None
    assert ledger.balance("alice")["escrowed_balance"] == 100
