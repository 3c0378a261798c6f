"""The peer: moto's Step Functions interpreter (its port of LocalStack's), driven directly.

We call ``stepfunctions_parser_backends[account][region]`` instead of a boto3 client because the
HTTP-shaped layer (request signing, serialisation, polling describe_execution) would add cost that
is not the interpreter's, and the comparison is meant to be between interpreters.

moto runs each execution on a daemon thread that it does not keep on the execution: it appends the
thread to ``moto.stepfunctions.parser.utils.TMP_THREADS``. We take our execution's thread from there
and join it, so "finished" means the interpreter returned, not that a poll noticed.

Lambda: moto cannot run a Python function without docker. With ``use_docker: False`` it swaps in
``LambdaSimpleBackend``, whose ``invoke`` returns the request payload unchanged (unless results were
queued). That is exactly the 'echo' function b5 needs, so b5 runs through moto's real
``lambda:invoke`` integration path (a boto3 lambda client inside mock_aws, intercepted in-process).
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

from .shapes import Shape

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/bench"
ECHO_FUNCTION = "echo"

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@dataclass
class PeerResult:
    """One finished execution, in the same shape every runner returns."""

    status: str
    output: Any
    seconds: float
    history: list[dict] | None = None


def _echo_zip() -> bytes:
    """A real zip, because create_function validates the code; the simple backend never runs it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


class MotoPeer:
    """A started ``mock_aws`` with the 'echo' function and a cache of created state machines.

    Use as a context manager; ``run`` creates a state machine the first time it sees a definition
    (outside the timed region, as statelang's compile-once is outside it too in the long run),
    then times start_execution through the join of the worker thread.
    """

    name = "moto"
    label = "moto"

    def __init__(self) -> None:
        self._mock = None
        self._backend = None
        self._machines: dict[str, str] = {}
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> MotoPeer:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        from moto import mock_aws

        self._mock = mock_aws(config=MOTO_CONFIG)
        self._mock.start()
        import boto3
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        iam = boto3.client("iam", region_name=REGION)
        iam.create_role(
            RoleName="bench",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=ECHO_FUNCTION,
            Runtime="python3.11",
            Role=ROLE_ARN,
            Handler="index.handler",
            Code={"ZipFile": _echo_zip()},
        )
        self._backend = stepfunctions_parser_backends[ACCOUNT][REGION]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._mock.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _machine_arn(self, definition_text: str) -> str:
        arn = self._machines.get(definition_text)
        if arn is None:
            name = f"bench-{len(self._machines)}"
            machine = self._backend.create_state_machine(
                name=name, definition=definition_text, roleArn=ROLE_ARN
            )
            arn = machine.arn
            self._machines[definition_text] = arn
        return arn

    def start(self, definition_text: str, input_text: str):
        """Start one execution; returns (execution, its worker thread).

        The worker thread is the first one appended to TMP_THREADS during start_execution: it is
        appended before it starts, so before any thread of its own (per state, branch or item).
        It cannot be found by its target, because a finished Thread drops ``_target``.
        """
        from moto.stepfunctions.parser.utils import TMP_THREADS

        machine_arn = self._machine_arn(definition_text)
        mark = len(TMP_THREADS)
        execution = self._backend.start_execution(
            machine_arn, name=uuid.uuid4().hex, execution_input=input_text
        )
        if len(TMP_THREADS) <= mark:
            raise RuntimeError("moto started no execution thread; is execute_state_machine on?")
        return execution, TMP_THREADS[mark]

    def run(self, shape: Shape, *, with_history: bool = False) -> PeerResult:
        """Run one execution to its end; the history deep copy is taken after the clock stops."""
        self._machine_arn(shape.definition_text)
        begin = time.perf_counter()
        execution, thread = self.start(shape.definition_text, shape.input_text)
        thread.join()
        seconds = time.perf_counter() - begin
        if execution.exec_status is None or execution.status == "RUNNING":
            raise RuntimeError("moto's execution thread ended with the execution still RUNNING")
        self.forget_finished_threads()
        history = None
        if with_history:
            history = [_plain_event(e) for e in execution.exec_worker.env.event_manager.get_event_history()]
        return PeerResult(execution.status, execution.output, seconds, history)

    @staticmethod
    def forget_finished_threads() -> None:
        """moto never prunes TMP_THREADS; without this it holds every finished thread of the run."""
        from moto.stepfunctions.parser.utils import TMP_THREADS

        TMP_THREADS[:] = [t for t in TMP_THREADS if t.is_alive()]


def _plain_event(event: dict) -> dict:
    """moto's event types are str enums; plain strings compare the same on both sides."""
    return {**event, "type": str(getattr(event["type"], "value", event["type"]))}
