"""Validation findings, in the shape of AWS's ValidateStateMachineDefinition diagnostics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    code: str          # e.g. SCHEMA_VALIDATION_FAILED, MISSING_TRANSITION_TARGET, INVALID_JSON_DESCRIPTION
    message: str
    location: str = ""  # JSON pointer into the definition, e.g. /States/Charge/Next
    severity: str = "ERROR"  # ERROR or WARNING

    def as_aws(self) -> dict:
        out = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.location:
            out["location"] = self.location
        return out

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.code}{where}: {self.message}"
