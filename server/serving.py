"""The listening side of `statelang serve`: waitress under the WSGI app, and the engine's worker.

waitress reads every request on one asynchronous loop and hands it to a worker thread only once
it has arrived whole, so a slow or stalled client holds a socket, never a thread. Its settings
are the server's defences under hostile input and load (`Limits`):

* ``timeout``: a connection with no traffic for this long is closed, whether it is idle between
  requests or stopped in the middle of one (a body shorter than its ``Content-Length``); and a
  request must arrive whole within this long of its first byte, so that a client trickling a
  byte at a time cannot hold its connection either;
* ``max_connections``: past this many open connections the server stops accepting, and new
  clients wait in the kernel's listen backlog: backpressure, not a pile of threads;
* one request at a time per connection, served by a fixed pool of ``threads``: the work in
  flight is bounded by the connection cap;
* ``max_body``: a larger ``Content-Length`` is refused before the body is read.

waitress's own refusals (bad framing, a body too large, headers too large) are answered in the
AWS JSON error shape like every other error of this server (`AwsErrorTask`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from statelang.runtime.worker import check_poll

from .app import App
from .security import DEFAULT_MAX_BODY, Guard

log = logging.getLogger("statelang.server")

# waitress's refusals, as the AWS JSON error codes a client's SDK reads
FRAMING_ERRORS = {400: "SerializationException", 413: "RequestEntityTooLargeException",
                  431: "RequestHeaderFieldsTooLargeException", 501: "UnknownOperationException"}


@dataclass(frozen=True)
class Limits:
    """How much one server takes on: see the module's docstring for what each guards against."""

    timeout: int = 30            # seconds without traffic before a connection is closed
    max_connections: int = 100   # open connections; more wait in the listen backlog
    threads: int = 8             # requests served at once
    backlog: int = 1024          # connections the kernel queues while the server is at its cap
    max_body: int = DEFAULT_MAX_BODY

    def __post_init__(self):
        for name in ("timeout", "max_connections", "threads", "backlog", "max_body"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")


class AwsErrorTask(ErrorTask):
    """waitress's error response, in the AWS JSON shape: ``{"__type", "message"}`` with
    ``x-amzn-ErrorType``, so that an SDK raises a modelled error instead of a parse failure."""

    def execute(self):
        error = self.request.error
        code = FRAMING_ERRORS.get(error.code, "InternalFailure")
        if error.code == 413:
            message = f"Request body exceeds the limit of {self.channel.adj.max_request_body_size} bytes"
        elif error.code == 500:
            message = "The server could not process the request."
        else:
            message = f"{error.reason}: {error.body}"
        body = json.dumps({"__type": code, "message": message}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", code),
                                      ("x-amzn-RequestId", str(uuid.uuid4()))])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class Channel(HTTPChannel):
    error_task_class = AwsErrorTask
    request_started = 0.0   # when the first byte of the request being received arrived

    def received(self, data):
        if self.request is None and data:
            self.request_started = time.time()
        return super().received(data)


class Listener(TcpWSGIServer):
    channel_class = Channel

    def maintenance(self, now):
        """waitress closes connections idle past the timeout; this also closes those whose request
        has been arriving for longer than that (a slow trickle is never idle)."""
        super().maintenance(now)
        cutoff = now - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            if channel.request is not None and not channel.requests and channel.request_started < cutoff:
                channel.will_close = True


class Server:
    """The HTTP server and the engine's worker, started and stopped together."""

    def __init__(self, engine, host: str = "127.0.0.1", port: int = 8083, guard: Guard | None = None,
                 data_dir: str | Path | None = None, poll_seconds: float = 0.5, run_worker: bool = True,
                 limits: Limits | None = None):
        check_poll(poll_seconds)
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535 (got {port}); 0 picks a free one")
        self.engine = engine
        self.limits = limits or Limits(max_body=guard.max_body if guard else DEFAULT_MAX_BODY)
        self.app = App(engine, guard or Guard(host, max_body=self.limits.max_body), data_dir)
        lim = self.limits
        # One socket on the first address the host names; waitress's request body limit is the
        # guard's, so that a larger Content-Length is refused unread.
        self.httpd = Listener(
            self.app, host=host.strip("[]") or "0.0.0.0", port=port, threads=lim.threads,
            connection_limit=lim.max_connections + 2, channel_timeout=lim.timeout,   # + listener, trigger
            cleanup_interval=max(1, lim.timeout // 4), backlog=lim.backlog,
            max_request_body_size=self.app.guard.max_body, ident="statelang", asyncore_use_poll=True)
        self.host = host
        self.port = int(self.httpd.effective_port)
        self.poll_seconds = poll_seconds
        self.run_worker = run_worker
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host = self.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> Server:
        if self.run_worker:
            self._threads.append(threading.Thread(target=self._work, name="statelang-worker", daemon=True))
        self._threads.append(threading.Thread(target=self.httpd.run, name="statelang-http", daemon=True))
        for t in self._threads:
            t.start()
        log.info("listening", extra={"fields": {"url": self.url, "port": self.port, "host": self.host}})
        return self

    def _work(self) -> None:
        while not self._stopped.is_set():
            try:
                self.engine.serve_forever(self.poll_seconds)
                return
            except Exception:  # noqa: BLE001 - a failing step must not end the worker thread
                log.exception("worker step failed; retrying")
                self._stopped.wait(self.poll_seconds)

    def _in_flight(self) -> int:
        return sum(1 for ch in list(self.httpd.active_channels.values()) if ch.requests)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful: no new connections, finish the requests in flight, stop the worker between
        steps, then close the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("stopping", extra={"fields": {"url": self.url}})
        done = threading.Event()

        def close_listener():
            self.httpd.accepting = False
            self.httpd.del_channel()
            self.httpd.socket.close()
            done.set()

        run_on_loop = self.httpd.trigger.pull_trigger if self._threads else (lambda thunk: thunk())
        run_on_loop(close_listener)
        done.wait(timeout)
        deadline = time.monotonic() + timeout
        while self._in_flight() and time.monotonic() < deadline:
            time.sleep(0.02)

        def close_all():   # the loop ends when its last channel, the trigger, is closed
            for channel in list(self.httpd.active_channels.values()):
                channel.handle_close()
            self.httpd.trigger.close()

        run_on_loop(close_all)
        self.httpd.task_dispatcher.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        self.engine.shutdown()
        for t in self._threads:
            t.join(timeout)
        self.engine.close()
        log.info("stopped", extra={"fields": {"url": self.url}})

    def wait(self) -> None:
        self._stopped.wait()
