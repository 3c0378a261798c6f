"""Schedule expressions — ``rate()``, EventBridge's six-field ``cron()`` and Scheduler's ``at()`` —
and the tick that fires them, with the bus's retries, on the engine's clock.

Fire times are computed by APScheduler's triggers (IntervalTrigger, CronTrigger, DateTrigger);
what APScheduler lacks of AWS's cron — ``?``, day-of-week numbered 1-7 from Sunday, ``W`` — is
translated or filtered here. Nothing runs in a background thread: each rule and schedule record
stores its next fire time (``NextFire``), each pending retry its due time (``Due``), and `tick`
fires whatever is due at the clock's ``now``. Workers sharing a database claim what they fire: a
due time by a conditional write of the next one (`_claim_fires`), a delivery by a conditional
write of its claim (`targets.claim_delivery`); `integration.attach` puts this into an engine's
own loop.
APScheduler's own SQLAlchemy job store does not fit here: its 3.x user guide says a job store
must never be shared between schedulers (it has no cross-process claim), and the 4.x series that
shares one is a pre-release. The records are the durable timers: a restarted
process picks up from them, and on a virtual clock `eventbus.integration.run_until_idle` jumps
to the earliest of these and the engine's own timers, so a nightly cron fires in milliseconds.
"""

from __future__ import annotations

import calendar
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from statelang.runtime.storage import RecordWrite

from .targets import DELIVERY, EventBridgeError, attempt, check_target, claim_delivery, iso, new_delivery

RULE = "events.rule"
SCHEDULE = "events.schedule"
SCHEDULE_ERROR = "Parameter ScheduleExpression is not valid."
MAX_CATCH_UP = 1000  # occurrences fired by one tick for one schedule, after a long stop
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}
_STEP = timedelta(microseconds=1)


@dataclass(frozen=True)
class Schedule:
    """A parsed expression; `next_after(t)` is the first fire time strictly after ``t``, or None."""

    expression: str
    trigger: Any
    weekday_rule: str | None = None  # the day-of-month field when it uses W

    def next_after(self, t: datetime) -> datetime | None:
        if isinstance(self.trigger, DateTrigger):
            run = self.trigger.get_next_fire_time(None, t)
            return run if run is not None and run > t else None
        nxt = self.trigger.get_next_fire_time(None, t + _STEP)
        if self.weekday_rule is None:
            return nxt
        for _ in range(400):  # W: keep only the wanted weekday of each month
            if nxt is None:
                return None
            wanted = _weekday_near(nxt.year, nxt.month, self.weekday_rule)
            if nxt.day == wanted:
                return nxt
            day_start = nxt.replace(hour=0, minute=0, second=0, microsecond=0)
            if nxt.day < wanted:
                start = day_start.replace(day=wanted) - _STEP
            else:
                start = (day_start.replace(day=1) + timedelta(days=32)).replace(day=1) - _STEP
            nxt = self.trigger.get_next_fire_time(None, start + _STEP)
        return None


def _weekday_near(year: int, month: int, rule: str) -> int:
    """The day AWS's ``nW`` (nearest weekday to n, same month) or ``LW`` (last weekday) means."""
    last = calendar.monthrange(year, month)[1]
    if rule == "LW":
        day = last
        while calendar.weekday(year, month, day) >= 5:
            day -= 1
        return day
    day = min(int(rule[:-1]), last)
    wd = calendar.weekday(year, month, day)
    if wd == 5:   # Saturday: Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if wd == 6:   # Sunday: Monday after, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


