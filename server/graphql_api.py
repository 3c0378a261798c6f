"""The seeds' GraphQL operations: startWorkflow, getWorkflowStatus, stopWorkflow, publishEvent.

The schema is the one the seeds' AppSync API exposes: the same argument names and the same
``{success, ...}`` results, so a front end written for it runs against a local server. The work
itself is `workflows.api`'s; this module only parses and answers. ``input`` and ``detail`` are
``AWSJSON``: the seeds write them as object literals (``input: {bookingId: "123"}``), AppSync
clients send JSON text in variables; both are accepted.
"""

from __future__ import annotations

import json
from functools import cache

SDL = """
scalar AWSJSON

type StartWorkflowResult {
  success: Boolean!
  executionArn: String
  status: String
  executionName: String
  workflowType: String
  startDate: String
  error: String
  message: String
}

type WorkflowStatusResult {
  success: Boolean!
  executionArn: String
  workflowType: String
  status: String
  output: String
  startDate: String
  stopDate: String
  error: String
  cause: String
  message: String
}

type StopWorkflowResult {
  success: Boolean!
  executionArn: String
  status: String
  stopDate: String
  error: String
  message: String
}

type PublishEventResult {
  success: Boolean!
  eventId: String
  error: String
  message: String
}

type Query {
  getWorkflowStatus(executionArn: String!, workflowType: String): WorkflowStatusResult!
}

type Mutation {
  startWorkflow(workflowType: String!, input: AWSJSON!, executionName: String): StartWorkflowResult!
  stopWorkflow(executionArn: String!, workflowType: String, error: String, cause: String): StopWorkflowResult!
  publishEvent(source: String!, detailType: String!, detail: AWSJSON!, eventBusName: String): PublishEventResult!
}
"""


def _json_value(value):
    """AWSJSON from a variable: JSON text (AppSync's form) or an already decoded value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("AWSJSON must be valid JSON text") from None
    return value


def _json_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _json_literal(node, variables=None):
    from graphql.utilities import value_from_ast_untyped
    value = value_from_ast_untyped(node, variables)
    return _json_value(value) if isinstance(value, str) else value


@cache
def schema():
    from graphql import build_schema
    built = build_schema(SDL)
    scalar = built.type_map["AWSJSON"]
    # graphql-core 3.2 reads serialize/parse_value, 3.3 coerce_output_value/coerce_input_value.
    scalar.serialize = scalar.coerce_output_value = _json_text
    scalar.parse_value = scalar.coerce_input_value = _json_value
    scalar.parse_literal = _json_literal
    # Explicit resolvers take (root, info, **arguments): an argument may be called ``source``,
    # which the default resolver's own first parameter would swallow.
    for type_name in ("Query", "Mutation"):
        for name, fld in built.type_map[type_name].fields.items():
            fld.resolve = _resolver(name)
    return built


def _resolver(name: str):
    def resolve(_root, _info, **arguments):
        return getattr(_root, name)(**arguments)
    return resolve


class _Root:
    """The operations, called as ``root.<field>(**arguments)``."""

    def __init__(self, engine):
        self.engine = engine

    @staticmethod
    def _object(value, what: str) -> dict:
        if not isinstance(value, dict):
            raise ValueError(f"{what} must be a JSON object")
        return value

    def startWorkflow(self, workflowType, input, executionName=None):  # noqa: N802, A002 - the schema's names
        from statelang.workflows.api import start_workflow
        return start_workflow(self.engine, workflowType, self._object(input, "input"), executionName)

    def getWorkflowStatus(self, executionArn, workflowType=None):  # noqa: N802
        from statelang.workflows.api import get_workflow_status
        return get_workflow_status(self.engine, executionArn, workflowType)

    def stopWorkflow(self, executionArn, workflowType=None, error=None, cause=None):  # noqa: N802
        from statelang.workflows.api import stop_workflow
        return stop_workflow(self.engine, executionArn, workflowType, error, cause)

    def publishEvent(self, source, detailType, detail, eventBusName=None):  # noqa: N802
        from statelang import eventbus
        from statelang.workflows.api import MARKETPLACE_BUS, publish_event
        name = eventBusName or MARKETPLACE_BUS
        try:
            bus = eventbus.EventBus(self.engine, name)
        except eventbus.EventBridgeError as exc:
            return {"success": False, "error": exc.code, "message": exc.message}
        return publish_event(bus, source, detailType, self._object(detail, "detail"), name)


def execute(engine, query: str, variables: dict | None = None, operation_name: str | None = None) -> dict:
    """A GraphQL response document: ``{"data": ...}`` and ``{"errors": [...]}`` when any."""
    from graphql import graphql_sync
    if variables is not None and not isinstance(variables, dict):
        return {"errors": [{"message": "variables must be a JSON object"}]}
    result = graphql_sync(schema(), query, root_value=_Root(engine), variable_values=variables,
                          operation_name=operation_name)
    out: dict = {"data": result.data}
    if result.errors:
        out["errors"] = [{"message": e.message, **({"path": e.path} if e.path else {}),
                          **({"locations": [{"line": loc.line, "column": loc.column} for loc in e.locations]}
                             if e.locations else {})} for e in result.errors]
    return out
