"""The settings a deployment gives the workflows: the ``*_STATE_MACHINE_ARN`` variables seed 000
lists (and HourBank's one), which name the state machines a workflow starts as nested executions.

The definitions carry ``${NAME}`` placeholders where those ARNs go, as a CloudFormation or CDK
template's DefinitionSubstitutions do; `substitute` fills them from the environment, or, where a
variable is not set, with the ARN of the state machine of that name in the engine's own account
and region, so an offline run finds its own machines.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

# variable -> the state machine it names by default
STATE_MACHINE_SETTINGS = {
    "BOOKING_STATE_MACHINE_ARN": "ecosystem-booking-lifecycle",
    "PAYMENT_STATE_MACHINE_ARN": "ecosystem-payment-processing",
    "DISPUTE_STATE_MACHINE_ARN": "ecosystem-dispute-resolution",
    "ONBOARDING_STATE_MACHINE_ARN": "ecosystem-provider-onboarding",
    "HOURBANK_DISPUTE_STATE_MACHINE_ARN": "HourBankDisputeResolution",
}
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def settings(region: str = "us-east-1", account_id: str = "123456789012",
             environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {key: env.get(key) or f"arn:aws:states:{region}:{account_id}:stateMachine:{name}"
            for key, name in STATE_MACHINE_SETTINGS.items()}


def substitute(text: str, values: Mapping[str, str] | None = None) -> str:
    """The definition text with every ``${NAME}`` replaced (JSON-escaped); an unknown name is an error."""
    values = settings() if values is None else values

    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"The definition refers to ${{{m.group(1)}}}, which is not a known setting "
                           f"({', '.join(sorted(values))}).")
        return json.dumps(values[m.group(1)])[1:-1]
    return PLACEHOLDER.sub(one, text)
