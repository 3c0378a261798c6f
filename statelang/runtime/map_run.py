"""Distributed Map runs: each item (or batch of items) is a child execution of the item processor.

The interpreter only says "a map run starts here" and later hears "it is over"; everything
between lives here. A child is an ordinary execution of the same engine, started with a link to
its parent, and its end commit carries a ``map_child_done`` message to the parent, so a result
reaches the parent exactly once even across a crash (the parent consumes the message in the same
transaction as the step that follows it).

What is durable, and why nothing else needs to be:
  * which children exist and how they ended — they are executions in the store, named by
    (map run, index), so starting one twice is refused by the store (ExecutionAlreadyExists);
  * which results the parent has taken in — exactly the ended children whose ``map_child_done``
    message is no longer pending;
  * results already written out — the chunk files under ``<s3 root>/.statelang/maprun/``.
So the in-memory state (items, counters, a buffer of results) can always be rebuilt from the
store after a crash, and the parent's checkpoint is not rewritten on every child's end: a large
map run would otherwise re-serialise its frame tens of thousands of times.

A map run belongs to the engine that holds it in memory; a second engine (after a crash, or a
worker taking over an expired lease) rebuilds it in `recover`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from statelang.language import errors as E
from statelang.language.errors import StatesError
from statelang.runtime import item_reader as itemio
from statelang.runtime.storage import ExecutionAlreadyExistsError, Message, MessageKind

DEFAULT_MAX_CONCURRENCY = 10_000   # AWS runs up to 10,000 children at once when MaxConcurrency is 0
CHUNK_ENTRIES = 1000               # results kept in memory before they go to a chunk file
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"
MAP_RUN = "map_run"                # the store's record kind of a map run (DescribeMapRun's row)
_FAR = datetime(9999, 1, 1, tzinfo=UTC)


def _iso_ms(t: Any) -> str | None:
    """AWS's result-file timestamps: ``2025-02-04T01:49:50.099Z``."""
    if t is None:
        return None
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _uuid(text: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha1(text.encode()).digest()[:16], version=4))


class _MapRun:
    """One map run's working state: rebuilt from the store whenever it is missing."""

    def __init__(self, arn: str, run_arn: str, frame_id: str, seq: int, spec: dict):
        self.arn, self.run_arn, self.frame_id, self.seq, self.spec = arn, run_arn, frame_id, seq, spec
        self.items: list = []
        self.bounds: list[int] | None = None   # batch start offsets (+ end) when an ItemBatcher is set
        self.children = 0
        self.processor = ""
        self.sm_arn = self.arn_prefix = ""
        self.express = spec.get("executionType") == "EXPRESS"
        self.flags = bytearray()                # 1: the parent has taken this child's result in
        self.started = self.done = self.failed_items = 0
        self.results: dict[int, Any] = {}       # child outputs, when there are no result files
        self.buffer: list[str] = []             # result lines not yet in a chunk file
        self.chunks = 0
        self.target: tuple[str, str] | None = None
        self.writer_config: dict = {}
        self.root: Path = Path()

    def child_arn(self, i: int) -> tuple[str, str]:
        name = _uuid(f"{self.arn}#{i}")
        if self.express:
            return f"{self.arn_prefix.replace(':execution:', ':express:')}{name}:{_uuid(f'{self.arn}#{i}#x')}", name
        return f"{self.arn_prefix}{name}", name

    def item_count(self, i: int) -> int:
        return 1 if self.bounds is None else self.bounds[i + 1] - self.bounds[i]

    @property
    def chunk_dir(self) -> Path:
        return self.root / itemio.HIDDEN / "maprun" / self.arn.rsplit(":", 1)[-1]


