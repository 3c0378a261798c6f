"""`statelang demo` and `statelang workflows`: every seed system's story, checked, not just printed."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from statelang.cli import main
from statelang.workflows.demo import run_demo


def test_every_story_ends_as_the_seeds_describe(tmp_path):
    stories = run_demo(f"sqlite:///{tmp_path}/demo.db")
    assert [s["title"].split(":")[0] for s in stories] == ["Marketplace"] * 3 + ["CCS"] * 3 + ["HourBank"] * 2
    assert all(s["ok"] for s in stories), [s["title"] for s in stories if not s["ok"]]
    booking, dispute, onboarding, panic, dead_channel, sale, hours, escalated = stories
    # The booking was named by the bus's auto-trigger pattern and paid through a nested execution.
    assert re.fullmatch(r"ecosystem-booking-lifecycle:booking-booking-123-\d{13}", booking["executions"][0]["name"])
    assert "TaskSubmitted" in booking["executions"][0]["timeline"]
    assert booking["executions"][1]["status"] == "SUCCEEDED"
    # The dispute's review took a day of virtual time; the admin's answer closed it.
    lines = dispute["executions"][0]["timeline"].splitlines()
    wait_exit = next(line for line in lines if "WaitStateExited" in line)
    assert "1d00h" in wait_exit
    assert dispute["executions"][0]["output"]["decidedBy"] == "admin-1"
    assert panic["executions"][0]["output"]["parallelResults"]
    assert sale["executions"][0]["output"]["activationResult"]["vehicles_activated"] == 75
    assert "alice 7 h, bob 5 h" in hours["summary"]
    # The dead channel was degraded alone and escalated; the escalated dispute was settled.
    assert dead_channel["executions"][0]["output"]["alerts"]["failedChannels"] == ["authorities"]
    assert "PolicyDecision" not in escalated["executions"][1]["timeline"]
    assert "EscalateDispute" in escalated["executions"][1]["timeline"]
    assert "alice 6.5 h, carol 4.5 h" in escalated["summary"]


def test_demo_command_prints_the_timelines(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--db", f"sqlite:///{tmp_path}/d.db"])
    assert result.exit_code == 0, result.output
    assert "=== HourBank: three hours of gardening" in result.output
    assert "ExecutionSucceeded" in result.output and "all 8 stories ran end to end offline" in result.output


def test_workflows_list_names_triggers_and_timeouts():
    result = CliRunner().invoke(main, ["workflows", "list", "--json"])
    rows = json.loads(result.output)
    by_name = {r["name"]: r for r in rows}
    assert by_name["booking-lifecycle"]["timeout_seconds"] == 900
    assert by_name["dispute-resolution"]["timeout_seconds"] == 7 * 86400
    assert by_name["booking-lifecycle"]["execution_name"] == "booking-{bookingId}-{timestamp}"
    assert "HourBankServiceRequest" in by_name
    text = CliRunner().invoke(main, ["workflows", "list"]).output
    assert "marketplace.booking: Booking Created" in text


def test_workflows_run_starts_a_seed_workflow(tmp_path):
    data = {"vehicleId": "VEH-1", "type": "accident", "severity": "high", "location": {"lat": 1, "lon": 2},
            "eventTimestamp": 1698765432000, "metadata": {}}
    result = CliRunner().invoke(main, ["workflows", "run", "CCS_EMERGENCY", "--input", json.dumps(data),
                                       "--db", f"sqlite:///{tmp_path}/f.db"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "SUCCEEDED"
    bad = CliRunner().invoke(main, ["workflows", "run", "NO_SUCH"])
    assert bad.exit_code == 2 and "No workflow named" in bad.output


def test_outbox_lists_what_the_demo_published(tmp_path):
    run_demo(f"sqlite:///{tmp_path}/demo.db")
    result = CliRunner().invoke(main, ["workflows", "outbox", "--domain-db", f"sqlite:///{tmp_path}/demo-domain.db",
                                       "--json"])
    rows = json.loads(result.output)
    assert any(r["body"].get("event") == "BOOKING_CONFIRMED" for r in rows)
    assert any(r["topic_arn"].endswith("ecosystem-provider-notifications") for r in rows)
