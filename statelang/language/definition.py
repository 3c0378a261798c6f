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

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_pascal

from statelang.language.diagnostics import Diagnostic
from statelang.language.errors import DefinitionError

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


def load_definition(source: str | bytes | dict, *, yaml: bool = True) -> dict:
    """Read a definition from JSON or YAML text (or take a dict as it is).

    Malformed text is reported the way ValidateStateMachineDefinition reports it, as one
    INVALID_JSON_DESCRIPTION diagnostic, so that callers handle every bad definition alike.
    Text that opens with ``{`` or ``[`` is JSON only; other text is read as YAML too (an
    `.asl.yaml` file), and when it is neither, the YAML parser's line and column are reported.
    The AWS API takes JSON only: it passes ``yaml=False``.
    """
    if isinstance(source, dict):
        return source
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", f"Invalid UTF-8: {e.reason}", "")]) from None
    if not isinstance(source, str):
        raise DefinitionError([Diagnostic("SCHEMA_VALIDATION_FAILED", "Expected value of type Object", "")])
    if not source.strip():
        raise DefinitionError([Diagnostic("MISSING_DESCRIPTION", "Received a null or empty workflow input", "")])
    try:
        value = json.loads(source)
    except json.JSONDecodeError as e:
        if yaml and source.lstrip()[:1] not in ("{", "["):
            return _load_yaml_definition(source, f"{e.msg} at line {e.lineno}, column {e.colno}")
        message = f"{e.msg} at line {e.lineno}, column {e.colno}"
        raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", message, "")]) from None
    except RecursionError:
        raise DefinitionError([Diagnostic("TOO_DEEPLY_NESTED", "The definition is nested too deeply", "")]) from None
    if not isinstance(value, dict):
        raise DefinitionError([Diagnostic("SCHEMA_VALIDATION_FAILED", "Expected value of type Object", "")])
    return value


def json_text_problems(source: str | bytes) -> list[Diagnostic]:
    """[] when `source` is JSON text, else the one diagnostic AWS's API gives text that is not:
    the API takes JSON only, while files and `statelang.run` also take YAML."""
    try:
        load_definition(source, yaml=False)
    except DefinitionError as e:
        if e.diagnostics and e.diagnostics[0].code in ("INVALID_JSON_DESCRIPTION", "MISSING_DESCRIPTION"):
            return e.diagnostics
    return []


def _load_yaml_definition(source: str, json_problem: str) -> dict:
    from statelang.language.yaml_loader import YamlError, load_yaml

    try:
        value = load_yaml(source)
    except YamlError as e:
        message = f"Neither JSON ({json_problem}) nor YAML: {e}"
        raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", message, "")]) from None
    if not isinstance(value, dict):
        # a bare word is not a YAML definition: report it as the JSON it was meant to be
        message = json_problem if not isinstance(value, list) else "Expected value of type Object"
        raise DefinitionError([Diagnostic("INVALID_JSON_DESCRIPTION", message, "")])
    return value


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
