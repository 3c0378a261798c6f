"""State machines, versions, aliases, activities and tags of the in-process Step Functions API.

These resources are plain records in the engine's Store (``put_record(kind, arn, record)``), held
as JSON-ready dicts — timestamps as ISO text — so that every Store, in memory or SQL, keeps them
the same way. An execution never reads them after it started: it carries its own definition.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime
from typing import Any

from statelang.api.errors import error

SM, VERSION, ALIAS, ACTIVITY, TAGS = "state_machine", "state_machine_version", "state_machine_alias", \
    "activity", "tags"
MAX_VERSIONS = 1000   # per state machine (AWS quota)
MAX_ALIASES = 100     # per state machine
MAX_TAGS = 50
MAX_DEFINITION_BYTES = 1048576   # CreateStateMachine's definition: 1 MiB (the API's length constraint)
DEFAULT_PAGE = 100

_PARTITION = r"arn:(?:aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b)"
SM_ARN = re.compile(_PARTITION + r":states:([a-z0-9-]+):(\d{12}):stateMachine:([^:]+)(?::([^:]+))?$")
EXEC_ARN = re.compile(_PARTITION + r":states:([a-z0-9-]+):(\d{12}):(execution|express):([^:]+):([^:]+)(?::[^:]+)?$")
ACTIVITY_ARN = re.compile(_PARTITION + r":states:([a-z0-9-]+):(\d{12}):activity:([^:]+)$")
ROLE_ARN = re.compile(_PARTITION + r":iam::\d{12}:role/.+$")
ALIAS_NAME = re.compile(r"^(?=.*[a-zA-Z_\-.])[a-zA-Z0-9_\-.]+$")
_FORBIDDEN = set(' <>{}[]?*"#%\\^|~`$&,;:/')
# One character AWS refuses in a name: the listed punctuation, white space (``\s`` is what
# str.isspace() is), control characters, surrogates and the two non-characters.
_BAD_NAME_CHAR = re.compile("[" + re.escape("".join(sorted(_FORBIDDEN))) + r"\s\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


# -- small shared helpers ------------------------------------------------------------------------
def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def when(text: Any) -> datetime | None:
    if text is None or isinstance(text, datetime):
        return text
    return datetime.fromisoformat(text)


def check_name(name: str, what: str = "name") -> None:
    """AWS's name rules: 1-80 characters, none of white space, brackets, wildcards, the listed
    punctuation, control characters, surrogates or non-characters."""
    if len(name) > 80:
        raise error("ValidationException",
                    f"1 validation error detected: Value '{name}' at '{what}' failed to satisfy "
                    f"constraint: Member must have length less than or equal to 80")
    if _BAD_NAME_CHAR.search(name):
        raise error("InvalidName", f"Invalid Name: '{name}'")


def invalid_arn(arn: str, expected: str) -> Exception:
    if not arn.startswith("arn:"):
        return error("InvalidArn", f"Invalid Arn: 'Invalid ARN prefix: {arn}'")
    parts = arn.split(":")
    kind = parts[5] if len(parts) > 5 else ""
    if kind and kind != expected:
        return error("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {kind}'")
    return error("InvalidArn", f"Invalid Arn: '{arn}'")


def parse_sm_arn(arn: str) -> tuple[str, str, str | None]:
    """(unqualified ARN, machine name, qualifier) — the qualifier is a version number or an alias."""
    m = SM_ARN.match(arn)
    if not m:
        raise invalid_arn(arn, "stateMachine")
    name, qualifier = m.group(3), m.group(4)
    if "/" in name:  # a Distributed Map's label
        raise error("ValidationException", f"Invalid Arn: '{arn}' refers to a Map Run label, not a state machine")
    base = arn if qualifier is None else arn.rsplit(":", 1)[0]
    return base, name, qualifier


def page(items: list, key, max_results: int | None, next_token: str | None, query: Any = None):
    """One page of `items` (already in order) and the token of the next one.

    The token names the last item handed out and the query, not an offset, so an item added or
    removed between two calls neither repeats nor hides another."""
    limit = max_results or DEFAULT_PAGE
    sig = json.dumps(query, sort_keys=True, default=str)
    start = 0
    if next_token:
        try:
            data = json.loads(base64.urlsafe_b64decode(next_token.encode()).decode())
            after, qsig = data["after"], data["q"]
        except Exception as exc:  # noqa: BLE001 - any undecodable token is the caller's error
            raise error("InvalidToken", f"Invalid Token: 'Invalid token: {next_token}'") from exc
        if qsig != sig:
            raise error("InvalidToken", "Invalid Token: 'The token does not match the request'")
        keys = [key(i) for i in items]
        start = next((n for n, k in enumerate(keys) if _after(k, after)), len(items))
    chunk = items[start:start + limit]
    token = None
    if start + limit < len(items):
        last = json.loads(json.dumps(key(chunk[-1])))
        token = base64.urlsafe_b64encode(json.dumps({"after": last, "q": sig}).encode()).decode()
    return chunk, token


def _after(k, after) -> bool:
    return json.loads(json.dumps(k)) > after


# -- the mixin ------------------------------------------------------------------------------------
class MachinesMixin:
    """Operations on state machines, versions, aliases, activities and tags."""

    engine: Any

    # records ----------------------------------------------------------------------------------
    def _get(self, kind: str, arn: str) -> dict | None:
        rec = self.engine.store.get_record(kind, arn)
        return None if rec is None else dict(rec)

    def _put(self, kind: str, arn: str, rec: dict) -> None:
        self.engine.store.put_record(kind, arn, json.loads(json.dumps(rec)))

    def _now(self) -> datetime:
        return self.engine.clock.now()

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:states:{self.engine.region}:{self.engine.account_id}:{kind}:{name}"

    def _machine(self, arn: str) -> dict:
        rec = self._get(SM, arn)
        if rec is None:
            raise error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return rec

    def _versions_of(self, sm_arn: str) -> list[dict]:
        return sorted((v for v in self.engine.store.list_records(VERSION) if v["stateMachineArn"] == sm_arn),
                      key=lambda v: -v["version"])

    def _aliases_of(self, sm_arn: str) -> list[dict]:
        return sorted((a for a in self.engine.store.list_records(ALIAS) if a["stateMachineArn"] == sm_arn),
                      key=lambda a: (a["creationDate"], a["name"]))

    def _check_definition(self, definition: str) -> None:
        from statelang.language.loading import json_text_problems
        from statelang.language.validation import to_aws_location, validate
        if len(definition.encode()) > MAX_DEFINITION_BYTES:
            raise error("ValidationException",
                        "1 validation error detected: Value at 'definition' failed to satisfy constraint: "
                        f"Member must have length less than or equal to {MAX_DEFINITION_BYTES}")
        problems = [d for d in json_text_problems(definition) or validate(definition, local_handlers=False) if d.severity == "ERROR"]
        if problems:
            parts = [f"{d.code}: {d.message}" + (f" at {to_aws_location(d.location)}" if d.location else "")
                     for d in problems]
            raise error("InvalidDefinition", "Invalid State Machine Definition: '" + ", ".join(parts) + "'")

    def _check_role(self, role_arn: str) -> None:
        if not ROLE_ARN.match(role_arn):
            raise error("InvalidArn", f"Invalid Arn: 'Invalid Role Arn: {role_arn}'")

    @staticmethod
    def _logging(cfg: dict | None) -> dict:
        cfg = dict(cfg or {})
        level = cfg.setdefault("level", "OFF")
        cfg.setdefault("includeExecutionData", False)
        if level not in ("ALL", "ERROR", "FATAL", "OFF"):
            raise error("InvalidLoggingConfiguration", f"Invalid Logging Configuration: 'level {level}'")
        if level != "OFF" and len(cfg.get("destinations") or []) != 1:
            raise error("InvalidLoggingConfiguration",
                        "Invalid Logging Configuration: Must specify exactly one Log Destination.")
        return cfg

    # state machines ---------------------------------------------------------------------------
    def _create_state_machine(self, *, name: str, definition: str, roleArn: str, type: str = "STANDARD",
                              loggingConfiguration=None, tags=None, tracingConfiguration=None,
                              publish: bool = False, versionDescription: str | None = None,
                              encryptionConfiguration=None) -> dict:
        check_name(name)
        if type not in ("STANDARD", "EXPRESS"):
            raise error("ValidationException",
                        f"1 validation error detected: Value '{type}' at 'type' failed to satisfy constraint: "
                        f"Member must satisfy enum value set: [STANDARD, EXPRESS]")
        if versionDescription is not None and not publish:
            raise error("ValidationException", "Version description can only be set when publish is true")
        self._check_role(roleArn)
        self._check_definition(definition)
        logging = self._logging(loggingConfiguration)
        tracing = dict(tracingConfiguration or {"enabled": False})
        self._check_tags(tags or [])
        arn = self._arn("stateMachine", name)
        old = self._get(SM, arn)
        if old is not None:
            same = (_same_json(old["definition"], definition) and old["type"] == type
                    and old["loggingConfiguration"] == logging and old["tracingConfiguration"] == tracing)
            if not same:
                raise error("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
            out = {"stateMachineArn": arn, "creationDate": when(old["creationDate"])}
            if publish:
                out["stateMachineVersionArn"] = self._publish(old, versionDescription)[0]
            return out
        now = self._now()
        rec = {"stateMachineArn": arn, "name": name, "definition": definition, "roleArn": roleArn,
               "type": type, "creationDate": iso(now), "updateDate": iso(now), "status": "ACTIVE",
               "loggingConfiguration": logging, "tracingConfiguration": tracing,
               "encryptionConfiguration": encryptionConfiguration, "revisionId": None, "nextVersion": 1,
               "published": {}}
        self._put(SM, arn, rec)
        if tags:
            self._put(TAGS, arn, {"tags": {t["key"]: t.get("value", "") for t in tags}})
        out = {"stateMachineArn": arn, "creationDate": now}
        if publish:
            out["stateMachineVersionArn"] = self._publish(self._machine(arn), versionDescription)[0]
        return out

    def _describe_state_machine(self, *, stateMachineArn: str, includedData: str | None = None) -> dict:
        base, _, qualifier = parse_sm_arn(stateMachineArn)
        if qualifier is None:
            rec = self._machine(base)
            return {k: rec.get(k) for k in ("stateMachineArn", "name", "status", "definition", "roleArn",
                                            "type", "loggingConfiguration", "tracingConfiguration",
                                            "revisionId", "encryptionConfiguration")} | \
                {"creationDate": when(rec["creationDate"])}
        if not qualifier.isdigit():  # an alias: describe the version it routes most traffic to
            alias = self._get(ALIAS, stateMachineArn)
            if alias is None:
                raise error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{stateMachineArn}'")
            best = max(alias["routingConfiguration"], key=lambda r: r["weight"])
            stateMachineArn = best["stateMachineVersionArn"]
        v = self._get(VERSION, stateMachineArn)
        if v is None:
            raise error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{stateMachineArn}'")
        return {"stateMachineArn": v["stateMachineVersionArn"], "name": v["name"], "status": "ACTIVE",
                "definition": v["definition"], "roleArn": v["roleArn"], "type": v["type"],
                "creationDate": when(v["creationDate"]), "loggingConfiguration": v["loggingConfiguration"],
                "tracingConfiguration": v["tracingConfiguration"], "revisionId": v.get("revisionId"),
                "description": v.get("description"), "encryptionConfiguration": v.get("encryptionConfiguration")}

    def _update_state_machine(self, *, stateMachineArn: str, definition=None, roleArn=None,
                              loggingConfiguration=None, tracingConfiguration=None, publish: bool = False,
                              versionDescription=None, encryptionConfiguration=None) -> dict:
        base, _, qualifier = parse_sm_arn(stateMachineArn)
        if qualifier is not None:
            raise error("ValidationException", f"Cannot update a qualified state machine ARN: '{stateMachineArn}'")
        if definition is None and roleArn is None and loggingConfiguration is None \
                and tracingConfiguration is None and encryptionConfiguration is None:
            raise error("MissingRequiredParameter",
                        "Either the definition, the roleArn, the LoggingConfiguration, the EncryptionConfiguration "
                        "or the TracingConfiguration must be specified")
        if versionDescription is not None and not publish:
            raise error("ValidationException", "Version description can only be set when publish is true")
        rec = self._machine(base)
        changes: dict = {}
        if definition is not None:
            self._check_definition(definition)
            changes["definition"] = definition
        if roleArn is not None:
            self._check_role(roleArn)
            changes["roleArn"] = roleArn
        if loggingConfiguration is not None:
            changes["loggingConfiguration"] = self._logging(loggingConfiguration)
        if tracingConfiguration is not None:
            changes["tracingConfiguration"] = dict(tracingConfiguration)
        if encryptionConfiguration is not None:
            changes["encryptionConfiguration"] = encryptionConfiguration
        now = self._now()
        if any(rec.get(k) != v for k, v in changes.items()):
            rec.update(changes, revisionId=str(uuid.uuid4()), updateDate=iso(now))
            self._put(SM, base, rec)
        out = {"updateDate": when(rec["updateDate"]), "revisionId": rec["revisionId"]}
        if publish:
            out["stateMachineVersionArn"] = self._publish(rec, versionDescription)[0]
        return out

    def _delete_state_machine(self, *, stateMachineArn: str) -> dict:
        base, _, qualifier = parse_sm_arn(stateMachineArn)
        if qualifier is not None:
            raise error("ValidationException", f"Cannot delete a qualified state machine ARN: '{stateMachineArn}'")
        store = self.engine.store
        for a in self._aliases_of(base):
            store.delete_record(ALIAS, a["stateMachineAliasArn"])
        for v in self._versions_of(base):
            store.delete_record(VERSION, v["stateMachineVersionArn"])
            store.delete_record(TAGS, v["stateMachineVersionArn"])
        store.delete_record(SM, base)
        store.delete_record(TAGS, base)
        return {}

    def _list_state_machines(self, *, maxResults: int | None = None, nextToken: str | None = None) -> dict:
        items = sorted(self.engine.store.list_records(SM), key=lambda r: r["stateMachineArn"])
        chunk, token = page(items, lambda r: r["stateMachineArn"], maxResults, nextToken, "sm")
        return {"stateMachines": [{"stateMachineArn": r["stateMachineArn"], "name": r["name"], "type": r["type"],
                                   "creationDate": when(r["creationDate"])} for r in chunk], "nextToken": token}

    # versions ---------------------------------------------------------------------------------
    def _publish(self, rec: dict, description: str | None) -> tuple[str, datetime]:
        """Publishing the same revision twice returns the version made the first time."""
        rev = rec.get("revisionId") or "INITIAL"
        known = rec.get("published", {}).get(rev)
        if known is not None:
            v = self._get(VERSION, known)
            if v is not None:
                return known, when(v["creationDate"])
        if len(self._versions_of(rec["stateMachineArn"])) >= MAX_VERSIONS:
            raise error("ServiceQuotaExceededException",
                        f"Maximum number of versions ({MAX_VERSIONS}) reached for '{rec['stateMachineArn']}'")
        n = rec["nextVersion"]
        arn = f"{rec['stateMachineArn']}:{n}"
        now = self._now()
        self._put(VERSION, arn, {
            "stateMachineVersionArn": arn, "stateMachineArn": rec["stateMachineArn"], "version": n,
            "name": rec["name"], "definition": rec["definition"], "roleArn": rec["roleArn"], "type": rec["type"],
            "creationDate": iso(now), "loggingConfiguration": rec["loggingConfiguration"],
            "tracingConfiguration": rec["tracingConfiguration"], "revisionId": rec.get("revisionId"),
            "description": description, "encryptionConfiguration": rec.get("encryptionConfiguration")})
        rec["nextVersion"] = n + 1
        rec.setdefault("published", {})[rev] = arn
        self._put(SM, rec["stateMachineArn"], rec)
        return arn, now

    def _publish_state_machine_version(self, *, stateMachineArn: str, revisionId: str | None = None,
                                       description: str | None = None) -> dict:
        base, _, qualifier = parse_sm_arn(stateMachineArn)
        if qualifier is not None:
            raise error("ValidationException", f"Cannot publish a qualified state machine ARN: '{stateMachineArn}'")
        rec = self._machine(base)
        if revisionId is not None and revisionId != (rec.get("revisionId") or "INITIAL"):
            raise error("ConflictException",
                        f"Failed to publish the State Machine version for revision {revisionId}. "
                        f"The current State Machine revision is {rec.get('revisionId') or 'INITIAL'}.")
        arn, created = self._publish(rec, description)
        return {"creationDate": created, "stateMachineVersionArn": arn}

    def _list_state_machine_versions(self, *, stateMachineArn: str, nextToken=None, maxResults=None) -> dict:
        base, _, qualifier = parse_sm_arn(stateMachineArn)
        if qualifier is not None:
            raise error("ValidationException", f"Expected an unqualified state machine ARN: '{stateMachineArn}'")
        items = self._versions_of(base)
        chunk, token = page(items, lambda v: -v["version"], maxResults, nextToken, base)
        return {"stateMachineVersions": [{"stateMachineVersionArn": v["stateMachineVersionArn"],
                                          "creationDate": when(v["creationDate"])} for v in chunk],
                "nextToken": token}

    def _delete_state_machine_version(self, *, stateMachineVersionArn: str) -> dict:
        _, _, qualifier = parse_sm_arn(stateMachineVersionArn)
        if qualifier is None or not qualifier.isdigit():
            raise error("ValidationException", f"Invalid version ARN: '{stateMachineVersionArn}'")
        v = self._get(VERSION, stateMachineVersionArn)
        if v is None:
            return {}
        users = [a["stateMachineAliasArn"] for a in self._aliases_of(v["stateMachineArn"])
                 if any(r["stateMachineVersionArn"] == stateMachineVersionArn for r in a["routingConfiguration"])]
        if users:
            raise error("ConflictException",
                        "Version to be deleted must not be referenced by an alias. Current list of aliases "
                        f"referencing this version: {users}")
        self.engine.store.delete_record(VERSION, stateMachineVersionArn)
        self.engine.store.delete_record(TAGS, stateMachineVersionArn)
        return {}

    # aliases ----------------------------------------------------------------------------------
    def _check_routing(self, routing: list[dict]) -> list[dict]:
        if not 1 <= len(routing) <= 2:
            raise error("ValidationException", "Routing configuration must contain one or two versions")
        arns = [r["stateMachineVersionArn"] for r in routing]
        if len(set(arns)) != len(arns):
            raise error("ValidationException", "Routing configuration must contain distinct versions")
        if sum(r["weight"] for r in routing) != 100:
            raise error("ValidationException", "Sum of routing configuration weights must be equal to 100")
        machines = set()
        for arn in arns:
            base, _, q = parse_sm_arn(arn)
            if q is None or not q.isdigit():
                raise error("ValidationException", f"Routing configuration must name versions, not '{arn}'")
            if self._get(VERSION, arn) is None:
                raise error("ResourceNotFound", f"Resource not found: '{arn}'")
            machines.add(base)
        if len(machines) != 1:
            raise error("ValidationException", "Routing configuration versions must belong to the same state machine")
        return [{"stateMachineVersionArn": r["stateMachineVersionArn"], "weight": r["weight"]} for r in routing]

    def _alias(self, arn: str) -> dict:
        _, _, q = parse_sm_arn(arn)
        if q is None or q.isdigit():
            raise error("ValidationException", f"Invalid alias ARN: '{arn}'")
        rec = self._get(ALIAS, arn)
        if rec is None:
            raise error("ResourceNotFound", f"Resource not found: '{arn}'")
        return rec

    def _create_state_machine_alias(self, *, name: str, routingConfiguration: list, description=None) -> dict:
        if not ALIAS_NAME.match(name) or len(name) > 80:
            raise error("InvalidName", f"Invalid Name: '{name}'")
        routing = self._check_routing(routingConfiguration)
        base = parse_sm_arn(routing[0]["stateMachineVersionArn"])[0]
        self._machine(base)
        arn = f"{base}:{name}"
        old = self._get(ALIAS, arn)
        if old is not None:
            if old["routingConfiguration"] == routing and old.get("description") == description:
                return {"stateMachineAliasArn": arn, "creationDate": when(old["creationDate"])}
            raise error("ConflictException", f"Alias already exists with a different configuration: '{arn}'")
        if len(self._aliases_of(base)) >= MAX_ALIASES:
            raise error("ServiceQuotaExceededException", f"Maximum number of aliases ({MAX_ALIASES}) reached")
        now = self._now()
        self._put(ALIAS, arn, {"stateMachineAliasArn": arn, "stateMachineArn": base, "name": name,
                               "description": description, "routingConfiguration": routing,
                               "creationDate": iso(now), "updateDate": iso(now)})
        return {"stateMachineAliasArn": arn, "creationDate": now}

    def _describe_state_machine_alias(self, *, stateMachineAliasArn: str) -> dict:
        a = self._alias(stateMachineAliasArn)
        return {"stateMachineAliasArn": a["stateMachineAliasArn"], "name": a["name"],
                "description": a.get("description"), "routingConfiguration": a["routingConfiguration"],
                "creationDate": when(a["creationDate"]), "updateDate": when(a["updateDate"])}

    def _update_state_machine_alias(self, *, stateMachineAliasArn: str, description=None,
                                    routingConfiguration=None) -> dict:
        if description is None and routingConfiguration is None:
            raise error("ValidationException", "Either the description or the routingConfiguration must be specified")
        a = self._alias(stateMachineAliasArn)
        if routingConfiguration is not None:
            routing = self._check_routing(routingConfiguration)
            if parse_sm_arn(routing[0]["stateMachineVersionArn"])[0] != a["stateMachineArn"]:
                raise error("ValidationException", "Routing configuration must name versions of the alias's state machine")
            a["routingConfiguration"] = routing
        if description is not None:
            a["description"] = description
        now = self._now()
        a["updateDate"] = iso(now)
        self._put(ALIAS, stateMachineAliasArn, a)
        return {"updateDate": now}

    def _delete_state_machine_alias(self, *, stateMachineAliasArn: str) -> dict:
        self._alias(stateMachineAliasArn)
        self.engine.store.delete_record(ALIAS, stateMachineAliasArn)
        return {}

    def _list_state_machine_aliases(self, *, stateMachineArn: str, nextToken=None, maxResults=None) -> dict:
        base, _, qualifier = parse_sm_arn(stateMachineArn)
        if qualifier is not None:
            raise error("ValidationException", f"Expected an unqualified state machine ARN: '{stateMachineArn}'")
        self._machine(base)
        items = self._aliases_of(base)
        chunk, token = page(items, lambda a: [a["creationDate"], a["name"]], maxResults, nextToken, base)
        return {"stateMachineAliases": [{"stateMachineAliasArn": a["stateMachineAliasArn"],
                                         "creationDate": when(a["creationDate"])} for a in chunk],
                "nextToken": token}

    # activities -------------------------------------------------------------------------------
    def _activity(self, arn: str) -> dict:
        if not ACTIVITY_ARN.match(arn):
            raise invalid_arn(arn, "activity")
        rec = self._get(ACTIVITY, arn)
        if rec is None:
            raise error("ActivityDoesNotExist", f"Activity Does Not Exist: '{arn}'")
        return rec

    def _create_activity(self, *, name: str, tags=None, encryptionConfiguration=None) -> dict:
        check_name(name)
        self._check_tags(tags or [])
        arn = self._arn("activity", name)
        old = self._get(ACTIVITY, arn)
        if old is not None:  # idempotent on the name, as AWS is; tags of a repeat are ignored
            if encryptionConfiguration is not None and old.get("encryptionConfiguration") != encryptionConfiguration:
                raise error("ActivityAlreadyExists", f"Activity already exists: '{arn}'")
            return {"activityArn": arn, "creationDate": when(old["creationDate"])}
        now = self._now()
        self._put(ACTIVITY, arn, {"activityArn": arn, "name": name, "creationDate": iso(now),
                                  "encryptionConfiguration": encryptionConfiguration})
        if tags:
            self._put(TAGS, arn, {"tags": {t["key"]: t.get("value", "") for t in tags}})
        return {"activityArn": arn, "creationDate": now}

    def _describe_activity(self, *, activityArn: str) -> dict:
        a = self._activity(activityArn)
        return {"activityArn": a["activityArn"], "name": a["name"], "creationDate": when(a["creationDate"]),
                "encryptionConfiguration": a.get("encryptionConfiguration")}

    def _delete_activity(self, *, activityArn: str) -> dict:
        if not ACTIVITY_ARN.match(activityArn):
            raise invalid_arn(activityArn, "activity")
        self.engine.store.delete_record(ACTIVITY, activityArn)
        self.engine.store.delete_record(TAGS, activityArn)
        return {}

    def _list_activities(self, *, maxResults=None, nextToken=None) -> dict:
        items = sorted(self.engine.store.list_records(ACTIVITY), key=lambda r: r["activityArn"])
        chunk, token = page(items, lambda r: r["activityArn"], maxResults, nextToken, "activity")
        return {"activities": [{"activityArn": a["activityArn"], "name": a["name"],
                                "creationDate": when(a["creationDate"])} for a in chunk], "nextToken": token}

    # tags -------------------------------------------------------------------------------------
    @staticmethod
    def _check_tags(tags: list[dict]) -> None:
        if len(tags) > MAX_TAGS:
            raise error("TooManyTags", f"Too many tags: at most {MAX_TAGS} are allowed",)

    def _taggable(self, arn: str) -> None:
        if ACTIVITY_ARN.match(arn):
            found = self._get(ACTIVITY, arn)
        elif SM_ARN.match(arn):
            _, _, q = parse_sm_arn(arn)
            found = self._get(SM if q is None else VERSION if q.isdigit() else ALIAS, arn)
        else:
            raise invalid_arn(arn, "stateMachine")
        if found is None:
            raise error("ResourceNotFound", f"Resource not found: '{arn}'")

    def _tag_resource(self, *, resourceArn: str, tags: list) -> dict:
        self._taggable(resourceArn)
        current = (self._get(TAGS, resourceArn) or {}).get("tags", {})
        merged = dict(current, **{t["key"]: t.get("value", "") for t in tags})
        if len(merged) > MAX_TAGS:
            raise error("TooManyTags", f"Too many tags: at most {MAX_TAGS} are allowed")
        self._put(TAGS, resourceArn, {"tags": merged})
        return {}

    def _untag_resource(self, *, resourceArn: str, tagKeys: list) -> dict:
        self._taggable(resourceArn)
        current = (self._get(TAGS, resourceArn) or {}).get("tags", {})
        self._put(TAGS, resourceArn, {"tags": {k: v for k, v in current.items() if k not in set(tagKeys)}})
        return {}

    def _list_tags_for_resource(self, *, resourceArn: str) -> dict:
        self._taggable(resourceArn)
        current = (self._get(TAGS, resourceArn) or {}).get("tags", {})
        return {"tags": [{"key": k, "value": v} for k, v in current.items()]}


def _same_json(a: str, b: str) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return a == b
