"""The pure step: (compiled machine, execution state, input event) -> new events + commands.

An execution is a set of *frames*: the top level, each running Parallel branch and each running
Map iteration is one. A frame sits on one state of one states table and is in one phase:

    enter     about to enter its state (runnable)
    task      a task was scheduled; waits for its result, a token, or a timeout
    timer     a Wait state waits for its timer
    retry     a failed state waits for its retry delay
    children  a Parallel/Map waits for its branches or iterations
    resume    a result arrived; runnable, `pending` says which

The interpreter never reads a clock, never does I/O and never calls a handler: the engine passes
``now`` in and carries out the commands it leaves in ``run.commands``. Because everything it
decides depends only on the events fed in, the same events always give the same history, which
is what makes crash recovery and replay simple: fold the inputs again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from statelang.interpreter.branches import Branches
from statelang.interpreter.commands import (
    EXECUTION_ENDED,
    MOVED,
    CancelFrame,
    FrameEnded,
    FrameFailed,
    Invoke,
    Pending,
    Resume,
    SettleFrame,
    StartTimer,
    StepOutcome,
    TimerKind,
)
from statelang.interpreter.events import dump, dump_checked, resource_parts
from statelang.interpreter.frames import (  # noqa: F401
    CHILDREN,
    DONE,
    ENTER,
    MAX_HISTORY_EVENTS,
    RESUME,
    RETRY,
    TASK,
    TIMER,
    ExecutionState,
    Frame,
    HistoryLimitReached,
    _join,
    _map_path,
    _rng,
    _seed,
    _token,
)
from statelang.interpreter.retry import decide_retry, find_catcher
from statelang.interpreter.waiting import evaluation_failed, lambda_log_tail, wait_error, wait_problem
from statelang.language import errors as E
from statelang.language.compiled_state import ChosenRule, CState
from statelang.language.env import Env
from statelang.language.errors import StatesError


def _iso(t: datetime) -> str:
    """AWS's context-object timestamps: ISO 8601, UTC, milliseconds, 'Z'."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime | None:
    from statelang.language.timestamps import parse_timestamp as parse
    return parse(text)


MAX_EXECUTION_SECONDS = 365 * 24 * 3600   # AWS: a Standard execution runs one year at most


def _later(now: datetime, seconds: float) -> datetime:
    """When a timer of `seconds` from `now` is due. A wait, timeout, heartbeat or retry delay
    longer than the one year an execution may run cannot fire before the execution times out, so
    it is due just after that year: `SecondsPath` or `TimeoutSecondsPath` of 10**12 (a valid long
    on AWS) overflowed datetime and failed the state with an OverflowError."""
    return now + timedelta(seconds=min(seconds, MAX_EXECUTION_SECONDS + 1))


# Shared by every state that reads no $$ and has no variables: read-only, so nothing can write
# into one state's context and be read by another's.
_NO_CONTEXT: Mapping[str, Any] = MappingProxyType({})
_NO_VARIABLES: Mapping[str, Any] = MappingProxyType({})
_TASK_ENDINGS = frozenset({Resume.TASK_SUCCEEDED, Resume.TASK_RESPONSE, Resume.TASK_FAILED, Resume.TASK_TIMED_OUT})

log = logging.getLogger("statelang.interpreter")


