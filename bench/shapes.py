"""The benchmark shapes b1..b6, loaded from ``bench/machines``.

The files are kept in the repository (not generated) so that every runner, and every past and
future run, executes byte-identical definitions and inputs; ``expected_states.json`` pins how many
``…StateEntered`` events one execution yields, which is the unit of "state transitions".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MACHINES = Path(__file__).with_name("machines")

SHAPE_NAMES = ("b1", "b2", "b3", "b4", "b5", "b6")

DESCRIPTIONS = {
    "b1": "100 Pass states in a chain",
    "b2": "Choice loop, 1,000 iterations",
    "b3": "inline Map, 1,000 items x 3 Pass",
    "b4": "Parallel, 10 branches x 10 Pass",
    "b5": "20 lambda:invoke Tasks (echo)",
    "b6": "5 Pass states (executions/s)",
}

ECHO_ARN = "arn:aws:lambda:us-east-1:123456789012:function:echo"


@dataclass(frozen=True)
class Shape:
    """One shape; the text forms are kept because moto and boto3-style clients take JSON text."""

    name: str
    definition_text: str
    input_text: str
    expected_states: int

    @property
    def definition(self) -> dict[str, Any]:
        return json.loads(self.definition_text)

    @property
    def input(self) -> Any:
        return json.loads(self.input_text)

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.name, "")


@cache
def _expected() -> dict[str, int]:
    return json.loads((MACHINES / "expected_states.json").read_text())


def load(name: str) -> Shape:
    """Load one shape by name (``b1``..``b6``)."""
    if name not in _expected():
        raise KeyError(f"unknown shape {name!r}; known: {', '.join(sorted(_expected()))}")
    return Shape(
        name=name,
        definition_text=(MACHINES / f"{name}.asl.json").read_text(),
        input_text=(MACHINES / f"{name}.input.json").read_text(),
        expected_states=_expected()[name],
    )


def load_all(names: list[str] | tuple[str, ...] | None = None) -> list[Shape]:
    """Load the given shapes in order, or all of them."""
    return [load(name) for name in (names or SHAPE_NAMES)]


def echo(event: Any) -> Any:
    """The 'echo' Lambda of b5: returns its input, as moto's docker-less Lambda does."""
    return event


HANDLERS = {ECHO_ARN: echo}


def count_state_entered(history: list[dict]) -> int:
    """The unit of a state transition: one ``…StateEntered`` history event."""
    return sum(1 for event in history if str(event.get("type", "")).endswith("StateEntered"))