def _dow_token(token: str) -> tuple[str | None, str | None]:
    """One day-of-week list item -> (day_of_week expression, day expression) for APScheduler."""
    def name(v: str) -> str:
        if v.isdigit():
            n = int(v)
            if not 1 <= n <= 7:
                raise ValueError(v)
            return _DAYS[n - 1]
        if v.lower() not in _DAYS:
            raise ValueError(v)
        return v.lower()

    if token == "*":
        return "*", None
    if token == "L":
        return "sat", None
    if token.endswith("L"):
        return None, f"last {name(token[:-1])}"
    if "#" in token:
        day, nth = token.split("#")
        if not nth.isdigit() or int(nth) not in _ORDINAL:
            raise ValueError(token)
        return None, f"{_ORDINAL[int(nth)]} {name(day)}"
    if "-" in token:
        first, last = token.split("-")
        return f"{name(first)}-{name(last)}", None
    return name(token), None


def _cron(fields: list[str], tz) -> Schedule:
    if len(fields) != 6:
        raise ValueError("cron needs six fields")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError("exactly one of day-of-month and day-of-week must be ?")
    kwargs: dict[str, Any] = {"minute": minute, "hour": hour, "month": month.lower(), "year": year,
                              "second": "0", "timezone": tz}
    weekday_rule = None
    if dow == "?":
        if dom.endswith("W"):
            if dom != "LW" and not (dom[:-1].isdigit() and 1 <= int(dom[:-1]) <= 31):
                raise ValueError(dom)
            weekday_rule, kwargs["day"] = dom, "*"
        else:
            kwargs["day"] = "last" if dom == "L" else dom
    else:
        weeks, days = [], []
        for token in dow.split(","):
            w, d = _dow_token(token)
            (weeks if w else days).append(w or d)
        if weeks and days:
            raise ValueError("L and # cannot be mixed with plain days of the week")
        if weeks:
            kwargs["day_of_week"] = ",".join(weeks)
        else:
            kwargs["day"] = ",".join(days)
    if not year.replace("*", "").replace(",", "").replace("-", "").replace("/", "").isdigit() and year != "*":
        raise ValueError(year)
    return Schedule(f"cron({' '.join(fields)})", CronTrigger(**kwargs), weekday_rule)


def parse_schedule(expression: str, timezone: str = "UTC", anchor: datetime | None = None,
                   allow_at: bool = False) -> Schedule:
    """Parse an expression; raise ValueError(SCHEDULE_ERROR) as PutRule does for a bad one.

    ``rate(n unit)`` fires every n units from ``anchor`` (a rule's creation: AWS fires the first
    time one interval after it); the unit is singular for 1 and plural otherwise, as AWS requires.
    ``at()`` is EventBridge Scheduler's one-off form; rules do not accept it."""
    if not isinstance(expression, str):
        raise ValueError(SCHEDULE_ERROR)
    try:
        tz = ZoneInfo(timezone)
    except Exception:  # noqa: BLE001 - zoneinfo raises several kinds for a bad name
        raise ValueError(f"Invalid ScheduleExpressionTimezone {timezone}.") from None
    text = expression.strip()
    m = _RATE.match(text)
    if m:
        value, unit = int(m.group(1)), m.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ValueError(SCHEDULE_ERROR)
        anchor = anchor or datetime.now(UTC)
        step = timedelta(**{unit.rstrip("s") + "s": value})
        return Schedule(text, IntervalTrigger(**{unit.rstrip("s") + "s": value}, start_date=anchor + step,
                                              timezone=UTC))
    m = _CRON.match(text)
    if m:
        try:
            return _cron(m.group(1).split(), tz)
        except ValueError:
            raise ValueError(SCHEDULE_ERROR) from None
    m = _AT.match(text)
    if m and allow_at:
        try:
            when = datetime.fromisoformat(m.group(1)).replace(tzinfo=tz)
        except ValueError:
            raise ValueError(SCHEDULE_ERROR) from None
        return Schedule(text, DateTrigger(run_date=when, timezone=tz))
    raise ValueError(SCHEDULE_ERROR)


def rule_schedule(rule: dict) -> Schedule:
    return parse_schedule(rule["ScheduleExpression"], anchor=datetime.fromisoformat(rule["Anchor"]))