class Interpreter(Branches):
    """Stateless: every method takes the `ExecutionState` it works on."""

    # -- entry points -----------------------------------------------------------------------
    def start(self, run: ExecutionState, now: datetime) -> None:
        try:
            text = dump(run.input)
        except (TypeError, ValueError, RecursionError) as exc:   # a caller's Python value, not JSON
            raise TypeError(f"the execution's input is not a JSON value: {exc}") from None
        details = {"input": text, "inputDetails": {"truncated": False}, "roleArn": run.role_arn}
        for key in ("stateMachineVersionArn", "stateMachineAliasArn"):
            if run.started_with.get(key):
                details[key] = run.started_with[key]
        run.emit(None, "ExecutionStarted", details, now)
        root = Frame("0", None, "", run.machine.start_at[""], run.input, 0)  # AWS: first state's previousEventId is 0
        run.frames[root.id] = root
        run.touch(root)
        run.runnable.append(root.id)
        timeout = run.machine.timeout_seconds
        if timeout:
            run.commands.append(StartTimer("0", now + timedelta(seconds=min(timeout, MAX_EXECUTION_SECONDS)),
                                           TimerKind.EXECUTION_TIMEOUT, 0))

    def advance(self, run: ExecutionState, now: datetime) -> None:
        """Run every runnable frame until each one waits on something outside."""
        if run.status == "RUNNING" and (now - run.start).total_seconds() >= MAX_EXECUTION_SECONDS:
            # AWS ends a Standard execution after one year at most (States.Timeout). No timer is
            # kept for it (one would make a virtual clock jump a year past every parked token);
            # the limit is checked whenever the execution moves, so on a virtual clock a polling
            # loop with no exit ends as it would on AWS instead of spinning forever.
            self._end(run, "ExecutionTimedOut", now, error=E.TIMEOUT, cause="The execution has timed out.")
            return
        while run.runnable and run.status == "RUNNING":
            fid = run.runnable.popleft()
            frame = run.frames.get(fid)
            if frame is None:
                continue
            try:
                self._run_frame(run, frame, now)
            except StatesError as exc:  # a terminal error escaped a state: the execution fails
                self.fail_execution(run, exc.error, exc.cause, now)
            except HistoryLimitReached:
                self.history_limit_reached(run, now)
            except Exception as exc:  # noqa: BLE001 - a defect must fail its execution, never the worker
                self.unexpected_error(run, frame, exc, now)

    def unexpected_error(self, run: ExecutionState, frame: Frame, exc: Exception, now: datetime) -> None:
        """An exception the interpreter did not expect (a defect, or input no check foresaw)
        fails this execution with States.Runtime naming the state and the exception; the
        traceback goes to the log. Nothing escapes to the worker, which goes on with the others."""
        log.error("execution %s: unexpected error in state %r", run.arn, frame.state, exc_info=exc)
        self.fail_execution(run, E.RUNTIME, f"An unexpected error occurred while executing the state "
                                             f"'{frame.state}': {type(exc).__name__}: {exc}", now)

    def history_limit_reached(self, run: ExecutionState, now: datetime) -> None:
        """AWS fails a Standard execution whose history reaches its quota; the failure is the
        quota's last event (an AWS-recorded history ends: 24,999 ChoiceStateExited, 25,000
        ExecutionFailed States.Runtime with this cause)."""
        self.fail_execution(run, E.RUNTIME, f"The execution reached the maximum number of history events "
                                             f"({MAX_HISTORY_EVENTS}).", now)

    def task_result(self, run: ExecutionState, frame_id: str, seq: int, ok: bool, value: Any,
                    cause: str | None, now: datetime, whole: bool = False) -> bool:
        """A task's outcome. Returns False (and changes nothing) when it is stale."""
        frame = run.frames.get(frame_id)
        if frame is None or frame.phase != TASK or frame.seq != seq or run.status != "RUNNING":
            return False
        frame.pending = Pending(Resume.TASK_RESPONSE if whole else Resume.TASK_SUCCEEDED, value) if ok \
            else Pending.failed(Resume.TASK_FAILED, value, cause)
        frame.phase = RESUME
        run.touch(frame)
        run.runnable.append(frame.id)
        return True

    def activity_started(self, run: ExecutionState, frame_id: str, seq: int, worker_name: str,
                         now: datetime) -> None:
        """A worker took the activity task (GetActivityTask)."""
        frame = run.frames.get(frame_id)
        if frame is None or frame.phase != TASK or frame.seq != seq or run.status != "RUNNING":
            return
        if run.next_id >= MAX_HISTORY_EVENTS:
            self.history_limit_reached(run, now)
            return
        run.emit(frame, "ActivityStarted", {"workerName": worker_name}, now)
        run.touch(frame)

    def task_submitted(self, run: ExecutionState, frame_id: str, seq: int, output: Any, now: datetime) -> None:
        """A .waitForTaskToken/.sync task's call was accepted; its outcome comes later."""
        frame = run.frames.get(frame_id)
        if frame is None or frame.phase != TASK or frame.seq != seq:
            return
        st = run.machine.state(frame.table, frame.state)
        rtype, rname = resource_parts(st.resource)
        if run.next_id >= MAX_HISTORY_EVENTS:
            self.history_limit_reached(run, now)
            return
        run.emit(frame, "TaskSubmitted", {"resourceType": rtype, "resource": rname,
                                          "output": dump(output), "outputDetails": {"truncated": False}}, now)
        run.touch(frame)

    def timer_fired(self, run: ExecutionState, frame_id: str, kind: str, seq: int, now: datetime) -> bool:
        if run.status != "RUNNING":
            return False
        if kind == "execution_timeout":
            # AWS (floci-io/floci#2733, measured): ExecutionTimedOut carries States.Timeout and no
            # cause, and follows event 0, not the last state's event.
            self._end(run, "ExecutionTimedOut", now, error=E.TIMEOUT)
            run.events[-1]["previousEventId"] = 0
            return True
        frame = run.frames.get(frame_id)
        if frame is None or frame.seq != seq:
            return False
        if kind == "wait" and frame.phase == TIMER:
            frame.pending = Pending(Resume.WAITED)
        elif kind == "retry" and frame.phase == RETRY:
            frame.pending = Pending(Resume.RETRY)
        elif kind in ("task_timeout", "heartbeat") and frame.phase == TASK:
            frame.pending = Pending.failed(Resume.TASK_TIMED_OUT,
                                           E.HEARTBEAT_TIMEOUT if kind == "heartbeat" else E.TIMEOUT, None)
        else:
            return False
        frame.phase = RESUME
        run.touch(frame)
        run.runnable.append(frame.id)
        return True

    def heartbeat(self, run: ExecutionState, frame_id: str, seq: int, now: datetime) -> bool:
        frame = run.frames.get(frame_id)
        if frame is None or frame.phase != TASK or frame.seq != seq:
            return False
        hb = frame.data.get("heartbeat")
        if hb:
            run.commands.append(StartTimer(frame.id, _later(now, hb), TimerKind.HEARTBEAT, frame.seq))
        return True

    def stop(self, run: ExecutionState, error: str | None, cause: str | None, now: datetime) -> None:
        if run.status == "RUNNING":
            self._end(run, "ExecutionAborted", now, error=error, cause=cause)

    def fail_execution(self, run: ExecutionState, error: str, cause: str | None, now: datetime) -> None:
        if run.status == "RUNNING":
            self._end(run, "ExecutionFailed", now, error=error, cause=cause)

    # -- the frame loop ---------------------------------------------------------------------
    def _run_frame(self, run: ExecutionState, frame: Frame, now: datetime) -> None:
        machine = run.machine
        while True:
            st = machine.tables[frame.table][frame.state]
            if frame.phase == ENTER:
                outcome = self._enter(run, frame, st, now)
            elif frame.phase == RESUME:
                outcome = self._resume(run, frame, st, now)
            else:
                return
            if outcome is MOVED:         # on to the next state, already set on the frame
                continue
            if outcome is None:          # waiting on something outside
                run.touch(frame)
                return
            if type(outcome) is FrameEnded:
                self._frame_succeeded(run, frame, outcome.output, now)
                return
            self._frame_failed(run, frame, outcome.error, outcome.cause, now)
            return

    def _env(self, run: ExecutionState, frame: Frame, st: CState, now: datetime, extra: dict | None = None) -> Env:
        seed = (run.arn, frame.id, frame.last_id)
        if not (st.uses_context or extra):   # nothing reads $$
            return Env(_NO_CONTEXT, frame.variables or _NO_VARIABLES, None, seed)
        ctx: dict[str, Any] = {
            "Execution": {"Id": run.arn, "Input": run.input, "Name": run.name,
                          "RoleArn": run.role_arn, "StartTime": _iso(run.start),
                          "RedriveCount": run.redrive_count},
            # AWS: only a Task's state context has RetryCount (Name, EnteredTime elsewhere).
            "State": {"Name": st.name, "EnteredTime": _iso(frame.entered_time or now)},
            "StateMachine": {"Id": run.state_machine_arn,
                             "Name": run.state_machine_arn.rsplit(":", 1)[-1]},
        }
        if st.type == "Task":
            ctx["State"]["RetryCount"] = sum(frame.retries) if frame.retries else 0
        if extra:
            ctx.update(extra)
        return Env(ctx, frame.variables or _NO_VARIABLES, None, seed)

    def _runtime(self, frame: Frame, st: CState, exc: StatesError) -> StatesError:
        if exc.error in (E.RUNTIME, E.QUERY_EVALUATION_ERROR) and exc.cause \
                and not exc.cause.startswith("An error occurred"):
            return StatesError(exc.error, f"An error occurred while executing the state '{st.name}' "
                                          f"(entered at the event id #{frame.entered_id}). {exc.cause}")
        return exc

    @staticmethod
    def _move(frame: Frame, nxt: str, output: Any) -> StepOutcome:
        """Set the frame on state `nxt` with `output` as its input, to be entered next."""
        frame.state = nxt
        frame.input = output
        frame.phase = ENTER
        if frame.retries:   # the frame's own empty list and dict serve the next state as they are
            frame.retries = []
        if frame.data:
            frame.data = {}
        return MOVED

    def _exit(self, run: ExecutionState, frame: Frame, st: CState, output: Any, now: datetime,
              result: Any = None, env: Env | None = None, assign: Any = None, nxt: str | None = None) -> StepOutcome:
        """Emit <Type>StateExited and move on. Assign is evaluated here, after the output, with the
        variables as they were at state entry (AWS evaluates Assign and Output side by side)."""
        text = dump_checked(output, st.name)
        run.dumped[frame.id] = (output, text)   # the next state's input: dumped once, not twice
        details = {"name": st.name, "output": text, "outputDetails": {"truncated": False}}
        assign = assign if assign is not None else st.assign
        if assign is not None:
            assigned = assign(frame.input, result, env or self._env(run, frame, st, now))
            if assigned:
                _check_variables(assigned, st.name)
                frame.variables = {**(frame.variables or {}), **assigned}
                details["assignedVariables"] = {k: dump(v) for k, v in assigned.items()}
                details["assignedVariablesDetails"] = {"truncated": False}
        run.emit(frame, st.type + "StateExited", details, now)
        if nxt is not None:
            return self._move(frame, nxt, output)
        if st.end or st.next is None:
            return FrameEnded(output)
        return self._move(frame, st.next, output)

    def _enter(self, run: ExecutionState, frame: Frame, st: CState, now: datetime) -> StepOutcome:
        t = st.type
        frame.entered_time = now
        cached = run.dumped.get(frame.id)
        text = cached[1] if cached is not None and cached[0] is frame.input else dump_checked(frame.input, st.name)
        frame.entered_id = run.emit(frame, t + "StateEntered", {
            "name": st.name, "input": text, "inputDetails": {"truncated": False}}, now)
        if st.retry and not frame.retries:
            frame.retries = [0] * len(st.retry)
        try:
            if t == "Pass":
                env = self._env(run, frame, st, now)
                result = st.prepare(frame.input, env)
                out = st.complete(frame.input, result, env)
                return self._exit(run, frame, st, out, now, result, env)
            if t == "Task":
                return self._schedule(run, frame, st, now, first=True)
            if t == "Choice":
                env = self._env(run, frame, st, now)
                effective = st.prepare(frame.input, env)
                chosen = st.choices(effective, env)
                rule_assign = None
                if isinstance(chosen, ChosenRule):   # JSONata: the rule's Next, Output and Assign
                    chosen, rule_output, rule_assign = chosen
                    if rule_output is not None:
                        out = rule_output(frame.input, effective, env)
                        return self._exit(run, frame, st, out, now, effective, env, rule_assign, chosen)
                nxt = chosen or st.default
                if nxt is None:
                    return FrameFailed(E.NO_CHOICE_MATCHED,
                            f"An error occurred while executing the state '{st.name}' (entered at the "
                            f"event id #{frame.entered_id}). No Choice rule matched and there was no "
                            f"Default rule.")  # text unconfirmed against AWS; error name is
                out = st.complete(frame.input, effective, env)
                return self._exit(run, frame, st, out, now, effective, env, rule_assign, nxt)
            if t == "Wait":
                return self._wait(run, frame, st, now)
            if t == "Succeed":
                env = self._env(run, frame, st, now)
                out = st.complete(frame.input, st.prepare(frame.input, env), env)
                run.emit(frame, "SucceedStateExited", {"name": st.name, "output": dump(out),
                                                       "outputDetails": {"truncated": False}}, now)
                return FrameEnded(out)
            if t == "Fail":
                env = self._env(run, frame, st, now)
                error = st.error(frame.input, env) if st.error else None
                cause = st.cause(frame.input, env) if st.cause else None
                return FrameFailed(error, cause)
            if t in ("Parallel", "Map"):
                return self._start_children(run, frame, st, now)
        except StatesError as exc:
            exc = self._runtime(frame, st, exc)
            return self._state_error(run, frame, st, exc.error, exc.cause, now)
        raise StatesError(E.RUNTIME, f"Unknown state type {t!r}")

    def _resume(self, run: ExecutionState, frame: Frame, st: CState, now: datetime) -> StepOutcome:
        pending = frame.pending
        frame.pending = None
        kind = pending.kind
        if kind in _TASK_ENDINGS:
            data = frame.data
            if data.get("timeout") or data.get("heartbeat") or data.get("token"):
                # only then are there timers or a token of this wait to drop
                run.commands.append(SettleFrame(frame.id, frame.seq))
        try:
            if kind is Resume.WAITED:
                env = self._env(run, frame, st, now)
                effective = frame.data.pop("effective")
                out = st.complete(frame.input, effective, env)
                return self._exit(run, frame, st, out, now, effective, env)
            if kind is Resume.RETRY:
                if st.type == "Task":
                    return self._schedule(run, frame, st, now, first=False)
                return self._start_children(run, frame, st, now)
            if kind is Resume.TASK_SUCCEEDED:
                return self._task_succeeded(run, frame, st, pending.value, now)
            if kind is Resume.TASK_RESPONSE:   # a mocked response: already the service's whole answer
                return self._task_succeeded(run, frame, st, pending.value, now, whole=True)
            if kind is Resume.TASK_FAILED:
                self._task_event(run, frame, st, "Failed", now, error=pending.error, cause=pending.cause)
                return self._state_error(run, frame, st, pending.error, pending.cause, now)
            if kind is Resume.TASK_TIMED_OUT:
                self._task_event(run, frame, st, "TimedOut", now, error=pending.error)
                return self._state_error(run, frame, st, pending.error, None, now)
            if kind is Resume.CHILDREN_SUCCEEDED:
                return self._children_succeeded(run, frame, st, pending.value, now)
            if kind is Resume.MAP_RUN_SUCCEEDED:
                run.emit(frame, "MapRunSucceeded", None, now)
                env = self._env(run, frame, st, now)
                frame.data = {}
                out = st.complete(frame.input, pending.value, env)
                return self._exit(run, frame, st, out, now, pending.value, env)
            if kind is Resume.MAP_RUN_FAILED:
                d = {"error": pending.error} if pending.cause is None else {"error": pending.error,
                                                                             "cause": pending.cause}
                run.emit(frame, "MapRunFailed", d, now)
                return self._state_error(run, frame, st, pending.error, pending.cause, now)
            if kind is Resume.CHILDREN_FAILED:
                run.emit(frame, st.type + "StateFailed", {}, now)
                return self._state_error(run, frame, st, pending.error, pending.cause, now)
        except StatesError as exc:
            exc = self._runtime(frame, st, exc)
            return self._state_error(run, frame, st, exc.error, exc.cause, now)
        raise AssertionError(f"unknown pending result {kind}")

    # -- errors -----------------------------------------------------------------------------
    def _state_error(self, run: ExecutionState, frame: Frame, st: CState, error: str, cause: str | None,
                     now: datetime) -> StepOutcome:
        if error in (E.RUNTIME,):
            raise StatesError(error, cause)
        if st.retry:
            decision = decide_retry(st.retry, frame.retries, error, _rng(run, frame))
            if decision is not None:
                i, delay = decision
                frame.retries[i] += 1
                frame.seq += 1
                frame.phase = RETRY
                run.commands.append(StartTimer(frame.id, _later(now, delay), TimerKind.RETRY, frame.seq))
                return None
        catcher = find_catcher(st.catch, error) if st.catch else None
        if catcher is None:
            if error == E.QUERY_EVALUATION_ERROR:   # AWS records the failed expression first
                run.emit(frame, "EvaluationFailed", evaluation_failed(error, cause, st.name), now)
            return FrameFailed(error, cause)
        if cause is None and error in (E.TIMEOUT, E.HEARTBEAT_TIMEOUT):
            cause = ""   # AWS hands a caught timeout to the catcher with an empty Cause
        err_obj = {"Error": error, "Cause": cause} if cause is not None else {"Error": error}
        env = self._env(run, frame, st, now)
        if "_output" in catcher:   # JSONata: Output/Assign see $states.errorOutput
            out = catcher["_output"](frame.input, err_obj, env)
        else:
            out = catcher["_result_path"](frame.input, err_obj)
        return self._exit(run, frame, st, out, now, err_obj, env, catcher.get("_assign") or _NO_ASSIGN,
                          catcher["Next"])

    def _end(self, run: ExecutionState, type_: str, now: datetime, output: Any = None, error: str | None = None,
             cause: str | None = None) -> None:
        if type_ == "ExecutionSucceeded":
            try:
                text = dump_checked(output, "execution")
            except StatesError as exc:
                type_, error, cause = "ExecutionFailed", exc.error, exc.cause
            else:
                run.emit(None, type_, {"output": text, "outputDetails": {"truncated": False}}, now)
                run.status, run.output = "SUCCEEDED", output
        if type_ != "ExecutionSucceeded":
            details: dict[str, Any] = {}
            if error is not None:
                details["error"] = error
            if cause is not None:
                details["cause"] = cause
            run.emit(None, type_, details, now)
            run.status = {"ExecutionFailed": "FAILED", "ExecutionTimedOut": "TIMED_OUT",
                          "ExecutionAborted": "ABORTED"}[type_]
            run.error, run.cause = error, cause
        run.stop_time = now
        for f in list(run.frames.values()):
            run.commands.append(CancelFrame(f.id))
            run.drop(f)
        run.runnable.clear()
        run.commands.append(EXECUTION_ENDED)

    # -- Task -------------------------------------------------------------------------------
    def _schedule(self, run: ExecutionState, frame: Frame, st: CState, now: datetime, first: bool) -> StepOutcome:
        token = None
        extra = None
        if st.wait_for_token or st.kind == "activity":
            token = _token(_rng(run, frame))
            extra = {"Task": {"Token": token}}
        # Parameters are evaluated for every attempt: $$.State.RetryCount differs between them.
        env = self._env(run, frame, st, now, extra)
        args = st.prepare(frame.input, env)
        timeout = st.timeout(frame.input, env) if st.timeout else None
        heartbeat = st.heartbeat(frame.input, env) if st.heartbeat else None
        frame.data = {"args": args, "token": token, "timeout": timeout, "heartbeat": heartbeat}
        frame.seq += 1
        frame.phase = TASK
        kind = st.kind
        if kind == "lambda":
            d = {"resource": st.resource, "input": dump(args), "inputDetails": {"truncated": False}}
            if timeout:
                d["timeoutInSeconds"] = timeout
            run.emit(frame, "LambdaFunctionScheduled", d, now)
            run.emit(frame, "LambdaFunctionStarted", None, now)
        elif kind == "activity":
            d = {"resource": st.resource, "input": dump(args), "inputDetails": {"truncated": False}}
            if timeout:
                d["timeoutInSeconds"] = timeout
            if heartbeat:
                d["heartbeatInSeconds"] = heartbeat
            run.emit(frame, "ActivityScheduled", d, now)
        else:
            rtype, rname = resource_parts(st.resource)
            d = {"resourceType": rtype, "resource": rname, "region": run.region,
                 "parameters": dump(args)}
            if timeout:
                d["timeoutInSeconds"] = timeout
            if heartbeat:
                d["heartbeatInSeconds"] = heartbeat
            run.emit(frame, "TaskScheduled", d, now)
            run.emit(frame, "TaskStarted", {"resourceType": rtype, "resource": rname}, now)
        if timeout:
            run.commands.append(StartTimer(frame.id, _later(now, timeout), TimerKind.TASK_TIMEOUT, frame.seq))
        if heartbeat and (token is not None):
            run.commands.append(StartTimer(frame.id, _later(now, heartbeat), TimerKind.HEARTBEAT, frame.seq))
        retry_count = sum(frame.retries) if frame.retries else 0
        run.commands.append(Invoke(frame.id, frame.seq, {
            "resource": st.resource, "kind": kind, "input": args, "token": token,
            "wait_for_token": bool(st.wait_for_token), "sync": bool(st.sync), "timeout": timeout,
            "state": st.name, "retry_count": retry_count, "index": _map_path(run, frame),
            "idempotency_key": f"{run.arn}/{frame.id}/{st.name}#{frame.entered_id}",
            "entered_time": now}))
        return None

    def _task_event(self, run: ExecutionState, frame: Frame, st: CState, what: str, now: datetime,
                    output: str | None = None, error: str | None = None, cause: str | None = None) -> None:
        prefix = {"lambda": "LambdaFunction", "activity": "Activity"}.get(st.kind, "Task")
        d: dict[str, Any] = {}
        if prefix == "Task":
            d["resourceType"], d["resource"] = resource_parts(st.resource)
        if output is not None:
            d["output"] = output
            d["outputDetails"] = {"truncated": False}
        if error is not None:
            d["error"] = error
        if cause is not None:
            d["cause"] = cause
        run.emit(frame, prefix + what, d, now)

    def _task_succeeded(self, run: ExecutionState, frame: Frame, st: CState, result: Any, now: datetime,
                        whole: bool = False) -> StepOutcome:
        if st.kind == "lambda_invoke" and not st.wait_for_token and not whole:
            length = str(len(dump(result)))
            date = now.strftime("%a, %d %b %Y %H:%M:%S GMT")
            result = {"ExecutedVersion": "$LATEST", "Payload": result,
                      "SdkHttpMetadata": {
                          "AllHttpHeaders": {"X-Amz-Executed-Version": ["$LATEST"], "Connection": ["keep-alive"],
                                             "Content-Length": [length], "Date": [date],
                                             "X-Amzn-Trace-Id": [""], "Content-Type": ["application/json"],
                                             "x-amzn-RequestId": [""]},
                          "HttpHeaders": {"Connection": "keep-alive", "Content-Length": length,
                                          "Content-Type": "application/json",
                                          "Date": date,
                                          "X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": "",
                                          "X-Amzn-Trace-Id": ""},
                          "HttpStatusCode": 200},
                      "SdkResponseMetadata": {"RequestId": str(_token(_rng(run, frame)))},
                      "StatusCode": 200}
            if (frame.data.get("args") or {}).get("LogType") == "Tail":   # Invoke's LogType: Tail
                result["LogResult"] = lambda_log_tail(result["SdkResponseMetadata"]["RequestId"])
        try:
            text = dump_checked(result, st.name)
        except StatesError as exc:
            who = st.resource if st.kind in ("lambda", "activity") else resource_parts(st.resource)[0]
            cause = (f"The state/task '{who}' returned a result with a size exceeding the maximum "
                     f"number of bytes service limit.")
            self._task_event(run, frame, st, "Failed", now, error=exc.error, cause=cause)
            return self._state_error(run, frame, st, exc.error, cause, now)
        self._task_event(run, frame, st, "Succeeded", now, output=text)
        env = self._env(run, frame, st, now)
        out = st.complete(frame.input, result, env)
        frame.data = {}
        return self._exit(run, frame, st, out, now, result, env)

    # -- Wait -------------------------------------------------------------------------------
    def _wait(self, run: ExecutionState, frame: Frame, st: CState, now: datetime) -> None:
        env = self._env(run, frame, st, now)
        effective = st.prepare(frame.input, env)
        how, fn = st.wait_until
        value = fn(effective, env)
        problem = wait_problem(how, value)
        if problem is not None:
            raise wait_error(st, how, value, problem)
        if how == "seconds":
            due = _later(now, value)
        else:
            due = parse_timestamp(value)
        frame.data = {"effective": effective}
        frame.seq += 1
        frame.phase = TIMER
        run.commands.append(StartTimer(frame.id, due, TimerKind.WAIT, frame.seq))
        return None

def _NO_ASSIGN(data: Any, result: Any, env: Env) -> dict:
    return {}


MAX_VARIABLE_BYTES = 262144       # one variable's serialized size (AWS)
MAX_ASSIGN_BYTES = 262144         # all variables assigned by one Assign field (AWS)


def _check_variables(assigned: dict, state: str) -> None:
    total = 0
    for name, value in assigned.items():
        size = len(dump(value).encode())
        total += size
        if size > MAX_VARIABLE_BYTES:
            raise StatesError(E.DATA_LIMIT_EXCEEDED, f"The variable '{name}' assigned in state '{state}' "
                                                     f"exceeds the maximum size of 256 KiB.")
    if total > MAX_ASSIGN_BYTES:
        raise StatesError(E.DATA_LIMIT_EXCEEDED, f"The variables assigned in state '{state}' exceed the "
                                                 f"maximum combined size of 256 KiB.")

