"""`statelang serve`: one process answering the AWS JSON protocols, GraphQL, metrics and the console.

The HTTP face adds no semantics of its own: ``X-Amz-Target: AWSStepFunctions.<Op>`` goes to the
engine's boto3-shaped client by operation name, ``AWSEvents.<Op>`` to the event bus, so the
answers and error codes are the library's. What this module owns is the wire: JSON in and out,
timestamps as epoch seconds (as awsJson does), errors as ``{"__type", "message"}`` with
``x-amzn-ErrorType`` so that boto3 raises its modelled exceptions, and never a traceback.

Every JSON text a request carries is read by `jsontext.loads_bounded`, which bounds its nesting: a body
nested too deep is a 400 ``SerializationException`` naming the depth, and the members that are
JSON texts themselves (an execution's input, a task's output, an event) are refused by the
operation with its own AWS error, for the same reason. The listening side (waitress, timeouts,
the connection cap, graceful shutdown) is `server.serving`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from statelang.language import jsontext

from .console import Console
from .param_validation import validation_words
from .security import Denied, Guard, query_members

log = logging.getLogger("statelang.server")

SFN_PREFIX = "AWSStepFunctions."
EVENTS_PREFIX = "AWSEvents."
READ_ONLY = ("Describe", "List", "Get", "Validate", "TestEventPattern")
REASONS = {200: "OK", 204: "No Content", 302: "Found", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: log shippers parse it without a grammar."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        out.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _log_dumps(out)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("statelang")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # waitress's own warnings (the connection cap reached, a socket error) in the same JSON lines;
    # its "task queue depth" note is the backpressure working, not news
    server = logging.getLogger("waitress")
    server.handlers[:] = [handler]
    server.setLevel(logging.WARNING)
    server.propagate = False
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def _wire(value):
    """awsJson timestamps are epoch seconds; everything else is already JSON."""
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"not JSON: {type(value).__name__}")


_wire_dumps = jsontext.encoder(default=_wire)   # compact; through orjson where it writes what json does
_log_dumps = jsontext.encoder(default=str)


def json_response(status: int, payload, headers: list | None = None, content_type: str = "application/json"):
    body = _wire_dumps(payload).encode()
    return status, [("Content-Type", content_type), *(headers or [])], body


def aws_error(status: int, code: str, message: str, content_type: str = "application/x-amz-json-1.0"):
    """The error shape botocore's JSON parsers read: ``__type`` and ``message``."""
    return json_response(status, {"__type": code, "message": message},
                         [("x-amzn-ErrorType", code), ("x-amzn-RequestId", str(uuid.uuid4()))], content_type)