def _when(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


# -- the tick ------------------------------------------------------------------------------------

def scheduled_event(engine, rule_arn: str, fire: datetime, source: str = "aws.events") -> dict:
    """The event a schedule fires, as AWS sends it; its id is fixed by (rule, fire time) so that a
    tick repeated after a crash produces the same event, and the same execution names."""
    eid = uuid.uuid5(uuid.NAMESPACE_URL, f"{rule_arn}#{fire.isoformat()}")
    return {"version": "0", "id": str(eid), "detail-type": "Scheduled Event", "source": source,
            "account": engine.account_id, "time": fire.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": engine.region, "resources": [rule_arn], "detail": {}}


def tick(bus, now: datetime | None = None) -> int:
    """Fire every due rule schedule, Scheduler schedule and delivery retry of the engine;
    returns how many this worker attempted. Several workers may tick one database at once: each
    due time is fired by the one that claims it (`_claim_fires`), each delivery retried by the one
    that claims it (`claim_delivery`)."""
    engine = bus.engine
    store = engine.store
    now = now or engine.clock.now()
    done = 0
    for d in store.list_records(DELIVERY):
        if datetime.fromisoformat(d["Due"]) <= now:
            claimed = claim_delivery(bus, d, now)
            if claimed is not None:
                attempt(bus, claimed, now)
                done += 1
    for rule in store.list_records(RULE):
        if rule.get("State") == "DISABLED":
            continue
        fires = _due_fires(rule, lambda r=rule: rule_schedule(r), now)
        if fires:
            done += _claim_fires(bus, RULE, rule, fires, rule.get("Targets") or [], now)
    for rec in store.list_records(SCHEDULE):
        if rec.get("State") == "DISABLED":
            continue
        fires = _due_fires(rec, lambda r=rec: _scheduler_schedule(r), now, _when(rec.get("EndDate")))
        if fires:
            done += _claim_fires(bus, SCHEDULE, rec, fires, None, now)
    return done


@dataclass(frozen=True)
class DueFires:
    """A schedule's occurrences due at a tick (at most `MAX_CATCH_UP`), and the fire time after
    them (None: the schedule is done)."""

    times: list[datetime]
    after: datetime | None


def _due_fires(rec: dict, schedule, now: datetime, end: datetime | None = None) -> DueFires | None:
    fire = _when(rec.get("NextFire"))
    if fire is None or fire > now:
        return None
    sched = schedule()
    times: list[datetime] = []
    while fire is not None and fire <= now and len(times) < MAX_CATCH_UP:
        times.append(fire)
        fire = sched.next_after(fire)
        if end is not None and fire is not None and fire > end:
            fire = None
    return DueFires(times, fire)


def _scheduler_schedule(rec: dict) -> Schedule:
    return parse_schedule(rec["ScheduleExpression"], rec.get("ScheduleExpressionTimezone") or "UTC",
                          anchor=datetime.fromisoformat(rec["CreationDate"]), allow_at=True)


def _claim_fires(bus, kind: str, rec: dict, fires: DueFires, targets: list[dict] | None, now: datetime) -> int:
    """Claim ``fires`` of one rule (``targets``: its targets) or Scheduler schedule (``targets``
    None: its one target) and deliver them; 0 when another worker claimed them first.

    The claim is one `Store.write_records`: the record's next fire time, expecting the one read
    (the conditional write of whichever worker comes first; the others find it changed), together
    with every delivery of these fires, claimed by this worker. A crash after it leaves the
    deliveries stored, retried when their claim runs out; a crash before it leaves the fire
    times due. So each due time fires exactly once, and each target gets one delivery per fire."""
    engine = bus.engine
    source = "aws.events" if kind == RULE else "aws.scheduler"
    deliveries = []
    for fire in fires.times:
        event = scheduled_event(engine, rec["Arn"], fire, source=source)
        if targets is None:
            deliveries.append(new_delivery(bus, rec["Arn"], rec["Name"], _scheduler_target(rec, event), event, now))
        else:
            deliveries += [new_delivery(bus, rec["Arn"], rec["Name"], t, event, now) for t in targets]
    seen = {"NextFire": rec["NextFire"]}
    if fires.after is None and kind == SCHEDULE and rec.get("ActionAfterCompletion") == "DELETE":
        claim = RecordWrite(kind, rec["Arn"], None, expect=seen)
    else:
        claim = RecordWrite(kind, rec["Arn"], {"NextFire": iso(fires.after) if fires.after else None},
                            expect=seen, merge=True)
    if not engine.store.write_records([claim, *(RecordWrite(DELIVERY, d["Id"], d) for d in deliveries)]):
        return 0
    for d in deliveries:
        attempt(bus, d, now)
    return len(fires.times)


def _scheduler_target(rec: dict, event: dict) -> dict:
    """A Scheduler schedule's target for one fire, its context attributes filled in, as
    EventBridge Scheduler fills ``<aws.scheduler.*>`` in the target's input."""
    target = dict(rec["Target"])
    text = target.get("Input") or "{}"
    for key, value in (("aws.scheduler.schedule-arn", rec["Arn"]),
                       ("aws.scheduler.scheduled-time", event["time"]),
                       ("aws.scheduler.execution-id", event["id"]),
                       ("aws.scheduler.attempt-number", "1")):
        text = text.replace(f"<{key}>", value)
    target["Input"] = text
    target.setdefault("Id", rec["Name"])
    return target


def next_due(engine, schedules: bool = True) -> datetime | None:
    """The earliest retry due of any bus record and, with ``schedules``, the earliest fire time:
    the virtual clock's next stop."""
    store = engine.store
    times = [_when(d["Due"]) for d in store.list_records(DELIVERY)]
    if not schedules:
        return min(times) if times else None
    times += [_when(r["NextFire"]) for r in store.list_records(RULE)
              if r.get("NextFire") and r.get("State") != "DISABLED"]
    times += [_when(s["NextFire"]) for s in store.list_records(SCHEDULE)
              if s.get("NextFire") and s.get("State") != "DISABLED"]
    return min(times) if times else None


# -- EventBridge Scheduler's face ----------------------------------------------------------------

def create_schedule(bus, name: str, schedule_expression: str, target: dict, *,
                    timezone: str = "UTC", state: str = "ENABLED", action_after_completion: str = "NONE",
                    start_date: datetime | None = None, end_date: datetime | None = None,
                    group: str = "default") -> dict:
    """EventBridge Scheduler's CreateSchedule: a schedule with one target, not bound to a bus."""
    engine = bus.engine
    arn = f"arn:aws:scheduler:{engine.region}:{engine.account_id}:schedule/{group}/{name}"
    if engine.store.get_record(SCHEDULE, arn) is not None:
        raise EventBridgeError("ConflictException", f"Schedule {name} already exists.", "CreateSchedule")
    now = engine.clock.now()
    try:
        sched = parse_schedule(schedule_expression, timezone, anchor=start_date or now, allow_at=True)
    except ValueError as exc:
        raise EventBridgeError("ValidationException", f"Invalid Schedule Expression {schedule_expression}."
                               if str(exc) == SCHEDULE_ERROR else str(exc), "CreateSchedule") from None
    problem = check_target({"Id": name, **target})
    if problem:
        raise EventBridgeError(problem[0], problem[1], "CreateSchedule")
    first = sched.next_after(max(now, start_date) - _STEP if start_date else now)
    rec = {"Name": name, "Arn": arn, "GroupName": group, "ScheduleExpression": schedule_expression,
           "ScheduleExpressionTimezone": timezone, "State": state, "Target": json.loads(json.dumps(target)),
           "ActionAfterCompletion": action_after_completion, "CreationDate": iso(now),
           "StartDate": iso(start_date) if start_date else None, "EndDate": iso(end_date) if end_date else None,
           "NextFire": iso(first) if first else None}
    engine.store.put_record(SCHEDULE, arn, rec)
    return {"ScheduleArn": arn}
