"""Drives executions: feeds the interpreter, carries out its commands, commits through a Store.

One execution step is: apply the due messages (timers fired, tokens answered, stop requests),
let the interpreter advance every runnable frame, then commit the new events, the changed frames
and the new timers in one transaction — *before* any handler it asked for is called. A crash
therefore loses at most work that the next claim of the execution redoes identically; a handler
whose result was not committed runs again with the same idempotency key (at least once).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from statelang.interpreter.commands import (
    TIMED_OUT,
    CancelFrame,
    ExecutionEnded,
    Invoke,
    OutcomeKind,
    SettleFrame,
    StartMapRun,
    StartTimer,
    TaskOutcome,
    TimerKind,
)
from statelang.interpreter.step import (
    RESUME,
    TASK,
    ExecutionState,
    Frame,
    Interpreter,
)
from statelang.language import jsontext
from statelang.language.compiler import CompiledMachine
from statelang.runtime.clock import Clock, make_clock
from statelang.runtime.faults import fault
from statelang.runtime.leases import ExecutionLocks, LeaseKeeper
from statelang.runtime.machines import MAX_EXECUTION_TIME, compiled, definition_text
from statelang.runtime.map_run import MapRuns
from statelang.runtime.poison import fail_poisoned, quarantine
from statelang.runtime.resources import Resources, TaskContext, TaskSource
from statelang.runtime.storage import (
    Commit,
    LeaseLost,
    Message,
    MessageKind,
    Store,
    StoreFault,
    open_store,
)
from statelang.runtime.worker import HEARTBEAT_SECONDS, new_worker_id, serve_forever, side_by_side

log = logging.getLogger("statelang.engine")
_TIMER_KINDS = frozenset(TimerKind)
_EVENTS_LOCK = threading.Lock()      # makes an engine's events on first use, once


def _local_services(engine: Engine) -> Any:
    """The engine's local AWS services (given a proxy of it: no cycle through its resources)."""
    from statelang.runtime.services.local import LocalServices
    return LocalServices(engine.store, engine.clock, region=engine.region, account_id=engine.account_id)