class App:
    """The WSGI application over one engine."""

    def __init__(self, engine, guard: Guard | None = None, data_dir: str | Path | None = None):
        self.engine = engine
        self.client = engine.client()
        self.guard = guard or Guard()
        self.data_dir = Path(data_dir or ".statelang").resolve()
        self.console = Console(self)
        self.metrics = Metrics(engine)

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        started = time.monotonic()
        try:
            status, headers, body = self.handle(environ)
        except Exception:  # noqa: BLE001 - the last guard: log it, answer AWS-shaped, no traceback out
            log.exception("request failed", extra={"fields": {"path": environ.get("PATH_INFO")}})
            status, headers, body = aws_error(500, "InternalFailure", "The server could not process the request.")
        headers = [*headers, ("Content-Length", str(len(body))), ("X-Content-Type-Options", "nosniff")]
        start_response(f"{status} {REASONS.get(status, 'Status')}", headers)
        log.info("request", extra={"fields": {
            "method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO"),
            "target": environ.get("HTTP_X_AMZ_TARGET"), "status": status,
            "ms": round((time.monotonic() - started) * 1000, 2)}})
        return [body]

    def handle(self, environ):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        target = environ.get("HTTP_X_AMZ_TARGET")
        ctype = "application/x-amz-json-1.1" if (target or "").startswith(EVENTS_PREFIX) else "application/x-amz-json-1.0"
        try:
            self.guard.check_host(environ)
            length = self.guard.body_length(environ)
            if path == "/health" and method == "GET":
                return self.health()
            if path.startswith("/console/static/") and method == "GET":
                return self.console.static(path[len("/console/static/"):])
            if method == "GET" and path in ("/", "/console", "/console/"):
                return self.console.page()
            body = environ["wsgi.input"].read(length) if length else b""
            self.guard.authenticate(environ, body)
        except Denied as exc:
            return aws_error(exc.status, exc.code, exc.message, ctype)
        if method == "POST" and target:
            if not body and "X-Amz-Signature=" in (environ.get("QUERY_STRING") or ""):
                return self.aws(target, query_members(environ["QUERY_STRING"]), ctype)   # presigned
            return self.aws(target, body, ctype)
        if path == "/graphql":
            return self.graphql(method, environ, body)
        if path == "/metrics" and method == "GET":
            return 200, [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], self.metrics.render().encode()
        if path.startswith("/console/api/"):
            return self.console.api(method, path[len("/console/api/"):], environ, body)
        if method == "POST" and path == "/":
            return aws_error(400, "MissingAction", "The X-Amz-Target header names no operation.")
        return json_response(404, {"message": f"No route for {method} {path}"})

    def health(self):
        try:
            self.engine.store.list_records("health-check")
        except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
            return json_response(503, {"status": "unavailable", "error": type(exc).__name__})
        return json_response(200, {"status": "ok", "worker": self.engine.worker_id})

    def nudge(self) -> None:
        """Wake the worker loop: a start or an answered token should not wait for the next poll."""
        self.engine._wake.set()  # noqa: SLF001 - the engine's documented wake-up event

    # -- AWS JSON protocols -------------------------------------------------------------------
    def aws(self, target: str, body: bytes | dict, ctype: str):
        """One AWS JSON operation; its members come from the body, or for a presigned request
        from the query string (as strings, which the operation's validation then judges)."""
        try:
            params = body if isinstance(body, dict) else jsontext.loads_bounded(body or b"{}")
        except jsontext.JSONDepthError as exc:
            return aws_error(400, "SerializationException", f"The request body is not accepted: {exc}.", ctype)
        except ValueError:
            return aws_error(400, "SerializationException", "The request body is not valid JSON.", ctype)
        if not isinstance(params, dict):
            return aws_error(400, "SerializationException", "The request body must be a JSON object.", ctype)
        if target.startswith(SFN_PREFIX):
            op = target[len(SFN_PREFIX):]
            result = self.step_functions(op, params)
        elif target.startswith(EVENTS_PREFIX):
            op = target[len(EVENTS_PREFIX):]
            result = events_dispatch(self.engine, op, params)
        else:
            return aws_error(400, "UnknownOperationException", f"Unknown target {target}", ctype)
        if not op.startswith(READ_ONLY):
            self.nudge()
        if result[0] == "error":
            _, status, code, message = result
            return aws_error(status, code, message, ctype)
        return json_response(200, result[1], [("x-amzn-RequestId", str(uuid.uuid4()))], ctype)

    def step_functions(self, op: str, params: dict):
        """("ok", response) or ("error", status, code, message) for one Step Functions operation."""
        from statelang.api.client import OPERATIONS
        from statelang.api.errors import ParamValidationError, StepFunctionsError
        deep = too_deep(params, SFN_JSON_MEMBERS)
        if deep is not None:
            member, exc = deep
            return "error", 400, SFN_JSON_MEMBERS[member], f"The {member} is not accepted: {exc}."
        try:
            if op == "RedriveExecution":
                return "ok", self._redrive(params)
            if op not in OPERATIONS.values():
                return "error", 400, "UnknownOperationException", f"Unknown operation {op}"
            out = self.client.call(op, params)
        except StepFunctionsError as exc:
            err = exc.response["Error"]
            return "error", 400, err["Code"], err["Message"]
        except ParamValidationError as exc:
            return "error", 400, "ValidationException", validation_words(str(exc))
        except TypeError:   # an unknown member name reaches a keyword-only method
            return "error", 400, "ValidationException", f"The request has members that {op} does not define."
        out.pop("ResponseMetadata", None)
        return "ok", out

    def _redrive(self, params: dict) -> dict:
        """RedriveExecution, which the in-process client leaves to `engine.redrive`."""
        from statelang.api.errors import error
        from statelang.history.redrive import ExecutionNotRedrivable
        arn = params.get("executionArn")
        if not isinstance(arn, str):
            raise error("ValidationException", "executionArn is required")
        self.client.describe_execution(executionArn=arn)   # InvalidArn / ExecutionDoesNotExist
        try:
            row = self.engine.redrive(arn)
        except ExecutionNotRedrivable as exc:
            raise error("ExecutionNotRedrivable", str(exc)) from None
        return {"redriveDate": row.get("redriveDate") if isinstance(row, dict) else None}

    # -- GraphQL ------------------------------------------------------------------------------
    def graphql(self, method: str, environ: dict, body: bytes):
        if method != "POST":
            return json_response(405, {"errors": [{"message": "POST a JSON body to /graphql"}]}, [("Allow", "POST")])
        if not (environ.get("CONTENT_TYPE") or "").startswith("application/json"):
            # A JSON content type forces a browser's CORS preflight: no cross-site form posts.
            return json_response(400, {"errors": [{"message": "Content-Type must be application/json"}]})
        try:
            request = jsontext.loads_bounded(body or b"{}")
        except jsontext.JSONDepthError as exc:
            return json_response(400, {"errors": [{"message": f"The request body is not accepted: {exc}."}]})
        except ValueError:
            return json_response(400, {"errors": [{"message": "The request body is not valid JSON."}]})
        if not isinstance(request, dict) or not isinstance(request.get("query"), str):
            return json_response(400, {"errors": [{"message": "The body needs a 'query' string."}]})
        from .graphql_api import execute
        result = execute(self.engine, request["query"], request.get("variables"), request.get("operationName"))
        self.nudge()
        return json_response(200, result)


