"""Event buses, rules and their targets, PutEvents, archives and replays — EventBridge's API
over the engine's Store.

Everything a bus knows is a Store record (JSON-ready dicts, times as ISO text), so a second
engine on the same database sees the same buses, rules, targets and archives, and a restarted
process loses nothing. A rule's targets live inside the rule's record: PutTargets and
RemoveTargets then change one record, never leaving a half-updated rule. The per-process state
is only a cache (the compiled rule index, rebuilt when the rule records change) and the Python
handlers registered with `EventBus.register_handler`.
"""

from __future__ import annotations

import json
import re
import uuid
import weakref
from datetime import UTC, datetime
from typing import Any

from statelang.language import jsontext

from . import schedules
from .patterns import InvalidEventPattern, compile_pattern
from .ruler import PatternIndex
from .targets import (
    DEAD_LETTER,
    DELIVERY,
    MAX_TARGETS_PER_RULE,
    EventBridgeError,
    attempt,
    check_target,
    iso,
    new_delivery,
)

BUS = "events.bus"
RULE = schedules.RULE
ARCHIVE = "events.archive"
ARCHIVED = "events.archived"
REPLAY = "events.replay"
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
MAX_DEPTH = 16  # bus-to-bus forwarding hops before an event is dropped: a loop guard
_NAME_RE = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
_BUS_NAME_RE = re.compile(r"^[/\.\-_A-Za-z0-9]{1,256}$")
_STATES = ("ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")

# Per engine, per process: registered handlers and the compiled rule index of each bus.
_LOCAL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _local(engine) -> dict:
    state = _LOCAL.get(engine)
    if state is None:
        state = _LOCAL[engine] = {"handlers": {}, "index": {}}
    return state