class Engine:
    """Durable executions. ``Engine(db="sqlite:///flows.db", handlers=..., clock="virtual")``."""

    def __init__(self, db: str | Store | None = None, handlers: dict | None = None,
                 clock: str | Clock = "real", state_machines: dict | None = None,
                 account_id: str = "123456789012", region: str = "us-east-1",
                 worker_id: str | None = None, max_workers: int = 8, lease_seconds: float = 60.0,
                 eager: bool | str = False, tasks: TaskSource | None = None,
                 skip_messages: frozenset[str] = frozenset()):
        if not (isinstance(lease_seconds, int | float) and 0 < lease_seconds < math.inf):
            # nan or inf failed every start deep in a timedelta; 0 or less had every claim lapse at once
            raise ValueError(f"lease_seconds must be a finite number of seconds above 0, not {lease_seconds!r}")
        if not (isinstance(max_workers, int) and max_workers >= 1):
            raise ValueError(f"max_workers must be a whole number of at least 1, not {max_workers!r}")
        self.store = open_store(db)
        self.clock = make_clock(clock)
        self.account_id = account_id
        self.region = region
        self.resources = Resources(handlers, region, account_id)
        self.resources.clock = self.clock
        # Local AWS services (DynamoDB, SNS, SQS, S3, ...) answer the tasks no handler answers,
        # their state in this engine's store; built only when a task first needs one.
        self.resources.services_factory = functools.partial(_local_services, weakref.proxy(self))
        self.interpreter = Interpreter()
        self.worker_id = worker_id or new_worker_id()
        self.lease_seconds = lease_seconds
        # eager=True: start_execution runs the execution in the calling thread until it waits or
        # ends (as the AWS service starts it at once), saving a claim; "always" also on a virtual
        # clock. Off by default so that a start returns before any handler runs.
        self.eager = eager
        # Where task outcomes come from: the handlers (None), or a replay's recorded results.
        self.tasks = tasks
        # Message kinds this engine does not apply (a redrive's fast-forward ignores the record's
        # own timeout and stop request, so that it stops where the execution broke).
        self.skip_messages = skip_messages
        self.max_workers = max_workers
        # Thread pools by purpose ("task": a round's invocations; "step": the worker loop's
        # executions side by side), each with the size it was made with.
        self._pools: dict[str, tuple[ThreadPoolExecutor, int]] = {}
        self.claim_batch = 16             # executions leased by one claim
        # A worker silent for this long (no heartbeat) is dead: its leases are free at once.
        self.takeover_seconds = 3 * HEARTBEAT_SECONDS
        self.metrics = {"claims": 0, "takeovers": 0, "fenced": 0, "poisoned": 0, "quarantined": 0,
                        "renewals": 0}
        self.max_claims = 5   # claims of one step that never completes before it is quarantined
        self._claimed_at: dict[str, datetime] = {}
        self._last_beat: datetime | None = None
        self._heartbeating = False
        self._machines: dict[str, CompiledMachine] = {}
        # Executions are stepped under a lock each, not one engine-wide lock: client threads
        # sharing an engine overlap their handlers and their commits.
        self._locks = ExecutionLocks()
        self._count_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        # The worker loop's and wait()'s events are made on first use: statelang.run builds an
        # engine per call and never waits on them. An engine shut down hands them out already set.
        self._shut = False
        self.state_machines = dict(state_machines or {})
        self.listeners: list = []   # callables(execution_row) on every status change
        self.integrations: dict[str, Any] = {}  # resource prefix -> callable(engine, run, fid, seq, spec)
        self.end_hooks: list = []   # callables(engine, run, commit) inside an execution's end commit
        self.tickers: list = []     # callables(now) -> int: other due work (bus schedules, retries)
        # callables() -> datetime | None: when that work is next due. A timer source's times
        # (delivery retries) are followed on a virtual clock like the engine's own; a recurring
        # source's (schedules, which never run out) only before the next of those, or up to `until`.
        self.timer_sources: list = []
        self.recurring_sources: list = []
        from statelang.runtime.nested import install
        install(self)
        self.map_runs = MapRuns(self)   # the distributed Map runner

    # -- machines ---------------------------------------------------------------------------
    def compiled(self, definition: str | dict) -> CompiledMachine:
        return compiled(definition)

    # -- starting ---------------------------------------------------------------------------
    def start(self, definition: str | dict, input: Any, *, arn: str, name: str, state_machine_arn: str,
              role_arn: str = "", extra: dict | None = None) -> ExecutionState:
        """Create an execution and commit its ExecutionStarted; the run itself is a message due now."""
        machine = self.compiled(definition)
        now = self.clock.now()
        run = ExecutionState(machine, arn, name, state_machine_arn, input, now, role_arn, self.region, self.account_id)
        run.parent = (extra or {}).get("parent")
        run.started_with = {k: (extra or {}).get(k) for k in ("stateMachineVersionArn", "stateMachineAliasArn")
                            if (extra or {}).get(k)}
        self.interpreter.start(run, now)
        eager = self.eager and not self.clock.virtual or self.eager == "always"
        if eager and not self.listeners:
            # Run as far as it goes without telling anyone outside (plain handlers only), so that
            # creating the execution and its first steps are one transaction. No lock: until that
            # transaction commits, no other thread can see the execution.
            self._advance_in_memory(run)
        commit = self._commit_of(run, [])
        # Eager: this thread runs the execution right after creating it. Its "run" message is then
        # a safety net due only when a lease would have expired, consumed by the first step's commit.
        kick = Message(arn, MessageKind.RUN, now + timedelta(seconds=self.lease_seconds) if eager else now)
        if run.status == "RUNNING":
            commit.add_messages.append(kick)
        row = {"executionArn": arn, "stateMachineArn": state_machine_arn, "name": name,
               "status": "RUNNING", "startDate": now,
               "definition": definition_text(definition),
               "roleArn": role_arn, "redriveCount": 0, **(extra or {})}
        if "input" not in row:   # the API passes the caller's own text in extra
            row["input"] = json.dumps(input)
        self.store.create_execution(row, commit)
        self._start_map_runs(run, commit)
        if self.listeners:
            self._notify(run)   # AWS publishes a RUNNING status change too
        if eager and run.status == "RUNNING":
            with self._locks.hold(arn):
                run.released = True
                recorded = self._in_flight(commit.invokes)
                if recorded:   # invocations the creating commit recorded (a token, a child execution)
                    self._apply_outcomes(run, recorded, self._invoke_all(run, recorded))
                self._drive(run, [kick.id])
        elif run.status != "RUNNING":
            self._notify(run)
        else:
            self._wake.set()
        return run

    def _advance_in_memory(self, run: ExecutionState) -> None:
        """An eager start's first round: everything up to the first task invocations (which the
        creating commit records before they are called) or the end."""
        self.interpreter.advance(run, self.clock.now())

    # -- the loop ---------------------------------------------------------------------------
    def run_until_idle(self, max_rounds: int | None = None, until: datetime | None = None,
                       concurrency: int = 1, schedules: bool = False) -> int:
        """Run everything runnable now; on a virtual clock also jump to each next timer, but not
        past `until` when it is given. Returns the number of executions steps taken. Schedules
        (recurring sources) fire when due before the next timer; with `schedules` the run is a span
        up to `until`: schedules are followed on their own, and the clock ends there.

        With `concurrency` above 1 (the worker loop passes `max_workers`), up to that many claimed
        executions are stepped side by side on threads, so that their handlers run at once; on a
        virtual clock they are stepped in turn, as time moves only between steps there."""
        if max_rounds is not None and not (isinstance(max_rounds, int) and max_rounds >= 0):
            raise ValueError(f"max_rounds must be a whole number, 0 or more, not {max_rounds!r}")
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise ValueError(f"concurrency must be a whole number of at least 1, not {concurrency!r}")
        if until is not None and not (isinstance(until, datetime) and until.tzinfo is not None):
            raise ValueError(f"until must be an aware datetime (with its time zone), not {until!r}")
        steps, virtual = 0, self.clock.virtual
        while max_rounds is None or steps < max_rounds:
            now = self.clock.now()
            if virtual:   # the earliest message first: when it is not due yet there is nothing to claim
                due = self.store.next_due()
                arns = self._claim(now) if due is not None and due <= now else []
            else:
                arns = self._claim(now)
            if arns:
                if concurrency > 1 and len(arns) > 1 and not virtual:
                    self._process_side_by_side(arns, concurrency)
                else:
                    for arn in arns:
                        self.process(arn)
                steps += len(arns)
                continue
            if any([tick(now) for tick in self.tickers]):
                continue   # a schedule or a delivery retry fired and may have started executions
            if virtual:
                # Due now and not claimed: another live worker holds it; nothing to jump to here.
                jump = self.next_timer(due, schedules and until is not None) if due is None or due > now else None
                if jump is not None and jump > now:
                    if until is not None and jump > until:
                        self.clock.set(max(until, now))
                        break
                    self.clock.set(jump)
                    continue
            break
        if virtual and schedules and until is not None and until > self.clock.now():
            self.clock.set(until)   # a span, not a deadline: its time has passed
        return steps

    def next_timer(self, due: datetime | None, recurring_alone: bool = False) -> datetime | None:
        """The earliest of the engine's timers (`due`: the store's next message) and the timer
        sources'; a recurring source's time when before those, or on its own with `recurring_alone`
        (alone, a cron rule would keep a virtual run going forever)."""
        times = [d for d in (due, *(src() for src in self.timer_sources)) if d is not None]
        nxt = min(times, default=None)
        if self.recurring_sources and (nxt is not None or recurring_alone):
            fires = [d for d in (src() for src in self.recurring_sources) if d is not None]
            if fires and (nxt is None or min(fires) < nxt):
                nxt = min(fires)
        return nxt

    def _process_side_by_side(self, arns: list[str], concurrency: int) -> None:
        """Step the claimed executions on up to `concurrency` threads (see `worker.side_by_side`)."""
        side_by_side(self, self._threads("step", concurrency), arns)

    def _threads(self, purpose: str, size: int) -> ThreadPoolExecutor:
        """The engine's thread pool for `purpose`, made on first use and again if `size` changed.
        Steps and task invocations have pools of their own: a step waits on its invocations."""
        with self._pool_lock:
            pool, made = self._pools.get(purpose, (None, 0))
            if pool is None or made != size:
                if pool is not None:
                    pool.shutdown(wait=False)
                pool = ThreadPoolExecutor(size, thread_name_prefix=f"statelang-{purpose}")
                self._pools[purpose] = (pool, size)
            return pool

    def _claim(self, now: datetime) -> list[str]:
        """Lease a batch of executions with due messages. A lease held by a worker whose heartbeat
        is older than `takeover_seconds` is free at once: its worker is dead."""
        stale = now - timedelta(seconds=self.takeover_seconds)
        taken: list[str] = []
        arns = self.store.claim(self.worker_id, now, self.lease_seconds, self.claim_batch, stale_before=stale,
                                taken_over=taken)
        if taken:
            self.count("takeovers", len(taken))
            log.info("worker %s takes over %d execution(s) of dead or stalled workers", self.worker_id, len(taken))
        if arns:
            self.count("claims", len(arns))
            self._claimed_at.update(dict.fromkeys(arns, now))
        return arns

    def count(self, metric: str, n: int = 1) -> None:
        """Add to one of the fleet metrics (threads of one engine count into the same dict)."""
        with self._count_lock:
            self.metrics[metric] += n

    def serve_forever(self, poll_seconds: float = 1.0) -> None:
        """The worker loop (`statelang worker`): run what is due, sleep until the next timer or a
        wake-up, heartbeat, back off on database faults. See `statelang.runtime.worker`."""
        serve_forever(self, poll_seconds)

    def close(self) -> None:
        """Stop the worker loop and release the store's connections."""
        self.shutdown()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def wake(self) -> None:
        """Tell the worker loop that something changed in the store (a redrive, say)."""
        self._wake.set()

    def _event(self, name: str) -> threading.Event:
        event = self.__dict__.get(name)
        if event is None:
            with _EVENTS_LOCK:
                event = self.__dict__.get(name)
                if event is None:
                    event = self.__dict__[name] = threading.Event()
                    if self._shut:
                        event.set()
        return event

    @property
    def _wake(self) -> threading.Event:
        """Set when something changed in the store: a waiting loop looks again."""
        return self._event("_wake_event")

    @property
    def _stopping(self) -> threading.Event:
        """Set when the worker loop is to stop."""
        return self._event("_stopping_event")

    def shutdown(self) -> None:
        with _EVENTS_LOCK:
            self._shut = True
            for name in ("_stopping_event", "_wake_event"):
                event = self.__dict__.get(name)
                if event is not None:
                    event.set()
        with self._pool_lock:
            for pool, _ in self._pools.values():
                pool.shutdown(wait=False)

    def wait(self, arn: str, timeout: float | None = None) -> dict:
        """Run the execution until it is no longer RUNNING, or `timeout` seconds of the engine's
        clock have passed, or nothing more can happen to it; returns its row.

        On a virtual clock time jumps from timer to timer (never past the timeout). On the real
        clock the thread sleeps until the next timer; with a timeout it also waits for answers
        from outside (a task token sent from a handler's thread, an activity worker) until then.
        Without one, an execution that waits only for the outside is returned RUNNING."""
        if timeout is not None and not (isinstance(timeout, int | float) and 0 <= timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds, 0 or more, not {timeout!r}")
        deadline = None if timeout is None else self.clock.elapsed() + timeout
        until = None if timeout is None else self.clock.now() + timedelta(seconds=timeout)
        row = self.store.get_execution(arn)
        if row is None or row["status"] != "RUNNING":
            return row   # an eager start already ran it to the end
        while True:
            self._wake.clear()
            self.run_until_idle(until=until if self.clock.virtual else None)
            row = self.store.get_execution(arn)
            if row is None or row["status"] != "RUNNING" or self.clock.virtual:
                return row
            due = self.store.next_due()
            left = None if deadline is None else deadline - self.clock.elapsed()
            if left is not None and left <= 0:
                return row
            if due is None:
                if left is None:
                    return row
                self._wake.wait(left)
            elif left is None or due <= self.clock.now() + timedelta(seconds=left):
                self.clock.sleep_until(due, self._wake)
            else:
                self._wake.wait(left)

    # -- inputs from outside ----------------------------------------------------------------
    def stop_execution(self, arn: str, error: str | None = None, cause: str | None = None) -> dict | None:
        """Abort a RUNNING execution now (ExecutionAborted); returns its row."""
        self.store.add_message(Message(arn, MessageKind.STOP, self.clock.now(), payload={"error": error, "cause": cause}))
        self.process(arn)
        return self.store.get_execution(arn)

    def send_task_result(self, token: str, ok: bool, output: Any = None, error: str | None = None,
                         cause: str | None = None) -> str:
        """Answer a task token. Returns "ok", "unknown" (no such token) or "closed" (its task is
        over: answered, timed out, or its execution ended). The execution moves on at the next
        `run_until_idle` or worker pass."""
        payload = {"ok": True, "output": output} if ok else {"ok": False, "error": error, "cause": cause}
        status = self.store.resolve_token(token, Message("", MessageKind.TOKEN, self.clock.now(), payload=payload))
        if status == "ok":
            self._wake.set()
        return status

    def send_task_heartbeat(self, token: str) -> str:
        status = self.store.resolve_token(token, Message("", MessageKind.BEAT, self.clock.now()))
        if status == "ok":
            self._wake.set()
        return status

    def get_activity_task(self, activity_arn: str, worker_name: str = "") -> dict | None:
        """Hand the oldest scheduled task of an activity to a worker: {token, input} or None."""
        row = self.store.claim_activity_task(activity_arn, worker_name, self.clock.now())
        if row is not None:
            self._wake.set()
        return row

    # -- one execution ----------------------------------------------------------------------
    def process(self, arn: str) -> None:
        """One step of one execution: apply its due messages and run it until it waits.

        Whatever goes wrong inside the step stays with this execution: an unexpected exception
        fails it (States.Runtime, see `poison.fail_poisoned`), so a worker never dies of one execution and
        never leaves the rest of its batch leased. Only a fault of the database itself
        (`StoreFault`) reaches the caller, whose loop backs off and retries."""
        with self._locks.hold(arn):
            claimed = self._claimed_at.pop(arn, None)
            if claimed is None:
                # Not from this engine's own claim (a stop request, a caller's loop): lease it
                # now, or leave it to the live worker that holds it. Every step runs fenced.
                claimed = self.clock.now()
                stale = claimed - timedelta(seconds=self.takeover_seconds)
                if not self.store.claim_one(arn, self.worker_id, claimed, self.lease_seconds, stale_before=stale):
                    return
            try:
                self._step(arn, claimed)
            except LeaseLost as lost:
                # Another worker took the execution over while this step ran: its commit was
                # refused whole, so the step is discarded; the new owner redoes it.
                self.count("fenced")
                log.warning("%s", lost)
            except StoreFault:
                raise
            except Exception as exc:  # noqa: BLE001 - contained: see the docstring
                self.count("poisoned")
                try:
                    fail_poisoned(self, arn, exc)
                except LeaseLost as lost:
                    self.count("fenced")
                    log.warning("%s", lost)
            finally:
                self._claimed_at.pop(arn, None)

    def _step(self, arn: str, claimed: datetime | None = None) -> None:
        now = self.clock.now()
        if claimed is not None and (now - claimed).total_seconds() > self.lease_seconds / 2:
            # Claimed a while ago (a long batch): make sure the lease is still ours, and fresh.
            if not self.store.renew(arn, self.worker_id, now + timedelta(seconds=self.lease_seconds)):
                raise LeaseLost(arn, self.worker_id)
        run = self._load(arn)
        if claimed is not None and run is not None and run.status == "RUNNING":
            claims = self.store.claim_count(arn)
            if claims > self.max_claims:
                quarantine(self, run, claims)
                return
        msgs = self.store.due_messages(arn, now)
        if run is None or run.status != "RUNNING":
            if msgs:
                self.store.apply(Commit(arn, consumed=[m.id for m in msgs], fence=self.worker_id))
            self.store.release(arn, self.worker_id)
            return
        # Every commit of this step is fenced by the lease the claim took.
        run.lease_holder = self.worker_id
        run.released = False
        if any(isinstance(c, Invoke) for c in run.commands):
            # Invocations recovered from a crashed worker run first, as they ran before
            # anything these messages answer (a token the handler handed out, say). The lease
            # is kept through them: the messages are still to be applied under it.
            run.hold_lease = True
            try:
                self._drive(run, [])
            except BaseException:
                self.store.release(arn, self.worker_id)
                raise
            run.hold_lease = False
            run.released = False
            now = self.clock.now()
        consumed = []
        for m in msgs:
            consumed.append(m.id)
            self._apply_message(run, m, now)
        try:
            self._drive(run, consumed)
        finally:
            if not run.released:
                self.store.release(arn, self.worker_id)

    def load(self, arn: str) -> ExecutionState | None:
        """The execution's state as its last checkpoint holds it (None if there is none)."""
        return self._load(arn)

    def _load(self, arn: str) -> ExecutionState | None:
        row = self.store.get_execution(arn)
        if row is None:
            return None
        machine = self.compiled(row["definition"])
        run = ExecutionState(machine, arn, row["name"], row["stateMachineArn"], json.loads(row["input"]),
                  row["startDate"], row.get("roleArn") or "", self.region, self.account_id,
                  row.get("redriveCount") or 0)
        # The next event id follows the last one stored: the history is its only record, so a
        # step's commit writes its events and checkpoint, not the execution's row.
        tail = self.store.history(arn, limit=1, reverse=True)
        run.next_id = tail[0]["id"] + 1 if tail else 1
        run.status = row["status"]
        run.parent = row.get("parent")
        for fid, fd in self.store.load_frames(arn).items():
            frame = fd if isinstance(fd, Frame) else Frame.from_dict(fd)
            run.frames[fid] = frame
        self._recover(run)
        return run

    def _recover(self, run: ExecutionState) -> None:
        """Rebuild what was in flight: runnable frames, and task invocations never answered."""
        for frame in sorted(run.frames.values(), key=lambda f: f.last_id):
            if frame.phase in ("enter", RESUME):
                run.runnable.append(frame.id)
            elif frame.phase == TASK and frame.invoke_spec:
                run.commands.append(Invoke(frame.id, frame.seq, dict(frame.invoke_spec)))
            elif frame.map_run_arn:
                self.map_runs.recover(run, frame)

    def _apply_message(self, run: ExecutionState, m: Message, now: datetime) -> None:
        it = self.interpreter
        k = m.kind
        if k == MessageKind.RUN or k in self.skip_messages:
            return
        if k in _TIMER_KINDS:
            if k == TimerKind.HEARTBEAT:
                frame = run.frames.get(m.frame_id)
                if frame is not None and frame.phase == TASK and frame.seq == m.seq:
                    beat, hb = frame.last_beat, frame.heartbeat_seconds
                    if beat and hb:
                        due = beat.timestamp() + hb
                        if due > now.timestamp():
                            run.commands.append(StartTimer(frame.id, datetime.fromtimestamp(due, UTC),
                                                           TimerKind.HEARTBEAT, frame.seq))
                            return
            it.timer_fired(run, m.frame_id, k, m.seq, now)
        elif k == MessageKind.TOKEN:
            p = m.payload
            if p.get("ok"):
                it.task_result(run, m.frame_id, m.seq, True, p.get("output"), None, now)
            else:
                it.task_result(run, m.frame_id, m.seq, False, p.get("error") or "", p.get("cause"), now)
        elif k == MessageKind.BEAT:
            frame = run.frames.get(m.frame_id)
            if frame is not None and frame.phase == TASK and frame.seq == m.seq:
                frame.last_beat = now
                run.touch(frame)
        elif k == MessageKind.ACTIVITY_STARTED:
            frame = run.frames.get(m.frame_id)
            it.activity_started(run, m.frame_id, m.seq, (m.payload or {}).get("workerName", ""), now)
        elif k == MessageKind.STOP:
            p = m.payload or {}
            it.stop(run, p.get("error"), p.get("cause"), now)
        elif k == MessageKind.MAP_CHILD_DONE:
            self.map_runs.child_done(run, m, now)
        elif k == MessageKind.CHILD_DONE:
            p = m.payload
            it.task_result(run, m.frame_id, m.seq, p["ok"], p.get("output") if p["ok"] else p.get("error"),
                           p.get("cause"), now)

    def _drive(self, run: ExecutionState, consumed: list[int]) -> None:
        """Run the execution in rounds until it waits or ends. A round advances every runnable
        frame, commits what it decided together with the invocations it asks for, then calls
        them (concurrently, up to max_workers) and feeds their outcomes to the next round.

        Exactly once, at least once: every transition and event is decided once, in the commit of
        its round; a crash repeats only the invocations of the round in flight (their handlers
        run again with the same idempotency key), never a round already committed."""
        it = self.interpreter
        while True:
            it.advance(run, self.clock.now())
            invokes = self._flush(run, consumed)
            consumed = []
            if not invokes:
                if run.runnable and run.status == "RUNNING":
                    continue   # something finished during the flush (e.g. a map run) and is runnable
                return
            self._apply_outcomes(run, invokes, self._invoke_all(run, invokes))

    def _apply_outcomes(self, run: ExecutionState, invokes: list[Invoke], outcomes: list) -> None:
        """Feed handler outcomes to the interpreter, in the order the invocations were issued."""
        it = self.interpreter
        now = self.clock.now()
        for c, outcome in zip(invokes, outcomes, strict=True):
            fid, seq, spec = c.frame_id, c.seq, c.spec
            frame = run.frames.get(fid)
            if outcome is None:
                # No answer yet (it comes later as a message, or the task stays pending): the
                # checkpoint must still say the call is out, even when group commit took it.
                if frame is not None and frame.seq == seq and frame.phase == TASK and frame.invoke_spec is None:
                    frame.invoke_spec = _jsonable_spec(spec)
                    run.touch(frame)
                continue
            if frame is not None and frame.seq == seq:
                frame.invoke_spec = None
                run.touch(frame)
            if outcome.kind == OutcomeKind.TIMED_OUT:
                it.timer_fired(run, fid, TimerKind.TASK_TIMEOUT, seq, now)
            elif outcome.kind == OutcomeKind.RESPONSE:
                it.task_result(run, fid, seq, True, outcome.value, None, now, whole=True)
            elif outcome.kind == OutcomeKind.SUBMITTED or (spec.get("wait_for_token")
                                                           and outcome.kind == OutcomeKind.SUCCEEDED):
                it.task_submitted(run, fid, seq, outcome.value, now)
            elif outcome.kind == OutcomeKind.SUCCEEDED:
                it.task_result(run, fid, seq, True, outcome.value, None, now)
            else:
                it.task_result(run, fid, seq, False, outcome.error, outcome.cause, now)
        fault("after_handler")

    def _invoke_all(self, run: ExecutionState, invokes: list[Invoke]) -> list:
        if run.lease_holder is None or self.clock.virtual:
            return self._call_all(run, invokes)
        with LeaseKeeper(self, run.arn):
            return self._call_all(run, invokes)

    def _call_all(self, run: ExecutionState, invokes: list[Invoke]) -> list:
        calls = [(c.frame_id, c.seq, c.spec) for c in invokes]
        if len(calls) == 1 or self.max_workers <= 1:
            return [self._invoke(run, *c) for c in calls]
        return list(self._threads("task", self.max_workers).map(lambda c: self._invoke(run, *c), calls))

    def _invoke(self, run: ExecutionState, fid: str, seq: int, spec: dict):
        if self.tasks is not None:
            return self.tasks.invoke(self, run, fid, seq, spec)
        if spec["kind"] == "activity":
            return None  # a worker polls it with get_activity_task
        return self.invoke_handler(run, fid, seq, spec)

    def _in_flight(self, invokes: list[Invoke]) -> list[Invoke]:
        """The invocations this engine carries out now: an activity's task waits for a worker's
        GetActivityTask, unless a task source (a replay's record) answers it."""
        if self.tasks is not None:
            return list(invokes)
        return [c for c in invokes if c.spec.get("kind") != "activity"]

    def invoke_handler(self, run: ExecutionState, fid: str, seq: int, spec: dict):
        """Call the task's handler (or integration) and return its outcome."""
        resource = spec["resource"]
        for prefix, integration in self.integrations.items():
            if resource.startswith(prefix):
                return integration(self, run, fid, seq, spec)
        ctx = TaskContext(run.arn, run.name, run.state_machine_arn, spec["state"], spec["retry_count"],
                          spec["idempotency_key"], spec.get("token"), spec.get("index"), resource,
                          clock=self.clock)
        fault("in_handler")
        # A synchronous task's TimeoutSeconds counts on the execution's clock, as every other
        # timeout does: on a virtual clock a handler spends time by moving it (ctx.clock.advance).
        started = self.clock.now()
        outcome = self.resources.invoke(spec, ctx)
        if outcome.kind == OutcomeKind.SUCCEEDED and ctx.extra.get("mocked_response"):
            # a mocked service response is the service's whole response
            outcome = TaskOutcome(OutcomeKind.RESPONSE, outcome.value)
        timeout = spec.get("timeout")
        if timeout and not spec.get("wait_for_token") and \
                (self.clock.now() - started).total_seconds() > timeout:
            return TIMED_OUT
        return outcome

    # -- committing -------------------------------------------------------------------------
    def _commit_of(self, run: ExecutionState, consumed: list[int]) -> Commit:
        commit = Commit(run.arn, run.events, consumed=consumed, fence=run.lease_holder)
        if run.keep_history is not None:
            run.keep_history.extend(run.events)
        run.events = []
        cmds, run.commands = run.commands, []
        invokes = []
        for c in cmds:
            if isinstance(c, StartTimer):
                if run.status != "RUNNING":   # an ended execution's timers would only be dropped
                    continue
                commit.add_messages.append(Message(run.arn, c.kind, c.due, c.frame_id, c.seq))
                if c.due > run.start + MAX_EXECUTION_TIME and c.kind != TimerKind.EXECUTION_TIMEOUT:
                    # A timer beyond AWS's one-year limit: the execution times out first, at the limit.
                    commit.add_messages.append(Message(run.arn, TimerKind.EXECUTION_TIMEOUT,
                                                       run.start + MAX_EXECUTION_TIME, "0", 0))
            elif isinstance(c, Invoke):
                fid, seq, spec = c.frame_id, c.seq, c.spec
                frame = run.frames.get(fid)
                if frame is not None and spec.get("kind") != "activity":
                    frame.invoke_spec = _jsonable_spec(spec)
                    run.touch(frame)
                if spec.get("token"):
                    commit.add_tokens.append({
                        "token": spec["token"], "execution_arn": run.arn, "frame_id": fid, "seq": seq,
                        "activity_arn": spec["resource"] if spec["kind"] == "activity" else None,
                        "input": json.dumps(spec["input"]), "state": spec["state"]})
                invokes.append(c)
            elif isinstance(c, CancelFrame):
                commit.cancel_frames.append((c.frame_id, -1))
                commit.close_frames_tokens.append(c.frame_id)
            elif isinstance(c, SettleFrame):
                commit.cancel_frames.append((c.frame_id, c.seq))
                commit.close_frames_tokens.append(c.frame_id)
            elif isinstance(c, StartMapRun):
                commit.map_runs.append(c)
            elif isinstance(c, ExecutionEnded):
                commit.close_all = True
        # Removed first: a frame id can be dropped and used again in one round (the branch of one
        # Parallel, then the branch of the next), and then the new frame is what the checkpoint keeps.
        for fid in run.removed:
            commit.frames[fid] = None
        for fid in run.dirty:
            f = run.frames.get(fid)
            if f is not None:
                commit.frames[fid] = f
        run.dirty = set()
        run.removed = set()
        if commit.close_all:   # every timer and token of the execution goes: none need naming
            commit.cancel_frames, commit.close_frames_tokens = [], []
        if run.status != "RUNNING":   # the row changes only when the execution ends
            commit.execution = {
                "status": run.status, "stopDate": run.stop_time, "error": run.error, "cause": run.cause,
                "output": None if run.output is None and run.status != "SUCCEEDED" else jsontext.dumps(run.output)}
        if commit.close_all:
            for hook in self.end_hooks:
                hook(self, run, commit)
        commit.invokes = invokes
        return commit

    def _flush(self, run: ExecutionState, consumed: list[int]) -> list[Invoke]:
        commit = self._commit_of(run, consumed)
        in_flight = self._in_flight(commit.invokes)
        if in_flight or commit.map_runs:
            # Handlers are about to run on this commit's word. If the process dies before their
            # results are committed, this message (due when our lease would expire) lets another
            # worker claim the execution and re-invoke them. One such safety net serves every
            # round that leaves invocations in flight; the first commit with none consumes it.
            if run.kick is None:
                run.kick = Message(run.arn, MessageKind.RUN, self.clock.now() + timedelta(seconds=self._kick_seconds()))
                commit.add_messages.append(run.kick)
        elif run.kick is not None:
            commit.consumed.append(run.kick.id)
            run.kick = None
        if not commit.invokes and not commit.map_runs and not run.runnable and not run.hold_lease:
            commit.release = self.worker_id   # the last commit of this pass gives the lease back
            run.released = True
        fault("before_commit")
        self.store.apply(commit)
        fault("after_commit")
        if run.status != "RUNNING" and commit.close_all:
            self._notify(run)
        self._start_map_runs(run, commit)
        return in_flight

    def _kick_seconds(self) -> float:
        """When the safety net of in-flight invocations falls due: a heartbeating worker's dead
        executions are taken over once its heartbeat is stale, so the net need not wait longer."""
        return min(self.lease_seconds, self.takeover_seconds) if self._heartbeating else self.lease_seconds

    def _start_map_runs(self, run: ExecutionState, commit: Commit) -> None:
        """Distributed Map runs the commit recorded (MapRunStarted): read their items, start children."""
        for c in commit.map_runs:
            self.map_runs.start(run, c.frame_id, c.seq, c.spec)

    def _notify(self, run: ExecutionState) -> None:
        for listener in list(self.listeners):
            try:
                listener(self.store.get_execution(run.arn))
            except Exception:  # noqa: BLE001 - a listener must not break the engine
                pass


def _jsonable_spec(spec: dict) -> dict:
    t = spec.get("entered_time")
    return {**spec, "entered_time": t.isoformat()} if isinstance(t, datetime) else dict(spec)