# Request members that hold JSON text, with the error each operation answers when it is refused.
SFN_JSON_MEMBERS = {"definition": "InvalidDefinition", "input": "InvalidExecutionInput", "output": "InvalidOutput",
                    "variables": "ValidationException"}
# (PutEvents' Detail is not here: the bus reads it through jsontext and, as AWS does with a bad
# Detail, fails that entry alone with MalformedDetail.)
EVENTS_JSON_MEMBERS = {"EventPattern": "InvalidEventPatternException", "Event": "ValidationException",
                       "Input": "ValidationException"}


def too_deep(params: dict, members: dict) -> tuple[str, Exception] | None:
    """The first member (at the top or in a list of objects, as ``Entries[].Detail``) whose JSON
    text nests deeper than `jsontext.MAX_DEPTH`, and the error naming its depth. Checked before
    the operation runs, so that no decoder below ever meets such a text."""
    values = [(k, v) for k, v in params.items() if k in members]
    for item in (x for v in params.values() if isinstance(v, list) for x in v if isinstance(x, dict)):
        values += [(k, v) for k, v in item.items() if k in members]
    for key, value in values:
        if isinstance(value, str) and value.count("[") + value.count("{") > jsontext.MAX_DEPTH:
            depth = jsontext.depth_of(value.encode("utf-8", "surrogatepass"))
            if depth > jsontext.MAX_DEPTH:
                return key, jsontext.JSONDepthError(depth)
    return None


# -- EventBridge --------------------------------------------------------------------------------
# operation -> (EventBus method, [(request member, keyword)], required members)
EVENTS_OPS = {
    "PutEvents": ("put_events", [("Entries", "entries")], ("Entries",)),
    "PutRule": ("put_rule", [("Name", "name"), ("EventPattern", "event_pattern"),
                             ("ScheduleExpression", "schedule_expression"), ("State", "state"),
                             ("Description", "description"), ("RoleArn", "role_arn")], ("Name",)),
    "PutTargets": ("put_targets", [("Rule", "rule"), ("Targets", "targets")], ("Rule", "Targets")),
    "ListRules": ("list_rules", [("NamePrefix", "name_prefix"), ("NextToken", "next_token"), ("Limit", "limit")], ()),
    "DescribeRule": ("describe_rule", [("Name", "name")], ("Name",)),
    "DeleteRule": ("delete_rule", [("Name", "name"), ("Force", "force")], ("Name",)),
    "RemoveTargets": ("remove_targets", [("Rule", "rule"), ("Ids", "ids"), ("Force", "force")], ("Rule", "Ids")),
    "ListTargetsByRule": ("list_targets_by_rule", [("Rule", "rule")], ("Rule",)),
    "EnableRule": ("enable_rule", [("Name", "name")], ("Name",)),
    "DisableRule": ("disable_rule", [("Name", "name")], ("Name",)),
}


def events_dispatch(engine, op: str, params: dict):
    """("ok", response) or ("error", status, code, message) for one EventBridge operation."""
    from statelang import eventbus
    deep = too_deep(params, EVENTS_JSON_MEMBERS)
    if deep is not None:
        member, exc = deep
        return "error", 400, EVENTS_JSON_MEMBERS[member], f"Parameter {member} is not valid: {exc}."
    if op == "TestEventPattern":
        missing = [k for k in ("EventPattern", "Event") if not isinstance(params.get(k), str)]
        if missing:
            return "error", 400, "ValidationException", f"Missing required parameter: {missing[0]}"
        try:
            return "ok", {"Result": bool(eventbus.test_event_pattern(params["EventPattern"], params["Event"]))}
        except eventbus.InvalidEventPattern as exc:
            return "error", 400, "InvalidEventPatternException", str(exc)
        except ValueError as exc:
            return "error", 400, "ValidationException", str(exc)
    spec = EVENTS_OPS.get(op)
    if spec is None:
        return "error", 400, "UnknownOperationException", f"Unknown operation {op}"
    method, members, required = spec
    for key in required:
        if params.get(key) is None:
            return "error", 400, "ValidationException", f"1 validation error detected: Value null at '{key}' failed " \
                                                        "to satisfy constraint: Member must not be null"
    try:
        bus = eventbus.EventBus(engine, params.get("EventBusName") or "default")
        kwargs = {kw: params[key] for key, kw in members if params.get(key) is not None}
        return "ok", getattr(bus, method)(**kwargs)
    except eventbus.EventBridgeError as exc:
        return "error", 400, exc.code, exc.message
    except (TypeError, ValueError, KeyError, AttributeError):
        log.warning("unexpected request shape", exc_info=True, extra={"fields": {"operation": op}})
        return "error", 400, "ValidationException", f"The request does not match the {op} operation's members."


