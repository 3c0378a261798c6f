"""Parallel branches and Map iterations: child frames of the state that runs them.

A Parallel or inline Map state puts its frame in the ``children`` phase and adds one child frame
per branch or running iteration (up to MaxConcurrency); each child reports back when it ends,
and the first unhandled failure aborts its siblings. A distributed Map hands its items to the
engine's map runner instead (``map_run`` command) and is told when the map run is over.
This is a mixin of `Interpreter`; it shares the interpreter's frame and event helpers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from statelang.interpreter.commands import CancelFrame, Pending, Resume, StartMapRun, StepOutcome
from statelang.interpreter.frames import CHILDREN, RESUME, ExecutionState, Frame, _join, _rng, _token
from statelang.language import errors as E
from statelang.language.compiled_state import CState
from statelang.language.env import Env
from statelang.language.errors import StatesError


class Branches:
    def _frame_succeeded(self, run: ExecutionState, frame: Frame, output: Any, now: datetime) -> None:
        if frame.parent is None:
            self._end(run, "ExecutionSucceeded", now, output=output)
            return
        parent = run.frames[frame.parent]
        pst = run.machine.tables[parent.table][parent.state]
        parent.last_id = frame.last_id
        if pst.type == "Map":
            run.emit(parent, "MapIterationSucceeded", {"name": pst.name, "index": frame.index}, now)
        results = parent.data["results"]
        results[frame.index] = output
        run.drop(frame)
        self._child_finished(run, parent, pst, now)

    def _frame_failed(self, run: ExecutionState, frame: Frame, error: str | None, cause: str | None,
                      now: datetime) -> None:
        if frame.parent is None:
            self._end(run, "ExecutionFailed", now, error=error, cause=cause)
            return
        parent = run.frames[frame.parent]
        pst = run.machine.tables[parent.table][parent.state]
        run.drop(frame)
        parent.last_id = frame.last_id
        if pst.type == "Map":
            run.emit(parent, "MapIterationFailed", {"name": pst.name, "index": frame.index}, now)
            parent.data["failed"] += 1
            parent.data["results"][frame.index] = (
                {"Error": error, "Cause": cause} if cause is not None else {"Error": error})
            if self._tolerated(parent):
                self._child_finished(run, parent, pst, now)
                return
            error, cause = (E.EXCEED_TOLERATED_FAILURE_THRESHOLD,
                            "The specified tolerated failure threshold was exceeded") \
                if parent.data.get("tolerance") else (error, cause)
        self._abort_children(run, parent, now)
        parent.pending = Pending.failed(Resume.CHILDREN_FAILED, error, cause)
        parent.phase = RESUME
        run.touch(parent)
        run.runnable.append(parent.id)

    def _tolerated(self, parent: Frame) -> bool:
        tol = parent.data.get("tolerance")
        if not tol:
            return False
        count, pct = tol
        failed, total = parent.data["failed"], parent.data["total"]
        if count is not None and failed > count:
            return False
        if pct is not None and total and failed * 100.0 / total > pct:
            return False
        return True

    def _abort_children(self, run: ExecutionState, parent: Frame, now: datetime) -> None:
        pst = run.machine.tables[parent.table][parent.state]
        for child in [f for f in run.frames.values() if f.parent == parent.id]:
            self._abort_children(run, child, now)
            if pst.type == "Map":
                run.emit(parent, "MapIterationAborted", {"name": pst.name, "index": child.index}, now)
            run.commands.append(CancelFrame(child.id))
            run.drop(child)
        parent.data["queue"] = []

    def _start_children(self, run: ExecutionState, frame: Frame, st: CState, now: datetime) -> StepOutcome:
        env = self._env(run, frame, st, now)
        if st.type == "Parallel":
            effective = st.prepare(frame.input, env)
            run.emit(frame, "ParallelStateStarted", None, now)
            frame.data = {"results": [None] * st.branches, "remaining": st.branches, "failed": 0,
                          "queue": [], "running": st.branches}
            frame.phase = CHILDREN
            frame.seq += 1
            for i in range(st.branches):
                table = _join(frame.table, f"{st.name}/{i}")
                child = Frame(f"{frame.id}.{i}", frame.id, table, run.machine.start_at[table], effective,
                              frame.last_id, i)
                child.variables = frame.variables
                run.frames[child.id] = child
                run.touch(child)
                run.runnable.append(child.id)
            return None
        # Map
        effective = st.prepare(frame.input, env)
        if st.distributed:
            return self._start_map_run(run, frame, st, effective, env, now)
        items = st.items(effective, env)
        if not isinstance(items, list):
            raise StatesError(E.RUNTIME, f"Invalid path '{st.definition.get('ItemsPath', '$')}': "
                                         f"The Map state's ItemsPath must resolve to a JSON array.")
        mc = st.max_concurrency(effective, env) if st.max_concurrency else 0
        tol = None
        if st.tolerated_count or st.tolerated_percentage:
            tol = (st.tolerated_count(effective, env) if st.tolerated_count else None,
                   st.tolerated_percentage(effective, env) if st.tolerated_percentage else None)
        run.emit(frame, "MapStateStarted", {"length": len(items)}, now)
        n = len(items)
        frame.data = {"results": [None] * n, "remaining": n, "failed": 0, "total": n,
                      "tolerance": tol, "effective": effective, "items": items,
                      "next": 0, "running": 0, "limit": int(mc or 0)}
        frame.phase = CHILDREN
        frame.seq += 1
        if n == 0:
            frame.pending = Pending(Resume.CHILDREN_SUCCEEDED, [])
            frame.phase = RESUME
            run.runnable.append(frame.id)
            return None
        self._launch_items(run, frame, st, now)
        return None

    def _start_map_run(self, run: ExecutionState, frame: Frame, st: CState, effective: Any, env: Env,
                       now: datetime) -> None:
        from statelang.language import paths, payload_templates
        d = st.definition
        items = reader = None
        jsonata = st.query_language == "JSONata"
        if jsonata:
            from statelang.language import jsonata as jsonata_mod

            def evaluate(value, field):   # "{% %}" strings with $states.input = the state input
                return jsonata_mod.compile_template(value, field)(jsonata_mod.bindings(env, effective))
        else:
            def evaluate(value, field):
                return payload_templates.compile_template(value, field)(effective, env)
        if st.item_reader:
            reader = dict(st.item_reader)
            for key in ("Parameters", "Arguments", "ReaderConfig"):
                if key in reader:
                    reader[key] = evaluate(reader[key], key)
            cfg = reader.get("ReaderConfig") or {}
            if "MaxItemsPath" in cfg:
                cfg = dict(cfg, MaxItems=paths.compile_path(cfg.pop("MaxItemsPath"))(effective, env))
                reader["ReaderConfig"] = cfg
        else:
            items = st.items(effective, env)
            if not isinstance(items, list):
                raise StatesError(E.RUNTIME, f"Invalid path '{d.get('ItemsPath', '$')}': "
                                             f"The Map state's ItemsPath must resolve to a JSON array.")
        batcher = None
        if st.item_batcher:
            batcher = {}
            for key in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
                if key in st.item_batcher:
                    batcher[key] = st.item_batcher[key]
                elif key + "Path" in st.item_batcher:
                    batcher[key] = paths.compile_path(st.item_batcher[key + "Path"])(effective, env)
            if "BatchInput" in st.item_batcher:
                batcher["BatchInput"] = evaluate(st.item_batcher["BatchInput"], "BatchInput")
        writer = None
        if st.result_writer:
            writer = dict(st.result_writer)
            for key in ("Parameters", "Arguments"):
                if key in writer:
                    writer[key] = evaluate(writer[key], key)
        mc = st.max_concurrency(effective, env) if st.max_concurrency else 0
        tol = (st.tolerated_count(effective, env) if st.tolerated_count else None,
               st.tolerated_percentage(effective, env) if st.tolerated_percentage else None)
        label = st.label or st.name
        sm_name = run.state_machine_arn.rsplit(":", 1)[-1]
        map_run_arn = (f"arn:aws:states:{run.region}:{run.account}:mapRun:{sm_name}/{label}:"
                       f"{_token(_rng(run, frame))}")
        run.emit(frame, "MapRunStarted", {"mapRunArn": map_run_arn}, now)
        frame.phase = CHILDREN
        frame.seq += 1
        spec = {"mapRunArn": map_run_arn, "items": items, "reader": reader, "batcher": batcher,
                "writer": writer, "maxConcurrency": int(mc or 0), "tolerance": tol,
                "executionType": st.execution_type, "state": st.name, "label": label}
        frame.data = {"map_run": map_run_arn, "effective": effective, "spec": spec}
        run.commands.append(StartMapRun(frame.id, frame.seq, spec))
        return None

    def map_item_input(self, run: ExecutionState, frame_id: str, index: int, item: Any, now: datetime) -> Any:
        """A distributed Map item's input: the ItemSelector (with $$.Map.Item) or the item."""
        frame = run.frames[frame_id]
        st = run.machine.tables[frame.table][frame.state]
        if st.item_selector is None:
            return item
        env = self._env(run, frame, st, now, {"Map": {"Item": {"Index": index, "Value": item}}})
        return st.item_selector(frame.data["effective"], env)

    def map_run_finished(self, run: ExecutionState, frame_id: str, seq: int, ok: bool, value: Any,
                         cause: str | None, now: datetime) -> bool:
        frame = run.frames.get(frame_id)
        if frame is None or frame.phase != CHILDREN or frame.seq != seq or run.status != "RUNNING":
            return False
        frame.pending = Pending(Resume.MAP_RUN_SUCCEEDED, value) if ok \
            else Pending.failed(Resume.MAP_RUN_FAILED, value, cause)
        frame.phase = RESUME
        run.touch(frame)
        run.runnable.append(frame.id)
        return True

    def _launch_items(self, run: ExecutionState, frame: Frame, st: CState, now: datetime) -> None:
        data = frame.data
        items, limit = data["items"], data["limit"]
        table = _join(frame.table, st.name)
        start_at = run.machine.start_at[table]
        while data["next"] < len(items) and (not limit or data["running"] < limit):
            i = data["next"]
            data["next"] = i + 1
            data["running"] += 1
            item = items[i]
            if st.item_selector is not None:
                env = self._env(run, frame, st, now, {"Map": {"Item": {"Index": i, "Value": item}}})
                item = st.item_selector(data["effective"], env)
            run.emit(frame, "MapIterationStarted", {"name": st.name, "index": i}, now)
            child = Frame(f"{frame.id}.{i}", frame.id, table, start_at, item, frame.last_id, i)
            child.variables = frame.variables
            run.frames[child.id] = child
            run.touch(child)
            run.runnable.append(child.id)

    def _child_finished(self, run: ExecutionState, parent: Frame, pst: CState, now: datetime) -> None:
        data = parent.data
        data["remaining"] -= 1
        data["running"] -= 1
        run.touch(parent)
        if pst.type == "Map" and data["next"] < len(data["items"]):
            self._launch_items(run, parent, pst, now)
        if data["remaining"] == 0:
            parent.pending = Pending(Resume.CHILDREN_SUCCEEDED, data["results"])
            parent.phase = RESUME
            run.runnable.append(parent.id)

    def _children_succeeded(self, run: ExecutionState, frame: Frame, st: CState, results: list, now: datetime) -> StepOutcome:
        run.emit(frame, st.type + "StateSucceeded", None, now)
        env = self._env(run, frame, st, now)
        frame.data = {}
        out = st.complete(frame.input, results, env)
        return self._exit(run, frame, st, out, now, results, env)