class MapRuns:
    """The engine's distributed Map runner (``engine.map_runs``)."""

    def __init__(self, engine):
        # A proxy, not a reference: the engine owns its map runner, and a cycle between them would
        # leave every finished in-memory engine (its whole store) to the cyclic garbage collector.
        self.engine = weakref.proxy(engine)
        self.live: dict[str, _MapRun] = {}
        if _on_end not in engine.end_hooks:
            engine.end_hooks.append(_on_end)

    # -- the engine's hooks ---------------------------------------------------------------------
    def start(self, run, frame_id: str, seq: int, spec: dict) -> None:
        """Called after the commit that recorded MapRunStarted: read the items, start children."""
        frame = run.frames.get(frame_id)
        if frame is None:
            return
        try:
            mr = self._build(run, frame, seq, spec)
        except StatesError as e:
            self._finished(run, None, frame_id, seq, False, e.error, e.cause)
            return
        self.live[mr.arn] = mr
        self._advance(run, mr)

    def child_done(self, run, m: Message, now: datetime) -> None:
        """A child ended: take its result in, start the next ones, end the map run when due."""
        p = m.payload or {}
        frame = run.frames.get(m.frame_id)
        if frame is None or frame.seq != m.seq or frame.phase != "children" \
                or frame.map_run_arn != p.get("mapRunArn"):
            return   # the map run is over (failed, aborted): late children are ignored
        mr = self.live.get(p["mapRunArn"]) or self._rebuild(run, frame)
        if mr is None:
            return
        i = p["index"]
        if i >= mr.children or mr.flags[i]:
            return
        try:
            self._take(mr, i, p["status"], p)
        except StatesError as e:
            self._finished(run, mr, mr.frame_id, mr.seq, False, e.error, e.cause)
            return
        if self._exceeded(mr):
            self._abort_children(mr)
            self._end(run, mr, False, E.EXCEED_TOLERATED_FAILURE_THRESHOLD, THRESHOLD_CAUSE)
            return
        self._advance(run, mr)

    def recover(self, run, frame) -> None:
        """Called whenever the parent is loaded with a map run in flight; rebuilds what is missing."""
        arn = frame.map_run_arn
        if arn in self.live:
            return
        mr = self._rebuild(run, frame)
        if mr is not None:
            self._advance(run, mr)

    # -- building -------------------------------------------------------------------------------
    def _build(self, run, frame, seq: int, spec: dict) -> _MapRun:
        eng = self.engine
        mr = _MapRun(spec["mapRunArn"], run.arn, frame.id, seq, spec)
        mr.root = itemio.s3_root(eng)
        if spec.get("writer"):
            mr.target = itemio.writer_target(spec["writer"], mr.root)
            mr.writer_config = spec["writer"].get("WriterConfig") or {}
        items = spec.get("items")
        mr.items = list(items) if items is not None else itemio.read_items(spec.get("reader") or {}, mr.root)
        batcher = spec.get("batcher")
        if batcher is not None:
            sizes = None
            if batcher.get("MaxInputBytesPerBatch"):
                now = eng.clock.now()
                sizes = (len(json.dumps(eng.interpreter.map_item_input(run, frame.id, j, it, now),
                                        separators=(",", ":")).encode()) for j, it in enumerate(mr.items))
            mr.bounds = itemio.batch_bounds(sizes, len(mr.items), batcher)
            mr.children = len(mr.bounds) - 1
        else:
            mr.children = len(mr.items)
        mr.flags = bytearray(mr.children)
        st = run.machine.tables[frame.table][frame.state]
        d = st.definition
        proc = dict(d.get("ItemProcessor") or d.get("Iterator") or {})
        proc.pop("ProcessorConfig", None)
        if "QueryLanguage" not in proc and getattr(st, "query_language", None) == "JSONata":
            proc["QueryLanguage"] = "JSONata"
        mr.processor = json.dumps(proc, sort_keys=True, separators=(",", ":"))
        sm = run.state_machine_arn
        sm_name = sm.split(":stateMachine:")[1].split(":")[0] if ":stateMachine:" in sm else sm.rsplit(":", 1)[-1]
        base = f"arn:aws:states:{eng.region}:{eng.account_id}"
        mr.sm_arn = f"{base}:stateMachine:{sm_name}/{spec['label']}"
        mr.arn_prefix = f"{base}:execution:{sm_name}/{spec['label']}:"
        self._record(run, mr)
        return mr

    def _record(self, run, mr: _MapRun) -> None:
        """The map run's row for DescribeMapRun/ListMapRuns; an UpdateMapRun made before a crash
        (or on another engine) is taken back from it into the spec."""
        store = self.engine.store
        rec = store.get_record(MAP_RUN, mr.arn)
        if rec is None:
            count, pct = (mr.spec.get("tolerance") or [None, None])[:2]
            store.put_record(MAP_RUN, mr.arn, {
                "mapRunArn": mr.arn, "executionArn": run.arn, "stateMachineArn": mr.sm_arn,
                "startDate": self.engine.clock.now().isoformat(), "status": "RUNNING",
                "maxConcurrency": mr.spec.get("maxConcurrency") or 0, "toleratedFailureCount": count or 0,
                "toleratedFailurePercentage": float(pct or 0), "items": len(mr.items), "bounds": mr.bounds})
            return
        changed = rec.get("updated") or {}
        self.update(mr.arn, changed.get("maxConcurrency"), changed.get("toleratedFailureCount"),
                    changed.get("toleratedFailurePercentage"), mr)

    def update(self, arn: str, max_concurrency: int | None, count: int | None, pct: float | None,
               mr: _MapRun | None = None) -> None:
        """UpdateMapRun on a live map run: the next child that ends sees the new limits. (The API
        records the change as the record's ``updated``, which a rebuilt map run takes back.)"""
        mr = mr or self.live.get(arn)
        if mr is None:
            return
        tol = list(mr.spec.get("tolerance") or [None, None])[:2]
        if count is not None:
            tol[0] = count
        if pct is not None:
            tol[1] = pct
        mr.spec = dict(mr.spec, tolerance=tol,
                       maxConcurrency=mr.spec.get("maxConcurrency") if max_concurrency is None else max_concurrency)

    def _rebuild(self, run, frame) -> _MapRun | None:
        """After a crash or on another engine: the items re-read, the children and the pending
        messages listed, results that never reached a chunk file taken back from the children."""
        spec = frame.map_run_spec
        if not spec:
            return None
        try:
            mr = self._build(run, frame, frame.seq, spec)
        except StatesError as e:
            self._finished(run, None, frame.id, frame.seq, False, e.error, e.cause)
            return None
        store = self.engine.store
        pending = {m.payload["index"] for m in store.due_messages(run.arn, _FAR)
                   if m.kind == "map_child_done" and (m.payload or {}).get("mapRunArn") == mr.arn}
        chunked = self._chunked_indices(mr)
        mr.chunks = max((int(p.stem.split("-")[1]) + 1 for p in mr.chunk_dir.glob("chunk-*.tsv")), default=0)
        for row in store.list_executions(mr.sm_arn):
            link = row.get("parent") or {}
            if link.get("mapRunArn") != mr.arn:
                continue
            i = link["index"]
            mr.started = max(mr.started, i + 1)
            if row["status"] == "RUNNING" or i in pending:
                continue
            payload = {"input": row.get("input"), "output": row.get("output"), "error": row.get("error"),
                       "cause": row.get("cause"), "start": _iso_ms(row.get("startDate")),
                       "stop": _iso_ms(row.get("stopDate"))}
            if i in chunked:
                mr.flags[i] = 1
                mr.done += 1
                if row["status"] != "SUCCEEDED":
                    mr.failed_items += mr.item_count(i)
            else:
                self._take(mr, i, row["status"], payload)
        self.live[mr.arn] = mr
        return mr

    # -- running ----------------------------------------------------------------------------------
    def _advance(self, run, mr: _MapRun) -> None:
        if mr.done >= mr.children:
            self._end(run, mr, True, None, None)
            return
        limit = mr.spec.get("maxConcurrency") or DEFAULT_MAX_CONCURRENCY
        try:
            while mr.started < mr.children and mr.started - mr.done < limit:
                self._start_child(run, mr, mr.started)
                mr.started += 1
        except StatesError as e:
            self._abort_children(mr)
            self._end(run, mr, False, e.error, e.cause)

    def _child_input(self, run, mr: _MapRun, i: int) -> Any:
        it, now = self.engine.interpreter, self.engine.clock.now()
        if mr.bounds is None:
            return it.map_item_input(run, mr.frame_id, i, mr.items[i], now)
        lo, hi = mr.bounds[i], mr.bounds[i + 1]
        out: dict[str, Any] = {}
        if mr.spec["batcher"].get("BatchInput") is not None:
            out["BatchInput"] = mr.spec["batcher"]["BatchInput"]
        out["Items"] = [it.map_item_input(run, mr.frame_id, j, mr.items[j], now) for j in range(lo, hi)]
        return out

    def _start_child(self, run, mr: _MapRun, i: int) -> None:
        arn, name = mr.child_arn(i)
        link = {"executionArn": run.arn, "frame": mr.frame_id, "seq": mr.seq, "mode": "map", "index": i,
                "mapRunArn": mr.arn}
        try:
            self.engine.start(mr.processor, self._child_input(run, mr, i), arn=arn, name=name,
                              state_machine_arn=mr.sm_arn, role_arn=run.role_arn,
                              extra={"parent": link, "executionType": mr.spec.get("executionType") or "STANDARD"})
        except ExecutionAlreadyExistsError:
            pass   # started before a crash: its end message will come (or has come) as for any other

    def _take(self, mr: _MapRun, i: int, status: str, p: dict) -> None:
        mr.flags[i] = 1
        mr.done += 1
        if status != "SUCCEEDED":
            mr.failed_items += mr.item_count(i)
        if mr.target is None:
            mr.results[i] = _output(status, p)
            return
        for entry in self._entries(mr, i, status, p):
            mr.buffer.append(f"{i}\t{status}\t{entry}")
        if len(mr.buffer) >= CHUNK_ENTRIES:
            self._flush_chunk(mr)

    def _entries(self, mr: _MapRun, i: int, status: str, p: dict) -> list[str]:
        """One child's lines for the result files, as WriterConfig.Transformation shapes them
        (NONE by default when exporting; a failed child is always written as NONE)."""
        transformation = mr.writer_config.get("Transformation", "NONE")
        if status == "SUCCEEDED" and transformation in ("COMPACT", "FLATTEN"):
            out = json.loads(p["output"]) if p.get("output") is not None else None
            if transformation == "FLATTEN" and isinstance(out, list):
                return [json.dumps(v, separators=(",", ":")) for v in out]
            return [json.dumps(out, separators=(",", ":"))]
        arn, name = mr.child_arn(i)
        entry: dict[str, Any] = {"ExecutionArn": arn, "Input": p.get("input"), "InputDetails": {"Included": True},
                                 "Name": name}
        if status == "SUCCEEDED":
            entry.update(Output=p.get("output"), OutputDetails={"Included": True}, RedriveCount=0,
                         RedriveStatus="NOT_REDRIVABLE",
                         RedriveStatusReason="Execution is SUCCEEDED and cannot be redriven")
        else:
            if p.get("error") is not None:
                entry["Error"] = p["error"]
            if p.get("cause") is not None:
                entry["Cause"] = p["cause"]
            entry.update(RedriveCount=0, RedriveStatus="REDRIVABLE_BY_MAP_RUN")
        entry.update(StartDate=p.get("start"), StateMachineArn=mr.sm_arn, Status=status, StopDate=p.get("stop"))
        return [json.dumps(entry, separators=(",", ":"))]

    def _flush_chunk(self, mr: _MapRun) -> None:
        """Results leave memory in chunk files, written whole (temp file, then rename) so that
        a crash leaves either the chunk or nothing."""
        if not mr.buffer:
            return
        try:
            mr.chunk_dir.mkdir(parents=True, exist_ok=True)
            path = mr.chunk_dir / f"chunk-{mr.chunks}.tsv"
            tmp = path.with_suffix(".tmp")
            tmp.write_text("\n".join(mr.buffer) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            raise StatesError(E.RESULT_WRITER_FAILED, f"{type(e).__name__}: {e}") from e
        mr.chunks += 1
        mr.buffer = []

    def _chunked_indices(self, mr: _MapRun) -> set[int]:
        out: set[int] = set()
        for path in mr.chunk_dir.glob("chunk-*.tsv"):
            with path.open(encoding="utf-8") as f:
                out.update(int(line.split("\t", 1)[0]) for line in f if line.strip())
        return out

    def _exceeded(self, mr: _MapRun) -> bool:
        """ToleratedFailureCount/Percentage over items; with neither, one failure is too many."""
        count, pct = (mr.spec.get("tolerance") or [None, None])[:2]
        failed = mr.failed_items
        if count is None and pct is None:
            return failed > 0
        total = len(mr.items) or 1
        return (count is not None and failed > count) or (pct is not None and failed * 100.0 / total > pct)

    def _abort_children(self, mr: _MapRun) -> None:
        now = self.engine.clock.now()
        for i in range(mr.started):
            if not mr.flags[i]:
                self.engine.store.add_message(Message(mr.child_arn(i)[0], MessageKind.STOP, now, payload={
                    "error": "States.Aborted", "cause": f"The Map Run {mr.arn} failed."}))

    # -- ending -----------------------------------------------------------------------------------
    def _end(self, run, mr: _MapRun, ok: bool, error: str | None, cause: str | None) -> None:
        try:
            output = self._output(mr)
        except StatesError as e:
            ok, error, cause, output = False, e.error, e.cause, None
        self._finished(run, mr, mr.frame_id, mr.seq, ok, output if ok else error, cause)

    def _output(self, mr: _MapRun) -> Any:
        if mr.target is None:
            fetched = self._missing_results(mr)
            outs = [mr.results[i] if i in mr.results else fetched.get(i) for i in range(mr.children)]
            transformation = mr.writer_config.get("Transformation", "COMPACT")
            if transformation == "FLATTEN":
                return [v for out in outs for v in (out if isinstance(out, list) else [out])]
            return outs
        self._flush_chunk(mr)
        bucket, prefix = mr.target
        files = itemio.ResultFiles(mr.root, bucket, prefix, mr.arn,
                                   jsonl=mr.writer_config.get("OutputType") == "JSONL")
        try:
            seen = bytearray(mr.children)
            for k in range(mr.chunks):
                path = mr.chunk_dir / f"chunk-{k}.tsv"
                if not path.exists():
                    continue
                here = set()
                with path.open(encoding="utf-8") as f:
                    for line in f:
                        i_text, status, entry = line.rstrip("\n").split("\t", 2)
                        i = int(i_text)
                        if seen[i] and i not in here:
                            continue   # a duplicate written just before a crash
                        seen[i] = 1
                        here.add(i)
                        files.add(status, entry)
            for i in range(mr.started, mr.children):   # never started: the map run failed first
                files.add("PENDING", json.dumps({"Input": json.dumps(self._pending_input(mr, i)),
                                                 "InputDetails": {"Included": True}, "Status": "PENDING"},
                                                separators=(",", ":")))
            out = files.finish()
        except OSError as e:
            files.abort()
            raise StatesError(E.RESULT_WRITER_FAILED, f"{type(e).__name__}: {e}") from e
        return out

    def _pending_input(self, mr: _MapRun, i: int) -> Any:
        if mr.bounds is None:
            return mr.items[i]
        return {"Items": mr.items[mr.bounds[i]:mr.bounds[i + 1]]}

    def _missing_results(self, mr: _MapRun) -> dict[int, Any]:
        """Outputs taken in before a crash are read back from the children themselves."""
        missing = [i for i in range(mr.children) if i not in mr.results]
        out = {}
        for i in missing:
            row = self.engine.store.get_execution(mr.child_arn(i)[0])
            if row is not None:
                out[i] = _output(row["status"], row)
        return out

    def _finished(self, run, mr: _MapRun | None, frame_id: str, seq: int, ok: bool, value: Any,
                  cause: str | None) -> None:
        if mr is not None:
            self.live.pop(mr.arn, None)
            _remove_tree(mr.chunk_dir)
            _close_record(self.engine, mr.arn, "SUCCEEDED" if ok else "FAILED")
        self.engine.interpreter.map_run_finished(run, frame_id, seq, ok, value, cause, self.engine.clock.now())


def _output(status: str, p: dict) -> Any:
    if status == "SUCCEEDED":
        return json.loads(p["output"]) if p.get("output") is not None else None
    return {"Error": p.get("error")} if p.get("cause") is None else {"Error": p.get("error"), "Cause": p["cause"]}


def _close_record(engine, arn: str, status: str) -> None:
    rec = engine.store.get_record(MAP_RUN, arn)
    if rec is not None and rec.get("status") == "RUNNING":
        engine.store.put_record(MAP_RUN, arn, dict(rec, status=status, stopDate=engine.clock.now().isoformat()))


def _remove_tree(path: Path) -> None:
    if not path.is_dir():
        return
    for p in path.iterdir():
        p.unlink(missing_ok=True)
    path.rmdir()


def _on_end(engine, run, commit) -> None:
    """Inside a child's end commit: tell the parent. Inside a parent's: stop its running children."""
    link = getattr(run, "parent", None)
    if link and link.get("mode") == "map":
        payload = {"mapRunArn": link["mapRunArn"], "index": link["index"], "status": run.status,
                   "input": json.dumps(run.input, separators=(",", ":")),
                   "output": None if run.status != "SUCCEEDED" else json.dumps(run.output, separators=(",", ":")),
                   "error": run.error, "cause": run.cause, "start": _iso_ms(run.start),
                   "stop": _iso_ms(run.stop_time)}
        commit.add_messages.append(Message(link["executionArn"], MessageKind.MAP_CHILD_DONE, run.stop_time, link["frame"],
                                           link["seq"], payload))
    runner = getattr(engine, "map_runs", None)
    if run.status in ("ABORTED", "FAILED", "TIMED_OUT") and runner is not None \
            and run.machine.has_distributed_map:
        now = engine.clock.now()
        for rec in engine.store.list_records(MAP_RUN):
            if rec.get("executionArn") == run.arn:
                _close_record(engine, rec["mapRunArn"], "ABORTED")
        for row in engine.store.list_executions(None, "RUNNING"):
            p = row.get("parent") or {}
            if p.get("executionArn") == run.arn and p.get("mode") == "map":
                engine.store.add_message(Message(row["executionArn"], MessageKind.STOP, now, payload={
                    "error": "States.Aborted", "cause": f"The parent execution {run.arn} stopped."}))