# -- metrics ------------------------------------------------------------------------------------
TASK_STARTS = ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled")
TASK_ENDS = ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "LambdaFunctionSucceeded", "LambdaFunctionFailed",
             "LambdaFunctionTimedOut", "ActivitySucceeded", "ActivityFailed", "ActivityTimedOut")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
CLOSED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class Metrics:
    """Prometheus text computed from the store, so that it counts the work of every worker on
    the database and survives restarts. A closed execution's history never changes, so it is
    read once and its numbers kept; only running executions are read again at each scrape."""

    def __init__(self, engine):
        self.engine = engine
        self._closed: dict[str, tuple[int, list[float]]] = {}
        self._lock = threading.Lock()

    def _scan(self, arn: str) -> tuple[int, list[float]]:
        events = self.engine.store.history(arn)
        by_id = {e["id"]: e for e in events}
        transitions = sum(1 for e in events if e["type"].endswith("StateEntered"))
        latencies = []
        for e in events:
            if e["type"] not in TASK_ENDS:
                continue
            prev = by_id.get(e.get("previousEventId"))
            for _ in range(4):
                if prev is None or prev["type"] in TASK_STARTS:
                    break
                prev = by_id.get(prev.get("previousEventId"))
            if prev is not None and prev["type"] in TASK_STARTS:
                latencies.append(max(0.0, (_ts(e["timestamp"]) - _ts(prev["timestamp"])).total_seconds()))
        return transitions, latencies

    def render(self) -> str:
        with self._lock:
            rows = self.engine.store.list_executions()
            started: dict[str, int] = {}
            status: dict[tuple[str, str], int] = {}
            transitions: dict[str, int] = {}
            latency: dict[str, list[float]] = {}
            for row in rows:
                sm = row["stateMachineArn"].rsplit(":", 1)[-1]
                started[sm] = started.get(sm, 0) + 1
                status[(sm, row["status"])] = status.get((sm, row["status"]), 0) + 1
                arn = row["executionArn"]
                scanned = self._closed.get(arn)
                if scanned is None:
                    scanned = self._scan(arn)
                    if row["status"] in CLOSED:
                        self._closed[arn] = scanned
                transitions[sm] = transitions.get(sm, 0) + scanned[0]
                latency.setdefault(sm, []).extend(scanned[1])
        out = ["# HELP statelang_executions_started_total Executions started, by state machine.",
               "# TYPE statelang_executions_started_total counter"]
        out += [f'statelang_executions_started_total{{state_machine="{_label(sm)}"}} {n}' for sm, n in sorted(started.items())]
        for st, metric in (("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("TIMED_OUT", "timed_out"),
                           ("ABORTED", "aborted")):
            name = f"statelang_executions_{metric}_total"
            out += [f"# HELP {name} Executions that ended {st}, by state machine.", f"# TYPE {name} counter"]
            out += [f'{name}{{state_machine="{_label(sm)}"}} {status.get((sm, st), 0)}' for sm in sorted(started)]
        out += ["# HELP statelang_executions_running Executions running now.", "# TYPE statelang_executions_running gauge"]
        out += [f'statelang_executions_running{{state_machine="{_label(sm)}"}} {status.get((sm, "RUNNING"), 0)}'
                for sm in sorted(started)]
        out += ["# HELP statelang_state_transitions_total States entered, by state machine.",
                "# TYPE statelang_state_transitions_total counter"]
        out += [f'statelang_state_transitions_total{{state_machine="{_label(sm)}"}} {n}'
                for sm, n in sorted(transitions.items())]
        out += ["# HELP statelang_task_duration_seconds From a task scheduled to its result.",
                "# TYPE statelang_task_duration_seconds histogram"]
        for sm, values in sorted(latency.items()):
            label = _label(sm)
            for bound in BUCKETS:
                out.append(f'statelang_task_duration_seconds_bucket{{state_machine="{label}",le="{bound}"}} '
                           f"{sum(1 for v in values if v <= bound)}")
            out.append(f'statelang_task_duration_seconds_bucket{{state_machine="{label}",le="+Inf"}} {len(values)}')
            out.append(f'statelang_task_duration_seconds_sum{{state_machine="{label}"}} {sum(values):.6f}')
            out.append(f'statelang_task_duration_seconds_count{{state_machine="{label}"}} {len(values)}')
        return "\n".join(out) + "\n"


def _ts(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