def _time(value: Any) -> datetime:
    """A datetime from a datetime, ISO text or epoch seconds; naive means UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    raise ValueError(f"not a time: {value!r}")


def event_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_size(entry: dict) -> int:
    """AWS's PutEvents entry size: Time counts 14 bytes, then Source, DetailType, Detail and each
    Resource in UTF-8 bytes."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, dict):
            value = json.dumps(value)
        if isinstance(value, str):
            size += len(value.encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources") or [])


class EventBus:
    """One event bus of an engine. ``EventBus(engine)`` is the default bus, which always exists;
    ``EventBus(engine, "orders")`` creates the named bus if it does not exist yet."""

    Error = EventBridgeError

    def __init__(self, engine, name: str = "default"):
        if ":event-bus/" in name:
            name = name.split(":event-bus/", 1)[1]
        if not _BUS_NAME_RE.match(name):
            raise EventBridgeError("ValidationException", f"Event bus name {name} is not valid.", "CreateEventBus")
        self.engine = engine
        self.name = name
        self.arn = f"arn:aws:events:{engine.region}:{engine.account_id}:event-bus/{name}"
        if engine.store.get_record(BUS, self.arn) is None:
            engine.store.put_record(BUS, self.arn, {"Name": name, "Arn": self.arn,
                                                    "CreationTime": iso(engine.clock.now())})

    # -- buses ---------------------------------------------------------------------------------
    def bus_exists(self, name: str) -> bool:
        arn = f"arn:aws:events:{self.engine.region}:{self.engine.account_id}:event-bus/{name}"
        return name == "default" or self.engine.store.get_record(BUS, arn) is not None

    def list_event_buses(self, name_prefix: str | None = None) -> dict:
        EventBus(self.engine)  # the default bus exists even if nobody touched it yet
        buses = sorted(self.engine.store.list_records(BUS), key=lambda b: b["Name"])
        return {"EventBuses": [{"Name": b["Name"], "Arn": b["Arn"]} for b in buses
                               if not name_prefix or b["Name"].startswith(name_prefix)]}

    def delete_event_bus(self, name: str) -> dict:
        if name == "default":
            raise EventBridgeError("ValidationException", "Cannot delete event bus default.", "DeleteEventBus")
        arn = f"arn:aws:events:{self.engine.region}:{self.engine.account_id}:event-bus/{name}"
        self.engine.store.delete_record(BUS, arn)
        for rule in self.engine.store.list_records(RULE):
            if rule["EventBusName"] == name:
                self.engine.store.delete_record(RULE, rule["Arn"])
        return {}

    @property
    def handlers(self) -> dict:
        return _local(self.engine)["handlers"]

    def register_handler(self, arn_or_name: str, fn) -> None:
        """Deliver events for target ``Arn`` (a full ARN, or a Lambda function's name) to ``fn``,
        called with the target's input (JSON decoded when it is JSON)."""
        self.handlers[arn_or_name] = fn

    # -- rules ---------------------------------------------------------------------------------
    def rule_arn(self, name: str) -> str:
        path = name if self.name == "default" else f"{self.name}/{name}"
        return f"arn:aws:events:{self.engine.region}:{self.engine.account_id}:rule/{path}"

    def _rule(self, name: str, operation: str) -> dict:
        rule = self.engine.store.get_record(RULE, self.rule_arn(name))
        if rule is None:
            raise EventBridgeError("ResourceNotFoundException",
                                   f"Rule {name} does not exist on EventBus {self.name}.", operation)
        return rule

    def put_rule(self, name: str, event_pattern: dict | str | None = None, schedule_expression: str | None = None,
                 state: str = "ENABLED", description: str | None = None, role_arn: str | None = None) -> dict:
        """PutRule: create or update a rule; its targets stay. Returns {"RuleArn"}."""
        op = "PutRule"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise EventBridgeError("ValidationException", f"1 validation error detected: Value '{name}' at 'name' "
                                   "failed to satisfy constraint: Member must satisfy regular expression "
                                   "pattern: [\\.\\-_A-Za-z0-9]+", op)
        if event_pattern is None and schedule_expression is None:
            raise EventBridgeError("ValidationException",
                                   "Parameter(s) EventPattern or ScheduleExpression must be specified.", op)
        if state not in _STATES:
            raise EventBridgeError("ValidationException", f"1 validation error detected: Value '{state}' at "
                                   "'state' failed to satisfy constraint: Member must satisfy enum value set: "
                                   f"[{', '.join(_STATES)}]", op)
        pattern_text = None
        if event_pattern is not None:
            try:
                compile_pattern(event_pattern)
            except InvalidEventPattern as exc:
                raise EventBridgeError("InvalidEventPatternException", str(exc), op) from None
            pattern_text = event_pattern if isinstance(event_pattern, str) else json.dumps(event_pattern)
        arn = self.rule_arn(name)
        old = self.engine.store.get_record(RULE, arn)
        now = self.engine.clock.now()
        rule = {"Name": name, "Arn": arn, "EventBusName": self.name, "EventPattern": pattern_text,
                "ScheduleExpression": schedule_expression, "State": state, "Description": description,
                "RoleArn": role_arn, "CreatedBy": self.engine.account_id,
                "Targets": (old or {}).get("Targets", []), "Anchor": iso(now), "NextFire": None}
        if schedule_expression is not None:
            if self.name != "default":
                raise EventBridgeError("ValidationException",
                                       "ScheduleExpression is supported only on the default event bus.", op)
            try:
                first = schedules.rule_schedule(rule).next_after(now)
            except ValueError:
                raise EventBridgeError("ValidationException", schedules.SCHEDULE_ERROR, op) from None
            rule["NextFire"] = iso(first) if first else None
        self.engine.store.put_record(RULE, arn, rule)
        return {"RuleArn": arn}

    def describe_rule(self, name: str) -> dict:
        rule = self._rule(name, "DescribeRule")
        out = {k: rule[k] for k in ("Name", "Arn", "EventPattern", "ScheduleExpression", "State",
                                    "Description", "RoleArn", "EventBusName", "CreatedBy") if rule.get(k)}
        return out

    def list_rules(self, name_prefix: str | None = None, next_token: str | None = None,
                   limit: int | None = None) -> dict:
        """ListRules: this bus's rules by name; ``NextToken`` pages when ``limit`` cuts the list."""
        rules = sorted((r for r in self.engine.store.list_records(RULE) if r["EventBusName"] == self.name
                        and (not name_prefix or r["Name"].startswith(name_prefix))), key=lambda r: r["Name"])
        start = 0
        if next_token:
            try:
                start = int(next_token)
            except ValueError:
                raise EventBridgeError("ValidationException", "The NextToken provided is invalid.",
                                       "ListRules") from None
        end = len(rules) if not limit else start + limit
        out: dict = {"Rules": [{k: r[k] for k in ("Name", "Arn", "EventPattern", "ScheduleExpression", "State",
                                                  "Description", "RoleArn", "EventBusName") if r.get(k)}
                               for r in rules[start:end]]}
        if end < len(rules):
            out["NextToken"] = str(end)
        return out

    def _set_state(self, name: str, state: str, operation: str) -> dict:
        rule = self._rule(name, operation)
        if state == "ENABLED" and rule["State"] == "DISABLED" and rule.get("ScheduleExpression"):
            now = self.engine.clock.now()   # a re-enabled schedule does not fire what it missed
            nxt = schedules.rule_schedule(rule).next_after(now)
            rule["NextFire"] = iso(nxt) if nxt else None
        rule["State"] = state
        self.engine.store.put_record(RULE, rule["Arn"], rule)
        return {}

    def enable_rule(self, name: str) -> dict:
        return self._set_state(name, "ENABLED", "EnableRule")

    def disable_rule(self, name: str) -> dict:
        return self._set_state(name, "DISABLED", "DisableRule")

    def delete_rule(self, name: str, force: bool = False) -> dict:
        """DeleteRule: AWS refuses while the rule has targets; an unknown rule is no error."""
        rule = self.engine.store.get_record(RULE, self.rule_arn(name))
        if rule is None:
            return {}
        if rule["Targets"] and not force:
            raise EventBridgeError("ValidationException", "Rule can't be deleted since it has targets.", "DeleteRule")
        self.engine.store.delete_record(RULE, rule["Arn"])
        return {}

    def put_targets(self, rule: str, targets: list[dict]) -> dict:
        """PutTargets: add or replace targets by Id; bad ones come back in FailedEntries."""
        record = self._rule(rule, "PutTargets")
        current = {t["Id"]: t for t in record["Targets"]}
        failed = []
        for target in targets:
            problem = check_target(target)
            if problem:
                failed.append({"TargetId": target.get("Id"), "ErrorCode": problem[0], "ErrorMessage": problem[1]})
                continue
            current[target["Id"]] = json.loads(json.dumps(target))
        if len(current) > MAX_TARGETS_PER_RULE:
            raise EventBridgeError("LimitExceededException",
                                   "The requested resource exceeds the maximum number allowed.", "PutTargets")
        record["Targets"] = list(current.values())
        self.engine.store.put_record(RULE, record["Arn"], record)
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def remove_targets(self, rule: str, ids: list[str], force: bool = False) -> dict:
        record = self._rule(rule, "RemoveTargets")
        record["Targets"] = [t for t in record["Targets"] if t["Id"] not in set(ids)]
        self.engine.store.put_record(RULE, record["Arn"], record)
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def list_targets_by_rule(self, rule: str) -> dict:
        return {"Targets": list(self._rule(rule, "ListTargetsByRule")["Targets"])}

    # -- events --------------------------------------------------------------------------------
    def put_events(self, entries: list[dict], *, event_ids: list[str] | None = None) -> dict:
        """PutEvents: up to 10 entries, 256 KB in all; each entry succeeds or fails on its own.

        An entry without ``EventBusName`` goes to this bus. ``Detail`` may be given as a dict
        (Step Functions passes objects); it must be a JSON object. ``event_ids`` fixes the ids,
        so that a retried caller (a task run again after a crash) sends the same events."""
        op = "PutEvents"
        if not isinstance(entries, list):
            raise EventBridgeError("ValidationException", "1 validation error detected: Value at 'entries' failed to "
                                   "satisfy constraint: Member must be a list of entries", op)
        if not entries:
            raise EventBridgeError("ValidationException", "1 validation error detected: Value '[]' at 'entries' "
                                   "failed to satisfy constraint: Member must have length greater than or equal to 1",
                                   op)
        for n, entry in enumerate(entries, 1):
            if not isinstance(entry, dict):
                raise EventBridgeError("ValidationException", f"1 validation error detected: Value at 'entries.{n}."
                                       "member' failed to satisfy constraint: Member must be an entry object", op)
        if len(entries) > MAX_ENTRIES:
            raise EventBridgeError("ValidationException", "1 validation error detected: Value at 'entries' failed "
                                   "to satisfy constraint: Member must have length less than or equal to 10", op)
        if sum(entry_size(e) for e in entries) > MAX_REQUEST_BYTES:
            raise EventBridgeError("ValidationException", "Total size of the entries in the request is over the "
                                   "limit.", op)
        now = self.engine.clock.now()
        results = []
        for n, entry in enumerate(entries):
            problem = _entry_problem(entry)
            bus_name = entry.get("EventBusName") or self.name
            if ":event-bus/" in bus_name:
                bus_name = bus_name.split(":event-bus/", 1)[1]
            if problem is None and not self.bus_exists(bus_name):
                problem = ("ResourceNotFoundException", f"Event bus {bus_name} does not exist.")
            if problem:
                results.append({"ErrorCode": problem[0], "ErrorMessage": problem[1]})
                continue
            detail = entry["Detail"]
            eid = event_ids[n] if event_ids else str(uuid.uuid4())
            event = {"version": "0", "id": eid, "detail-type": entry["DetailType"], "source": entry["Source"],
                     "account": self.engine.account_id,
                     "time": event_time(_time(entry["Time"]) if entry.get("Time") is not None else now),
                     "region": self.engine.region, "resources": list(entry.get("Resources") or []),
                     "detail": detail if isinstance(detail, dict) else jsontext.loads(detail)}
            bus = self if bus_name == self.name else EventBus(self.engine, bus_name)
            bus.ingest(event, accepted=now)
            results.append({"EventId": eid})
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}

    def _index(self) -> tuple[PatternIndex, dict]:
        """This bus's enabled pattern rules, compiled once per change of the rule records."""
        rules = {r["Arn"]: r for r in self.engine.store.list_records(RULE)
                 if r["EventBusName"] == self.name and r.get("EventPattern") and r["State"] != "DISABLED"}
        key = tuple(sorted((arn, r["EventPattern"]) for arn, r in rules.items()))
        cache = _local(self.engine)["index"]
        hit = cache.get(self.name)
        if hit is None or hit[0] != key:
            hit = cache[self.name] = (key, PatternIndex((arn, r["EventPattern"]) for arn, r in rules.items()))
        return hit[1], rules

    def ingest(self, event: dict, *, accepted: datetime | None = None, depth: int = 0,
               filter_arns: list[str] | None = None) -> list[str]:
        """Archive an accepted event and deliver it to every matching rule's targets; returns the
        ARNs of the rules it matched. A replayed event (it carries ``replay-name``) is not archived
        again and reaches only the replay's rules."""
        if depth > MAX_DEPTH:
            return []
        now = accepted or self.engine.clock.now()
        if "replay-name" not in event:
            self._archive(event)
        index, rules = self._index()
        matched = index.match(event)
        if filter_arns:
            matched = [arn for arn in matched if arn in set(filter_arns)]
        for arn in matched:
            self.deliver_to_rule(rules[arn], event, now, depth)
        return matched

    def forward(self, name: str, event: dict, depth: int) -> None:
        """An event-bus target's delivery: the event goes on this engine's bus `name`, one hop
        deeper (`MAX_DEPTH` ends a loop of buses)."""
        EventBus(self.engine, name).ingest(event, depth=depth)

    def deliver_to_rule(self, rule: dict, event: dict, now: datetime, depth: int = 0) -> None:
        for target in rule.get("Targets") or []:
            self.deliver_to_target(rule["Arn"], rule["Name"], target, event, now, depth)

    def deliver_to_target(self, rule_arn: str, rule_name: str, target: dict, event: dict, now: datetime,
                          depth: int = 0) -> bool:
        """Store the delivery, claimed by this worker, then attempt it: the record is what survives
        a crash in between (another worker retries it when the claim runs out)."""
        delivery = new_delivery(self, rule_arn, rule_name, target, event, now, depth)
        self.engine.store.put_record(DELIVERY, delivery["Id"], delivery)
        return attempt(self, delivery, now)

    def dead_letters(self) -> list[dict]:
        """Deliveries that failed for good (retries exhausted, too old, or not retryable)."""
        return [d for d in self.engine.store.list_records(DEAD_LETTER) if d["EventBusName"] == self.name]

    def pending_deliveries(self) -> list[dict]:
        return [d for d in self.engine.store.list_records(DELIVERY) if d["EventBusName"] == self.name]

    # -- archives and replays ------------------------------------------------------------------
    def _archive_arn(self, name: str) -> str:
        if name.startswith("arn:"):
            return name
        return f"arn:aws:events:{self.engine.region}:{self.engine.account_id}:archive/{name}"

    def _archive(self, event: dict) -> None:
        for archive in self.engine.store.list_records(ARCHIVE):
            if archive["EventSourceArn"] != self.arn or archive["State"] != "ENABLED":
                continue
            if archive.get("EventPattern") and not compile_pattern(archive["EventPattern"]).matches(event):
                continue
            key = f"{archive['ArchiveArn']}#{event['time']}#{event['id']}"
            self.engine.store.put_record(ARCHIVED, key, {"ArchiveArn": archive["ArchiveArn"], "Time": event["time"],
                                                         "Event": event, "Size": len(json.dumps(event))})

    def create_archive(self, name: str, event_pattern: dict | str | None = None, description: str | None = None,
                       retention_days: int = 0) -> dict:
        """CreateArchive on this bus: from now on its accepted events matching the pattern are kept."""
        op = "CreateArchive"
        if not _NAME_RE.match(name or "") or len(name) > 48:
            raise EventBridgeError("ValidationException", f"Archive name {name} is not valid.", op)
        arn = self._archive_arn(name)
        if self.engine.store.get_record(ARCHIVE, arn) is not None:
            raise EventBridgeError("ResourceAlreadyExistsException", f"Archive {name} already exists.", op)
        text = None
        if event_pattern is not None:
            try:
                compile_pattern(event_pattern)
            except InvalidEventPattern as exc:
                raise EventBridgeError("InvalidEventPatternException", str(exc), op) from None
            text = event_pattern if isinstance(event_pattern, str) else json.dumps(event_pattern)
        now = self.engine.clock.now()
        rec = {"ArchiveName": name, "ArchiveArn": arn, "EventSourceArn": self.arn, "Description": description,
               "EventPattern": text, "State": "ENABLED", "RetentionDays": retention_days, "CreationTime": iso(now)}
        self.engine.store.put_record(ARCHIVE, arn, rec)
        return {"ArchiveArn": arn, "State": "ENABLED", "CreationTime": now}

    def _archived(self, arn: str) -> list[dict]:
        """The archive's events by time; those past RetentionDays are deleted on the way."""
        rec = self.engine.store.get_record(ARCHIVE, arn) or {}
        days = rec.get("RetentionDays") or 0
        now = self.engine.clock.now()
        kept = []
        for row in self.engine.store.list_records(ARCHIVED):
            if row["ArchiveArn"] != arn:
                continue
            if days and (now - _time(row["Time"])).total_seconds() > days * 86400:
                self.engine.store.delete_record(ARCHIVED, f"{arn}#{row['Time']}#{row['Event']['id']}")
                continue
            kept.append(row)
        return sorted(kept, key=lambda r: r["Time"])

    def describe_archive(self, name: str) -> dict:
        arn = self._archive_arn(name)
        rec = self.engine.store.get_record(ARCHIVE, arn)
        if rec is None:
            raise EventBridgeError("ResourceNotFoundException", f"Archive {name} does not exist.", "DescribeArchive")
        rows = self._archived(arn)
        out = {k: v for k, v in rec.items() if v is not None}
        out.update(CreationTime=_time(rec["CreationTime"]), EventCount=len(rows), SizeBytes=sum(r["Size"] for r in rows))
        return out

    def list_archives(self, name_prefix: str | None = None, state: str | None = None) -> dict:
        names = sorted(a["ArchiveName"] for a in self.engine.store.list_records(ARCHIVE)
                       if a["EventSourceArn"] == self.arn and (not name_prefix or a["ArchiveName"].startswith(name_prefix))
                       and (not state or a["State"] == state))
        return {"Archives": [{k: v for k, v in self.describe_archive(n).items()
                              if k not in ("Description", "EventPattern", "ArchiveArn")} for n in names]}

    def delete_archive(self, name: str) -> dict:
        arn = self._archive_arn(name)
        if self.engine.store.get_record(ARCHIVE, arn) is None:
            raise EventBridgeError("ResourceNotFoundException", f"Archive {name} does not exist.", "DeleteArchive")
        for row in self._archived(arn):
            self.engine.store.delete_record(ARCHIVED, f"{arn}#{row['Time']}#{row['Event']['id']}")
        self.engine.store.delete_record(ARCHIVE, arn)
        return {}

    def start_replay(self, archive: str, start: Any, end: Any, name: str | None = None,
                     filter_arns: list[str] | None = None, description: str | None = None) -> dict:
        """StartReplay: re-send the archive's events with ``start <= time < end`` to its bus, each
        with ``replay-name`` set, to the rules in ``filter_arns`` (all rules when omitted). The
        replay runs to completion before returning; DescribeReplay then says COMPLETED."""
        op = "StartReplay"
        arn = self._archive_arn(archive)
        rec = self.engine.store.get_record(ARCHIVE, arn)
        if rec is None:
            raise EventBridgeError("ResourceNotFoundException", f"Archive {archive} does not exist.", op)
        t0, t1 = _time(start), _time(end)
        if t0 >= t1:
            raise EventBridgeError("ValidationException", "Parameter EventEndTime is not valid. Reason: "
                                   "EventStartTime must be before EventEndTime.", op)
        if rec["EventSourceArn"] != self.arn:
            raise EventBridgeError("ValidationException", "Parameter Destination.Arn is not valid. Reason: "
                                   "Cross event bus replay is not permitted.", op)
        now = self.engine.clock.now()
        name = name or f"{rec['ArchiveName']}-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        replay_arn = f"arn:aws:events:{self.engine.region}:{self.engine.account_id}:replay/{name}"
        if self.engine.store.get_record(REPLAY, replay_arn) is not None:
            raise EventBridgeError("ResourceAlreadyExistsException", f"Replay {name} already exists.", op)
        last = None
        count = 0
        for row in self._archived(arn):
            t = _time(row["Time"])
            if t0 <= t < t1:
                self.ingest(dict(row["Event"], **{"replay-name": name}), filter_arns=filter_arns)
                last, count = t, count + 1
        self.engine.store.put_record(REPLAY, replay_arn, {
            "ReplayName": name, "ReplayArn": replay_arn, "Description": description, "State": "COMPLETED",
            "EventSourceArn": arn, "Destination": {"Arn": self.arn, **({"FilterArns": filter_arns} if filter_arns else {})},
            "EventStartTime": iso(t0), "EventEndTime": iso(t1), "EventLastReplayedTime": iso(last) if last else None,
            "ReplayStartTime": iso(now), "ReplayEndTime": iso(self.engine.clock.now()), "EventCount": count})
        return {"ReplayArn": replay_arn, "State": "STARTING", "StateReason": "Replay started", "ReplayStartTime": now}

    def describe_replay(self, name: str) -> dict:
        arn = f"arn:aws:events:{self.engine.region}:{self.engine.account_id}:replay/{name}"
        rec = self.engine.store.get_record(REPLAY, arn)
        if rec is None:
            raise EventBridgeError("ResourceNotFoundException", f"Replay {name} does not exist.", "DescribeReplay")
        return {k: (_time(v) if k.endswith("Time") and v else v) for k, v in rec.items() if v is not None}

    def list_replays(self) -> dict:
        return {"Replays": [r for r in self.engine.store.list_records(REPLAY)]}

    # -- schedules and the loop ----------------------------------------------------------------
    def create_schedule(self, name: str, schedule_expression: str, target: dict, **kwargs) -> dict:
        """EventBridge Scheduler's CreateSchedule (``at()``, ``rate()``, ``cron()``); see schedules."""
        return schedules.create_schedule(self, name, schedule_expression, target, **kwargs)

    def delete_schedule(self, name: str, group: str = "default") -> dict:
        arn = f"arn:aws:scheduler:{self.engine.region}:{self.engine.account_id}:schedule/{group}/{name}"
        if self.engine.store.get_record(schedules.SCHEDULE, arn) is None:
            raise EventBridgeError("ResourceNotFoundException", f"Schedule {name} does not exist.", "DeleteSchedule")
        self.engine.store.delete_record(schedules.SCHEDULE, arn)
        return {}

    def list_schedules(self) -> list[dict]:
        return self.engine.store.list_records(schedules.SCHEDULE)

    def tick(self, now: datetime | None = None) -> int:
        """Fire what is due: schedules, and retries of failed deliveries."""
        return schedules.tick(self, now)

    def next_due(self, schedules_too: bool = True) -> datetime | None:
        return schedules.next_due(self.engine, schedules_too)


def _entry_problem(entry: dict) -> tuple[str, str] | None:
    """The per-entry error PutEvents reports, in AWS's order of checks."""
    if not isinstance(entry, dict):
        return ("InvalidArgument", "Parameter Entry is not valid.")
    for key in ("Source", "DetailType", "Detail"):
        if entry.get(key) is None or entry.get(key) == "":
            return ("InvalidArgument", f"Parameter {key} is not valid. Reason: {key} is a required argument.")
    detail = entry["Detail"]
    if isinstance(detail, str):
        try:
            detail = jsontext.loads_bounded(detail)
        except jsontext.JSONDepthError as exc:
            return ("MalformedDetail", f"Detail is malformed: {exc}.")
        except ValueError:
            return ("MalformedDetail", "Detail is malformed.")
    if not isinstance(detail, dict):
        return ("MalformedDetail", "Detail is malformed.")
    if entry.get("Time") is not None:
        try:
            _time(entry["Time"])
        except (ValueError, OverflowError):
            return ("InvalidArgument", "Parameter Time is not valid.")
    return None
