"""State machine definitions as frozen pydantic models, one per state type.

A definition is read once (`load_definition`), checked once (`statelang.validation.validate`) and
turned into models once (`parse`).  The models are frozen so that a compiled machine can be shared
between executions and threads without copying.  Field names are the snake_case forms of the
States Language names; the ASL spelling is each field's alias, so
``model_dump(by_alias=True, exclude_unset=True)`` gives back the definition that was parsed.

Payload templates (Parameters, Arguments, Assign, Output, ...) and choice rules stay plain JSON
values: their meaning depends on the query language and is compiled by `paths`, `jsonata` and
`choice`, not modelled here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_pascal

from statelang.language.diagnostics import Diagnostic
from statelang.language.errors import DefinitionError
from statelang.language.loading import json_text_problems, load_definition  # noqa: F401 - re-exported

Json = Any
QueryLanguage = Literal["JSONPath", "JSONata"]
Number = int | float


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, alias_generator=to_pascal)


class Retrier(_Model):
    error_equals: list[str]
    interval_seconds: int | None = None
    max_attempts: int | None = None
    backoff_rate: Number | None = None
    max_delay_seconds: int | None = None
    jitter_strategy: Literal["FULL", "NONE"] | None = None
    comment: str | None = None


class Catcher(_Model):
    error_equals: list[str]
    next: str
    result_path: str | None = None
    assign: Json = None
    output: Json = None
    comment: str | None = None


class ProcessorConfig(_Model):
    mode: Literal["INLINE", "DISTRIBUTED"] | None = None
    execution_type: Literal["STANDARD", "EXPRESS"] | None = None


class ItemReader(_Model):
    resource: str
    reader_config: dict[str, Json] | None = None
    parameters: Json = None
    arguments: Json = None


class ItemBatcher(_Model):
    max_items_per_batch: int | str | None = None
    max_items_per_batch_path: str | None = None
    max_input_bytes_per_batch: int | str | None = None
    max_input_bytes_per_batch_path: str | None = None
    batch_input: Json = None


class ResultWriter(_Model):
    resource: str | None = None
    parameters: Json = None
    arguments: Json = None
    writer_config: dict[str, Json] | None = None


class _State(_Model):
    comment: str | None = None
    query_language: QueryLanguage | None = None


class _Flow(_State):
    """States that move on with Next or stop with End."""

    next: str | None = None
    end: bool | None = None
    input_path: str | None = None
    output_path: str | None = None
    assign: Json = None
    output: Json = None


class PassState(_Flow):
    type: Literal["Pass"]
    parameters: Json = None
    result: Json = None
    result_path: str | None = None


class TaskState(_Flow):
    type: Literal["Task"]
    resource: str
    parameters: Json = None
    arguments: Json = None
    result_selector: Json = None
    result_path: str | None = None
    retry: list[Retrier] | None = None
    catch: list[Catcher] | None = None
    timeout_seconds: int | str | None = None
    timeout_seconds_path: str | None = None
    heartbeat_seconds: int | str | None = None
    heartbeat_seconds_path: str | None = None
    credentials: Json = None


class ChoiceState(_State):
    type: Literal["Choice"]
    choices: list[dict[str, Json]]
    default: str | None = None
    input_path: str | None = None
    output_path: str | None = None
    assign: Json = None
    output: Json = None


class WaitState(_Flow):
    type: Literal["Wait"]
    seconds: int | str | None = None
    seconds_path: str | None = None
    timestamp: str | None = None
    timestamp_path: str | None = None


class SucceedState(_State):
    type: Literal["Succeed"]
    input_path: str | None = None
    output_path: str | None = None
    output: Json = None


class FailState(_State):
    type: Literal["Fail"]
    error: str | None = None
    error_path: str | None = None
    cause: str | None = None
    cause_path: str | None = None


class ParallelState(_Flow):
    type: Literal["Parallel"]
    branches: list[Branch]
    parameters: Json = None
    arguments: Json = None
    result_selector: Json = None
    result_path: str | None = None
    retry: list[Retrier] | None = None
    catch: list[Catcher] | None = None


class MapState(_Flow):
    type: Literal["Map"]
    item_processor: ItemProcessor | None = None
    iterator: Iterator | None = None
    items_path: str | None = None
    items: Json = None
    item_selector: Json = None
    parameters: Json = None
    arguments: Json = None
    item_reader: ItemReader | None = None
    item_batcher: ItemBatcher | None = None
    result_writer: ResultWriter | None = None
    result_selector: Json = None
    result_path: str | None = None
    max_concurrency: int | str | None = None
    max_concurrency_path: str | None = None
    tolerated_failure_percentage: Number | str | None = None
    tolerated_failure_percentage_path: str | None = None
    tolerated_failure_count: int | str | None = None
    tolerated_failure_count_path: str | None = None
    label: str | None = None
    retry: list[Retrier] | None = None
    catch: list[Catcher] | None = None

    @property
    def processor(self) -> ItemProcessor | Iterator:
        """The machine run per item, whichever of the two spellings the definition used."""
        return self.item_processor if self.item_processor is not None else self.iterator


State = Annotated[
    PassState | TaskState | ChoiceState | WaitState | SucceedState | FailState | ParallelState | MapState,
    Field(discriminator="type"),
]


class Branch(_Model):
    """A Parallel branch: a machine of its own whose transitions stay inside it."""

    start_at: str
    states: dict[str, State]
    comment: str | None = None


class Iterator(Branch):
    """The Map state's per-item machine under its original name (before ItemProcessor)."""

    processor_config: ProcessorConfig | None = None


class ItemProcessor(Iterator):
    """The Map state's per-item machine; ProcessorConfig chooses inline or distributed mode."""


class StateMachine(Branch):
    version: str | None = None
    timeout_seconds: int | None = None
    query_language: QueryLanguage | None = None


for _m in (ParallelState, MapState, Branch, Iterator, ItemProcessor, StateMachine):
    _m.model_rebuild()


def parse(definition: str | bytes | dict) -> StateMachine:
    """Validate, then build the frozen models; raises DefinitionError listing every problem."""
    from statelang.language.validation import errors_only, validate

    d = load_definition(definition)
    problems = errors_only(validate(d))
    if problems:
        raise DefinitionError(problems)
    try:
        return StateMachine.model_validate(d)
    except ValidationError as e:  # validation should have caught it; never let pydantic's error escape
        raise DefinitionError([
            Diagnostic("SCHEMA_VALIDATION_FAILED", err["msg"], "/" + "/".join(str(p) for p in err["loc"]))
            for err in e.errors()
        ]) from None
