"""DescribeMapRun, ListMapRuns and UpdateMapRun: the API face of a Distributed Map's map runs.

The runtime keeps one record per map run (`statelang.runtime.map_run.MAP_RUN`: its execution, its
children's state machine ARN, limits, status, dates); the counts are read from the children
themselves, which are executions in the store, so they are right whichever engine ran them.
Shapes follow the API reference and AWS's recorded answer in LocalStack's
tests/aws/services/stepfunctions/v2/test_sfn_api_map_run.snapshot.json.
"""

from __future__ import annotations

import re
from typing import Any

from statelang.api.errors import error
from statelang.api.machines import page, when
from statelang.runtime.map_run import MAP_RUN

MAP_RUN_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:states:[a-z0-9-]+:\d{12}:mapRun:[^:]+/[^:]+:[^:]+$")
_COUNT_KEYS = ("pending", "running", "succeeded", "failed", "timedOut", "aborted", "total", "resultsWritten")
_BY_STATUS = {"RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed", "TIMED_OUT": "timedOut",
              "ABORTED": "aborted", "PENDING_REDRIVE": "running"}


class MapRunsMixin:
    """Mixed into `Client`; `self.engine` is the engine the client serves."""

    def _map_run(self, arn: str) -> dict:
        if not isinstance(arn, str) or not MAP_RUN_ARN.match(arn):
            raise error("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {arn}'")
        rec = self.engine.store.get_record(MAP_RUN, arn)
        if rec is None:
            raise error("ResourceNotFound", f"Resource not found: '{arn}'")
        return dict(rec)

    def _children(self, rec: dict) -> list[dict]:
        return [r for r in self.engine.store.list_executions(rec["stateMachineArn"])
                if (r.get("parent") or {}).get("mapRunArn") == rec["mapRunArn"]]

    def _describe_map_run(self, *, mapRunArn: str) -> dict:
        rec = self._map_run(mapRunArn)
        children = self._children(rec)
        bounds = rec.get("bounds")
        executions = dict.fromkeys(_COUNT_KEYS, 0)
        items = dict.fromkeys(_COUNT_KEYS, 0)
        executions["total"] = len(bounds) - 1 if bounds else rec.get("items", 0)
        items["total"] = rec.get("items", 0)
        for row in children:
            i = row["parent"]["index"]
            size = bounds[i + 1] - bounds[i] if bounds else 1
            key = _BY_STATUS.get(row["status"], "running")
            executions[key] += 1
            items[key] += size
            if row["status"] != "RUNNING":
                executions["resultsWritten"] += 1
                items["resultsWritten"] += size
        executions["pending"] = executions["total"] - len(children)
        items["pending"] = items["total"] - sum(items[k] for k in ("running", "succeeded", "failed", "timedOut",
                                                                  "aborted"))
        return {"mapRunArn": rec["mapRunArn"], "executionArn": rec["executionArn"], "status": rec["status"],
                "startDate": when(rec["startDate"]), "stopDate": when(rec.get("stopDate")),
                "maxConcurrency": rec["maxConcurrency"], "toleratedFailurePercentage": rec["toleratedFailurePercentage"],
                "toleratedFailureCount": rec["toleratedFailureCount"], "itemCounts": items,
                "executionCounts": executions, "redriveCount": 0}

    def _list_map_runs(self, *, executionArn: str, maxResults: int | None = None,
                       nextToken: str | None = None) -> dict:
        self._execution(executionArn)   # InvalidArn / ExecutionDoesNotExist
        recs = [r for r in self.engine.store.list_records(MAP_RUN) if r.get("executionArn") == executionArn]

        def key(r: dict) -> list:
            return [r["startDate"], r["mapRunArn"]]
        recs.sort(key=key)
        chunk, token = page(recs, key, maxResults, nextToken, [executionArn])
        return {"mapRuns": [{"executionArn": r["executionArn"], "mapRunArn": r["mapRunArn"],
                             "stateMachineArn": r["stateMachineArn"], "startDate": when(r["startDate"]),
                             "stopDate": when(r.get("stopDate"))} for r in chunk],
                "nextToken": token}

    def _update_map_run(self, *, mapRunArn: str, maxConcurrency: int | None = None,
                        toleratedFailurePercentage: float | None = None,
                        toleratedFailureCount: int | None = None) -> dict:
        rec = self._map_run(mapRunArn)
        if maxConcurrency is None and toleratedFailurePercentage is None and toleratedFailureCount is None:
            raise error("ValidationException", "Must provide at least one of maxConcurrency, "
                                               "toleratedFailurePercentage or toleratedFailureCount")
        if rec["status"] != "RUNNING":
            raise error("ValidationException", f"Map Run {mapRunArn} is not running and cannot be updated")
        changed: dict[str, Any] = dict(rec.get("updated") or {})
        for name, value in (("maxConcurrency", maxConcurrency), ("toleratedFailureCount", toleratedFailureCount),
                            ("toleratedFailurePercentage", toleratedFailurePercentage)):
            if value is not None:
                changed[name] = value
                rec[name] = float(value) if name == "toleratedFailurePercentage" else value
        rec["updated"] = changed
        self.engine.store.put_record(MAP_RUN, mapRunArn, rec)
        if self.engine.map_runs is not None:
            self.engine.map_runs.update(mapRunArn, maxConcurrency, toleratedFailureCount, toleratedFailurePercentage)
        return {}

    def map_run_item_count(self, map_run_arn: str, child: dict) -> int:
        """How many items a child execution of the map run processed (its batch's size, or 1)."""
        bounds = (self.engine.store.get_record(MAP_RUN, map_run_arn) or {}).get("bounds")
        i = (child.get("parent") or {}).get("index", 0)
        return bounds[i + 1] - bounds[i] if bounds else 1

    def map_run_children(self, map_run_arn: str) -> list[dict]:
        """The child executions of a map run (ListExecutions with mapRunArn)."""
        return self._children(self._map_run(map_run_arn))
