"""Seed 001's event routing on the marketplace bus (``ecosystem-marketplace-events``).

- Booking events -> the notification handler and the messaging handler;
- Payment events -> the payout manager and the booking workflow (which notes the payment event
  on its booking, an InputTransformer giving it ``action: PAYMENT_EVENT``);
- Dispute and Provider events -> the notification handler;
- workflow status changes of the marketplace's machines (``aws.states`` on the default bus) are
  re-published with the seed's source ``marketplace.workflow``, and notified;
- an archive of every marketplace event (for replay, "Replay Capability" in the seed), and on every
  target a retry policy and a dead-letter queue ("Dead Letter Queues: failed rule invocations
  captured").
"""

from __future__ import annotations

import json

ARCHIVE = "ecosystem-marketplace-archive"
DEAD_LETTER_QUEUE = "ecosystem-marketplace-dlq"
RETRY = {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
FUNCTIONS = {"notification": "ecosystem-notification-handler", "messaging": "ecosystem-messaging-handler",
             "payouts": "ecosystem-payout-manager", "workflow-events": "ecosystem-workflow-events"}
WORKFLOW_SOURCE, WORKFLOW_DETAIL_TYPE = "marketplace.workflow", "Workflow Status Changed"


def install_marketplace_routing(system) -> list[str]:
    """Put the seed's rules, targets and archive on the engine's marketplace bus (idempotent)."""
    from statelang.eventbus import EventBus
    from statelang.eventbus.targets import EventBridgeError

    from .api import MARKETPLACE_BUS
    engine, market = system.engine, system.marketplace
    region, account = engine.region, engine.account_id
    bus, default = EventBus(engine, MARKETPLACE_BUS), EventBus(engine, "default")
    fn = {k: f"arn:aws:lambda:{region}:{account}:function:{v}" for k, v in FUNCTIONS.items()}
    dlq = {"Arn": f"arn:aws:sqs:{region}:{account}:{DEAD_LETTER_QUEUE}"}

    def target(tid: str, arn: str, **extra) -> dict:
        return {"Id": tid, "Arn": arn, "RetryPolicy": RETRY, "DeadLetterConfig": dlq, **extra}

    for b in (bus, default):
        b.register_handler(fn["notification"], market.notification_handler)
        b.register_handler(fn["messaging"], market.messaging_handler)
        b.register_handler(fn["payouts"], market.payout_manager)
    default.register_handler(fn["workflow-events"], _relay(bus, engine))
    booking_sm = f"arn:aws:states:{region}:{account}:stateMachine:ecosystem-booking-lifecycle"
    rules = {
        "BookingEvents": ({"source": ["marketplace.booking"]},
                          [target("notify", fn["notification"]), target("message", fn["messaging"])]),
        "PaymentEvents": ({"source": ["marketplace.payment"]}, [
            target("payouts", fn["payouts"]),
            target("booking-workflow", booking_sm, RoleArn=f"arn:aws:iam::{account}:role/statelang-events",
                   InputTransformer={"InputPathsMap": {"bookingId": "$.detail.bookingId", "type": "$.detail-type"},
                                     "InputTemplate": '{"action": "PAYMENT_EVENT", "bookingId": <bookingId>, '
                                                      '"paymentEvent": <type>}'})]),
        "DisputeEvents": ({"source": ["marketplace.dispute"]}, [target("notify", fn["notification"])]),
        "ProviderEvents": ({"source": ["marketplace.provider"]}, [target("notify", fn["notification"])]),
        "WorkflowEvents": ({"source": [WORKFLOW_SOURCE]}, [target("notify", fn["notification"])]),
    }
    for name, (pattern, targets) in rules.items():
        bus.put_rule(name, event_pattern=pattern, description="Seed 001's event routing")
        bus.put_targets(name, targets)
    default.put_rule("MarketplaceWorkflowStatus", event_pattern={
        "source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"stateMachineArn": [{"prefix": f"arn:aws:states:{region}:{account}:stateMachine:ecosystem-"}]}},
        description="Marketplace workflow status changes, re-published as marketplace.workflow")
    default.put_targets("MarketplaceWorkflowStatus", [target("relay", fn["workflow-events"])])
    try:
        bus.create_archive(ARCHIVE, event_pattern={"source": [{"prefix": "marketplace."}]},
                           description="Every marketplace event, for replay", retention_days=30)
    except EventBridgeError as exc:
        if exc.code != "ResourceAlreadyExistsException":
            raise
    return [*rules, "MarketplaceWorkflowStatus"]


def _relay(bus, engine):
    def relay(event: dict) -> dict:
        detail = event.get("detail") or {}
        out = bus.put_events([{"Source": WORKFLOW_SOURCE, "DetailType": WORKFLOW_DETAIL_TYPE, "Detail": json.dumps({
            "executionArn": detail.get("executionArn"), "stateMachineArn": detail.get("stateMachineArn"),
            "status": detail.get("status"), "name": detail.get("name")}), "EventBusName": bus.name}],
            event_ids=[f"relay-{event.get('id')}"])
        return {"relayed": out["FailedEntryCount"] == 0}
    return relay
