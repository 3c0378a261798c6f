"""The shape of Step Functions Local's MockConfigFile, as pydantic models.

Validated once when a file is loaded (`statelang.runtime.mocks.load_mock_config`), so that a typo
is reported with its place in the file (``MockedResponses.R."0".Throw.Cause: Field required``)
before anything runs, rather than surfacing mid-execution as a puzzling task failure. Strict:
no coercion (a number is not a response name), no unknown fields.

Source of the shape: AWS Step Functions developer guide, "Using mocked service integrations for
testing in Step Functions Local" (StateMachines -> TestCases -> state -> response name;
MockedResponses -> response -> invocation key -> Return | Throw {Error, Cause}).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MockedThrow(_Strict):
    Error: str
    Cause: str


class MockedAnswer(_Strict):
    """One invocation's answer: exactly one of Return (any JSON value) and Throw."""

    Return: Any = None
    Throw: MockedThrow | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MockedAnswer:
        if len(self.model_fields_set) != 1:
            raise ValueError(f"must hold exactly one field, Return or Throw (found {sorted(self.model_fields_set)})")
        return self


class StateMachineMocks(_Strict):
    TestCases: dict[str, dict[str, str]]   # test case -> state name -> mocked response name


class MockConfigFile(_Strict):
    StateMachines: dict[str, StateMachineMocks] = {}
    MockedResponses: dict[str, dict[str, MockedAnswer]] = {}   # response -> invocation key -> answer
