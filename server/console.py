"""The web console: a small JSON API under ``/console/api/`` and the static page that uses it.

Everything the page shows comes from the store through the same client the AWS API uses, so the
console never disagrees with boto3. The execution graph is drawn here (`server.graph`) with the
execution's path folded in from its history: states entered, the one running, the one that
failed, the transitions taken. The page polls while an execution runs: simpler than a push
channel and enough for a human watching.

Buttons that change things (answer a task token, stop, redrive, replay) post JSON with an
``X-Statelang-Console`` header: a cross-site page cannot send either without a CORS preflight,
which this server never grants.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

from statelang.language import jsontext
from statelang.runtime.storage import history_pages

from . import graph
from .param_validation import validation_words
from .security import Denied, inside

STATIC = Path(__file__).parent / "static"
CONSOLE_HEADER = "HTTP_X_STATELANG_CONSOLE"
MAX_LIST = 500
HISTORY_PAGE = 100        # events per history page, as GetExecutionHistory's default
MAX_HISTORY_PAGE = 1000   # and at most, as its maxResults
FOLD_READ = 1000          # events per read while a path fold catches up
MAX_FOLDS = 256           # executions whose path folds are kept between requests
MAX_EVENT_ID = 2**31 - 1


def _json(status: int, payload) -> tuple:
    def wire(v):
        if isinstance(v, datetime):
            return v.isoformat()
        raise TypeError(type(v).__name__)
    return status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], \
        json.dumps(payload, default=wire).encode()


def member(params: dict, key: str) -> str:
    """A required string member of a console request or query, or a 400 naming it."""
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise Denied(400, "ValidationException", f"'{key}' is required and must be a non-empty string")
    return value


class PathFold:
    """The execution's path folded from its history: {state: visited|running|failed} and the
    (from, to) transitions taken. A history only grows, so the fold of its events up to id N never
    changes: `feed` takes the events after `last_id`, and a console poll reads only what is new.

    A state entered more often than exited (a Map's states run once per item) is still open: it
    runs while the execution runs, and is where it broke once the execution has failed."""

    def __init__(self, start=None):
        self.start = start            # the execution's start date: a new execution under the ARN folds anew
        self.last_id = 0
        self.lock = threading.Lock()  # one request extends a fold at a time
        self._entered: dict[str, int] = {}
        self._exited: dict[str, int] = {}
        self._fail_states: set[str] = set()
        self._taken: set[tuple[str, str]] = set()
        self._last_exit: str | None = None
        self._last_enter: str | None = None
        self._exit_after_enter = False

    def feed(self, events: list[dict]) -> None:
        for ev in events:
            self.last_id = max(self.last_id, ev["id"])
            kind = ev["type"]
            if kind.endswith("StateEntered"):
                name = (ev.get("stateEnteredEventDetails") or {}).get("name")
                if name is None:
                    continue
                source = self._last_exit if self._exit_after_enter else self._last_enter   # a caught error leaves unexited
                if source and source != name:
                    self._taken.add((source, name))
                self._entered[name] = self._entered.get(name, 0) + 1
                if kind == "FailStateEntered":
                    self._fail_states.add(name)
                self._last_enter, self._exit_after_enter = name, False
            elif kind.endswith("StateExited"):
                name = (ev.get("stateExitedEventDetails") or {}).get("name")
                if name is not None:
                    self._exited[name] = self._exited.get(name, 0) + 1
                    self._last_exit, self._exit_after_enter = name, True

    def marks(self, status: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
        marks = {}
        for name, n in self._entered.items():
            if name in self._fail_states:
                marks[name] = "failed"
            elif n > self._exited.get(name, 0):
                marks[name] = "running" if status == "RUNNING" else ("visited" if status == "SUCCEEDED" else "failed")
            else:
                marks[name] = "visited"
        return marks, set(self._taken)


def path_of(events: list[dict], status: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """From a whole history: {state: visited|running|failed} and the (from, to) transitions taken."""
    fold = PathFold()
    fold.feed(events)
    return fold.marks(status)


def int_param(query: dict, key: str, default: int, low: int, high: int) -> int:
    """An optional integer query parameter within [low, high], or a 400 naming it."""
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise Denied(400, "ValidationException", f"'{key}' must be an integer from {low} to {high}, not {raw!r}")
    return value


class Console:
    def __init__(self, app):
        self.app = app
        self.engine = app.engine
        self.client = app.client
        self._folds: OrderedDict[str, PathFold] = OrderedDict()   # by execution ARN, least recent first
        self._folds_lock = threading.Lock()

    # -- pages and assets -----------------------------------------------------------------------
    def page(self):
        return self.static("index.html")

    def static(self, name: str):
        try:
            path = inside(STATIC, name)
        except Denied:
            return _json(404, {"message": "not found"})
        if not path.is_file():
            return _json(404, {"message": "not found"})
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
            ctype += "; charset=utf-8"
        return 200, [("Content-Type", ctype), ("Cache-Control", "no-cache"),
                     ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                 "img-src 'self' data:; frame-ancestors 'none'")], path.read_bytes()

    # -- the JSON API ---------------------------------------------------------------------------
    def api(self, method: str, route: str, environ: dict, body: bytes):
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        from statelang.api.errors import ParamValidationError, StepFunctionsError
        try:
            if method == "GET":
                handler = {"machines": self.machines, "executions": self.executions,
                           "execution": self.execution, "history": self.history, "graph": self.graph}.get(route)
                if handler is None:
                    return _json(404, {"message": f"no console route {route}"})
                return _json(200, handler(query))
            if method == "POST":
                if environ.get(CONSOLE_HEADER) != "1":
                    return _json(403, {"message": "console actions need the X-Statelang-Console header"})
                try:
                    params = jsontext.loads_bounded(body or b"{}")
                except jsontext.JSONDepthError as exc:
                    return _json(400, {"error": "SerializationException", "message": f"the body is not accepted: {exc}"})
                except ValueError:
                    return _json(400, {"error": "SerializationException", "message": "the body is not valid JSON"})
                handler = {"task": self.answer, "stop": self.stop, "redrive": self.redrive,
                           "replay": self.replay}.get(route)
                if handler is None or not isinstance(params, dict):
                    return _json(404, {"message": f"no console action {route}"})
                out = handler(params)
                self.app.nudge()
                return _json(200, out)
            return _json(405, {"message": "GET or POST"})
        except StepFunctionsError as exc:
            err = exc.response["Error"]
            return _json(400, {"error": err["Code"], "message": err["Message"]})
        except ParamValidationError as exc:   # botocore's words, naming the member
            return _json(400, {"error": "ValidationException", "message": validation_words(str(exc))})
        except Denied as exc:
            return _json(exc.status, {"error": exc.code, "message": exc.message})

    def machines(self, query: dict) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for row in self.engine.store.list_executions():
            by = counts.setdefault(row["stateMachineArn"], {})
            by[row["status"]] = by.get(row["status"], 0) + 1
        machines = []
        pages = self.client.get_paginator("list_state_machines").paginate()
        for page in pages:
            for m in page["stateMachines"]:
                machines.append({"arn": m["stateMachineArn"], "name": m["name"], "type": m["type"],
                                 "created": m["creationDate"], "counts": counts.get(m["stateMachineArn"], {})})
        return {"machines": machines}

    def executions(self, query: dict) -> dict:
        status = query.get("status") or None
        if status and status not in ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"):
            raise Denied(400, "ValidationException", f"unknown status {status}")
        rows = self.engine.store.list_executions(query.get("machine") or None, status)
        needle = (query.get("q") or "").lower()
        if needle:
            rows = [r for r in rows if needle in r["name"].lower() or needle in r["executionArn"].lower()]
        rows.sort(key=lambda r: r["startDate"], reverse=True)
        return {"total": len(rows), "executions": [
            {"arn": r["executionArn"], "name": r["name"], "status": r["status"],
             "machine": r["stateMachineArn"].rsplit(":", 1)[-1], "machineArn": r["stateMachineArn"],
             "start": r["startDate"], "stop": r.get("stopDate"), "redriveCount": r.get("redriveCount") or 0}
            for r in rows[:MAX_LIST]]}

    def open_tokens(self, arn: str) -> list[dict]:
        """Task tokens the execution waits on: what the answer buttons answer."""
        out = []
        for frame in self.engine.store.load_frames(arn).values():
            data = frame.get("data") or {}
            token = data.get("token") or (data.get("invoke") or {}).get("token")
            if not token:
                continue
            row = self.engine.store.get_token(token)
            if row is not None and not row.get("closed"):
                out.append({"token": token, "state": frame.get("state") or row.get("state")})
        return out

    def execution(self, query: dict) -> dict:
        """The execution, its graph with the path taken, and the first page of its history
        (``next`` is the event id the page after it starts after, None at the end)."""
        arn = member(query, "arn")
        desc = self.client.describe_execution(executionArn=arn)
        desc.pop("ResponseMetadata", None)
        row = self.engine.store.get_execution(arn)
        marks, taken, last_id = self.path(arn, row["startDate"], desc["status"])
        try:
            svg = graph.to_svg(row["definition"], marks, taken)
        except ValueError as exc:
            svg = f"<p>cannot draw this definition: {exc}</p>"
        page = self.history_page(arn, 0, HISTORY_PAGE)
        return {"execution": desc, **page, "lastEventId": last_id, "svg": svg, "marks": marks,
                "tokens": self.open_tokens(arn) if desc["status"] == "RUNNING" else [],
                "lease": self.lease(arn) if desc["status"] == "RUNNING" else None}

    def history(self, query: dict) -> dict:
        """One page of the history: the events after event id ``after`` (0: from the start), at
        most ``limit``, read by their key range, so a page costs the same at event 19,000 as at 1."""
        arn = member(query, "arn")
        after = int_param(query, "after", 0, 0, MAX_EVENT_ID)
        limit = int_param(query, "limit", HISTORY_PAGE, 1, MAX_HISTORY_PAGE)
        self.client.describe_execution(executionArn=arn, includedData="METADATA_ONLY")   # InvalidArn / ExecutionDoesNotExist
        return self.history_page(arn, after, limit)

    def history_page(self, arn: str, after: int, limit: int) -> dict:
        events = self.engine.store.history(arn, after=after, limit=limit + 1)   # one more: does a page follow?
        more = len(events) > limit
        events = events[:limit]
        return {"events": events, "next": events[-1]["id"] if more else None}

    def path(self, arn: str, start, status: str) -> tuple[dict[str, str], set[tuple[str, str]], int]:
        """The marks and transitions of the execution's path, and the last event id folded.
        The fold is kept between requests and extended by the events appended since, read by
        key range: a poll of a long execution reads its new events, not its whole history."""
        with self._folds_lock:
            fold = self._folds.get(arn)
            if fold is None or fold.start != start:
                fold = self._folds[arn] = PathFold(start)
            self._folds.move_to_end(arn)
            while len(self._folds) > MAX_FOLDS:
                self._folds.popitem(last=False)
        with fold.lock:
            for events in history_pages(self.engine.store, arn, fold.last_id, page=FOLD_READ):
                fold.feed(events)
            marks, taken = fold.marks(status)
            return marks, taken, fold.last_id

    def lease(self, arn: str) -> dict | None:
        """The worker running the execution now (its lease), None when no worker holds it."""
        held = self.engine.store.lease_of(arn)
        return None if held is None else {"owner": held[0], "expires": held[1]}

    def graph(self, query: dict) -> dict:
        desc = self.client.describe_state_machine(stateMachineArn=member(query, "arn"))
        return {"svg": graph.to_svg(desc["definition"]), "mermaid": graph.to_mermaid(desc["definition"])}

    # -- actions --------------------------------------------------------------------------------
    def answer(self, params: dict) -> dict:
        token = member(params, "token")
        if params.get("ok", True):
            output = params.get("output", "{}")
            self.client.send_task_success(taskToken=token, output=output if isinstance(output, str) else json.dumps(output))
        else:
            self.client.send_task_failure(taskToken=token, error=params.get("error") or "Rejected",
                                          cause=params.get("cause") or "")
        return {"answered": token}

    def stop(self, params: dict) -> dict:
        extra = {k: params[k] for k in ("error", "cause") if isinstance(params.get(k), str)}
        out = self.client.stop_execution(executionArn=member(params, "arn"), **extra)
        return {"stopDate": out["stopDate"]}

    def redrive(self, params: dict) -> dict:
        result = self.app.step_functions("RedriveExecution", {"executionArn": member(params, "arn")})
        if result[0] == "error":
            return {"error": result[2], "message": result[3]}
        return result[1]

    def replay(self, params: dict) -> dict:
        arn = member(params, "arn")
        self.client.describe_execution(executionArn=arn)   # InvalidArn / ExecutionDoesNotExist
        result = self.engine.replay(arn)
        div = result.divergence
        return {"ok": bool(result.ok), "status": result.status, "error": result.error, "cause": result.cause,
                "events": len(result.events), "divergence": str(div) if div is not None else None}
