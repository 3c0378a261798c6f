"""CCS's Lambda functions (seed 003): emergency response and the sales approval process, and the
manager's answers to approval requests.

Incidents, contracts, vehicles and the company registry (the government API that validates a
customer's tax id) live in the DynamoDB-like store; payments go through the payment provider;
cameras through the video recorder. The manager's approval request is an SNS message carrying
the task token; `Ccs.manager_decides` finds it in the outbox and answers it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime

from statelang import HandlerError

from .services import Services

INCIDENTS, FAILED, CONTRACTS = "ccs-incidents", "ccs-failed-incidents", "ccs-contracts"
VEHICLES, REGISTRY, COUNTERS = "ccs-vehicles", "ccs-company-registry", "ccs-counters"
MANAGER_TOPIC = "ccs-manager-notifications"
CONTRACT_TYPES = ("standard", "premium", "enterprise")
DOCUMENT = re.compile(r"^(\d{6,10})-(\d)$")
NIT_WEIGHTS = (3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71)
PAYMENT_METHODS = {"credit_card": "pm_card_visa", "debit_card": "pm_card_visa_debit", "pse": "pm_pse"}
RECORDING_SECONDS = {"hijack": 3600, "panic_button": 1800, "accident": 1800}
ALERT_TOPICS = {"authorities": "ccs-authorities-alerts", "owner": "ccs-owner-alerts"}
CHANNEL_OF_RESULT = {"authoritiesNotification": "authorities", "ownerNotification": "owner",
                     "videoRecording": "video"}
ACCOUNT, REGION = "123456789012", "us-east-1"


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


@dataclass
class _Keyed:
    """The part of a task context a service call reads: the key its effect is recorded under."""

    idempotency_key: str
    task_token: str | None = None


def nit_check_digit(number: str) -> int:
    """The DIAN check digit of a Colombian tax id (NIT/RUT): weighted sum of the digits mod 11."""
    total = sum(int(d) * w for d, w in zip(reversed(number), NIT_WEIGHTS, strict=False))
    r = total % 11
    return r if r < 2 else 11 - r


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Ccs:
    """``Ccs(services)``: the tables, the handlers (`handlers()`), and the manager's answers."""

    def __init__(self, services: Services):
        self.services = services
        self.db = services.dynamodb
        for table, key in ((INCIDENTS, "incident_id"), (FAILED, "incident_id"), (CONTRACTS, "contract_id"),
                           (VEHICLES, "plate"), (REGISTRY, "tax_id"), (COUNTERS, "name")):
            self.db.create_table(table, key)
        self.registry_unavailable = 0   # the next n registry look-ups fail (the external API is down)
        self._guard = threading.Lock()

    def register_company(self, tax_id: str, status: str = "ACTIVE", name: str = "") -> None:
        self.db.put_item({"TableName": REGISTRY, "Item": {"tax_id": {"S": tax_id}, "status": {"S": status},
                                                          "name": {"S": name}}})

    def item(self, table: str, key: str, value: str) -> dict | None:
        return self.db.get_item({"TableName": table, "Key": {key: {"S": value}}}).get("Item")

    # -- emergency -----------------------------------------------------------------------------
    def activate_video_recording(self, event: dict, ctx) -> dict:
        return self.services.video.start_session(event["vehicleId"], event["incidentId"],
                                                 RECORDING_SECONDS.get(event.get("type", ""), 900),
                                                 dedup_key=ctx.idempotency_key)

    def assess_alerts(self, event: dict) -> dict:
        """Which alert channels of the incident failed (their branch caught its error) and which
        went out: the incident records both, and failed channels are redelivered."""
        failed, delivered = [], []
        for result in event.get("parallelResults") or []:
            for field, outcome in result.items():
                channel = CHANNEL_OF_RESULT.get(field, field)
                bad = isinstance(outcome, dict) and outcome.get("status") in ("failed", "unavailable")
                (failed if bad else delivered).append(channel)
        return {"failedChannels": failed, "deliveredChannels": delivered,
                "status": "partially_notified" if failed else "notified"}

    def redeliver_alerts(self, event: dict, ctx) -> dict:
        """A second try of every failed channel; a channel that fails again is escalated: a
        review record in the failed-incidents table (durable, whatever else is down) and a
        message to the managers. Nothing is silently lost."""
        incident_id = event["incidentId"]
        still, redelivered = [], []
        for channel in event.get("channels") or []:
            try:
                self._deliver(channel, event, f"{ctx.idempotency_key}#{channel}")
                redelivered.append(channel)
            except HandlerError as exc:
                still.append(channel)
                self.db.put_item({"TableName": FAILED, "Item": {
                    "incident_id": {"S": f"{incident_id}#{channel}"}, "vehicle_id": {"S": event["vehicleId"]},
                    "type": {"S": event["type"]}, "channel": {"S": channel}, "error": {"S": exc.error},
                    "cause": {"S": exc.cause}, "status": {"S": "escalated"},
                    "failed_at": {"S": self.services.sns.now().isoformat()}}},
                    request_token=f"{ctx.idempotency_key}#{channel}#review")
                try:
                    self.services.sns.publish({"TopicArn": topic_arn(MANAGER_TOPIC), "Subject": "Alert not delivered",
                                               "Message": {"event": "ALERT_NOT_DELIVERED", "incidentId": incident_id,
                                                           "channel": channel, "error": exc.error}},
                                              _Keyed(f"{ctx.idempotency_key}#{channel}#escalation"))
                except HandlerError:
                    pass   # the review record above is the escalation that cannot be lost
        return {"failedChannels": still, "redeliveredChannels": redelivered,
                "status": "partially_notified" if still else "notified"}

    def _deliver(self, channel: str, event: dict, key: str) -> None:
        if channel == "video":
            self.activate_video_recording(event, _Keyed(key))
            return
        message = {k: event.get(k) for k in ("incidentId", "vehicleId", "type", "severity", "location",
                                             "eventTimestamp")}
        self.services.sns.publish({"TopicArn": topic_arn(ALERT_TOPICS[channel]), "Subject": "CCS emergency alert",
                                   "Message": dict(message, audience=channel, redelivery=True)}, _Keyed(key))

    def log_completion(self, event: dict) -> dict:
        """How long the response took, from the execution's start to this step, on the engine's
        clock; kept on the incident so the SLA can be audited."""
        elapsed = (_time(event["completedAt"]) - _time(event["startTime"])).total_seconds()
        self.db.update_item({"TableName": INCIDENTS, "Key": {"incident_id": {"S": event["incidentId"]}},
                             "UpdateExpression": "SET completed_at = :c, latency_ms = :l",
                             "ExpressionAttributeValues": {":c": {"S": event["completedAt"]},
                                                           ":l": {"N": str(round(elapsed * 1000))}}})
        return {"executionTime": f"{elapsed:.2f}s"}

    # -- sales ---------------------------------------------------------------------------------
    def validate_customer(self, event: dict) -> dict:
        """Hard problems make a customer invalid; soft ones lower the score (valid from 70)."""
        hard, soft, score = [], [], 100
        if not event.get("customer_id"):
            hard.append("customer_id is required")
        vehicles = event.get("number_of_vehicles")
        if not isinstance(vehicles, int) or isinstance(vehicles, bool) or vehicles <= 0:
            hard.append("number_of_vehicles must be a positive integer")
        if event.get("contract_type") not in CONTRACT_TYPES:
            hard.append(f"contract_type must be one of {', '.join(CONTRACT_TYPES)}")
        value = event.get("estimated_value")
        if not isinstance(value, (int, float)) or value <= 0:
            hard.append("estimated_value must be positive")
        document = event.get("document_id")
        if document:
            m = DOCUMENT.match(document)
            if not m:
                hard.append(f"document_id {document} is not a tax id (digits-checkdigit)")
            else:
                if nit_check_digit(m.group(1)) != int(m.group(2)):
                    score -= 5
                    soft.append("the check digit does not match")
                with self._guard:
                    down, self.registry_unavailable = self.registry_unavailable, max(0, self.registry_unavailable - 1)
                if down:
                    raise HandlerError("ExternalServiceUnavailable", "the company registry did not answer")
                entry = self.item(REGISTRY, "tax_id", m.group(1))
                if entry is None:
                    score -= 20
                    soft.append("the company is not in the registry")
                elif entry["status"]["S"] != "ACTIVE":
                    hard.append(f"the company is {entry['status']['S'].lower()} in the registry")
        else:
            score -= 10
            soft.append("no tax document given")
        return {"valid": not hard and score >= 70, "score": score if not hard else 0, "reasons": hard + soft}

    def create_contract(self, event: dict, ctx) -> dict:
        """One contract per task: the number comes from an atomic counter and both writes are
        keyed by the task's idempotency key, so a re-run (after a crash between any two of them)
        gets the same number back and writes the same contract, never a second one."""
        key = ctx.idempotency_key
        year = self.services.sns.now().year
        n = self.db.update_item({"TableName": COUNTERS, "Key": {"name": {"S": f"contracts-{year}"}},
                                 "UpdateExpression": "ADD next_value :one",
                                 "ExpressionAttributeValues": {":one": {"N": "1"}},
                                 "ReturnValues": "UPDATED_NEW"},
                                request_token=f"{key}#number")["Attributes"]["next_value"]["N"]
        contract_id = f"CONT-{year}-{int(n):03d}"
        approval = event.get("approval") or {}
        self.db.put_item({"TableName": CONTRACTS, "Item": {
            "contract_id": {"S": contract_id}, "customer_id": {"S": event["customer_id"]},
            "contract_type": {"S": event["contract_type"]}, "vehicles": {"N": str(event["number_of_vehicles"])},
            "value": {"N": str(event["estimated_value"])}, "status": {"S": "PENDING_PAYMENT"},
            "approval_type": {"S": approval.get("approval_type", "manual")},
            "approved_by": {"S": str(approval.get("approved_by", ""))}}}, request_token=f"{key}#contract")
        contract = self.item(CONTRACTS, "contract_id", contract_id)
        return {"contract_id": contract_id, "approval_type": contract["approval_type"]["S"]}

    def process_payment(self, event: dict, ctx) -> dict:
        """Charge the contract's value; a decline is an answer (``failed``), not an error, so the
        workflow's choice sends it to PaymentFailed; transient provider errors raise for a retry."""
        pay = self.services.payments
        contract_id = event["contractResult"]["contract_id"]
        method = event.get("payment_method", "credit_card")
        intent = pay.create_payment_intent(event["estimated_value"], event["customer_id"],
                                           PAYMENT_METHODS.get(method, method), metadata={"contract_id": contract_id},
                                           idempotency_key=f"{ctx.idempotency_key}#create")
        try:
            done = pay.confirm_payment_intent(intent["id"], idempotency_key=f"{ctx.idempotency_key}#confirm")
        except HandlerError as exc:
            if exc.error != "CardError":
                raise
            return {"status": "failed", "transaction_id": intent["id"], "decline_code": exc.cause.split(":")[0]}
        return {"status": "success" if done["status"] == "succeeded" else "failed", "transaction_id": intent["id"]}

    def activate_service(self, event: dict) -> dict:
        contract_id = event["contractResult"]["contract_id"]
        listed = event.get("vehicles") or []
        plates = [v["plate"] for v in listed] + [f"{contract_id}-V{i:03d}" for i in
                                                 range(len(listed) + 1, event["number_of_vehicles"] + 1)]
        for plate in plates:
            self.db.put_item({"TableName": VEHICLES, "Item": {"plate": {"S": plate}, "contract_id": {"S": contract_id},
                                                              "status": {"S": "active"}}})
        self.db.update_item({"TableName": CONTRACTS, "Key": {"contract_id": {"S": contract_id}},
                             "UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "status"},
                             "ExpressionAttributeValues": {":s": {"S": "ACTIVE"}}})
        return {"service_status": "active", "vehicles_activated": len(plates)}

    def handlers(self) -> dict:
        return {"ccs-activate-video-recording": self.activate_video_recording,
                "ccs-assess-alerts": self.assess_alerts,
                "ccs-redeliver-alerts": self.redeliver_alerts,
                "ccs-log-completion": self.log_completion,
                "ccs-validate-customer": self.validate_customer,
                "ccs-create-contract": self.create_contract,
                "ccs-process-payment": self.process_payment,
                "ccs-activate-service": self.activate_service}

    # -- the manager ---------------------------------------------------------------------------
    def pending_approvals(self) -> list[dict]:
        """Approval requests published to the managers, newest last: {customer_id, taskToken, ...}."""
        return [m["body"] for m in self.services.sns.outbox(topic_suffix=":" + MANAGER_TOPIC)
                if isinstance(m["body"], dict) and "taskToken" in m["body"]]   # not the escalations

    def _token(self, customer_id: str) -> str:
        for body in reversed(self.pending_approvals()):
            if body.get("customer_id") == customer_id:
                return body["taskToken"]
        raise KeyError(f"no approval request for {customer_id}")

    def manager_decides(self, engine, customer_id: str, approved: bool, manager_id: str = "manager",
                        comments: str = "") -> str:
        return engine.send_task_result(self._token(customer_id), True, output={
            "approved": approved, "approval_type": "manual", "approved_by": manager_id, "comments": comments})

    def manager_still_reviewing(self, engine, customer_id: str) -> str:
        """A heartbeat: the manager opened the request, which keeps it from timing out by heartbeat."""
        return engine.send_task_heartbeat(self._token(customer_id))

    def manager_withdraws(self, engine, customer_id: str, cause: str) -> str:
        return engine.send_task_result(self._token(customer_id), False, error="ApprovalWithdrawn", cause=cause)
