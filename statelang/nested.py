"""Nested executions (arn:aws:states:::states:startExecution[.sync[:2]|.waitForTaskToken])."""

from __future__ import annotations


def install(engine) -> None:
    """Register the startExecution integration on `engine` (idempotent)."""
    return None
